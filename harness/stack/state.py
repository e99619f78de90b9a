"""Stack state on disk: what is running, written before and after every change.

The state file is how another process (``harness stack status``, a fault from the CLI)
finds a running stack, and how a later run finds what a killed harness left behind.
Processes are identified by pid *and* start time, so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.errors import StackError
from harness.stack.isolation import delete_netns, netns_of_stack, unmount_all_under
from harness.stack.model import StackState

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
#: A file here named after a component keeps the supervisor from restarting it.
HOLD_DIR = "hold"


def state_root() -> Path:
    """Where stacks and fault ledgers live: ``$HARNESS_STATE_DIR`` or /tmp/harness-<uid>."""
    configured = os.environ.get("HARNESS_STATE_DIR")
    return (
        Path(configured) if configured else Path(tempfile.gettempdir()) / f"harness-{os.getuid()}"
    )


def stacks_dir() -> Path:
    return state_root() / "stacks"


def _strict(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None: JSON has no such numbers, and
    Python's ``NaN`` breaks every other language's parser."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write ``doc`` as strict JSON (no NaN) so that a reader sees the old file or the new
    one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(_strict(doc), out, indent=2, default=str, allow_nan=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as the kernel knows it: pid plus start time, immune to pid reuse."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid, psutil.Process(pid).create_time())

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """True if this very process still exists (a zombie counts as gone)."""
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < 0.05
            return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def kill(self, timeout_s: float = 2.0) -> bool:
        """SIGCONT + SIGTERM, then SIGKILL. Returns True if a live process was stopped."""
        if not self.alive():
            return False
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return True


@dataclass(frozen=True)
class StateFile:
    """The content of a stack's state file."""

    owner: ProcessIdentity
    processes: dict[str, ProcessIdentity]
    stack: StackState | None
    phase: str  # "starting", "ready", "stopping"
    detached: bool = False  # owned by `harness stack up`'s daemon, which `stack down` may stop

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": asdict(self.owner),
            "processes": {n: asdict(p) for n, p in self.processes.items()},
            "stack": self.stack.to_dict() if self.stack else None,
            "phase": self.phase,
            "detached": self.detached,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> StateFile:
        return cls(
            owner=ProcessIdentity(**doc["owner"]),
            processes={n: ProcessIdentity(**p) for n, p in doc["processes"].items()},
            stack=StackState.from_dict(doc["stack"]) if doc.get("stack") else None,
            phase=doc["phase"],
            detached=bool(doc.get("detached", False)),
        )

    def write(self, directory: Path) -> None:
        write_json_atomic(directory / STATE_FILE, self.to_dict())


def read_state(directory: Path) -> StateFile:
    try:
        return StateFile.from_dict(json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"cannot read stack state in {directory}: {exc}") from exc


def hold_path(stack: StackState, component: str) -> Path:
    """The file that, while it exists, holds ``component`` of ``stack`` down."""
    return Path(stack.state_dir) / HOLD_DIR / component


def running_stack(name: str) -> StackState:
    """The state of the running stack ``name``, or a `StackError` saying how to start one."""
    directory = stacks_dir() / name
    if not (directory / STATE_FILE).exists():
        raise StackError(f"no stack named {name!r} is running; start one with `harness stack up`")
    state = read_state(directory)
    if not state.owner.alive() or state.stack is None:
        raise StackError(
            f"stack {name!r} is not running (its owner process is gone); "
            "run `harness cleanup` to remove what it left"
        )
    return state.stack


def reap_stale_stacks(include_live: bool = False) -> list[str]:
    """Stop the processes of every stack whose owner died, remove its dir, say what went.

    With ``include_live`` also stacks whose owner is alive (``harness stack down --force``).
    """
    removed: list[str] = []
    root = stacks_dir()
    if not root.is_dir():
        return removed
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            state = read_state(directory)
        except StackError:
            removed.extend(_kill_strays(directory))
            removed.extend(_remove_stack_dir(directory))
            continue
        if state.owner.alive() and not include_live:
            continue
        for name, proc in state.processes.items():
            if proc.kill():
                removed.append(f"process {name} (pid {proc.pid}) of stack {directory.name!r}")
        removed.extend(_kill_strays(directory))
        if state.stack is not None:
            removed.extend(_destroy_toxiproxy_proxies(state.stack))
        removed.extend(_remove_stack_dir(directory))
    return removed


def _kill_strays(directory: Path) -> list[str]:
    """Stop processes whose command line names the stack's directory but that the state
    file does not list: one the supervisor spawned in the instant before it could record
    it (a restart racing the harness's death)."""
    me = os.getpid()
    needle = str(directory)
    removed = []
    for proc in psutil.process_iter(["pid", "cmdline", "name"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["pid"] == me or not any(needle in part for part in cmdline):
                continue
            if ProcessIdentity.of(proc.info["pid"]).kill():
                removed.append(f"stray process {proc.info['name']} (pid {proc.info['pid']})")
        except psutil.Error:
            continue
    return removed


def _destroy_toxiproxy_proxies(stack: StackState) -> list[str]:
    """Delete the stack's proxies on its Toxiproxy server, each only if it still listens
    where the stack put it (a proxy of the same name elsewhere is another stack's)."""
    if stack.toxiproxy_url is None:
        return []
    # Imported here: requests and toxiproxy-python cost every other caller 0.4 s.
    from harness.proxy.toxiproxy import ToxiproxyDriver, ToxiproxyError

    driver = ToxiproxyDriver(stack.toxiproxy_url)
    removed = []
    for c in stack.components:
        if c.toxiproxy_proxy is None:
            continue
        try:
            if driver.destroy_proxy(c.toxiproxy_proxy, listen=f"127.0.0.1:{c.toxiproxy_port}"):
                removed.append(f"Toxiproxy proxy {c.toxiproxy_proxy} at {stack.toxiproxy_url}")
        except ToxiproxyError as exc:  # a server that is gone took its proxies with it
            log.warning("could not remove Toxiproxy proxy %s: %s", c.toxiproxy_proxy, exc)
    return removed


def _remove_stack_dir(directory: Path) -> list[str]:
    """Unmount its data dirs, delete its namespaces, remove the directory; say what went."""
    removed = [f"mount {point}" for point in unmount_all_under(directory)]
    for netns in netns_of_stack(directory.name):
        if delete_netns(netns):
            removed.append(f"network namespace {netns}")
    shutil.rmtree(directory, ignore_errors=True)
    removed.append(f"stack dir {directory}")
    return removed


@dataclass(frozen=True)
class AttachedStack:
    """A stack running in another process (``harness stack up``), seen through its state
    file, which is re-read on every call: pids change when the supervisor restarts a node."""

    name: str

    def state(self) -> StackState:
        return running_stack(self.name)
