"""Results as metrics: a run's document (result.json) in Prometheus's text exposition
format, for node exporter's textfile collector (`write_textfile`) and for a Pushgateway
(`harness.report.pushgateway`), so game-day results reach the dashboards a team has
(fixtures/grafana-dashboard.json reads them).

Place in the flow: renders a run's document (`harness.report.document`), nothing live.

Every series is a gauge (a finished run's figures do not count up) and carries the run's
labels: ``run`` (its name in the history), ``run_id``, ``kind`` (experiment or gameday),
``policy`` (the stack's HAProxy policy) and ``chain``. ``run_id`` makes each run a series
of its own; a dashboard aggregates ``by (run)`` for a name's verdicts over time. No
sample has a timestamp, since neither the textfile collector nor the Pushgateway takes
one: ``harness_run_start_time_seconds`` says when the run was. A figure the run did not
measure (a TTD with no detection, an SLO never measured) is left out, not written as NaN.

Episodes are numbered from 1, as the summary and the JUnit report number them.

Written with prometheus_client: its exposition escapes label values (backslash, quote,
newline) and HELP text as the format requires, so a scenario's name such as
``scenarios/test_x.py::test_y[roadmap]`` or a quote in an SLO cannot break the file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from harness.errors import ConfigError
from harness.report.document import Doc

TEXTFILE = "harness.prom"
RUN_LABELS = ("run", "run_id", "kind", "policy", "chain")
_EPISODE = ("episode", "fault", "target")
_SLO = ("episode", "slo")

#: Every metric the exporter writes: name -> (its labels beyond the run's, HELP).
#: fixtures/grafana-dashboard.json's queries are checked against these names.
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "harness_run_passed": ((), "1 if every SLO held and the steady state held, else 0."),
    "harness_run_aborted": ((), "1 if a safeguard or a signal ended the run early."),
    "harness_run_duration_seconds": ((), "How long the run took, stack start to verdict."),
    "harness_run_start_time_seconds": ((), "When the run started, Unix time."),
    "harness_run_episodes": ((), "Episodes the run held (a game day has several)."),
    "harness_run_episodes_skipped": ((), "Scheduled episodes the run could not hold."),
    "harness_stack_ready_seconds": ((), "How long the stack took to be ready."),
    "harness_steady_state_ok": (
        ("when",),
        "1 if the steady state held before or after the run (when=before|after).",
    ),
    "harness_slo_ok": (_SLO, "1 if the SLO held in the episode, else 0."),
    "harness_slo_measured": (_SLO, "The SLO's measured value, in the SLO's own unit."),
    "harness_slo_target": (_SLO, "The SLO's target, in the SLO's own unit."),
    "harness_slo_margin": (
        _SLO,
        "How far inside its target the SLO held (negative: broken by that much), "
        "in the SLO's own unit.",
    ),
    "harness_episode_passed": (_EPISODE, "1 if every SLO of the episode held, else 0."),
    "harness_episode_ttd_seconds": (
        _EPISODE,
        "Time to detect: the fault's start to HAProxy marking the server DOWN.",
    ),
    "harness_episode_outage_seconds": (_EPISODE, "How long clients saw failed probes."),
    "harness_episode_mttr_seconds": (
        (*_EPISODE, "of"),
        "Time to recover from the fault's start: of=service (clients served again) or "
        "of=component (the faulted component healthy again).",
    ),
    "harness_episode_client_anomalies": (
        (*_EPISODE, "anomaly", "phase"),
        "Answers that fit no history of the chain, by kind and phase of the episode.",
    ),
    "harness_client_anomalies": (
        ("anomaly",),
        "Answers that fit no history of the chain, by kind, over the whole run.",
    ),
    "harness_client_observations": ((), "Client answers checked against the chain."),
    "harness_error_budget_used_ratio": (
        (),
        "The run's downtime over a month's error budget at the availability target.",
    ),
    "harness_error_budget_downtime_seconds": ((), "Downtime charged to the error budget."),
    "harness_error_budget_target_ratio": ((), "The availability target, e.g. 0.9999."),
}

_OP = re.compile(r"\s(<=|>=)\s")


def _number(value: Any) -> float | None:
    """A finite float, or None for what was not measured."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _margin(slo: str, target: float, measured: float) -> float | None:
    """Headroom inside the target: target - measured for ``<=``, measured - target for ``>=``."""
    op = _OP.search(slo)
    if op is None:
        return None
    return target - measured if op.group(1) == "<=" else measured - target


class _Families:
    """The metric families of one document, each with the run's labels first."""

    def __init__(self, run_labels: dict[str, str]) -> None:
        self._run = run_labels
        self.families: dict[str, GaugeMetricFamily] = {}
        self._seen: set[tuple[str, ...]] = set()

    def add(self, name: str, value: Any, **labels: object) -> None:
        number = _number(value)
        if number is None:
            return
        extra, help_text = METRICS[name]
        family = self.families.get(name)
        if family is None:
            family = GaugeMetricFamily(name, help_text, labels=[*RUN_LABELS, *extra])
            self.families[name] = family
        values = [*self._run.values(), *(str(labels[k]) for k in extra)]
        if (name, *values) in self._seen:  # an SLO given twice: one series, not a clash
            return
        self._seen.add((name, *values))
        family.add_metric(values, number)


