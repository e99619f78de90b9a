"""Network fault parameters and the nft rulesets they become: pure, no namespace touched.

Validation happens on construction, before a stack is asked anything, so a stand-in
stack that refuses every call proves nothing was looked at, let alone applied.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.faults import make_fault, parameters
from harness.faults.network import (
    Bandwidth,
    Corrupt,
    Duplicate,
    Latency,
    Loss,
    Partition,
    Reorder,
    nft_ruleset,
    table_name,
)
from harness.faults.undo import run_undo
from harness.stack.model import StackState


class UntouchableStack:
    """A stack that must never be asked anything by a fault's constructor."""

    def state(self) -> StackState:
        raise AssertionError("validation must not look at the stack")


STACK = UntouchableStack()
ALL = (Latency, Loss, Corrupt, Duplicate, Reorder, Bandwidth, Partition)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.kind)
def test_every_network_fault_is_registered_and_its_defaults_are_valid(cls: Any) -> None:
    fault = cls(STACK, "primary")
    assert set(fault.params()) == set(parameters(cls.kind))
    assert cls.roles == ("primary", "backup")


@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (Latency, {"delay_ms": -1}, "delay_ms"),
        (Latency, {"delay_ms": 0}, "delay_ms"),
        (Latency, {"delay_ms": 60_001}, "delay_ms"),
        (Latency, {"delay_ms": math.nan}, "delay_ms"),
        (Latency, {"delay_ms": 10, "jitter_ms": 11}, "jitter_ms"),
        (Latency, {"jitter_ms": -1}, "jitter_ms"),
        (Latency, {"correlation_pct": 101, "jitter_ms": 5}, "correlation_pct"),
        (Latency, {"correlation_pct": 25}, "correlation_pct"),  # needs jitter
        (Loss, {"percent": 101}, "percent"),
        (Loss, {"percent": 0}, "percent"),
        (Loss, {"percent": -5}, "percent"),
        (Loss, {"percent": math.inf}, "percent"),
        (Loss, {"correlation_pct": -1}, "correlation_pct"),
        (Loss, {"direction": "sideways"}, "direction"),
        (Corrupt, {"percent": 0}, "percent"),
        (Corrupt, {"percent": 100.5}, "percent"),
        (Duplicate, {"percent": 101}, "percent"),
        (Duplicate, {"percent": math.nan}, "percent"),
        (Reorder, {"percent": 0}, "percent"),
        (Reorder, {"delay_ms": 0}, "delay_ms"),
        (Bandwidth, {"rate_kbit": 0}, "rate_kbit"),
        (Bandwidth, {"rate_kbit": 7}, "rate_kbit"),
        (Bandwidth, {"rate_kbit": 10_000_001}, "rate_kbit"),
        (Bandwidth, {"burst_kb": 1}, "burst_kb"),
        (Bandwidth, {"latency_ms": 0}, "latency_ms"),
        (Partition, {"direction": "up"}, "direction"),
    ],
)
def test_bad_parameter_is_a_config_error_naming_the_field(
    cls: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        cls(STACK, "primary", **params)
    assert error.value.field == field
    assert error.value.fix


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (Latency, {"delay_ms": 0.5, "jitter_ms": 0.5, "correlation_pct": 100}),
        (Latency, {"delay_ms": 60_000}),
        (Loss, {"percent": 100, "direction": "egress"}),
        (Loss, {"percent": 0.01, "direction": "ingress", "correlation_pct": 0}),
        (Corrupt, {"percent": 100}),
        (Duplicate, {"percent": 0.5}),
        (Reorder, {"percent": 50, "delay_ms": 1}),
        (Bandwidth, {"rate_kbit": 8, "burst_kb": 2, "latency_ms": 1}),
        (Bandwidth, {"rate_kbit": 10_000_000, "burst_kb": 65_536}),
        (Partition, {"direction": "ingress"}),
    ],
)
def test_parameters_at_the_edges_are_accepted(cls: Any, params: dict[str, Any]) -> None:
    assert cls(STACK, "primary", **params).params() == {**cls(STACK).params(), **params}


