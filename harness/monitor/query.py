"""Alerts as Prometheus itself saw them: its ``ALERTS`` series, pending and firing, read back
over its HTTP API at the end of a run (before the stack goes).

The webhook says what was delivered; this says what a rule's condition did, including a
rule that went pending and never fired (its ``for:`` outlasted the condition). Prometheus
stamps samples with wall-clock time; they are placed on the run's monotonic clock with
the offset between the two clocks at the time of the query (display precision: ms).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from harness.errors import StackError

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class AlertState:
    """One spell of one alert (name and labels) in one state ("pending" or "firing"),
    from its first to its last evaluation in that state (time.monotonic_ns())."""

    alertname: str
    state: str
    labels: tuple[tuple[str, str], ...]
    first_ns: int
    last_ns: int


def spells(series: list[dict[str, Any]], step_s: float, offset_ns: int) -> tuple[AlertState, ...]:
    """`AlertState` spells of a query_range answer on ``ALERTS``: a gap of more than two
    steps ends a spell. ``offset_ns`` is wall-clock minus monotonic, in ns."""
    found: list[AlertState] = []
    for s in series:
        metric = dict(s.get("metric", {}))
        name, state = metric.pop("alertname", ""), metric.pop("alertstate", "")
        metric.pop("__name__", None)
        labels = tuple(sorted(metric.items()))
        stamps = sorted(float(t) for t, _ in s.get("values", ()))
        start = prev = None
        for t in stamps:
            if start is None:
                start = prev = t
            elif prev is not None and t - prev > 2 * step_s:
                found.append(_spell(name, state, labels, start, prev, offset_ns))
                start = t
            prev = t
        if start is not None and prev is not None:
            found.append(_spell(name, state, labels, start, prev, offset_ns))
    return tuple(sorted(found, key=lambda a: a.first_ns))


def _spell(
    name: str,
    state: str,
    labels: tuple[tuple[str, str], ...],
    first_s: float,
    last_s: float,
    offset_ns: int,
) -> AlertState:
    return AlertState(
        name, state, labels, int(first_s * 1e9) - offset_ns, int(last_s * 1e9) - offset_ns
    )


def alert_states(
    prometheus_url: str, since_ns: int, step_s: float = 0.25
) -> tuple[AlertState, ...]:
    """Every pending and firing spell Prometheus evaluated since ``since_ns`` (monotonic),
    each start at most ``step_s`` after the evaluation that began it (a range query's
    points fall on its step grid: 0.2 s after the rule's activeAt against a bare
    Prometheus); `StackError` with Prometheus's words if it does not answer."""
    offset_ns = time.time_ns() - time.monotonic_ns()
    now_s = time.time()
    start_s = (since_ns + offset_ns) / 1e9
    query = urllib.parse.urlencode(
        {"query": "ALERTS", "start": f"{start_s:.3f}", "end": f"{now_s:.3f}", "step": step_s}
    )
    url = f"{prometheus_url}api/v1/query_range?{query}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            doc = json.load(answer)
    except (OSError, ValueError) as exc:
        raise StackError(f"Prometheus at {prometheus_url} did not answer ALERTS: {exc}") from exc
    if doc.get("status") != "success":
        raise StackError(f"Prometheus refused the ALERTS query: {doc.get('error')}")
    return spells(doc["data"]["result"], step_s, offset_ns)
