"""Head lag: how many blocks behind the chain a node, or the service, was.

Two views. Between nodes (``node_lags``): each node's head against the highest head any node
showed in the same window of probes; a balancer cannot change it, but it tells which node
fell behind. Through the frontend (``frontend_lags``): the head a client was *told* (a
frontend probe's answer, or the load's eth_blockNumber answers) against the best head any
node had already answered before the client asked. That is what a searcher suffers when a
stale node keeps serving, and what a lag-aware balancer policy exists to bound.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from harness.measure.samples import FRONTEND, ProbeSample

WINDOW_NS = 250_000_000


@dataclass(frozen=True)
class LagPoint:
    """At ``t_ns`` a client (or a node) was ``blocks`` behind the best head then known."""

    t_ns: int
    blocks: int


class BestHead:
    """The highest head any node had answered by a given time: a step function."""

    def __init__(self, samples: Sequence[ProbeSample], nodes: Sequence[str]) -> None:
        wanted = set(nodes)
        answers = sorted(
            (s.intended_ns + int(s.latency_us * 1000), s.head)
            for s in samples
            if s.target in wanted and s.head is not None and s.outcome == "ok"
        )
        self._times: list[int] = []
        self._best: list[int] = []
        best = -1
        for t_ns, head in answers:
            assert head is not None
            if head > best:
                best = head
                self._times.append(t_ns)
                self._best.append(best)

    def at(self, t_ns: int) -> int | None:
        """The best head answered at or before ``t_ns``; None before any answer."""
        i = bisect.bisect_right(self._times, t_ns)
        return self._best[i - 1] if i else None


def frontend_lags(
    samples: Sequence[ProbeSample],
    nodes: Sequence[str],
    load_heads: Sequence[tuple[int, int]] = (),
) -> list[LagPoint]:
    """Every observation of the head through the frontend, as blocks behind the best node.

    ``load_heads`` are (window start ns, lowest head answered in the window) from the load;
    each is compared with the best head known at the window's start, which can only make
    the lag smaller than the truth, never invent one."""
    best = BestHead(samples, nodes)
    points: list[LagPoint] = []
    observed = [
        (s.intended_ns, s.head)
        for s in samples
        if s.target == FRONTEND and s.head is not None and s.outcome == "ok"
    ]
    for t_ns, head in [*observed, *load_heads]:
        assert head is not None
        top = best.at(t_ns)
        if top is not None:
            points.append(LagPoint(t_ns, max(0, top - head)))
    points.sort(key=lambda p: p.t_ns)
    return points


def node_lags(
    samples: Sequence[ProbeSample], nodes: Sequence[str], window_ns: int = WINDOW_NS
) -> dict[str, list[LagPoint]]:
    """Per node, per window of probes: how far its head was behind the highest head any
    node showed in that window. Only windows in which at least two nodes answered count (a
    node that did not answer is not compared)."""
    wanted = set(nodes)
    windows: dict[int, dict[str, int]] = {}
    for s in samples:
        if s.target in wanted and s.head is not None:
            heads = windows.setdefault(s.intended_ns // window_ns, {})
            heads[s.target] = max(heads.get(s.target, s.head), s.head)
    lags: dict[str, list[LagPoint]] = {name: [] for name in nodes}
    for window in sorted(windows):
        heads = windows[window]
        if len(heads) < 2:
            continue
        top = max(heads.values())
        for name, head in heads.items():
            lags[name].append(LagPoint(window * window_ns, top - head))
    return lags


def worst(points: Sequence[LagPoint], start_ns: int, end_ns: int) -> int | None:
    """The largest lag in [start_ns, end_ns); None if nothing was observed there."""
    inside = [p.blocks for p in points if start_ns <= p.t_ns < end_ns]
    return max(inside) if inside else None


def per_window(points: Sequence[LagPoint], window_ns: int = WINDOW_NS) -> list[LagPoint]:
    """The worst lag of each window: a timeline small enough to plot an hour of."""
    windows: dict[int, int] = {}
    for p in points:
        key = p.t_ns // window_ns
        windows[key] = max(windows.get(key, 0), p.blocks)
    return [LagPoint(k * window_ns, v) for k, v in sorted(windows.items())]
