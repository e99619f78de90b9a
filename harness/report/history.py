"""The history: every run's result recorded in one SQLite file, so that ``harness compare``
finds the run before this one, or the scenario's baseline, among thousands without
reading their result.json files.

Place in the flow: the last reader of a run's document (`harness.report.document`); it
keeps the figures a comparison needs (the measured mapping, the SLO verdicts, the
fingerprints of what shaped the stack) and the path of the full document.

Storage is the standard library's `sqlite3`, the well-kept library for this: SQLite
itself, maintained with Python and tested on every platform it ships on; four tables need
no ORM. The file is in WAL mode, so readers never wait for a writer and a writer waits
(``busy_timeout_s``) for another only for the few milliseconds of one short transaction:
two runs finishing at once both get recorded. Any trouble with the file (locked beyond
the timeout, damaged, not a history, from a newer harness) is a `ConfigError` naming it
and what to do; the file is never deleted, overwritten or repaired here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from harness.errors import ConfigError

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite"
#: Bump with a new entry in `_MIGRATIONS`; a file from a newer harness is refused.
SCHEMA_VERSION = 1
#: How long a writer waits for another's transaction; each of ours lasts milliseconds.
DEFAULT_BUSY_TIMEOUT_S = 5.0
#: How the CLI lists what is recorded, for messages that point there.
LIST_COMMAND = "harness history"

# _MIGRATIONS[v] takes a file from user_version v to v + 1, in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            started_at TEXT NOT NULL,
            passed INTEGER NOT NULL,
            aborted TEXT,
            duration_s REAL,
            stack_fingerprint TEXT,
            template_fingerprint TEXT,
            spec_json TEXT NOT NULL,
            result_path TEXT
        )""",
        # previous(): the newest run of a name before a given one is one index probe.
        "CREATE INDEX runs_by_name ON runs (name, started_at, run_id)",
        "CREATE INDEX runs_by_time ON runs (started_at, run_id)",
        # The primary key (run_id, key) is the index by run: one run's metrics are one
        # contiguous range of the table (WITHOUT ROWID stores rows in key order).
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value REAL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX metrics_by_key ON metrics (key)",
        # position keeps the verdicts in the run's order, and two equal SLO texts apart.
        """CREATE TABLE verdicts (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            episode INTEGER NOT NULL,
            slo TEXT NOT NULL,
            target REAL NOT NULL,
            measured REAL,
            passed INTEGER NOT NULL,
            PRIMARY KEY (run_id, position)
        ) WITHOUT ROWID""",
        """CREATE TABLE baselines (
            name TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE
        )""",
    ),
)
_RUN_COLUMNS = (
    "run_id, name, started_at, passed, aborted, duration_s, "
    "stack_fingerprint, template_fingerprint, result_path"
)
# SQLite's primary result codes (the low byte of sqlite_errorcode).
_BUSY, _LOCKED, _READONLY, _CORRUPT, _CANTOPEN, _NOTADB = 5, 6, 8, 11, 14, 26


@dataclass(frozen=True)
class Run:
    """One recorded run, as `History.runs` lists it."""

    run_id: str
    name: str
    started_at: str  # ISO 8601 UTC, as the run wrote it
    passed: bool
    aborted: str | None
    duration_s: float | None
    stack_fingerprint: str | None
    template_fingerprint: str | None
    result_path: str | None


@dataclass(frozen=True)
class Verdict:
    """One SLO verdict of a recorded run."""

    episode: int
    slo: str
    target: float
    measured: float | None
    passed: bool


