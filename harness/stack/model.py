"""What a stack is, independent of how it runs: its spec, its observable state, its protocol.

Faults, probes, load and reports see a stack only through `Stack` and the frozen
`StackState` it returns, so the local (processes) and docker (containers) backends can
both carry them.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

from harness.errors import ConfigError

Role = Literal["primary", "backup", "balancer", "proxy", "agent", "source", "replicator", "monitor"]
NODE_ROLES = ("primary", "backup")
#: "one": the served nodes follow one chain source (harness.chain), as real nodes follow
#: their network; "independent": every node mines a chain of its own.
CHAIN_NAMES = ("one", "independent")
#: ``--chain auto``, the command line's default (`harness run`, `stack up`, pytest): one
#: chain for anvil nodes (dev chains have no peers: the stack gives them one network),
#: their own network for other clients.
AUTO_CHAIN = "auto"
#: HAProxy policies: "roadmap" (fixtures/haproxy.cfg.j2) or "hardened" (short timeouts,
#: retries, fast checks and the lag agent: fixtures/haproxy-hardened.cfg.j2).
POLICY_NAMES = ("roadmap", "hardened")
#: Where a stack can run; each name has a factory in `harness.stack.backends`.
BACKEND_NAMES = ("local", "docker")
EventKind = Literal["started", "exited", "restart_scheduled", "stopped", "spawn_failed", "synced"]


@dataclass(frozen=True)
class HealthCheck:
    """HAProxy's active health check: interval and the fall/rise thresholds."""

    inter_ms: int = 2000
    fall: int = 3
    rise: int = 2

    @property
    def implied_detection_s(self) -> float:
        """Worst-case time for HAProxy to mark a dead server DOWN: inter x fall."""
        return self.inter_ms * self.fall / 1000


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts a dead component (systemd's Restart= with backoff)."""

    delay_s: float = 0.5
    backoff: float = 2.0
    max_delay_s: float = 10.0
    reset_after_s: float = 10.0
    enabled: bool = True


@dataclass(frozen=True)
class StackSpec:
    """Everything needed to stand a stack up. Validated on construction."""

    name: str = "default"
    backend: str = "local"
    nodes: int = 2
    node_kind: str = "anvil"
    block_time_s: float = 1.0
    node_args: tuple[str, ...] = ()
    haproxy_template: Path | None = None
    # Which HAProxy policy renders the config; a haproxy_template given wins over its file.
    # "hardened" also runs the lag agent (harness.stack.agent).
    policy: str = "roadmap"
    # The lag agent takes a node out when its head is more than this behind the best one.
    agent_max_lag_blocks: int = 2
    frontend_port: int | None = None
    health_check: HealthCheck = field(default_factory=HealthCheck)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    ready_timeout_s: float = 30.0
    max_head_lag_blocks: int = 5
    # "loopback" (fast default) or "netns": each node in a network namespace of its own.
    isolation: str = "loopback"
    # Each node's data dir on a tmpfs of this size (MiB), so a disk fill is contained (on
    # the docker backend: a tmpfs volume of the run's own, mounted at /data).
    data_dir_size_mb: int | None = None
    # The docker backend: each node's container limited to this much memory (MiB, no swap)
    # and this many CPUs (a CFS quota: 0.5 is half a CPU); the memory and cpu faults put
    # their load inside these limits.
    container_memory_mb: int | None = None
    container_cpus: float | None = None
    # The harness's JSON-RPC fault proxy between HAProxy and every node.
    fault_proxy: bool = False
    # A Toxiproxy server's API (http://127.0.0.1:8474): a proxy of its own before every
    # node, and transport faults go through it.
    toxiproxy: str | None = None
    # One chain across the nodes (anvil only) or a chain each ("auto": one for anvil, their
    # own network for other clients: the command line's default; a spec built in code
    # keeps a chain per node unless told); and, with one, how long a block takes to reach
    # each node ("FIXED[,JITTER]" ms, e.g. "50,250": 50-300 ms).
    chain: str = "independent"
    propagation_delay: str = ""
    # With one chain: nodes held this many blocks behind the source from the start,
    # (("node-1", 3),): a lagging backup, as a scenario or a game day wants it.
    node_lag_blocks: tuple[tuple[str, int], ...] = ()
    # The stack's own Prometheus, exporters, Alertmanager and alert webhook
    # (harness.monitor), evaluating fixtures/alerts.yml at 1 s, or the rule files given
    # here instead (paths; e.g. alerts.yml and alerts-roadmap.yml side by side, or a copy
    # tuned for a test by harness.monitor.rules.tune_rules).
    prometheus: bool = False
    alert_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("stack name", self.name, "use letters, digits, '-' and '_' only")
        if self.backend not in BACKEND_NAMES:
            raise ConfigError("backend", self.backend, f"choose one of: {', '.join(BACKEND_NAMES)}")
        if not 1 <= self.nodes <= 16:
            raise ConfigError("nodes", self.nodes, "choose between 1 and 16 nodes")
        if not (math.isfinite(self.block_time_s) and 0.05 <= self.block_time_s <= 60):
            raise ConfigError("block_time_s", self.block_time_s, "choose 0.05 to 60 seconds")
        if self.frontend_port is not None and not 1024 <= self.frontend_port <= 65535:
            raise ConfigError(
                "frontend_port", self.frontend_port, "choose 1024-65535, or omit it to pick one"
            )
        hc = self.health_check
        if not (100 <= hc.inter_ms <= 60_000 and 1 <= hc.fall <= 100 and 1 <= hc.rise <= 100):
            raise ConfigError("health_check", hc, "inter_ms must be 100-60000, fall and rise 1-100")
        r = self.restart
        finite = all(
            math.isfinite(v) for v in (r.delay_s, r.backoff, r.max_delay_s, r.reset_after_s)
        )
        if not finite or r.delay_s < 0 or r.backoff < 1 or r.max_delay_s < 0:
            raise ConfigError(
                "restart", self.restart, "delay_s and max_delay_s >= 0 and backoff >= 1"
            )
        if self.max_head_lag_blocks < 0:
            raise ConfigError("max_head_lag_blocks", self.max_head_lag_blocks, "must be >= 0")
        if self.isolation not in ("loopback", "netns"):
            raise ConfigError("isolation", self.isolation, "choose loopback or netns")
        if self.data_dir_size_mb is not None and not 16 <= self.data_dir_size_mb <= 65536:
            raise ConfigError(
                "data_dir_size_mb", self.data_dir_size_mb, "choose 16 to 65536 MiB, or leave it off"
            )
        check_container_limits(self.container_memory_mb, self.container_cpus)
        if self.toxiproxy is not None:
            check_toxiproxy_url(self.toxiproxy)
        if self.policy not in POLICY_NAMES:
            raise ConfigError("policy", self.policy, f"choose one of: {', '.join(POLICY_NAMES)}")
        if self.agent_max_lag_blocks < 0:
            raise ConfigError("agent_max_lag_blocks", self.agent_max_lag_blocks, "must be >= 0")
        if self.chain == AUTO_CHAIN:  # resolved here, so every reader sees one or independent
            object.__setattr__(self, "chain", auto_chain(self.node_kind))
        if self.chain not in CHAIN_NAMES:
            choices = ", ".join((AUTO_CHAIN, *CHAIN_NAMES))
            raise ConfigError("chain", self.chain, f"choose one of: {choices}")
        if self.chain == "one" and self.node_kind != "anvil":
            raise ConfigError(
                "chain",
                self.chain,
                f"{self.node_kind} nodes follow their own network and replay no chain "
                "source; use --chain independent (only anvil nodes replicate one)",
            )
        if self.propagation_delay:
            if self.chain != "one":
                raise ConfigError(
                    "propagation_delay",
                    self.propagation_delay,
                    "a block propagates only on one chain; add --chain one or drop it",
                )
            from harness.chain.delays import parse_delay

            parse_delay(self.propagation_delay, "propagation_delay")
        if self.node_lag_blocks and self.chain != "one":
            raise ConfigError(
                "node_lag_blocks",
                self.node_lag_blocks,
                "a node lags behind a chain source only on one chain; add --chain one",
            )
        names = {f"node-{i}" for i in range(self.nodes)}
        for name, blocks in self.node_lag_blocks:
            if name not in names:
                raise ConfigError(
                    "node_lag_blocks",
                    name,
                    f"no such node; choose one of: {', '.join(sorted(names))}",
                )
            if not isinstance(blocks, int) or not 0 <= blocks <= 10_000:
                raise ConfigError("node_lag_blocks", blocks, "choose 0 to 10000 blocks")
        if self.alert_rules and not self.prometheus:
            raise ConfigError(
                "alert_rules",
                self.alert_rules[0],
                "rules are loaded by monitoring: add --prometheus",
            )
        for rules in self.alert_rules:
            if not Path(rules).is_file():
                raise ConfigError("alert_rules", rules, "no such rule file; give a readable path")
        if self.haproxy_template is not None and not self.haproxy_template.is_file():
            raise ConfigError(
                "haproxy_template", str(self.haproxy_template), "no such file; give a readable path"
            )

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["haproxy_template"] = str(self.haproxy_template) if self.haproxy_template else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> StackSpec:
        doc = dict(doc)
        template = doc.get("haproxy_template")
        doc["haproxy_template"] = Path(template) if template else None
        doc["node_args"] = tuple(doc.get("node_args", ()))
        doc["alert_rules"] = tuple(str(p) for p in doc.get("alert_rules", ()))
        doc["node_lag_blocks"] = tuple(
            (str(name), int(blocks)) for name, blocks in doc.get("node_lag_blocks", ())
        )
        doc["health_check"] = HealthCheck(**doc.get("health_check", {}))
        doc["restart"] = RestartPolicy(**doc.get("restart", {}))
        return cls(**doc)


#: The smallest container memory limit a node is given: anvil 1.7.1 takes ~20 MiB to start.
MIN_CONTAINER_MEMORY_MB = 64


def check_container_limits(memory_mb: object, cpus: object) -> None:
    """`ConfigError` unless the container limits are None or in range: memory in whole MiB
    from `MIN_CONTAINER_MEMORY_MB`, CPUs from 0.01 to this host's count (Docker's range)."""
    if memory_mb is not None and (
        isinstance(memory_mb, bool)
        or not isinstance(memory_mb, int)
        or not MIN_CONTAINER_MEMORY_MB <= memory_mb <= 1 << 20
    ):
        raise ConfigError(
            "container_memory_mb",
            memory_mb,
            f"choose {MIN_CONTAINER_MEMORY_MB} to 1048576 MiB (a node needs about 20 to "
            "start), or leave it off for no limit",
        )
    host_cpus = os.cpu_count() or 1
    if cpus is not None and (
        isinstance(cpus, bool)
        or not isinstance(cpus, int | float)
        or not (math.isfinite(cpus) and 0.01 <= cpus <= host_cpus)
    ):
        raise ConfigError(
            "container_cpus",
            cpus,
            f"choose 0.01 to {host_cpus} CPUs (this host's), e.g. 0.5 for half a CPU, or "
            "leave it off for no limit",
        )


def auto_chain(node_kind: str) -> str:
    """What ``--chain auto`` means for nodes of ``node_kind``."""
    return "one" if node_kind == "anvil" else "independent"


def split_toxiproxy_url(url: str) -> tuple[str, int]:
    """(host, port) of a Toxiproxy API URL such as ``http://127.0.0.1:8474``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise ConfigError(
            "toxiproxy",
            url,
            "give the Toxiproxy API as http://HOST:PORT, e.g. http://127.0.0.1:8474",
        )
    return parts.hostname, port


def check_toxiproxy_url(url: str) -> None:
    """`ConfigError` unless ``url`` is a Toxiproxy API on this host: http://LOOPBACK:PORT."""
    host, port = split_toxiproxy_url(url)
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("toxiproxy", url, f"give the API's root only: http://{host}:{port}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            "toxiproxy",
            url,
            "only a Toxiproxy on this host is used (127.0.0.1, ::1 or localhost): its proxies "
            "listen where HAProxy must reach them; run toxiproxy-server here",
        )


@dataclass(frozen=True)
class ComponentState:
    """One running part of the stack, as a fault or a probe needs to see it."""

    name: str
    kind: str
    role: Role
    pid: int | None
    host: str
    port: int
    data_dir: str | None = None
    # The size of the node's own filesystem under data_dir (MiB), if it has one.
    data_dir_size_mb: int | None = None
    # The docker backend: the limits its container runs with (None: none), as Docker has
    # them (HostConfig.Memory and NanoCpus).
    memory_limit_mb: int | None = None
    cpus: float | None = None
    netns: str | None = None
    ifname: str | None = None  # the node's end of its veth pair, inside ``netns``
    host_ifname: str | None = None  # the host's end
    proxy_port: int | None = None  # HAProxy reaches the node through the fault proxy here
    toxiproxy_proxy: str | None = None  # the node's proxy on the Toxiproxy server, by name
    toxiproxy_port: int | None = None  # ... where it listens: HAProxy's server entry
    agent_port: int | None = None  # the lag agent answers HAProxy's agent-check for it here
    restarts: int = 0
    # The docker backend: the component's container (its id), which container faults act
    # on; ``host`` and ``port`` are then where it is published on 127.0.0.1.
    container: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


@dataclass(frozen=True)
class StackState:
    """A snapshot of a stack: plain data, safe to write to disk and to read from another process."""

    name: str
    backend: str
    state_dir: str
    owner_pid: int
    frontend_url: str
    stats_url: str
    stats_socket: str
    health_check: HealthCheck
    block_time_s: float
    components: tuple[ComponentState, ...]
    proxy_control_url: str | None = None  # the fault proxy's control API, if it runs
    toxiproxy_url: str | None = None  # the Toxiproxy server holding the nodes' proxies
    haproxy_policy: str = "roadmap"  # the policy asked for (StackSpec.policy)
    haproxy_template: str | None = None  # the template that rendered the config that ran
    # "one": the served nodes follow one chain source through the replicator
    # (harness.chain); "independent": each node mines a chain of its own.
    chain: str = "independent"
    chain_source_url: str | None = None  # the chain source (not served to clients)
    replicator_url: str | None = None  # the replicator's control API
    chain_log: str | None = None  # every block the source had (harness.chain.read_chain_log)
    # --prometheus (harness.monitor): its HTTP API, Alertmanager's, HAProxy's exporter (None
    # when the HAProxy template serves none), the file the alert webhook records to, and
    # how long the monitoring took to start (part of the stack's ready time).
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    haproxy_metrics_url: str | None = None
    alert_notifications: str | None = None
    monitor_start_s: float | None = None
    # What ran (harness.stack.software): {"node": "anvil 1.7.1 (...)", "balancer": "HAProxy
    # 2.6.12 (...)", "proxy": "none" | "harness fault proxy" | "Toxiproxy 2.9.0 -> ..."}.
    software: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> tuple[ComponentState, ...]:
        return tuple(c for c in self.components if c.role in NODE_ROLES)

    @property
    def balancer(self) -> ComponentState:
        return next(c for c in self.components if c.role == "balancer")

    def component(self, name: str) -> ComponentState:
        for c in self.components:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.components)
        raise ConfigError(
            "component", name, f"not part of stack {self.name!r}; choose one of: {names}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> StackState:
        doc = dict(doc)
        doc["health_check"] = HealthCheck(**doc["health_check"])
        doc["components"] = tuple(ComponentState(**c) for c in doc["components"])
        return cls(**doc)


@dataclass(frozen=True)
class ProcessEvent:
    """One thing that happened to a stack's process (or container): started, exited..."""

    t_ns: int  # time.monotonic_ns(), comparable across processes on this host
    wall_time: float  # time.time(), for display only
    component: str
    kind: EventKind
    pid: int | None = None
    returncode: int | None = None
    detail: str = ""


@runtime_checkable
class Stack(Protocol):
    """A running stack of nodes behind a balancer, as faults and probes see it."""

    def state(self) -> StackState:
        """The current snapshot: pids change when the supervisor restarts a node."""
        ...


class StackLifecycle(Stack, Protocol):
    """A stack a backend stands up and tears down: what a run, the pytest plugin and the
    ``stack up`` daemon hold. Entering starts it and returns once it is ready (``ready_s``
    says how long that took); leaving stops everything it started, also on an exception.
    ``reaped`` names the leftovers of earlier runs removed on the way up; ``events`` every
    start, death and restart of its processes, in order."""

    backend: str
    spec: StackSpec
    ready_s: float | None
    reaped: list[str]

    @property
    def events(self) -> list[ProcessEvent]: ...

    def start(self) -> StackState: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
