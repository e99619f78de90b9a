"""A game day's schedule: seeded and reproducible, drawn by weight within its ranges, filling
the day and no more, never wider than the blast radius allows; the mix a stack can run;
the document a killed day is replayed from; the one command that repeats an episode."""

from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.experiment.run import EXPECTED_RECOVERY_S
from harness.experiment.spec import EpisodeSpec
from harness.faults import FAULTS
from harness.faults.network import netem_available
from harness.gameday import (
    DEFAULT_CHOICES,
    FaultChoice,
    GamedaySpec,
    ScheduledEpisode,
    Window,
    make_schedule,
    schedule_document,
    schedule_from_document,
    usable_mix,
)
from harness.stack.backends import plan_stack
from harness.stack.model import StackSpec, StackState

ALWAYS = Window.parse("always")
HOLDLESS = ("kill", "terminate", "restart")  # kinds whose default hold is 0 s


def planned(**spec: Any) -> StackState:
    return plan_stack(StackSpec(name="plan", **spec)).state()


def day(**fields: Any) -> GamedaySpec:
    """A day in an always-open window, probes only, so that only what a test sets matters."""
    return GamedaySpec(**{"window": ALWAYS, "load": None, "abort_if": (), **fields})


def quick_day(mix: tuple[FaultChoice, ...], hours: float = 4, seed: int = 0) -> GamedaySpec:
    """Many short episodes: gaps of 1 s, no settling, so each is 1 s + the recovery."""
    return day(duration_s=hours * 3600, gap_s=(1, 1), settle_s=0, mix=mix, seed=seed)


# --- determinism -------------------------------------------------------------------------


def test_the_same_seed_and_spec_give_the_same_schedule() -> None:
    spec, state = GamedaySpec(seed=42), planned()
    assert make_schedule(spec, state) == make_schedule(spec, state)


def test_another_seed_gives_another_schedule() -> None:
    state = planned()
    first = make_schedule(GamedaySpec(seed=1), state)
    second = make_schedule(GamedaySpec(seed=2), state)
    assert [e.episode for e in first.episodes] != [e.episode for e in second.episodes]


SCRIPT = """
import json
from harness.gameday import GamedaySpec, make_schedule, schedule_document
from harness.stack.backends import plan_stack
from harness.stack.model import StackSpec
state = plan_stack(StackSpec(name="plan", fault_proxy=True)).state()
print(json.dumps(schedule_document(make_schedule(GamedaySpec(seed=5), state))))
"""


def test_a_schedule_is_the_same_in_other_processes_whatever_their_hash_seed() -> None:
    here = schedule_document(make_schedule(GamedaySpec(seed=5), planned(fault_proxy=True)))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            text=True,
        )
        for hash_seed in ("0", "4242")
    ]
    for run in runs:
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0
        assert json.loads(out) == here


# --- the draws ---------------------------------------------------------------------------


def test_episodes_follow_each_other_and_the_day_ends_when_no_more_fits() -> None:
    spec = GamedaySpec(seed=3)
    schedule = make_schedule(spec, planned())
    starts = [e.planned_start_s for e in schedule.episodes]
    ends = [e.planned_end_s for e in schedule.episodes]
    assert starts[0] == 0
    assert starts[1:] == pytest.approx(ends[:-1])
    assert schedule.planned_s <= spec.duration_s
    # not even the shortest episode of the mix would fit after the last
    shortest = spec.gap_s[0] + EXPECTED_RECOVERY_S + spec.settle_s
    assert spec.duration_s - schedule.planned_s < shortest
    assert 15 <= len(schedule.episodes) <= 30  # about 20 an hour, as the default gap says


def test_the_planned_length_is_gap_hold_a_typical_recovery_and_settle() -> None:
    episode = make_schedule(GamedaySpec(seed=9, settle_s=4), planned()).episodes[0]
    e = episode.episode
    assert episode.planned_end_s - episode.planned_start_s == pytest.approx(
        e.baseline_s + e.hold_s + EXPECTED_RECOVERY_S + 4
    )


