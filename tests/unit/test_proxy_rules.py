"""Fault proxy rules: what `parse_rule` accepts, fills in and refuses (naming the field)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.proxy.rules import KINDS, RPC_KINDS, TRANSPORT_KINDS, Rule, parse_rule

MINIMAL: dict[str, dict[str, Any]] = {
    "latency": {"latency": 100},
    "bandwidth": {"rate": 50},
    "slow_close": {"delay": 100},
    "timeout": {"timeout": 0},
    "reset_peer": {},
    "slicer": {"average_size": 64},
    "limit_data": {"bytes": 1024},
    "rpc_error": {"code": -32000},
    "rpc_delay": {"delay_ms": 50},
    "stale_head": {"blocks": 3},
    "null_result": {},
    "rate_limit": {"budget_per_s": 10},
    "drop": {},
    "malformed": {},
    "wrong_id": {},
}
REQUIRED = {
    "latency": "latency",
    "bandwidth": "rate",
    "slow_close": "delay",
    "timeout": "timeout",
    "slicer": "average_size",
    "limit_data": "bytes",
    "rpc_error": "code",
    "rpc_delay": "delay_ms",
    "stale_head": "blocks",
    "rate_limit": "budget_per_s",
}
# Parameters that must not be negative, with the kind they belong to.
NON_NEGATIVE = [
    ("latency", "latency"),
    ("latency", "jitter"),
    ("slow_close", "delay"),
    ("timeout", "timeout"),
    ("reset_peer", "timeout"),
    ("slicer", "size_variation"),
    ("slicer", "delay"),
    ("limit_data", "bytes"),
    ("rpc_delay", "delay_ms"),
    ("rpc_delay", "jitter_ms"),
    ("stale_head", "blocks"),
    ("rate_limit", "budget_per_s"),
]


def refused_field(doc: Any) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_rule(doc)
    return refused.value.field


def test_every_kind_is_covered_and_split_into_transport_and_rpc() -> None:
    assert set(MINIMAL) == KINDS
    assert TRANSPORT_KINDS.isdisjoint(RPC_KINDS)
    assert {
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
    } == TRANSPORT_KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_minimal_rule_of_every_kind_parses_with_defaults(kind: str) -> None:
    rule = parse_rule({"kind": kind, **MINIMAL[kind]})
    assert (rule.kind, rule.route, rule.probability, rule.methods, rule.stream) == (
        kind,
        None,
        1.0,
        "*",
        "downstream",
    )
    assert rule.is_transport == (kind in TRANSPORT_KINDS)


def test_defaults_are_filled_in_and_shown() -> None:
    rule = parse_rule({"kind": "rate_limit", "budget_per_s": 5, "route": "8545"})
    assert rule.route == 8545
    assert rule.to_doc() == {
        "route": 8545,
        "kind": "rate_limit",
        "probability": 1.0,
        "methods": "*",
        "stream": "downstream",
        "budget_per_s": 5,
        "style": "http429",
    }


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_a_missing_required_parameter_is_named(kind: str) -> None:
    doc = {"kind": kind, **MINIMAL[kind]}
    del doc[REQUIRED[kind]]
    assert refused_field(doc) == REQUIRED[kind]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"latency": 1}, "kind"),
        ({"kind": "teleport"}, "kind"),
        ({"kind": 7}, "kind"),
        ({"kind": "drop", "latency": 5}, "latency"),
        ({"kind": "drop", "id": "mine"}, "id"),
        ({"kind": "drop", "route": 0}, "route"),
        ({"kind": "drop", "route": 70000}, "route"),
        ({"kind": "drop", "route": True}, "route"),
        ({"kind": "drop", "methods": ""}, "methods"),
        ({"kind": "drop", "methods": 3}, "methods"),
        ({"kind": "latency", "latency": 1, "stream": "sideways"}, "stream"),
        ({"kind": "latency", "latency": "1"}, "latency"),
        ({"kind": "latency", "latency": True}, "latency"),
        ({"kind": "latency", "latency": math.inf}, "latency"),
        ({"kind": "bandwidth", "rate": 0}, "rate"),
        ({"kind": "slicer", "average_size": 0}, "average_size"),
        ({"kind": "slicer", "average_size": 1.5}, "average_size"),
        ({"kind": "rpc_error", "code": "-32000"}, "code"),
        ({"kind": "rpc_error", "code": 1, "message": 2}, "message"),
        ({"kind": "rate_limit", "budget_per_s": 1, "style": "polite"}, "style"),
        ({"kind": "drop", "probability": "0.5"}, "probability"),
        ([], "rule"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(doc: Any, field: str) -> None:
    assert refused_field(doc) == field


@given(st.floats(allow_nan=True) | st.integers())
def test_probability_is_accepted_exactly_within_0_and_1(probability: float) -> None:
    doc = {"kind": "drop", "probability": probability}
    if 0 <= probability <= 1:
        assert parse_rule(doc).probability == probability
    else:
        assert refused_field(doc) == "probability"


@given(
    st.sampled_from(NON_NEGATIVE),
    st.floats(min_value=-1e9, max_value=-1e-9) | st.integers(max_value=-1),
)
def test_negative_numbers_are_refused_naming_the_parameter(
    kind_and_param: tuple[str, str], value: float
) -> None:
    kind, param = kind_and_param
    assert refused_field({"kind": kind, **MINIMAL[kind], param: value}) == param


@given(
    kind=st.sampled_from(sorted(KINDS)),
    probability=st.floats(0, 1),
    route=st.integers(1, 65535) | st.just("*"),
    methods=st.sampled_from(["*", "eth_*", "eth_call", "debug_?race*"]),
    stream=st.sampled_from(["upstream", "downstream"]),
)
def test_a_rule_shown_by_the_api_parses_back_to_itself(
    kind: str, probability: float, route: int | str, methods: str, stream: str
) -> None:
    doc = {
        "kind": kind,
        "probability": probability,
        "route": route,
        "methods": methods,
        "stream": stream,
        **MINIMAL[kind],
    }
    rule = parse_rule(doc)
    assert parse_rule(rule.to_doc()) == rule


def test_method_globs_are_fnmatch_and_case_sensitive() -> None:
    rule = parse_rule({"kind": "drop", "methods": "eth_get*"})
    assert rule.matches_method("eth_getLogs")
    assert not rule.matches_method("eth_call")
    assert not rule.matches_method("ETH_getLogs")


def test_route_star_applies_everywhere_a_port_only_there() -> None:
    assert Rule("drop").applies_to(8545)
    assert parse_rule({"kind": "drop", "route": 8545}).applies_to(8545)
    assert not parse_rule({"kind": "drop", "route": 8545}).applies_to(8546)
