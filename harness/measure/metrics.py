"""The metrics an SLO can name, what each means, and how an episode's are derived.

An SLO is judged on a key of the ``measured`` mapping built here (``metric`` or
``metric[phase]`` or ``metric[phase:method]``); the report, the history and ``compare``
read the same keys, so each metric is defined once, in `METRICS`.

Sources: recovery figures come from the probes (`harness.measure.recovery`); per-phase
latency and error rate from the load when a run has load, else from the frontend probes;
availability always from the frontend probes; head lag from the probes and the load's
eth_blockNumber answers (`harness.measure.head_lag`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.measure.recorder import LoadPhase, Percentiles
from harness.measure.recovery import PhaseStats, Recovery
from harness.measure.samples import FRONTEND

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """One measurable: its unit, which way is better, and a line saying what it is."""

    name: str
    unit: str
    better: Better
    per_phase: bool
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("ttd_s", "s", "lower", False, "fault to HAProxy marking a faulted server DOWN"),
        Metric("outage_s", "s", "lower", False, "client-visible outage through the frontend"),
        Metric("mttr_service_s", "s", "lower", False, "fault to the service answering again"),
        Metric(
            "mttr_component_s",
            "s",
            "lower",
            False,
            "fault to the faulted component back in rotation",
        ),
        Metric(
            "max_head_lag_blocks", "blocks", "lower", False, "largest head spread between nodes"
        ),
        Metric("availability_pct", "%", "higher", True, "frontend probes answered in time"),
        Metric("error_rate_pct", "%", "lower", True, "failed requests (load, else probes)"),
        Metric("throughput_rps", "req/s", "higher", True, "requests answered per second"),
        Metric(
            "frontend_head_lag_blocks",
            "blocks",
            "lower",
            True,
            "head answered through the frontend behind the best node's",
        ),
        Metric(
            "head_regressions",
            "answers",
            "lower",
            True,
            "heads lower than one the same client was already told (beyond a reorg)",
        ),
        Metric(
            "unknown_advertised_block",
            "answers",
            "lower",
            True,
            "null or unknown for a block at or below a head already advertised",
        ),
        Metric("hash_mismatch", "answers", "lower", True, "blocks or receipts on no branch"),
        Metric(
            "vanished_receipts",
            "answers",
            "lower",
            True,
            "receipts seen, then null for the same transaction without a reorg",
        ),
        Metric(
            "missing_logs",
            "answers",
            "lower",
            True,
            "eth_getLogs short for a known block that has logs",
        ),
        Metric("p50_ms", "ms", "lower", True, "median latency"),
        Metric("p99_ms", "ms", "lower", True, "99th percentile latency"),
        Metric("p999_ms", "ms", "lower", True, "99.9th percentile latency"),
        Metric("max_ms", "ms", "lower", True, "slowest request"),
        Metric(
            "host_stall_ms",
            "ms",
            "lower",
            True,
            "longest stall of the machine itself (CPU steal, every core busy)",
        ),
        # With --prometheus (harness.monitor): alerts as SLOs, named in brackets.
        Metric("alert_fired_s", "s", "lower", False, "fault to the alert's firing notification"),
        Metric("alert_pending_s", "s", "lower", False, "fault to the rule's condition holding"),
        Metric(
            "alert_resolved_s", "s", "lower", False, "fault to the alert's resolved notification"
        ),
        Metric(
            "false_alerts",
            "alerts",
            "lower",
            False,
            "alerts that fired with no fault of the run to explain them",
        ),
    )
}
#: Metrics that name an alert of the rules in brackets: ``alert_fired_s[ServiceDown]``.
ALERT_METRICS = ("alert_fired_s", "alert_pending_s", "alert_resolved_s")
RECOVERY_METRICS = tuple(
    name for name, m in METRICS.items() if not m.per_phase and name not in ALERT_METRICS
)
PHASE_METRICS = tuple(name for name, m in METRICS.items() if m.per_phase)
LATENCY_METRICS = ("p50_ms", "p99_ms", "p999_ms", "max_ms")
#: What the checker of clients' histories counts (`harness.measure.checker`), per phase.
HISTORY_METRICS = (
    "head_regressions",
    "unknown_advertised_block",
    "hash_mismatch",
    "vanished_receipts",
    "missing_logs",
)
#: Per-phase metrics that may also name a method: ``p99_ms[fault:eth_call]``.
PER_METHOD_METRICS = (*LATENCY_METRICS, "error_rate_pct")
PHASES = ("baseline", "fault", "recovery")

Measured = dict[str, float | None]


def metric_of(key: str) -> Metric:
    """The metric a measured key is of: ``p99_ms[fault:eth_call]`` -> p99_ms."""
    return METRICS[key.split("[", 1)[0]]


def _ms(us: float | None) -> float | None:
    return us / 1000 if us is not None else None


def _latency(measured: Measured, key: str, latency: Percentiles) -> None:
    for name, value in (
        ("p50_ms", latency.p50_us),
        ("p99_ms", latency.p99_us),
        ("p999_ms", latency.p999_us),
        ("max_ms", latency.max_us),
    ):
        measured[f"{name}[{key}]"] = _ms(value)


def derive(
    recovery: Recovery,
    probes: Sequence[PhaseStats],
    load: Sequence[LoadPhase] | None,
    max_head_lag_blocks: int | None,
    frontend_head_lag_blocks: dict[str, int | None],
) -> Measured:
    """Every metric of one episode, keyed as SLOs name them. ``load`` phases carry the
    episode's own phase names (baseline, fault, recovery)."""
    measured: Measured = {
        "ttd_s": recovery.ttd_s,
        "outage_s": recovery.outage_s,
        "mttr_service_s": recovery.mttr_service_s,
        "mttr_component_s": recovery.mttr_component_s,
        "max_head_lag_blocks": None if max_head_lag_blocks is None else float(max_head_lag_blocks),
    }
    for s in probes:
        if s.target != FRONTEND:
            continue
        available = s.availability_pct
        measured[f"availability_pct[{s.phase}]"] = available
        measured[f"error_rate_pct[{s.phase}]"] = None if available is None else 100 - available
        measured[f"p50_ms[{s.phase}]"] = _ms(s.p50_us)
        measured[f"p99_ms[{s.phase}]"] = _ms(s.p99_us)
        measured[f"max_ms[{s.phase}]"] = _ms(s.max_us)
    for phase, lag in frontend_head_lag_blocks.items():
        measured[f"frontend_head_lag_blocks[{phase}]"] = None if lag is None else float(lag)
    # The load's view of each phase replaces the probes' for error rate and latency.
    for p in load or ():
        if not p.requests:
            continue
        measured[f"error_rate_pct[{p.phase}]"] = p.error_rate_pct
        measured[f"throughput_rps[{p.phase}]"] = p.throughput_rps
        _latency(measured, p.phase, p.latency)
        for method, m in p.methods.items():
            if m.count:
                measured[f"error_rate_pct[{p.phase}:{method}]"] = 100.0 * m.failed / m.count
            _latency(measured, f"{p.phase}:{method}", m.latency)
    return measured
