"""Alerts as SLO figures: what the alert webhook was notified of, against the run's faults.

Fired and resolved times count from the fault's start, as TTD and MTTR do. An alert is
false when no fault of the run explains it: a fault explains an alert if its kind is one
that raises that alert (`EXPLAINS`), it hit what the alert is about (the server, node,
instance or mountpoint the alert's labels name; an alert about the whole stack or host
names none), and the alert began firing inside the fault's window: from its request to
the end of its episode plus the alert's detection slack (its rule's ``for:`` and a scrape,
an evaluation and a notification), since a condition the fault caused may last into the
recovery and fire only then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.monitor.query import AlertState
from harness.monitor.webhook import Notification

# Fault kinds by what they do to a node, as the alerts see it.
_GONE = ("kill", "stop", "terminate", "restart", "pause", "partition")
_SLOW = ("latency", "loss", "bandwidth", "reorder", "corrupt", "duplicate", "cpu")
_PROXY = (
    "rpc_error", "rpc_delay", "drop_response", "malformed", "null_result", "wrong_id",
    "rate_limit", "slicer", "slow_close", "reset_peer", "limit_data", "proxy_latency",
    "proxy_timeout", "proxy_bandwidth",
)  # fmt: skip
_BEHIND = ("stall", "lag", "stale_head", "reorg", "propagation", "peer_partition")
_SERVING = ("FrontendErrorRate", "FrontendLatencyP99")
_DOWN = ("ServiceDown", "HAProxyBackendServerDown", "HAProxyNoServerUp")
_HEADS = ("NodeHeadLagging", "NodeHeadStalled")

#: The alerts each fault kind is expected to raise (fixtures/alerts.yml). A node gone or
#: unreachable is down, its head stops (the heads exporter keeps its last one) and the
#: frontend may fail or slow; a node behind is only behind; pressure on memory or disk is
#: only that. The roadmap's rules (fixtures/alerts-roadmap.yml) as the roadmap meant them.
EXPLAINS: dict[str, tuple[str, ...]] = {
    **{k: (*_DOWN, *_HEADS, *_SERVING, "RoadmapServiceDown") for k in _GONE},
    **{k: (*_DOWN, *_HEADS, *_SERVING, "RoadmapServiceDown") for k in _SLOW},
    **{k: ("HAProxyBackendServerDown", "HAProxyNoServerUp", *_SERVING) for k in _PROXY},
    **{k: _HEADS for k in _BEHIND},
    "memory": ("HighMemoryUsage", "RoadmapHighMemoryUsage"),
    "disk": ("LowDiskSpace", "RoadmapLowDiskSpace"),
    # HAProxy itself: the frontend fails, its exporter cannot be scraped.
    "kill@balancer": (*_SERVING, "HAProxyNoServerUp", "MonitoringTargetDown"),
}
for _kind in _GONE:
    EXPLAINS[f"{_kind}@balancer"] = EXPLAINS["kill@balancer"]

#: The label that names what an alert is about; an alert not here is about the whole
#: stack or host, which any fault that explains it may have caused.
SUBJECT_LABELS = ("server", "node", "instance", "mountpoint")
_ABOUT_A_NODE = {
    "ServiceDown": "instance",
    "RoadmapServiceDown": "instance",
    "HAProxyBackendServerDown": "server",
    "NodeHeadLagging": "node",
    "NodeHeadStalled": "node",
    "LowDiskSpace": "mountpoint",
    "RoadmapLowDiskSpace": "mountpoint",
}


@dataclass(frozen=True)
class FaultWindow:
    """One fault of the run as the alerts see it: its kind, what it hit (each target's
    names: component name, URL, data dir), and from when to when it may explain an alert
    (request to the end of its episode, time.monotonic_ns)."""

    kind: str
    role: str  # the targets' role: "primary", "backup", "balancer", ...
    subjects: frozenset[str]
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class AlertTiming:
    """How long an alert may take to fire once its condition holds: its rule's ``for:``
    plus the monitoring's pipeline (a scrape, an evaluation, a notification), in s."""

    for_s: Mapping[str, float]
    pipeline_s: float

    def slack_ns(self, alertname: str) -> int:
        return int((self.for_s.get(alertname, 0.0) + self.pipeline_s) * 1e9)


@dataclass(frozen=True)
class Firing:
    """One alert (name and labels) and when the webhook first heard it firing."""

    alertname: str
    labels: tuple[tuple[str, str], ...]
    fired_ns: int
    resolved_ns: int | None


