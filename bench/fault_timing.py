"""Fault timing: for every registered fault kind, how long from the call to the fault being
verified in effect (``record.apply_us``) and from the revert call to it verified gone
(``record.revert_us``), against a reference measured in the same run: one bare
``os.kill(pid, 0)`` plus one fsynced 200-byte append (the ledger write every fault pays).

Kinds come from the registry, so whatever network and resource faults are registered are
timed too; a kind this host cannot run, or that needs a stack option it cannot have
(netns for network faults, a tmpfs data dir for disk fill: both need root), is skipped
with the reason. One stack serves every run (a whole-second block time, which "stall"
needs to restore mining); after a run that replaced a node's process (kill, terminate,
restart) the next waits for the steady state again.

    .venv/bin/python bench/fault_timing.py [--runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_kinds import IS_ROOT, is_network, why_not_runnable

from harness.errors import HarnessError
from harness.faults import FAULTS, Fault, make_fault, parameters
from harness.stack import HealthCheck, LocalStack, RestartPolicy, StackSpec, state_root
from harness.stack.state import ProcessIdentity
from harness.stack.steady import wait_for_steady_state

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

DATA_DIR_MB = 1200
FILL_BYTES = 1 << 30  # the disk fill to time: 1 GiB of a 1200 MiB tmpfs
FILL_PREFIX = "harness-fill-"
PROCESS_TARGET_US = 10_000.0
NETWORK_TARGET_US = 50_000.0
DISK_TARGET_US = 2_000_000.0
REFERENCE_SAMPLES = 200


def target_us(kind: str) -> float | None:
    """The roadmap's target for ``kind``'s apply time; None where it states none."""
    if kind in ("kill", "pause"):
        return PROCESS_TARGET_US
    if is_network(kind):
        return NETWORK_TARGET_US
    if kind == "disk":
        return DISK_TARGET_US
    return None


def fill_params(kind: str) -> dict[str, Any] | None:
    """The disk kind's percent that fills ~1 GiB of the tmpfs; None if it takes no percent."""
    for name in parameters(kind):
        if "pct" in name or "percent" in name:
            return {name: round(100 * FILL_BYTES / (DATA_DIR_MB << 20), 2)}
    return None


def why_skipped(kind: str) -> str | None:
    """Why ``kind`` cannot be timed on this stack, or None if it can."""
    reason = why_not_runnable(kind)
    if reason:
        return reason
    if kind == "disk" and fill_params(kind) is None:
        return f"takes no percent parameter (it takes: {', '.join(parameters(kind)) or 'none'})"
    return None


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation; the value itself for one sample."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reference_us(pid: int, samples: int = REFERENCE_SAMPLES) -> list[float]:
    """Reference: one ``os.kill(pid, 0)`` plus one fsynced 200-byte append, in microseconds.

    The file is on the ledger's filesystem (the state root), under a name the ledger
    replay never reads.
    """
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".bench-reference-{os.getpid()}"
    line = b"x" * 199 + b"\n"
    took = []
    try:
        for _ in range(samples):
            started = time.monotonic_ns()
            os.kill(pid, 0)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            took.append((time.monotonic_ns() - started) / 1000)
    finally:
        path.unlink(missing_ok=True)
    return took


def filled_bytes(fault: Fault) -> int:
    """Bytes in the fill files (harness-fill-*) in the targets' data dirs, while in effect."""
    total = 0
    for target in fault.targets:
        if target.data_dir is None:
            continue
        for directory, _, files in os.walk(target.data_dir):
            for name in files:
                if name.startswith(FILL_PREFIX):
                    with contextlib.suppress(OSError):  # removed while we looked
                        total += os.stat(os.path.join(directory, name)).st_blocks * 512
    return total


@dataclass
class Timings:
    kind: str
    mechanism: str = ""
    apply_us: list[float] = field(default_factory=list)
    revert_us: list[float] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def time_kind(stack: LocalStack, kind: str, runs: int) -> Timings:
    """``runs`` faults of ``kind``, alternating primary and backup; waits for the steady
    state after a run that replaced a node's process."""
    result = Timings(kind)
    params = (fill_params(kind) or {}) if kind == "disk" else {}
    roles = [r for r in ("primary", "backup") if r in FAULTS[kind].roles]
    for run in range(runs):
        target = roles[run % len(roles)]
        before = [ProcessIdentity.of(n.pid) for n in stack.state().nodes if n.pid is not None]
        try:
            fault = make_fault(kind, stack, target, seed=run, **params)
            with fault:
                if kind == "disk":
                    result.filled.append(filled_bytes(fault))
            record = fault.record
            assert record is not None
            result.mechanism = record.mechanism
            result.apply_us.append(record.apply_us)
            result.revert_us.append(record.revert_us)
        except HarnessError as exc:
            result.errors.append(f"run {run} ({target}): {exc}")
        # A killed node may still be listed under its old pid until the supervisor reaps it:
        # ask the kernel whether each process from before the run is still there.
        if len(before) < len(stack.state().nodes) or not all(p.alive() for p in before):
            try:
                wait_for_steady_state(stack)
            except HarnessError as exc:
                result.errors.append(f"after run {run}: {exc}")
    return result


