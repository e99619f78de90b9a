"""The supervisor: starts the stack's processes and restarts the ones that die.

It plays the part of systemd's ``Restart=`` (or Docker's restart policy) in production, so
a chaos experiment measures the real recovery path: death, restart delay with backoff,
process up again. Every start, death and restart is an event with a monotonic timestamp.

Why our own and not supervisord or circus: supervisord has no restart delay (only a
start-up backoff), reports deaths through an XML-RPC event listener with second
resolution, and runs as a separate daemon; circus needs ZeroMQ. What the harness needs
is ~150 lines: a watcher thread per child blocked in ``waitpid``, which timestamps the
death the moment the kernel reports it.

Each child leads a process group of its own, and whatever it started goes with it (as
systemd's ``KillMode=control-group``): when the child dies or is stopped, the rest of its
group is SIGKILLed before a restart, so a node that forks helpers (erigon's rpcdaemon,
say) never leaves one holding a port or a data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.stack.model import EventKind, ProcessEvent, RestartPolicy

log = logging.getLogger(__name__)


def describe_returncode(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class SupervisedProcess:
    """One child process and the thread that waits for it and restarts it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        policy: RestartPolicy,
        log_path: Path,
        emit: Callable[[ProcessEvent], None],
        env: dict[str, str] | None = None,
        hold_path: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.policy = policy
        self.log_path = log_path
        self.restarts = 0
        self._emit = emit
        self._env = env
        self._hold_path = hold_path
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_ns = 0
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        """Spawn the process and start watching it. Raises OSError if it cannot be spawned."""
        with self._lock:
            self._spawn()
        self._thread = threading.Thread(
            target=self._watch, name=f"supervise-{self.name}", daemon=True
        )
        self._thread.start()

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as out:
            # A session of its own: a Ctrl-C at the terminal reaches the harness, which
            # tears the stack down in order, instead of killing every node at once.
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._env,
            )
        self._started_ns = time.monotonic_ns()
        self._emit(self._event("started", pid=self._proc.pid))

    def _watch(self) -> None:
        delay_s = self.policy.delay_s
        while True:
            proc = self._proc
            assert proc is not None
            returncode = proc.wait()
            _kill_group(proc.pid)  # what the dead child started dies with it
            with self._lock:
                if self._stop.is_set():
                    return
                self._emit(
                    self._event(
                        "exited",
                        pid=proc.pid,
                        returncode=returncode,
                        detail=describe_returncode(returncode),
                    )
                )
                if not self.policy.enabled:
                    return
                uptime_s = (time.monotonic_ns() - self._started_ns) / 1e9
                if uptime_s >= self.policy.reset_after_s:
                    delay_s = self.policy.delay_s
                self._emit(self._event("restart_scheduled", detail=f"in {delay_s:.3f}s"))
            if self._stop.wait(delay_s):
                return
            if self.held():
                detail = "held down by a stop fault until it is undone"
                self._emit(self._event("restart_scheduled", detail=detail))
                while self.held():
                    if self._stop.wait(0.01):
                        return
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._spawn()
                except OSError as exc:
                    self._emit(self._event("spawn_failed", detail=str(exc)))
                    return
                self.restarts += 1
            delay_s = min(delay_s * self.policy.backoff, self.policy.max_delay_s)

    def held(self) -> bool:
        """True while a fault holds this process down (its hold file exists): the
        supervisor restarts it only once the file is gone."""
        return self._hold_path is not None and self._hold_path.exists()

    def request_stop(self) -> None:
        """Stop for good: no more restarts, and SIGTERM to the process (SIGCONT first)."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is not None and proc.returncode is None:
            _signal(proc, signal.SIGCONT)  # a paused process cannot act on SIGTERM
            _signal(proc, signal.SIGTERM)

    def wait_stopped(self, timeout_s: float) -> None:
        """Wait for the process to exit after `request_stop`; SIGKILL it after ``timeout_s``."""
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait(5)
            _kill_group(proc.pid)
            self._emit(self._event("stopped", pid=proc.pid, returncode=proc.returncode))
        if self._thread is not None:
            self._thread.join(5)

    def _event(self, kind: EventKind, **fields: object) -> ProcessEvent:
        return ProcessEvent(time.monotonic_ns(), time.time(), self.name, kind, **fields)  # type: ignore[arg-type]


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def _kill_group(leader_pid: int) -> None:
    """SIGKILL what is left of the process group ``leader_pid`` led (after it exited).

    The group id cannot be reused while any member lives, so this reaches only what the
    child started; an empty group is ESRCH. A paused member dies too: SIGKILL needs no
    SIGCONT.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader_pid, signal.SIGKILL)


class Supervisor:
    """Owns a set of supervised processes; a context manager that stops them all on exit."""

    def __init__(
        self,
        log_dir: Path,
        on_event: Callable[[ProcessEvent], None] | None = None,
        hold_dir: Path | None = None,
    ):
        self.log_dir = log_dir
        self.hold_dir = hold_dir
        self.events: list[ProcessEvent] = []
        self._on_event = on_event
        self._children: dict[str, SupervisedProcess] = {}
        self._events_lock = threading.Lock()

    def add(
        self,
        name: str,
        argv: Sequence[str],
        policy: RestartPolicy,
        env: dict[str, str] | None = None,
    ) -> SupervisedProcess:
        """Start ``argv`` as ``name`` and keep it running according to ``policy``."""
        if name in self._children:
            raise ValueError(f"{name!r} is already supervised")
        hold = self.hold_dir / name if self.hold_dir is not None else None
        child = SupervisedProcess(
            name, argv, policy, self.log_dir / f"{name}.log", self._record, env, hold
        )
        child.start()  # only a child that could be spawned is supervised
        self._children[name] = child
        return child

    def child(self, name: str) -> SupervisedProcess:
        return self._children[name]

    def pids(self) -> dict[str, int | None]:
        return {name: child.pid for name, child in self._children.items()}

    def restarts(self) -> dict[str, int]:
        return {name: child.restarts for name, child in self._children.items()}

    def exited(self, name: str) -> bool:
        """Whether ``name`` has exited at least once (a start-up wait gives up on it)."""
        with self._events_lock:
            return any(e.component == name and e.kind == "exited" for e in self.events)

    def _record(self, event: ProcessEvent) -> None:
        with self._events_lock:
            self.events.append(event)
        log.info("%s %s pid=%s %s", event.component, event.kind, event.pid, event.detail)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # an observer must never kill the supervisor
                log.exception("supervisor event observer failed")

    def stop(self, timeout_s: float = 3.0, first: Sequence[str] = ()) -> None:
        """Stop every child, never restarting them: ``first`` ones, then the rest together."""
        ordered = [n for n in first if n in self._children]
        rest = [n for n in self._children if n not in ordered]
        for group in (ordered, rest):
            for name in group:
                self._children[name].request_stop()
            for name in group:
                self._children[name].wait_stopped(timeout_s)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
