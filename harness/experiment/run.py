"""One whole run, from stack up to verdict and report.

    stack up -> steady state -> probes and load start -> episode(s): baseline -> fault
    (ledgered, verified) -> fault undone -> recovery -> probes and load stop -> steady
    state again -> the chain log kept -> clients' histories checked -> figures and
    verdicts per episode -> result.json, summary, report.html

Each step lives with its concept: the stack in `harness.stack`, the instruments in
`live`, the episode in `episode`, the figures in `harness.measure`, the files in
`harness.report`. This module only puts them in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.cleanup import cleanup_leftovers
from harness.errors import ConfigError, HarnessError
from harness.experiment.command import episode_command
from harness.experiment.episode import (
    EpisodeResult,
    EpisodeWindow,
    fault_window,
    judge_episode,
    run_episode,
)
from harness.experiment.histories import ClientHistories, check_histories, keep_chain_log
from harness.experiment.live import LiveRun, Observations, ProgressCallback, StopRequest
from harness.experiment.result import RunResult, probe_windows
from harness.experiment.spec import ExperimentSpec
from harness.faults import Fault, make_fault
from harness.load.workload import load_profile, methods_sent
from harness.measure import FRONTEND
from harness.measure.budget import budget_use
from harness.measure.head_lag import frontend_lags, node_lags, per_window
from harness.measure.metrics import ALERT_METRICS, HISTORY_METRICS
from harness.monitor.alerts import AlertEvidence, AlertTiming
from harness.monitor.processes import MonitorProfile, check_configs, rule_files
from harness.monitor.query import AlertState, alert_states
from harness.monitor.rules import alert_delays_s, require_alert
from harness.monitor.webhook import read_notifications
from harness.report import RunDir, write_reports
from harness.stack.backends import open_stack, plan_stack
from harness.stack.haproxy import DEFAULT_TEMPLATE
from harness.stack.model import Stack, StackSpec, StackState
from harness.stack.steady import check_steady_state, wait_for_steady_state

log = logging.getLogger(__name__)


#: The SLOs judged on the alert webhook's notifications (--prometheus only).
ALERT_SLO_METRICS = (*ALERT_METRICS, "false_alerts")

# What an episode needs beyond its baseline, hold and settle, when planning whether it still
# fits before a deadline: a typical recovery and steady-state check.
EXPECTED_RECOVERY_S = 5.0


def run(
    spec: ExperimentSpec,
    reports_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    stop: StopRequest | None = None,
    deadline_s: float | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run every episode of ``spec`` on one stack under one load; write the run's reports
    to ``<reports_dir>/<run-id>/``. Bad input raises before a stack or a report exists.

    ``progress`` is told where the run is every second and at each phase; ``stop`` ends it
    early (the fault in effect reverted, the report written); no episode starts that would
    end past ``deadline_s`` from the first episode's start; ``prepare`` is given the run's
    directory before anything starts (a game day writes its schedule there)."""
    preflight(spec)
    run_dir = RunDir.create(reports_dir)
    if prepare is not None:
        prepare(run_dir.path)
    reaped = cleanup_leftovers()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    windows: list[EpisodeWindow] = []
    skipped: list[tuple[int, str]] = []
    with open_stack(spec.stack) as stack:
        faults = _faults(spec, stack)
        before = wait_for_steady_state(stack, spec.steady_state, timeout_s=30)
        between = spec.steady_state if len(spec.episodes) > 1 else None
        live = LiveRun(stack, spec, run_dir.path, progress, stop)
        with live:
            nodes = [n.name for n in stack.state().nodes]
            for index, (episode, fault) in enumerate(zip(spec.episodes, faults, strict=True)):
                if live.aborted:
                    skipped.append((index, f"not run: {live.reason}"))
                    continue
                elapsed_s = (time.monotonic_ns() - live.origin_ns) / 1e9
                planned_s = (
                    episode.baseline_s + episode.hold_s + episode.settle_s + EXPECTED_RECOVERY_S
                )
                if deadline_s is not None and elapsed_s + planned_s > deadline_s:
                    skipped.append((index, f"not run: it would end past the {deadline_s:g}s"))
                    continue
                window = run_episode(live, fault, episode, index, between)
                windows.append(window)
                seen_so_far = live.snapshot(since_ns=window.phases[0].start_ns)
                provisional = _judge([window], seen_so_far, nodes, spec)[0]
                live.judged(provisional.passed)
            live.mark(None, "done")
        try:
            after = wait_for_steady_state(
                stack, spec.steady_state, timeout_s=spec.restore_timeout_s
            )
        except HarnessError as exc:  # the verdict reports it; the run still writes its report
            after = check_steady_state(stack, spec.steady_state)
            log.warning("steady state not restored: %s", exc)
        state = stack.state()
        chain_log = keep_chain_log(state, run_dir.path)  # a teardown may remove the stack's
        events = tuple(e for e in stack.events if e.t_ns >= live.origin_ns)
        alerts = _alert_evidence(spec, state, windows, live.origin_ns)  # before the teardown
        ready_s = stack.ready_s or 0.0
        reaped += stack.reaped

    seen = live.observations
    histories = check_histories(seen, chain_log, [w.phases[0].start_ns for w in windows])
    nodes = [n.name for n in state.nodes]
    between_nodes = node_lags(seen.samples, nodes)
    load_heads = seen.load.summary.heads if seen.load and spec.load_at == "frontend" else ()
    through_frontend = frontend_lags(seen.samples, nodes, load_heads)
    episodes = tuple(
        replace(e, command=tuple(episode_command(spec, e.spec)))
        for e in _judge(windows, seen, nodes, spec, histories, alerts)
    )
    replay = (
        ("harness", "gameday", "--replay", str(run_dir.path))
        if spec.kind == "gameday"
        else tuple(episode_command(spec, spec.episodes[0]))
    )
    windows_of_probes, window_s = probe_windows(
        seen.samples, seen.origin_ns, seen.end_ns, [FRONTEND, *nodes]
    )
    assert live.prober is not None
    result = RunResult(
        run_id=run_dir.run_id,
        run_dir=str(run_dir.path),
        spec=spec,
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 3),
        origin_ns=seen.origin_ns,
        end_ns=seen.end_ns,
        stack=state,
        stack_ready_s=round(ready_s, 3),
        steady_state_before=before,
        steady_state_after=after,
        episodes=episodes,
        load=seen.load,
        probe_interval_s=spec.probe_interval_s,
        probe_timeout_s=live.prober.timeout_s,
        probe_windows=windows_of_probes,
        probe_window_s=window_s,
        node_lag={name: tuple(points) for name, points in between_nodes.items()},
        frontend_lag=tuple(per_window(through_frontend)),
        transitions=seen.transitions,
        events=events,
        aborted=seen.aborted,
        budget=budget_use(spec.budget, sum(e.recovery.outage_s for e in episodes)),
        reaped=tuple(reaped),
        template_fingerprint=template_fingerprint(spec.stack),
        stack_fingerprint=stack_fingerprint(spec.stack),
        skipped=tuple(skipped),
        replay_command=replay,
        histories=histories,
    )
    write_reports(result, run_dir)
    return result


