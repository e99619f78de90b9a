"""Undo operations: how to take a fault back, as plain data that survives the harness.

A fault writes its undo operations to the ledger *before* it acts. The same operations
revert it at the end of the block, or, if the harness was killed, in the next process
that runs `replay_open_records`. Every operation is idempotent: undoing what is already
undone does nothing and says so (returns None).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.stack.state import ProcessIdentity

log = logging.getLogger(__name__)

UndoOp = dict[str, Any]
_OPS: dict[str, Callable[[UndoOp], str | None]] = {}


def undo_op(
    name: str,
) -> Callable[[Callable[[UndoOp], str | None]], Callable[[UndoOp], str | None]]:
    """Register an undo operation under ``name`` (its ``op`` field in the ledger)."""

    def register(fn: Callable[[UndoOp], str | None]) -> Callable[[UndoOp], str | None]:
        _OPS[name] = fn
        return fn

    return register


def run_undo(op: UndoOp) -> str | None:
    """Apply one undo operation; returns what it undid, or None if nothing was left."""
    try:
        fn = _OPS[op["op"]]
    except KeyError:
        raise ValueError(f"unknown undo operation {op.get('op')!r}") from None
    return fn(op)


@undo_op("sigcont")
def _sigcont(op: UndoOp) -> str | None:
    proc = ProcessIdentity(op["pid"], op["create_time"])
    if not proc.alive():
        return None
    os.kill(proc.pid, signal.SIGCONT)
    return f"resumed paused process {op.get('name', '')} (pid {proc.pid})"


@undo_op("kill_process")
def _kill_process(op: UndoOp) -> str | None:
    proc = ProcessIdentity(op["pid"], op["create_time"])
    if proc.kill(timeout_s=2.0):
        return f"stopped {op.get('name', 'process')} (pid {proc.pid})"
    return None


@undo_op("remove_file")
def _remove_file(op: UndoOp) -> str | None:
    path = Path(op["path"])
    if not path.exists():
        return None
    path.unlink()
    return f"removed {path}"
