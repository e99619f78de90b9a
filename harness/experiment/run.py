"""One whole chaos run, from stack up to verdict and report.

    stack up -> steady state -> probes and load start -> baseline -> fault (ledgered,
    verified) -> fault undone -> recovery (until the service and the component are back)
    -> steady state again -> verdict (SLOs) -> result.json + summary.txt

Safeguards watch the load while it runs and end the run early (reverting the fault) when
the damage goes beyond what was agreed. The report is written from plain data only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.cleanup import cleanup_leftovers
from harness.experiment.spec import ExperimentSpec
from harness.experiment.summary import summarize
from harness.faults import make_fault
from harness.load.runner import LoadRun, accounts_needed
from harness.load.workload import load_profile, methods_sent, prepare_chain
from harness.measure import FRONTEND, Phase, Prober, evaluate, phase_stats, recovery
from harness.measure.recorder import Recorder
from harness.measure.recovery import head_lags
from harness.report import RunDir
from harness.stack.local import LocalStack, PlannedStack
from harness.stack.model import StackState
from harness.stack.steady import SteadyState, check_steady_state, wait_for_steady_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentResult:
    """What a run found: plain data, the only thing the report reads."""

    run_id: str
    run_dir: str
    passed: bool
    aborted: str | None
    started_at: str
    duration_s: float
    seed: int
    experiment: dict[str, Any]
    stack: dict[str, Any]
    stack_ready_s: float
    steady_state_before: dict[str, Any]
    steady_state_after: dict[str, Any]
    fault: dict[str, Any]
    phases: list[dict[str, Any]]
    probes: list[dict[str, Any]]
    recovery: dict[str, Any]
    load: dict[str, Any] | None
    measured: dict[str, float | None]
    # Per node: the most blocks it was behind the highest head, and (t_s, blocks) per
    # 250 ms window of probes from the start of the baseline.
    head_lag: dict[str, dict[str, Any]]
    haproxy_transitions: list[dict[str, Any]]
    process_events: list[dict[str, Any]]
    slos: list[dict[str, Any]]
    reaped: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "harness.result/1", **asdict(self)}

    def failures(self) -> list[str]:
        """One sentence per thing that failed the run: broken SLOs, an abort, steady state."""
        found = [v["message"] for v in self.slos if not v["passed"]]
        if self.aborted:
            found.append(f"run aborted: {self.aborted}")
        for label, doc in (
            ("before", self.steady_state_before),
            ("after", self.steady_state_after),
        ):
            found += [
                f"steady state {label} the fault: {c['name']}: {c['detail']}"
                for c in doc["checks"]
                if not c["ok"]
            ]
        return found

    def assert_passed(self) -> None:
        """Raise AssertionError whose first line says what broke (for pytest scenarios)."""
        failures = self.failures()
        if failures:
            raise AssertionError("; ".join(failures) + f" (report: {self.run_dir}/summary.txt)")


def _steady_doc(result: SteadyState) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "heads": result.heads,
        "duration_s": round(result.duration_s, 3),
        "checks": [asdict(c) for c in result.checks],
    }


def _seconds(t_ns: int, origin_ns: int) -> float:
    return round((t_ns - origin_ns) / 1e9, 6)


class _Watch:
    """Sleeps that a safeguard can cut short, and the safeguard's verdict."""

    def __init__(self, spec: ExperimentSpec, recorder: Recorder) -> None:
        self.spec = spec
        self.recorder = recorder
        self.abort = threading.Event()
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Watch:
        if self.spec.safeguards:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(0.25):
            timeline = self.recorder.answered_timeline()
            for guard in self.spec.safeguards:
                if guard.breached(timeline):
                    self.reason = f"safeguard tripped: {guard}"
                    log.warning("aborting the run: %s", self.reason)
                    self.abort.set()
                    return

    def sleep(self, seconds: float) -> None:
        self.abort.wait(seconds)


