"""Alerts as SLO figures: what the alert webhook was notified of, against an episode's
phases. Fired and resolved times count from the fault's start, as TTD and MTTR do; an
alert whose firing began in a baseline (no fault to explain it) is a false alert.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.monitor.webhook import Notification


def alert_figures(
    notifications: Sequence[Notification],
    baseline_start_ns: int,
    fault_ns: int,
    end_ns: int,
) -> dict[str, float | None]:
    """``alert_fired_s[Name]``, ``alert_resolved_s[Name]`` and ``false_alerts`` of one
    episode: for each alert, its first firing notification in [fault_ns, end_ns) and the
    first resolved one after it; each alert first notified firing in
    [baseline_start_ns, fault_ns) counts once as false. Times in s from ``fault_ns``."""
    measured: dict[str, float | None] = {}
    fired: dict[str, int] = {}
    false: set[str] = set()
    for n in sorted(notifications, key=lambda n: n.received_ns):
        if n.status == "firing" and baseline_start_ns <= n.received_ns < fault_ns:
            false.add(n.alertname)
        elif n.status == "firing" and fault_ns <= n.received_ns < end_ns:
            if n.alertname not in fired:
                fired[n.alertname] = n.received_ns
                measured[f"alert_fired_s[{n.alertname}]"] = (n.received_ns - fault_ns) / 1e9
                measured.setdefault(f"alert_resolved_s[{n.alertname}]", None)
        elif n.status == "resolved" and n.alertname in fired and n.received_ns < end_ns:
            key = f"alert_resolved_s[{n.alertname}]"
            if measured.get(key) is None:
                measured[key] = (n.received_ns - fault_ns) / 1e9
    measured["false_alerts"] = float(len(false))
    return measured
