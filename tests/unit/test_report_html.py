"""report.html from synthetic result documents of known shape: what a reader must find on
the page (verdicts with margins, recovery, budget, plots with their series) and what must
never be there (unescaped strings, anything fetched from a network)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.report.document import SCHEMA
from harness.report.html import REPORT_FILE, margin, recovery_sentence, render_html, write_html
from harness.report.plots import MAX_POINTS, timelines

Doc = dict[str, Any]
WINDOW_S = 0.25
METHODS = ("eth_blockNumber", "eth_call", "eth_getLogs")


@dataclass(frozen=True)
class Episode:
    """One synthetic episode: a fault at ``at_s`` held ``hold_s``; clients see an outage of
    ``outage_s`` from 20 ms after it; HAProxy marks the node DOWN after ``ttd_s``."""

    at_s: float
    hold_s: float = 2.0
    outage_s: float = 1.0
    ttd_s: float | None = 0.5
    kind: str = "kill"
    target: str = "node-0"
    label: str = ""


def _phase_stats(phase: str, target: str, probes: int, failed: int) -> Doc:
    return {
        "phase": phase,
        "target": target,
        "probes": probes,
        "failures": failed,
        "availability_pct": 100.0 * (probes - failed) / probes if probes else None,
        "p50_us": 900.0,
        "p99_us": 3000.0,
        "max_us": 500_000.0 if failed else 4000.0,
        "failure_classes": {"timeout": failed} if failed else {},
    }


def _load_phase(phase: str, duration_s: float, requests: int, failed: int, p99_ms: float) -> Doc:
    methods = {
        m: {
            "count": requests // 3,
            "failed": failed // 3,
            "p50_ms": 0.5,
            "p99_ms": p99_ms,
            "p999_ms": p99_ms,
            "max_ms": p99_ms,
        }
        for m in METHODS
    }
    return {
        "phase": phase,
        "duration_s": duration_s,
        "requests": requests,
        "failed": failed,
        "error_rate_pct": 100.0 * failed / requests if requests else 0.0,
        "throughput_rps": requests / duration_s,
        "errors": {"http_503": failed} if failed else {},
        "p50_ms": 0.5,
        "p99_ms": p99_ms,
        "p999_ms": p99_ms,
        "max_ms": p99_ms,
        "methods": methods,
    }


def _slo(text: str, metric: str, target: float, measured: float | None, phase: str | None) -> Doc:
    ok = measured is not None and (measured <= target if "<=" in text else measured >= target)
    return {
        "slo": text,
        "metric": metric,
        "phase": phase,
        "method": None,
        "target": target,
        "measured": measured,
        "passed": ok,
        "message": f"{text} {'holds' if ok else 'broken'}",
    }


def make_doc(
    *,
    name: str = "scenarios/test_kill.py::test_service_recovers",
    duration_s: float = 60.0,
    episodes: tuple[Episode, ...] = (Episode(at_s=20.0),),
    load: bool = True,
    rate_per_s: int = 200,
    nodes: int = 2,
    cost_per_minute: float = 0.0,
    p99_baseline_ms: float = 4.0,
) -> Doc:
    """A result document of the real schema's shape: steady load (or none), one or more
    faults, each with an outage the load and the probes both see."""

    def in_outage(t: float) -> Episode | None:
        return next((e for e in episodes if e.at_s + 0.02 <= t < e.at_s + 0.02 + e.outage_s), None)

    def in_fault(t: float) -> bool:
        return any(e.at_s <= t < e.at_s + e.hold_s for e in episodes)

    seconds = int(duration_s)
    timeline = []
    for s in range(seconds):
        bad = any(in_outage(s + f / 10) for f in range(10))
        failed = rate_per_s // 4 if bad else 0
        slow = bad or in_fault(s + 0.5)
        timeline.append(
            [
                s,
                rate_per_s - failed,
                failed,
                300.0 if slow else 0.5,
                1000.0 if slow else 4.0,
                1004.0 if slow else 6.0,
            ]
        )
    node_names = [f"node-{i}" for i in range(nodes)]
    probe_rows: dict[str, list[list[float]]] = {t: [] for t in ["frontend", *node_names]}
    lag: dict[str, list[list[float]]] = {t: [] for t in ["frontend", *node_names]}
    for w in range(int(duration_s / WINDOW_S)):
        t = w * WINDOW_S
        down = in_outage(t)
        for target in probe_rows:
            failing = down is not None and target in ("frontend", down.target)
            probe_rows[target].append([t, 12, 12 if failing else 0, 500.0 if failing else 2.0])
            behind = 2 if in_fault(t) and target in {e.target for e in episodes} else 0
            lag[target].append([t, behind if target != "frontend" else min(behind, 1)])
    ep_docs, slos, transitions, events = [], [], [], []
    start = 0.0
    for i, e in enumerate(episodes):
        t0 = e.at_s
        end = min(duration_s, t0 + e.hold_s + e.outage_s + 5.0)
        phases = [
            {"name": "baseline", "start_s": start, "end_s": t0, "duration_s": t0 - start},
            {"name": "fault", "start_s": t0, "end_s": t0 + e.hold_s, "duration_s": e.hold_s},
            {
                "name": "recovery",
                "start_s": t0 + e.hold_s,
                "end_s": end,
                "duration_s": end - t0 - e.hold_s,
            },
        ]
        failed_probes = int(e.outage_s / WINDOW_S) * 12
        recovery = {
            "ttd_s": e.ttd_s,
            "outage_s": e.outage_s,
            "outage_start_s": 0.02 if e.outage_s else None,
            "mttr_service_s": 0.02 + e.outage_s if e.outage_s else 0.0,
            "mttr_component_s": e.hold_s + 0.6,
            "failed_probes": failed_probes,
        }
        episode_slos = [
            _slo("p99_ms[baseline] <= 50", "p99_ms", 50.0, p99_baseline_ms, "baseline"),
            _slo("outage_s <= 2", "outage_s", 2.0, e.outage_s, None),
        ]
        slos += [{"episode": i, **v} for v in episode_slos]
        base_n = int((t0 - start) * rate_per_s)
        rec_n = int((end - t0 - e.hold_s) * rate_per_s)
        ep_docs.append(
            {
                "index": i,
                "label": e.label or f"{e.kind} {e.target}",
                "spec": {"fault": e.kind, "target": e.target, "params": {}},
                "passed": all(v["passed"] for v in episode_slos),
                "aborted": None,
                "start_s": start,
                "end_s": end,
                "fault": {
                    "id": f"{e.kind}-{i}",
                    "kind": e.kind,
                    "targets": [e.target],
                    "params": {},
                    "mechanism": "SIGKILL" if e.kind == "kill" else "SIGSTOP",
                    "requested_ns": 0,
                    "effective_ns": 0,
                    "revert_requested_ns": 0,
                    "reverted_ns": 0,
                    "apply_us": 3355.2,
                    "revert_us": 1396.8,
                    "error": None,
                    "requested_s": t0 - 0.003,
                    "effective_s": t0,
                    "revert_requested_s": t0 + e.hold_s - 0.001,
                    "reverted_s": t0 + e.hold_s,
                },
                "faulted": [e.target],
                "phases": phases,
                "probes": [
                    _phase_stats(p["name"], target, int(p["duration_s"] / 0.02), fails)
                    for p in phases
                    for target in ["frontend", *node_names]
                    for fails in [
                        failed_probes
                        if p["name"] == "recovery" and target in ("frontend", e.target)
                        else 0
                    ]
                ],
                "recovery": recovery,
                "load_phases": [
                    _load_phase("baseline", t0 - start, base_n, 0, p99_baseline_ms),
                    _load_phase("fault", e.hold_s, int(e.hold_s * rate_per_s), 0, 1000.0),
                    _load_phase("recovery", end - t0 - e.hold_s, rec_n, rate_per_s // 4, 1000.0),
                ]
                if load
                else [],
                "frontend_head_lag_blocks": {"baseline": 0, "fault": 1, "recovery": 0},
                "measured": {"p99_ms[baseline]": p99_baseline_ms, "outage_s": e.outage_s},
                "slos": episode_slos,
                "steady_state_after": None,
            }
        )
        if e.ttd_s is not None:
            transitions.append(
                {
                    "t_ns": 0,
                    "server": e.target,
                    "status": "DOWN",
                    "check_status": "L7TOUT",
                    "t_s": t0 + e.ttd_s,
                }
            )
            transitions.append(
                {
                    "t_ns": 0,
                    "server": e.target,
                    "status": "UP",
                    "check_status": "L7OK",
                    "t_s": t0 + e.hold_s + 0.6,
                }
            )
        events.append(
            {
                "t_ns": 0,
                "wall_time": 0.0,
                "component": e.target,
                "kind": "exited",
                "pid": 100 + i,
                "returncode": -9,
                "detail": "killed by SIGKILL",
                "t_s": t0 + 0.001,
            }
        )
        events.append(
            {
                "t_ns": 0,
                "wall_time": 0.0,
                "component": e.target,
                "kind": "started",
                "pid": 200 + i,
                "returncode": None,
                "detail": "",
                "t_s": t0 + 0.5,
            }
        )
        start = end
    passed = all(v["passed"] for v in slos)
    downtime = sum(e.outage_s for e in episodes)
    steady = {
        "ok": True,
        "heads": {n: 5 for n in node_names},
        "duration_s": 0.8,
        "checks": [{"name": f"{n} answers", "ok": True, "detail": "head 5"} for n in node_names],
    }
    load_spec = {
        "profile": "searcher",
        "model": "open",
        "rate_per_s": rate_per_s,
        "users": 24,
        "workers": 1,
        "timeout_s": 5.0,
        "remote_workers": 0,
    }
    return {
        "schema": SCHEMA,
        "run_id": "20261201-000000-abcdef",
        "run_dir": "reports/20261201-000000-abcdef",
        "name": name,
        "passed": passed,
        "aborted": None,
        "started_at": "2026-12-01T00:00:00Z",
        "duration_s": duration_s + 3.0,
        "seed": 0,
        "spec": {
            "name": name,
            "stack": {
                "nodes": nodes,
                "node_kind": "anvil",
                "haproxy_template": None,
                "isolation": "loopback",
                "fault_proxy": False,
                "toxiproxy": None,
            },
            "load": load_spec if load else None,
            "load_at": "frontend",
            "probe_interval_s": 0.02,
            "probe_timeout_s": 0.5,
            "episodes": [],
            "slos": ["p99_ms[baseline] <= 50", "outage_s <= 2"],
            "safeguards": [],
            "budget": {
                "availability_target_pct": 99.99,
                "cost_per_minute": cost_per_minute,
                "currency": "USD",
            },
        },
        "fingerprints": {"stack": "558d74aa90c073e7", "template": "3d57d4148d8af4d2"},
        "stack": {
            "name": "test",
            "backend": "local",
            "health_check": {"inter_ms": 2000, "fall": 3, "rise": 2},
            "block_time_s": 1.0,
            "components": [
                {"name": n, "kind": "anvil", "role": "primary" if i == 0 else "backup"}
                for i, n in enumerate(node_names)
            ]
            + [{"name": "haproxy", "kind": "haproxy", "role": "balancer"}],
        },
        "stack_ready_s": 1.2,
        "latency_source": "load" if load else "probes",
        "steady_state_before": steady,
        "steady_state_after": steady,
        "episodes": ep_docs,
        "measured": {"max_head_lag_blocks": 2.0},
        "slos": slos,
        "load": {
            "spec": load_spec,
            "at": "frontend",
            "intended_rate_per_s": rate_per_s,
            "achieved_rate_per_s": float(rate_per_s),
            "samples": rate_per_s * seconds,
            "duration_s": duration_s,
            "generator_health": {"processes": 1, "alive": 1, "cpu_pct": {"1": 30.0}},
            "timeline_columns": ["t_s", "ok", "failed", "p50_ms", "p99_ms", "max_ms"],
            "timeline": timeline,
        }
        if load
        else None,
        "probe_timeline": {
            "window_s": WINDOW_S,
            "columns": ["t_s", "probes", "failed", "max_ms"],
            "targets": probe_rows,
        },
        "head_lag": {
            "nodes": {
                n: {"max_blocks": max(p[1] for p in lag[n]), "timeline": lag[n]} for n in node_names
            },
            "frontend": {"max_blocks": 1, "timeline": lag["frontend"]},
        },
        "haproxy_transitions": transitions,
        "process_events": events,
        "budget": {
            "availability_target_pct": 99.99,
            "allowed_per_month_s": 259.2,
            "allowed_per_year_s": 3155.76,
            "downtime_s": downtime,
            "month_budget_used_pct": 100 * downtime / 259.2,
            "cost": downtime / 60 * cost_per_minute,
            "currency": "USD",
            "cost_per_minute": cost_per_minute,
        },
        "reaped": [],
    }


class _Tables(HTMLParser):
    """The tables of a page, each as rows of cell texts (header rows too), listed under the
    id of the heading (h2) they follow."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.section = ""
        self.cell: list[str] | None = None
        self.row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self.section = dict(attrs).get("id") or ""
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.section][-1].append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(page: str, section: str) -> list[list[list[str]]]:
    """Every table under the h2 ``section``, as rows of cell texts."""
    parser = _Tables()
    parser.feed(page)
    return parser.tables[section]