def firings(notifications: Iterable[Notification]) -> tuple[Firing, ...]:
    """Each alert's firings, one per firing spell: the first firing notification of an
    alert (its labels) and the first resolved one after it; repeats move nothing."""
    open_: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    done: list[Firing] = []
    for n in sorted(notifications, key=lambda n: n.received_ns):
        key = (n.alertname, tuple(sorted(n.labels.items())))
        if n.status == "firing":
            open_.setdefault(key, n.received_ns)
        elif n.status == "resolved" and key in open_:
            done.append(Firing(key[0], key[1], open_.pop(key), n.received_ns))
    done += [Firing(name, labels, t, None) for (name, labels), t in open_.items()]
    return tuple(sorted(done, key=lambda f: f.fired_ns))


def explains(window: FaultWindow, firing: Firing, timing: AlertTiming) -> bool:
    """Whether the fault in ``window`` explains ``firing``: the kind raises that alert,
    on what the fault hit, and it began firing while the fault may still have caused it."""
    kinds = (f"{window.kind}@{window.role}", window.kind)
    expected = next((EXPLAINS[k] for k in kinds if k in EXPLAINS), ())
    if firing.alertname not in expected:
        return False
    if not window.start_ns <= firing.fired_ns <= window.end_ns + timing.slack_ns(firing.alertname):
        return False
    label = _ABOUT_A_NODE.get(firing.alertname)
    if label is None:
        return True
    value = dict(firing.labels).get(label, "")
    return any(value == s or value.rstrip("/") == s.rstrip("/") for s in window.subjects)


def false_firings(
    all_firings: Sequence[Firing], faults: Sequence[FaultWindow], timing: AlertTiming
) -> tuple[Firing, ...]:
    """The firings no fault of the run explains."""
    return tuple(f for f in all_firings if not any(explains(w, f, timing) for w in faults))


@dataclass(frozen=True)
class AlertEvidence:
    """What a run's alerts are judged on: the webhook's notifications, the run's faults,
    each alert's timing, and the pending and firing spells Prometheus evaluated."""

    notifications: tuple[Notification, ...]
    faults: tuple[FaultWindow, ...]
    timing: AlertTiming
    states: tuple[AlertState, ...] = ()


def alert_figures(
    notifications: Sequence[Notification],
    baseline_start_ns: int,
    fault_ns: int,
    end_ns: int,
    faults: Sequence[FaultWindow] = (),
    timing: AlertTiming = AlertTiming({}, 0.0),
    states: Sequence[AlertState] = (),
) -> dict[str, float | None]:
    """``alert_fired_s[Name]``, ``alert_resolved_s[Name]`` and ``false_alerts`` of one
    episode: for each alert, its first firing in [fault_ns, end_ns) and when that firing
    resolved (None: not before the end); ``false_alerts``, the firings begun in
    [baseline_start_ns, end_ns) that no fault of the run (``faults``) explains; and from
    Prometheus's own ``states``, ``alert_pending_s[Name]``: its first pending spell begun in
    [baseline_start_ns, end_ns) (negative: in the baseline, before any fault); and for each
    alert there, ``alert_expected_s[Name]``: its rule's ``for:`` (and group interval) plus
    the pipeline, what its firing is compared with.
    Times in s from ``fault_ns``."""
    measured: dict[str, float | None] = {}
    for a in states:
        pending = f"alert_pending_s[{a.alertname}]"
        mine_now = baseline_start_ns <= a.first_ns < end_ns
        if a.state == "pending" and mine_now and pending not in measured:
            measured[pending] = (a.first_ns - fault_ns) / 1e9
    mine = [f for f in firings(notifications) if baseline_start_ns <= f.fired_ns < end_ns]
    for f in mine:
        fired = f"alert_fired_s[{f.alertname}]"
        if f.fired_ns < fault_ns or fired in measured:
            continue
        measured[fired] = (f.fired_ns - fault_ns) / 1e9
        resolved = f.resolved_ns if f.resolved_ns is not None and f.resolved_ns < end_ns else None
        measured[f"alert_resolved_s[{f.alertname}]"] = (
            None if resolved is None else (resolved - fault_ns) / 1e9
        )
    for key in [k for k in measured if k.startswith(("alert_fired_s[", "alert_pending_s["))]:
        name = key[key.index("[") + 1 : -1]
        measured[f"alert_expected_s[{name}]"] = timing.slack_ns(name) / 1e9
    measured["false_alerts"] = float(len(false_firings(mine, faults, timing)))
    return measured
