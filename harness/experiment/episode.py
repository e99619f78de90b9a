"""One episode: baseline -> fault -> recovery on a live run, and its judgement.

`run_episode` acts (declares phases, holds the fault, waits for recovery) and returns only
the times it marked; `judge_episode` derives the episode's figures from what the run's
instruments saw, once they have stopped, and evaluates the SLOs on them. A game day is the
same two steps over many episodes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from harness.errors import HarnessError
from harness.experiment.live import LiveRun, Observations
from harness.experiment.memory import release_free_memory
from harness.experiment.spec import EpisodeSpec
from harness.faults import Fault, FaultRecord
from harness.measure import FRONTEND, SLO, Phase, PhaseStats, Recovery, evaluate, phase_stats
from harness.measure.checker import EXAMPLES, KINDS, Anomaly, CheckResult, check_metrics
from harness.measure.head_lag import LagPoint, worst
from harness.measure.host import longest_stall_ms
from harness.measure.metrics import PHASES, Measured, derive
from harness.measure.recorder import LoadPhase
from harness.measure.recovery import recovery as measure_recovery
from harness.measure.slo import SLOResult
from harness.monitor.alerts import AlertEvidence, FaultWindow, alert_figures
from harness.monitor.processes import expected_targets, wait_scraped
from harness.stack.model import StackState
from harness.stack.steady import (
    SteadyState,
    SteadyStateSpec,
    check_steady_state,
    wait_for_steady_state,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeWindow:
    """What running an episode marked: its phases, its fault's record, what it hit."""

    index: int
    spec: EpisodeSpec
    fault: FaultRecord
    phases: tuple[Phase, ...]
    # The probe targets that show each faulted component's health (a node's own port, or
    # the frontend for HAProxy and the fault proxy, which have no port of their own).
    faulted: tuple[str, ...]
    aborted: str | None
    steady_after: SteadyState | None
    steady_wait_s: float  # how long the next episode waited for the steady state
    in_sync: bool = False  # one chain: a component is back when it is in sync again


@dataclass(frozen=True)
class EpisodeResult:
    """One episode, measured and judged: plain data, as the report reads it."""

    index: int
    spec: EpisodeSpec
    fault: FaultRecord
    phases: tuple[Phase, ...]
    faulted: tuple[str, ...]
    probes: tuple[PhaseStats, ...]
    recovery: Recovery
    load: tuple[LoadPhase, ...]
    frontend_head_lag_blocks: dict[str, int | None]
    measured: Measured
    slos: tuple[SLOResult, ...]
    aborted: str | None
    steady_after: SteadyState | None
    steady_wait_s: float = 0.0
    command: tuple[str, ...] = ()  # the `harness run` that repeats this episode alone
    # What clients saw that fits no history of the chain: the first few of each kind sent
    # in the episode (the counts per phase are in ``measured``); () if not checked.
    anomalies: tuple[Anomaly, ...] = ()

    @property
    def passed(self) -> bool:
        steady = self.steady_after is None or self.steady_after.ok
        return steady and self.aborted is None and all(v.passed for v in self.slos)

    @property
    def start_ns(self) -> int:
        return self.phases[0].start_ns

    @property
    def end_ns(self) -> int:
        return self.phases[-1].end_ns


def phase_label(index: int, phase: str) -> str:
    """The recorder's name of an episode's phase: unique across the run."""
    return f"e{index}.{phase}"


