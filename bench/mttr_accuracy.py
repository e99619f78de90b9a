"""MTTR accuracy: an outage of known length, measured by the probes.

Every node is paused (SIGSTOP) for exactly 2.000 s, timed by the fault's own record; the
probes must report a client-visible outage within 2 probe intervals of the truth, which is
the paused time measured in the same run (from effective to reverted).

    .venv/bin/python bench/mttr_accuracy.py [--runs 5] [--interval-ms 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from harness.faults import Pause
from harness.measure import Prober
from harness.measure.recovery import recovery
from harness.stack import LocalStack, StackSpec

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
PAUSE_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    interval_s = args.interval_ms / 1000
    errors = []
    with LocalStack(StackSpec(name="bench-mttr", block_time_s=0.5)) as stack:
        for _ in range(args.runs):
            with Prober(stack, interval_s=interval_s, timeout_s=0.25) as prober:
                time.sleep(0.5)
                with Pause(stack, "all") as fault:
                    time.sleep(PAUSE_S)
                time.sleep(1.0)
            record = fault.record
            assert record is not None
            truth_s = (record.reverted_ns - record.effective_ns) / 1e9
            samples, transitions = prober.snapshot()
            found = recovery(samples, transitions, record.effective_ns, list(record.targets))
            errors.append(found.outage_s - truth_s)
            print(
                f"  paused {truth_s:.4f}s (truth), measured outage {found.outage_s:.4f}s, "
                f"error {1000 * (found.outage_s - truth_s):+.1f} ms"
            )
    worst = max(abs(e) for e in errors)
    median_ms = 1000 * statistics.median(errors)
    every = f"probes every {args.interval_ms:g} ms"
    print(f"MTTR accuracy, {args.runs} pauses of {PAUSE_S:.3f}s, {every}:")
    print(f"  median error {median_ms:+.1f} ms, worst |error| {1000 * worst:.1f} ms")
    print(f"  worst |error| / probe interval = {worst / interval_s:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
