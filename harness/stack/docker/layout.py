"""Where each container of a docker stack goes: names, static addresses, ports. Pure.

Addresses are fixed (a /24 of the harness's own, .10 upward) so that HAProxy, which
resolves its servers once at start, still reaches a node after Docker restarts it.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from harness.stack.model import NODE_ROLES, ComponentState, Role, StackSpec

#: Inside every container: the JSON-RPC port of a node, HAProxy's frontend and stats.
NODE_PORT = 8545
FRONTEND_PORT = 8545
STATS_PORT = 8404
METRICS_PORT = 8405  # HAProxy's Prometheus exporter, with --prometheus
BALANCER = "haproxy"
SOURCE = "chain-source"
REPLICATOR = "replicator"
AGENT = "lag-agent"
PROXY = "fault-proxy"
#: Subnets tried for a stack's network: 10.214.0.0/16 cut in /24s, from a per-run start
#: (10.213.0.0/16 is the local stack's, for --isolation netns: its routes are not Docker's
#: to see, so the two pools must not meet).
SUBNET_POOL = ipaddress.ip_network("10.214.0.0/16")
FIRST_HOST = 10


def subnets(run_id: str) -> Iterator[ipaddress.IPv4Network]:
    """Every /24 of the pool, starting at one the run id picks (so two runs rarely try the
    same one first)."""
    blocks = list(SUBNET_POOL.subnets(new_prefix=24))  # type: ignore[arg-type]
    start = zlib.crc32(run_id.encode()) % len(blocks)
    for i in range(len(blocks)):
        yield blocks[(start + i) % len(blocks)]  # type: ignore[misc]


def container_name(run_id: str, component: str) -> str:
    return f"hx-{run_id}-{component}"


@dataclass(frozen=True)
class Slot:
    """One container to be: its component name, kind, role and address on the network."""

    name: str
    kind: str
    role: Role
    address: str


@dataclass(frozen=True)
class DockerLayout:
    """The containers of a stack, in start order, on ``subnet``."""

    run_id: str
    subnet: str
    gateway: str
    slots: tuple[Slot, ...]

    @property
    def network(self) -> str:
        return f"hx-{self.run_id}"

    def slot(self, name: str) -> Slot:
        return next(s for s in self.slots if s.name == name)

    @property
    def nodes(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.role in NODE_ROLES)


def plan_layout(spec: StackSpec, run_id: str, subnet: ipaddress.IPv4Network) -> DockerLayout:
    """The containers ``spec`` asks for: the chain source (one chain), nodes, HAProxy."""
    hosts = list(subnet.hosts())
    names: list[tuple[str, str, Role]] = []
    if spec.chain == "one":
        names.append((SOURCE, "anvil", "source"))
    for i in range(spec.nodes):
        names.append((f"node-{i}", spec.node_kind, "primary" if i == 0 else "backup"))
    names.append((BALANCER, "haproxy", "balancer"))
    slots = tuple(
        Slot(name, kind, role, str(hosts[FIRST_HOST - 1 + i]))
        for i, (name, kind, role) in enumerate(names)
    )
    return DockerLayout(run_id, str(subnet), str(hosts[0]), slots)


def planned_components(layout: DockerLayout, spec: StackSpec) -> tuple[ComponentState, ...]:
    """The components before anything runs (no pid, no published port yet); the served
    nodes with the limits and the sized /data ``spec`` asks for."""
    return tuple(
        ComponentState(
            s.name,
            s.kind,
            s.role,
            None,
            "127.0.0.1",
            0,
            data_dir="/data" if s.role != "balancer" else None,
            container=container_name(layout.run_id, s.name),
            **(node_limits(spec) if s.role in NODE_ROLES else {}),
        )
        for s in layout.slots
    )


def node_limits(spec: StackSpec) -> dict[str, Any]:
    """The `ComponentState` fields of a served node's container that ``spec`` sets."""
    return {
        "data_dir_size_mb": spec.data_dir_size_mb,
        "memory_limit_mb": spec.container_memory_mb,
        "cpus": spec.container_cpus,
    }


#: The oom_score_adj of a memory-limited node's container: in its own cgroup the OOM killer
#: takes the node before a memory fault's allocator (whose own cannot be lowered without
#: CAP_SYS_RESOURCE), and on the host before anything of the host's.
NODE_OOM_SCORE_ADJ = 1000


def host_config_limits(spec: StackSpec) -> dict[str, Any]:
    """A served node's limits as `docker.APIClient.create_host_config` takes them: memory
    with no swap beyond it (memswap = memory) and the OOM killer's first choice, CPUs as
    a CFS quota in billionths."""
    limits: dict[str, Any] = {}
    if spec.container_memory_mb is not None:
        limits["mem_limit"] = limits["memswap_limit"] = f"{spec.container_memory_mb}m"
        limits["oom_score_adj"] = NODE_OOM_SCORE_ADJ
    if spec.container_cpus is not None:
        limits["nano_cpus"] = round(spec.container_cpus * 1e9)
    return limits


def data_volume_options(spec: StackSpec) -> dict[str, str]:
    """The local volume driver's options for a node's /data: a tmpfs of
    ``data_dir_size_mb`` MiB (none: a plain volume on the daemon's disk)."""
    if spec.data_dir_size_mb is None:
        return {}
    return {"type": "tmpfs", "device": "tmpfs", "o": f"size={spec.data_dir_size_mb}m"}


def with_fault_proxy(
    components: list[ComponentState], route_ports: dict[str, int], control_port: int
) -> tuple[list[ComponentState], dict[str, Any]]:
    """``components`` with each node's fault proxy route (``route_ports``) and the proxy
    itself (a host process, before HAProxy), and the `StackState` field naming its API."""
    routed = [
        replace(c, proxy_port=route_ports[c.name]) if c.name in route_ports else c
        for c in components
    ]
    routed.insert(-1, ComponentState(PROXY, PROXY, "proxy", None, "127.0.0.1", control_port))
    return routed, {"proxy_control_url": f"http://127.0.0.1:{control_port}/"}