@dataclass(frozen=True)
class RunRecord:
    """A run with the figures a comparison reads: its measured mapping and verdicts."""

    run: Run
    measured: Mapping[str, float | None]
    verdicts: tuple[Verdict, ...]
    spec: Mapping[str, Any]

    @classmethod
    def of(cls, doc: Mapping[str, Any], result_path: Path | str | None = None) -> RunRecord:
        """The record of a result document (``harness.result/2``); ``result_path`` defaults
        to ``<run_dir>/result.json``, made absolute against the working directory."""
        if result_path is None and doc.get("run_dir"):
            result_path = Path(doc["run_dir"]) / "result.json"
        fingerprints = doc.get("fingerprints") or {}
        run = Run(
            run_id=str(doc["run_id"]),
            name=str(doc["name"]),
            started_at=str(doc["started_at"]),
            passed=bool(doc["passed"]),
            aborted=doc.get("aborted"),
            duration_s=doc.get("duration_s"),
            stack_fingerprint=fingerprints.get("stack"),
            template_fingerprint=fingerprints.get("template"),
            result_path=None if result_path is None else str(Path(result_path).absolute()),
        )
        measured = {
            str(k): None if v is None else float(v) for k, v in (doc.get("measured") or {}).items()
        }
        verdicts = tuple(
            Verdict(
                int(v["episode"]),
                str(v["slo"]),
                float(v["target"]),
                None if v["measured"] is None else float(v["measured"]),
                bool(v["passed"]),
            )
            for v in doc.get("slos") or ()
        )
        return cls(run, measured, verdicts, doc.get("spec") or {})


