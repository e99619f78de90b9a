"""Report rendering: report.html for a 1-hour run at 200 req/s (720,000 samples) must
render in under 10 s and weigh under 5 MB.

The run's load is real data through the real recorder: 200 samples a second for an hour
(the searcher mix's methods, log-normal latencies around 0.6 ms) with a 30 s fault halfway
in which a quarter of the requests fail and the rest answer in 200-1000 ms, fed to
`harness.measure.recorder.Recorder`, whose summary gives the per-second timeline (exact
p50/p99) and the per-phase, per-method percentiles. The rest of the document (probe
timeline of 2,000 windows x 3 targets, head lag every 250 ms per node and through the
frontend, recovery, SLOs, budget) is built in result.json's shape directly, because
building a whole `RunResult` would need a live stack's objects.

Timed: the first render in this process (cold: it imports matplotlib, as a run's report
does) and the median of the next renders (warm). References measured in the same run, as
ratios, because this machine is noisy: a 1-minute run's document rendered the same way
(what an hour costs over a minute) and a json.dumps + json.loads of the hour's document
(the cheapest thing any report does with it).

    .venv/bin/python bench/report_render.py [--duration-s 3600] [--rate 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.recorder import LoadSummary, Percentiles, Recorder
from harness.report.document import SCHEMA

TARGET_S = 10.0
TARGET_MB = 5.0
FAULT_S = 30.0
PROBE_WINDOWS = 2000
HEAD_EVERY_S = 0.25
NS = 1_000_000_000
# The searcher mix's methods and shares (roughly: what the real run's result shows).
METHODS = {
    "eth_call": 36, "eth_getLogs": 11, "eth_getStorageAt": 10, "eth_blockNumber": 8,
    "eth_getBlockByNumber": 7, "eth_estimateGas": 6, "eth_getTransactionReceipt": 5,
    "debug_traceCall": 4, "eth_sendRawTransaction": 3, "eth_getBalance": 2,
    "eth_getTransactionCount": 2, "batch": 1, "eth_feeHistory": 1, "eth_gasPrice": 1,
    "eth_chainId": 1, "eth_maxPriorityFeePerGas": 1, "eth_getBlockByNumber_full": 1,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sample:
    """What the recorder reads of a load sample."""

    intended_ns: int
    latency_us: float
    method: str
    outcome: str


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 4)


def _pcts(p: Percentiles) -> dict[str, float | None]:
    return {
        "p50_ms": _ms(p.p50_us),
        "p99_ms": _ms(p.p99_us),
        "p999_ms": _ms(p.p999_us),
        "max_ms": _ms(p.max_us),
    }


def record_load(duration_s: float, rate: int, fault_at_s: float, seed: int) -> LoadSummary:
    """``rate`` samples a second for ``duration_s`` through the real recorder."""
    rng = random.Random(seed)
    names, weights = list(METHODS), list(METHODS.values())
    recorder = Recorder()
    origin = 1_000 * NS
    recorder.begin_phase("baseline", origin)
    fault_ns, recovery_ns = origin + int(fault_at_s * NS), origin + int((fault_at_s + FAULT_S) * NS)
    step_ns = NS // rate
    total = int(duration_s * rate)
    batch: list[Sample] = []
    phase = "baseline"
    for i in range(total):
        t = origin + i * step_ns
        if phase == "baseline" and t >= fault_ns:
            recorder.add(batch)
            batch = []
            recorder.begin_phase(phase := "fault", fault_ns)
        elif phase == "fault" and t >= recovery_ns:
            recorder.add(batch)
            batch = []
            recorder.begin_phase(phase := "recovery", recovery_ns)
        method = rng.choices(names, weights)[0]
        if phase == "fault":
            failed = rng.random() < 0.25
            latency = rng.uniform(200_000, 1_000_000) if not failed else 5_000_000.0
            outcome = rng.choice(("http_503", "timeout")) if failed else "ok"
        else:
            latency, outcome = rng.lognormvariate(6.4, 0.5), "ok"  # ~600 us
        batch.append(Sample(t, latency, method, outcome))
        if len(batch) >= 5000:
            recorder.add(batch)
            batch = []
    recorder.add(batch)
    return recorder.summary(origin + total * step_ns)


def build_doc(duration_s: float, rate: int, seed: int = 0) -> dict[str, Any]:
    """A result.json document of a run of ``duration_s`` with one kill halfway."""
    fault_at = duration_s / 2
    summary = record_load(duration_s, rate, fault_at, seed)
    rng = random.Random(seed + 1)
    window_s = max(0.25, duration_s / PROBE_WINDOWS)
    per_window = int(window_s / 0.02)
    outage = (fault_at + 0.02, fault_at + FAULT_S + 0.5)
    targets = ["frontend", "node-0", "node-1"]
    probe_rows: dict[str, list[list[float]]] = {t: [] for t in targets}
    for w in range(int(duration_s / window_s)):
        t = round(w * window_s, 6)
        for target in targets:
            down = target != "node-1" and outage[0] <= t < outage[1]
            failed = per_window if down else int(rng.random() < 0.01)
            probe_rows[target].append([t, per_window, failed, 500.0 if down else rng.uniform(1, 4)])
    lag: dict[str, list[list[float]]] = {}
    for name in ("node-0", "node-1", "frontend"):
        points = []
        for k in range(int(duration_s / HEAD_EVERY_S)):
            t = round(k * HEAD_EVERY_S, 6)
            behind = 3 if name == "node-0" and fault_at <= t < fault_at + FAULT_S + 4 else 0
            points.append([t, behind or int(rng.random() < 0.02)])
        lag[name] = points
    phases_s = {"baseline": (0.0, fault_at), "fault": (fault_at, fault_at + FAULT_S),
                "recovery": (fault_at + FAULT_S, duration_s)}  # fmt: skip
    load_phases = [
        {
            "phase": p.phase, "duration_s": p.duration_s, "requests": p.requests,
            "failed": p.failed, "error_rate_pct": p.error_rate_pct,
            "throughput_rps": p.throughput_rps, "errors": p.errors, **_pcts(p.latency),
            "methods": {
                name: {"count": m.count, "failed": m.failed, **_pcts(m.latency)}
                for name, m in p.methods.items()
            },
        }
        for p in summary.phases
    ]  # fmt: skip
    baseline_p99 = load_phases[0]["p99_ms"]
    recovery = {"ttd_s": 4.05, "outage_s": FAULT_S + 0.48, "outage_start_s": 0.02,
                "mttr_service_s": FAULT_S + 0.5, "mttr_component_s": FAULT_S + 2.1,
                "failed_probes": int((FAULT_S + 0.48) / 0.02)}  # fmt: skip
    slos = [
        ("p99_ms[baseline] <= 50", "p99_ms", "baseline", 50.0, baseline_p99),
        ("error_rate_pct[baseline] <= 1", "error_rate_pct", "baseline", 1.0, 0.0),
        ("outage_s <= 10", "outage_s", None, 10.0, recovery["outage_s"]),
        ("mttr_component_s <= 60", "mttr_component_s", None, 60.0, recovery["mttr_component_s"]),
    ]
    verdicts = [
        {"slo": text, "metric": metric, "phase": phase, "method": None, "target": target,
         "measured": got, "passed": got <= target, "message": text}
        for text, metric, phase, target, got in slos
    ]  # fmt: skip
    steady = {"ok": True, "heads": {"node-0": 9, "node-1": 9}, "duration_s": 1.0, "checks": []}
    load_spec = {"profile": "searcher", "model": "open", "rate_per_s": rate, "users": 32,
                 "workers": 2, "timeout_s": 5.0, "remote_workers": 0}  # fmt: skip
    episode = {
        "index": 0, "label": "kill primary", "spec": {"fault": "kill", "target": "primary"},
        "passed": all(v["passed"] for v in verdicts), "aborted": None,
        "start_s": 0.0, "end_s": duration_s,
        "fault": {
            "id": "kill-1", "kind": "kill", "targets": ["node-0"], "params": {},
            "mechanism": "SIGKILL", "requested_ns": 0, "effective_ns": 0,
            "revert_requested_ns": 0, "reverted_ns": 0, "apply_us": 3355.2, "revert_us": 1396.8,
            "error": None, "requested_s": fault_at - 0.003, "effective_s": fault_at,
            "revert_requested_s": fault_at + FAULT_S - 0.001, "reverted_s": fault_at + FAULT_S,
        },
        "faulted": ["node-0"],
        "phases": [{"name": n, "start_s": a, "end_s": b, "duration_s": b - a}
                   for n, (a, b) in phases_s.items()],
        "probes": [
            {"phase": n, "target": t, "probes": 100, "failures": 0, "availability_pct": 100.0,
             "p50_us": 900.0, "p99_us": 3000.0, "max_us": 4000.0, "failure_classes": {}}
            for n in phases_s for t in targets
        ],
        "recovery": recovery,
        "load_phases": load_phases,
        "frontend_head_lag_blocks": {"baseline": 0, "fault": 1, "recovery": 0},
        "measured": {v["slo"].split()[0]: v["measured"] for v in verdicts},
        "slos": verdicts,
        "steady_state_after": None,
    }  # fmt: skip
    return {
        "schema": SCHEMA, "run_id": "bench-report-render", "run_dir": "reports/bench",
        "name": "bench: kill the primary under an hour of load", "passed": episode["passed"],
        "aborted": None, "started_at": "2026-12-01T00:00:00Z", "duration_s": duration_s + 3,
        "seed": seed,
        "spec": {
            "name": "bench", "load": load_spec, "load_at": "frontend",
            "stack": {"nodes": 2, "node_kind": "anvil", "haproxy_template": None,
                      "isolation": "loopback", "fault_proxy": False, "toxiproxy": None},
            "probe_interval_s": 0.02, "probe_timeout_s": 0.5, "episodes": [],
            "slos": [s[0] for s in slos], "safeguards": ["error_rate_pct > 90 for 5s"],
            "budget": {"availability_target_pct": 99.99, "cost_per_minute": 250.0,
                       "currency": "USD"},
        },
        "fingerprints": {"stack": "558d74aa90c073e7", "template": "3d57d4148d8af4d2"},
        "stack": {
            "name": "bench", "backend": "local", "block_time_s": 1.0,
            "health_check": {"inter_ms": 2000, "fall": 3, "rise": 2},
            "components": [{"name": "node-0", "kind": "anvil", "role": "primary"},
                           {"name": "node-1", "kind": "anvil", "role": "backup"},
                           {"name": "haproxy", "kind": "haproxy", "role": "balancer"}],
        },
        "stack_ready_s": 1.2, "latency_source": "load",
        "steady_state_before": steady, "steady_state_after": steady,
        "episodes": [episode], "measured": {"max_head_lag_blocks": 3.0},
        "slos": [{"episode": 0, **v} for v in verdicts],
        "load": {
            "spec": load_spec, "at": "frontend", "url": "http://127.0.0.1:0/",
            "intended_rate_per_s": rate,
            "achieved_rate_per_s": round(sum(p.requests for p in summary.phases) / duration_s, 1),
            "samples": sum(p.requests for p in summary.phases), "duration_s": duration_s,
            "generator_health": {"processes": 2, "alive": 2, "cpu_pct": {"1": 40.0, "2": 41.0}},
            "samples_dir": "reports/bench/load", "before_first_phase": summary.before_first_phase,
            "timeline_columns": ["t_s", "ok", "failed", "p50_ms", "p99_ms", "max_ms"],
            "timeline": [[s.second, s.ok, s.failed, _ms(s.p50_us), _ms(s.p99_us), _ms(s.max_us)]
                         for s in summary.timeline],
        },
        "probe_timeline": {"window_s": window_s, "columns": ["t_s", "probes", "failed", "max_ms"],
                           "targets": probe_rows},
        "head_lag": {
            "nodes": {n: {"max_blocks": max(p[1] for p in lag[n]), "timeline": lag[n]}
                      for n in ("node-0", "node-1")},
            "frontend": {"max_blocks": max(p[1] for p in lag["frontend"]),
                         "timeline": lag["frontend"]},
        },
        "haproxy_transitions": [
            {"t_ns": 0, "server": "node-0", "status": "DOWN", "check_status": "L4CON",
             "t_s": fault_at + 4.05},
            {"t_ns": 0, "server": "node-0", "status": "UP", "check_status": "L7OK",
             "t_s": fault_at + FAULT_S + 2.1},
        ],
        "process_events": [
            {"t_ns": 0, "wall_time": 0.0, "component": "node-0", "kind": "exited", "pid": 10,
             "returncode": -9, "detail": "killed by SIGKILL", "t_s": fault_at + 0.001},
            {"t_ns": 0, "wall_time": 0.0, "component": "node-0", "kind": "started", "pid": 11,
             "returncode": None, "detail": "", "t_s": fault_at + FAULT_S + 0.5},
        ],
        "budget": {"availability_target_pct": 99.99, "allowed_per_month_s": 259.2,
                   "allowed_per_year_s": 3155.76, "downtime_s": recovery["outage_s"],
                   "month_budget_used_pct": 100 * recovery["outage_s"] / 259.2,
                   "cost": recovery["outage_s"] / 60 * 250.0, "currency": "USD",
                   "cost_per_minute": 250.0},
        "reaped": [],
    }  # fmt: skip


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration-s", type=float, default=3600.0, help="the run's length")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--runs", type=int, default=3, help="warm renders to take the median of")
    parser.add_argument("--save", type=Path, help="write the hour's report.html here too")
    args = parser.parse_args()
    load_before = os.getloadavg()

    print(f"recording {args.duration_s * args.rate:,.0f} samples...", file=sys.stderr, flush=True)
    build_s, doc = timed(build_doc, args.duration_s, args.rate)
    _, minute = timed(build_doc, 60.0, args.rate)

    from harness.report.html import render_html  # imported here: the cold render pays it

    cold_s, page = timed(render_html, doc)
    warm = [timed(render_html, doc)[0] for _ in range(args.runs)]
    minute_s = statistics.median(timed(render_html, minute)[0] for _ in range(args.runs))
    text = json.dumps(doc)
    json_s = statistics.median(
        timed(lambda: json.loads(json.dumps(doc)))[0] for _ in range(args.runs)
    )
    size_mb = len(page.encode()) / 1e6
    if args.save:
        args.save.write_text(page)
    samples = doc["load"]["samples"]
    warm_s = statistics.median(warm)
    print(
        f"report.html of a {args.duration_s:g} s run at {args.rate} req/s "
        f"({samples:,} samples through the recorder, {len(doc['load']['timeline'])} seconds, "
        f"{sum(len(r) for r in doc['probe_timeline']['targets'].values())} probe windows, "
        f"result.json {len(text) / 1e6:.2f} MB; recorder + document built in {build_s:.1f} s):"
    )
    print(f"  render, cold (imports matplotlib): {cold_s:.2f} s  (target < {TARGET_S:g} s)")
    print(f"  render, warm: median {warm_s:.2f} s of {args.runs}  (min {min(warm):.2f} s)")
    print(f"  size: {size_mb:.2f} MB  (target < {TARGET_MB:g} MB)")
    print(f"  reference: a 60 s run's report renders in {minute_s:.2f} s (warm, median)")
    print(f"  ratio {args.duration_s:g} s run / 60 s run (warm) = {warm_s / minute_s:.2f}x")
    print(f"  reference: json.dumps + json.loads of the hour's document {json_s:.3f} s")
    print(f"  ratio render (warm) / json round trip = {warm_s / json_s:.1f}x")
    load_after = os.getloadavg()
    print(
        f"  machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (above the core count, the absolute times are inflated; "
        "the ratios less so)"
    )
    verdict = cold_s < TARGET_S and size_mb < TARGET_MB
    print(
        f"  {'PASS' if verdict else 'FAIL'}: cold render < {TARGET_S:g} s, size < {TARGET_MB:g} MB"
    )


if __name__ == "__main__":
    main()
