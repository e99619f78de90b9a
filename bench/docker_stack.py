"""Docker backend: image bake time, stack up/down, fault apply and revert times, each beside
the local backend's (or another reference) measured in the same run, as a ratio.

    .venv/bin/python bench/docker_stack.py [--runs 5] [--out bench/results/docker_stack.txt]

Needs a Docker daemon (``scripts/dockerd.sh start``) and root (kills, netns for the local
backend's network fault, the containers' named namespaces).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.faults import CpuStress, DiskFill, Kill, MemoryPressure, Partition, Pause, make_fault
from harness.faults.fault import Fault
from harness.images import RECIPES, bake
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.backends import open_stack
from harness.stack.model import StackLifecycle, StackSpec

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
LINES: list[str] = []


def say(line: str) -> None:
    LINES.append(line)
    print(line, flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values)


def bake_times(runs: int) -> None:
    """A forced bake of each image; reference: copying the same binary to a file."""
    for name in ("anvil", "haproxy"):
        recipe = RECIPES[name]
        took, copy = [], []
        for _ in range(runs):
            took.append(bake(recipe, force=True).took_s)
            with tempfile.TemporaryDirectory() as tmp:
                started = time.monotonic()
                shutil.copyfile(recipe.binary().resolve(), Path(tmp) / "copy")
                copy.append(time.monotonic() - started)
        say(
            f"bake {name} (forced, {runs} runs): median {med(took):.3f}s max {max(took):.3f}s; "
            f"reference copying its binary {med(copy) * 1000:.1f} ms; ratio "
            f"{med(took) / med(copy):.0f}x"
        )


def _spec(backend: str, **kw: object) -> StackSpec:
    return StackSpec(name=f"bench-{backend}", backend=backend, chain="independent", **kw)  # type: ignore[arg-type]


def up_down(runs: int) -> None:
    """Ready (every server L7OK, the frontend answered) and gone, alternating backends."""
    ready: dict[str, list[float]] = {"local": [], "docker": []}
    down: dict[str, list[float]] = {"local": [], "docker": []}
    for _ in range(runs):
        for backend in ("local", "docker"):
            stack = open_stack(_spec(backend))
            stack.start()
            assert stack.ready_s is not None
            ready[backend].append(stack.ready_s)
            started = time.monotonic()
            stack.stop()
            down[backend].append(time.monotonic() - started)
    for what, got, target in (("up and healthy", ready, 10.0), ("down", down, 5.0)):
        d, loc = med(got["docker"]), med(got["local"])
        say(
            f"stack {what} (2 anvil + HAProxy, {runs} runs each, alternating): docker median "
            f"{d:.3f}s max {max(got['docker']):.3f}s (target < {target:g} s); local median "
            f"{loc:.3f}s; ratio docker/local {d / loc:.1f}x"
        )


def _wait_answering(stack: StackLifecycle, node: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c = stack.state().component(node)
        if c.pid is not None:
            try:
                with RpcClient(c.url, timeout_s=0.5) as client:
                    client.block_number()
                    return
            except RpcFailure:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"{node} did not come back")


def fault_times(runs: int) -> None:
    """Apply (call to verified in effect) and revert times of kill, pause, a partition, a
    JSON-RPC fault (the fault proxy: a host process on both backends), CPU, memory and disk."""
    kinds: list[tuple[str, Callable[[StackLifecycle], Fault]]] = [
        ("kill", lambda s: Kill(s, "primary")),
        ("pause", lambda s: Pause(s, "primary")),
        ("partition", lambda s: Partition(s, "primary")),
        ("rpc_error", lambda s: make_fault("rpc_error", s, "primary", methods="eth_call")),
        # In the container's own cgroups on docker; on the host (the node's data dir a tmpfs
        # of its own for the fill) on the local stack.
        ("cpu", lambda s: CpuStress(s, "primary", cores=1, max_s=30)),
        ("memory", lambda s: MemoryPressure(s, "primary", mb=64, max_s=30)),
        ("disk", lambda s: DiskFill(s, "primary", percent=50)),
    ]
    got: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    mechanisms: dict[tuple[str, str], str] = {}
    stacks = {
        "local": open_stack(
            _spec("local", isolation="netns", fault_proxy=True, data_dir_size_mb=64)
        ),
        "docker": open_stack(
            _spec("docker", fault_proxy=True, container_memory_mb=256, data_dir_size_mb=64)
        ),
    }
    for s in stacks.values():
        s.start()
    try:
        for _run in range(runs):
            for kind, make in kinds:
                for backend, stack in stacks.items():
                    with make(stack) as fault:
                        pass
                    assert fault.record is not None
                    apply, revert = got.setdefault((kind, backend), ([], []))
                    apply.append(fault.record.apply_us / 1000)
                    revert.append(fault.record.revert_us / 1000)
                    mechanisms[(kind, backend)] = fault.mechanism
                    if kind == "kill":
                        _wait_answering(stack, "node-0")
    finally:
        for s in stacks.values():
            s.stop()
    for kind, _make in kinds:
        d_apply, d_revert = got[(kind, "docker")]
        l_apply, l_revert = got[(kind, "local")]
        line = (
            f"fault {kind} ({runs} runs each): apply docker median {med(d_apply):.1f} ms, local "
            f"{med(l_apply):.1f} ms, ratio {med(d_apply) / med(l_apply):.1f}x"
        )
        if kind != "kill":
            line += (
                f"; revert docker {med(d_revert):.1f} ms, local {med(l_revert):.1f} ms, ratio "
                f"{med(d_revert) / med(l_revert):.1f}x"
            )
        say(line)
        say(
            f"  mechanisms: docker {mechanisms[(kind, 'docker')]}; "
            f"local {mechanisms[(kind, 'local')]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    say(f"docker stack benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    bake_times(args.runs)
    up_down(args.runs)
    fault_times(args.runs)
    if args.out:
        args.out.write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
