"""The recorder puts each sample in the phase it was due in and keeps exact-enough tails."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure.recorder import (
    HEAD_WINDOW_NS,
    OPEN_SECONDS,
    LoadPhase,
    LoadSummary,
    Recorder,
    Second,
)
from harness.stack.state import write_json_atomic

S = 1_000_000_000


@dataclass(frozen=True)
class Sample:
    intended_ns: int
    latency_us: float
    method: str
    outcome: str = "ok"


def phases(summary: LoadSummary, name: str) -> LoadPhase:
    found = summary.phase(name)
    assert found is not None, name
    return found


def test_samples_go_to_the_phase_of_their_intended_time_even_when_they_arrive_late() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.begin_phase("fault", 10 * S)
    # Due in the baseline, delivered only now that the fault phase has begun.
    recorder.add([Sample(9 * S, 100.0, "eth_call"), Sample(11 * S, 2_000_000.0, "eth_call")])
    summary = recorder.summary(end_ns=20 * S)
    assert phases(summary, "baseline").requests == 1
    assert phases(summary, "fault").latency.max_us == pytest.approx(2_000_000, rel=1e-3)


def test_percentiles_resolve_microseconds() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add([Sample(i, 100.0 + (i % 10), "eth_blockNumber") for i in range(1000)])
    baseline = phases(recorder.summary(S), "baseline")
    assert baseline.latency.p50_us == 104.0
    assert baseline.latency.p99_us == 109.0


def test_failures_are_counted_by_class_with_an_error_rate() -> None:
    recorder = Recorder()
    recorder.begin_phase("fault", 0)
    recorder.add(
        [Sample(1, 10.0, "eth_call")] * 6
        + [Sample(2, 5.0, "eth_call", "http_503")] * 3
        + [Sample(3, 5.0, "eth_getLogs", "rpc_header_not_found")]
    )
    fault = phases(recorder.summary(S), "fault")
    assert fault.errors == {"http_503": 3, "rpc_header_not_found": 1}
    assert fault.error_rate_pct == pytest.approx(40.0)
    assert fault.methods["eth_call"].failed == 3
    assert fault.throughput_rps == pytest.approx(10.0)


def test_samples_before_the_first_phase_are_counted_apart() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 5 * S)
    recorder.add([Sample(1 * S, 1.0, "x"), Sample(6 * S, 1.0, "x")])
    summary = recorder.summary(10 * S)
    assert summary.before_first_phase == 1
    assert phases(summary, "baseline").requests == 1


def test_a_phase_may_not_start_before_the_last_one() -> None:
    recorder = Recorder()
    recorder.begin_phase("fault", 10)
    with pytest.raises(ValueError, match="starts before"):
        recorder.begin_phase("baseline", 5)


def test_the_timeline_has_one_bucket_per_second() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add(
        [Sample(0, 1.0, "x"), Sample(S // 2, 3.0, "x", "timeout"), Sample(2 * S, 2.0, "x")]
    )
    assert recorder.summary(3 * S).timeline == (
        Second(0, ok=1, failed=1, max_us=3.0, p50_us=1.0, p99_us=3.0),
        Second(2, ok=1, failed=0, max_us=2.0, p50_us=2.0, p99_us=2.0),
    )


def test_safeguards_see_a_stall_in_the_second_its_answers_came_not_when_they_were_due() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    # Due in second 0, answered 3.5 s later (in second 3); and one quick call in second 1.
    recorder.add([Sample(S // 2, 3_000_000.0, "x"), Sample(S, 10.0, "x")])
    assert [(s.second, s.ok, s.max_us) for s in recorder.timeline()] == [
        (0, 1, 3_000_000.0),
        (1, 1, 10.0),
    ]
    assert [(s.second, s.ok, s.max_us) for s in recorder.answered_timeline()] == [
        (1, 1, 10.0),
        (3, 1, 3_000_000.0),
    ]


@given(st.lists(st.floats(1, 500_000_000), min_size=1, max_size=300))
def test_p99_is_within_a_tenth_of_a_percent_of_the_exact_nearest_rank(
    latencies: list[float],
) -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add([Sample(i, v, "x") for i, v in enumerate(latencies)])
    measured = phases(recorder.summary(S), "baseline").latency.p99_us
    exact = sorted(max(1, round(v)) for v in latencies)[max(0, -(-99 * len(latencies) // 100) - 1)]
    assert measured == pytest.approx(exact, rel=1e-3, abs=1)


def test_reports_are_strict_json_a_nan_or_infinity_is_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json_atomic(path, {"a": math.nan, "b": [1.5, math.inf], "c": {"d": -math.inf}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {
        "a": None,
        "b": [1.5, None],
        "c": {"d": None},
    }


@dataclass(frozen=True)
class HeadSample(Sample):
    head: int | None = None


def test_each_second_of_the_timeline_carries_its_exact_median_and_p99() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add([Sample(i * S // 1000, float(1 + i), "x") for i in range(1000)])
    (second,) = recorder.summary(S).timeline
    assert (second.p50_us, second.p99_us, second.max_us) == (500.0, 990.0, 1000.0)


def test_a_second_long_past_is_closed_so_memory_stays_bounded_over_a_long_run() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    for sec in range(100):
        recorder.add([Sample(sec * S + i, 10.0, "x") for i in range(50)])
    open_buckets = [b for b in recorder._seconds.values() if b.latencies is not None]
    assert len(open_buckets) <= OPEN_SECONDS + 1
    # A sample that comes for a closed second still counts, but not in its percentiles.
    recorder.add([Sample(0, 99_999.0, "x")])
    first = recorder.summary(100 * S).timeline[0]
    assert (first.ok, first.max_us, first.p99_us) == (51, 99_999.0, 10.0)


def test_the_stalest_head_answered_in_each_window_is_kept() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add(
        [
            HeadSample(10, 5.0, "eth_blockNumber", head=41),
            HeadSample(20, 5.0, "eth_blockNumber", head=40),
            HeadSample(30, 5.0, "eth_blockNumber", "timeout", head=None),
            HeadSample(HEAD_WINDOW_NS + 1, 5.0, "eth_blockNumber", head=42),
        ]
    )
    assert recorder.summary(S).heads == ((0, 40), (HEAD_WINDOW_NS, 42))


def test_a_phase_name_is_used_once() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    with pytest.raises(ValueError, match="already begun"):
        recorder.begin_phase("baseline", 5)


def test_the_recent_view_is_the_last_whole_seconds_of_answers() -> None:
    recorder = Recorder()
    recorder.begin_phase("baseline", 0)
    recorder.add([Sample(s * S, 1000.0 * (s + 1), "x", "ok" if s % 2 else "timeout")
                  for s in range(20)])  # fmt: skip
    recent = recorder.recent(now_ns=20 * S, seconds=10)
    # Seconds 10..19 (answered within them): latencies 11..20 ms, half failed.
    assert (recent.requests, recent.failed) == (10, 5)
    assert recent.error_rate_pct == 50.0
    assert (recent.p50_us, recent.p99_us) == (15_000.0, 20_000.0)
    assert Recorder().recent(now_ns=S).requests == 0


@settings(deadline=None)  # encoding a dozen 173 KiB histograms takes a while on a busy box
@given(st.lists(st.floats(1, 5_000_000), min_size=1, max_size=200), st.integers(2, 6))
def test_phases_long_over_are_kept_encoded_and_read_back_exactly(
    latencies: list[float], phases: int
) -> None:
    def fill(recorder: Recorder) -> None:
        for p in range(phases):
            recorder.begin_phase(f"p{p}", p * 100 * S)
            recorder.add([Sample(p * 100 * S + i, v, "eth_call") for i, v in enumerate(latencies)])
        recorder.add([Sample(phases * 100 * S - 1, 10.0, "eth_call")])  # the day goes on

    compacting, plain = Recorder(), Recorder()
    fill(compacting)
    fill(plain)
    plain._compacted_phases = 10**9  # never compact: the reference
    # Every phase but the last ended 100 s or more before the newest sample: encoded.
    assert all(
        c.compacted for (phase, _), c in compacting._cells.items() if phase != f"p{phases - 1}"
    )
    assert compacting.summary(phases * 100 * S) == plain.summary(phases * 100 * S)


def test_a_summary_mid_run_leaves_the_phases_long_over_encoded() -> None:
    recorder = Recorder()
    for p in range(3):
        recorder.begin_phase(f"p{p}", p * 100 * S)
        recorder.add([Sample(p * 100 * S + i, 10.0, "eth_call") for i in range(10)])
    recorder.add([Sample(299 * S, 10.0, "eth_call")])
    recorder.summary(300 * S)
    assert all(c.compacted for (phase, _), c in recorder._cells.items() if phase == "p0")
