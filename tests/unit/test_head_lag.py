"""Head lag between nodes, and the lag clients see through the frontend."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.measure import FRONTEND, ProbeSample
from harness.measure.head_lag import LagPoint, frontend_lags, node_lags, per_window, worst

MS = 1_000_000
NODES = ["node-0", "node-1"]


def _all(lags: dict[str, list[LagPoint]]) -> list[LagPoint]:
    return [p for series in lags.values() for p in series]


def test_head_lag_between_nodes_is_the_largest_spread_in_one_window() -> None:
    samples = [
        ProbeSample("node-0", 0, 1.0, "ok", 100),
        ProbeSample("node-1", 10 * MS, 1.0, "ok", 98),
        ProbeSample("node-0", 300 * MS, 1.0, "ok", 101),
        ProbeSample("node-1", 310 * MS, 1.0, "ok", 95),  # restarted, behind
        ProbeSample("node-1", 320 * MS, 1.0, "timeout", None),
        ProbeSample(FRONTEND, 330 * MS, 1.0, "ok", 50),  # not a node
    ]
    assert worst(_all(node_lags(samples, NODES)), 0, 10**12) == 6


def test_head_lag_per_node_is_how_far_behind_the_highest_head_each_window() -> None:
    samples = [
        ProbeSample("node-0", 10 * MS, 1.0, "ok", 100),
        ProbeSample("node-1", 20 * MS, 1.0, "ok", 97),
        ProbeSample("node-2", 30 * MS, 1.0, "ok", 99),
        ProbeSample("node-1", 260 * MS, 1.0, "ok", 101),  # caught up, window 2
        ProbeSample("node-0", 270 * MS, 1.0, "ok", 101),
        ProbeSample("node-2", 510 * MS, 1.0, "ok", 102),  # alone in window 3: not compared
    ]
    lags = node_lags(samples, ["node-0", "node-1", "node-2"], window_ns=250 * MS)
    assert lags == {
        "node-0": [LagPoint(0, 0), LagPoint(250 * MS, 0)],
        "node-1": [LagPoint(0, 3), LagPoint(250 * MS, 0)],
        "node-2": [LagPoint(0, 1)],
    }


def test_head_lag_is_unknown_with_only_one_node_answering() -> None:
    lags = node_lags([ProbeSample("node-0", 0, 1.0, "ok", 5)], NODES)
    assert worst(_all(lags), 0, 10**12) is None


def test_a_stale_head_served_through_the_frontend_is_measured_against_the_best_node() -> None:
    samples = [
        ProbeSample("node-0", 0, 1000.0, "ok", 10),  # answered at 1 ms
        ProbeSample("node-1", 0, 1000.0, "ok", 25),
        ProbeSample(FRONTEND, 5 * MS, 1000.0, "ok", 10),  # the stalled primary answered
    ]
    assert frontend_lags(samples, NODES) == [LagPoint(5 * MS, 15)]


def test_a_head_no_node_had_answered_yet_when_the_client_asked_is_not_a_lag() -> None:
    # node-1 shows block 11 only 30 ms after the client was told 10.
    samples = [
        ProbeSample("node-0", 0, 10.0, "ok", 10),
        ProbeSample(FRONTEND, 5 * MS, 10.0, "ok", 10),
        ProbeSample("node-1", 30 * MS, 10.0, "ok", 11),
    ]
    assert [p.blocks for p in frontend_lags(samples, NODES)] == [0]


def test_the_loads_heads_count_as_what_clients_were_told() -> None:
    samples = [ProbeSample("node-1", 0, 10.0, "ok", 40)]
    assert frontend_lags(samples, NODES, load_heads=[(250 * MS, 33)]) == [LagPoint(250 * MS, 7)]


def test_failed_or_headless_frontend_probes_are_not_lag_observations() -> None:
    samples = [
        ProbeSample("node-0", 0, 10.0, "ok", 40),
        ProbeSample(FRONTEND, MS, 10.0, "http_503", None),
        ProbeSample(FRONTEND, 2 * MS, 10.0, "timeout", None),
    ]
    assert frontend_lags(samples, NODES) == []


@given(st.lists(st.tuples(st.integers(0, 10**10), st.integers(0, 50)), max_size=60))
def test_a_timeline_per_window_keeps_the_worst_lag_of_each_window(
    raw: list[tuple[int, int]],
) -> None:
    points = [LagPoint(t, b) for t, b in raw]
    timeline = per_window(points)
    assert [p.t_ns for p in timeline] == sorted(
        {p.t_ns // 250_000_000 * 250_000_000 for p in points}
    )
    for window in timeline:
        assert window.blocks == worst(points, window.t_ns, window.t_ns + 250_000_000)