def table(page: str, section: str) -> list[dict[str, str]]:
    """The rows of the first table under the h2 ``section``, as {header: cell}."""
    head, *rows = tables(page, section)[0]
    return [dict(zip(head, row, strict=True)) for row in rows]


def ids(page: str) -> list[str]:
    return re.findall(r'\bid="([^"]+)"', page) + re.findall(r"\bid='([^']+)'", page)


def test_the_verdict_table_lists_every_slo_with_its_measured_value() -> None:
    rows = table(render_html(make_doc()), "verdicts")
    assert [(r["SLO"], r["measured"], r["result"]) for r in rows] == [
        ("p99_ms[baseline] <= 50", "4 ms", "PASS"),
        ("outage_s <= 2", "1 s", "PASS"),
    ]
    assert rows[0]["by"] == "46 ms under the target"
    assert rows[0]["% of target"] == "92.0% of target"


def test_a_broken_slo_shows_as_fail_with_how_far_it_was_over() -> None:
    page = render_html(make_doc(p99_baseline_ms=80.0))
    broken = table(page, "verdicts")[0]
    assert (broken["result"], broken["by"], broken["% of target"]) == (
        "FAIL",
        "30 ms over the target",
        "60.0% of target",
    )
    assert "<div class='verdict' id='verdict'>FAIL</div>" in page
    assert "<header class='fail'>" in page


