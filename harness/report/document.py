"""result.json: a run's typed result written as one strict JSON document (schema
``harness.result/2``), and read back for reports rendered later (``harness report``).

Times in the document are seconds from the run's origin (the start of the first
episode), rounded to microseconds; latencies are in milliseconds unless a key says ``_us``.
Every report (the summary, report.html, JUnit, the history) reads this document and
nothing else, so a report rendered from an old run's file is the report that run wrote.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.experiment.episode import EpisodeResult
    from harness.experiment.result import RunResult
    from harness.measure.checker import Anomaly
    from harness.stack.steady import SteadyState

SCHEMA = "harness.result/2"
RESULT_FILE = "result.json"
Doc = dict[str, Any]


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 4)


def _steady(result: SteadyState | None) -> Doc | None:
    if result is None:
        return None
    return {
        "ok": result.ok,
        "heads": result.heads,
        "duration_s": round(result.duration_s, 3),
        "checks": [asdict(c) for c in result.checks],
    }


def _percentiles(latency: Any) -> Doc:
    return {
        "p50_ms": _ms(latency.p50_us),
        "p99_ms": _ms(latency.p99_us),
        "p999_ms": _ms(latency.p999_us),
        "max_ms": _ms(latency.max_us),
    }


def _episode(result: RunResult, e: EpisodeResult) -> Doc:
    at = result.seconds
    fault = e.fault
    return {
        "index": e.index,
        "label": e.spec.label,
        "spec": asdict(e.spec),
        "passed": e.passed,
        "aborted": e.aborted,
        "start_s": at(e.start_ns),
        "end_s": at(e.end_ns),
        "fault": {
            **fault.to_dict(),
            "requested_s": at(fault.requested_ns),
            "effective_s": at(fault.effective_ns),
            "revert_requested_s": at(fault.revert_requested_ns) if fault.reverted_ns else None,
            "reverted_s": at(fault.reverted_ns) if fault.reverted_ns else None,
        },
        "faulted": list(e.faulted),
        "phases": [
            {
                "name": p.name,
                "start_s": at(p.start_ns),
                "end_s": at(p.end_ns),
                "duration_s": round(p.duration_s, 6),
            }
            for p in e.phases
        ],
        "probes": [asdict(s) for s in e.probes],
        "recovery": asdict(e.recovery),
        "load_phases": [
            {
                "phase": p.phase,
                "duration_s": p.duration_s,
                "requests": p.requests,
                "failed": p.failed,
                "error_rate_pct": p.error_rate_pct,
                "throughput_rps": p.throughput_rps,
                "errors": p.errors,
                **_percentiles(p.latency),
                "methods": {
                    name: {"count": m.count, "failed": m.failed, **_percentiles(m.latency)}
                    for name, m in p.methods.items()
                },
            }
            for p in e.load
        ],
        "frontend_head_lag_blocks": e.frontend_head_lag_blocks,
        "measured": e.measured,
        "slos": [asdict(v) for v in e.slos],
        "steady_state_after": _steady(e.steady_after),
        "steady_wait_s": e.steady_wait_s,
        # This episode alone, again: the command a failing game-day episode shrinks to.
        "command": shlex.join(e.command),
        # What clients saw that fits no history of the chain: the first few of each kind
        # (the counts per phase are the measured ``head_regressions[fault]`` and so on).
        "anomalies": {
            kind: [_anomaly(result, a) for a in e.anomalies if a.kind == kind]
            for kind in sorted({a.kind for a in e.anomalies})
        },
    }


def _anomaly(result: RunResult, a: Anomaly) -> Doc:
    o = a.observation
    return {
        "t_s": result.seconds(o.sent_ns),
        "answered_s": result.seconds(o.answered_ns),
        "session": o.session,
        "request": f"{o.method} {o.key}".strip(),
        "response": o.answer(),
        "why": a.why,
    }


def _histories(result: RunResult) -> Doc | None:
    h = result.histories
    if h is None:
        return None
    return {
        "observations": h.result.observations,
        "sessions": h.result.sessions,
        "counts": h.result.counts(),  # the whole run's, warm-up and steady waits included
        "chain": h.chain,
        "chain_log": h.chain_log,
        "read_s": h.read_s,
        "check_s": h.check_s,
    }


def result_document(result: RunResult) -> Doc:
    """The whole run as a JSON-ready dict."""
    at = result.seconds
    spec = result.spec
    load = None
    if result.load is not None and spec.load is not None:
        info = result.load
        requests = sum(p.requests for e in result.episodes for p in e.load)
        length = sum(p.duration_s for e in result.episodes for p in e.load)
        load = {
            "spec": asdict(spec.load),
            "at": spec.load_at,
            "url": info.url,
            "intended_rate_per_s": spec.load.rate_per_s if spec.load.model == "open" else None,
            "achieved_rate_per_s": round(requests / length, 1) if length else 0.0,
            "samples": info.samples,
            "duration_s": info.duration_s,
            "generator_health": info.generator_health,
            "samples_dir": info.samples_dir,
            "before_first_phase": info.summary.before_first_phase,
            # Per second of intended send: [t_s, ok, failed, p50_ms, p99_ms, max_ms].
            "timeline_columns": ["t_s", "ok", "failed", "p50_ms", "p99_ms", "max_ms"],
            "timeline": [
                [s.second, s.ok, s.failed, _ms(s.p50_us), _ms(s.p99_us), _ms(s.max_us)]
                for s in info.summary.timeline
            ],
        }
    probe_timeline: dict[str, list[list[float]]] = {}
    for w in result.probe_windows:
        probe_timeline.setdefault(w.target, []).append(
            [at(w.t_ns), w.probes, w.failed, _ms(w.max_latency_us) or 0.0]
        )
    measured = result.measured
    return {
        "schema": SCHEMA,
        "run_id": result.run_id,
        "run_dir": result.run_dir,
        "name": result.name,
        "passed": result.passed,
        "aborted": result.aborted,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "seed": spec.seed,
        "spec": {
            "name": spec.name,
            "stack": spec.stack.to_dict(),
            "load": asdict(spec.load) if spec.load is not None else None,
            "load_at": spec.load_at,
            "probe_interval_s": result.probe_interval_s,
            "probe_timeout_s": result.probe_timeout_s,
            "episodes": [asdict(e) for e in spec.episodes],
            "slos": [str(s) for s in spec.slos],
            "safeguards": [str(g) for g in spec.safeguards],
            "budget": asdict(spec.budget),
        },
        "fingerprints": {
            "stack": result.stack_fingerprint,
            "template": result.template_fingerprint,
        },
        "stack": result.stack.to_dict(),
        "stack_ready_s": result.stack_ready_s,
        "latency_source": "load" if load else "probes",
        "probes_file": str(Path(result.run_dir) / "probes.jsonl"),
        "steady_state_before": _steady(result.steady_state_before),
        "steady_state_after": _steady(result.steady_state_after),
        "episodes": [_episode(result, e) for e in result.episodes],
        "measured": measured,
        "slos": [{"episode": e.index, **asdict(v)} for e in result.episodes for v in e.slos],
        "load": load,
        "probe_timeline": {
            "window_s": result.probe_window_s,
            "columns": ["t_s", "probes", "failed", "max_ms"],
            "targets": probe_timeline,
        },
        "head_lag": {
            "nodes": {
                name: {
                    "max_blocks": max((p.blocks for p in points), default=None),
                    "timeline": [[at(p.t_ns), p.blocks] for p in points],
                }
                for name, points in result.node_lag.items()
            },
            "frontend": {
                "max_blocks": max((p.blocks for p in result.frontend_lag), default=None),
                "timeline": [[at(p.t_ns), p.blocks] for p in result.frontend_lag],
            },
        },
        "haproxy_transitions": [{**asdict(t), "t_s": at(t.t_ns)} for t in result.transitions],
        "process_events": [{**asdict(e), "t_s": at(e.t_ns)} for e in result.events],
        "budget": asdict(result.budget),
        "reaped": list(result.reaped),
        "kind": spec.kind,
        "skipped": [
            {"index": i, "label": spec.episodes[i].label, "why": why} for i, why in result.skipped
        ],
        "by_fault_kind": {k: asdict(f) for k, f in result.by_fault_kind().items()},
        "replay": {"seed": spec.seed, "command": shlex.join(result.replay_command)},
        "clients": _histories(result),
    }


def read_document(path: Path) -> Doc:
    """A result.json read back; `ConfigError` naming the file if it is missing or not one."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "run dir",
            str(path.parent),
            "holds no result.json: give a run's directory under reports/",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("result file", str(path), f"cannot read it: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "result file",
            str(path),
            f"is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "the run was cut off or the file was edited: re-run it",
        ) from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(
            "result file",
            str(path),
            f"has schema {found!r}, not {SCHEMA!r}: it was written by another version; re-run it",
        )
    return doc
