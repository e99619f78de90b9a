"""Recovery figures and SLO verdicts, from synthetic probe timelines of known shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.measure import (
    FRONTEND,
    SLO,
    Phase,
    ProbeSample,
    Safeguard,
    ServerTransition,
    evaluate,
    load_spec_file,
    phase_stats,
)
from harness.measure.recorder import Second
from harness.measure.recovery import recovery

MS = 1_000_000  # ns


def timeline(
    target: str, start_ms: int, end_ms: int, bad: tuple[int, int] | None, step_ms: int = 20
) -> list[ProbeSample]:
    """A probe every ``step_ms``, failing while the intended time is in ``bad`` (ms)."""
    samples = []
    for t in range(start_ms, end_ms, step_ms):
        failing = bad is not None and bad[0] <= t < bad[1]
        samples.append(
            ProbeSample(
                target, t * MS, 500.0, "timeout" if failing else "ok", None if failing else 7
            )
        )
    return samples


def test_an_outage_is_measured_from_first_failure_to_first_success_after_the_last() -> None:
    samples = timeline(FRONTEND, 0, 5000, bad=(1000, 3000))
    found = recovery(samples, [], fault_ns=1000 * MS, faulted=[])
    # Ends when the first good probe's answer arrives (3 s intended + 0.5 ms latency).
    assert found.outage_s == pytest.approx(2.0005)
    assert found.outage_start_s == pytest.approx(0.0)
    assert found.mttr_service_s == pytest.approx(2.0005)
    assert found.failed_probes == 100


def test_no_failed_probe_means_no_outage() -> None:
    found = recovery(timeline(FRONTEND, 0, 3000, bad=None), [], fault_ns=1000 * MS, faulted=[])
    assert (found.outage_s, found.mttr_service_s, found.outage_start_s) == (0.0, 0.0, None)


def test_ttd_is_the_first_down_of_a_faulted_server_after_the_fault() -> None:
    transitions = [
        ServerTransition(500 * MS, "node-0", "DOWN", "L4CON"),  # before the fault: ignored
        ServerTransition(900 * MS, "node-0", "UP", "L7OK"),
        ServerTransition(5000 * MS, "node-1", "DOWN", "L4CON"),  # not faulted: ignored
        ServerTransition(5500 * MS, "node-0", "DOWN", "L4CON"),
    ]
    found = recovery([], transitions, fault_ns=1000 * MS, faulted=["node-0"])
    assert found.ttd_s == pytest.approx(4.5)


def test_component_mttr_waits_for_haproxy_to_put_a_down_server_back_in_rotation() -> None:
    node = timeline("node-0", 0, 10_000, bad=(1000, 3000))
    transitions = [
        ServerTransition(2000 * MS, "node-0", "DOWN", "L4CON"),
        ServerTransition(7000 * MS, "node-0", "UP", "L7OK"),
    ]
    found = recovery(node, transitions, fault_ns=1000 * MS, faulted=["node-0"])
    assert found.mttr_component_s == pytest.approx(6.0)  # answering at 3 s, UP at 7 s


def test_component_mttr_is_none_while_a_faulted_node_never_answers_again() -> None:
    node = timeline("node-0", 0, 4000, bad=(1000, 9999))
    assert recovery(node, [], 1000 * MS, ["node-0"]).mttr_component_s is None


@given(
    start=st.integers(0, 200),
    length=st.integers(1, 200),
    step=st.sampled_from([1, 5, 20, 50]),
)
def test_a_known_outage_is_measured_within_one_probe_interval(
    start: int, length: int, step: int
) -> None:
    fault_ms, bad = 1000, (1000 + start * 10, 1000 + start * 10 + length * 10)
    samples = timeline(FRONTEND, 0, 6000, bad=bad, step_ms=step)
    found = recovery(samples, [], fault_ns=fault_ms * MS, faulted=[])
    truth_s = (bad[1] - bad[0]) / 1000
    assert abs(found.outage_s - truth_s) <= step / 1000 + 1e-9


def test_phase_stats_count_failures_by_class_and_availability() -> None:
    samples = [
        *timeline(FRONTEND, 0, 1000, bad=(0, 100), step_ms=10),
        ProbeSample(FRONTEND, 500 * MS, 10.0, "http_503"),
    ]
    stats = phase_stats(samples, Phase("fault", 0, 1000 * MS), FRONTEND)
    assert stats.probes == 101
    assert stats.failure_classes == {"timeout": 10, "http_503": 1}
    assert stats.availability_pct == pytest.approx(100 * 90 / 101)


def test_a_phase_no_probe_fell_in_has_no_availability_rather_than_nan() -> None:
    samples = timeline(FRONTEND, 0, 1000, bad=(0, 0), step_ms=10)
    stats = phase_stats(samples, Phase("fault", 2000 * MS, 2001 * MS), FRONTEND)
    assert (stats.probes, stats.availability_pct) == (0, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("outage_s <= 5", SLO("outage_s", "<=", 5.0)),
        ("p99_ms[baseline]<=50", SLO("p99_ms", "<=", 50.0, "baseline")),
        ("availability_pct[fault] >= 99.5", SLO("availability_pct", ">=", 99.5, "fault")),
    ],
)
def test_slos_parse_as_people_write_them(text: str, expected: SLO) -> None:
    assert SLO.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("latency <= 5", "slo metric"),
        ("p99_ms <= 50", "slo p99_ms phase"),
        ("p99_ms[lunch] <= 50", "slo p99_ms phase"),
        ("outage_s[fault] <= 5", "slo outage_s phase"),
        ("outage_s < 5", "slo"),
        ("outage_s <= -1", "slo target"),
        ("availability_pct[fault] >= 101", "slo target"),
    ],
)
def test_a_malformed_slo_names_what_is_wrong(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        SLO.parse(text)
    assert error.value.field == field


def test_a_broken_slo_says_by_how_much_and_in_which_phase() -> None:
    (result,) = evaluate((SLO.parse("p99_ms[recovery] <= 50"),), {"p99_ms[recovery]": 73.0})
    assert not result.passed
    assert result.message == (
        "p99_ms[recovery] <= 50 broken in the recovery phase: measured 73, off by 23 (46% off)"
    )


def test_an_slo_on_something_never_measured_fails() -> None:
    (result,) = evaluate((SLO.parse("mttr_component_s <= 30"),), {"mttr_component_s": None})
    assert not result.passed and "never measured" in result.message


@given(value=st.floats(0, 1e6), target=st.floats(0, 1e6))
def test_an_slo_passes_exactly_when_its_comparison_holds(value: float, target: float) -> None:
    (le,) = evaluate((SLO("outage_s", "<=", target),), {"outage_s": value})
    (ge,) = evaluate((SLO("outage_s", ">=", target),), {"outage_s": value})
    assert le.passed == (value <= target) and ge.passed == (value >= target)


def test_a_method_slo_and_a_safeguard_parse() -> None:
    slo = SLO.parse("p99_ms[baseline:debug_traceCall] <= 500")
    assert (slo.phase, slo.method) == ("baseline", "debug_traceCall")
    assert slo.key == "p99_ms[baseline:debug_traceCall]"
    guard = Safeguard.parse("error_rate_pct > 90 for 5s")
    assert (guard.metric, guard.bound, guard.for_s) == ("error_rate_pct", 90.0, 5.0)


def test_a_safeguard_trips_only_after_enough_whole_bad_seconds() -> None:
    guard = Safeguard(50, 2)
    bad = [Second(s, ok=1, failed=9, max_us=1.0) for s in range(5)]
    assert guard.breached(bad)
    assert not guard.breached(bad[:2])  # the last second is still filling
    mixed = [*bad[:3], Second(3, ok=9, failed=1, max_us=1.0), bad[4]]
    assert not guard.breached(mixed)


def test_a_latency_safeguard_trips_when_every_second_had_a_request_over_the_bound() -> None:
    guard = Safeguard.parse("max_ms > 2000 for 3s")
    stalled = [Second(s, ok=5, failed=0, max_us=2_500_000.0) for s in range(5)]
    assert guard.breached(stalled)
    one_fast = list(stalled)
    one_fast[2] = Second(2, ok=5, failed=0, max_us=1_000.0)
    assert not guard.breached(one_fast)
    assert str(guard) == "max_ms > 2000 for 3s"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("p99_ms > 5 for 3s", "abort_if metric"),
        ("max_ms > 0 for 3s", "abort_if max_ms"),
        ("error_rate_pct > 100 for 3s", "abort_if error_rate_pct"),
        ("error_rate_pct > 50 for 0s", "abort_if for"),
        ("error_rate_pct >> 50", "abort_if"),
    ],
)
def test_a_bad_safeguard_names_what_is_wrong(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        Safeguard.parse(text)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("availability_pct[fault:eth_call] >= 99", "slo availability_pct method"),
        ("error_rate_pct[fault] <= 101", "slo target"),
        ("p99_ms[baseline:eth_nosuch] <= 5", "slo p99_ms method"),
        ("error_rate_pct[fault:eth_blocknumber] <= 1", "slo error_rate_pct method"),
    ],
)
def test_per_method_slos_only_for_latency_and_errors(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        SLO.parse(text)
    assert error.value.field == field


def test_a_spec_file_holds_slos_and_safeguards(tmp_path: Path) -> None:
    path = tmp_path / "slo.toml"
    path.write_text('slos = ["outage_s <= 5"]\nabort_if = ["error_rate_pct > 90 for 5s"]\n')
    slos, guards = load_spec_file(path)
    assert [str(s) for s in slos] == ["outage_s <= 5"]
    assert [str(g) for g in guards] == ["error_rate_pct > 90 for 5s"]
    path.write_text('slo = ["outage_s <= 5"]\n')
    with pytest.raises(ConfigError, match="only slos and abort_if"):
        load_spec_file(path)
