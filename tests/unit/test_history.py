"""The history: runs recorded in a real SQLite file, read back, found by name and order,
written by several processes at once, and refused (untouched) when the file is locked,
damaged, foreign or newer."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.report.history import HISTORY_FILE, SCHEMA_VERSION, History, RunRecord


def doc(
    run_id: str,
    name: str = "kill primary",
    started_at: str = "2026-12-01T10:00:00Z",
    measured: dict[str, float | None] | None = None,
    template: str = "t1",
    passed: bool = True,
) -> dict[str, Any]:
    """A result document as `result_document` writes one, cut to what the history reads."""
    figures: dict[str, float | None] = {
        "outage_s": 1.0,
        "mttr_component_s": 0.5,
        "p99_ms[baseline]": 1.7,
    }
    measured = figures | (measured or {})
    return {
        "schema": "harness.result/2",
        "run_id": run_id,
        "run_dir": f"reports/{run_id}",
        "name": name,
        "passed": passed,
        "aborted": None,
        "started_at": started_at,
        "duration_s": 10.5,
        "spec": {"name": name, "slos": ["outage_s <= 10"]},
        "fingerprints": {"stack": "s1", "template": template},
        "measured": measured,
        "slos": [
            {
                "episode": 0,
                "slo": "outage_s <= 10",
                "metric": "outage_s",
                "phase": None,
                "method": None,
                "target": 10.0,
                "measured": measured["outage_s"],
                "passed": passed,
                "message": "outage_s <= 10 holds",
            }
        ],
    }


def at(minute: int) -> str:
    return f"2026-12-01T10:{minute:02d}:00Z"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "reports" / HISTORY_FILE


# -- recording and reading back ---------------------------------------------------------


def test_a_recorded_run_reads_back_with_its_figures_verdicts_and_fingerprints(
    path: Path,
) -> None:
    with History(path) as history:
        history.record(doc("r1", measured={"ttd_s": None}))
        got = history.run("r1")
    assert got.run.name == "kill primary"
    assert got.run.passed is True
    assert (got.run.stack_fingerprint, got.run.template_fingerprint) == ("s1", "t1")
    assert got.measured == {
        "outage_s": 1.0,
        "mttr_component_s": 0.5,
        "p99_ms[baseline]": 1.7,
        "ttd_s": None,
    }
    assert [(v.slo, v.target, v.measured, v.passed) for v in got.verdicts] == [
        ("outage_s <= 10", 10.0, 1.0, True)
    ]
    assert got.spec == {"name": "kill primary", "slos": ["outage_s <= 10"]}
    assert got.run.result_path == str(Path("reports/r1/result.json").absolute())


def test_the_history_is_created_in_wal_mode_at_the_current_schema_version(path: Path) -> None:
    History(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_an_empty_file_is_migrated_to_a_history_on_open(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # SQLite's empty database
    with History(path) as history:
        history.record(doc("r1"))
        assert [r.run_id for r in history.runs()] == ["r1"]


def test_recording_the_same_run_twice_keeps_one_run_with_the_later_figures(path: Path) -> None:
    with History(path) as history:
        history.record(doc("r1", measured={"outage_s": 1.0}))
        history.record(doc("r1", measured={"outage_s": 2.0}))
        assert [r.run_id for r in history.runs(limit=None)] == ["r1"]
        assert history.run("r1").measured["outage_s"] == 2.0
        assert len(history.run("r1").verdicts) == 1


def test_runs_are_listed_newest_first_filtered_by_name_and_limited(path: Path) -> None:
    with History(path) as history:
        history.record(doc("a1", "a", at(1)))
        history.record(doc("b1", "b", at(2)))
        history.record(doc("a2", "a", at(3)))
        assert [r.run_id for r in history.runs()] == ["a2", "b1", "a1"]
        assert [r.run_id for r in history.runs(name="a")] == ["a2", "a1"]
        assert [r.run_id for r in history.runs(limit=1)] == ["a2"]


def test_the_history_outlives_the_process_that_wrote_it(path: Path) -> None:
    with History(path) as history:
        history.record(doc("r1"))
    with History(path, create=False) as history:
        assert history.run("r1").run.run_id == "r1"


# -- previous and baseline ----------------------------------------------------------------


def test_previous_is_the_newest_earlier_run_of_the_same_name_even_with_another_template(
    path: Path,
) -> None:
    with History(path) as history:
        history.record(doc("a1", "a", at(1), template="old"))
        history.record(doc("a2", "a", at(2), template="old"))
        history.record(doc("b1", "b", at(3)))
        history.record(doc("a3", "a", at(4), template="new"))  # haproxy.cfg changed
        history.record(doc("a4", "a", at(5)))  # later: not "previous" of a3
        found = history.previous("a3")
        assert found is not None
        assert found.run.run_id == "a2"
        assert found.run.template_fingerprint == "old"
        assert found.measured["outage_s"] == 1.0


def test_runs_started_in_the_same_second_are_ordered_by_run_id(path: Path) -> None:
    with History(path) as history:
        history.record(doc("20261201-100000-bbbbbb", started_at=at(0)))
        history.record(doc("20261201-100000-aaaaaa", started_at=at(0)))
        found = history.previous("20261201-100000-bbbbbb")
        assert found is not None and found.run.run_id == "20261201-100000-aaaaaa"
        assert history.previous("20261201-100000-aaaaaa") is None


def test_the_first_run_of_a_name_has_no_previous_and_comparing_against_it_says_why(
    path: Path,
) -> None:
    with History(path) as history:
        history.record(doc("a1", "a", at(1)))
        assert history.previous("a1") is None
        with pytest.raises(ConfigError, match=r"first of 'a'.*harness history"):
            history.reference("a1", "previous")


def test_a_baseline_is_set_per_name_read_back_and_replaced(path: Path) -> None:
    with History(path) as history:
        history.record(doc("a1", "a", at(1)))
        history.record(doc("a2", "a", at(2)))
        history.record(doc("b1", "b", at(3)))
        assert history.baseline("a") is None
        history.set_baseline("a1")
        found = history.baseline("a")
        assert found is not None and found.run.run_id == "a1"
        history.set_baseline("a2")
        found = history.baseline("a")
        assert found is not None and found.run.run_id == "a2"
        assert history.baseline("b") is None
        assert history.reference("a2", "baseline").run.run_id == "a2"
        assert history.reference("a2", "a1").run.run_id == "a1"


def test_comparing_against_a_missing_baseline_says_how_to_set_one(path: Path) -> None:
    with History(path) as history:
        history.record(doc("a1", "a"))
        with pytest.raises(ConfigError, match="no baseline: set one with `harness baseline set"):
            history.reference("a1", "baseline")


@pytest.mark.parametrize("call", ["run", "previous", "set_baseline", "reference"])
def test_an_unknown_run_id_is_a_config_error_that_says_how_to_list_runs(
    path: Path, call: str
) -> None:
    with History(path) as history:
        history.record(doc("a1"))
        with pytest.raises(ConfigError, match=r"'nope'.*`harness history` lists") as caught:
            getattr(history, call)("nope")
    assert caught.value.exit_code == 2


def test_latest_of_an_empty_history_is_a_config_error(path: Path) -> None:
    with History(path) as history, pytest.raises(ConfigError, match="holds no run yet"):
        history.latest()


def test_a_missing_file_is_not_created_when_create_is_false(path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        History(path, create=False)
    assert not path.exists()


# -- concurrent writers -----------------------------------------------------------------


def _record_many(path: str, prefix: str, count: int, start: Any) -> None:
    start.wait()
    with History(Path(path)) as history:
        for i in range(count):
            history.record(doc(f"{prefix}-{i:03d}", prefix, at(i % 60)))


def test_two_processes_creating_and_recording_at_once_lose_no_run(path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # separate interpreters, as two runs are
    start = ctx.Barrier(2)  # both imported, then both open a file that does not exist yet
    workers = [
        ctx.Process(target=_record_many, args=(str(path), name, 150, start)) for name in "ab"
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with History(path) as history:
        assert len(history.runs(name="a", limit=None)) == 150
        assert len(history.runs(name="b", limit=None)) == 150


def test_threads_with_their_own_connections_record_at_once_without_error(path: Path) -> None:
    History(path).close()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(prefix: str) -> None:
        try:
            _record_many(str(path), prefix, 25, start)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in "wxyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with History(path) as history:
        assert len(history.runs(limit=None)) == 100


def test_a_writer_waits_out_a_lock_shorter_than_the_busy_timeout(path: Path) -> None:
    History(path).close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    began = time.monotonic()
    with History(path, busy_timeout_s=5.0) as history:
        history.record(doc("r1"))
        waited_s = time.monotonic() - began
        assert history.run("r1").run.run_id == "r1"
    release.join()
    other.close()
    assert waited_s >= 0.25


# -- files the history refuses, untouched ---------------------------------------------------


def test_a_lock_held_beyond_the_busy_timeout_is_a_config_error_and_loses_nothing(
    path: Path,
) -> None:
    with History(path) as history:
        history.record(doc("r1"))
    before = digest(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with History(path, busy_timeout_s=0.2) as history:
            assert [r.run_id for r in history.runs()] == ["r1"]  # WAL: readers still read
            with pytest.raises(ConfigError) as caught:
                history.record(doc("r2"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = str(caught.value)
    assert str(path) in message
    assert "locked for over 0.2 s" in message
    assert "retry" in message
    assert digest(path) == before
    with History(path) as history:
        assert [r.run_id for r in history.runs()] == ["r1"]
        history.record(doc("r2"))  # once the lock is gone, the same record goes in


def test_a_file_locked_in_rollback_journal_mode_cannot_even_be_opened(path: Path) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")  # not WAL: an exclusive lock blocks readers too
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO t VALUES (1)")
    try:
        with pytest.raises(ConfigError, match="locked for over"):
            History(path, busy_timeout_s=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_file_of_garbage_is_refused_untouched_and_moving_it_aside_is_suggested(
    path: Path,
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 64)
    before = digest(path)
    with pytest.raises(ConfigError) as caught:
        History(path)
    message = str(caught.value)
    assert str(path) in message and "not a readable SQLite database" in message
    assert f"mv {path} {path}.broken" in message
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == [HISTORY_FILE]


def test_a_damaged_history_is_refused_untouched(path: Path) -> None:
    with History(path) as history:
        for i in range(40):
            history.record(doc(f"r{i:02d}", started_at=at(i)))
    data = bytearray(path.read_bytes())
    page = 4096  # keep the header page: the damage is found when the tables are read
    data[page:] = bytes((i * 7 + 3) & 0xFF for i in range(len(data) - page))
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(ConfigError, match=r"malformed.*move it aside"):
        with History(path) as history:
            history.runs(limit=None)
            history.run("r07")
    assert digest(path) == before


def test_a_history_from_a_newer_schema_is_refused_untouched(path: Path) -> None:
    with History(path) as history:
        history.record(doc("r1"))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(ConfigError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        History(path)
    assert digest(path) == before


def test_a_sqlite_file_that_is_not_a_history_is_refused_untouched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id)")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(ConfigError, match=r"not a harness history.*customers"):
        History(path)
    assert digest(path) == before


def test_a_record_of_a_document_is_the_same_without_the_database() -> None:
    record = RunRecord.of(doc("r1"), "/x/result.json")
    assert record.run.result_path == "/x/result.json"
    assert record.measured["outage_s"] == 1.0


def test_the_history_of_a_reports_directory_is_its_history_sqlite(tmp_path: Path) -> None:
    with History.in_reports(tmp_path / "reports") as history:
        history.record(doc("r1"))
    assert (tmp_path / "reports" / "history.sqlite").is_file()
