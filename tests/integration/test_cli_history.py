"""The history from the command line: every run recorded, listed, compared as a CI gate,
pinned as a baseline; and JUnit from `harness run --junit`."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report.history import History
from tests.conftest import VENV_BIN


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "harness"), *args], capture_output=True, text=True, timeout=120
    )


def quick_run(reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return harness(
        "run", "--reports-dir", str(reports), "--no-load", "--block-time", "0.5",
        "--baseline", "0.5s", "--settle", "0.2s", "--run-name", "kill-check",
        "--slo", "outage_s <= 10", "--slo", "mttr_component_s <= 30", *extra,
    )  # fmt: skip


def test_runs_are_recorded_listed_compared_and_a_regression_exits_1(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    junit = tmp_path / "junit.xml"
    first = quick_run(reports, "--junit", str(junit))
    assert first.returncode == 0, first.stderr + first.stdout
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert {c.get("name") for c in cases} >= {"outage_s <= 10", "mttr_component_s <= 30"}
    assert not any(c.find("failure") is not None for c in cases)
    # A fresh CI runner: the first run of its name has nothing to compare against.
    alone = harness("compare", "--reports-dir", str(reports))
    assert alone.returncode == 2 and "the first of 'kill-check'" in alone.stderr
    fine = harness("compare", "--missing-ok", "--reports-dir", str(reports))
    assert fine.returncode == 0 and "nothing to compare" in fine.stdout
    second = quick_run(reports)
    assert second.returncode == 0, second.stderr

    listed = json.loads(harness("history", "--reports-dir", str(reports), "--json").stdout)
    assert [r["name"] for r in listed] == ["kill-check", "kill-check"]
    latest, earlier = listed[0]["run_id"], listed[1]["run_id"]

    loose = ["--tolerance", "outage_s=1000%,100s", "--tolerance", "mttr_*=1000%,100s",
             "--tolerance", "p99_ms=1000%,1000ms"]  # fmt: skip
    same = harness("compare", "--reports-dir", str(reports), *loose)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"{latest} against {earlier}" in same.stdout

    # A baseline with no outage at all: the latest run's real outage is then a regression.
    with History.in_reports(reports) as history:
        doc = json.loads((Path(listed[1]["result_path"])).read_text())
        flawless = {**doc, "run_id": "19990101-000000-000000", "started_at": "1999-01-01T00:00:00Z"}
        flawless["measured"] = {**doc["measured"], "outage_s": 0.0, "mttr_service_s": 0.0}
        history.record(flawless)
    pinned = harness("baseline", "set", "19990101-000000-000000", "--reports-dir", str(reports))
    assert pinned.returncode == 0, pinned.stderr
    gate = harness("compare", latest, "--against", "baseline", "--reports-dir", str(reports))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "REGRESSED" in gate.stdout and "outage_s" in gate.stdout
    # A suite's gate: the latest run of every name, each against its own previous.
    other = quick_run(reports, "--run-name", "other-check")
    assert other.returncode == 0, other.stderr
    suite = harness(
        "compare", "--every-name", "--missing-ok", "--reports-dir", str(reports), *loose
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert f"{latest} against {earlier}" in suite.stdout
    assert "nothing to compare (--missing-ok): other-check" in suite.stdout


def test_history_commands_with_bad_input_say_what_and_exit_2(tmp_path: Path) -> None:
    nothing = harness("history", "--reports-dir", str(tmp_path))
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    bad = harness("compare", "--tolerance", "p99_ms=lots", "--reports-dir", str(tmp_path))
    assert bad.returncode == 2 and "p99_ms=lots" in bad.stderr
    assert not (tmp_path / "history.sqlite").exists(), "a bad tolerance opens nothing"
    corrupt = tmp_path / "history.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    broken = harness("history", "--reports-dir", str(tmp_path))
    assert broken.returncode == 2 and "history.sqlite" in broken.stderr
    assert corrupt.read_bytes() == b"this is not a database" * 100
    unknown = harness("baseline", "set", "nope", "--reports-dir", str(tmp_path / "other"))
    assert unknown.returncode == 2
