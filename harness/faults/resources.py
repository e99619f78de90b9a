"""Resource faults: CPU stress, memory pressure, disk fill, and a node that stops syncing.

Each is a `Fault` (ledgered first, verified in effect, always undone) whose effect is
bounded even if the harness is SIGKILLed in the middle:

- ``cpu`` (`CpuStress`): ``stress-ng --cpu N --cpu-load P --timeout T`` in a process group
  of its own; stress-ng's own timeout ends it after ``max_s`` (whole seconds, rounded
  down) whatever happens to the harness. Undo: SIGTERM, then SIGKILL, to the group
  (`kill_process_group`).
- ``memory`` (`MemoryPressure`): a helper process (this Python, ``-c``) that touches every
  page of ``mb`` MiB and holds them until ``max_s`` has passed. ``scope="host"`` refuses
  to push the host below a free-memory floor; ``scope="cgroup"`` puts the node and the
  helper into a cgroup v1 memory cgroup of the fault's own, limited to ``mb`` +
  ``headroom_mb`` MiB, so the node is squeezed and the host is not. Undo: kill the helper
  (`kill_process`), restore the node's ``oom_score_adj`` (`oom_score_adj`), move it back
  to its own cgroup and remove ours (`cgroup_remove`).
- ``disk`` (`DiskFill`): a file ``harness-fill-<id>`` in the node's data dir, allocated
  (``posix_fallocate``, or written with zeros where that is unsupported) up to ``percent``
  of its filesystem, which must be the node's own (``StackSpec(data_dir_size_mb=N)``):
  a fill never reaches the host's disk. Undo: remove the file (`remove_file`).
- ``stall`` (`SyncStall`): anvil's ``evm_setIntervalMining(0)``: the node answers every
  call but its head stops. Undo: ``evm_setIntervalMining(<block time>)`` (`rpc_call`).

On the docker backend (a target with ``ComponentState.container``) the same faults work
inside the node's container (root, cgroup v1; `harness.faults.cgroups`):

- ``cpu``: stress-ng is started on the host by a launcher that first joins the container's
  cpu, cpuacct and memory cgroups, so its workers are born there: the container's CPU
  quota (``--container-cpus``) bounds them together with the node, and its cpuacct.usage
  is charged their time (verified). Undo as on the host: ``kill_process_group``.
- ``memory``: the allocator joins the container's cgroups before it touches a page, so
  they are charged to the container and its limit (``--container-memory-mb``) bounds them:
  the node keeps what is left (``headroom_mb`` at least, or the fault is refused before
  anything starts). A memory-limited node's container runs with oom_score_adj 1000 (set
  by the stack: lowering the allocator's instead needs CAP_SYS_RESOURCE, which even root
  may lack), so when the node needs more than is left the container's OOM killer takes
  the node, never the allocator and never anything of the host's: Docker's restart policy
  restarts it (the exit event says "OOM-killed", status 137), and while the fault holds a
  node that cannot start in what is left is killed again, each restart an event.
  ``scope`` is the container either way; ``scope="cgroup"`` needs a limit,
  ``scope="host"`` without one takes host memory inside the container's cgroup (the host
  floor applies, and the allocator is the OOM killer's first choice, as on the host).
  Undo: ``kill_process``; nothing else to restore (the container's cgroups are its own).
- ``disk``: the node's /data is a tmpfs volume of ``--data-dir-size-mb`` MiB; the fill
  file goes there through the container's root as the host sees it,
  ``/proc/<workload pid>/root/data``. Undo: ``remove_file`` of that path.

Every undo operation is plain data in the ledger, idempotent, and replayable by another
process (`harness.faults.ledger.replay_open_records`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import psutil

from harness.errors import ConfigError, HarnessError
from harness.faults import cgroups, container
from harness.faults.fault import Fault, FaultIneffective, FaultUnavailable, wait_until
from harness.faults.registry import register
from harness.faults.undo import UndoOp, undo_op
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.stack.model import ComponentState, StackState
from harness.stack.state import ProcessIdentity

__all__ = [
    "CpuStress",
    "DiskFill",
    "MemoryPressure",
    "SyncStall",
    "fill_bytes",
    "memory_floor_refusal",
]

log = logging.getLogger(__name__)

MIB = 1 << 20
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")
HARNESS_CGROUP = CGROUP_MEMORY / "harness"
FILL_PREFIX = "harness-fill-"
HOST_FLOOR_SHARE = 0.10  # never below 10% of the host's RAM, whatever floor_mb says
HOST_FLOOR_MB = 1024  # the floor for a disk fill on a tmpfs (its pages are host RAM)
OOM_FIRST = 1000  # oom_score_adj of whatever the OOM killer should take first
MAX_BOUND_S = 86_400.0
SCOPES = ("host", "cgroup")
STRESS_NG = "stress-ng"
_CGROUP_NAME = re.compile(r"^[a-z]+-[0-9a-f]{8}-[A-Za-z0-9_.-]{1,64}$")
_HELPER_TIMEOUT_S = 10.0

# The memory allocator, run as ``python -I -S -c ALLOCATOR MB MAX_S OOM_ADJ [PROCS...]``.
# It joins the cgroups (``cgroup.procs`` files, if any) before it allocates, so every page
# it touches is charged there; it writes every byte (resident, not just address space) and
# says "ready".
ALLOCATOR = """\
# harness memory allocator
import mmap, os, sys, time
mb, max_s, oom_adj = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + max_s
if oom_adj:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(oom_adj)
for procs in sys.argv[4:]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
populate = getattr(mmap, "MAP_POPULATE", 0)
buf = mmap.mmap(-1, mb << 20, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
chunk = b"\x01" * (1 << 20)
for _ in range(mb):
    buf.write(chunk)
sys.stdout.write("ready\\n")
sys.stdout.flush()
while (left := deadline - time.monotonic()) > 0:
    time.sleep(min(left, 60.0))
"""


# -- parameter checks --------------------------------------------------------------------


def _number(name: str, value: Any, low: float, high: float, fix: str) -> None:
    """`ConfigError` unless ``value`` is a real number in [low, high] (NaN and bools fail)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(name, value, fix)


def _whole(name: str, value: Any, low: int, high: int, fix: str) -> None:
    """`ConfigError` unless ``value`` is a whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, fix)


def _check_max_s(value: Any, low: float = 1.0) -> None:
    _number(
        "max_s",
        value,
        low,
        MAX_BOUND_S,
        f"choose {low:g} to {MAX_BOUND_S:g} seconds: the fault's own time bound, which holds "
        "even if the harness dies (make it longer than the block the fault is held for)",
    )


# -- pure decisions (unit-tested) --------------------------------------------------------


def memory_floor_refusal(
    request_bytes: int, available_bytes: int, total_bytes: int, floor_mb: int
) -> str | None:
    """Why taking ``request_bytes`` of host memory is refused, or None if it is allowed.

    The floor is the larger of ``floor_mb`` MiB and 10% of the host's RAM; what must stay
    above it is MemAvailable after the request.
    """
    floor = max(floor_mb * MIB, math.ceil(total_bytes * HOST_FLOOR_SHARE))
    if available_bytes - request_bytes >= floor:
        return None
    allowed_mb = max(0, (available_bytes - floor) // MIB)
    return (
        f"memory pressure refuses to push the host below a free-memory floor: "
        f"{request_bytes // MIB} MiB would leave {(available_bytes - request_bytes) // MIB} MiB "
        f"of {available_bytes // MIB} MiB available, below the floor of {floor // MIB} MiB "
        f"(the larger of floor_mb and 10% of RAM); ask for at most {allowed_mb} MiB"
    )


def fill_bytes(used_bytes: int, avail_bytes: int, percent: float, block_bytes: int) -> int:
    """How many bytes to add so that used / (used + available) reaches ``percent``.

    Rounded up to whole blocks, never more than is available; 0 if already there.
    """
    capacity = used_bytes + avail_bytes
    wanted = math.ceil(capacity * percent / 100) - used_bytes
    if wanted <= 0:
        return 0
    blocks = -(-wanted // block_bytes)
    return min(blocks * block_bytes, avail_bytes)


def _host_memory_refusal(request_bytes: int, floor_mb: int) -> str | None:
    memory = psutil.virtual_memory()
    return memory_floor_refusal(request_bytes, memory.available, memory.total, floor_mb)


# -- helper processes --------------------------------------------------------------------


def _stderr_of(stderr: IO[bytes]) -> str:
    with contextlib.suppress(OSError, ValueError):
        stderr.seek(0)
        return stderr.read().decode(errors="replace").strip()[-500:]
    return ""


def _start_helper(argv: list[str], stdout: int) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start a helper in a session (and process group) of its own; its stderr goes to a
    temporary file, kept for error messages and closed when the fault is reverted."""
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this function by design
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True
        )
    except BaseException:
        stderr.close()
        raise
    return proc, stderr


