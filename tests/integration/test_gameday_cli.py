"""`harness gameday` as a team runs it: the schedule read before it starts, the window
kept, bad input refused before anything starts, a short real day reported as one run and
replayable, and Ctrl-C ending the day with its fault undone and its report written."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

from harness.faults import replay_open_records
from harness.stack.state import stacks_dir, state_root
from tests.conftest import VENV_BIN


def harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "harness"), *args], capture_output=True, text=True, timeout=timeout
    )


def spec_file(tmp_path: Path, body: str, name: str = "day") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body)
    return path


def _minute_free(text: str) -> str:
    """The dry run's text without the clock: the minute it was asked in, the time left."""
    text = re.sub(r"\(\w{3} \d{4}-\d\d-\d\d \d\d:\d\d \w+\)", "(now)", " ".join(text.split()))
    return re.sub(r"\b\d+:\d\d:\d\d left\b", "(time) left", text)


def test_a_dry_run_prints_the_same_schedule_for_the_same_seed_and_touches_nothing(
    tmp_path: Path,
) -> None:
    args = ("gameday", "--dry-run", "--duration", "10m", "--seed", "11", "--reports-dir",
            str(tmp_path / "reports"))  # fmt: skip
    first, second = harness(*args), harness(*args)
    assert first.returncode == 0, first.stderr
    # The window's line names the minute it was asked in: two asks may straddle a minute.
    assert _minute_free(first.stdout) == _minute_free(second.stdout)
    assert "seed 11" in first.stdout and "episodes over" in first.stdout
    assert "left out: latency" in first.stdout  # this kernel has no sch_netem
    other = harness("gameday", "--dry-run", "--duration", "10m", "--seed", "12")
    assert other.stdout != first.stdout
    assert not (tmp_path / "reports").exists()
    assert not state_root().exists() or not any(state_root().iterdir())


def test_outside_its_window_a_day_says_when_the_window_opens_and_exits_2(tmp_path: Path) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%a")
    result = harness("gameday", "--window", f"{tomorrow} 09:00-10:00 UTC", "--duration", "10m",
                     "--reports-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "next opens" in result.stderr and "--now" in result.stderr
    assert not any(tmp_path.iterdir())


def test_bad_game_day_input_is_one_line_and_exit_2_with_nothing_started(tmp_path: Path) -> None:
    cases = [
        (["--window", "Funday 09:00-17:00"], "Funday"),
        (["--window", "Mon 10:00-10:00 UTC"], "window"),
        (["--duration", "2s", "--now"], "duration"),
        (["--replay", str(tmp_path)], "schedule"),
        (["--spec", str(spec_file(tmp_path, '[[mix]]\nkind = "meteor"\n', "a")), "--now"],
         "meteor"),
        (["--spec", str(spec_file(tmp_path, '[[mix]]\nkind = "kill"\nweight = 0\n', "b")),
          "--now"], "weight"),
    ]  # fmt: skip
    for args, word in cases:
        result = harness("gameday", *args, "--reports-dir", str(tmp_path / "reports"))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert word in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert not (tmp_path / "reports").exists()
    assert not stacks_dir().exists() or not any(stacks_dir().iterdir())


SHORT_DAY = """
duration = "40s"
gap = ["3s", "5s"]
settle = "1s"
slos = ["outage_s <= 10", "mttr_component_s <= 30"]
abort_if = []
load = false
[[mix]]
kind = "kill"
[[mix]]
kind = "pause"
hold = ["1s", "2s"]
"""


def test_a_short_day_runs_its_schedule_as_one_run_and_replays_exactly(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    day = spec_file(tmp_path, SHORT_DAY)
    result = harness("gameday", "--spec", str(day), "--now", "--seed", "5", "--block-time",
                     "0.5", "--reports-dir", str(reports), timeout=180)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    doc = json.loads((run_dir / "result.json").read_text())
    schedule = json.loads((run_dir / "schedule.json").read_text())
    assert doc["kind"] == "gameday" and doc["replay"]["seed"] == 5
    ran = len(doc["episodes"]) + len(doc["skipped"])
    assert ran == len(schedule["episodes"]) >= 3
    assert [e["fault"]["kind"] for e in doc["episodes"]] == [
        e["fault"] for e in schedule["episodes"]
    ][: len(doc["episodes"])]
    assert f"harness gameday --replay {run_dir}" in result.stdout
    assert "By fault kind" in (run_dir / "report.html").read_text()
    # The replay's schedule is the day's, whatever seed the command line would have drawn.
    replayed = harness("gameday", "--replay", str(run_dir), "--dry-run", "--block-time", "0.5")
    original = harness("gameday", "--spec", str(day), "--seed", "5", "--dry-run",
                       "--block-time", "0.5")  # fmt: skip
    table = [line for line in replayed.stdout.splitlines() if "│" in line]
    assert table and table == [line for line in original.stdout.splitlines() if "│" in line]


LONG_PAUSE = """
duration = "5m"
gap = ["2s", "3s"]
slos = ["outage_s <= 600"]
abort_if = []
load = false
[[mix]]
kind = "pause"
targets = ["backup"]
hold = ["60s", "90s"]
"""


def test_ctrl_c_ends_the_day_with_its_fault_undone_and_its_report_written(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [str(VENV_BIN / "harness"), "gameday", "--spec", str(spec_file(tmp_path, LONG_PAUSE)),
         "--now", "--seed", "1", "--block-time", "0.5", "--reports-dir", str(reports)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # plain progress lines: stdout is a pipe
        if " fault: pause backup" in line:
            break
    time.sleep(1.0)
    stopped = [p for p in psutil.process_iter(["status"]) if p.info["status"] == "stopped"]
    assert stopped, "the pause was not in effect"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1
    assert "stopped by SIGINT" in out
    for p in stopped:
        assert not p.is_running() or p.status() != "stopped"
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "result.json").read_text())["aborted"] == "stopped by SIGINT"
    assert replay_open_records() == [], "a fault was left for cleanup to undo"
    assert not any(stacks_dir().iterdir())
