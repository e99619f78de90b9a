"""Reports: where a run writes what it found, for machines (result.json) and people (summary).

The report reads plain result data, never live objects. Files are written atomically, so
a reader (or a killed run) never leaves half a result.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.stack.state import write_json_atomic

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.txt"


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

    def write_summary(self, text: str) -> Path:
        path = self.path / SUMMARY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, path)
        return path


__all__ = ["RESULT_FILE", "SUMMARY_FILE", "RunDir"]