def tenths(value: float) -> bool:
    return math.isclose(value * 10, round(value * 10), abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    gap=st.tuples(st.integers(1, 120), st.integers(0, 120)).map(lambda g: (g[0], g[0] + g[1])),
    hold=st.tuples(st.integers(0, 30), st.integers(0, 30)).map(lambda h: (h[0], h[0] + h[1])),
    duration_s=st.integers(600, 6 * 3600),
)
def test_every_draw_is_within_its_ranges_to_a_tenth_of_a_second(
    seed: int, gap: tuple[int, int], hold: tuple[int, int], duration_s: int
) -> None:
    mix = (
        FaultChoice("pause", targets=("primary", "backup", "one"), hold_s=hold),
        FaultChoice("kill", targets=("node-1",)),
    )
    spec = day(duration_s=duration_s, gap_s=gap, mix=mix, seed=seed)
    schedule = make_schedule(spec, planned())
    assert schedule.episodes
    by_kind = {c.kind: c for c in mix}
    for scheduled in schedule.episodes:
        e = scheduled.episode
        choice = by_kind[e.fault]
        assert e.target in choice.targets
        assert choice.hold_s[0] <= e.hold_s <= choice.hold_s[1] and tenths(e.hold_s)
        assert gap[0] <= e.baseline_s <= gap[1] and tenths(e.baseline_s)
        assert e.params == choice.params and e.settle_s == spec.settle_s
    assert schedule.planned_s <= duration_s


def test_each_episode_has_its_own_seed_drawn_from_the_days() -> None:
    schedule = make_schedule(GamedaySpec(seed=11), planned())
    seeds = [e.episode.seed for e in schedule.episodes]
    assert len(set(seeds)) == len(seeds)
    assert seeds != [
        e.episode.seed for e in make_schedule(GamedaySpec(seed=12), planned()).episodes
    ]


def test_a_kind_of_weight_3_is_drawn_about_three_times_as_often_as_one_of_weight_1() -> None:
    mix = (FaultChoice("kill", weight=3), FaultChoice("terminate", weight=1))
    schedule = make_schedule(quick_day(mix, hours=24), planned())
    counts = collections.Counter(e.episode.fault for e in schedule.episodes)
    assert sum(counts.values()) > 10_000
    assert counts["kill"] / counts["terminate"] == pytest.approx(3, rel=0.07)


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.floats(0.1, 10), min_size=2, max_size=3),
    seed=st.integers(0, 2**32),
)
def test_kinds_are_drawn_in_proportion_to_their_weights(weights: list[float], seed: int) -> None:
    mix = tuple(FaultChoice(kind, weight=w) for kind, w in zip(HOLDLESS, weights, strict=False))
    schedule = make_schedule(quick_day(mix, seed=seed), planned())
    counts = collections.Counter(e.episode.fault for e in schedule.episodes)
    total = sum(counts.values())
    for choice in mix:
        expected = choice.weight / sum(weights)
        assert counts[choice.kind] / total == pytest.approx(expected, abs=0.05)


# --- duration ----------------------------------------------------------------------------


def test_a_day_shorter_than_its_shortest_episode_is_refused_saying_the_minimum() -> None:
    with pytest.raises(ConfigError) as caught:
        GamedaySpec(duration_s=60)  # the shortest: a 60 s gap + a kill + 5 s + 2 s
    assert caught.value.field == "duration"
    assert "choose at least 67s" in caught.value.fix


def test_a_day_too_short_for_what_this_stack_can_run_is_refused_when_scheduled() -> None:
    mix = (FaultChoice("rpc_error"), FaultChoice("pause", hold_s=(5, 10)))
    spec = day(duration_s=10, gap_s=(1, 5), settle_s=0, mix=mix)  # rpc_error's 0 s hold fits
    with pytest.raises(ConfigError, match="choose at least 11s"):
        make_schedule(spec, planned())  # no fault proxy: only pause, 1 + 5 + 5 s at least
    assert make_schedule(spec, planned(fault_proxy=True)).episodes


@settings(max_examples=40, deadline=None)
@given(extra_s=st.integers(0, 400), seed=st.integers(0, 2**32))
def test_any_day_that_holds_the_shortest_episode_schedules_at_least_one(
    extra_s: int, seed: int
) -> None:
    mix = (FaultChoice("stall", hold_s=(5, 15)), FaultChoice("kill"))  # 67 s and 72 s at least
    spec = day(duration_s=67 + extra_s, mix=mix, seed=seed)
    schedule = make_schedule(spec, planned())
    assert schedule.episodes
    assert schedule.planned_s <= spec.duration_s