def _ended_early(fault: Fault, what: str, proc: subprocess.Popen[bytes]) -> None:
    """Say so when a helper of a fault that was in effect is gone before the block ended."""
    if fault.record is not None:
        log.warning(
            "%s %s (pid %d) ended on its own before the block did (exit status %s): "
            "max_s=%s was shorter than the block, or it was killed",
            fault.kind,
            what,
            proc.pid,
            proc.returncode,
            fault.params().get("max_s"),
        )


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a helper of ours (it holds nothing that needs a clean exit) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_HELPER_TIMEOUT_S)


def _group_members(pgid: int, created_after: float, name: str) -> list[psutil.Process]:
    """Live processes in process group ``pgid`` named ``name``* and no older than its leader."""
    members = []
    for proc in psutil.process_iter(["name", "create_time", "status"]):
        try:
            if (
                os.getpgid(proc.pid) == pgid
                and proc.info["create_time"] >= created_after - 0.05
                and str(proc.info["name"]).startswith(name)
                and proc.info["status"] != psutil.STATUS_ZOMBIE
            ):
                members.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return members


# -- undo operations (replayed from the ledger by any process) ---------------------------


def _stop_group(pgid: int, members: list[psutil.Process]) -> None:
    """SIGTERM to the group (stress-ng stops and reaps its workers in milliseconds), then
    SIGKILL to whatever is left after 2 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=2.0)
    if alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=_HELPER_TIMEOUT_S)


@undo_op("kill_process_group")
def kill_process_group(op: UndoOp) -> str | None:
    """Stop the process group {pid, create_time, name} led by ``pid``; None if it is gone.

    Only a group that still has members named ``name``* started no earlier than its leader
    is signalled: while a group has members, its id cannot be reused.
    """
    pgid, created, name = int(op["pid"]), float(op["create_time"]), str(op["name"])
    if pgid <= 1 or not name:
        raise HarnessError(f"refusing to signal process group {pgid} ({name!r})")
    members = _group_members(pgid, created, name)
    if not members:
        return None
    _stop_group(pgid, members)
    return f"stopped {name} (process group {pgid}, {len(members)} processes)"


def _check_our_cgroup(path: Path) -> None:
    if path.parent != HARNESS_CGROUP or not _CGROUP_NAME.match(path.name):
        raise HarnessError(f"refusing to remove cgroup {path}: not made by the harness")


def _check_return_cgroup(path: Path) -> None:
    resolved = os.path.normpath(path)
    inside = resolved == str(CGROUP_MEMORY) or resolved.startswith(f"{CGROUP_MEMORY}/")
    ours = resolved == str(HARNESS_CGROUP) or resolved.startswith(f"{HARNESS_CGROUP}/")
    if not inside or ours or ".." in path.parts:
        raise HarnessError(f"refusing to move processes into {path}: not a memory cgroup")


@undo_op("cgroup_remove")
def cgroup_remove(op: UndoOp) -> str | None:
    """Remove the memory cgroup {path}, first moving what is left in it to {return_to}.

    ``return_to`` is where the node was before (the root memory cgroup if that is gone).
    None if the cgroup does not exist.
    """
    path = Path(op["path"])
    _check_our_cgroup(path)
    return_to = Path(op.get("return_to") or CGROUP_MEMORY)
    _check_return_cgroup(return_to)
    if not path.is_dir():
        return None
    if not (return_to / "cgroup.procs").exists():
        return_to = CGROUP_MEMORY
    moved: dict[str, None] = {}  # in order, once each
    deadline = time.monotonic() + _HELPER_TIMEOUT_S
    while True:
        try:
            pids = (path / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            return None  # removed meanwhile (by another replay)
        for pid in pids:
            try:
                (return_to / "cgroup.procs").write_text(pid)
                moved[pid] = None
            except ProcessLookupError:
                continue  # exited meanwhile
        try:
            path.rmdir()
            break
        except FileNotFoundError:
            return None
        except OSError as exc:  # EBUSY: a process was still on its way out
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with contextlib.suppress(OSError):  # the shared parent goes when the last fault has gone
        HARNESS_CGROUP.rmdir()
    back = f"moved pid {', '.join(moved)} back to {return_to}; " if moved else ""
    return f"{back}removed memory cgroup {path}"


@undo_op("oom_score_adj")
def restore_oom_score_adj(op: UndoOp) -> str | None:
    """Set {pid, create_time}'s oom_score_adj back to {value}; None if it is gone or there.

    Going back down to a value at or above the process's own minimum (0 unless a
    privileged process lowered it) needs no privilege.
    """
    proc = ProcessIdentity(op["pid"], op["create_time"])
    value = int(op["value"])
    if not -1000 <= value <= 1000:
        raise HarnessError(f"refusing oom_score_adj {value}: not in -1000..1000")
    try:
        if not proc.alive() or _oom_score_adj(proc.pid) == value:
            return None
        _set_oom_score_adj(proc.pid, value)
    except (FileNotFoundError, ProcessLookupError):
        return None  # exited meanwhile
    return f"set oom_score_adj of {op.get('name', 'process')} (pid {proc.pid}) back to {value}"


@undo_op("rpc_call")
def rpc_call(op: UndoOp) -> str | None:
    """Call {method, params} at {url}; None if the node {pid, create_time} is gone or
    {check: {method, params, result}} shows nothing is left to undo."""
    if "pid" in op and not ProcessIdentity(op["pid"], op["create_time"]).alive():
        return None  # that node is gone; a restarted one starts with its own settings
    method, params = str(op["method"]), list(op.get("params", []))
    with RpcClient(op["url"], timeout_s=2.0) as client:
        try:
            check = op.get("check")
            if check and client.call(check["method"], check.get("params", [])) == check["result"]:
                return None
            client.call(method, params)
        except RpcFailure as exc:
            if exc.outcome == Outcome.CONNECT_REFUSED:
                return None
            raise HarnessError(
                f"could not undo with {method}{params} at {op['url']}: {exc}"
            ) from exc
    what = op.get("what") or f"called {method}{params}"
    return f"{what} on {op.get('name') or op['url']}"


# -- CPU ---------------------------------------------------------------------------------


@register
@dataclass
class CpuStress(Fault):
    """``cores`` stress-ng CPU workers at ``load_pct`` each, for at most ``max_s`` seconds.

    One stress-ng per targeted node; with ``pin_to_node`` its workers run on that node's
    CPUs (its affinity), so they compete with the node and with nothing else. On a docker
    node they run in its container's cgroups, within its CPU quota (``--container-cpus``).
    """

    kind: ClassVar[str] = "cpu"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    cores: int = 1
    load_pct: int = 100
    max_s: float = 600.0
    pin_to_node: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "stress-ng --cpu"
        self._helpers: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._cgroups: dict[int, dict[str, Path]] = {}  # stress-ng pid: its container's
        self._usage_ns: dict[int, int] = {}  # stress-ng pid: its container's CPU time before

    @property
    def helper_pids(self) -> tuple[int, ...]:
        """The stress-ng processes started (each leads a process group of its workers)."""
        return tuple(proc.pid for proc, _ in self._helpers)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if shutil.which(STRESS_NG) is None:
            return False, "stress-ng not found on PATH (apt-get install stress-ng)"
        return True, ""

    def validate(self) -> None:
        cpus = os.cpu_count() or 1
        _whole("cores", self.cores, 1, cpus, f"choose 1 to {cpus} (this host's CPUs)")
        _whole("load_pct", self.load_pct, 1, 100, "choose 1 to 100 percent per worker")
        _check_max_s(self.max_s)
        if not isinstance(self.pin_to_node, bool):
            raise ConfigError("pin_to_node", self.pin_to_node, "choose true or false")

    def params(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "load_pct": self.load_pct,
            "max_s": self.max_s,
            "pin_to_node": self.pin_to_node,
        }

    def argv(self, cpus: list[int] | None = None) -> list[str]:
        """The stress-ng command line; its --timeout is whole seconds, rounded down."""
        stress = shutil.which(STRESS_NG) or STRESS_NG
        argv = [
            stress, "--cpu", str(self.cores), "--cpu-load", str(self.load_pct),
            "--timeout", f"{int(self.max_s)}s", "--quiet",
        ]  # fmt: skip
        if cpus:
            argv += ["--taskset", ",".join(str(c) for c in sorted(cpus))]
        return argv

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        """A docker node needs root and cgroup v1 (its helper joins the container's cgroups)."""
        targets = super().preflight(state)
        if container.in_containers(targets):
            cgroups.require_available(self.kind)
        return targets

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return []  # each stress-ng is ledgered (add_undo) as soon as it exists

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        inside = container.in_containers(targets)
        for target in targets:
            cpus = None
            if (self.pin_to_node or inside) and target.pid is None:
                raise FaultIneffective(f"fault ineffective: {target.name} is not running")
            if self.pin_to_node:
                assert target.pid is not None
                cpus = psutil.Process(target.pid).cpu_affinity()
                self.mechanism = "stress-ng --cpu --taskset"
            argv = self.argv(cpus)
            if inside:  # the container's own cgroups: its CPU quota bounds the load
                assert target.pid is not None
                groups = cgroups.cgroups_of(target.pid)
                usage_ns = cgroups.cpu_usage_ns(groups)
                argv = cgroups.joined_argv(argv, groups)
            proc, stderr = _start_helper(argv, stdout=subprocess.DEVNULL)
            self._helpers.append((proc, stderr))
            if inside:
                self._cgroups[proc.pid], self._usage_ns[proc.pid] = groups, usage_ns
            identity = ProcessIdentity.of(proc.pid)
            self.add_undo({"op": "kill_process_group", "name": STRESS_NG, **identity.__dict__})
        if inside:
            self.mechanism += " in the container's cgroups"

    def _workers(self, proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
        try:
            children = psutil.Process(proc.pid).children()
        except psutil.Error:
            return []
        return [c for c in children if _name(c).startswith(f"{STRESS_NG}-cpu")]

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        """Every stress-ng has ``cores`` workers, and each has used CPU time (>= 5 ms); in a
        container, every worker is in its cgroups and the container was charged the time."""

        def busy(proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> bool:
            if proc.poll() is not None:
                raise FaultIneffective(
                    f"fault ineffective: stress-ng exited with {proc.returncode}: "
                    f"{_stderr_of(stderr) or 'no output'}"
                )
            workers = self._workers(proc)
            if len(workers) != self.cores or not all(_cpu_s(w) >= 0.005 for w in workers):
                return False
            groups = self._cgroups.get(proc.pid)
            if groups is None:
                return True
            outside = [w.pid for w in workers if not cgroups.in_cgroups(w.pid, groups)]
            if outside:
                raise FaultIneffective(
                    f"fault ineffective: stress-ng workers {outside} are not in the "
                    f"container's cgroups ({groups['cpu']})"
                )
            charged_ns = cgroups.cpu_usage_ns(groups) - self._usage_ns[proc.pid]
            return charged_ns >= 5_000_000 * self.cores

        for proc, stderr in self._helpers:
            wait_until(
                functools.partial(busy, proc, stderr),
                5.0,
                f"{self.cores} stress-ng CPU workers (pid {proc.pid}) are not using CPU",
                interval_s=0.005,
            )

    def revert(self, targets: tuple[ComponentState, ...]) -> None:
        for proc, stderr in self._helpers:
            if proc.poll() is not None:
                _ended_early(self, "stress-ng", proc)
            else:  # not reaped yet, so the group id is still ours
                _stop_group(proc.pid, _group_members(proc.pid, 0.0, STRESS_NG))
            _reap(proc)
            stderr.close()
        super().revert(targets)  # the ledgered group kill: finds nothing left, or the rest

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        for proc, _ in self._helpers:
            wait_until(
                functools.partial(_group_gone, proc.pid),
                _HELPER_TIMEOUT_S,
                f"stress-ng process group {proc.pid} is still running",
                interval_s=0.005,
            )


def _group_gone(pgid: int) -> bool:
    return not _group_members(pgid, 0.0, STRESS_NG)


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return ""


def _cpu_s(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


# -- memory ------------------------------------------------------------------------------


def cgroup_memory_available() -> tuple[bool, str]:
    """Whether a cgroup v1 memory cgroup can be made here (root, controller mounted)."""
    if os.geteuid() != 0:
        return False, "scope=cgroup needs root (to create a memory cgroup)"
    if not (CGROUP_MEMORY / "memory.limit_in_bytes").exists():
        return False, f"scope=cgroup needs the cgroup v1 memory controller at {CGROUP_MEMORY}"
    return True, ""


def memory_cgroup_of(pid: int) -> Path:
    """The cgroup v1 memory cgroup directory of ``pid``."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, relative = line.split(":", 2)
        if "memory" in controllers.split(","):
            return CGROUP_MEMORY / relative.lstrip("/")
    raise FaultUnavailable(f"process {pid} has no cgroup v1 memory cgroup")


@register
@dataclass
class MemoryPressure(Fault):
    """``mb`` MiB allocated and touched by a helper process, held for at most ``max_s``.

    ``scope="host"``: the helper takes from the whole host (and is the OOM killer's first
    choice); refused if the host's MemAvailable would fall below ``floor_mb`` MiB or 10%
    of RAM. ``scope="cgroup"``: the node and the helper share a memory cgroup limited to
    ``mb`` + ``headroom_mb`` MiB: what the node allocates (page cache included) beyond
    ``headroom_mb`` is reclaimed, and past that the OOM killer takes the node, which the
    fault makes its first choice (``oom_score_adj`` 1000, restored after: lowering the
    helper's instead would need CAP_SYS_RESOURCE). Pages the node held before it moved
    stay charged where they were (cgroup v1 moves no charges by default). The floor
    applies to both scopes: the helper's memory is the host's either way. One helper
    (and cgroup) per targeted node. On a docker node the helper runs in its container's
    own cgroups instead, within its limit (``--container-memory-mb``) less ``headroom_mb``
    (see the module's docstring for what an OOM kill then is).
    """

    kind: ClassVar[str] = "memory"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    mb: int = 256
    scope: str = "host"
    max_s: float = 600.0
    floor_mb: int = 1024
    headroom_mb: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = f"allocator ({self.scope})"
        self._helpers: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._cgroups: dict[str, tuple[Path, Path]] = {}  # node: (ours, its own)
        self._identities: dict[str, ProcessIdentity] = {}
        self._containers: dict[str, dict[str, Path]] = {}  # docker node: its cgroups
        self._allocator_of: dict[str, int] = {}  # docker node: the allocator in it

    @property
    def helper_pids(self) -> tuple[int, ...]:
        """The allocator processes started, one per targeted node."""
        return tuple(proc.pid for proc, _ in self._helpers)

    @property
    def cgroups(self) -> dict[str, Path]:
        """The memory cgroup made for each targeted node (scope="cgroup")."""
        return {name: ours for name, (ours, _) in self._cgroups.items()}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, why = cgroup_memory_available()
        return True, ("" if ok else f"scope=host only: {why}")

    def validate(self) -> None:
        _whole("mb", self.mb, 1, 1 << 20, "choose 1 to 1048576 MiB")
        if self.scope not in SCOPES:
            raise ConfigError("scope", self.scope, f"choose one of: {', '.join(SCOPES)}")
        _check_max_s(self.max_s, low=0.1)
        _whole("floor_mb", self.floor_mb, 0, 1 << 20, "choose 0 to 1048576 MiB")
        _whole(
            "headroom_mb",
            self.headroom_mb,
            8,
            1 << 20,
            "choose 8 to 1048576 MiB: what the node (and the allocator's interpreter) may "
            "use in the cgroup beyond mb",
        )

    def params(self) -> dict[str, Any]:
        return {
            "mb": self.mb,
            "scope": self.scope,
            "max_s": self.max_s,
            "floor_mb": self.floor_mb,
            "headroom_mb": self.headroom_mb,
        }

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        """On docker nodes: root and cgroup v1, and room in each container's memory limit
        for ``mb`` and the node's ``headroom_mb`` (scope="cgroup" needs a limit)."""
        targets = super().preflight(state)
        if container.in_containers(targets):
            for target in targets:
                self._check_room(target.name, target.memory_limit_mb)
            cgroups.require_available(self.kind)
        return targets

    def _check_room(self, name: str, limit_mb: int | None) -> None:
        if limit_mb is None:
            if self.scope == "cgroup":
                raise ConfigError(
                    "scope",
                    self.scope,
                    f"{name}'s container has no memory limit to squeeze the node within: "
                    "start the stack with --container-memory-mb N, or use scope=host (the "
                    "allocator then takes host memory, inside the container's cgroup)",
                )
            return
        room_mb = limit_mb - self.headroom_mb
        if self.mb > room_mb:
            raise ConfigError(
                "mb",
                self.mb,
                f"{name}'s container is limited to {limit_mb} MiB and the node keeps "
                f"headroom_mb={self.headroom_mb} of it: ask for at most {max(room_mb, 0)} MiB, "
                "lower headroom_mb, or raise --container-memory-mb",
            )

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        refusal = _host_memory_refusal(self.mb * MIB * len(targets), self.floor_mb)
        if refusal:
            raise ConfigError("mb", self.mb, refusal)
        if container.in_containers(targets):  # the container's own cgroups: its limit bounds it
            for target in targets:
                if target.pid is None:
                    raise FaultIneffective(f"fault ineffective: {target.name} is not running")
                groups = cgroups.cgroups_of(target.pid)
                limit = cgroups.memory_limit_bytes(groups)
                self._check_room(target.name, None if limit is None else limit // MIB)
                self._containers[target.name] = groups
            limited = all(cgroups.memory_limit_bytes(g) for g in self._containers.values())
            self.mechanism = (
                "allocator in the container's memory cgroup"
                if limited
                else "allocator in the container's memory cgroup (no limit: host memory)"
            )
            return []  # each allocator is ledgered (add_undo) as soon as it exists
        if self.scope == "host":
            return []  # each helper is ledgered (add_undo) as soon as it exists
        ok, why = cgroup_memory_available()
        if not ok:
            raise FaultUnavailable(f"memory cannot run here: {why}")
        ops: list[UndoOp] = []
        for target in targets:
            if target.pid is None:
                raise FaultIneffective(f"fault ineffective: {target.name} is not running")
            identity = ProcessIdentity.of(target.pid)
            own = memory_cgroup_of(target.pid)
            if own.parent == HARNESS_CGROUP:
                raise ConfigError(
                    "target",
                    target.name,
                    f"already in memory cgroup {own} of another memory fault; end that first",
                )
            ours = HARNESS_CGROUP / f"{self._id}-{target.name}"
            self._cgroups[target.name] = (ours, own)
            self._identities[target.name] = identity
            ops.append({"op": "cgroup_remove", "path": str(ours), "return_to": str(own)})
            ops.append(
                {
                    "op": "oom_score_adj",
                    "name": target.name,
                    "value": _oom_score_adj(identity.pid),
                    **identity.__dict__,
                }
            )
        return ops

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if self._containers:
            for target in targets:
                groups = self._containers[target.name]
                # Under a limit the node's container is the OOM killer's first choice
                # (oom_score_adj 1000, set by the stack); with none, the allocator is.
                limited = cgroups.memory_limit_bytes(groups) is not None
                oom_adj = "" if limited else str(OOM_FIRST)
                pid = self._spawn(cgroups.procs_files(groups), oom_adj)
                self._allocator_of[target.name] = pid
            return
        limit = (self.mb + self.headroom_mb) * MIB
        for target in targets:
            procs = []
            if self.scope == "cgroup":
                ours, _ = self._cgroups[target.name]
                _make_cgroup(ours)
                (ours / "memory.limit_in_bytes").write_text(str(limit))
                procs = [str(ours / "cgroup.procs")]
            # On the host the allocator is the OOM killer's first victim, never anything of
            # the host's; in a cgroup the node is (below), and the allocator keeps its default.
            self._spawn(procs, "" if procs else str(OOM_FIRST))
            if self.scope == "cgroup":
                identity = self._identities[target.name]
                if not identity.alive():
                    raise FaultIneffective(f"fault ineffective: {target.name} is gone")
                (ours / "cgroup.procs").write_text(str(identity.pid))
                _set_oom_score_adj(identity.pid, OOM_FIRST)
            self.mechanism = (
                f"allocator in memory cgroup limited to {limit // MIB} MiB"
                if self.scope == "cgroup"
                else "allocator (host)"
            )

    def _spawn(self, procs: list[str], oom_adj: str) -> int:
        argv = [sys.executable, "-I", "-S", "-c", ALLOCATOR]
        argv += [str(self.mb), repr(float(self.max_s)), oom_adj, *procs]
        proc, stderr = _start_helper(argv, stdout=subprocess.PIPE)
        self._helpers.append((proc, stderr))
        identity = ProcessIdentity.of(proc.pid)
        self.add_undo({"op": "kill_process", "name": "memory allocator", **identity.__dict__})
        return proc.pid

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        """Each allocator said it wrote all its memory and its RSS is at least 90% of ``mb``;
        in a cgroup, the node is in it."""
        deadline = time.monotonic() + 5.0 + self.mb / 200  # 200 MiB/s is slow for touching
        for proc, stderr in self._helpers:
            assert proc.stdout is not None
            line = b""
            remaining = deadline - time.monotonic()
            if remaining > 0 and select.select([proc.stdout], [], [], remaining)[0]:
                line = proc.stdout.readline()
            if line.strip() != b"ready":
                returncode = proc.poll()
                state = "timed out" if returncode is None else f"exited with {returncode}"
                raise FaultIneffective(
                    f"fault ineffective: the memory allocator (pid {proc.pid}) {state} before "
                    f"touching {self.mb} MiB: {_stderr_of(stderr) or 'no output'}"
                )
            try:
                rss = psutil.Process(proc.pid).memory_info().rss
            except psutil.Error as exc:
                raise FaultIneffective(f"fault ineffective: the allocator is gone: {exc}") from exc
            if rss < 0.9 * self.mb * MIB:
                raise FaultIneffective(
                    f"fault ineffective: the allocator holds {rss / MIB:.0f} MiB, not {self.mb} MiB"
                )
        for name, (ours, _) in self._cgroups.items():
            pid = self._identities[name].pid
            if memory_cgroup_of(pid) != ours:
                raise FaultIneffective(f"fault ineffective: {name} (pid {pid}) is not in {ours}")
        for name, groups in self._containers.items():
            allocator = self._allocator_of[name]
            if not cgroups.in_cgroups(allocator, groups):
                raise FaultIneffective(
                    f"fault ineffective: the memory allocator (pid {allocator}) is not in "
                    f"{name}'s container's cgroups ({groups['memory']})"
                )
            charged = cgroups.memory_usage_bytes(groups)
            if charged < 0.9 * self.mb * MIB:
                raise FaultIneffective(
                    f"fault ineffective: {name}'s container is charged {charged / MIB:.0f} MiB, "
                    f"less than the {self.mb} MiB allocated in it"
                )

    def revert(self, targets: tuple[ComponentState, ...]) -> None:
        for proc, stderr in self._helpers:
            if proc.poll() is not None:
                _ended_early(self, "the memory allocator", proc)
            _reap(proc)
            if proc.stdout is not None:
                proc.stdout.close()
            stderr.close()
        super().revert(targets)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        for proc, _ in self._helpers:
            if proc.returncode is None:
                raise FaultIneffective(f"the memory allocator (pid {proc.pid}) is still running")
        for name, (ours, own) in self._cgroups.items():
            if ours.exists():
                raise FaultIneffective(f"memory cgroup {ours} is still there")
            identity = self._identities[name]
            if identity.alive() and memory_cgroup_of(identity.pid) != own:
                raise FaultIneffective(f"{name} (pid {identity.pid}) is not back in {own}")


def _oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def _set_oom_score_adj(pid: int, value: int) -> None:
    Path(f"/proc/{pid}/oom_score_adj").write_text(str(value))


def _make_cgroup(path: Path) -> None:
    for _ in range(3):  # the shared parent may be removed by another fault's undo meanwhile
        with contextlib.suppress(FileNotFoundError):
            HARNESS_CGROUP.mkdir(exist_ok=True)
            path.mkdir()
            return
    raise FaultIneffective(f"fault ineffective: could not create memory cgroup {path}")


# -- disk --------------------------------------------------------------------------------


def _used_and_avail(path: Path) -> tuple[int, int, int]:
    """(used, available, block size) of the filesystem at ``path``, in bytes."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize, st.f_frsize


def _used_pct(path: Path) -> float:
    used, avail, _ = _used_and_avail(path)
    return 100.0 * used / (used + avail) if used + avail else 100.0


def _fs_type(path: Path | str, mounts_file: str = "/proc/self/mounts") -> str:
    """The type of the filesystem mounted at or above ``path`` (from ``mounts_file``: a
    container's own is /proc/<pid>/mounts, with ``path`` as the container sees it)."""
    target = os.path.realpath(path) if mounts_file == "/proc/self/mounts" else str(path)
    best, kind = "", ""
    with open(mounts_file) as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def _data_dir_on_host(target: ComponentState) -> Path | None:
    """Where the host reaches the node's data dir: itself on the local backend; in a
    container, through its workload's root (/proc/<pid>/root/data: the container's mount,
    whichever volume it is)."""
    if not target.data_dir:
        return None
    if target.container is None:
        return Path(target.data_dir)
    if target.pid is None:
        raise FaultIneffective(f"fault ineffective: {target.name} is not running")
    return Path(f"/proc/{target.pid}/root") / target.data_dir.lstrip("/")


def _data_dir_fs_type(target: ComponentState, data_dir: Path) -> str:
    if target.container is None:
        return _fs_type(data_dir)
    assert target.data_dir is not None
    return _fs_type(target.data_dir, f"/proc/{target.pid}/mounts")


def _own_filesystem(target: ComponentState) -> Path:
    """The node's data dir (as the host reaches it), if it is a filesystem of its own;
    `ConfigError` if not."""
    data_dir = _data_dir_on_host(target)
    if (
        data_dir is None
        or not data_dir.is_dir()
        or (data_dir.stat().st_dev == data_dir.parent.stat().st_dev)
    ):
        raise _no_filesystem_of_its_own()
    return data_dir


def _no_filesystem_of_its_own() -> ConfigError:
    return ConfigError(
        "data_dir_size_mb",
        None,
        "disk fill needs each node's data dir on a size-limited filesystem of its own: "
        "start the stack with data_dir_size_mb=N (--data-dir-size-mb)",
    )


@register
@dataclass
class DiskFill(Fault):
    """Fill the node's data dir to ``percent`` of its filesystem (100: until ENOSPC).

    Only a data dir on a filesystem of its own is filled (``data_dir_size_mb``), so the
    host's disk is never touched; on a tmpfs the fill comes out of RAM and is refused if
    it would push the host below the memory floor (1024 MiB or 10% of RAM). A docker
    node's /data (a tmpfs volume) is reached through ``/proc/<pid>/root/data``.
    """

    kind: ClassVar[str] = "disk"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    percent: float = 95.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "fallocate"
        self._files: dict[str, Path] = {}
        self._before_pct: dict[str, float] = {}
        self._enospc: set[str] = set()

    def validate(self) -> None:
        _number("percent", self.percent, 1, 100, "choose 1 to 100 (100 fills it to ENOSPC)")

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        """A node without a filesystem of its own is refused before anything starts."""
        targets = super().preflight(state)
        if any(t.data_dir_size_mb is None for t in targets):
            raise _no_filesystem_of_its_own()
        if container.in_containers(targets) and os.geteuid() != 0:
            raise FaultUnavailable(
                "disk cannot run in a container here: it reaches the container's /data "
                "through /proc/<pid>/root, which needs root"
            )
        return targets

    def params(self) -> dict[str, Any]:
        return {"percent": self.percent}

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        ops: list[UndoOp] = []
        for target in targets:
            data_dir = _own_filesystem(target)
            used, avail, block = _used_and_avail(data_dir)
            need = fill_bytes(used, avail, self.percent, block)
            current = _used_pct(data_dir)
            if need == 0 and self.percent < 100:
                raise ConfigError(
                    "percent",
                    self.percent,
                    f"{target.name}'s data dir is already {current:.1f}% full; choose more",
                )
            if _data_dir_fs_type(target, data_dir) == "tmpfs":
                refusal = _host_memory_refusal(need, HOST_FLOOR_MB)
                if refusal:
                    raise ConfigError(
                        "percent", self.percent, f"the data dir is a tmpfs: {refusal}"
                    )
            path = data_dir / f"{FILL_PREFIX}{self._id}"
            self._files[target.name] = path
            self._before_pct[target.name] = current
            ops.append({"op": "remove_file", "path": str(path)})
        return ops

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        for target in targets:
            path = self._files[target.name]
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if self._fill(fd, path.parent):
                    self._enospc.add(target.name)
            finally:
                os.close(fd)

    def _fill(self, fd: int, data_dir: Path) -> bool:
        """Grow the fill file to the target; True if it ended in ENOSPC."""
        size = 0
        for _ in range(5):  # the node writes too: measure again until the target is reached
            used, avail, block = _used_and_avail(data_dir)
            need = fill_bytes(used, avail, self.percent, block)
            if need == 0:
                break
            try:
                if self.mechanism == "fallocate":
                    os.posix_fallocate(fd, size, need)
                    size += need
                else:
                    size += _write_zeros(fd, need)
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    self.mechanism = "write zeros"
                    continue
                if exc.errno != errno.ENOSPC:
                    raise
        if self.percent < 100:
            return False
        try:  # to ENOSPC: what allocation left (or the node freed meanwhile) is written
            _write_zeros(fd, 1 << 62)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return True
        return False

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        """used% within 1 point of ``percent``; at 100, a write ended in ENOSPC."""
        for target in targets:
            data_dir = self._files[target.name].parent
            used_pct = _used_pct(data_dir)
            if self.percent >= 100:
                if target.name not in self._enospc or used_pct < 99:
                    raise FaultIneffective(
                        f"fault ineffective: {data_dir} is {used_pct:.1f}% full, not at ENOSPC"
                    )
            elif abs(used_pct - self.percent) > 1:
                raise FaultIneffective(
                    f"fault ineffective: {data_dir} is {used_pct:.1f}% full, not {self.percent:g}%"
                )

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        for target in targets:
            path = self._files[target.name]
            if path.exists():
                raise FaultIneffective(f"fill file {path} is still there")
            if not path.parent.exists():
                continue  # /proc/<pid>/root/data of a container that restarted meanwhile
            used_pct = _used_pct(path.parent)
            if used_pct > self._before_pct[target.name] + 1:
                raise FaultIneffective(
                    f"{path.parent} is still {used_pct:.1f}% full "
                    f"(it was {self._before_pct[target.name]:.1f}% before the fill)"
                )


def _write_zeros(fd: int, limit: int) -> int:
    """Append zeros (1 MiB at a time) until ``limit`` bytes are written; ENOSPC propagates."""
    chunk = bytes(MIB)
    written = 0
    os.lseek(fd, 0, os.SEEK_END)
    while written < limit:
        written += os.write(fd, chunk[: min(MIB, limit - written)])
    os.fsync(fd)
    return written


# -- sync stall --------------------------------------------------------------------------


def _head(url: str) -> int:
    with RpcClient(url, timeout_s=1.0) as client:
        return client.block_number()


@register
@dataclass
class SyncStall(Fault):
    """The node keeps answering but its head stops: anvil's ``evm_setIntervalMining(0)``;
    on a one-chain stack, the real sync stall: the replicator stops feeding the node
    (`harness.faults.chain.replication_pause`), and the undo waits until it caught up.

    The undo sets interval mining back to the stack's block time. anvil takes it in whole
    seconds only (``evm_setIntervalMining`` is a u64 of seconds in anvil 1.7.1), so a stack
    with a fractional ``block_time_s`` is refused: its block time could not be restored.
    """

    kind: ClassVar[str] = "stall"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "evm_setIntervalMining(0)"
        self._block_time_s = 0.0
        self._heads: dict[str, int] = {}
        self._replication: Fault | None = None

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        if self.stack.state().chain == "one":
            from harness.faults.chain import replication_pause

            self._replication = replication_pause(self)
            self.mechanism = self._replication.mechanism
            return self._replication.plan(targets)
        others = sorted({t.kind for t in targets if t.kind != "anvil"})
        if others:
            raise FaultUnavailable(
                f"stall cannot run against {', '.join(others)} nodes: it stops mining with "
                "anvil's evm_setIntervalMining; use a network partition of the node's peers "
                "to stall a syncing client"
            )
        self._block_time_s = block_time_s = self.stack.state().block_time_s
        if block_time_s != int(block_time_s):
            raise ConfigError(
                "block_time_s",
                block_time_s,
                "stall restores mining with anvil's evm_setIntervalMining, which takes whole "
                "seconds: start the stack with a whole-second block time (1, 2, ...)",
            )
        ops: list[UndoOp] = []
        for target in targets:
            if target.pid is None:
                raise FaultIneffective(f"fault ineffective: {target.name} is not running")
            identity = ProcessIdentity.of(target.pid)
            seconds = int(block_time_s)
            ops.append(
                {
                    "op": "rpc_call",
                    "url": target.url,
                    "name": target.name,
                    "method": "evm_setIntervalMining",
                    "params": [seconds],
                    "check": {"method": "anvil_getIntervalMining", "params": [], "result": seconds},
                    "what": f"restored interval mining ({seconds} s blocks)",
                    **identity.__dict__,
                }
            )
        return ops

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if self._replication is not None:
            return self._replication.apply(targets)
        for target in targets:
            with RpcClient(target.url, timeout_s=2.0) as client:
                try:
                    client.call("evm_setIntervalMining", [0])
                    self._heads[target.name] = client.block_number()
                except RpcFailure as exc:
                    raise FaultIneffective(
                        f"fault ineffective: {target.name} refused evm_setIntervalMining: {exc}"
                    ) from exc

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        """No node's head moves for two block times, and every node keeps answering."""
        if self._replication is not None:
            return self._replication.verify_applied(targets)
        deadline = time.monotonic() + 2 * self._block_time_s
        while True:
            for target in targets:
                try:
                    head = _head(target.url)
                except RpcFailure as exc:
                    raise FaultIneffective(
                        f"fault ineffective: {target.name} stopped answering, not just "
                        f"syncing: {exc}"
                    ) from exc
                if head != self._heads[target.name]:
                    raise FaultIneffective(
                        f"fault ineffective: {target.name}'s head moved from "
                        f"{self._heads[target.name]} to {head} after mining was stopped"
                    )
            if time.monotonic() >= deadline:
                return
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        """Every node's head moves again within three block times."""
        if self._replication is not None:
            return self._replication.verify_reverted(targets)
        for target in targets:
            start = self._heads[target.name]

            def advanced(url: str = target.url, start: int = start) -> bool:
                try:
                    return _head(url) > start
                except RpcFailure:
                    return False

            wait_until(
                advanced,
                3 * self._block_time_s + 1,
                f"{target.name}'s head did not advance after mining was restored",
                interval_s=0.01,
            )
