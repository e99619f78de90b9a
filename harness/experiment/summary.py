"""The summary: the lines a person reads first, at 3 a.m., from a run's plain result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.measure import FRONTEND

if TYPE_CHECKING:
    from harness.experiment.run import ExperimentResult


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}%"


def _restarts(events: list[dict[str, Any]]) -> list[str]:
    lines = []
    starts = [e for e in events if e["kind"] == "started"]
    for death in (e for e in events if e["kind"] == "exited"):
        back = next(
            (r for r in starts if r["component"] == death["component"] and r["t_s"] > death["t_s"]),
            None,
        )
        again = (
            f", restarted {back['t_s'] - death['t_s']:.3f}s later" if back else ", not restarted"
        )
        lines.append(f"  {death['component']} {death['detail']} at t={death['t_s']:.3f}s{again}")
    return lines


def summarize(result: ExperimentResult) -> str:
    exp, fault, rec, stack = result.experiment, result.fault, result.recovery, result.stack
    hc = stack["health_check"]
    nodes = [c for c in stack["components"] if c["role"] in ("primary", "backup")]
    load = result.load
    under = "load and probes" if load else "probes"
    verdict = "PASS" if result.passed else ("ABORTED" if result.aborted else "FAIL")
    lines = [
        f"{verdict}  {exp['fault']} {exp['target']} ({', '.join(fault['targets'])}) under {under}"
        f"  run {result.run_id} ({result.duration_s:.1f}s)",
        f"stack: {len(nodes)} x {nodes[0]['kind']} behind HAProxy (check inter {hc['inter_ms']} ms,"
        f" fall {hc['fall']}, rise {hc['rise']}), ready in {result.stack_ready_s:.2f}s",
    ]
    if result.aborted:
        lines.append(f"ABORTED: {result.aborted}")
    if load:
        spec = load["spec"]
        rate = (
            f"open model, {spec['rate_per_s']:g} req/s intended"
            if spec["model"] == "open"
            else f"closed model, {spec['users']} users"
        )
        cpu = ", ".join(f"{v}%" for v in load["generator_health"].get("cpu_pct", {}).values())
        at = "" if load.get("at", "frontend") == "frontend" else f" at {load['at']} directly"
        lines.append(
            f"load{at}: profile {spec['profile']}, {rate}, "
            f"{load['achieved_rate_per_s']:g} req/s achieved, "
            f"{spec['workers']} worker(s)"
            + (f" + {spec['remote_workers']} remote" if spec.get("remote_workers") else "")
            + f" (CPU here {cpu or '-'})"
        )
    lines.append(
        f"fault: {fault['mechanism']} on {', '.join(fault['targets'])}, in effect after "
        f"{fault['apply_us']:.0f} us, undone after {fault['revert_us']:.0f} us"
    )
    lines += _restarts(result.process_events)
    ttd = "never (HAProxy did not mark it DOWN)" if rec["ttd_s"] is None else f"{rec['ttd_s']:.3f}s"
    comp = "not recovered" if rec["mttr_component_s"] is None else f"{rec['mttr_component_s']:.3f}s"
    lines.append(
        f"recovery: TTD {ttd}; client-visible outage {rec['outage_s']:.3f}s "
        f"({rec['failed_probes']} failed frontend probes, timeout "
        f"{exp['probe_timeout_s'] * 1000:g} ms); MTTR service {rec['mttr_service_s']:.3f}s, "
        f"component {comp}"
    )
    if load:
        for p in load["phases"]:
            errors = ", ".join(f"{k} x{v}" for k, v in p["errors"].items()) or "none"
            # A rate over a few milliseconds (the phase of a kill) says nothing; its length does.
            rate = (
                f"{p['throughput_rps']:7.1f} req/s"
                if p["duration_s"] >= 1
                else f"in {p['duration_s'] * 1000:.1f} ms"
            )
            lines.append(
                f"  load {p['phase']:<9} {p['requests']:>6} req, {rate}, "
                f"errors {p['error_rate_pct']:.2f}% ({errors}); p50 {_ms(p['p50_us'])}, "
                f"p99 {_ms(p['p99_us'])}, p99.9 {_ms(p['p999_us'])}, max {_ms(p['max_us'])}"
            )
    for p in result.probes:
        if p["target"] == FRONTEND and p["probes"]:
            classes = ", ".join(f"{k} x{v}" for k, v in p["failure_classes"].items()) or "none"
            lines.append(
                f"  probe {p['phase']:<9} {p['probes']:>5} probes, "
                f"availability {_pct(p['availability_pct'])}, p99 {_ms(p['p99_us'])}; "
                f"failures: {classes}"
            )
    lag = result.measured.get("max_head_lag_blocks")
    per_node = ", ".join(
        f"{name} {doc['max_blocks']}"
        for name, doc in result.head_lag.items()
        if doc["max_blocks"] is not None
    )
    lines.append(
        f"max head lag between nodes: {'-' if lag is None else f'{lag:g} blocks'}"
        + (f" (most behind, per node: {per_node})" if per_node else "")
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
