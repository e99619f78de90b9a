"""Where a finished run's metrics go besides its reports: node exporter's textfile
collector (``--textfile DIR``) and a Pushgateway (``--pushgateway URL``).

Place in the flow: after `write_reports`; the CLI (run, gameday, export) and the pytest
plugin (each scenario's run) are two adapters over `EXPORT_OPTIONS`, `check_destinations`
(bad options fail before a stack starts) and `deliver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.report.document import RESULT_FILE, read_document
from harness.report.metrics import check_textfile_dir, write_textfile
from harness.report.pushgateway import check_reachable, push


@dataclass(frozen=True)
class ExportOption:
    """One export option: its flag, where its value goes, and its help."""

    flag: str
    dest: str
    metavar: str
    help: str
    is_path: bool = False


EXPORT_OPTIONS = (
    ExportOption(
        "--pushgateway",
        "pushgateway_url",
        "URL",
        "Push the run's metrics to this Prometheus Pushgateway (job=harness, grouped by the "
        "run's name), e.g. http://127.0.0.1:9091.",
    ),
    ExportOption(
        "--textfile",
        "textfile_dir",
        "DIR",
        "Write the run's metrics to DIR/harness.prom (atomically) for node exporter's "
        "textfile collector.",
        is_path=True,
    ),
)


def check_destinations(textfile_dir: Path | None, pushgateway_url: str | None) -> None:
    """`ConfigError` now, before a stack starts, for a missing directory, a malformed URL,
    or no Pushgateway answering there."""
    if textfile_dir is not None:
        check_textfile_dir(textfile_dir)
    if pushgateway_url is not None:
        check_reachable(pushgateway_url)


def resend_command(run_dir: Path, textfile_dir: Path | None, pushgateway_url: str | None) -> str:
    """The `harness export` that sends a kept run's metrics again."""
    return " ".join(
        [f"harness export {run_dir}"]
        + ([f"--textfile {textfile_dir}"] if textfile_dir is not None else [])
        + ([f"--pushgateway {pushgateway_url}"] if pushgateway_url is not None else [])
    )


def deliver(run_dir: Path, textfile_dir: Path | None, pushgateway_url: str | None) -> None:
    """Deliver a finished run's metrics. Its reports are already written: a failure here
    (the Pushgateway gone since the run started) is a `ConfigError` that says how to send
    them again."""
    if textfile_dir is None and pushgateway_url is None:
        return
    doc = read_document(run_dir / RESULT_FILE)
    try:
        if textfile_dir is not None:
            write_textfile(doc, textfile_dir)
        if pushgateway_url is not None:
            push(doc, pushgateway_url)
    except ConfigError as exc:
        again = resend_command(run_dir, textfile_dir, pushgateway_url)
        raise ConfigError(
            exc.field, exc.value, f"{exc.fix}; the run's reports are kept: `{again}` sends them"
        ) from exc
