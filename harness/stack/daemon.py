"""The detached owner of a stack started by ``harness stack up``.

``harness stack up`` must return while the stack keeps running, so the stack lives in a
process of its own: this one. It stands the stack up, reports one JSON line (the state,
or the error) on stdout to the parent, then waits for SIGTERM and tears everything down.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from harness.errors import HarnessError, StackError
from harness.stack.backends import open_stack
from harness.stack.model import StackSpec, StackState
from harness.stack.state import read_state, stacks_dir


def _report(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
    # Nothing else may go to the parent's pipe: it is closed once `stack up` returns.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def serve(spec: StackSpec) -> int:
    """Run the stack until SIGTERM or SIGINT; returns the process exit status."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stack = open_stack(spec, detached=True)
    try:
        state = stack.start()
    except HarnessError as exc:
        _report({"error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except Exception as exc:
        _report({"error": f"{type(exc).__name__}: {exc}", "exit_code": 1})
        raise
    _report({"state": state.to_dict(), "ready_s": stack.ready_s, "reaped": stack.reaped})
    try:
        stop.wait()
    finally:
        stack.stop()
    return 0


def start_detached(spec: StackSpec, timeout_s: float = 60.0) -> tuple[StackState, float, list[str]]:
    """Start a daemon owning a stack for ``spec``; returns (state, ready seconds, reaped)."""
    log_path = stacks_dir().parent / f"daemon-{spec.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.stack.daemon", json.dumps(spec.to_dict())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line:
        proc.wait(timeout_s)
        raise StackError(
            f"the stack daemon exited with status {proc.returncode} before reporting; "
            f"see {log_path}"
        )
    doc = json.loads(line)
    if "error" in doc:
        proc.wait(timeout_s)
        error = HarnessError(doc["error"])
        error.exit_code = doc["exit_code"]
        raise error
    return StackState.from_dict(doc["state"]), float(doc["ready_s"]), list(doc["reaped"])


def stop_detached(name: str, timeout_s: float = 15.0) -> bool:
    """SIGTERM the daemon owning stack ``name`` and wait for it to be gone.

    Returns False if no such stack runs. Refuses a stack owned by another kind of process
    (a pytest session), which must stop it itself.
    """
    directory = stacks_dir() / name
    if not directory.exists():
        return False
    state = read_state(directory)
    if not state.owner.alive():
        return False
    if not state.detached:
        raise StackError(
            f"stack {name!r} belongs to process {state.owner.pid}, not to `harness stack up`; "
            "stop that process (its teardown removes the stack)"
        )
    os.kill(state.owner.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not state.owner.alive():
            return True
        time.sleep(0.02)
    raise StackError(f"the daemon of stack {name!r} (pid {state.owner.pid}) did not stop")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return serve(StackSpec.from_dict(json.loads(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
