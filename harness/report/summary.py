"""summary.txt: the lines a person reads first, at 3 a.m., from a run's result.json."""

from __future__ import annotations

from typing import Any

from harness.measure.metrics import HISTORY_METRICS, PHASES
from harness.report.alerts import alert_rows
from harness.report.document import Doc


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}%"


def _restarts(events: list[dict[str, Any]], start_s: float, end_s: float) -> list[str]:
    lines = []
    starts = [e for e in events if e["kind"] == "started"]
    for death in (e for e in events if e["kind"] == "exited" and start_s <= e["t_s"] < end_s):
        back = next(
            (r for r in starts if r["component"] == death["component"] and r["t_s"] > death["t_s"]),
            None,
        )
        again = (
            f", restarted {back['t_s'] - death['t_s']:.3f}s later" if back else ", not restarted"
        )
        lines.append(f"  {death['component']} {death['detail']} at t={death['t_s']:.3f}s{again}")
    return lines


def verdict_word(doc: Doc) -> str:
    return "PASS" if doc["passed"] else ("ABORTED" if doc["aborted"] else "FAIL")


def _load_line(doc: Doc) -> str | None:
    load = doc["load"]
    if not load:
        return None
    spec = load["spec"]
    rate = (
        f"open model, {spec['rate_per_s']:g} req/s intended"
        if spec["model"] == "open"
        else f"closed model, {spec['users']} users"
    )
    cpu = ", ".join(f"{v}%" for v in load["generator_health"].get("cpu_pct", {}).values())
    at = "" if load.get("at", "frontend") == "frontend" else f" at {load['at']} directly"
    return (
        f"load{at}: profile {spec['profile']}, {rate}, "
        f"{load['achieved_rate_per_s']:g} req/s achieved, "
        f"{spec['workers']} worker(s)"
        + (f" + {spec['remote_workers']} remote" if spec.get("remote_workers") else "")
        + f" (CPU here {cpu or '-'})"
    )


def _episode_lines(doc: Doc, e: Doc, several: bool) -> list[str]:
    fault, rec = e["fault"], e["recovery"]
    lines = [f"episode {e['index'] + 1}: {e['label']}"] if several else []
    lines.append(
        f"fault: {fault['kind']} via {fault['mechanism']} on {', '.join(fault['targets'])}, "
        f"in effect after {fault['apply_us']:.0f} us"
        + (f", undone after {fault['revert_us']:.0f} us" if fault["revert_us"] is not None else "")
    )
    lines += _restarts(doc["process_events"], e["start_s"], e["end_s"])
    ttd = "never (HAProxy did not mark it DOWN)" if rec["ttd_s"] is None else f"{rec['ttd_s']:.3f}s"
    comp = "not recovered" if rec["mttr_component_s"] is None else f"{rec['mttr_component_s']:.3f}s"
    lines.append(
        f"recovery: TTD {ttd}; client-visible outage {rec['outage_s']:.3f}s "
        f"({rec['failed_probes']} failed frontend probes, timeout "
        f"{doc['spec']['probe_timeout_s'] * 1000:g} ms); MTTR service "
        f"{rec['mttr_service_s']:.3f}s, component {comp}"
    )
    for p in e["load_phases"]:
        errors = ", ".join(f"{k} x{v}" for k, v in p["errors"].items()) or "none"
        # A rate over a few milliseconds (the phase of a kill) says nothing; its length does.
        rate = (
            f"{p['throughput_rps']:7.1f} req/s"
            if p["duration_s"] >= 1
            else f"in {p['duration_s'] * 1000:.1f} ms"
        )
        lines.append(
            f"  load {p['phase']:<9} {p['requests']:>6} req, {rate}, "
            f"errors {p['error_rate_pct']:.2f}% ({errors}); p50 {_ms(p['p50_ms'])}, "
            f"p99 {_ms(p['p99_ms'])}, p99.9 {_ms(p['p999_ms'])}, max {_ms(p['max_ms'])}"
        )
    for p in e["probes"]:
        if p["target"] == "frontend" and p["probes"]:
            classes = ", ".join(f"{k} x{v}" for k, v in p["failure_classes"].items()) or "none"
            lag = e["frontend_head_lag_blocks"].get(p["phase"])
            lines.append(
                f"  probe {p['phase']:<9} {p['probes']:>5} probes, "
                f"availability {_pct(p['availability_pct'])}, "
                f"p99 {_ms(p['p99_us'] / 1000 if p['p99_us'] is not None else None)}, "
                f"head {'-' if lag is None else lag} blocks behind the best node; "
                f"failures: {classes}"
            )
    for a in alert_rows(e.get("measured") or {}):
        fired = "never fired" if a.fired_s is None else f"fired {a.fired_s:.3f}s"
        resolved = "" if a.resolved_s is None else f", resolved {a.resolved_s:.3f}s"
        held = "" if a.pending_s is None else f"condition held {a.pending_s:.3f}s, "
        bound = "" if a.expected_s is None else f" (for: + intervals {a.expected_s:g}s)"
        lines.append(f"  alert {a.name}: {held}{fired}{resolved}{bound}")
    lines.append("SLOs:" if not several else "  SLOs:")
    for v in e["slos"]:
        lines.append(f"  {'ok  ' if v['passed'] else 'FAIL'} {v['message']}")
    return lines


