"""The shape of every fault: a context manager that records, injects, verifies and undoes.

    with Pause(stack, "primary"):      # ledger first, SIGSTOP, verified stopped
        ...                            # the fault holds for the block
                                       # SIGCONT in `finally`, verified running, ledger closed

Subclasses say how to apply, verify and undo; this base class guarantees the order, the
timing (monotonic, in nanoseconds, reported in microseconds) and that a fault which did
not take effect fails loudly instead of letting a scenario pass vacuously.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.errors import ConfigError, HarnessError
from harness.faults.ledger import Ledger, ledger_dir
from harness.faults.targets import select, validate_selector
from harness.faults.undo import UndoOp, run_undo
from harness.stack.model import ComponentState, Stack, StackState

log = logging.getLogger(__name__)

_default_ledger: Ledger | None = None
_ledger_lock = threading.Lock()


def default_ledger() -> Ledger:
    """This process's ledger (created on first use, in the current state root)."""
    global _default_ledger
    with _ledger_lock:
        if _default_ledger is None or _default_ledger.directory != ledger_dir():
            _default_ledger = Ledger()
        return _default_ledger


class FaultIneffective(HarnessError):
    """A fault did not take effect (or did not go away): the run must not pass on it."""


class FaultUnavailable(HarnessError):
    """This host cannot run this fault (not root, no netem, no stress-ng...): says why."""


@dataclass(frozen=True)
class FaultRecord:
    """When a fault was asked for, in effect, asked to go, and gone (time.monotonic_ns)."""

    id: str
    kind: str
    targets: tuple[str, ...]
    params: dict[str, Any]
    mechanism: str
    requested_ns: int
    effective_ns: int
    revert_requested_ns: int = 0
    reverted_ns: int = 0
    error: str | None = None

    @property
    def apply_us(self) -> float:
        return (self.effective_ns - self.requested_ns) / 1000

    @property
    def revert_us(self) -> float:
        return (self.reverted_ns - self.revert_requested_ns) / 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "targets": list(self.targets),
            "params": self.params,
            "mechanism": self.mechanism,
            "requested_ns": self.requested_ns,
            "effective_ns": self.effective_ns,
            "revert_requested_ns": self.revert_requested_ns,
            "reverted_ns": self.reverted_ns,
            "apply_us": round(self.apply_us, 1),
            "revert_us": round(self.revert_us, 1) if self.reverted_ns else None,
            "error": self.error,
        }


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.0005
) -> None:
    """Poll ``condition`` until true; `FaultIneffective` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise FaultIneffective(f"fault ineffective: {what} (checked for {timeout_s:g}s)")
        time.sleep(interval_s)


@dataclass
class Fault(abc.ABC):
    """Base of every fault. ``target`` is a selector (see harness.faults.targets)."""

    kind: ClassVar[str]
    # Component roles a fault may hit: most faults are for nodes only.
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")

    stack: Stack
    target: str = "primary"
    seed: int = 0
    ledger: Ledger | None = None
    mechanism: str = field(default="", init=False)
    record: FaultRecord | None = field(default=None, init=False)
    targets: tuple[ComponentState, ...] = field(default=(), init=False)
    _undo: list[UndoOp] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        validate_selector(self.target)
        self.validate()

    # -- what a subclass provides ------------------------------------------------------

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this host can run the fault, and why not (for `harness doctor`)."""
        return True, ""

    def usable(self) -> tuple[bool, str]:
        """Whether this fault can run against its own stack (default: `available`)."""
        return self.available()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check parameters; raise `ConfigError` naming the field. Called on construction."""

    def params(self) -> dict[str, Any]:
        """The fault's parameters, for the ledger and the report."""
        return {}

    def check_workload(self, methods: frozenset[str]) -> None:  # noqa: B027 - optional hook
        """Warn if the fault would never touch a load that sends only ``methods``."""

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        """The targets this fault would hit on a stack in ``state``, or why it cannot run:
        `FaultUnavailable` when this host cannot, `ConfigError` when the stack (or the
        target) does not give it what it needs. Runs on entry, and before a stack starts
        against the state it will have (`PlannedStack`), so bad input costs no stack."""
        ok, why = self.usable()
        if not ok:
            raise FaultUnavailable(f"{self.kind} cannot run on this host: {why}")
        targets = select(state, self.target, self.seed)
        refused = [t.name for t in targets if t.role not in self.roles]
        if refused:
            raise ConfigError(
                "target", self.target, f"{self.kind} cannot target {', '.join(refused)}"
            )
        return targets

    @abc.abstractmethod
    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        """Everything needed to undo the fault, computed before it is applied."""

    @abc.abstractmethod
    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        """Inject the fault."""

    @abc.abstractmethod
    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        """Raise `FaultIneffective` unless the fault is in effect."""

    def revert(self, targets: tuple[ComponentState, ...]) -> None:
        """Take the fault back; by default, run the planned undo operations in reverse."""
        for op in reversed(self._undo):
            run_undo(op)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:  # noqa: B027
        """Raise `FaultIneffective` unless the fault is gone."""

    def add_undo(self, op: UndoOp) -> None:
        """Record one more undo operation while applying (ledgered before it matters)."""
        self._undo.append(op)
        assert self.record is None
        self._ledger().add_undo(self._id, [op])

    # -- the guaranteed sequence -------------------------------------------------------

    def _ledger(self) -> Ledger:
        return self.ledger or default_ledger()

    def __enter__(self) -> Fault:
        targets = self.preflight(self.stack.state())
        self.targets = targets
        self._id = f"{self.kind}-{secrets.token_hex(4)}"
        self._undo = list(self.plan(targets))
        names = [t.name for t in targets]
        self._ledger().open(self._id, self.kind, names, list(self._undo))
        requested = time.monotonic_ns()
        try:
            self.apply(targets)
            self.verify_applied(targets)
        except BaseException as exc:
            self._undo_after_failure(targets, exc)
            raise
        self.record = FaultRecord(
            self._id, self.kind, tuple(names), self.params(), self.mechanism,
            requested, time.monotonic_ns(),
        )  # fmt: skip
        log.info("%s in effect on %s after %.0f us", self.kind, names, self.record.apply_us)
        return self

    def _undo_after_failure(self, targets: tuple[ComponentState, ...], exc: BaseException) -> None:
        try:
            self.revert(targets)
        except Exception:
            log.exception("could not revert %s after it failed to apply", self._id)
            return  # the ledger record stays open for `harness cleanup`
        self._ledger().close(self._id)

    def __exit__(self, *exc: object) -> None:
        assert self.record is not None
        revert_requested = time.monotonic_ns()
        error = None
        try:
            self.revert(self.targets)
            self.verify_reverted(self.targets)
        except Exception as failure:
            error = str(failure)
            raise
        finally:
            if error is None:
                self._ledger().close(self._id)
            self.record = FaultRecord(
                **{
                    **self.record.__dict__,
                    "revert_requested_ns": revert_requested,
                    "reverted_ns": time.monotonic_ns(),
                    "error": error,
                }
            )

    async def __aenter__(self) -> Fault:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.__exit__, *exc)