def _judge(
    windows: list[EpisodeWindow],
    seen: Observations,
    nodes: list[str],
    spec: ExperimentSpec,
    histories: ClientHistories | None = None,
    alerts: AlertEvidence | None = None,
) -> tuple[EpisodeResult, ...]:
    """Each episode's figures and verdicts from what the instruments saw. Without
    ``histories`` (a provisional verdict while the run goes on) the SLOs on them, and on
    alerts (``alerts``: the webhook's notifications and the run's faults), wait for the end
    of the run."""
    between_nodes = node_lags(seen.samples, nodes)
    load_heads = seen.load.summary.heads if seen.load and spec.load_at == "frontend" else ()
    through_frontend = frontend_lags(seen.samples, nodes, load_heads)
    checked = histories.result if histories is not None else None
    slos = spec.slos
    if checked is None:
        slos = tuple(s for s in slos if s.metric not in HISTORY_METRICS)
    if alerts is None:
        slos = tuple(s for s in slos if s.metric not in ALERT_SLO_METRICS)
    return tuple(
        judge_episode(w, seen, nodes, between_nodes, through_frontend, slos, checked, alerts)
        for w in windows
    )


def _alert_evidence(
    spec: ExperimentSpec, state: StackState, windows: list[EpisodeWindow], since_ns: int
) -> AlertEvidence | None:
    """What the stack's alert webhook was notified of, with every fault of the run that may
    explain it, and what Prometheus had pending or firing since ``since_ns`` (None: the
    stack has no monitoring)."""
    if state.alert_notifications is None:
        return None
    states: tuple[AlertState, ...] = ()
    if state.prometheus_url is not None:
        try:
            states = alert_states(state.prometheus_url, since_ns)
        except HarnessError as exc:  # the webhook's record still judges the alert SLOs
            log.warning("pending alerts not read back: %s", exc)
    timing = AlertTiming(
        alert_delays_s(rule_files(spec.stack.alert_rules)), MonitorProfile().pipeline_s
    )
    return AlertEvidence(
        read_notifications(Path(state.alert_notifications)),
        tuple(fault_window(w, state) for w in windows),
        timing,
        states,
    )


def _faults(spec: ExperimentSpec, stack: Stack) -> list[Fault]:
    """Every episode's fault, built before the first baseline: bad input costs no load."""
    return [make_fault(e.fault, stack, e.target, e.seed, **dict(e.params)) for e in spec.episodes]


def preflight(spec: ExperimentSpec) -> None:
    """What can be checked before a stack starts, checked: each fault's parameters, whether
    this host can run it, and whether the stack as specified gives it what it needs (a
    proxy, namespaces, monitoring for alert SLOs, monitoring configs that render and rule
    files promtool accepts, with the alerts the SLOs name). Raises what the run would
    otherwise raise after its baseline."""
    alerting = [s for s in spec.slos if s.metric in ALERT_SLO_METRICS]
    if alerting and not spec.stack.prometheus:
        raise ConfigError(
            "slo", str(alerting[0]), "alerts are measured only with monitoring: add --prometheus"
        )
    if spec.stack.prometheus:
        rules = rule_files(spec.stack.alert_rules)
        check_configs(rules)  # templates render, promtool accepts: before anything starts
        for slo in alerting:
            if slo.metric != "false_alerts" and slo.phase is not None:
                require_alert(slo.phase, rules)
    planned = plan_stack(spec.stack)
    methods = methods_sent(load_profile(spec.load.profile)) if spec.load is not None else None
    for fault in _faults(spec, planned):
        fault.preflight(planned.state())
        if methods is not None:
            fault.check_workload(methods)


def template_fingerprint(spec: StackSpec) -> str:
    """The HAProxy template's content hash: runs of one config compare with each other."""
    path = spec.haproxy_template or DEFAULT_TEMPLATE
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stack_fingerprint(spec: StackSpec) -> str:
    """A hash of what shapes the stack's behaviour (not its name or ports)."""
    doc = spec.to_dict()
    for incidental in ("name", "frontend_port", "haproxy_template"):
        doc.pop(incidental, None)
    if not doc.get("alert_rules"):  # runs from before alert_rules existed compare alike
        doc.pop("alert_rules", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