def test_the_method_table_sets_each_methods_percentiles_side_by_side_per_phase() -> None:
    groups, head, *rows = tables(render_html(make_doc()), "details")[0]
    assert groups == ["", "baseline", "fault", "recovery"]
    assert head == ["method"] + ["n", "failed", "p50", "p99", "p99.9", "max"] * 3
    eth_call = next(r for r in rows if r[0] == "eth_call")
    assert (eth_call[4], eth_call[16]) == ("4", "1000")  # p99 in baseline, in recovery
    assert rows[0][:2] == ["all", "4000"]  # 20 s of baseline at 200 req/s


def test_a_floor_slo_that_broke_is_short_of_its_target() -> None:
    verdict = _slo("availability_pct[fault] >= 99", "availability_pct", 99.0, 95.0, "fault")
    assert margin(verdict) == ("4% short of the target", "4.0% of target")


def test_an_slo_never_measured_says_so() -> None:
    verdict = _slo("mttr_component_s <= 30", "mttr_component_s", 30.0, None, None)
    assert margin(verdict) == ("never measured", "-")


def test_a_game_day_has_one_verdict_table_with_an_episode_column() -> None:
    doc = make_doc(
        duration_s=90.0,
        episodes=(Episode(20.0), Episode(45.0, label="pause backup"), Episode(70.0)),
    )
    rows = table(render_html(doc), "verdicts")
    assert [r["episode"] for r in rows[::2]] == [
        "1: kill node-0",
        "2: pause backup",
        "3: kill node-0",
    ]
    assert len(rows) == 6


