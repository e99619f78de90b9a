"""report.html: a run's result.json as one self-contained page a team reads after a run.

In the order it is read: the verdict and what was run (stack, load), the SLO verdicts with
their margins, each episode's recovery figures in numbers and in a sentence, what clients
saw that fits no history of the chain (counts per phase, the first examples), the error
budget, the plots on the run's time axis (`harness.report.plots`), then the detail tables
(per-method percentiles, error classes, probes, the fault timeline, HAProxy transitions,
process events) and the run's remaining facts.

The page reads only the document, so a report rendered later from an old run's file is the
one that run wrote. Nothing is fetched: the CSS is inline, the plots are inline SVG, and
there is no script. Every string from the document is escaped.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.measure.metrics import HISTORY_METRICS, METRICS, PHASES
from harness.report.alerts import alert_rows
from harness.report.document import RESULT_FILE, Doc, read_document
from harness.report.summary import software_line, verdict_word

REPORT_FILE = "report.html"
MAX_TABLE_ROWS = 2000  # a flapping backend's transitions over an hour: the rest are in the file

CSS = """
pre { background: #f6f8fa; padding: 6px 10px; overflow-x: auto; white-space: pre-wrap; }
:root { --pass: #1a7f37; --fail: #cf222e; --abort: #9a6700; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0 auto; padding: 16px 24px 48px; max-width: 1240px; color: #1f2328; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
header { border-left: 8px solid var(--muted); padding: 8px 16px; background: #f6f8fa; }
header.pass { border-color: var(--pass); } header.fail { border-color: var(--fail); }
header.aborted { border-color: var(--abort); }
.verdict { font-size: 28px; font-weight: 700; letter-spacing: 1px; }
.pass .verdict, td.pass { color: var(--pass); } .fail .verdict, td.fail { color: var(--fail); }
.aborted .verdict { color: var(--abort); }
td.pass, td.fail { font-weight: 700; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
th.group { text-align: center; }
colgroup.group { border-left: 2px solid #8c959f; }
table.compact { font-size: 12px; } table.compact td, table.compact th { padding: 2px 5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #ffebe9; }
.scroll { overflow-x: auto; }
p.sentence { margin: 4px 0 10px; max-width: 90ch; }
.muted { color: var(--muted); }
.bar { display: inline-block; width: 240px; height: 12px; background: #eaeef2;
  border-radius: 6px; overflow: hidden; vertical-align: middle; margin-left: 8px; }
.bar span { display: block; height: 100%; background: var(--abort); }
figure { margin: 8px 0 16px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; }
code { font-size: 12px; }
""".strip()


@dataclass(frozen=True)
class Raw:
    """An HTML fragment built here, already escaped: put into a page as it is."""

    html: str


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    return value.html if isinstance(value, Raw) else _e("-" if value is None else value)


def _table(
    head: Sequence[object],
    rows: Iterable[Sequence[object]],
    numeric: Sequence[int] = (),
    row_class: Sequence[str] | None = None,
    cell_class: dict[tuple[int, int], str] | None = None,
    groups: Sequence[tuple[str, int]] = (),
    compact: bool = False,
) -> str:
    """A table (no header row if ``head`` is empty; above it a row of ``groups``, each a
    label over so many columns); ``numeric`` column indexes are right-aligned; cells are
    escaped unless `Raw`."""
    cls = cell_class or {}

    def attr(*names: str) -> str:
        joined = " ".join(n for n in names if n)
        return f" class='{joined}'" if joined else ""

    out = [f"<div class='scroll'><table{attr('compact' if compact else '')}>"]
    out += [f"<colgroup span='{span}' class='group'></colgroup>" for _, span in groups]
    if head:
        out.append("<thead>")
        if groups:
            out.append("<tr>")
            out += [f"<th colspan='{span}' class='group'>{_cell(g)}</th>" for g, span in groups]
            out.append("</tr>")
        out.append("<tr>")
        for i, h in enumerate(head):
            out.append(f"<th{attr('num' if i in numeric else '')}>{_cell(h)}</th>")
        out.append("</tr></thead>")
    out.append("<tbody>")
    for r, row in enumerate(rows):
        out.append(f"<tr{attr(row_class[r] if row_class else '')}>")
        for i, value in enumerate(row):
            names = ("num" if i in numeric else "", cls.get((r, i), ""))
            out.append(f"<td{attr(*names)}>{_cell(value)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _num(value: float | None, unit: str = "", digits: int = 4) -> str:
    if value is None:
        return "-"
    # 4 significant digits, but never an exponent: 12,345 s, not 1.234e+04 s.
    text = f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return f"{text} {unit}".strip() if unit not in ("%",) else f"{text}%"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _duration(seconds: float) -> str:
    """A span as a person says it: 0.39 s, 4 min 19 s, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{int(seconds // 3600)} h {seconds % 3600 / 60:.0f} min"


def _when(started_at: str) -> str:
    return started_at.replace("T", " ").replace("Z", " UTC")


# ---- 1. header -------------------------------------------------------------------------


def _nodes(doc: Doc) -> list[Doc]:
    return [c for c in doc["stack"]["components"] if c["role"] in ("primary", "backup")]


def _chain_words(stack: Doc) -> str:
    """How the nodes' chains relate, in a few words (documents before one chain: a chain
    per node)."""
    if stack.get("chain") == "one":
        return "one chain (a hidden chain source, replayed into every node)"
    return "a chain per node"


def _stack_line(doc: Doc) -> str:
    stack, spec = doc["stack"], doc["spec"]["stack"]
    nodes = _nodes(doc)
    kinds = sorted({n["kind"] for n in nodes}) or ["?"]
    hc = stack["health_check"]
    template = spec.get("haproxy_template") or "the default template"
    extras = [f"isolation {spec.get('isolation', '-')}"]
    if spec.get("fault_proxy"):
        extras.append("fault proxy in front of each node")
    if spec.get("toxiproxy"):
        extras.append("Toxiproxy in front of each node")
    extras.append(_chain_words(stack))
    return (
        f"{len(nodes)} x {'/'.join(kinds)} behind HAProxy ({stack['backend']} backend, "
        f"block time {stack['block_time_s']:g} s), {template}; health check every "
        f"{hc['inter_ms']} ms, fall {hc['fall']}, rise {hc['rise']}; " + ", ".join(extras)
    )


def _load_line(doc: Doc) -> str:
    load = doc["load"]
    if not load:
        return "none: latency and error rate come from the probes"
    spec = load["spec"]
    if spec["model"] == "open":
        rate = f"open model, {spec['rate_per_s']:g} req/s intended"
    else:
        rate = f"closed model, {spec['users']} users"
    where = (
        "through the frontend" if load.get("at", "frontend") == "frontend" else f"at {load['at']}"
    )
    workers = f"{spec['workers']} worker(s)" + (
        f" + {spec['remote_workers']} remote" if spec.get("remote_workers") else ""
    )
    return (
        f"profile {spec['profile']}, {rate}, {load['achieved_rate_per_s']:g} req/s achieved, "
        f"{where}; {load['samples']:,} samples, {workers}, timeout {spec['timeout_s']:g} s"
    )


def _header(doc: Doc) -> str:
    word = verdict_word(doc)
    fp = doc["fingerprints"]
    facts = [
        ("run", f"{doc['run_id']} (seed {doc['seed']})"),
        ("when", f"{_when(doc['started_at'])}, {_duration(doc['duration_s'])} in all"),
        ("stack", _stack_line(doc)),
        ("ran", software_line(doc["stack"]) or "not recorded"),
        ("fingerprints", f"stack {fp['stack']}, template {fp['template']}"),
        ("load", _load_line(doc)),
        (
            "probes",
            f"every {doc['spec']['probe_interval_s'] * 1000:g} ms, timeout "
            f"{doc['spec']['probe_timeout_s'] * 1000:g} ms, to the frontend and each node",
        ),
    ]
    if doc["aborted"]:
        facts.insert(0, ("aborted", doc["aborted"]))
    for label, steady in (
        ("before", doc["steady_state_before"]),
        ("after", doc["steady_state_after"]),
    ):
        if steady is None:
            continue
        bad = [f"{c['name']}: {c['detail']}" for c in steady["checks"] if not c["ok"]]
        facts.append((f"steady state {label}", "holds" if not bad else "BROKEN: " + "; ".join(bad)))
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (
        f"<header class='{word.lower()}'><div class='verdict' id='verdict'>{_e(word)}</div>"
        f"<h1>{_e(doc['name'])}</h1><dl class='facts'>{rows}</dl></header>"
    )


# ---- 2. verdicts -----------------------------------------------------------------------

_OP = re.compile(r"\s(<=|>=)\s")


def margin(verdict: Doc) -> tuple[str, str]:
    """How far a verdict's measurement is from its target, and that as % of the target:
    headroom when it held, excess (or shortfall) when it broke."""
    measured, target = verdict["measured"], verdict["target"]
    if measured is None:
        return "never measured", "-"
    unit = METRICS[verdict["metric"]].unit if verdict["metric"] in METRICS else ""
    found = _OP.search(verdict["slo"])
    op = found.group(1) if found else "<="
    gap = target - measured if op == "<=" else measured - target
    if verdict["passed"]:
        words = f"{_num(abs(gap), unit)} {'under' if op == '<=' else 'over'} the target"
    else:
        words = f"{_num(abs(gap), unit)} {'over' if op == '<=' else 'short of'} the target"
    pct = f"{100 * abs(gap) / target:.1f}% of target" if target else "-"
    return words, pct


def _verdicts(doc: Doc) -> str:
    several = len(doc["episodes"]) > 1
    labels = {e["index"]: e["label"] for e in doc["episodes"]}
    head = (["episode"] if several else []) + [
        "SLO",
        "target",
        "measured",
        "result",
        "by",
        "% of target",
    ]
    rows, classes, cells = [], [], {}
    for r, v in enumerate(doc["slos"]):
        unit = METRICS[v["metric"]].unit if v["metric"] in METRICS else ""
        by, pct = margin(v)
        found = _OP.search(v["slo"])
        target = f"{found.group(1) if found else ''} {_num(v['target'], unit)}".strip()
        episode = [f"{v['episode'] + 1}: {labels.get(v['episode'], '')}"] if several else []
        rows.append(
            [
                *episode,
                Raw(f"<code>{_e(v['slo'])}</code>"),
                target,
                _num(v["measured"], unit),
                "PASS" if v["passed"] else "FAIL",
                by,
                pct,
            ]
        )
        classes.append("" if v["passed"] else "bad")
        cells[(r, len(episode) + 3)] = "pass" if v["passed"] else "fail"
    if not rows:
        return "<h2 id='verdicts'>SLO verdicts</h2><p class='muted'>No SLO was declared.</p>"
    failed = sum(1 for v in doc["slos"] if not v["passed"])
    summary = f"{len(rows) - failed} of {len(rows)} SLOs held" + (
        f"; {failed} broken" if failed else ""
    )
    numeric = [len(head) - 5, len(head) - 4]
    return f"<h2 id='verdicts'>SLO verdicts</h2><p>{_e(summary)}.</p>" + _table(
        head, rows, numeric=numeric, row_class=classes, cell_class=cells
    )


# ---- 3. recovery -----------------------------------------------------------------------


def _restarts(doc: Doc, e: Doc) -> list[str]:
    events = doc["process_events"]
    starts = [x for x in events if x["kind"] == "started"]
    said = []
    for death in (
        x for x in events if x["kind"] == "exited" and e["start_s"] <= x["t_s"] < e["end_s"]
    ):
        back = next(
            (s for s in starts if s["component"] == death["component"] and s["t_s"] > death["t_s"]),
            None,
        )
        again = f"restarted {back['t_s'] - death['t_s']:.3f} s later" if back else "not restarted"
        said.append(
            f"{death['component']} exited ({death['detail']}) at t={death['t_s']:.3f} s, {again}."
        )
    return said


def recovery_sentence(doc: Doc, e: Doc) -> str:
    """What happened after an episode's fault, in plain words."""
    fault, rec = e["fault"], e["recovery"]
    targets = ", ".join(fault["targets"]) or "the stack"
    said = [
        f"{fault['kind']} ({fault['mechanism']}) on {targets} took effect at "
        f"t={fault['effective_s']:.3f} s, {fault['apply_us'] / 1000:.1f} ms after it was asked for"
        + (
            f", and was undone at t={fault['reverted_s']:.3f} s."
            if fault["reverted_s"] is not None
            else "; it was never undone."
        )
    ]
    said += _restarts(doc, e)
    if rec["ttd_s"] is None:
        said.append("HAProxy never marked it DOWN.")
    else:
        said.append(f"HAProxy marked it DOWN {rec['ttd_s']:.3f} s after the fault (TTD).")
    if rec["outage_s"]:
        said.append(
            f"Clients saw {rec['outage_s']:.3f} s of outage, from {rec['outage_start_s']:.3f} s "
            f"after the fault ({rec['failed_probes']} frontend probes failed); the service "
            f"answered again {rec['mttr_service_s']:.3f} s after the fault."
        )
    else:
        said.append("Clients saw no outage: every frontend probe was answered in time.")
    if rec["mttr_component_s"] is None:
        said.append(f"{targets} did not come back within the episode.")
    else:
        said.append(
            f"{targets} was back in rotation {rec['mttr_component_s']:.3f} s after the fault."
        )
    if e["aborted"]:
        said.append(f"The episode was aborted: {e['aborted']}.")
    return " ".join(said)


def _recovery(doc: Doc) -> str:
    head = [
        "episode",
        "fault",
        "TTD",
        "outage",
        "outage from",
        "MTTR service",
        "MTTR component",
        "failed probes",
        "verdict",
    ]
    rows, cells = [], {}
    for r, e in enumerate(doc["episodes"]):
        rec, fault = e["recovery"], e["fault"]
        rows.append(
            [
                f"{e['index'] + 1}: {e['label']}",
                f"{fault['kind']} via {fault['mechanism']} on {', '.join(fault['targets'])}",
                "never" if rec["ttd_s"] is None else _secs(rec["ttd_s"]),
                _secs(rec["outage_s"]),
                _secs(rec["outage_start_s"]),
                _secs(rec["mttr_service_s"]),
                "not back" if rec["mttr_component_s"] is None else _secs(rec["mttr_component_s"]),
                rec["failed_probes"],
                "PASS" if e["passed"] else ("ABORTED" if e["aborted"] else "FAIL"),
            ]
        )
        cells[(r, 8)] = "pass" if e["passed"] else "fail"
    sentences = "".join(
        f"<p class='sentence'><b>Episode {e['index'] + 1}.</b> {_e(recovery_sentence(doc, e))}</p>"
        for e in doc["episodes"]
    )
    return (
        "<h2 id='recovery'>Recovery</h2>"
        + _table(head, rows, numeric=[2, 3, 4, 5, 6, 7], cell_class=cells)
        + sentences
        + "<p class='muted'>Times from the fault's effective time. TTD: to HAProxy marking a "
        "faulted server DOWN. Outage: from the first failed frontend probe to the answer of the "
        "first good one after the last failure. MTTR component: to the faulted component "
        "answering its own probe and back in rotation.</p>"
    )


#: The step of the ALERTS range query a pending time comes from (harness.monitor.query).
STEP_S = 0.25


def _alerts(doc: Doc) -> str:
    """Each episode's alerts (--prometheus): when the rule's condition held, when the
    webhook was told it fired and resolved, beside TTD and the rule's own bound."""
    rows: list[list[object]] = []
    cells: dict[tuple[int, int], str] = {}
    for e in doc["episodes"]:
        ttd = e["recovery"]["ttd_s"]
        for a in alert_rows(e.get("measured") or {}):
            took = a.held_to_fired_s
            if took is not None and a.expected_s is not None:
                cells[(len(rows), 6)] = "pass" if took <= a.expected_s + STEP_S else "fail"
            rows.append(
                [
                    f"{e['index'] + 1}: {e['label']}",
                    a.name,
                    "-" if ttd is None else _secs(ttd),
                    _secs(a.pending_s),
                    "never" if a.fired_s is None else _secs(a.fired_s),
                    "-" if a.fired_s is None else _secs(a.resolved_s),
                    _secs(took),
                    _secs(a.expected_s),
                ]
            )
    if not rows:
        return ""
    head = [
        "episode",
        "alert",
        "TTD",
        "condition held",
        "fired",
        "resolved",
        "held to fired",
        "for: + intervals",
    ]
    return (
        "<h2 id='alerts'>Alerts</h2>"
        + _table(head, rows, numeric=[2, 3, 4, 5, 6, 7], cell_class=cells)
        + "<p class='muted'>Times from the fault's effective time. Condition held: the first "
        "pending sample of Prometheus's ALERTS series (to 0.25 s). Fired, resolved: the "
        "notification reached the harness's webhook through Alertmanager. Held to fired "
        "must be at most "
        "the rule's <code>for:</code> (and its group's interval) plus a scrape, an "
        "evaluation and Alertmanager's group interval; fired minus held is the time the "
        "condition took to hold after the fault (detection, blocks to fall behind, a head "
        "to age).</p>"
    )


def _clients(doc: Doc) -> str:
    """What clients saw: each anomaly kind's count per phase, and the first examples."""
    checked = doc.get("clients")  # absent from the documents of older runs
    title = "<h2 id='clients'>What clients saw</h2>"
    if not checked:
        return title + "<p class='muted'>Clients' histories were not checked in this run.</p>"
    several = len(doc["episodes"]) > 1
    head: list[object] = [*(["episode"] if several else []), "anomaly", *PHASES]
    rows: list[list[object]] = []
    row_class: list[str] = []
    for e in doc["episodes"]:
        for kind in HISTORY_METRICS:
            counts = [e["measured"].get(f"{kind}[{phase}]") for phase in PHASES]
            if several and not any(counts):
                continue  # a game day's table shows what happened, not every zero
            row: list[object] = [f"{e['index'] + 1}: {e['label']}"] if several else []
            row.append(kind.replace("_", " "))
            rows.append(row + ["-" if c is None else f"{c:g}" for c in counts])
            row_class.append("bad" if any(counts) else "")
    first = len(head) - len(PHASES)
    said = (
        f"{checked['observations']:,} answers to {checked['sessions']} sessions (the load's "
        f"users and the frontend probes) held against each other and against "
        f"{checked['chain']}; checked in {checked['check_s']:.2f} s."
    )
    out = [title, f"<p class='sentence'>{_e(said)}</p>"]
    if rows:
        out.append(_table(head, rows, numeric=list(range(first, len(head))), row_class=row_class))
    else:
        out.append("<p class='muted'>No episode's answers fit no history of the chain.</p>")
    out.append(
        "<p class='muted'>Counted per answer, at the time its request was sent. "
        + " ".join(f"{k.replace('_', ' ')}: {METRICS[k].description}." for k in HISTORY_METRICS)
        + "</p>"
    )
    columns = ("t_s", "answered_s", "session", "request", "response", "why")
    for e in doc["episodes"]:
        for kind, examples in (e.get("anomalies") or {}).items():
            where = f"episode {e['index'] + 1}, " if several else ""
            caption = f"{kind.replace('_', ' ')}: the first examples ({where}{len(examples)})"
            examples_rows = [
                [_secs(x["t_s"]), _secs(x["answered_s"]), *(x[c] for c in columns[2:])]
                for x in examples
            ]
            out.append(f"<h3>{_e(caption)}</h3>")
            out.append(
                _table(
                    ["sent", "answered", "session", "request", "answer", "why"],
                    examples_rows,
                    numeric=[0, 1],
                    compact=True,
                )
            )
    return "".join(out)


def _spread(s: Doc) -> str:
    if s["median"] is None:
        return "never back" if s["unmeasured"] else "-"
    worst = _secs(s["worst"])
    never = f", {s['unmeasured']} never back" if s["unmeasured"] else ""
    return f"{_secs(s['median'])} / {worst}{never}"


def _again(doc: Doc) -> str:
    """How to run it all again, and, for several episodes, each failing one alone."""
    out = []
    episodes = doc["episodes"]
    kinds = doc.get("by_fault_kind") or {}
    if len(episodes) > 1 and kinds:
        rows = [
            [k, f["episodes"], f["failed"], _spread(f["outage_s"]),
             _spread(f["mttr_service_s"]), _spread(f["mttr_component_s"])]
            for k, f in kinds.items()
        ]  # fmt: skip
        head = ["fault", "episodes", "failed", "outage (median / worst)"]
        head += ["MTTR service (median / worst)", "MTTR component (median / worst)"]
        out.append(
            "<h2 id='by-fault'>By fault kind</h2>" + _table(head, rows, numeric=[1, 2, 3, 4, 5])
        )
        waits = [e.get("steady_wait_s") or 0.0 for e in episodes[:-1]]
        if any(waits):
            out.append(
                f"<p>Before each next episode the steady state was awaited: "
                f"{_secs(sum(waits))} in all, at most {_secs(max(waits))}.</p>"
            )
    skipped = doc.get("skipped") or []
    if skipped:
        items = "".join(
            f"<li>{s['index'] + 1}: {_e(s['label'])}: {_e(s['why'])}</li>" for s in skipped
        )
        out.append(f"<h3>Episodes not run</h3><ul>{items}</ul>")
    failing = [e for e in episodes if not e["passed"] and e.get("command")]
    if len(episodes) > 1 and failing:
        items = "".join(
            f"<p><b>{e['index'] + 1}: {_e(e['label'])}</b></p><pre>{_e(e['command'])}</pre>"
            for e in failing
        )
        out.append(f"<h3>Each failing episode alone</h3>{items}")
    replay = doc.get("replay") or {}
    if replay.get("command"):
        what = "the whole day, same schedule" if doc.get("kind") == "gameday" else "this run"
        out.append(
            f"<h3 id='again'>Run it again</h3><p>{_e(what)} (seed {_e(replay['seed'])}):</p>"
            f"<pre>{_e(replay['command'])}</pre>"
        )
    return "".join(out)


# ---- 4. error budget -------------------------------------------------------------------


def _budget(doc: Doc) -> str:
    b = doc["budget"]
    used = b["month_budget_used_pct"]
    bar = f"<span class='bar'><span style='width:{min(100.0, max(0.0, used)):.2f}%'></span></span>"
    rows: list[list[object]] = [
        ["availability target", f"{b['availability_target_pct']:g}%"],
        ["allowed downtime per month (30 days)", _duration(b["allowed_per_month_s"])],
        ["allowed downtime per year (365.25 days)", _duration(b["allowed_per_year_s"])],
        ["this run's client-visible downtime", _secs(b["downtime_s"])],
        ["share of the month's budget used", Raw(f"{used:.2f}%{bar}")],
    ]
    if b["cost_per_minute"] > 0:
        rows.append(
            [
                "cost of this run's downtime",
                f"{b['cost']:.2f} {b['currency']} "
                f"(at {b['cost_per_minute']:g} {b['currency']} a minute)",
            ]
        )
    return "<h2 id='budget'>Error budget</h2>" + _table([], rows, numeric=[1])


# ---- 5. plots --------------------------------------------------------------------------


def _plots(doc: Doc) -> str:
    from harness.report import plots  # matplotlib takes ~0.5 s to import: only when drawing

    run = plots.timelines(doc)
    source = "the load" if doc["load"] else "the frontend probes (the run had no load)"
    out = [
        "<h2 id='plots'>Timelines</h2>",
        f"<figure id='figure-run'>{plots.figure_svg(run)}<figcaption>The whole run. Latency "
        f"and error rate from {_e(source)}. Red: a fault in effect (a fault shorter than "
        f"{plots.MIN_WINDOW_FRACTION * 100:g}% of the axis is drawn that wide); purple: the "
        "outage clients saw; dashed lines: detection and recovery. An episode with a zoom "
        "below shows only its shaded windows here.</figcaption></figure>",
    ]
    for e in doc["episodes"]:
        n = e["index"] + 1
        span = run.zooms.get(n)
        if span is None:
            continue
        zoom = plots.timelines(doc, span)
        out.append(
            f"<h3>Episode {n}: {_e(e['label'])}, close up</h3>"
            f"<figure id='figure-episode-{n}'>{plots.figure_svg(zoom, f'e{n}-')}<figcaption>"
            f"Episode {n} from t={span[0]:.1f} s to {span[1]:.1f} s: the fault, the outage, "
            "detection and recovery.</figcaption></figure>"
        )
    return "".join(out)


# ---- 6. tables -------------------------------------------------------------------------


def _methods(e: Doc) -> str:
    phases = [p for p in e["load_phases"] if p["requests"]]
    if not phases:
        return ""
    names = sorted({m for p in phases for m in p["methods"]})
    head: list[object] = ["method"]
    for _ in phases:
        head += ["n", "failed", "p50", "p99", "p99.9", "max"]
    groups = [("", 1)] + [(p["phase"], 6) for p in phases]

    def cells(stats: Doc | None) -> list[object]:
        if stats is None:
            return ["-"] * 6
        count = stats.get("count", stats.get("requests"))
        return [
            count,
            stats["failed"],
            _num(stats["p50_ms"]),
            _num(stats["p99_ms"]),
            _num(stats["p999_ms"]),
            _num(stats["max_ms"]),
        ]

    rows: list[list[object]] = [[Raw("<b>all</b>")] + [c for p in phases for c in cells(p)]]
    for name in names:
        rows.append([name] + [c for p in phases for c in cells(p["methods"].get(name))])
    return "<h3>Latency per method and phase (ms)</h3>" + _table(
        head, rows, numeric=list(range(1, len(head))), groups=groups, compact=True
    )


def _errors(e: Doc) -> str:
    phases = [p["name"] for p in e["phases"]]
    found: dict[tuple[str, str], dict[str, int]] = {}
    for p in e["load_phases"]:
        for cls, n in p["errors"].items():
            found.setdefault(("load", cls), {})[p["phase"]] = n
    for s in e["probes"]:
        for cls, n in s["failure_classes"].items():
            found.setdefault((f"probes of {s['target']}", cls), {})[s["phase"]] = n
    if not found:
        return "<h3>Error classes per phase</h3><p class='muted'>No request or probe failed.</p>"
    rows = [
        [src, cls, *[by.get(ph, 0) for ph in phases]] for (src, cls), by in sorted(found.items())
    ]
    return "<h3>Error classes per phase</h3>" + _table(
        ["source", "class", *phases], rows, numeric=list(range(2, 2 + len(phases)))
    )


def _probes(e: Doc) -> str:
    rows = []
    for s in e["probes"]:
        if not s["probes"]:
            continue
        lag = e["frontend_head_lag_blocks"].get(s["phase"]) if s["target"] == "frontend" else None
        rows.append(
            [
                s["phase"],
                s["target"],
                s["probes"],
                s["failures"],
                _pct(s["availability_pct"]),
                _ms(s["p50_us"] / 1000 if s["p50_us"] is not None else None),
                _ms(s["p99_us"] / 1000 if s["p99_us"] is not None else None),
                _ms(s["max_us"] / 1000 if s["max_us"] is not None else None),
                "-" if lag is None else lag,
            ]
        )
    head = [
        "phase",
        "target",
        "probes",
        "failed",
        "availability",
        "p50 ms",
        "p99 ms",
        "max ms",
        "head behind (blocks)",
    ]
    return "<h3>Probes per phase</h3>" + _table(head, rows, numeric=list(range(2, 9)))


def _episode_tables(doc: Doc) -> str:
    several = len(doc["episodes"]) > 1
    out = ["<h2 id='details'>Per phase</h2>"]
    for e in doc["episodes"]:
        if several:
            out.append(f"<h3>Episode {e['index'] + 1}: {_e(e['label'])}</h3>")
        phases = ", ".join(
            f"{p['name']} {p['start_s']:.3f}-{p['end_s']:.3f} s" for p in e["phases"]
        )
        out.append(f"<p class='muted'>Phases: {_e(phases)}.</p>")
        out += [_methods(e), _errors(e), _probes(e)]
    return "".join(out)


def _capped(rows: list[list[object]]) -> tuple[list[list[object]], str]:
    if len(rows) <= MAX_TABLE_ROWS:
        return rows, ""
    more = len(rows) - MAX_TABLE_ROWS
    return rows[:MAX_TABLE_ROWS], f"<p class='muted'>{more} more rows in result.json.</p>"


def _faults(doc: Doc) -> str:
    rows = []
    for e in doc["episodes"]:
        f = e["fault"]
        params = ", ".join(f"{k}={v}" for k, v in sorted(f["params"].items())) or "-"
        rows.append(
            [
                e["index"] + 1,
                f["kind"],
                f["mechanism"],
                ", ".join(f["targets"]),
                params,
                _secs(f["requested_s"]),
                _secs(f["effective_s"]),
                _secs(f["revert_requested_s"]),
                _secs(f["reverted_s"]),
                _num(f["apply_us"], "", 6),
                _num(f["revert_us"], "", 6) if f["revert_us"] is not None else "-",
                f["error"] or "",
            ]
        )
    head = [
        "episode",
        "kind",
        "mechanism",
        "targets",
        "params",
        "requested",
        "effective",
        "revert asked",
        "reverted",
        "apply us",
        "revert us",
        "error",
    ]
    return "<h2 id='faults'>Fault timeline</h2>" + _table(
        head, rows, numeric=[0, 5, 6, 7, 8, 9, 10]
    )


def _transitions(doc: Doc) -> str:
    rows, more = _capped(
        [
            [_secs(t["t_s"]), t["server"], t["status"], t["check_status"]]
            for t in doc["haproxy_transitions"]
        ]
    )
    body = (
        _table(["t", "server", "status", "check"], rows, numeric=[0])
        if rows
        else ("<p class='muted'>HAProxy reported no change of any server's state.</p>")
    )
    return "<h2 id='haproxy'>HAProxy server transitions</h2>" + body + more


def _events(doc: Doc) -> str:
    rows, more = _capped(
        [
            [
                _secs(x["t_s"]),
                x["component"],
                x["kind"],
                x.get("pid"),
                x.get("returncode"),
                x["detail"],
            ]
            for x in doc["process_events"]
        ]
    )
    body = (
        _table(["t", "component", "event", "pid", "exit code", "detail"], rows, numeric=[0, 3, 4])
        if rows
        else ("<p class='muted'>No process died or was restarted.</p>")
    )
    return "<h2 id='processes'>Process events</h2>" + body + more


def _footer(doc: Doc) -> str:
    spec = doc["spec"]
    facts = [
        ("SLOs declared", "; ".join(spec["slos"]) or "none"),
        ("safeguards", "; ".join(spec["safeguards"]) or "none"),
        ("head lag between nodes", _num(doc["measured"].get("max_head_lag_blocks"), "blocks")),
        ("leftovers of earlier runs removed", "; ".join(doc["reaped"]) or "none"),
        ("document", f"{doc['schema']}, {doc['run_dir']}/{RESULT_FILE}"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f"<h2 id='run'>The run</h2><dl class='facts'>{rows}</dl>"


def render_html(doc: Doc) -> str:
    """The whole page for a run's document; reads nothing but ``doc``."""
    word = verdict_word(doc)
    body = "".join(
        [
            _header(doc),
            _verdicts(doc),
            _recovery(doc),
            _alerts(doc),
            _clients(doc),
            _again(doc),
            _budget(doc),
            _plots(doc),
            _episode_tables(doc),
            _faults(doc),
            _transitions(doc),
            _events(doc),
            _footer(doc),
        ]
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(word)} {_e(doc['name'])} ({_e(doc['run_id'])})</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_html(run_dir: Path) -> Path:
    """Render ``run_dir/result.json`` to ``run_dir/report.html`` atomically; its path.
    `ConfigError` (from `read_document`) if the run dir holds no readable result."""
    page = render_html(read_document(run_dir / RESULT_FILE))
    path = run_dir / REPORT_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{REPORT_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(tmp, 0o644)  # a page to share, unlike mkstemp's private default
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["REPORT_FILE", "margin", "recovery_sentence", "render_html", "write_html"]