class History:
    """The history file, open: ``with History(path) as h: h.record(doc)``.

    Opening creates the file (and its directory) unless ``create`` is false, and migrates
    an older schema. Every method raises `ConfigError` for a file it cannot use.
    """

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        try:
            self._open(create)
        except BaseException:
            self.close()
            raise

    @classmethod
    def in_reports(
        cls,
        reports_dir: Path,
        *,
        create: bool = True,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> History:
        """The history of a reports directory: ``<reports_dir>/history.sqlite``."""
        return cls(Path(reports_dir) / HISTORY_FILE, create=create, busy_timeout_s=busy_timeout_s)

    # -- lifetime -----------------------------------------------------------------

    def __enter__(self) -> History:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing ------------------------------------------------------------------

    def record(self, doc: Mapping[str, Any], result_path: Path | str | None = None) -> Run:
        """Record a run's document; recording the same run again replaces it (idempotent
        on run_id). One short transaction."""
        rec = RunRecord.of(doc, result_path)
        r = rec.run
        with self._write() as db:
            db.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, spec_json) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (run_id) DO UPDATE SET name = excluded.name, "
                "started_at = excluded.started_at, passed = excluded.passed, "
                "aborted = excluded.aborted, duration_s = excluded.duration_s, "
                "stack_fingerprint = excluded.stack_fingerprint, "
                "template_fingerprint = excluded.template_fingerprint, "
                "result_path = excluded.result_path, spec_json = excluded.spec_json",
                (
                    r.run_id,
                    r.name,
                    r.started_at,
                    int(r.passed),
                    r.aborted,
                    r.duration_s,
                    r.stack_fingerprint,
                    r.template_fingerprint,
                    r.result_path,
                    json.dumps(rec.spec, sort_keys=True, default=str),
                ),
            )
            db.execute("DELETE FROM metrics WHERE run_id = ?", (r.run_id,))
            db.executemany(
                "INSERT INTO metrics (run_id, key, value) VALUES (?,?,?)",
                [(r.run_id, k, v) for k, v in rec.measured.items()],
            )
            db.execute("DELETE FROM verdicts WHERE run_id = ?", (r.run_id,))
            db.executemany(
                "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?)",
                [
                    (r.run_id, i, v.episode, v.slo, v.target, v.measured, int(v.passed))
                    for i, v in enumerate(rec.verdicts)
                ],
            )
        return r

    def set_baseline(self, run_id: str) -> Run:
        """Make a recorded run the baseline of its name (replacing any earlier one)."""
        with self._write() as db:
            run = self._run_row(db, run_id)
            db.execute(
                "INSERT INTO baselines (name, run_id) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id",
                (run.name, run.run_id),
            )
        return run

    # -- reading ------------------------------------------------------------------

    def runs(self, name: str | None = None, limit: int | None = 20) -> list[Run]:
        """Recorded runs, newest first; of one name if given; all of them if ``limit`` is None."""
        args: list[object] = [] if name is None else [name]
        where = "" if name is None else "WHERE name = ?"
        sql = f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._read() as db:
            return [_run(row) for row in db.execute(sql, args)]

    def run(self, run_id: str) -> RunRecord:
        """A recorded run with its figures; `ConfigError` if the history has no such run."""
        with self._read() as db:
            return self._record(db, self._run_row(db, run_id))

    def latest(self, name: str | None = None) -> RunRecord:
        """The newest recorded run (of ``name``); `ConfigError` if there is none."""
        found = self.runs(name, limit=1)
        if not found:
            what = f"no run named {name!r}" if name is not None else "no run"
            raise ConfigError(
                "history",
                str(self.path),
                f"holds {what} yet: runs are recorded as they finish; `{LIST_COMMAND}` lists them",
            )
        return self.run(found[0].run_id)

    def previous(self, run_id: str) -> RunRecord | None:
        """The newest run of the same name started before ``run_id``, whatever its
        fingerprints (comparing a changed haproxy.cfg against the run before is the point:
        `harness.report.compare` says when they differ); None for a name's first run."""
        with self._read() as db:
            run = self._run_row(db, run_id)
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ? AND (started_at, run_id) < (?, ?) "
                "ORDER BY started_at DESC, run_id DESC LIMIT 1",
                (run.name, run.started_at, run.run_id),
            ).fetchone()
            return None if row is None else self._record(db, _run(row))

    def baseline(self, name: str) -> RunRecord | None:
        """The run set as the baseline of ``name`` (`set_baseline`), or None."""
        with self._read() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs "
                "WHERE run_id = (SELECT run_id FROM baselines WHERE name = ?)",
                (name,),
            ).fetchone()
            return None if row is None else self._record(db, _run(row))

    def reference(self, run_id: str, against: str = "previous") -> RunRecord:
        """What ``run_id`` is compared against: ``"previous"``, ``"baseline"`` or a run id;
        `ConfigError` saying what to do when there is none."""
        if against == "previous":
            found = self.previous(run_id)
            if found is None:
                name = self.run(run_id).run.name
                raise ConfigError(
                    "--against",
                    against,
                    f"run {run_id} is the first of {name!r} in the history, nothing ran before "
                    f"it: give a run id (`{LIST_COMMAND} --name NAME` lists them)",
                )
            return found
        if against == "baseline":
            name = self.run(run_id).run.name
            found = self.baseline(name)
            if found is None:
                raise ConfigError(
                    "--against",
                    against,
                    f"{name!r} has no baseline: set one with `harness baseline set RUN`",
                )
            return found
        return self.run(against)

    # -- the file -----------------------------------------------------------------

    def _open(self, create: bool) -> None:
        if not self.path.exists():
            if not create:
                raise ConfigError(
                    "history",
                    str(self.path),
                    "does not exist: runs are recorded there as they finish; run one, or "
                    "point --reports-dir at the directory that holds history.sqlite",
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._fail_os(exc)
        try:
            self._db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            self._fail(exc)
        # Read before any write, so that a damaged or foreign file is refused untouched;
        # in one snapshot, so that a racing opener's migration is seen whole or not at all.
        with self._read() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = sorted(
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
        if version > SCHEMA_VERSION:
            raise ConfigError(
                "history",
                str(self.path),
                f"has schema version {version}, newer than this harness's "
                f"{SCHEMA_VERSION}: it was written by a newer harness; upgrade this one, "
                "or point --reports-dir elsewhere",
            )
        if version == 0 and tables:
            raise ConfigError(
                "history",
                str(self.path),
                f"is a SQLite database but not a harness history (it holds "
                f"{', '.join(tables)}); move it aside or point --reports-dir elsewhere",
            )
        with self._errors():
            db = self._conn
            db.execute("PRAGMA foreign_keys = ON")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._switch_to_wal(db)
            # WAL + NORMAL cannot corrupt the file; a power cut may lose the last record.
            db.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                self._migrate()

    def _switch_to_wal(self, db: sqlite3.Connection) -> None:
        # Once per file (the mode is kept in it). SQLite answers BUSY at once, without its
        # busy handler, while another connection opens the same new file: wait here.
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if _code(exc) not in (_BUSY, _LOCKED) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if mode != "wal":  # a file system without shared memory: correct, less concurrent
            log.warning("history %s stays in %s journal mode, not WAL", self.path, mode)

    def _migrate(self) -> None:
        with self._write() as db:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"history {self.path} is closed")
        return self._db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # One read transaction: the run and its figures come from the same snapshot.
        with self._errors():
            db = self._conn
            db.execute("BEGIN")
            try:
                yield db
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock first, so the busy timeout covers the whole wait
        # (a read lock upgraded later can fail at once instead of waiting).
        with self._errors():
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            self._fail(exc)

    def _fail(self, exc: sqlite3.Error) -> NoReturn:
        code = _code(exc)
        where = str(self.path)
        if code in (_BUSY, _LOCKED):
            fix = (
                f"another process has held it locked for over {self.busy_timeout_s:g} s "
                "(a harness run recording, or a sqlite3 shell left in a transaction); "
                f"nothing was written: let it finish and retry, `fuser {where}` shows who"
            )
        elif code in (_CORRUPT, _NOTADB):
            fix = (
                f"is not a readable SQLite database ({exc}); it was left as it is: move it "
                f"aside (mv {where} {where}.broken) and the next run starts a new history"
            )
        elif code == _READONLY:
            fix = f"cannot be written ({exc}): make it writable, or point --reports-dir elsewhere"
        elif code == _CANTOPEN:
            fix = f"cannot be opened ({exc}): choose a writable directory with --reports-dir"
        else:
            fix = f"SQLite failed on it: {exc}"
        raise ConfigError("history", where, fix) from exc

    def _fail_os(self, exc: OSError) -> NoReturn:
        raise ConfigError(
            "history",
            str(self.path),
            f"cannot create it ({exc.strerror}): choose a writable directory with --reports-dir",
        ) from exc

    def _run_row(self, db: sqlite3.Connection, run_id: str) -> Run:
        row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise ConfigError(
                "run id",
                run_id,
                f"is not in the history {self.path}: `{LIST_COMMAND}` lists the recorded runs",
            )
        return _run(row)

    def _record(self, db: sqlite3.Connection, run: Run) -> RunRecord:
        measured = dict(
            db.execute("SELECT key, value FROM metrics WHERE run_id = ?", (run.run_id,))
        )
        verdicts = tuple(
            Verdict(episode, slo, target, measured_value, bool(passed))
            for episode, slo, target, measured_value, passed in db.execute(
                "SELECT episode, slo, target, measured, passed FROM verdicts "
                "WHERE run_id = ? ORDER BY position",
                (run.run_id,),
            )
        )
        (spec_json,) = db.execute(
            "SELECT spec_json FROM runs WHERE run_id = ?", (run.run_id,)
        ).fetchone()
        return RunRecord(run, measured, verdicts, json.loads(spec_json))


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of an error (0 if it carries none)."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _run(row: tuple[Any, ...]) -> Run:
    run_id, name, started_at, passed, aborted, duration_s, stack, template, path = row
    return Run(run_id, name, started_at, bool(passed), aborted, duration_s, stack, template, path)


__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "HISTORY_FILE",
    "SCHEMA_VERSION",
    "History",
    "Run",
    "RunRecord",
    "Verdict",
]
