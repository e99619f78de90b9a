"""Experiments: the main job, one whole chaos run from stack up to verdict and report.

    stack up -> steady state -> probes start -> baseline -> fault (ledgered, verified)
    -> fault undone -> recovery (until the service and the component are back)
    -> steady state again -> verdict (SLOs) -> result.json + summary.txt

The CLI's ``harness run`` and the scenarios call `run`; neither holds logic of its own.
The report is written from plain data only (`ExperimentResult`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cleanup import cleanup_leftovers
from harness.errors import ConfigError
from harness.faults import make_fault
from harness.measure import (
    FRONTEND,
    SLO,
    Phase,
    Prober,
    Recovery,
    evaluate,
    phase_stats,
    recovery,
)
from harness.report import RunDir
from harness.stack.local import LocalStack
from harness.stack.model import StackSpec
from harness.stack.steady import (
    SteadyState,
    SteadyStateSpec,
    check_steady_state,
    wait_for_steady_state,
)
from harness.stack.supervisor import ProcessEvent

log = logging.getLogger(__name__)

DEFAULT_SLOS = (
    SLO.parse("availability_pct[baseline] >= 99.9"),
    SLO.parse("p99_ms[baseline] <= 50"),
    SLO.parse("outage_s <= 10"),
    SLO.parse("mttr_component_s <= 30"),
)


@dataclass(frozen=True)
class ExperimentSpec:
    """What to run: the stack, the fault, the phases and the SLOs."""

    stack: StackSpec = field(default_factory=StackSpec)
    steady_state: SteadyStateSpec = field(default_factory=SteadyStateSpec)
    fault: str = "kill"
    target: str = "primary"
    fault_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    baseline_s: float = 3.0
    hold_s: float = 0.0
    recovery_timeout_s: float = 30.0
    settle_s: float = 2.0
    probe_interval_s: float = 0.02
    slos: tuple[SLO, ...] = DEFAULT_SLOS

    def __post_init__(self) -> None:
        for name in ("baseline_s", "hold_s", "settle_s"):
            value = getattr(self, name)
            if not 0 <= value <= 3600:
                raise ConfigError(name, value, "choose 0 to 3600 seconds")
        if not 1 <= self.recovery_timeout_s <= 3600:
            raise ConfigError("recovery_timeout_s", self.recovery_timeout_s, "choose 1 to 3600 s")
        if not 0.001 <= self.probe_interval_s <= 1:
            raise ConfigError("probe_interval_s", self.probe_interval_s, "choose 0.001 to 1 s")


@dataclass(frozen=True)
class ExperimentResult:
    """What a run found: plain data, the only thing the report reads."""

    run_id: str
    run_dir: str
    passed: bool
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
    haproxy_transitions: list[dict[str, Any]]
    process_events: list[dict[str, Any]]
    slos: list[dict[str, Any]]
    reaped: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "harness.result/1", **asdict(self)}


def _steady_doc(result: SteadyState) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "heads": result.heads,
        "duration_s": round(result.duration_s, 3),
        "checks": [asdict(c) for c in result.checks],
    }


def _wait_for_recovery(prober: Prober, fault_ns: int, faulted: list[str], timeout_s: float) -> None:
    """Until the service answered for 0.5 s straight and every faulted component is back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples, transitions = prober.snapshot()
        found = recovery(samples, transitions, fault_ns, faulted)
        recent = [
            s for s in samples
            if s.target == FRONTEND and s.intended_ns > time.monotonic_ns() - 500_000_000
        ]  # fmt: skip
        if found.mttr_component_s is not None and recent and all(s.outcome == "ok" for s in recent):
            return
        time.sleep(0.05)
    log.warning("no recovery within %.0fs", timeout_s)


def _seconds(t_ns: int, origin_ns: int) -> float:
    return round((t_ns - origin_ns) / 1e9, 6)


