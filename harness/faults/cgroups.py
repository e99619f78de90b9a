"""A docker node's cgroups (v1), seen from the host: where its container is accounted and
limited, and how a fault's helper process joins them before it does any work.

The cpu and memory faults on the docker backend start their helper (stress-ng, the memory
allocator) on the host and put it in the container's own cpu, cpuacct and memory cgroups,
so that Docker's limits (``--container-cpus`` is the cpu cgroup's CFS quota,
``--container-memory-mb`` the memory cgroup's limit) bound the load, the container's
accounting shows it, and the host is not squeezed. The helper joins before it starts:
`joined_argv` runs a launcher that writes its own pid into each ``cgroup.procs`` and then
execs the helper, so no cycle or page of it is charged anywhere else. Leaving needs no
undo of its own: a killed helper leaves the cgroups with it, and the ledger holds the kill.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.faults.fault import FaultUnavailable

#: The controllers a helper joins: what the container's CPU and memory limits are made of.
CONTROLLERS = ("cpu", "cpuacct", "memory")
#: memory.limit_in_bytes at or above this is "no limit" (the kernel's is PAGE_COUNTER_MAX).
UNLIMITED_BYTES = 1 << 62

# The launcher, run as ``python -I -S -c JOIN PROCS... -- ARGV...``: it joins every cgroup
# named (its children, forked later, are born there) and becomes ARGV, keeping its pid.
JOIN = """\
# harness cgroup launcher
import os, sys
cut = sys.argv.index("--")
for procs in sys.argv[1:cut]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
os.execv(sys.argv[cut + 1], sys.argv[cut + 1:])
"""


def parse_mounts(text: str) -> dict[str, Path]:
    """{controller: mount point} of the cgroup v1 hierarchies in /proc/self/mounts text."""
    found: dict[str, Path] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "cgroup":
            continue
        for option in fields[3].split(","):
            if option in CONTROLLERS:
                found[option] = Path(fields[1].replace("\\040", " "))
    return found


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """{controller: path relative to its hierarchy} from /proc/<pid>/cgroup text (v1 lines
    ``ID:cpu,cpuacct:/docker/<id>``; the v2 line ``0::/...`` names no controller)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            if controller in CONTROLLERS:
                found[controller] = parts[2]
    return found


def available() -> tuple[bool, str]:
    """Whether a helper can join a container's cgroups here: root, cgroup v1 controllers."""
    if os.geteuid() != 0:
        return False, "moving a helper into a container's cgroups needs root"
    mounted = parse_mounts(Path("/proc/self/mounts").read_text())
    missing = [c for c in CONTROLLERS if c not in mounted]
    if missing:
        return False, (
            f"no cgroup v1 {', '.join(missing)} hierarchy mounted (a cgroup v2 host: not "
            "supported yet)"
        )
    return True, ""


def require_available(kind: str) -> None:
    """`FaultUnavailable` naming ``kind`` unless `available`."""
    ok, why = available()
    if not ok:
        raise FaultUnavailable(f"{kind} cannot run in a container here: {why}")


def cgroups_of(pid: int) -> dict[str, Path]:
    """{controller: cgroup directory} of process ``pid`` for `CONTROLLERS`."""
    mounted = parse_mounts(Path("/proc/self/mounts").read_text())
    relative = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    missing = [c for c in CONTROLLERS if c not in mounted or c not in relative]
    if missing:
        raise FaultUnavailable(f"process {pid} has no cgroup v1 {', '.join(missing)} cgroup")
    return {c: mounted[c] / relative[c].lstrip("/") for c in CONTROLLERS}


def procs_files(cgroups: dict[str, Path]) -> list[str]:
    """The ``cgroup.procs`` files to write a pid to, once each (co-mounted controllers
    such as ``cpu,cpuacct`` share one directory)."""
    return sorted({str(path / "cgroup.procs") for path in cgroups.values()})


def joined_argv(argv: list[str], cgroups: dict[str, Path]) -> list[str]:
    """``argv`` run by the launcher that first joins ``cgroups`` (see `JOIN`)."""
    return [sys.executable, "-I", "-S", "-c", JOIN, *procs_files(cgroups), "--", *argv]


def in_cgroups(pid: int, cgroups: dict[str, Path]) -> bool:
    """True if ``pid`` is in every one of ``cgroups`` (False if it is gone)."""
    try:
        return cgroups_of(pid) == cgroups
    except (OSError, FaultUnavailable):
        return False


def cpu_usage_ns(cgroups: dict[str, Path]) -> int:
    """CPU time charged to the cgroup so far (cpuacct.usage), in nanoseconds."""
    return int((cgroups["cpuacct"] / "cpuacct.usage").read_text())


def memory_usage_bytes(cgroups: dict[str, Path]) -> int:
    """Memory charged to the cgroup now (memory.usage_in_bytes)."""
    return int((cgroups["memory"] / "memory.usage_in_bytes").read_text())


def memory_limit_bytes(cgroups: dict[str, Path]) -> int | None:
    """The cgroup's memory limit (memory.limit_in_bytes), or None if it has none."""
    limit = int((cgroups["memory"] / "memory.limit_in_bytes").read_text())
    return None if limit >= UNLIMITED_BYTES else limit
