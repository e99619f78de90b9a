"""A game day's schedule: the seeded sequence of episodes a spec and a planned stack give.

    schedule = make_schedule(spec, plan_stack(stack_spec).state())

The same spec and seed give the same schedule, in any process (one `random.Random`, drawn
in a fixed order over sequences, never over a set or a dict's hash order). The runner writes
`schedule_document` to ``<run dir>/schedule.json`` before the first episode, so that a day,
even one killed half-way, can be run again (`schedule_from_document`); each episode's own
command (`harness.experiment.command.episode_command`) shrinks a failure to one run.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.experiment.run import EXPECTED_RECOVERY_S
from harness.experiment.spec import EpisodeSpec
from harness.faults.registry import fault_class
from harness.gameday.mix import FaultChoice, check_blast_radius, usable_mix
from harness.stack.model import StackState

if TYPE_CHECKING:
    from harness.gameday.spec import GamedaySpec

SCHEMA = "harness.gameday.schedule/1"
# Seeds of episodes fit every consumer: `harness run --seed`, random.Random, numpy.
_EPISODE_SEED_BITS = 31


@dataclass(frozen=True)
class ScheduledEpisode:
    """One episode of the day, and when it is planned to start (seconds after the first
    episode's start). Its ``baseline_s`` is the gap before its fault."""

    index: int
    planned_start_s: float
    episode: EpisodeSpec

    @property
    def planned_end_s(self) -> float:
        """Its planned start plus its phases and a typical recovery (`EXPECTED_RECOVERY_S`,
        the runner's own estimate when it checks that an episode fits before a deadline)."""
        return self.planned_start_s + planned_length_s(self.episode)


@dataclass(frozen=True)
class Schedule:
    """The day's episodes in order, the seed that drew them, the duration they fill, and
    the kinds of the mix left out with why (``(kind, reason)``)."""

    episodes: tuple[ScheduledEpisode, ...]
    seed: int
    duration_s: float
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def planned_s(self) -> float:
        """When the last episode is planned to end."""
        return self.episodes[-1].planned_end_s if self.episodes else 0.0


def planned_length_s(episode: EpisodeSpec) -> float:
    """What an episode is planned to take: gap (baseline), hold, a typical recovery, settle.
    The real one takes longer when recovery is slow or the steady state is late; the runner
    starts no episode that would end past the day's end."""
    return episode.baseline_s + episode.hold_s + EXPECTED_RECOVERY_S + episode.settle_s


def shortest_episode_s(spec: GamedaySpec, choices: Sequence[FaultChoice]) -> float:
    """The shortest episode ``choices`` can give: the shortest gap, the kind's shortest hold,
    a typical recovery and the settle time."""
    overhead = spec.gap_s[0] + EXPECTED_RECOVERY_S + spec.settle_s
    return overhead + min(c.hold_s[0] for c in choices)


def check_duration(spec: GamedaySpec, choices: Sequence[FaultChoice]) -> None:
    """`ConfigError` if not even the shortest episode of ``choices`` fits in the day."""
    shortest = shortest_episode_s(spec, choices)
    if spec.duration_s < shortest:
        hold = min(c.hold_s[0] for c in choices)
        raise ConfigError(
            "duration",
            f"{spec.duration_s:g}s",
            f"shorter than the shortest episode of this mix: {shortest:g}s (a gap of "
            f"{spec.gap_s[0]:g}s, a hold of {hold:g}s, {EXPECTED_RECOVERY_S:g}s of recovery "
            f"and {spec.settle_s:g}s settling); choose at least {math.ceil(shortest)}s",
        )


def make_schedule(spec: GamedaySpec, state: StackState) -> Schedule:
    """The day ``spec`` describes on a stack in ``state`` (a planned one: nothing starts).

    Each episode draws, in this order: its fault by weight among the usable choices, its
    target among the choice's, its hold uniformly in the choice's range and its gap
    uniformly in ``spec.gap_s`` (both to 0.1 s), and its own seed. Episodes follow each
    other until the day is full: the time left bounds each draw, a choice whose shortest
    episode no longer fits is passed over for those that do (by weight), and the day ends
    when none does. `ConfigError` if the mix refuses this stack (a target too wide, none
    usable) or the day cannot hold one episode."""
    check_blast_radius(spec.mix, state, spec.max_nodes_at_once, spec.allow_total_outage)
    usable, left_out = usable_mix(spec.mix, state)
    if not usable:
        reasons = "; ".join(f"{kind}: {why}" for kind, why in left_out)
        raise ConfigError(
            "mix",
            ", ".join(kind for kind, _ in left_out),
            f"no fault of the mix can run on this stack: {reasons}",
        )
    check_duration(spec, usable)
    rng = random.Random(spec.seed)
    cumulative = list(itertools.accumulate(c.weight for c in usable))
    total = cumulative[-1]
    fixed_s = EXPECTED_RECOVERY_S + spec.settle_s
    gap_lo, gap_hi = spec.gap_s
    shortest = [gap_lo + c.hold_s[0] + fixed_s for c in usable]
    longest_shortest = max(shortest)
    episodes: list[ScheduledEpisode] = []
    start_s = 0.0
    while True:
        left_s = spec.duration_s - start_s
        if left_s >= longest_shortest:
            choice = usable[bisect.bisect_right(cumulative, rng.random() * total)]
        else:  # the day's end: only what still fits
            fitting = [c for c, s in zip(usable, shortest, strict=True) if s <= left_s]
            if not fitting:
                break
            choice = rng.choices(fitting, weights=[c.weight for c in fitting])[0]
        target = choice.targets[rng.randrange(len(choice.targets))]
        # Each range ends where the day would: the choice fits, so each is not empty.
        hold_lo = choice.hold_s[0]
        hold_hi = min(choice.hold_s[1], left_s - gap_lo - fixed_s)
        hold_s = _tenth(rng.uniform(hold_lo, hold_hi), hold_lo, hold_hi)
        last_gap_s = min(gap_hi, left_s - hold_s - fixed_s)
        gap_s = _tenth(rng.uniform(gap_lo, last_gap_s), gap_lo, last_gap_s)
        episode = EpisodeSpec(
            fault=choice.kind,
            target=target,
            params=dict(choice.params),
            baseline_s=gap_s,
            hold_s=hold_s,
            recovery_timeout_s=spec.recovery_timeout_s,
            settle_s=spec.settle_s,
            seed=rng.getrandbits(_EPISODE_SEED_BITS),
        )
        episodes.append(ScheduledEpisode(len(episodes), start_s, episode))
        # Milliseconds: sums of tenths drift in binary floating point.
        start_s = round(start_s + gap_s + hold_s + fixed_s, 3)
    return Schedule(tuple(episodes), spec.seed, spec.duration_s, tuple(left_out))


def _tenth(value: float, low: float, high: float) -> float:
    """``value`` (in [low, high]) to 0.1 s, still in [low, high]: rounding never lifts it
    past the range or what is left of the day."""
    rounded = round(value, 1)
    if rounded > high:
        rounded = math.floor(high * 10) / 10
    return max(rounded, low)


# --- the document: schedule.json ---------------------------------------------------------

_EPISODE_KEYS = (
    "index",
    "planned_start_s",
    "fault",
    "target",
    "params",
    "baseline_s",
    "hold_s",
    "recovery_timeout_s",
    "settle_s",
    "seed",
    "name",
)


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    """``schedule`` as plain JSON data (`schedule_from_document` reads it back, equal)."""
    return {
        "schema": SCHEMA,
        "seed": schedule.seed,
        "duration_s": schedule.duration_s,
        "planned_s": schedule.planned_s,
        "left_out": [{"kind": kind, "reason": why} for kind, why in schedule.left_out],
        "episodes": [
            {
                "index": s.index,
                "planned_start_s": s.planned_start_s,
                "fault": s.episode.fault,
                "target": s.episode.target,
                "params": dict(s.episode.params),
                "baseline_s": s.episode.baseline_s,
                "hold_s": s.episode.hold_s,
                "recovery_timeout_s": s.episode.recovery_timeout_s,
                "settle_s": s.episode.settle_s,
                "seed": s.episode.seed,
                "name": s.episode.name,
            }
            for s in schedule.episodes
        ],
    }


def schedule_from_document(doc: object) -> Schedule:
    """The schedule a `schedule_document` holds; `ConfigError` for anything else."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(
            "schedule",
            found,
            f"not a game day's schedule (schema {SCHEMA}): give the schedule.json a game "
            "day wrote in its run directory",
        )
    try:
        left_out = tuple((str(x["kind"]), str(x["reason"])) for x in doc["left_out"])
        episodes = tuple(_episode_from(x) for x in doc["episodes"])
        schedule = Schedule(
            episodes, _int(doc["seed"], "seed"), _number(doc["duration_s"]), left_out
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "schedule",
            _what(exc),
            "a malformed game-day schedule: give the schedule.json a game day wrote, unedited",
        ) from None
    if [s.index for s in episodes] != list(range(len(episodes))):
        raise ConfigError("schedule episodes", "index", "episodes must be numbered 0, 1, 2, ...")
    return schedule


def _episode_from(doc: Any) -> ScheduledEpisode:
    if not isinstance(doc, dict):
        raise TypeError("episode")
    missing = [k for k in _EPISODE_KEYS if k not in doc]
    if missing:
        raise KeyError(missing[0])
    if not isinstance(doc["params"], dict) or not isinstance(doc["fault"], str):
        raise TypeError("params")
    fault_class(doc["fault"])  # an unknown kind is refused here, naming the known ones
    episode = EpisodeSpec(
        fault=doc["fault"],
        target=str(doc["target"]),
        params=dict(doc["params"]),
        baseline_s=_number(doc["baseline_s"]),
        hold_s=_number(doc["hold_s"]),
        recovery_timeout_s=_number(doc["recovery_timeout_s"]),
        settle_s=_number(doc["settle_s"]),
        seed=_int(doc["seed"], "seed"),
        name=str(doc["name"]),
    )
    return ScheduledEpisode(_int(doc["index"], "index"), _number(doc["planned_start_s"]), episode)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("number")
    return float(value)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(name)
    return value


def _what(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc.args[0] if exc.args else ''}"
