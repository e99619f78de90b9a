"""Game-day schedules at scale: a 24-hour day with gaps of 30-120 s (about 1,000 episodes)
generated from the default mix on the default planned stack, target under 1 s, and two
generations with one seed identical (as documents, byte for byte).

The schedule's time is split into checking the mix against the stack (`usable_mix`: a
fault built and preflighted per choice and target) and drawing the episodes. References
measured in the same run, as ratios: building the same number of `EpisodeSpec`s, and the
same number of bare `random.Random` draws of the kinds a schedule makes per episode
(weighted choice, target, two uniforms, a seed), so the ratio says what the schedule adds
over what it cannot avoid. Also timed: the document written as JSON and read back (what a
replay of a killed day pays), and ``import harness.gameday`` in a fresh interpreter.

    .venv/bin/python bench/gameday_schedule.py [--hours 24] [--gap 30 120] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.experiment.spec import EpisodeSpec
from harness.gameday import (
    GamedaySpec,
    Window,
    make_schedule,
    schedule_document,
    schedule_from_document,
    usable_mix,
)
from harness.stack.backends import plan_stack
from harness.stack.model import StackSpec

TARGET_S = 1.0


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and minimum seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def bare_draws(count: int, kinds: int, seed: int) -> int:
    """What a schedule draws per episode, with nothing around it."""
    rng = random.Random(seed)
    cumulative = list(range(1, kinds + 1))
    total = 0
    for _ in range(count):
        rng.choices(range(kinds), cum_weights=cumulative)
        rng.randrange(2)
        rng.uniform(0, 10)
        rng.uniform(30, 120)
        total += rng.getrandbits(31)
    return total


def episode_specs(count: int) -> list[EpisodeSpec]:
    return [
        EpisodeSpec("pause", "primary", {}, baseline_s=60.0, hold_s=5.0, seed=i)
        for i in range(count)
    ]


def fresh_import(module: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}" if module else "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="length of the day")
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(30.0, 120.0), metavar=("LO", "HI"), help="s"
    )
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--repeat", type=int, default=7, help="timings are medians of this many")
    args = parser.parse_args()

    spec = GamedaySpec(
        duration_s=args.hours * 3600,
        window=Window.parse("always"),
        gap_s=tuple(args.gap),
        seed=args.seed,
    )
    state = plan_stack(StackSpec()).state()
    make_schedule(spec, state)  # warm: imports, the host's one netem probe, caches

    mix_s, mix_min, (usable, left_out) = timed(lambda: usable_mix(spec.mix, state), args.repeat)
    day_s, day_min, schedule = timed(lambda: make_schedule(spec, state), args.repeat)
    episodes = len(schedule.episodes)
    first = json.dumps(schedule_document(schedule), sort_keys=True)
    second = json.dumps(schedule_document(make_schedule(spec, state)), sort_keys=True)
    other = json.dumps(
        schedule_document(make_schedule(replace(spec, seed=spec.seed + 1), state)),
        sort_keys=True,
    )

    specs_s, _, _ = timed(lambda: episode_specs(episodes), args.repeat)
    draws_s, _, _ = timed(lambda: bare_draws(episodes, len(usable), args.seed), args.repeat)
    write_s, _, text = timed(lambda: json.dumps(schedule_document(schedule)), args.repeat)
    read_s, _, back = timed(lambda: schedule_from_document(json.loads(text)), args.repeat)
    draw_s = max(day_s - mix_s, 0.0)

    counts = Counter(e.episode.fault for e in schedule.episodes)
    print(
        f"game day of {args.hours:g} h, gaps {args.gap[0]:g}-{args.gap[1]:g} s, seed {args.seed}, "
        f"default mix on the default stack:"
    )
    print(
        f"  {episodes} episodes, planned {schedule.planned_s / 3600:.3f} h; "
        f"{len(usable)} kinds usable, {len(left_out)} left out"
    )
    print("  drawn: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    print(f"median of {args.repeat} (min), ratio to the references:")
    print(
        f"  make_schedule         {day_s * 1000:8.2f} ms ({day_min * 1000:.2f})  "
        f"x{day_s / specs_s:6.2f} EpisodeSpecs  x{day_s / draws_s:6.2f} bare draws"
    )
    print(f"    of which usable_mix {mix_s * 1000:8.2f} ms ({mix_min * 1000:.2f})")
    print(
        f"    and the draws       {draw_s * 1000:8.2f} ms            "
        f"x{draw_s / specs_s:6.2f} EpisodeSpecs  x{draw_s / draws_s:6.2f} bare draws"
    )
    print(f"  {episodes} EpisodeSpecs      {specs_s * 1000:8.2f} ms")
    print(f"  {episodes} bare draws        {draws_s * 1000:8.2f} ms")
    print(
        f"  schedule.json: {len(text) / 1024:.0f} kB, written in {write_s * 1000:.2f} ms, "
        f"read back in {read_s * 1000:.2f} ms (equal: {back == schedule})"
    )
    print(
        f"  two generations, one seed: identical {first == second}; "
        f"the next seed differs {first != other}"
    )
    bare = fresh_import("", 3)
    cost = fresh_import("harness.gameday", 3)
    print(
        f"  fresh interpreter: python -c pass {bare * 1000:.0f} ms, import harness.gameday "
        f"{cost * 1000:.0f} ms (x{cost / bare:.1f})"
    )
    verdict = "PASS" if day_s < TARGET_S and first == second else "FAIL"
    print(
        f"  {verdict}: a {args.hours:g}-hour schedule in {day_s * 1000:.0f} ms "
        f"(target < {TARGET_S * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
