"""Places for faults to live: a network namespace per node, a size-limited data dir per node.

In ``netns`` isolation each node runs in a namespace of its own, joined to the host by a
veth pair with addresses of its own, so network faults (qdiscs, nftables rules) can be put
on *that node's* link and nowhere else. A data dir on its own tmpfs lets a disk fill reach
ENOSPC without touching the host's disk. Both need root; both are undone by the stack's
teardown and, after a SIGKILL, by the reaper.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, StackError

NETNS_PREFIX = "hx-"
NODE_IFNAME = "eth0"  # the node's end of its veth pair, inside its namespace


def require_root(field: str, value: object) -> None:
    if os.geteuid() != 0:
        raise ConfigError(
            field, value, "needs root (CAP_NET_ADMIN / CAP_SYS_ADMIN); run as root or leave it off"
        )


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    if proc.returncode != 0:
        raise StackError(f"{what} failed: `{' '.join(argv)}`: {proc.stderr.strip()}")


@dataclass(frozen=True)
class NodeNetwork:
    """A node's namespace and the veth pair to it: the host end and the node's end."""

    netns: str
    host_ifname: str
    node_ifname: str
    host_address: str
    node_address: str

    @classmethod
    def plan(cls, stack_name: str, index: int) -> NodeNetwork:
        # 10.213.B.0/24 per stack (B from the name), a /30 per node: own test hosts only.
        block = 1 + zlib.crc32(stack_name.encode()) % 250
        tag = f"{zlib.crc32(stack_name.encode()):08x}"[:5]
        return cls(
            netns=f"{NETNS_PREFIX}{stack_name}-{index}",
            host_ifname=f"hx{tag}h{index}",
            node_ifname=NODE_IFNAME,
            host_address=f"10.213.{block}.{4 * index + 1}",
            node_address=f"10.213.{block}.{4 * index + 2}",
        )

    def create(self) -> None:
        """Namespace, veth pair, addresses, links up. Deleting the namespace undoes it all."""
        ns = self.netns
        _run(["ip", "netns", "add", ns], "creating netns")
        try:
            _run(
                ["ip", "link", "add", self.host_ifname, "type", "veth",
                 "peer", "name", self.node_ifname, "netns", ns],
                "creating veth",
            )  # fmt: skip
            _run(["ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_ifname], "addr")
            _run(["ip", "link", "set", self.host_ifname, "up"], "link up")
            _run(
                ["ip", "-n", ns, "addr", "add", f"{self.node_address}/30",
                 "dev", self.node_ifname],
                "addr in netns",
            )  # fmt: skip
            _run(["ip", "-n", ns, "link", "set", self.node_ifname, "up"], "link up in netns")
            _run(["ip", "-n", ns, "link", "set", "lo", "up"], "lo up in netns")
        except StackError:
            delete_netns(ns)
            raise

    def wrap(self, argv: list[str]) -> list[str]:
        """Run ``argv`` inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.netns, *argv]


def delete_netns(name: str) -> bool:
    """Delete a namespace (and with it its end of the veth pair). False if it was not there."""
    if not Path("/run/netns", name).exists():
        return False
    # Deleting one end of a veth pair deletes both at once; left to the namespace's
    # teardown, the host end lingers a moment and a stack of the same name restarted
    # right away fails with "File exists".
    subprocess.run(
        ["ip", "-n", name, "link", "del", NODE_IFNAME], capture_output=True, timeout=15, check=False
    )
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=15, check=False)
    return True


def netns_of_stack(stack_name: str) -> list[str]:
    """Namespaces this harness made for ``stack_name`` that still exist."""
    run_netns = Path("/run/netns")
    if not run_netns.is_dir():
        return []
    prefix = f"{NETNS_PREFIX}{stack_name}-"
    return sorted(
        p.name
        for p in run_netns.iterdir()
        if p.name.startswith(prefix) and p.name[len(prefix) :].isdigit()
    )


def mount_tmpfs(path: Path, size_mb: int) -> None:
    """A tmpfs of ``size_mb`` MiB at ``path``: the node's data dir, full at that size."""
    path.mkdir(parents=True, exist_ok=True)
    _run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "harness-data", str(path)],
        "mounting a size-limited data dir",
    )


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first (the order to unmount them)."""
    root = str(directory.resolve())
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point = line.split()[1].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all_under(directory: Path) -> list[Path]:
    """Unmount everything at or below ``directory``; returns what was unmounted."""
    done = []
    for point in mounts_under(directory):
        proc = subprocess.run(["umount", str(point)], capture_output=True, timeout=15, check=False)
        if proc.returncode != 0:
            subprocess.run(
                ["umount", "-l", str(point)], capture_output=True, timeout=15, check=False
            )
        done.append(point)
    return done