def run_episode(
    live: LiveRun,
    fault: Fault,
    spec: EpisodeSpec,
    index: int,
    steady: SteadyStateSpec | None = None,
) -> EpisodeWindow:
    """Baseline, then ``fault`` held for ``spec.hold_s``, then recovery and settling.

    With ``steady``, wait (at most 30 s) for the steady state at the end, so the next
    episode starts from a healthy stack; the single episode of a scenario leaves that to
    the run's own check after the load stops."""
    recorder = live.recorder
    start_ns = time.monotonic_ns()
    recorder.begin_phase(phase_label(index, "baseline"), start_ns)
    live.mark(index, "baseline", spec.label)
    live.sleep(spec.baseline_s)
    _wait_for_monitoring(live.stack.state())
    recorder.begin_phase(phase_label(index, "fault"), time.monotonic_ns())
    live.mark(index, "fault", spec.label)
    with fault:
        live.sleep(spec.hold_s)
    record = fault.record
    assert record is not None
    recorder.begin_phase(phase_label(index, "recovery"), record.reverted_ns)
    live.mark(index, "recovery", spec.label)
    faulted = probed_as(live.stack.state(), record.targets)
    _wait_for_recovery(live, record.effective_ns, faulted, spec.recovery_timeout_s)
    live.sleep(spec.settle_s)
    after = None
    waited_from = time.monotonic()
    if steady is not None and not live.aborted:
        live.mark(index, "steady", spec.label)
        try:
            after = wait_for_steady_state(live.stack, steady, timeout_s=30)
        except HarnessError as exc:
            after = check_steady_state(live.stack, steady)
            log.warning("steady state not restored after episode %d: %s", index, exc)
    waited_s = round(time.monotonic() - waited_from, 3) if after is not None else 0.0
    release_free_memory()  # a game day's RSS stays flat (harness.experiment.memory)
    end_ns = time.monotonic_ns()
    phases = (
        Phase("baseline", start_ns, record.requested_ns),
        Phase("fault", record.requested_ns, record.reverted_ns),
        Phase("recovery", record.reverted_ns, end_ns),
    )
    return EpisodeWindow(
        index, spec, record, phases, tuple(faulted), live.reason, after, waited_s,
        in_sync=live.stack.state().chain == "one",
    )  # fmt: skip


#: How long a fault waits for the stack's Prometheus to have scraped every target once.
MONITORING_TIMEOUT_S = 20.0


def _wait_for_monitoring(state: StackState) -> None:
    """With --prometheus, no fault before Prometheus has seen every target once (its first
    scrapes come ~5 s after it starts): the baseline goes on until then. A no-op after."""
    if state.prometheus_url is None:
        return
    expected = expected_targets(len(state.nodes), state.haproxy_metrics_url is not None)
    took_s = wait_scraped(state.prometheus_url, expected, MONITORING_TIMEOUT_S)
    if took_s is None:
        log.warning(
            "Prometheus had not scraped its %d targets after %.0f s: alerts may come late",
            expected,
            MONITORING_TIMEOUT_S,
        )
    elif took_s > 0.1:
        log.info("the baseline waited %.2f s for Prometheus's first scrapes", took_s)


def _wait_for_recovery(live: LiveRun, fault_ns: int, faulted: list[str], timeout_s: float) -> None:
    """Until the service answered for 0.5 s straight and every faulted component is back,
    and has stayed back for one health-check interval: a check sent before a resume can
    still fail after it (HAProxy marked a resumed node DOWN 0.4 s after it answered), and
    a recovery judged before that report would end the episode with the node out of
    rotation."""
    assert live.prober is not None
    confirm_ns = live.spec.stack.health_check.inter_ms * 1_000_000
    in_sync = live.stack.state().chain == "one"
    deadline = time.monotonic() + timeout_s
    back_since: int | None = None
    while time.monotonic() < deadline and not live.aborted:
        samples, transitions = live.prober.snapshot(since_ns=fault_ns)
        found = measure_recovery(samples, transitions, fault_ns, faulted, in_sync)
        now = time.monotonic_ns()
        recent = [s for s in samples if s.target == FRONTEND and s.intended_ns > now - 500_000_000]
        if found.mttr_component_s is None:
            back_since = None  # not back, or marked DOWN again since
        elif back_since is None:
            if recent and all(s.outcome == "ok" for s in recent):
                back_since = now
        elif now - back_since >= confirm_ns:
            return
        time.sleep(0.05)
    log.warning("no recovery within %.0fs", timeout_s)


def probed_as(state: StackState, targets: tuple[str, ...]) -> list[str]:
    """The probe targets that show each faulted component's health: a node's own port, and
    for HAProxy, the fault proxy or the replicator (no port of their own to probe) the
    frontend; for the chain source, every node (they follow it)."""
    roles = {c.name: c.role for c in state.components}
    probed: list[str] = []
    for name in targets:
        role = roles.get(name)
        if role in ("balancer", "proxy", "replicator"):
            probed.append(FRONTEND)
        elif role == "source":  # every node follows the chain source
            probed += [n.name for n in state.nodes]
        else:
            probed.append(name)
    return list(dict.fromkeys(probed))