# --- blast radius ------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["all", "haproxy", "1", "0.75"])
def test_a_target_that_is_a_total_outage_or_a_majority_is_refused_at_spec_load(
    target: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        day(mix=(FaultChoice("kill", targets=("primary", target)),))
    assert caught.value.field == "mix kill target"
    assert caught.value.value == target
    assert "allow_total_outage" in caught.value.fix


def test_a_total_outage_runs_only_when_allowed() -> None:
    spec = day(mix=(FaultChoice("kill", targets=("all", "haproxy")),), allow_total_outage=True)
    targets = {e.episode.target for e in make_schedule(spec, planned()).episodes}
    assert targets == {"all", "haproxy"}


@pytest.mark.parametrize("target", ["primary", "backup", "one", "random", "minority", "0.5"])
def test_on_two_nodes_a_fault_hits_one_never_both(target: str) -> None:
    spec = day(mix=(FaultChoice("kill", targets=(target,)),))
    assert make_schedule(spec, planned(nodes=2)).episodes


def test_every_node_is_refused_even_when_the_limit_would_allow_as_many() -> None:
    spec = day(mix=(FaultChoice("kill", targets=("0.5",)),), max_nodes_at_once=2)
    with pytest.raises(ConfigError, match="last serving one"):
        make_schedule(spec, planned(nodes=1))


def test_the_backups_of_three_nodes_are_more_than_the_default_blast_radius() -> None:
    spec = day(mix=(FaultChoice("pause", targets=("backup",)),))
    with pytest.raises(ConfigError) as caught:
        make_schedule(spec, planned(nodes=3))
    assert "hits 2 of 3 nodes at once (node-1, node-2)" in caught.value.fix
    assert "at most 1 (max_nodes_at_once)" in caught.value.fix
    assert make_schedule(replace(spec, max_nodes_at_once=2), planned(nodes=3)).episodes


def test_half_of_three_nodes_rounds_up_to_more_than_the_default_blast_radius() -> None:
    spec = day(mix=(FaultChoice("kill", targets=("0.5",)),))  # ceil(1.5) = 2 of 3
    with pytest.raises(ConfigError, match="hits 2 of 3 nodes"):
        make_schedule(spec, planned(nodes=3))
    assert make_schedule(spec, planned(nodes=4)).episodes  # 2 of 4: half, allowed


def test_the_only_node_of_a_stack_is_never_taken_down_unless_allowed() -> None:
    spec = day(mix=(FaultChoice("kill", targets=("primary",)),))
    with pytest.raises(ConfigError, match="last serving one"):
        make_schedule(spec, planned(nodes=1))
    assert make_schedule(replace(spec, allow_total_outage=True), planned(nodes=1)).episodes


# --- the mix a stack can run -------------------------------------------------------------


def test_every_registered_kind_has_a_default_its_fault_accepts() -> None:
    assert sorted(c.kind for c in DEFAULT_CHOICES) == sorted(FAULTS)
    everything = planned(isolation="netns", fault_proxy=True, data_dir_size_mb=256)
    usable, left_out = usable_mix(DEFAULT_CHOICES, everything)  # a bad default would raise
    assert len(usable) + len(left_out) == len(DEFAULT_CHOICES)


def test_kinds_the_stack_was_not_started_for_are_left_out_saying_how_to_start_it() -> None:
    usable, left_out = usable_mix(DEFAULT_CHOICES, planned())
    reasons = dict(left_out)
    assert "--fault-proxy" in reasons["rpc_error"]
    assert "--isolation netns" in reasons["partition"]
    assert "--data-dir-size-mb" in reasons["disk"]
    assert {c.kind for c in usable} >= {"kill", "pause", "restart", "stop", "terminate"}
    assert not {c.kind for c in usable} & set(reasons)


def test_netem_kinds_are_left_out_with_the_kernels_reason_on_this_machine() -> None:
    netem, why = netem_available()
    usable, left_out = usable_mix(DEFAULT_CHOICES, planned(isolation="netns"))
    netem_only = {"corrupt", "duplicate", "reorder"}  # no fallback without sch_netem
    if netem:
        assert netem_only <= {c.kind for c in usable}
    else:
        reasons = dict(left_out)
        assert netem_only <= set(reasons)
        assert all(why in reasons[kind] for kind in netem_only)
        assert "sch_netem" in reasons["latency"]  # and no proxy to fall back on


def test_a_schedule_draws_only_usable_kinds_and_keeps_what_it_left_out() -> None:
    schedule = make_schedule(GamedaySpec(seed=1), planned())
    usable, left_out = usable_mix(DEFAULT_CHOICES, planned())
    assert {e.episode.fault for e in schedule.episodes} <= {c.kind for c in usable}
    assert schedule.left_out == tuple(left_out)


def test_a_mix_this_stack_cannot_run_at_all_is_refused_saying_why() -> None:
    spec = day(mix=(FaultChoice("rpc_error"), FaultChoice("partition")))
    with pytest.raises(ConfigError) as caught:
        make_schedule(spec, planned())
    assert caught.value.field == "mix"
    assert "rpc_error: " in caught.value.fix and "partition: " in caught.value.fix


@pytest.mark.parametrize("weight", [0, -1, math.nan, math.inf, True, "3"])
def test_a_weight_must_be_a_finite_number_above_zero(weight: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        FaultChoice("kill", weight=weight)
    assert caught.value.field == "mix kill weight"


@pytest.mark.parametrize("hold", [(5, 2), (-1, 2), (0, math.inf), (1,), (0, 4000)])
def test_a_hold_must_be_a_range_of_seconds(hold: Any) -> None:
    with pytest.raises(ConfigError, match="lo <= hi"):
        FaultChoice("pause", hold_s=hold)


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        FaultChoice("meteor")
    assert caught.value.field == "mix kind"
    assert "kill" in caught.value.fix


def test_an_unknown_parameter_is_refused_naming_the_kinds_parameters() -> None:
    with pytest.raises(ConfigError) as caught:
        FaultChoice("latency", params={"delay": 100})
    assert caught.value.value == "delay"
    assert "delay_ms" in caught.value.fix


def test_a_bad_parameter_value_is_refused_not_left_out() -> None:
    with pytest.raises(ConfigError) as caught:
        usable_mix((FaultChoice("cpu", params={"cores": 999}),), planned())
    assert caught.value.field == "mix cpu cores"


def test_a_hold_longer_than_the_fault_lasts_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_s=600s"):
        usable_mix((FaultChoice("cpu", hold_s=(10, 700)),), planned())


def test_a_target_the_stack_lacks_or_the_kind_cannot_hit_is_refused() -> None:
    with pytest.raises(ConfigError, match="node-0, node-1"):
        usable_mix((FaultChoice("kill", targets=("node-5",)),), planned())
    with pytest.raises(ConfigError, match="cpu cannot target haproxy"):
        usable_mix((FaultChoice("cpu", targets=("haproxy",)),), planned())
    with pytest.raises(ConfigError, match="target"):
        FaultChoice("kill", targets=("everything",))


# --- the document ------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**40))
def test_a_schedule_survives_its_json_document(seed: int) -> None:
    schedule = make_schedule(GamedaySpec(seed=seed), planned(fault_proxy=True))
    text = json.dumps(schedule_document(schedule))
    assert schedule_from_document(json.loads(text)) == schedule


def test_the_document_says_what_it_is_and_what_was_left_out() -> None:
    doc = schedule_document(make_schedule(GamedaySpec(seed=1), planned()))
    assert doc["schema"] == "harness.gameday.schedule/1"
    assert {
        "kind": "partition",
        "reason": dict(usable_mix(DEFAULT_CHOICES, planned())[1])["partition"],
    } in doc["left_out"]
    assert doc["episodes"][0]["planned_start_s"] == 0


def a_document() -> dict[str, Any]:
    return schedule_document(make_schedule(GamedaySpec(seed=1), planned()))


def broken(change: Any) -> Any:
    doc = a_document()
    change(doc)
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        {},
        [],
        "schedule",
        {"schema": "harness.result/1"},
        broken(lambda d: d.pop("episodes")),
        broken(lambda d: d["episodes"][0].pop("hold_s")),
        broken(lambda d: d["episodes"][0].update(hold_s="7s")),
        broken(lambda d: d["episodes"][0].update(seed=1.5)),
        broken(lambda d: d["episodes"][0].update(params=[])),
        broken(lambda d: d["episodes"][0].update(fault="meteor")),
        broken(lambda d: d["episodes"][0].update(hold_s=-1.0)),
        broken(lambda d: d["episodes"][0].update(index=3)),
        broken(lambda d: d.update(left_out=[{"kind": "disk"}])),
    ],
)
def test_a_document_that_is_not_a_schedule_is_refused(doc: Any) -> None:
    with pytest.raises(ConfigError):
        schedule_from_document(doc)


# --- one episode alone -------------------------------------------------------------------

EPISODE = ScheduledEpisode(
    3,
    412.5,
    EpisodeSpec(
        fault="rpc_error",
        target="backup",
        params={"message": "header not found", "probability": 0.2, "code": -32000},
        baseline_s=96.4,
        hold_s=7.3,
        settle_s=2.0,
        seed=1234,
    ),
)
