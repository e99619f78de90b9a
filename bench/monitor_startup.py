"""Monitoring start-up: what --prometheus adds to a stack's ready time, and when its
Prometheus has scraped every target once.

Stacks stood up alternately without and with --prometheus (``--repeat`` each, medians and
ranges). Per monitored stack: its ready time, the monitoring's own part
(``monitor_start_s``: every monitoring process answering, Prometheus on /-/ready), and
from the stack's ready to Prometheus having scraped each target once (`wait_scraped`,
what a run's first fault waits for, inside its baseline). Prometheus 2.42 hands targets
to its scrapers on its discovery manager's fixed 5 s tick, so that last figure is ~5 s
whatever is done; what is measured is that the stack no longer waits for it.

    .venv/bin/python bench/monitor_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-monitor-", dir="/tmp")
os.environ.setdefault("HARNESS_STATE_DIR", _STATE.name)

from harness import LocalStack, StackSpec  # noqa: E402
from harness.monitor.processes import expected_targets, wait_scraped  # noqa: E402


def _spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"median {statistics.median(values):.3f} s (min {low:.3f}, max {high:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    plain: list[float] = []
    monitored: list[float] = []
    own: list[float] = []
    scraped: list[float] = []
    for i in range(args.repeat):
        with LocalStack(StackSpec(name=f"bench-plain-{i}")) as stack:
            plain.append(stack.ready_s or 0.0)
        with LocalStack(StackSpec(name=f"bench-prom-{i}", prometheus=True)) as stack:
            ready_at = time.monotonic()
            state = stack.state()
            assert state.prometheus_url is not None
            expected = expected_targets(len(state.nodes), state.haproxy_metrics_url is not None)
            took = wait_scraped(state.prometheus_url, expected, 30.0)
            assert took is not None, "Prometheus never scraped every target"
            scraped.append(time.monotonic() - ready_at)
            monitored.append(stack.ready_s or 0.0)
            own.append(state.monitor_start_s or 0.0)
    added = [m - p for m, p in zip(monitored, plain, strict=True)]
    print(f"stack ready, no monitoring:      {_spread(plain)}")
    print(f"stack ready, --prometheus:       {_spread(monitored)}")
    print(f"added by --prometheus:           {_spread(added)}")
    print(f"monitoring processes answering:  {_spread(own)}")
    print(f"ready -> every target scraped:   {_spread(scraped)} (absorbed by the baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
