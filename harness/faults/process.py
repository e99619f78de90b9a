"""Process faults: kill (SIGKILL), terminate (SIGTERM with grace), pause (SIGSTOP/SIGCONT),
restart, and stop (killed and kept down until the fault is undone). The supervisor's
restart is part of what is measured: these faults never bypass it; ``stop`` only holds it
back, through a hold file the supervisor honours, so that a SIGKILLed harness's ledger
replay (which removes the file) lets the supervisor bring the process back.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import psutil

from harness.errors import ConfigError
from harness.faults import container
from harness.faults.fault import Fault, FaultIneffective, wait_until
from harness.faults.undo import UndoOp, run_undo
from harness.stack.model import ComponentState
from harness.stack.state import ProcessIdentity, hold_path

ALL_ROLES = ("primary", "backup", "balancer")


def _identity(component: ComponentState) -> ProcessIdentity:
    if component.pid is None:
        raise FaultIneffective(
            f"fault ineffective: {component.name} has no running process to signal "
            "(it is down or being restarted)"
        )
    try:
        identity = ProcessIdentity.of(component.pid)
    except psutil.Error as exc:
        raise FaultIneffective(f"fault ineffective: {component.name} is gone: {exc}") from exc
    if not identity.alive():  # a zombie: dead, not yet reaped by the supervisor
        raise FaultIneffective(
            f"fault ineffective: {component.name} (pid {component.pid}) is already dead"
        )
    return identity


def _wait_all(
    procs: list[ProcessIdentity],
    predicate: Callable[[ProcessIdentity], bool],
    timeout_s: float,
    what: str,
) -> None:
    for proc in procs:
        wait_until(functools.partial(predicate, proc), timeout_s, what.format(pid=proc.pid))


def _gone(proc: ProcessIdentity) -> bool:
    return not proc.alive()


def _stopped(proc: ProcessIdentity) -> bool:
    return _status(proc) == psutil.STATUS_STOPPED


def _running(proc: ProcessIdentity) -> bool:
    return _status(proc) != psutil.STATUS_STOPPED


def _status(identity: ProcessIdentity) -> str | None:
    """The kernel's status of this very process, or None if it is gone."""
    if not identity.alive():
        return None
    try:
        return str(psutil.Process(identity.pid).status())
    except psutil.Error:
        return None


@dataclass
class _Signal(Fault):
    roles: ClassVar[tuple[str, ...]] = ALL_ROLES
    mechanism_name: ClassVar[str] = "signal"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = self.mechanism_name
        self._procs: list[ProcessIdentity] = []

    def _send(self, targets: tuple[ComponentState, ...], sig: signal.Signals) -> None:
        self._procs = [_identity(t) for t in targets]
        for proc in self._procs:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                raise FaultIneffective(
                    f"fault ineffective: pid {proc.pid} exited before it could be signalled"
                ) from None


@dataclass
class Kill(_Signal):
    """SIGKILL: the process dies at once; the supervisor restarts it after its delay."""

    kind: ClassVar[str] = "kill"
    mechanism_name: ClassVar[str] = "SIGKILL"

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return []  # nothing to undo: the supervisor brings the process back

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        self._send(targets, signal.SIGKILL)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        _wait_all(self._procs, _gone, 2.0, "pid {pid} survived SIGKILL")


@dataclass
class Terminate(_Signal):
    """SIGTERM, then SIGKILL if the process has not exited after ``grace_s``."""

    kind: ClassVar[str] = "terminate"
    mechanism_name: ClassVar[str] = "SIGTERM"
    grace_s: float = 5.0

    def validate(self) -> None:
        if not 0 <= self.grace_s <= 300:
            raise ConfigError("grace_s", self.grace_s, "choose 0 to 300 seconds")

    def params(self) -> dict[str, Any]:
        return {"grace_s": self.grace_s}

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return []

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        self._send(targets, signal.SIGTERM)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        try:
            _wait_all(self._procs, _gone, self.grace_s, "pid {pid} survived SIGTERM")
        except FaultIneffective:
            self.mechanism = "SIGTERM+SIGKILL"
            for proc in self._procs:
                proc.kill(timeout_s=0)
            _wait_all(self._procs, _gone, 2.0, "pid {pid} survived SIGKILL")


