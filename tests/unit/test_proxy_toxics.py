"""Transport faults as delivery plans: `plan_delivery`, pure."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.proxy.rules import Rule, parse_rule
from harness.proxy.toxics import PLAIN, plan_delivery, roll


def toxic(doc: dict[str, Any], rule_id: str = "t1") -> Rule:
    return replace(parse_rule(doc), id=rule_id)


def test_no_rule_is_one_plain_write() -> None:
    assert plan_delivery(100, [], random.Random()) is PLAIN


def test_latency_with_jitter_stays_within_its_bounds() -> None:
    rule = toxic({"kind": "latency", "latency": 100, "jitter": 10})
    delays = [plan_delivery(10, [rule], random.Random(s)).delay_s for s in range(200)]
    assert all(0.09 <= d <= 0.11 for d in delays)
    assert len(set(delays)) > 100


@given(st.integers(1, 200_000), st.floats(0.5, 5000))
def test_bandwidth_spreads_the_bytes_over_size_over_rate_in_100ms_writes(
    size: int, rate_kb_s: float
) -> None:
    plan = plan_delivery(size, [toxic({"kind": "bandwidth", "rate": rate_kb_s})], random.Random())
    assert plan.pieces[-1][0] == size
    assert sum(pause for _, pause in plan.pieces) == pytest.approx(size / (rate_kb_s * 1000))
    ends = [0] + [end for end, _ in plan.pieces]
    # A tick's worth of bytes (100 ms at the rate), give or take float rounding.
    tick = max(int(rate_kb_s * 100 + 1e-6), 1)
    assert max(b - a for a, b in itertools.pairwise(ends)) <= tick


@given(st.integers(1, 5000), st.integers(1, 100), st.integers(0, 200), st.integers(0, 2**32))
def test_slicer_cuts_pieces_of_average_plus_or_minus_variation(
    size: int, average: int, variation: int, seed: int
) -> None:
    rule = toxic({"kind": "slicer", "average_size": average, "size_variation": variation})
    plan = plan_delivery(size, [rule], random.Random(seed))
    ends = [0] + [end for end, _ in plan.pieces]
    assert ends[-1] == size
    low, high = max(average - variation, 1), average + variation
    pieces = [b - a for a, b in itertools.pairwise(ends)]
    assert all(low <= p <= high for p in pieces[:-1])
    assert 1 <= pieces[-1] <= high


def test_slicer_waits_its_delay_in_microseconds_between_pieces() -> None:
    rule = toxic({"kind": "slicer", "average_size": 10, "delay": 500})
    plan = plan_delivery(30, [rule], random.Random())
    assert plan.pieces == ((10, 0.0), (20, 0.0005), (30, 0.0005))


def test_limit_data_counts_bytes_per_connection_and_cuts_at_the_limit() -> None:
    rule = toxic({"kind": "limit_data", "bytes": 250})
    sent: dict[str, int] = {}
    sticky: dict[str, bool] = {}
    first = plan_delivery(100, [rule], random.Random(), sent=sent, sticky=sticky)
    second = plan_delivery(100, [rule], random.Random(), sent=sent, sticky=sticky)
    third = plan_delivery(100, [rule], random.Random(), sent=sent, sticky=sticky)
    assert (first.limit, second.limit, third.limit) == (None, None, 50)
    assert third.fired == ("t1",)
    assert plan_delivery(100, [rule], random.Random(), sent=sent, sticky=sticky).limit == 0


def test_limit_data_rolls_its_toxicity_once_per_connection() -> None:
    rule = toxic({"kind": "limit_data", "bytes": 0, "probability": 0.5})
    for seed in range(20):
        sticky: dict[str, bool] = {}
        rng = random.Random(seed)
        outcomes = {plan_delivery(10, [rule], rng, sticky=sticky).limit for _ in range(10)}
        assert len(outcomes) == 1


def test_timeout_and_reset_peer_are_carried_in_the_plan() -> None:
    hold = toxic({"kind": "timeout", "timeout": 0}, "h")
    reset = toxic({"kind": "reset_peer", "timeout": 5}, "r")
    plan = plan_delivery(10, [hold, reset], random.Random())
    assert (plan.hold, plan.reset, plan.fired) == (hold, reset, ("h", "r"))


@given(st.integers(0, 2**32))
def test_toxicity_zero_never_fires(seed: int) -> None:
    rules = [
        toxic({"kind": "latency", "latency": 5, "probability": 0}),
        toxic({"kind": "timeout", "timeout": 5, "probability": 0}),
        toxic({"kind": "limit_data", "bytes": 0, "probability": 0}),
    ]
    assert plan_delivery(100, rules, random.Random(seed)).plain


def test_roll_keeps_the_rules_that_fire_and_limit_data_sticks_per_connection() -> None:
    always = toxic({"kind": "latency", "latency": 5}, "a")
    never = toxic({"kind": "latency", "latency": 5, "probability": 0}, "n")
    limit = toxic({"kind": "limit_data", "bytes": 10, "probability": 0.5}, "l")
    sticky: dict[str, bool] = {}
    rng = random.Random(3)
    first = roll([always, never, limit], rng, sticky)
    assert first[0] is always and never not in first
    assert all((limit in roll([limit], rng, sticky)) == sticky["l"] for _ in range(20))
