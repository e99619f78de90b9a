"""Stack lifecycle: how fast the local stack is ready and gone, and how fast HAProxy
detects a killed primary, against references measured in the same run.

    .venv/bin/python bench/stack_lifecycle.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack import HealthCheck, LocalStack, RestartPolicy, StackSpec
from harness.stack.local import free_port
from harness.stack.nodes import adapter

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def bare_anvil_ready_s() -> float:
    """Reference: one anvil process from spawn to its first JSON-RPC answer."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        argv = adapter("anvil").command(
            port=port, data_dir=Path(data), block_time_s=1, extra_ports=(), extra_args=()
        )
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with RpcClient(f"http://127.0.0.1:{port}/", timeout_s=1) as client:
                while True:
                    try:
                        client.block_number()
                        return time.monotonic() - started
                    except RpcFailure:
                        time.sleep(0.002)
        finally:
            proc.terminate()
            proc.wait()


def lifecycle(runs: int) -> None:
    ready, down, bare = [], [], []
    for _ in range(runs):
        bare.append(bare_anvil_ready_s())
        stack = LocalStack(StackSpec(name="bench"))
        stack.start()
        assert stack.ready_s is not None
        ready.append(stack.ready_s)
        started = time.monotonic()
        stack.stop()
        down.append(time.monotonic() - started)
    med_ready, med_down, med_bare = (statistics.median(x) for x in (ready, down, bare))
    print(f"stack ready (2 anvil + HAProxy, all servers L7OK, frontend answered), {runs} runs:")
    print(
        f"  median {med_ready:.3f}s  min {min(ready):.3f}s  max {max(ready):.3f}s  (target < 2 s)"
    )
    print(f"  reference: bare anvil start-to-answer median {med_bare:.3f}s")
    print(f"  ratio stack-ready / bare-anvil-ready = {med_ready / med_bare:.1f}x")
    print(f"stack torn down: median {med_down:.3f}s  max {max(down):.3f}s  (target < 1 s)")


def detection(check: HealthCheck, label: str) -> None:
    """Kill the primary with restarts off; time to DOWN in HAProxy and client-visible errors."""
    spec = StackSpec(name="bench-detect", health_check=check, restart=RestartPolicy(enabled=False))
    with LocalStack(spec) as stack:
        api = stack.runtime_api()
        pid = stack.state().component("node-0").pid
        assert pid is not None
        client = RpcClient(stack.frontend_url, timeout_s=1)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        first_fail = last_fail = None
        down_at = None
        failures = 0
        while time.monotonic() - killed < check.implied_detection_s * 3 + 2:
            now = time.monotonic()
            try:
                client.block_number()
            except RpcFailure:
                failures += 1
                first_fail = first_fail or now
                last_fail = now
            if down_at is None:
                status = next(s.status for s in api.servers() if s.server == "node-0")
                if status.startswith("DOWN"):
                    down_at = now
            elif now - down_at > 1:
                break
            time.sleep(0.005)
        implied = check.implied_detection_s
        measured = (down_at - killed) if down_at else float("nan")
        window = (last_fail - first_fail) if first_fail and last_fail else 0.0
        print(f"detection, {label} (inter {check.inter_ms} ms x fall {check.fall}):")
        print(f"  implied inter x fall = {implied:.3f}s; measured SIGKILL->DOWN = {measured:.3f}s")
        print(f"  ratio measured / implied = {measured / implied:.2f}")
        print(f"  client-visible failures through the frontend: {failures} over {window:.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    lifecycle(args.runs)
    detection(HealthCheck(), "the roadmap's template defaults")
    detection(HealthCheck(inter_ms=200, fall=2, rise=1), "a fast check")


if __name__ == "__main__":
    main()
