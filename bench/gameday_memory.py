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
import tracemalloc
from pathlib import Path

import psutil

from harness.experiment.live import Progress
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
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print what grew between minute 2 and the end "
        "(tracemalloc: slower, so its RSS figures are not the benchmark's)",
    )
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(8)
    snapshots: list[tracemalloc.Snapshot] = []

    os.environ.setdefault("HARNESS_STATE_DIR", tempfile.mkdtemp(prefix="bench-gameday-"))
    me = psutil.Process()
    series: list[tuple[float, int, int]] = []  # (s, own RSS, load generators' RSS)
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not done.wait(5.0):
            workers = 0
            for p in me.children(recursive=True):
                try:
                    if "locust" in " ".join(p.cmdline()):
                        workers += p.memory_info().rss
                except psutil.Error:  # exited (or a zombie) meanwhile
                    continue
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
    day: list[tuple[float, int]] = []  # (s into the day, RSS), each second, by the run itself

    def progress(p: Progress) -> None:
        if p.phase == "done":
            return
        day.append((p.elapsed_s, me.memory_info().rss))
        if args.trace and not snapshots and p.elapsed_s >= 120:
            snapshots.append(tracemalloc.take_snapshot())
        if args.trace and p.elapsed_s >= args.minutes * 60 - 5 and len(snapshots) == 1:
            snapshots.append(tracemalloc.take_snapshot())

    with tempfile.TemporaryDirectory() as reports:
        result = run_day(spec, stack, DayPlan(schedule, None), Path(reports), progress=progress)
    done.set()
    minute2 = next((rss for t, rss in day if t >= 120), None)
    # The day's last second, before its end-of-day judgement (which builds every figure at
    # once: a peak of its own, printed apart).
    end = day[-1][1] if day else None
    peak = max((rss for _, rss, _ in series), default=0)
    load_samples = result.load.samples if result.load else 0
    if len(snapshots) == 2:
        print("what grew most between minute 2 and the end (tracemalloc):")
        for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:10]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format()[-6:]:
                print(f"      {line}")
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
