"""The harness's own memory over a game day: RSS growth between minute 2 and the end of a
10-minute day at 500 req/s (target under 10%: samples stream to disk, the recorder keeps
bounded per-second state and encodes the histograms of phases long over, so nothing
grows per request or per episode).

The day runs in this process (as `harness gameday` runs it), on the default local stack,
with the default mix and gaps short enough for many episodes. A sampler thread reads this
process's RSS every 5 s; the reference is the same process's RSS at minute 2, measured in
the same run, so the figure is a ratio. The load generators' (Locust's) RSS is printed
beside, for the record: they are other processes.

    .venv/bin/python bench/gameday_memory.py [--minutes 10] [--rate 500] [--gap 20 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

from harness.gameday import GamedaySpec, Window, make_schedule
from harness.gameday.day import DayPlan, run_day
from harness.load import LoadSpec
from harness.stack.backends import plan_stack
from harness.stack.model import StackSpec

TARGET_GROWTH = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--gap", type=float, nargs=2, default=(20.0, 40.0), metavar=("LO", "HI"))
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()

    os.environ.setdefault("HARNESS_STATE_DIR", tempfile.mkdtemp(prefix="bench-gameday-"))
    me = psutil.Process()
    series: list[tuple[float, int, int]] = []  # (s, own RSS, load generators' RSS)
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not done.wait(5.0):
            workers = sum(
                p.memory_info().rss
                for p in me.children(recursive=True)
                if "locust" in " ".join(p.cmdline())
            )
            series.append((time.monotonic() - started, me.memory_info().rss, workers))

    spec = GamedaySpec(
        duration_s=args.minutes * 60,
        window=Window.parse("always"),
        gap_s=tuple(args.gap),  # type: ignore[arg-type]
        seed=args.seed,
        load=LoadSpec(rate_per_s=args.rate, users=64),
        abort_if=(),
    )
    stack = StackSpec(name="benchday")
    schedule = make_schedule(spec, plan_stack(stack).state())
    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as reports:
        result = run_day(spec, stack, DayPlan(schedule, None), Path(reports))
    done.set()
    minute2 = next((rss for t, rss, _ in series if t >= 120), None)
    # The day's last minute, before its end of day judgement (which builds every figure
    # at once, a peak of its own, printed apart).
    in_day = [rss for t, rss, _ in series if t <= args.minutes * 60]
    end = in_day[-1] if in_day else None
    peak = max((rss for _, rss, _ in series), default=0)
    load_samples = result.load.samples if result.load else 0
    print(
        f"game day of {args.minutes:g} min at {args.rate:g} req/s: {len(result.episodes)} "
        f"episodes ({len(result.skipped)} skipped), {load_samples:,} load samples, "
        f"verdict {'PASS' if result.passed else 'FAIL'}"
    )
    for t, rss, workers in series[:: max(1, len(series) // 12)]:
        mib, load_mib = rss / 2**20, workers / 2**20
        print(f"  t={t:6.0f}s  harness RSS {mib:7.1f} MiB   Locust RSS {load_mib:7.1f} MiB")
    if minute2 is None or end is None:
        print("  too short to compare minute 2 with the end")
        return
    growth = end / minute2 - 1
    verdict = "PASS" if growth < TARGET_GROWTH else "FAIL"
    print(
        f"  {verdict}: RSS {minute2 / 2**20:.1f} MiB at minute 2, {end / 2**20:.1f} MiB at "
        f"the end: growth {growth * 100:+.1f}% (ratio {end / minute2:.3f}; "
        f"target < {TARGET_GROWTH:.0%}); the end-of-day judgement peaked at "
        f"{peak / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
