"""Reports: what a run found, written for machines (result.json) and people (summary.txt,
report.html), and remembered (the history).

Every writer reads the run's document (`harness.report.document`), never live objects.
Files are written atomically, so a reader (or a killed run) never sees half a report.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.report.document import RESULT_FILE, SCHEMA, read_document, result_document
from harness.report.history import History
from harness.report.html import REPORT_FILE, render_html, write_html
from harness.report.summary import summarize
from harness.stack.state import write_json_atomic

if TYPE_CHECKING:
    from harness.experiment.result import RunResult

SUMMARY_FILE = "summary.txt"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    """One run's report directory: ``<reports_dir>/<run_id>/``."""

    run_id: str
    path: Path

    @classmethod
    def create(cls, reports_dir: Path) -> RunDir:
        """A new, empty run directory; a `ConfigError` if ``reports_dir`` is unusable."""
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        path = reports_dir / run_id
        try:
            path.mkdir(parents=True)
            probe = path / ".writable"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                "reports_dir",
                str(reports_dir),
                f"cannot write there ({exc.strerror}); choose a writable directory "
                "with --reports-dir",
            ) from exc
        return cls(run_id, path)

    def write_result(self, doc: dict[str, Any]) -> Path:
        path = self.path / RESULT_FILE
        write_json_atomic(path, doc)
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, path)
        return path


def write_reports(result: RunResult, run_dir: RunDir) -> dict[str, Any]:
    """Write result.json and every report rendered from it; returns the document."""
    doc = result_document(result)
    run_dir.write_result(doc)
    run_dir.write_text(SUMMARY_FILE, summarize(doc))
    write_html(run_dir.path)
    # The history is a memory of runs, not part of this one: a locked or damaged history
    # file is said loudly, and leaves the run's own verdict and reports as they are.
    try:
        with History.in_reports(run_dir.path.parent) as history:
            history.record(doc, run_dir.path / RESULT_FILE)
    except ConfigError as exc:
        log.warning("run %s not recorded in the history: %s", run_dir.run_id, exc)
    return doc


__all__ = [
    "REPORT_FILE",
    "RESULT_FILE",
    "SCHEMA",
    "SUMMARY_FILE",
    "History",
    "RunDir",
    "read_document",
    "render_html",
    "result_document",
    "summarize",
    "write_html",
    "write_reports",
]
