"""A latency SLO the machine itself broke is inconclusive, not a verdict on the stack."""

from __future__ import annotations

from harness.measure import SLO
from harness.measure.host import HostStall, longest_stall_ms
from harness.measure.slo import evaluate

MS = 1_000_000


def _judged(slo: str, measured: dict[str, float | None]):
    (result,) = evaluate((SLO.parse(slo),), measured)
    return result


def test_a_host_stall_as_long_as_the_excess_makes_a_broken_p99_inconclusive() -> None:
    result = _judged(
        "p99_ms[baseline] <= 50", {"p99_ms[baseline]": 124.6, "host_stall_ms[baseline]": 140}
    )
    assert not result.passed
    assert result.inconclusive is not None
    assert "stalled 140 ms in the baseline phase" in result.inconclusive
    assert "inconclusive" in result.message


def test_a_stall_shorter_than_the_excess_does_not_explain_the_breach() -> None:
    result = _judged(
        "p99_ms[baseline] <= 50", {"p99_ms[baseline]": 300.0, "host_stall_ms[baseline]": 140}
    )
    assert not result.passed and result.inconclusive is None


def test_a_stall_in_another_phase_explains_nothing() -> None:
    measured = {"p99_ms[fault]": 124.6, "host_stall_ms[baseline]": 500, "host_stall_ms[fault]": 0.0}
    assert _judged("p99_ms[fault] <= 50", measured).inconclusive is None


def test_a_held_slo_and_a_non_latency_slo_are_never_inconclusive() -> None:
    held = _judged(
        "p99_ms[baseline] <= 50", {"p99_ms[baseline]": 4.0, "host_stall_ms[baseline]": 900}
    )
    assert held.passed and held.inconclusive is None
    availability = _judged(
        "availability_pct[baseline] >= 99.9",
        {"availability_pct[baseline]": 90.0, "host_stall_ms[baseline]": 900},
    )
    assert not availability.passed and availability.inconclusive is None


def test_a_per_method_latency_slo_is_judged_against_its_phase_stall() -> None:
    measured = {"p99_ms[baseline:eth_call]": 90.0, "host_stall_ms[baseline]": 60}
    assert _judged("p99_ms[baseline:eth_call] <= 50", measured).inconclusive is not None


def test_the_longest_stall_counts_only_stalls_overlapping_the_window() -> None:
    stalls = (
        HostStall(0 * MS, 30 * MS, 0.0),  # ends before the window
        HostStall(90 * MS, 130 * MS, 10.0),  # straddles its start: 40 ms
        HostStall(150 * MS, 175 * MS, 0.0),  # inside: 25 ms
        HostStall(200 * MS, 400 * MS, 0.0),  # starts at its end
    )
    assert longest_stall_ms(stalls, 100 * MS, 200 * MS) == 40.0
    assert longest_stall_ms(stalls, 500 * MS, 600 * MS) == 0.0