def test_strings_from_the_document_are_escaped_everywhere() -> None:
    doc = make_doc(
        name="<script>alert(1)</script>",
        episodes=(Episode(20.0, target="node-<b>0</b>", label="kill & <i>see</i>"),),
    )
    page = render_html(doc)
    assert "<script" not in page and "<b>0</b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "node-&lt;b&gt;0&lt;/b&gt;" in page  # in the tables and in the SVG's text alike
    assert "kill &amp; &lt;i&gt;see&lt;/i&gt;" in page


def test_every_plotted_series_carries_an_svg_id() -> None:
    found = set(ids(render_html(make_doc(duration_s=30.0))))
    assert {
        "series-p50",
        "series-p99",
        "series-error-rate",
        "series-availability-frontend",
        "series-availability-node-0",
        "series-availability-node-1",
        "series-head-lag-node-0",
        "series-head-lag-node-1",
        "series-head-lag-frontend",
        "fault-window-1-latency",
        "outage-1-errors",
        "marker-ttd-1-latency",
    } <= found


def test_every_id_on_the_page_is_unique_even_with_a_zoom_figure() -> None:
    page = render_html(make_doc(duration_s=600.0, episodes=(Episode(300.0),)))
    found = ids(page)
    assert "e1-series-p99" in found  # the zoom on the episode is there
    assert len(found) == len(set(found))


