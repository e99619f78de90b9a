"""A name for each node container's network namespace, so the network faults reach it.

The network faults (tbf, nftables; netem where the kernel has it) act inside a namespace
named under /run/netns, as ``--isolation netns`` gives the local stack. A container has a
namespace already: ``ip netns attach hx-<stack>-<index> <pid>`` names it (as Pumba enters
a container through its pid), and the faults then run unchanged, on the container's eth0.
Docker gives a restarted container a new namespace, so the name is attached again on every
start. Root only; without root the names are not made and network faults say why.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from harness.stack.isolation import NETNS_PREFIX

log = logging.getLogger(__name__)

CONTAINER_IFNAME = "eth0"


def netns_name(stack: str, index: int) -> str:
    """What `harness.stack.isolation.netns_of_stack` finds, so a killed run's names are
    removed with its stack dir."""
    return f"{NETNS_PREFIX}{stack}-{index}"


def can_name_namespaces() -> bool:
    return os.geteuid() == 0


def attach(name: str, pid: int) -> None:
    """Name ``pid``'s network namespace ``name`` (replacing a stale name)."""
    detach(name)
    proc = subprocess.run(
        ["ip", "netns", "attach", name, str(pid)],
        capture_output=True, text=True, timeout=15, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        log.warning("could not name the namespace of pid %s %s: %s", pid, name, proc.stderr.strip())


def detach(name: str) -> bool:
    """Remove the name (the namespace itself lives while its container does)."""
    if not Path("/run/netns", name).exists():
        return False
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=15, check=False)
    return True