def clients_line(doc: Doc) -> str | None:
    """What clients saw, in one line: each anomaly kind found, per phase over the episodes."""
    checked = doc.get("clients")  # absent from the documents of older runs
    if not checked:
        return None
    found = []
    for kind in HISTORY_METRICS:
        per_phase = {
            phase: sum(e["measured"].get(f"{kind}[{phase}]") or 0 for e in doc["episodes"])
            for phase in PHASES
        }
        total = sum(per_phase.values())
        if total:
            phases = ", ".join(f"{p} {n:g}" for p, n in per_phase.items() if n)
            found.append(f"{kind} {total:g} ({phases})")
    against = f"{checked['observations']} answers to {checked['sessions']} sessions checked"
    if not found:
        return f"what clients saw: no anomaly; {against}"
    return f"what clients saw: {'; '.join(found)}; {against}"


def _chains(stack: Doc) -> str:
    return "one chain" if stack.get("chain") == "one" else "a chain per node"


def software_line(stack: Doc) -> str | None:
    """What ran (the node client, HAProxy, the proxy), with versions; None for a result
    written before stacks recorded it."""
    ran = stack.get("software") or {}
    if not ran:
        return None
    return f"{ran['node']}; {ran['balancer']}; proxy: {ran['proxy']}"


def summarize(doc: Doc) -> str:
    """The summary text of a run's document."""
    stack = doc["stack"]
    hc = stack["health_check"]
    nodes = [c for c in stack["components"] if c["role"] in ("primary", "backup")]
    episodes = doc["episodes"]
    several = len(episodes) > 1
    under = "load and probes" if doc["load"] else "probes"
    what = doc["name"]
    if not several:
        fault = episodes[0]["fault"]
        what = f"{what} ({', '.join(fault['targets'])})"
    lines = [
        f"{verdict_word(doc)}  {what} under {under}  "
        f"run {doc['run_id']} ({doc['duration_s']:.1f}s)",
        f"stack: {len(nodes)} x {nodes[0]['kind']} behind HAProxy, {stack['backend']} backend"
        f" (check inter {hc['inter_ms']} ms,"
        f" fall {hc['fall']}, rise {hc['rise']}), {_chains(doc['stack'])},"
        f" ready in {doc['stack_ready_s']:.2f}s",
    ]
    ran = software_line(stack)
    if ran:
        lines.append(f"ran: {ran}")
    if doc["aborted"]:
        lines.append(f"ABORTED: {doc['aborted']}")
    load_line = _load_line(doc)
    if load_line:
        lines.append(load_line)
    for e in episodes:
        lines += _episode_lines(doc, e, several)
    clients = clients_line(doc)
    if clients:
        lines.append(clients)
    per_node = ", ".join(
        f"{name} {n['max_blocks']}"
        for name, n in doc["head_lag"]["nodes"].items()
        if n["max_blocks"] is not None
    )
    lag = doc["measured"].get("max_head_lag_blocks")
    lines.append(
        f"max head lag between nodes: {'-' if lag is None else f'{lag:g} blocks'}"
        + (f" (most behind, per node: {per_node})" if per_node else "")
    )
    budget = doc["budget"]
    lines.append(
        f"error budget: {budget['availability_target_pct']:g}% allows "
        f"{budget['allowed_per_month_s']:.0f}s a month; this run's {budget['downtime_s']:.3f}s "
        f"of outage used {budget['month_budget_used_pct']:.2f}% of it"
        + (
            f", costing {budget['cost']:.2f} {budget['currency']}"
            if budget["cost_per_minute"]
            else ""
        )
    )
    for label, steady in (
        ("before", doc["steady_state_before"]),
        ("after", doc["steady_state_after"]),
    ):
        bad = [f"{c['name']}: {c['detail']}" for c in steady["checks"] if not c["ok"]]
        lines.append(
            f"steady state {label}: " + ("holds" if not bad else "BROKEN: " + "; ".join(bad))
        )
    for s in doc.get("skipped") or []:
        lines.append(f"episode {s['index'] + 1} ({s['label']}) {s['why']}")
    if several:
        for e in episodes:
            if not e["passed"] and e.get("command"):
                lines.append(f"episode {e['index'] + 1} alone: {e['command']}")
    replay = doc.get("replay") or {}
    if replay.get("command"):
        lines.append(f"again: {replay['command']}")
    if doc["reaped"]:
        lines.append("removed leftovers of earlier runs: " + "; ".join(doc["reaped"]))
    lines.append(f"report: {doc['run_dir']}/report.html")
    return "\n".join(lines)