def test_a_short_run_has_no_zoom_on_its_episode() -> None:
    page = render_html(make_doc(duration_s=30.0))
    assert "figure-episode-1" not in ids(page)
    assert "(zoom below)" not in page


def test_only_an_episode_with_a_zoom_points_to_it_from_the_whole_run() -> None:
    doc = make_doc(duration_s=600.0, episodes=(Episode(100.0, hold_s=200.0), Episode(500.0)))
    labels = {m.episode: m.label for m in timelines(doc).markers if m.kind == "fault"}
    assert labels == {1: "E1 kill node-0", 2: "E2 kill node-0 (zoom below)"}


def test_a_long_run_marks_an_episodes_moments_in_its_zoom_only() -> None:
    found = set(ids(render_html(make_doc(duration_s=600.0, episodes=(Episode(300.0),)))))
    assert {"fault-window-1-latency", "outage-1-latency"} <= found  # where, on the whole run
    assert "marker-ttd-1-latency" not in found
    assert {"e1-marker-ttd-1-latency", "e1-marker-component-back-1-head-lag"} <= found


def test_a_run_without_load_plots_the_error_rate_of_its_probes() -> None:
    doc = make_doc(load=False)
    page = render_html(doc)
    found = set(ids(page))
    assert {"series-error-rate", "series-probe-max"} <= found
    assert "series-p99" not in found
    errors = next(p for p in timelines(doc).panels if p.key == "errors")
    rate = errors.series[0]
    # The frontend's probes failed for the whole second of outage after t=20.02 s.
    during = rate.values[(rate.t_s >= 20.25) & (rate.t_s < 21.0)]
    assert list(during) == [100.0, 100.0, 100.0]
    assert np.nanmax(rate.values[rate.t_s < 19.0]) == 0.0


def test_a_game_day_shades_each_fault_window_on_every_plot() -> None:
    doc = make_doc(duration_s=90.0, episodes=(Episode(20.0), Episode(45.0), Episode(70.0)))
    found = set(ids(render_html(doc)))
    for panel in ("latency", "errors", "availability", "head-lag"):
        assert {f"fault-window-{n}-{panel}" for n in (1, 2, 3)} <= found
    assert not any(i.startswith("fault-window-4") for i in found)


def test_the_budget_shows_a_cost_only_when_downtime_is_priced() -> None:
    unpriced = render_html(make_doc())
    priced = render_html(make_doc(cost_per_minute=120.0))
    assert "cost of this run&#x27;s downtime" not in unpriced
    assert "cost of this run&#x27;s downtime</td><td class='num'>2.00 USD" in priced


def test_the_recovery_sentence_says_when_haproxy_never_noticed() -> None:
    doc = make_doc(episodes=(Episode(20.0, ttd_s=None),))
    said = recovery_sentence(doc, doc["episodes"][0])
    assert "HAProxy never marked it DOWN." in said
    assert "Clients saw 1.000 s of outage, from 0.020 s after the fault" in said
    assert "node-0 exited (killed by SIGKILL) at t=20.001 s, restarted 0.499 s later." in said