def run_labels(doc: Doc) -> dict[str, str]:
    """The labels every series of this run carries, in `RUN_LABELS` order."""
    stack = (doc.get("spec") or {}).get("stack") or {}
    return {
        "run": str(doc.get("name") or ""),
        "run_id": str(doc.get("run_id") or ""),
        "kind": str(doc.get("kind") or "experiment"),
        "policy": str(stack.get("policy") or ""),
        "chain": str(stack.get("chain") or ""),
    }


def _start_time_s(started_at: str | None) -> float | None:
    if not started_at:
        return None
    try:
        when = dt.datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def families(doc: Doc) -> list[Metric]:
    """The run's metric families, in `METRICS` order, each holding at least one sample."""
    out = _Families(run_labels(doc))
    add = out.add
    add("harness_run_passed", bool(doc.get("passed")))
    add("harness_run_aborted", bool(doc.get("aborted")))
    add("harness_run_duration_seconds", doc.get("duration_s"))
    add("harness_run_start_time_seconds", _start_time_s(doc.get("started_at")))
    episodes = doc.get("episodes") or []
    add("harness_run_episodes", len(episodes))
    add("harness_run_episodes_skipped", len(doc.get("skipped") or []))
    add("harness_stack_ready_seconds", doc.get("stack_ready_s"))
    for when in ("before", "after"):
        steady = doc.get(f"steady_state_{when}")
        if steady is not None:
            add("harness_steady_state_ok", bool(steady.get("ok")), when=when)

    for v in doc.get("slos") or []:
        at = {"episode": int(v.get("episode") or 0) + 1, "slo": v["slo"]}
        add("harness_slo_ok", bool(v["passed"]), **at)
        add("harness_slo_measured", v.get("measured"), **at)
        add("harness_slo_target", v.get("target"), **at)
        measured, target = _number(v.get("measured")), _number(v.get("target"))
        if measured is not None and target is not None:
            add("harness_slo_margin", _margin(v["slo"], target, measured), **at)

    clients = doc.get("clients") or {}
    anomaly_kinds = sorted((clients.get("counts") or {}).keys())
    for e in episodes:
        spec = e.get("spec") or {}
        at = {
            "episode": int(e.get("index") or 0) + 1,
            "fault": spec.get("fault") or (e.get("fault") or {}).get("kind") or "",
            "target": spec.get("target") or "",
        }
        recovery = e.get("recovery") or {}
        add("harness_episode_passed", bool(e.get("passed")), **at)
        add("harness_episode_ttd_seconds", recovery.get("ttd_s"), **at)
        add("harness_episode_outage_seconds", recovery.get("outage_s"), **at)
        add("harness_episode_mttr_seconds", recovery.get("mttr_service_s"), **at, of="service")
        add("harness_episode_mttr_seconds", recovery.get("mttr_component_s"), **at, of="component")
        episode_measured = e.get("measured") or {}
        for kind in anomaly_kinds:
            for key, value in episode_measured.items():
                if key.startswith(f"{kind}[") and key.endswith("]"):
                    phase = key[len(kind) + 1 : -1]
                    add("harness_episode_client_anomalies", value, **at, anomaly=kind, phase=phase)

    for kind in anomaly_kinds:
        add("harness_client_anomalies", clients["counts"][kind], anomaly=kind)
    if clients:
        add("harness_client_observations", clients.get("observations"))

    budget = doc.get("budget") or {}
    used_pct = _number(budget.get("month_budget_used_pct"))
    target_pct = _number(budget.get("availability_target_pct"))
    add("harness_error_budget_used_ratio", None if used_pct is None else round(used_pct / 100, 12))
    add("harness_error_budget_downtime_seconds", budget.get("downtime_s"))
    add(
        "harness_error_budget_target_ratio",
        None if target_pct is None else round(target_pct / 100, 12),
    )
    return [out.families[name] for name in METRICS if name in out.families]


class _Collector:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def registry(doc: Doc) -> CollectorRegistry:
    """A registry holding the run's metrics alone (no process or platform collectors)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(families(doc)))
    return reg


def exposition(doc: Doc) -> str:
    """The run in Prometheus's text exposition format (version 0.0.4)."""
    return generate_latest(registry(doc)).decode("utf-8")


def check_textfile_dir(directory: Path, field: str = "--textfile") -> Path:
    """``directory`` if it is an existing, writable directory; `ConfigError` naming the fix.
    It is not created: a mistyped path would be a directory node exporter never reads."""
    directory = Path(directory)
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            field,
            str(directory),
            "give an existing, writable directory: the one node exporter's "
            "--collector.textfile.directory reads",
        )
    return directory


def write_textfile(doc: Doc, directory: Path, field: str = "--textfile") -> Path:
    """Write the run's metrics to ``directory/harness.prom`` atomically: the textfile
    collector reads the old file or the new, never half of one (its temporary name does
    not end in .prom, so the collector skips it). `ConfigError` if it cannot be written."""
    directory = check_textfile_dir(directory, field)
    path = directory / TEXTFILE
    text = exposition(doc)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{TEXTFILE}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a node exporter user
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(
            field, str(directory), f"cannot write {TEXTFILE} there ({exc.strerror})"
        ) from exc
    finally:
        if tmp is not None:  # not moved into place: nothing half-written is left
            tmp.unlink(missing_ok=True)
    return path


__all__ = [
    "METRICS",
    "RUN_LABELS",
    "TEXTFILE",
    "check_textfile_dir",
    "exposition",
    "families",
    "registry",
    "run_labels",
    "write_textfile",
]