def _wait_for_recovery(
    prober: Prober, fault_ns: int, faulted: list[str], timeout_s: float, watch: _Watch
) -> None:
    """Until the service answered for 0.5 s straight and every faulted component is back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not watch.abort.is_set():
        samples, transitions = prober.snapshot()
        found = recovery(samples, transitions, fault_ns, faulted)
        horizon = time.monotonic_ns() - 500_000_000
        recent = [s for s in samples if s.target == FRONTEND and s.intended_ns > horizon]
        if found.mttr_component_s is not None and recent and all(s.outcome == "ok" for s in recent):
            return
        time.sleep(0.05)
    log.warning("no recovery within %.0fs", timeout_s)


def run(spec: ExperimentSpec, reports_dir: Path) -> ExperimentResult:
    """Run one experiment; write ``<reports_dir>/<run-id>/result.json`` and summary.txt."""
    preflight(spec)
    run_dir = RunDir.create(reports_dir)
    reaped = cleanup_leftovers()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    recorder = Recorder()
    load_doc: dict[str, Any] | None = None
    with LocalStack(spec.stack) as stack:
        fault = make_fault(spec.fault, stack, spec.target, spec.seed, **spec.fault_params)
        before = wait_for_steady_state(stack, spec.steady_state, timeout_s=30)
        state = stack.state()
        load_run: LoadRun | None = None
        if spec.load is not None:
            contract = prepare_chain(
                [n.url for n in state.nodes], accounts=accounts_needed(spec.load)
            )
            load_run = LoadRun(
                spec.load, _load_url(spec.load_at, state), run_dir.path / "load", contract,
                recorder.add,
            )  # fmt: skip
        with contextlib.ExitStack() as running:
            prober = running.enter_context(
                Prober(stack, spec.probe_interval_s, samples_path=run_dir.path / "probes.jsonl")
            )
            if load_run is not None:
                running.enter_context(load_run)
            watch = running.enter_context(_Watch(spec, recorder))
            origin_ns = time.monotonic_ns()
            recorder.begin_phase("baseline", origin_ns)
            watch.sleep(spec.baseline_s)
            recorder.begin_phase("fault", time.monotonic_ns())
            with fault:
                watch.sleep(spec.hold_s)
            record = fault.record
            assert record is not None
            recorder.begin_phase("recovery", record.reverted_ns)
            faulted = _probed_as(state, record.targets)
            _wait_for_recovery(prober, record.effective_ns, faulted, spec.recovery_timeout_s, watch)
            watch.sleep(spec.settle_s)
            end_ns = time.monotonic_ns()
        samples, transitions = prober.snapshot()
        try:
            after = wait_for_steady_state(stack, spec.steady_state, timeout_s=15)
        except Exception as exc:  # the verdict reports it; the run still writes its report
            after = check_steady_state(stack, spec.steady_state)
            log.warning("steady state not restored: %s", exc)
        state = stack.state()
        events = stack.events
        ready_s = stack.ready_s or 0.0

    phases = [
        Phase("baseline", origin_ns, record.requested_ns),
        Phase("fault", record.requested_ns, record.reverted_ns),
        Phase("recovery", record.reverted_ns, end_ns),
    ]
    node_names = [n.name for n in state.nodes]
    stats = [phase_stats(samples, p, t) for p in phases for t in [FRONTEND, *node_names]]
    found = recovery(samples, transitions, record.effective_ns, faulted)
    measured: dict[str, float | None] = {
        "ttd_s": found.ttd_s,
        "outage_s": found.outage_s,
        "mttr_service_s": found.mttr_service_s,
        "mttr_component_s": found.mttr_component_s,
    }
    lags = head_lags(samples, node_names)
    all_lags = [lag for series in lags.values() for _, lag in series]
    measured["max_head_lag_blocks"] = float(max(all_lags)) if all_lags else None
    head_lag = {
        name: {
            "max_blocks": max((lag for _, lag in series), default=None),
            "timeline": [[_seconds(t_ns, origin_ns), lag] for t_ns, lag in series],
        }
        for name, series in lags.items()
    }
    for s in stats:
        if s.target == FRONTEND:
            available = s.availability_pct
            measured[f"availability_pct[{s.phase}]"] = available
            measured[f"error_rate_pct[{s.phase}]"] = None if available is None else 100 - available
            for key, value in (("p50_ms", s.p50_us), ("p99_ms", s.p99_us), ("max_ms", s.max_us)):
                measured[f"{key}[{s.phase}]"] = value / 1000 if value is not None else None
    if load_run is not None and spec.load is not None:
        summary = recorder.summary(end_ns)
        load_doc = _load_doc(spec, load_run, summary)
        _measure_load(summary, measured)
    verdicts = evaluate(spec.slos, measured)
    passed = before.ok and after.ok and watch.reason is None and all(v.passed for v in verdicts)

    result = ExperimentResult(
        run_id=run_dir.run_id,
        run_dir=str(run_dir.path),
        passed=passed,
        aborted=watch.reason,
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 3),
        seed=spec.seed,
        experiment={
            "fault": spec.fault,
            "target": spec.target,
            "params": spec.fault_params,
            "baseline_s": spec.baseline_s,
            "hold_s": spec.hold_s,
            "settle_s": spec.settle_s,
            "probe_interval_s": spec.probe_interval_s,
            "probe_timeout_s": prober.timeout_s,
            "probes_file": str(run_dir.path / "probes.jsonl"),
            "safeguards": [str(g) for g in spec.safeguards],
            "latency_source": "load" if load_doc else "probes",
        },
        stack=state.to_dict(),
        stack_ready_s=round(ready_s, 3),
        steady_state_before=_steady_doc(before),
        steady_state_after=_steady_doc(after),
        fault={
            **record.to_dict(),
            "effective_s": _seconds(record.effective_ns, origin_ns),
            "reverted_s": _seconds(record.reverted_ns, origin_ns),
        },
        phases=[
            {
                "name": p.name,
                "start_s": _seconds(p.start_ns, origin_ns),
                "end_s": _seconds(p.end_ns, origin_ns),
                "duration_s": round(p.duration_s, 6),
            }
            for p in phases
        ],
        probes=[asdict(s) for s in stats],
        recovery=asdict(found),
        load=load_doc,
        measured=measured,
        head_lag=head_lag,
        haproxy_transitions=[
            {**asdict(t), "t_s": _seconds(t.t_ns, origin_ns)} for t in transitions
        ],
        process_events=[
            {**asdict(e), "t_s": _seconds(e.t_ns, origin_ns)} for e in events if e.t_ns >= origin_ns
        ],
        slos=[asdict(v) for v in verdicts],
        reaped=tuple(reaped + stack.reaped),
    )
    run_dir.write_result(result.to_dict())
    run_dir.write_summary(summarize(result))
    return result


def _probed_as(state: StackState, targets: tuple[str, ...]) -> list[str]:
    """The probe targets that show each faulted component's health: a node's own port, and
    for HAProxy or the fault proxy (no port of their own to probe) the frontend."""
    roles = {c.name: c.role for c in state.components}
    return [FRONTEND if roles.get(name) in ("balancer", "proxy") else name for name in targets]


def preflight(spec: ExperimentSpec) -> None:
    """What can be checked before a stack starts, checked: the fault's parameters, whether
    this host can run it, and whether the stack as specified gives it what it needs (a
    proxy, namespaces). Raises what the run would otherwise raise after its baseline."""
    planned = PlannedStack(spec.stack)
    fault = make_fault(spec.fault, planned, spec.target, spec.seed, **spec.fault_params)
    fault.preflight(planned.state())
    if spec.load is not None:
        fault.check_workload(methods_sent(load_profile(spec.load.profile)))


def _load_url(load_at: str, state: StackState) -> str:
    """The URL the load goes to: HAProxy's frontend, or one node's own port."""
    if load_at == "frontend":
        return state.frontend_url
    if load_at == "primary":
        return next(n for n in state.nodes if n.role == "primary").url
    return state.component(load_at).url


def _load_doc(spec: ExperimentSpec, load_run: LoadRun, summary: dict[str, Any]) -> dict[str, Any]:
    assert spec.load is not None
    duration_s = max((load_run.stopped_ns - load_run.started_ns) / 1e9, 1e-9)
    phases = summary["phases"]
    requests = sum(p["requests"] for p in phases)
    return {
        "spec": asdict(spec.load),
        "at": spec.load_at,
        "url": load_run.target_url,
        "intended_rate_per_s": spec.load.rate_per_s if spec.load.model == "open" else None,
        "achieved_rate_per_s": round(requests / sum(p["duration_s"] for p in phases), 1)
        if phases
        else 0.0,
        "samples": load_run.sample_count,
        "duration_s": round(duration_s, 3),
        "generator_health": getattr(load_run, "health_at_end", {}),
        "samples_dir": str(load_run.samples_dir),
        **summary,
    }


def _measure_load(summary: dict[str, Any], measured: dict[str, float | None]) -> None:
    """The load's view of each phase replaces the probes' for error rate and latency."""
    for p in summary["phases"]:
        name = p["phase"]
        if not p["requests"]:
            continue
        measured[f"error_rate_pct[{name}]"] = p["error_rate_pct"]
        measured[f"throughput_rps[{name}]"] = p["throughput_rps"]
        for key in ("p50", "p99", "p999", "max"):
            value = p[f"{key}_us"]
            measured[f"{key}_ms[{name}]"] = value / 1000 if value is not None else None
        for method, m in p["methods"].items():
            if m["count"]:
                measured[f"error_rate_pct[{name}:{method}]"] = 100.0 * m["failed"] / m["count"]
            for key in ("p50", "p99", "p999", "max"):
                value = m[f"{key}_us"]
                measured[f"{key}_ms[{name}:{method}]"] = value / 1000 if value is not None else None