def test_zero_percent_loss_is_rejected_rather_than_a_silent_no_op() -> None:
    with pytest.raises(ConfigError, match="0 would inject nothing"):
        Loss(STACK, "primary", percent=0)


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("loss", {"percent": "101"}, "percent"),
        ("latency", {"delay_ms": "-1"}, "delay_ms"),
        ("bandwidth", {"rate_kbit": "0"}, "rate_kbit"),
        ("bandwidth", {"rate_kbit": "fast"}, "bandwidth.rate_kbit"),
        ("partition", {"percent": "50"}, "partition parameter"),
    ],
)
def test_string_input_from_the_cli_is_converted_then_validated(
    kind: str, params: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        make_fault(kind, STACK, "primary", **params)
    assert error.value.field == field


def test_netem_and_tbf_options_carry_units_the_kernel_expects() -> None:
    assert Latency(STACK, delay_ms=100, jitter_ms=10, correlation_pct=25).netem_options() == {
        "delay": 100_000,  # microseconds
        "jitter": 10_000,
        "delay_corr": 25,
    }
    assert Reorder(STACK, percent=30, delay_ms=2.5).netem_options() == {
        "delay": 2_500,
        "prob_reorder": 30,
    }
    assert Corrupt(STACK, percent=2).netem_options() == {"prob_corrupt": 2}
    assert Duplicate(STACK, percent=3).netem_options() == {"duplicate": 3}
    assert Bandwidth(STACK, rate_kbit=800, burst_kb=16, latency_ms=20).tbf_options() == {
        "rate": 100_000,  # bytes per second
        "burst": 16_384,  # bytes
        "latency": 20_000,  # microseconds
    }


def test_fixed_mechanisms_are_known_before_the_fault_runs() -> None:
    assert Partition(STACK).mechanism == "nftables"
    assert Bandwidth(STACK).mechanism == "tbf"
    assert Latency(STACK).mechanism == "netem"


# -- the nft ruleset ------------------------------------------------------------------


def test_partition_ruleset_drops_everything_on_the_link_both_ways() -> None:
    assert nft_ruleset("harness_partition_1a2b3c4d", "eth0", "both") == (
        "table inet harness_partition_1a2b3c4d {\n"
        "\tchain inbound {\n"
        "\t\ttype filter hook input priority -300; policy accept;\n"
        '\t\tiifname "eth0" drop\n'
        "\t}\n"
        "\tchain outbound {\n"
        "\t\ttype filter hook output priority -300; policy accept;\n"
        '\t\toifname "eth0" drop\n'
        "\t}\n"
        "}\n"
    )


def test_loss_ruleset_drops_a_random_share_in_basis_points_one_way() -> None:
    ruleset = nft_ruleset("harness_loss_00ff", "eth0", "ingress", 25)
    assert 'iifname "eth0" numgen random mod 10000 < 2500 drop' in ruleset
    assert "hook output" not in ruleset
    egress = nft_ruleset("harness_loss_00ff", "eth0", "egress", 0.01)
    assert 'oifname "eth0" numgen random mod 10000 < 1 drop' in egress
    assert "hook input" not in egress


def test_full_loss_is_a_plain_drop_because_numgen_stops_at_9999() -> None:
    ruleset = nft_ruleset("harness_loss_00ff", "eth0", "both", 100)
    assert "numgen" not in ruleset
    assert ruleset.count(" drop\n") == 2


def test_the_ruleset_never_matches_loopback() -> None:
    assert '"lo"' not in nft_ruleset("harness_x", "eth0", "both", 50)


@pytest.mark.parametrize(
    ("table", "ifname", "direction", "percent", "field"),
    [
        ("harness_x", 'eth0" accept; #', "both", None, "ifname"),
        ("harness_x", "a-name-longer-than-15", "both", None, "ifname"),
        ("filter", "eth0", "both", None, "table"),
        ("harness_X; flush ruleset", "eth0", "both", None, "table"),
        ("harness_x", "eth0", "around", None, "direction"),
        ("harness_x", "eth0", "both", 0.001, "percent"),
        ("harness_x", "eth0", "both", 100.01, "percent"),
    ],
)
def test_ruleset_refuses_anything_it_could_not_quote_safely(
    table: str, ifname: str, direction: str, percent: float | None, field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        nft_ruleset(table, ifname, direction, percent)
    assert error.value.field == field


RULE = re.compile(r'^\t\t[io]ifname "eth0" (numgen random mod 10000 < (\d{1,4}) )?drop$')


@given(
    percent=st.floats(min_value=0.01, max_value=100, allow_nan=False),
    direction=st.sampled_from(["both", "ingress", "egress"]),
)
def test_any_valid_share_becomes_one_well_formed_rule_per_direction(
    percent: float, direction: str
) -> None:
    lines = nft_ruleset("harness_loss_ab12", "eth0", direction, percent).splitlines()
    rules = [line for line in lines if "ifname" in line]
    assert len(rules) == (2 if direction == "both" else 1)
    for rule in rules:
        match = RULE.match(rule)
        assert match, rule
        if match.group(2) is not None:
            assert int(match.group(2)) == round(percent * 100) < 10_000
        else:
            assert round(percent * 100) == 10_000
    assert lines.count("}") == 1 and lines[0].startswith("table inet harness_loss_ab12 {")


@given(st.text(min_size=1, max_size=40))
def test_table_names_are_always_safe_nft_identifiers(fault_id: str) -> None:
    name = table_name(fault_id)
    assert re.fullmatch(r"harness_[a-z0-9_]{1,48}", name)


def test_table_name_keeps_the_fault_id_readable() -> None:
    assert table_name("partition-1a2b3c4d") == "harness_partition_1a2b3c4d"


# -- undo operations guard what they touch ----------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        {"op": "nft_delete_table", "netns": "prod", "family": "inet", "table": "harness_x"},
        {"op": "nft_delete_table", "netns": "hx-s-0", "family": "inet", "table": "filter"},
        {"op": "nft_delete_table", "netns": "hx-s-0", "family": "bridge", "table": "harness_x"},
        {"op": "tc_delete_qdisc", "netns": "/proc/1/ns/net", "ifname": "eth0", "kind": "tbf",
         "handle": 0x48580000},
        {"op": "tc_delete_qdisc", "netns": "hx-s-0", "ifname": "eth0; reboot", "kind": "tbf",
         "handle": 0x48580000},
    ],
)  # fmt: skip
def test_undo_refuses_namespaces_and_objects_the_harness_did_not_make(op: dict[str, Any]) -> None:
    with pytest.raises(HarnessError, match="refusing"):
        run_undo(op)


def test_undo_of_a_table_in_a_namespace_that_is_gone_is_a_no_op() -> None:
    op = {"op": "nft_delete_table", "netns": "hx-gone-0", "family": "inet", "table": "harness_x"}
    assert run_undo(op) is None