def run(spec: ExperimentSpec, reports_dir: Path) -> ExperimentResult:
    """Run one experiment and write ``<reports_dir>/<run-id>/result.json`` and summary.txt."""
    run_dir = RunDir.create(reports_dir)
    reaped = cleanup_leftovers()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with LocalStack(spec.stack) as stack:
        fault = make_fault(spec.fault, stack, spec.target, spec.seed, **spec.fault_params)
        before = wait_for_steady_state(stack, spec.steady_state, timeout_s=30)
        with Prober(
            stack, spec.probe_interval_s, samples_path=run_dir.path / "probes.jsonl"
        ) as prober:
            origin_ns = time.monotonic_ns()
            time.sleep(spec.baseline_s)
            with fault:
                time.sleep(spec.hold_s)
            record = fault.record
            assert record is not None
            faulted = list(record.targets)
            _wait_for_recovery(prober, record.effective_ns, faulted, spec.recovery_timeout_s)
            time.sleep(spec.settle_s)
            end_ns = time.monotonic_ns()
        samples, transitions = prober.snapshot()
        try:
            after = wait_for_steady_state(stack, spec.steady_state, timeout_s=15)
        except Exception as exc:  # the verdict reports it; the run still writes its report
            after = check_steady_state(stack, spec.steady_state)
            log.warning("steady state not restored: %s", exc)
        state = stack.state()
        events: list[ProcessEvent] = stack.events
        ready_s = stack.ready_s or 0.0

    phases = [
        Phase("baseline", origin_ns, record.requested_ns),
        Phase("fault", record.requested_ns, record.reverted_ns),
        Phase("recovery", record.reverted_ns, end_ns),
    ]
    targets = [FRONTEND] + [n.name for n in state.nodes]
    stats = [phase_stats(samples, p, t) for p in phases for t in targets]
    found: Recovery = recovery(samples, transitions, record.effective_ns, faulted)
    measured: dict[str, float | None] = {
        "ttd_s": found.ttd_s,
        "outage_s": found.outage_s,
        "mttr_service_s": found.mttr_service_s,
        "mttr_component_s": found.mttr_component_s,
    }
    for s in stats:
        if s.target == FRONTEND:
            measured[f"availability_pct[{s.phase}]"] = s.availability_pct
            for key, value in (("p50_ms", s.p50_us), ("p99_ms", s.p99_us), ("max_ms", s.max_us)):
                measured[f"{key}[{s.phase}]"] = value / 1000 if value is not None else None
    verdicts = evaluate(spec.slos, measured)
    passed = before.ok and after.ok and all(v.passed for v in verdicts)

    result = ExperimentResult(
        run_id=run_dir.run_id,
        run_dir=str(run_dir.path),
        passed=passed,
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
            "probes_file": str(run_dir.path / "probes.jsonl"),
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


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f} ms"


def summarize(result: ExperimentResult) -> str:
    """The lines a person reads first, at 3 a.m."""
    exp, fault, rec = result.experiment, result.fault, result.recovery
    stack = result.stack
    hc = stack["health_check"]
    nodes = [c for c in stack["components"] if c["role"] != "balancer"]
    lines = [
        f"{'PASS' if result.passed else 'FAIL'}  {exp['fault']} {exp['target']} "
        f"({', '.join(fault['targets'])}) under probes every {exp['probe_interval_s'] * 1000:g} ms"
        f"  run {result.run_id} ({result.duration_s:.1f}s)",
        f"stack: {len(nodes)} x {nodes[0]['kind']} behind HAProxy (check inter {hc['inter_ms']} ms,"
        f" fall {hc['fall']}, rise {hc['rise']}), ready in {result.stack_ready_s:.2f}s",
        f"fault: {fault['mechanism']} on {', '.join(fault['targets'])}, in effect after "
        f"{fault['apply_us']:.0f} us, undone after {fault['revert_us']:.0f} us",
    ]
    restarts = [e for e in result.process_events if e["kind"] == "started"]
    deaths = [e for e in result.process_events if e["kind"] == "exited"]
    for death in deaths:
        back = next(
            (
                r
                for r in restarts
                if r["component"] == death["component"] and r["t_s"] > death["t_s"]
            ),
            None,
        )
        again = (
            f", restarted {back['t_s'] - death['t_s']:.3f}s later" if back else ", not restarted"
        )
        lines.append(f"  {death['component']} {death['detail']} at t={death['t_s']:.3f}s{again}")
    ttd = "never (HAProxy did not mark it DOWN)" if rec["ttd_s"] is None else f"{rec['ttd_s']:.3f}s"
    comp = "not recovered" if rec["mttr_component_s"] is None else f"{rec['mttr_component_s']:.3f}s"
    lines.append(
        f"recovery: TTD {ttd}; client-visible outage {rec['outage_s']:.3f}s "
        f"({rec['failed_probes']} failed frontend probes); "
        f"MTTR service {rec['mttr_service_s']:.3f}s, component {comp}"
    )
    for p in result.probes:
        if p["target"] == FRONTEND and p["probes"]:
            classes = ", ".join(f"{k} x{v}" for k, v in p["failure_classes"].items()) or "none"
            lines.append(
                f"  {p['phase']:<9} {p['probes']:>5} probes, "
                f"availability {p['availability_pct']:.3f}%, p50 {_ms(p['p50_us'])}, "
                f"p99 {_ms(p['p99_us'])}, max {_ms(p['max_us'])};"
                f" failures: {classes}"
            )
    lines.append("SLOs:")
    for v in result.slos:
        lines.append(f"  {'ok  ' if v['passed'] else 'FAIL'} {v['message']}")
    for label, doc in (
        ("before", result.steady_state_before),
        ("after", result.steady_state_after),
    ):
        bad = [f"{c['name']}: {c['detail']}" for c in doc["checks"] if not c["ok"]]
        lines.append(
            f"steady state {label}: " + ("holds" if not bad else "BROKEN: " + "; ".join(bad))
        )
    if result.reaped:
        lines.append("removed leftovers of earlier runs: " + "; ".join(result.reaped))
    lines.append(f"report: {result.run_dir}/result.json")
    return "\n".join(lines)


__all__ = ["DEFAULT_SLOS", "ExperimentResult", "ExperimentSpec", "run", "summarize"]