def fmt_us(us: float) -> str:
    if us >= 1_000_000:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} us"


def report(results: list[Timings], ref_median_us: float) -> None:
    kind_w = max([4, *(len(t.kind) for t in results)])
    mech_w = max([9, *(len(t.mechanism) for t in results)])
    print(
        f"  {'kind':<{kind_w}} {'mechanism':<{mech_w}} {'apply med':>10} {'p90':>10} "
        f"{'revert med':>10} {'p90':>10}  {'target':>9} {'med/p90 met':<11} {'apply/ref':>9}"
    )
    for t in results:
        if not t.apply_us:
            print(f"  {t.kind:<{kind_w}} every run failed: {t.errors[0] if t.errors else '?'}")
            continue
        apply_med, apply_p90 = statistics.median(t.apply_us), quantile(t.apply_us, 0.9)
        goal = target_us(t.kind)
        met = (
            "-"
            if goal is None
            else "/".join("yes" if value < goal else "NO" for value in (apply_med, apply_p90))
        )
        print(
            f"  {t.kind:<{kind_w}} {t.mechanism:<{mech_w}} {fmt_us(apply_med):>10} "
            f"{fmt_us(apply_p90):>10} {fmt_us(statistics.median(t.revert_us)):>10} "
            f"{fmt_us(quantile(t.revert_us, 0.9)):>10}  "
            f"{'< ' + fmt_us(goal) if goal else 'none':>9} {met:<11} "
            f"{apply_med / ref_median_us:>8.1f}x"
        )
    for t in results:
        if t.filled:
            size = statistics.median(t.filled)
            print(
                f"  {t.kind}: filled {size:.0f} bytes ({size / (1 << 30):.3f} GiB) "
                f"median per run, with {fill_params(t.kind)} of a {DATA_DIR_MB} MiB tmpfs"
            )
        if t.errors:
            print(f"  {t.kind}: {len(t.errors)} failure(s), up to 3 shown:")
            for line in t.errors[:3]:
                print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--kind", action="append", choices=sorted(FAULTS), help="Time only this kind (repeat)."
    )
    args = parser.parse_args()
    kinds, skipped = [], {}
    for kind in args.kind or FAULTS:
        reason = why_skipped(kind)
        if reason is None:
            kinds.append(kind)
        else:
            skipped[kind] = reason
    spec = StackSpec(
        name=f"bench-timing-{os.getpid()}",
        # Whole seconds: "stall" can only restore anvil's interval mining in whole seconds.
        block_time_s=1.0,
        # No backoff: back-to-back kills would otherwise wait up to max_delay_s for a restart.
        restart=RestartPolicy(delay_s=0.05, backoff=1.0),
        # A fast check: a node back from a restart is UP again within a fraction of a second.
        health_check=HealthCheck(inter_ms=200, fall=2, rise=1),
        isolation="netns" if IS_ROOT else "loopback",
        data_dir_size_mb=DATA_DIR_MB if IS_ROOT else None,
    )
    where = "netns, 1200 MiB tmpfs data dirs" if IS_ROOT else "loopback (not root)"
    with LocalStack(spec) as stack:
        wait_for_steady_state(stack)
        # HAProxy's pid: no fault here touches it, so it is alive at the end too.
        pid = stack.state().balancer.pid
        assert pid is not None
        reference = reference_us(pid)

        results = []
        for kind in kinds:
            print(f"timing {kind}...", file=sys.stderr, flush=True)
            results.append(time_kind(stack, kind, args.runs))
        # The reference again at the end: the host may have got busier or quieter meanwhile.
        reference += reference_us(pid)
    ref_median = statistics.median(reference)
    print(f"fault timing, {args.runs} runs per kind, one stack (2 anvil + HAProxy, {where}):")
    print(
        f"  reference: os.kill(pid, 0) + fsynced 200-byte append: median {fmt_us(ref_median)}, "
        f"p90 {fmt_us(quantile(reference, 0.9))} ({len(reference)} samples)"
    )
    report(results, ref_median)
    for kind, reason in skipped.items():
        print(f"  skipped {kind}: {reason}")


if __name__ == "__main__":
    main()