def judge_episode(
    window: EpisodeWindow,
    seen: Observations,
    nodes: list[str],
    node_lag: dict[str, list[LagPoint]],
    frontend_lag: list[LagPoint],
    slos: tuple[SLO, ...],
    histories: CheckResult | None = None,
    alerts: AlertEvidence | None = None,
) -> EpisodeResult:
    """The episode's figures from what the instruments saw, and its SLO verdicts; with
    ``histories`` (the checker's, at the end of a run) its per-phase anomaly counts too;
    with ``alerts`` (the alert webhook's notifications and the run's faults, --prometheus)
    its alert figures."""
    phases = window.phases
    start, end = phases[0].start_ns, phases[-1].end_ns
    # Only this episode's own window: a later episode's failures are not its outage.
    samples = tuple(s for s in seen.samples if s.intended_ns < end)
    transitions = tuple(t for t in seen.transitions if t.t_ns < end)
    probes = tuple(phase_stats(samples, p, t) for p in phases for t in [FRONTEND, *nodes])
    found = measure_recovery(
        samples, transitions, window.fault.effective_ns, window.faulted, window.in_sync
    )
    node_worst = [worst(points, start, end) for points in node_lag.values()]
    known = [w for w in node_worst if w is not None]
    frontend = {p.name: worst(frontend_lag, p.start_ns, p.end_ns) for p in phases}
    load: tuple[LoadPhase, ...] = ()
    if seen.load is not None:
        mine = {phase_label(window.index, name): name for name in PHASES}
        load = tuple(
            replace(p, phase=mine[p.phase]) for p in seen.load.summary.phases if p.phase in mine
        )
    measured = derive(found, probes, load or None, max(known) if known else None, frontend)
    for p in phases:
        stall = longest_stall_ms(seen.host_stalls, p.start_ns, p.end_ns)
        measured[f"host_stall_ms[{p.name}]"] = round(stall, 1)
    anomalies: tuple[Anomaly, ...] = ()
    if histories is not None:
        measured.update(check_metrics(histories, [(p.name, p.start_ns, p.end_ns) for p in phases]))
        anomalies = _examples(histories, start, end)
    if alerts is not None:
        measured.update(
            alert_figures(
                alerts.notifications,
                start,
                window.fault.effective_ns,
                end,
                alerts.faults,
                alerts.timing,
                alerts.states,
            )
        )
    return EpisodeResult(
        index=window.index,
        spec=window.spec,
        fault=window.fault,
        phases=phases,
        faulted=window.faulted,
        probes=probes,
        recovery=found,
        load=load,
        frontend_head_lag_blocks=frontend,
        measured=measured,
        slos=tuple(evaluate(slos, measured)),
        aborted=window.aborted,
        steady_after=window.steady_after,
        steady_wait_s=window.steady_wait_s,
        anomalies=anomalies,
    )


def fault_window(window: EpisodeWindow, state: StackState) -> FaultWindow:
    """The episode's fault as the alerts see it: what it hit (each target's name, URL and
    data dir), from its request to the end of its episode."""
    hit = [c for c in state.components if c.name in window.fault.targets]
    subjects = {c.name for c in hit} | {c.url for c in hit}
    subjects |= {c.data_dir for c in hit if c.data_dir is not None}
    return FaultWindow(
        kind=window.fault.kind,
        role=hit[0].role if hit else "",
        subjects=frozenset(subjects),
        start_ns=window.fault.requested_ns or window.phases[0].end_ns,
        end_ns=window.phases[-1].end_ns,
    )


def _examples(histories: CheckResult, start_ns: int, end_ns: int) -> tuple[Anomaly, ...]:
    """The first few anomalies of each kind sent in [start_ns, end_ns)."""
    found: list[Anomaly] = []
    for kind in KINDS:
        mine = [a for a in histories.examples.get(kind, ()) if start_ns <= a.at_ns < end_ns]
        found += mine[:EXAMPLES]
    return tuple(found)
