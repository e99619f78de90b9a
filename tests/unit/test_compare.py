"""Compare: which changes between two runs are regressions, under which tolerances, and
the ``--tolerance`` parser (examples, then properties over its space of inputs)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.measure.metrics import METRICS
from harness.report.compare import (
    DEFAULT_TOLERANCES,
    Change,
    Tolerance,
    compare,
    parse_tolerance,
    tolerances,
)
from harness.report.history import Run, RunRecord


def record(
    run_id: str,
    measured: dict[str, float | None],
    template: str = "t1",
    stack: str = "s1",
    name: str = "kill primary",
) -> RunRecord:
    run = Run(run_id, name, "2026-12-01T10:00:00Z", True, None, 10.0, stack, template, None)
    return RunRecord(run, measured, (), {})


def change(
    key: str, before: float | None, after: float | None, rules: tuple[str, ...] = ()
) -> Change:
    """The one change of ``key`` between two runs measuring only it."""
    found = compare(record("now", {key: after}), record("then", {key: before}), tolerances(rules))
    (only,) = found.changes
    return only


# -- what is a regression -----------------------------------------------------------------


def test_an_outage_from_1_to_3_s_is_a_regression() -> None:
    c = change("outage_s", 1.0, 3.0)
    assert c.regression
    assert c.status == "regressed"
    assert c.change == pytest.approx(2.0)
    assert c.change_pct == pytest.approx(200.0)


def test_an_outage_from_1_to_1_1_s_is_noise_not_a_regression() -> None:
    c = change("outage_s", 1.0, 1.1)
    assert not c.regression
    assert c.status == "worse"


def test_a_large_relative_change_under_the_absolute_floor_is_not_a_regression() -> None:
    assert not change("mttr_component_s", 0.1, 0.3).regression  # +200%, but only 0.2 s


def test_a_change_over_the_floor_but_under_the_percentage_is_not_a_regression() -> None:
    assert not change("mttr_service_s", 10.0, 11.9).regression  # +1.9 s, but 19%
    assert change("mttr_service_s", 10.0, 12.1).regression


def test_every_p99_key_is_gated_and_other_percentiles_are_only_shown() -> None:
    assert change("p99_ms[fault:eth_call]", 10.0, 20.0).regression
    assert change("p99_ms[recovery]", 10.0, 20.0).regression
    p50 = change("p50_ms[recovery]", 10.0, 100.0)
    assert not p50.regression and p50.status == "worse" and p50.tolerance is None


def test_a_p99_within_2_ms_is_not_a_regression_however_large_in_percent() -> None:
    assert not change("p99_ms[baseline]", 0.5, 2.4).regression


def test_an_improvement_is_never_a_regression() -> None:
    c = change("outage_s", 3.0, 1.0)
    assert not c.regression and c.status == "better"


def test_from_nothing_to_more_than_the_floor_is_a_regression() -> None:
    assert change("outage_s", 0.0, 0.5).regression
    assert not change("outage_s", 0.0, 0.2).regression
    assert change("outage_s", 0.0, 0.5).change_pct is None


def test_a_gated_metric_measured_before_but_not_now_is_a_regression_flagged_missing() -> None:
    c = change("mttr_component_s", 0.5, None)  # the component never came back
    assert c.regression and c.status == "missing"
    assert c.change is None


def test_a_gated_latency_of_a_phase_that_got_no_request_now_is_missing_not_regressed() -> None:
    c = change("p99_ms[fault]", 504.6, None)  # a kill's 4 ms fault phase, no request in it
    assert not c.regression and c.status == "missing"


def test_an_ungated_metric_measured_before_but_not_now_is_flagged_missing_only() -> None:
    c = change("ttd_s", 0.5, None)
    assert not c.regression and c.status == "missing"


def test_a_metric_measured_only_now_is_new_and_never_a_regression() -> None:
    c = change("outage_s", None, 5.0)
    assert not c.regression and c.status == "new"


def test_a_key_absent_now_counts_as_measured_before_but_not_now() -> None:
    found = compare(record("now", {}), record("then", {"outage_s": 1.0}))
    assert [(c.key, c.status) for c in found.changes] == [("outage_s", "missing")]
    assert found.regressed


def test_higher_is_better_metrics_get_worse_when_they_fall() -> None:
    c = change("availability_pct[recovery]", 99.0, 90.0)
    assert c.better == "higher" and c.status == "worse" and not c.regression
    gated = change("availability_pct[recovery]", 99.0, 90.0, ("availability_pct=1",))
    assert gated.regression
    assert not change("availability_pct[recovery]", 90.0, 99.0, ("availability_pct=1",)).regression


def test_keys_of_no_known_metric_are_left_out() -> None:
    found = compare(record("now", {"retired_s": 9.0}), record("then", {"retired_s": 1.0}))
    assert found.changes == ()


@given(
    st.floats(0, 1e4, allow_nan=False),
    st.floats(0, 1e4, allow_nan=False),
    st.floats(0, 500, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
)
def test_a_regression_is_always_worse_by_more_than_both_tolerances(
    before: float, after: float, pct: float, floor: float
) -> None:
    c = Change("outage_s", "s", "lower", before, after, Tolerance(pct, floor))
    if c.regression:
        assert after - before > floor
        assert before == 0 or (after - before) / before * 100 > pct
    elif after - before > floor and before > 0:
        assert (after - before) / before * 100 <= pct


# -- what the comparison says about the stack -------------------------------------------------


def test_the_comparison_says_when_the_haproxy_template_changed_but_the_stack_did_not() -> None:
    found = compare(
        record("now", {"outage_s": 3.0}, template="new"),
        record("then", {"outage_s": 1.0}, template="old"),
    )
    assert found.template_changed and not found.stack_changed
    assert found.regressed
    lines = found.lines()
    assert "stack: same; haproxy template: changed" in lines[1]
    assert lines[-1] == "REGRESSED: outage_s"
    assert any("REGRESSED  outage_s: 1 s -> 3 s (+2 s, +200.0%)" in line for line in lines)


def test_a_comparison_without_regression_says_so_and_hides_ungated_metrics() -> None:
    found = compare(
        record("now", {"outage_s": 1.1, "p50_ms[baseline]": 9.0}),
        record("then", {"outage_s": 1.0, "p50_ms[baseline]": 1.0}),
    )
    assert not found.regressed and not found.template_changed
    assert found.lines()[-1] == "no regression beyond tolerance"
    assert not any("p50_ms" in line for line in found.lines())
    assert any("p50_ms" in line for line in found.lines(every=True))


def test_the_comparison_as_json_is_strict_and_complete() -> None:
    found = compare(
        record("now", {"outage_s": 3.0, "ttd_s": None}),
        record("then", {"outage_s": 1.0, "ttd_s": None}),
    )
    out = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert out["regressed"] is True
    assert out["regressions"] == ["outage_s"]
    assert out["current"]["run_id"] == "now" and out["against"]["run_id"] == "then"
    by_key = {c["key"]: c for c in out["changes"]}
    assert by_key["outage_s"]["tolerance"] == {"relative_pct": 20.0, "absolute": 0.25}
    assert by_key["ttd_s"]["status"] == "unmeasured"


# -- --tolerance --------------------------------------------------------------------------


def test_a_relative_tolerance_replaces_only_the_percentage() -> None:
    rule = parse_tolerance("p99_ms=25%")
    assert rule.metrics == ("p99_ms",)
    assert tolerances(["p99_ms=25%"])["p99_ms"] == Tolerance(25.0, 2.0)


def test_an_absolute_tolerance_replaces_only_the_floor_in_the_metrics_unit() -> None:
    assert tolerances(["outage_s=0.5s"])["outage_s"] == Tolerance(20.0, 0.5)
    assert tolerances(["outage_s=500ms"])["outage_s"] == Tolerance(20.0, 0.5)
    assert tolerances(["p99_ms=0.005s"])["p99_ms"] == Tolerance(20.0, 5.0)
    assert tolerances(["p99_ms=5"])["p99_ms"] == Tolerance(20.0, 5.0)


def test_a_glob_sets_every_metric_it_names() -> None:
    rule = parse_tolerance("mttr_*=30%")
    assert rule.metrics == ("mttr_service_s", "mttr_component_s")
    got = tolerances(["mttr_*=30%"])
    assert got["mttr_service_s"].relative_pct == got["mttr_component_s"].relative_pct == 30.0
    assert got["outage_s"] == DEFAULT_TOLERANCES["outage_s"]


def test_both_parts_in_one_rule_and_the_later_rule_wins() -> None:
    assert tolerances(["p99_ms=25%,5ms"])["p99_ms"] == Tolerance(25.0, 5.0)
    assert tolerances(["p99_ms=25%", "p99_ms=40%"])["p99_ms"] == Tolerance(40.0, 2.0)


def test_a_tolerance_on_an_ungated_metric_gates_it() -> None:
    assert "max_head_lag_blocks" not in DEFAULT_TOLERANCES
    assert tolerances(["max_head_lag_blocks=2"])["max_head_lag_blocks"] == Tolerance(0.0, 2.0)


@pytest.mark.parametrize(
    "text",
    [
        "p99_ms",
        "p99_ms=",
        "=5%",
        "p99_ms=-5%",
        "p99_ms=abc",
        "p99_ms=5%,6%",
        "p99_ms=5ms,6ms",
        "p99_ms[fault]=5%",
        "p99_ms=5 minutes",
        "nosuch_s=5%",
    ],
)
def test_a_tolerance_that_does_not_parse_names_itself_and_the_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tolerance(text)
    assert caught.value.field == "tolerance"
    assert caught.value.value == text
    assert caught.value.exit_code == 2


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="names no metric; metrics: ttd_s, outage_s"):
        parse_tolerance("nosuch_s=5%")


def test_a_time_unit_on_a_metric_that_is_not_a_time_says_so() -> None:
    with pytest.raises(ConfigError, match="s is a time but max_head_lag_blocks is in blocks"):
        parse_tolerance("max_head_lag_blocks=1s")
    with pytest.raises(ConfigError, match="is a time but"):
        parse_tolerance("*=0.5s")


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_config_error_naming_it(text: str) -> None:
    try:
        rule = parse_tolerance(text)
    except ConfigError as exc:
        assert exc.value == text
    else:
        assert rule.metrics and (rule.relative_pct is not None or rule.absolute)


@given(
    st.sampled_from(sorted(METRICS)),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)
def test_every_metric_takes_any_non_negative_percentage(name: str, pct: float) -> None:
    rule = parse_tolerance(f"{name}={pct!r}%")
    assert rule.metrics == (name,)
    assert rule.relative_pct == pct
    assert rule.absolute == {}


@given(
    st.sampled_from([m for m in sorted(METRICS) if METRICS[m].unit in ("s", "ms")]),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from(["s", "ms", "us"]),
)
def test_a_time_floor_in_any_time_unit_is_converted_to_the_metrics_unit(
    name: str, amount: float, unit: str
) -> None:
    rule = parse_tolerance(f"{name} = {amount!r}{unit}")
    per_s = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
    expected = amount * per_s[unit] / per_s[METRICS[name].unit]
    assert math.isclose(rule.absolute[name], expected, rel_tol=1e-12, abs_tol=1e-300)
