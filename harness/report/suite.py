"""suite.html: one page for a pytest session's runs, each linked to its own report, and the
HAProxy policies side by side for every scenario that ran under more than one.

What a team opens after ``pytest scenarios``: which scenarios passed, which failed as
expected (a strict xfail names a known weakness of a policy), and how TTD, outage and MTTR
differ between policies. It reads the runs' documents, as every report does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.report.document import Doc
from harness.report.html import CSS, Raw, _e, _table
from harness.report.summary import verdict_word

POLICY_ORDER = ("roadmap", "hardened", "custom")


@dataclass(frozen=True)
class SuiteEntry:
    """One run of the session: the test, its policy, pytest's outcome, the run's document."""

    nodeid: str
    scenario: str
    policy: str | None
    outcome: str  # passed, failed, xfailed, xpassed, error
    doc: Doc


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _figures(doc: Doc) -> list[str]:
    rec = [e["recovery"] for e in doc["episodes"]]
    worst = {
        key: max((r[key] for r in rec if r[key] is not None), default=None)
        for key in ("ttd_s", "outage_s", "mttr_service_s", "mttr_component_s")
    }
    return [_s(worst[k]) for k in ("ttd_s", "outage_s", "mttr_service_s", "mttr_component_s")]


def _link(doc: Doc, base: Path) -> Raw:
    report = Path(doc["run_dir"]) / "report.html"
    try:
        href = os.path.relpath(report.resolve(), base.resolve())
    except ValueError:
        href = str(report)
    return Raw(f"<a href='{_e(href)}'>{_e(doc['run_id'])}</a>")


def render_suite(entries: Sequence[SuiteEntry], base: Path, title: str) -> str:
    """The page; links are relative to ``base`` (the directory the page is written to)."""
    rows, classes = [], []
    for entry in entries:
        who = [entry.nodeid, entry.policy or "-", entry.outcome.upper(), verdict_word(entry.doc)]
        rows.append([*who, *_figures(entry.doc), _link(entry.doc, base)])
        classes.append("bad" if entry.outcome in ("failed", "error", "xpassed") else "")
    head = ["test", "policy", "pytest", "run", "TTD", "outage", "MTTR service", "MTTR component"]
    runs = _table([*head, "report"], rows, numeric=(4, 5, 6, 7), row_class=classes)
    by_scenario: dict[str, dict[str, SuiteEntry]] = {}
    for entry in entries:
        if entry.policy is not None:
            by_scenario.setdefault(entry.scenario, {})[entry.policy] = entry
    compared = {k: v for k, v in by_scenario.items() if len(v) > 1}
    policies = [p for p in POLICY_ORDER if any(p in v for v in compared.values())]
    side = ""
    if compared:
        columns: list[object] = ["scenario"]
        for p in policies:
            columns += [f"{p}: TTD", "outage", "MTTR service", "verdict"]
        side_rows = []
        for scenario, results in compared.items():
            row: list[object] = [scenario]
            for p in policies:
                if p not in results:
                    row += ["-"] * 4
                    continue
                fig = _figures(results[p].doc)
                row += [fig[0], fig[1], fig[2], results[p].outcome.upper()]
            side_rows.append(row)
        side = (
            "<h2>HAProxy policies side by side</h2><p>The worst episode of each run; "
            "an XFAIL is a breach the scenario expects of that policy.</p>"
            + _table(columns, side_rows, numeric=tuple(i for i in range(1, len(columns)) if i % 4))
        )
    passed = sum(e.outcome in ("passed", "xfailed") for e in entries)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>{passed} of {len(entries)} runs as expected; "
        f"written {_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}.</p>"
        f"{side}<h2>Runs</h2>{runs}</body></html>\n"
    )


def write_suite(entries: Sequence[SuiteEntry], reports_dir: Path) -> Path:
    """``<reports_dir>/suite-<time>.html``, written atomically; its path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"suite-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.html"
    page = render_suite(entries, reports_dir, f"scenario suite: {len(entries)} runs")
    fd, tmp = tempfile.mkstemp(dir=reports_dir, prefix=".suite.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
