"""The fault ledger: a durable record of every fault, written before it is applied.

One append-only JSONL file per harness process under ``<state root>/ledger/``. An ``open``
record (what, where, how to undo) is fsynced before a fault acts; a ``close`` record after
it is undone. A record left open by a process that no longer exists is a fault nobody is
going to revert: `replay_open_records` reverts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.faults.undo import UndoOp, run_undo
from harness.stack.state import ProcessIdentity, state_root

log = logging.getLogger(__name__)


def ledger_dir() -> Path:
    return state_root() / "ledger"


class Ledger:
    """This process's ledger file. Thread-safe; every write is fsynced."""

    def __init__(self, directory: Path | None = None) -> None:
        self.owner = ProcessIdentity.current()
        self.directory = directory or ledger_dir()
        self.path = self.directory / f"{self.owner.pid}-{int(self.owner.create_time * 1000)}.jsonl"
        self._lock = threading.Lock()

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def open(self, fault_id: str, kind: str, targets: list[str], undo: list[UndoOp]) -> None:
        """Record a fault about to be applied, with the operations that undo it."""
        self._append(
            {
                "event": "open",
                "id": fault_id,
                "kind": kind,
                "targets": targets,
                "undo": undo,
                "owner": asdict(self.owner),
                "wall_time": time.time(),
            }
        )

    def add_undo(self, fault_id: str, undo: list[UndoOp]) -> None:
        """Record more undo operations for an open fault (e.g. a helper process it spawned)."""
        self._append({"event": "undo", "id": fault_id, "undo": undo})

    def close(self, fault_id: str) -> None:
        """Record that the fault is undone."""
        self._append({"event": "close", "id": fault_id, "wall_time": time.time()})


def _open_records(path: Path) -> tuple[ProcessIdentity | None, dict[str, dict[str, Any]]]:
    owner: ProcessIdentity | None = None
    records: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line from a killed writer
        if record["event"] == "open":
            owner = ProcessIdentity(**record["owner"])
            records[record["id"]] = record
        elif record["event"] == "undo" and record["id"] in records:
            records[record["id"]]["undo"].extend(record["undo"])
        elif record["event"] == "close":
            records.pop(record["id"], None)
    return owner, records


def replay_open_records(include_live: bool = False) -> list[str]:
    """Undo every fault left open by a dead process; returns what was undone.

    Idempotent: a replayed record is closed, and undo operations tolerate what is gone.
    """
    undone: list[str] = []
    directory = ledger_dir()
    if not directory.is_dir():
        return undone
    for path in sorted(directory.glob("*.jsonl")):
        owner, records = _open_records(path)
        if owner is not None and owner.alive() and not include_live:
            continue
        failed = False
        for fault_id, record in records.items():
            for op in reversed(record["undo"]):
                try:
                    done = run_undo(op)
                except Exception as exc:  # keep going: one failed undo must not block the rest
                    failed = True
                    undone.append(f"FAILED to undo {record['kind']} {fault_id}: {op} ({exc})")
                    continue
                if done:
                    undone.append(f"{record['kind']} on {', '.join(record['targets'])}: {done}")
        if not failed:  # a record whose undo failed stays, for the next cleanup to retry
            path.unlink(missing_ok=True)
    return undone