@dataclass
class Restart(Terminate):
    """A graceful restart: SIGTERM (with grace), and the supervisor starts it again."""

    kind: ClassVar[str] = "restart"


@dataclass
class Pause(_Signal):
    """SIGSTOP for the block, SIGCONT after: the process hangs with its sockets open."""

    kind: ClassVar[str] = "pause"
    mechanism_name: ClassVar[str] = "SIGSTOP"

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        if container.in_containers(targets):  # the docker backend: freeze the container
            self.mechanism = container.MECHANISM_PAUSE
            return [container.undo_unpause(t) for t in targets]
        ops = []
        for t in targets:
            proc = _identity(t)
            ops.append({"op": "sigcont", "name": t.name, **proc.__dict__})
        return ops

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if container.in_containers(targets):
            container.pause(targets)
            return
        self._send(targets, signal.SIGSTOP)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        if container.in_containers(targets):
            container.wait_status(targets, paused=True, what="{name} is not paused")
            return
        _wait_all(self._procs, _stopped, 2.0, "pid {pid} is not stopped after SIGSTOP")

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        if container.in_containers(targets):
            container.wait_status(targets, paused=False, what="{name} is still paused")
            return
        _wait_all(self._procs, _running, 2.0, "pid {pid} is still stopped after SIGCONT")


@dataclass
class Stop(_Signal):
    """SIGKILL, and no restart while the fault holds; undone, the supervisor restarts the
    process at once. Both nodes stopped is the outage no balancer can hide."""

    kind: ClassVar[str] = "stop"
    mechanism_name: ClassVar[str] = "SIGKILL + restart held"
    # How long the undo waits for the supervisor to bring every target back.
    restart_timeout_s: float = 15.0
    # Undone one target at a time, the last first, this far apart: "both nodes down, and
    # the service must come back when either returns".
    stagger_s: float = 0.0

    def validate(self) -> None:
        if not 1 <= self.restart_timeout_s <= 300:
            raise ConfigError("restart_timeout_s", self.restart_timeout_s, "choose 1 to 300 s")
        if not 0 <= self.stagger_s <= 300:
            raise ConfigError("stagger_s", self.stagger_s, "choose 0 to 300 s")

    def params(self) -> dict[str, Any]:
        return {"restart_timeout_s": self.restart_timeout_s, "stagger_s": self.stagger_s}

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        if container.in_containers(targets):  # docker kill: the restart policy holds off
            self.mechanism = container.MECHANISM_STOP
            self._procs = [_identity(t) for t in targets]
            return [container.undo_start(t) for t in targets]
        state = self.stack.state()
        self._holds = [hold_path(state, t.name) for t in targets]
        return [{"op": "remove_file", "path": str(path)} for path in self._holds]

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if container.in_containers(targets):
            container.stop(targets)
            return
        for path in self._holds:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"held by fault {self.kind} of pid {os.getpid()}\n")
        self._send(targets, signal.SIGKILL)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        _wait_all(self._procs, _gone, 2.0, "pid {pid} survived SIGKILL")

    def revert(self, targets: tuple[ComponentState, ...]) -> None:
        """Release the holds, the last target's first, ``stagger_s`` apart."""
        for i, op in enumerate(reversed(self._undo)):
            if i and self.stagger_s:
                time.sleep(self.stagger_s)
            run_undo(op)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        """Every target runs again, as a new process, within ``restart_timeout_s``."""
        old = {p.pid for p in self._procs}
        names = {t.name for t in targets}
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            now = {c.name: c.pid for c in self.stack.state().components if c.name in names}
            if all(pid is not None and pid not in old for pid in now.values()):
                return
            if time.monotonic() > deadline:
                down = sorted(n for n, pid in now.items() if pid is None or pid in old)
                raise FaultIneffective(
                    f"{', '.join(down)} not restarted within {self.restart_timeout_s:g}s "
                    "after the stop was undone (is the stack's restart policy disabled?)"
                )
            time.sleep(0.01)