def test_the_page_fetches_nothing() -> None:
    page = render_html(make_doc())
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_the_same_document_renders_to_the_same_page() -> None:
    assert render_html(make_doc()) == render_html(make_doc())


@settings(max_examples=25, deadline=None)
@given(
    seconds=st.integers(min_value=MAX_POINTS + 1, max_value=3 * MAX_POINTS),
    spike=st.floats(min_value=0, max_value=1),
)
def test_a_long_timeline_is_aggregated_keeping_the_worst_second(seconds: int, spike: float) -> None:
    doc = make_doc(duration_s=10.0, episodes=())
    doc["load"]["timeline"] = rows = [[s, 200, 0, 0.5, 4.0, 6.0] for s in range(seconds)]
    at = min(int(spike * seconds), seconds - 1)
    rows[at][4] = 9999.0  # one terrible second's p99
    rows[at][2] = 200  # and all of it failed
    panels = {p.key: p for p in timelines(doc).panels}
    p99 = next(s for s in panels["latency"].series if s.gid == "series-p99")
    errors = panels["errors"].series[0]
    assert len(p99.t_s) <= MAX_POINTS + 2
    assert np.nanmax(p99.values) == 9999.0
    # Counts are summed per window: the failed second's share of its window, exactly.
    k = -(-seconds // MAX_POINTS)
    window = rows[at - at % k : at - at % k + k]
    want = 100 * sum(r[2] for r in window) / sum(r[1] + r[2] for r in window)
    assert np.nanmax(errors.values) == pytest.approx(want)


def test_write_html_writes_the_page_beside_result_json(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps(make_doc()))
    path = write_html(tmp_path)
    assert path == tmp_path / REPORT_FILE
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "result.json"]


def test_write_html_names_the_run_dir_that_holds_no_result(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds no result\.json"):
        write_html(tmp_path)
    assert not (tmp_path / REPORT_FILE).exists()


def _with_alerts(doc: Doc) -> Doc:
    doc["episodes"][0]["measured"].update(
        {
            "alert_pending_s[HAProxyBackendServerDown]": 4.75,
            "alert_fired_s[HAProxyBackendServerDown]": 10.4,
            "alert_resolved_s[HAProxyBackendServerDown]": 19.5,
            "alert_expected_s[HAProxyBackendServerDown]": 8.0,
            "alert_pending_s[NodeHeadLagging]": 2.0,  # pending only: never fired
            "alert_expected_s[NodeHeadLagging]": 8.0,
            "false_alerts": 0.0,
        }
    )
    return doc


def test_alerts_are_marked_firing_and_resolving_on_the_timeline_beside_ttd() -> None:
    doc = _with_alerts(make_doc(duration_s=60.0))
    marks = [(m.kind, m.alert, m.label) for m in timelines(doc, (0.0, 60.0)).markers if m.alert]
    assert marks == [
        ("alert-fired", "HAProxyBackendServerDown", "HAProxyBackendServerDown fired 10.40 s"),
        ("alert-resolved", "HAProxyBackendServerDown", "HAProxyBackendServerDown resolved 19.50 s"),
    ]
    found = ids(render_html(doc))
    assert any(i.endswith("marker-alert-fired-1-HAProxyBackendServerDown-latency") for i in found)
    assert any(i.endswith("marker-ttd-1-latency") for i in found)
    assert len(found) == len(set(found))


def test_the_alerts_table_sets_each_alerts_time_beside_its_rules_for_and_intervals() -> None:
    page = render_html(_with_alerts(make_doc(duration_s=60.0)))
    section = page[page.index("id='alerts'") : page.index("id='clients'")]
    rows = re.findall(r"<tr>(.*?)</tr>", section)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    assert [c[1] for c in cells] == ["HAProxyBackendServerDown", "NodeHeadLagging"]
    # held 4.75 s -> fired 10.4 s: 5.65 s, within the rule's 8 s.
    assert cells[0][3:8] == ["4.750 s", "10.400 s", "19.500 s", "5.650 s", "8.000 s"]
    assert "class='num pass'" in rows[0]
    assert cells[1][4] == "never"


def test_a_run_without_alerts_has_no_alerts_section() -> None:
    assert "id='alerts'" not in render_html(make_doc(duration_s=30.0))
