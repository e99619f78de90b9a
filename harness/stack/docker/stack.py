"""The docker stack: nodes and HAProxy as containers, stood up and torn down as one block.

``DockerStack`` is a context manager like ``LocalStack``: entering stands the stack up and
returns once HAProxy sees every server UP and a call through the frontend was answered;
leaving removes every container, the network and the volumes, also on an exception. A
harness killed outright leaves labelled objects behind, which ``harness cleanup`` (and the
next start) removes by their owner label.

Docker's restart policy (``always``) plays the supervisor: a node whose process dies comes
back with its volume (anvil's state file), and the restart is seen in ``docker events``.
HAProxy's runtime API socket sits in a host directory mounted into its container, so the
probes read HAProxy's view exactly as they do on the local stack. With one chain, the
replicator is a host process (the local stack's), talking to the nodes' published ports.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import secrets
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil

from harness.chain import (
    FollowerSpec,
    NodeSettings,
    ReplicatorClient,
    ReplicatorConfig,
    ReplicatorError,
    check_genesis,
    follower_args,
    genesis_timestamp,
    parse_delay,
    replicator_command,
    source_args,
)
from harness.engine.client import connect
from harness.engine.labels import LABEL_COMPONENT, LABEL_OWNER, LABEL_RUN, LABEL_STACK, owner_label
from harness.errors import BackendUnsupported, ConfigError, StackError
from harness.images.bake import require_images
from harness.images.recipes import stack_image
from harness.jsonrpc import RpcClient, RpcFailure
from harness.monitor import processes as monitor
from harness.proxy.process import proxy_command, wait_healthy
from harness.stack import agent, haproxy
from harness.stack.docker import netns
from harness.stack.docker.events import EventWatcher
from harness.stack.docker.layout import (
    AGENT,
    BALANCER,
    FRONTEND_PORT,
    METRICS_PORT,
    NODE_PORT,
    PROXY,
    REPLICATOR,
    SOURCE,
    STATS_PORT,
    DockerLayout,
    Slot,
    container_name,
    data_volume_options,
    host_config_limits,
    plan_layout,
    planned_components,
    subnets,
    with_fault_proxy,
)
from harness.stack.docker.reaper import reap_stale_containers, remove_run, run_marker
from harness.stack.model import NODE_ROLES, ComponentState, ProcessEvent, StackSpec, StackState
from harness.stack.nodes import adapter
from harness.stack.ports import free_port, require_free_port
from harness.stack.software import docker_software
from harness.stack.state import (
    STATE_FILE,
    ProcessIdentity,
    StateFile,
    read_state,
    reap_stale_stacks,
    stacks_dir,
)
from harness.stack.supervisor import Supervisor
from harness.stack.sync import PeerSync

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
IN_CONTAINER_DATA = Path("/data")
IN_CONTAINER_CONFIG = "/usr/local/etc/haproxy"
IN_CONTAINER_RUN = "/run/haproxy"
CHAIN_LOG = "chain.jsonl"


def check_docker_spec(spec: StackSpec) -> None:
    """`BackendUnsupported` for what the docker backend does not (yet) run, naming the way
    out. ``isolation="netns"`` needs nothing: every container has a namespace of its own,
    named for the network faults (`harness.stack.docker.netns`)."""
    refused = {
        "toxiproxy": (spec.toxiproxy is not None, "not on the docker backend (compose.test.yml "
                      "has a Toxiproxy per node for users who can pull its image); use "
                      "--backend local"),
        "node": (spec.node_kind != "anvil", "the docker backend runs baked anvil images only "
                 "(compose.test.yml runs Erigon for users who can pull it); use --node anvil"),
    }  # fmt: skip
    for field, (bad, fix) in refused.items():
        if bad:
            value = getattr(spec, "node_kind" if field == "node" else field)
            raise BackendUnsupported(field, value, fix)


def _workload_pid(init_pid: int) -> int | None:
    """The process the container runs under docker-init (its only child), or None yet."""
    try:
        children = psutil.Process(init_pid).children()
    except psutil.Error:
        return None
    return children[0].pid if children else None


class PlannedDockerStack:
    """A docker stack of ``spec`` as it will be, before anything starts: what faults are
    checked against (every component has a container), so that bad input costs nothing."""

    def __init__(self, spec: StackSpec) -> None:
        check_docker_spec(spec)
        layout = plan_layout(spec, "planned", next(subnets("planned")))
        components = list(planned_components(layout, spec))
        if netns.can_name_namespaces():
            names = {f"node-{i}": netns.netns_name(spec.name, i) for i in range(spec.nodes)}
            components = [
                replace(c, netns=names[c.name], ifname=netns.CONTAINER_IFNAME)
                if c.name in names
                else c
                for c in components
            ]
        proxy: dict[str, Any] = {}
        if spec.fault_proxy:  # what the JSON-RPC faults check: a route per node, the API
            routes = {c.name: 0 for c in components if c.role in NODE_ROLES}
            components, proxy = with_fault_proxy(components, routes, 0)
        chain: dict[str, Any] = {"chain": spec.chain}
        if spec.chain == "one":  # what the chain faults check: a replicator, its URL
            components.insert(
                -1, ComponentState(REPLICATOR, REPLICATOR, "replicator", None, LOOPBACK, 0)
            )
            chain.update(
                chain_source_url=f"http://{LOOPBACK}:0/",
                replicator_url=f"http://{LOOPBACK}:0/",
                chain_log=None,
            )
        if spec.prometheus:  # host processes after HAProxy, as the live stack lists them
            components += monitor.components(lambda: 0)
        self._state = StackState(
            name=spec.name,
            backend="planned",
            state_dir="",
            owner_pid=0,
            frontend_url=f"http://{LOOPBACK}:{spec.frontend_port or 0}/",
            stats_url="",
            stats_socket="",
            health_check=spec.health_check,
            block_time_s=spec.block_time_s,
            components=tuple(components),
            haproxy_policy=spec.policy,
            haproxy_template=str(haproxy.template_for(spec.policy, spec.haproxy_template)),
            **chain,
            **proxy,
        )

    def state(self) -> StackState:
        return self._state


class DockerStack:
    """N anvil containers behind an HAProxy container, on a network of their own."""

    backend = "docker"

    def __init__(self, spec: StackSpec, *, detached: bool = False) -> None:
        self.spec = spec
        self.detached = detached
        self.adapter = adapter(spec.node_kind)
        self.dir = stacks_dir() / spec.name
        self.run_id = f"{spec.name}-{secrets.token_hex(3)}"
        self.reaped: list[str] = []
        self.ready_s: float | None = None
        self._client: Any = None
        self._layout: DockerLayout | None = None
        self._state: StackState | None = None
        self._containers: dict[str, str] = {}  # component -> container id
        self._limits: dict[str, dict[str, Any]] = {}  # node -> its container's limits
        self._pids: dict[str, int | None] = {}  # component -> workload pid (None: down)
        self._restarts: dict[str, int] = {}
        self._events: list[ProcessEvent] = []
        self._lock = threading.Lock()
        self._watcher: EventWatcher | None = None
        self._supervisor: Supervisor | None = None
        self._sync: PeerSync | None = None
        self._owner = ProcessIdentity.current()
        self._phase = "starting"
        # node-N -> the name its container's network namespace gets (harness.stack.docker.netns)
        self._netns = {f"node-{i}": netns.netns_name(spec.name, i) for i in range(spec.nodes)}
        self._agent_ports: dict[str, int] = {}  # hardened policy: node -> lag agent's port
        self._agent_status_port = 0
        self._proxy_ports: dict[str, int] = {}  # fault proxy: node -> its route's port
        self._proxy_control_port = 0
        self._metrics_port: int | None = None  # --prometheus: HAProxy's exporter, published
        self._monitor: monitor.MonitorLayout | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> DockerStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StackState:
        """Stand the stack up; returns once it is ready. Leaves nothing behind on failure."""
        started_ns = time.monotonic_ns()
        check_docker_spec(self.spec)
        haproxy.haproxy_binary()  # the config is checked with the host's `haproxy -c`
        if self.spec.prometheus:
            monitor.require_binaries()
        self._client = connect()
        images = [stack_image("anvil"), stack_image("haproxy")]
        require_images(self._client, images)
        if self.spec.frontend_port is not None:
            require_free_port(self.spec.frontend_port, "frontend_port")
        self.reaped = reap_stale_stacks() + reap_stale_containers()
        for line in self.reaped:
            log.warning("removed leftover of an earlier run: %s", line)
        if (self.dir / STATE_FILE).exists():
            owner = read_state(self.dir).owner
            raise StackError(
                f"stack {self.spec.name!r} is already running (owner pid {owner.pid}); "
                "stop it with `harness stack down` or choose another name with --name"
            )
        try:
            self._create(*images)
            self._wait_ready()
            if self.spec.prometheus:
                self._launch_monitor()
        except BaseException:
            self.stop()
            raise
        self.ready_s = (time.monotonic_ns() - started_ns) / 1e9
        self._phase = "ready"
        if self.spec.chain == "independent":
            self._sync = PeerSync(
                lambda: self.state().nodes, self.spec.block_time_s, self._on_sync
            ).__enter__()
        self._write_state()
        log.info("docker stack %s ready in %.3fs", self.spec.name, self.ready_s)
        return self.state()

    def stop(self) -> None:
        """Remove every container (HAProxy first), the network, the volumes and the state."""
        self._phase = "stopping"
        if self._sync is not None:
            self._sync.__exit__(None, None, None)
            self._sync = None
        if self._supervisor is not None:
            self._supervisor.stop(timeout_s=3.0)
            self._supervisor = None
        if self._watcher is not None:
            self._watcher.__exit__(None, None, None)
            self._watcher = None
        if self._client is not None:
            try:
                remove_run(self._client, self.run_id)
                run_marker(self.run_id).unlink(missing_ok=True)
            finally:
                self._client.close()
                self._client = None
        if self.dir.exists() and self._owns_dir():
            for name in self._netns.values():
                netns.detach(name)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _owns_dir(self) -> bool:
        try:
            return read_state(self.dir).owner == self._owner
        except StackError:
            return True

    # -- state -----------------------------------------------------------------------

    def state(self) -> StackState:
        """The current snapshot: pids are the containers' workload processes (None while a
        container is down), restarts those Docker's restart policy made."""
        if self._state is None:
            raise StackError(f"stack {self.spec.name!r} is not started")
        components = tuple(
            replace(c, pid=self._pid(c), restarts=self._restarts.get(c.name, 0))
            if c.container
            else replace(c, pid=self._host_pid(c.name))
            for c in self._state.components
        )
        return replace(self._state, components=components)

    def _host_pid(self, name: str) -> int | None:
        return self._supervisor.pids().get(name) if self._supervisor else None

    def _pid(self, c: ComponentState) -> int | None:
        with self._lock:
            if c.name in self._pids:
                return self._pids[c.name]
        if self._client is None:
            return None
        try:
            info = self._client.api.inspect_container(c.container)
        except Exception:
            return None
        running = info["State"]["Running"] and not info["State"]["Paused"]
        init_pid = int(info["State"]["Pid"] or 0)
        pid = _workload_pid(init_pid) if init_pid and info["State"]["Running"] else None
        if pid is not None or not running:
            with self._lock:
                self._pids.setdefault(c.name, pid)
        return pid

    @property
    def events(self) -> list[ProcessEvent]:
        """Every start and death of the stack's containers (from ``docker events``) and
        host processes, and every peer sync, in order."""
        own = list(self._supervisor.events) if self._supervisor else []
        with self._lock:
            return sorted([*self._events, *own], key=lambda e: e.t_ns)

    def runtime_api(self) -> haproxy.RuntimeApi:
        return haproxy.RuntimeApi(self.state().stats_socket)

    # -- start-up --------------------------------------------------------------------

    def _labels(self, component: str) -> dict[str, str]:
        return {
            LABEL_RUN: self.run_id,
            LABEL_STACK: self.spec.name,
            LABEL_COMPONENT: component,
            LABEL_OWNER: owner_label(self._owner),
        }

    def _network(self) -> ipaddress.IPv4Network:
        """The stack's bridge network on the first free /24 of the pool."""
        import docker.errors
        import docker.types

        for subnet in subnets(self.run_id):
            gateway = str(next(subnet.hosts()))
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
            )
            try:
                self._client.networks.create(
                    f"hx-{self.run_id}", driver="bridge", ipam=ipam, labels=self._labels("network"),
                    check_duplicate=True,
                )  # fmt: skip
                return subnet
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue
                raise StackError(f"cannot create the stack's network: {exc}") from exc
        raise StackError("every /24 of 10.214.0.0/16 is taken by other networks: remove some")

    def _create(self, anvil_image: str, haproxy_image: str) -> None:
        spec = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self._write_state_file(None)  # reapable from here on
        marker = run_marker(self.run_id)  # and its Docker objects found by the next cleanup
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(owner_label(self._owner) + "\n")
        self._watcher = EventWatcher(self.run_id, self._on_event).__enter__()
        layout = plan_layout(spec, self.run_id, self._network())
        self._layout = layout
        # The addresses are known now: a config HAProxy rejects fails before any container.
        template = haproxy.template_for(spec.policy, spec.haproxy_template)
        config_dir, run_dir = self.dir / "haproxy", self.dir / "haproxy-run"
        config_dir.mkdir(exist_ok=True)
        run_dir.mkdir(exist_ok=True)
        if spec.policy == "hardened":  # the lag agent: a host port per node, one of its own
            self._agent_ports = {s.name: free_port() for s in layout.nodes}
            self._agent_status_port = free_port()
        if spec.fault_proxy:  # HAProxy -> fault proxy (host, on the gateway) -> node
            self._proxy_ports = {s.name: free_port() for s in layout.nodes}
            self._proxy_control_port = free_port()
        if spec.prometheus:
            self._metrics_port = free_port()
        haproxy_config = self._render_haproxy(layout, template, config_dir)
        deadline = time.monotonic() + spec.ready_timeout_s
        one_chain = spec.chain == "one"
        genesis = genesis_timestamp()
        exe = "/usr/local/bin/anvil"
        state_path = IN_CONTAINER_DATA / "state.json"
        commands: dict[str, list[str]] = {}
        for slot in layout.slots:
            if slot.role == "balancer":
                continue
            if slot.role == "source":
                argv = source_args(
                    exe, port=NODE_PORT, host="0.0.0.0", block_time_s=spec.block_time_s,
                    genesis_timestamp=genesis, state_path=state_path, extra_args=spec.node_args,
                )  # fmt: skip
            elif one_chain:
                argv = follower_args(
                    exe, port=NODE_PORT, host="0.0.0.0", genesis_timestamp=genesis,
                    state_path=state_path, extra_args=spec.node_args,
                )  # fmt: skip
            else:
                argv = self.adapter.command(
                    port=NODE_PORT, host="0.0.0.0", data_dir=IN_CONTAINER_DATA,
                    block_time_s=spec.block_time_s, extra_ports=(), extra_args=spec.node_args,
                )  # fmt: skip
            commands[slot.name] = argv[1:]  # the image's entrypoint is the binary
        host_ports = {name: free_port() for name in commands}  # before the threads: distinct

        def start_node(name: str) -> int:
            served = layout.slot(name).role in NODE_ROLES
            volume = self._client.volumes.create(
                f"hx-{self.run_id}-{name}-data", driver="local",
                driver_opts=data_volume_options(spec) if served else {},
                labels=self._labels(name),
            )  # fmt: skip
            return self._run(
                layout.slot(name), anvil_image, commands[name],
                binds={volume.name: {"bind": str(IN_CONTAINER_DATA), "mode": "rw"}},
                publish={NODE_PORT: host_ports[name]},
                limits=host_config_limits(spec) if served else {},
            )[NODE_PORT]  # fmt: skip

        # Each container takes ~0.5 s of the daemon's time to create and start: all at once.
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            ports = dict(zip(commands, pool.map(start_node, commands), strict=True))
        components = [
            replace(
                c, port=ports.get(c.name, 0), container=self._containers.get(c.name),
                **self._limits.get(c.name, {}),
            )
            for c in planned_components(layout, spec)
        ]  # fmt: skip
        if netns.can_name_namespaces():  # the network faults' way into each node
            components = [
                replace(c, netns=self._netns[c.name], ifname=netns.CONTAINER_IFNAME)
                if c.name in self._netns
                else c
                for c in components
            ]
            for name in self._netns:
                self._attach_netns(name)
        for c in components:
            if c.role in (*NODE_ROLES, "source"):
                self._wait_answering(c, deadline)
        named = {c.name: c for c in components}
        chain: dict[str, Any] = {"chain": spec.chain}
        if one_chain:
            replicator_port = free_port()
            chain = {
                "chain": "one",
                "chain_source_url": named[SOURCE].url,
                "replicator_url": f"http://{LOOPBACK}:{replicator_port}/",
                "chain_log": str(self.dir / CHAIN_LOG),
            }
            components.insert(
                -1,
                ComponentState(
                    REPLICATOR, REPLICATOR, "replicator", None, LOOPBACK, replicator_port
                ),
            )
        proxy: dict[str, Any] = {}
        if self._proxy_ports:
            components, proxy = with_fault_proxy(
                components, self._proxy_ports, self._proxy_control_port
            )
        if self._agent_ports:
            components = [replace(c, agent_port=self._agent_ports.get(c.name)) for c in components]
            components.insert(
                -1, ComponentState(AGENT, AGENT, "agent", None, LOOPBACK, self._agent_status_port)
            )
        if spec.prometheus:
            components += monitor.components(free_port)
        frontend_port = spec.frontend_port or 0
        self._state = StackState(
            name=spec.name,
            backend=self.backend,
            state_dir=str(self.dir),
            owner_pid=self._owner.pid,
            frontend_url="",
            stats_url="",
            stats_socket=str(run_dir / "admin.sock"),
            health_check=spec.health_check,
            block_time_s=spec.block_time_s,
            components=tuple(components),
            haproxy_policy=spec.policy,
            haproxy_template=str(template),
            **chain,
            **proxy,
            software=docker_software(spec, {"node": anvil_image, "balancer": haproxy_image}),
        )
        if one_chain:
            self._launch_replicator(deadline)
        if self._proxy_ports:
            self._launch_proxy(layout, deadline)
        if self._agent_ports:
            self._launch_agent(layout, deadline)
        publish = {FRONTEND_PORT: frontend_port or free_port(), STATS_PORT: free_port()}
        metrics = None
        if self._metrics_port is not None and haproxy.serves_metrics(haproxy_config):
            publish[METRICS_PORT] = self._metrics_port
            metrics = f"{LOOPBACK}:{self._metrics_port}"
        published = self._run(
            layout.slot(BALANCER), haproxy_image, [],
            binds={
                str(config_dir): {"bind": IN_CONTAINER_CONFIG, "mode": "ro"},
                str(run_dir): {"bind": IN_CONTAINER_RUN, "mode": "rw"},
            },
            publish=publish,
        )  # fmt: skip
        balancer = replace(
            named[BALANCER], port=published[FRONTEND_PORT], container=self._containers[BALANCER]
        )
        self._state = replace(
            self._state,
            frontend_url=f"http://{LOOPBACK}:{published[FRONTEND_PORT]}/",
            stats_url=f"http://{LOOPBACK}:{published[STATS_PORT]}/stats",
            components=tuple(balancer if c.name == BALANCER else c for c in self._state.components),
        )
        if spec.prometheus:  # on the host, scraping what the containers publish
            self._monitor, fields = monitor.plan_monitor(
                self._state, metrics, spec.alert_rules, self.dir / "monitor"
            )
            self._state = replace(self._state, **fields)
        self._write_state()

    def _reach(self, layout: DockerLayout, node: Slot) -> tuple[str, int]:
        """Where HAProxy (and the lag agent, to judge what traffic gets) reaches ``node``:
        its fault proxy route on the network's gateway, or the container itself."""
        if node.name in self._proxy_ports:
            return layout.gateway, self._proxy_ports[node.name]
        return node.address, NODE_PORT

    def _render_haproxy(self, layout: DockerLayout, template: Path, config_dir: Path) -> str:
        """The local stack's template, with the containers' addresses as servers: the
        config, written and checked."""
        servers = [
            haproxy.ServerEntry(
                s.name,
                *self._reach(layout, s),
                backup=s.role == "backup",
                agent_port=self._agent_ports.get(s.name),
                # HAProxy, in its container, reaches the host's agent on the network's gateway.
                agent_host=layout.gateway if self._agent_ports else None,
            )
            for s in layout.nodes
        ]
        source = next((s for s in layout.slots if s.role == "source"), None)
        config = haproxy.render_config(
            template=template,
            frontend_host="0.0.0.0",
            frontend_port=FRONTEND_PORT,
            stats_port=STATS_PORT,
            stats_socket=Path(IN_CONTAINER_RUN) / "admin.sock",
            servers=servers,
            check=self.adapter.health_check,
            health=self.spec.health_check,
            chain_source=(
                haproxy.ServerEntry(source.name, source.address, NODE_PORT, backup=False)
                if source
                else None
            ),
            metrics_port=METRICS_PORT if self._metrics_port is not None else None,
        )
        path = config_dir / "haproxy.cfg"
        path.write_text(config)
        haproxy.validate_config(path)
        haproxy.require_every_server(config, servers, template)
        return config

    def _run(
        self,
        slot: Slot,
        image: str,
        command: list[str],
        *,
        binds: dict[str, dict[str, str]],
        publish: dict[int, int],
        limits: dict[str, Any] | None = None,
    ) -> dict[int, int]:
        """Create and start one container at its address, with ``limits`` (memory, CPUs:
        `host_config_limits`); returns {container port: host port} of what it publishes
        on 127.0.0.1. Host ports are chosen here, not by Docker: Docker gives a restarted
        container new random ones, and clients would lose it."""
        import docker.errors

        assert self._layout is not None
        api = self._client.api
        host_config = api.create_host_config(
            binds=binds,
            port_bindings={port: (LOOPBACK, host) for port, host in publish.items()},
            restart_policy={"Name": "always" if self.spec.restart.enabled else "no"},
            init=True,
            network_mode=self._layout.network,
            **(limits or {}),
        )
        networking = api.create_networking_config(
            {self._layout.network: api.create_endpoint_config(ipv4_address=slot.address)}
        )
        created = api.create_container(
            image, command=command, name=container_name(self.run_id, slot.name),
            labels=self._labels(slot.name), host_config=host_config,
            networking_config=networking, ports=list(publish), detach=True,
        )  # fmt: skip
        self._containers[slot.name] = created["Id"]
        try:
            api.start(created["Id"])
        except docker.errors.APIError as exc:
            words = str(exc.explanation or exc)
            if "already allocated" in words or "address already in use" in words:
                raise ConfigError(
                    "frontend_port",
                    self.spec.frontend_port,
                    f"the port is already in use ({words}); choose another or omit it",
                ) from exc
            raise StackError(f"cannot start container {slot.name}: {words}") from exc
        info = api.inspect_container(created["Id"])
        if limits:  # as Docker has them: what `stack status` shows
            memory, nano_cpus = info["HostConfig"]["Memory"], info["HostConfig"]["NanoCpus"]
            self._limits[slot.name] = {
                "memory_limit_mb": memory // (1 << 20) if memory else None,
                "cpus": nano_cpus / 1e9 if nano_cpus else None,
            }
        ports = info["NetworkSettings"]["Ports"]
        return {port: int(ports[f"{port}/tcp"][0]["HostPort"]) for port in publish}

    def _launch_replicator(self, deadline: float) -> None:
        """The host's replicator over the nodes' published ports, as on the local stack."""
        assert self._state is not None
        state = self._state
        assert state.chain_source_url is not None and state.chain_log is not None
        for node in state.nodes:
            check_genesis(state.chain_source_url, node.url)
        delay = parse_delay(self.spec.propagation_delay or "0", "propagation_delay")
        lag = dict(self.spec.node_lag_blocks)
        config = ReplicatorConfig(
            source_url=state.chain_source_url,
            nodes=tuple(
                FollowerSpec(
                    n.name, n.url, NodeSettings(delay=delay, lag_blocks=lag.get(n.name, 0))
                )
                for n in state.nodes
            ),
            control_host=LOOPBACK,
            control_port=state.component(REPLICATOR).port,
            log_path=Path(state.chain_log),
        )
        self._host_processes().add(REPLICATOR, replicator_command(config), self.spec.restart)
        assert state.replicator_url is not None
        client = ReplicatorClient(state.replicator_url)
        supervisor = self._host_processes()
        while time.monotonic() < deadline:
            if supervisor.exited(REPLICATOR):
                break
            if client.healthy():
                try:
                    client.wait_synced(max(0.1, deadline - time.monotonic()))
                    return
                except ReplicatorError as exc:
                    raise StackError(
                        f"the nodes did not catch up with the chain source: {exc}"
                    ) from exc
            time.sleep(0.02)
        raise StackError(
            f"the chain replicator did not come up; its log says: {self._host_log(REPLICATOR)}"
        )

    def _host_processes(self) -> Supervisor:
        """The supervisor of the stack's host processes (replicator, lag agent)."""
        if self._supervisor is None:
            self._supervisor = Supervisor(self.dir / "logs", on_event=self._on_host_event)
        return self._supervisor

    def _launch_monitor(self) -> None:
        """Prometheus and the rest on the host, once the stack is ready (as on the local
        stack: no start-up is alerted on); ``monitor_start_s`` says how long they took."""
        assert self._state is not None and self._monitor is not None
        took_s = monitor.launch(
            self._monitor, self.dir / "monitor", self._host_processes(), self.spec.restart,
            time.monotonic() + self.spec.ready_timeout_s, self._host_log,
        )  # fmt: skip
        self._state = replace(self._state, monitor_start_s=took_s)
        self._write_state()

    def _launch_proxy(self, layout: DockerLayout, deadline: float) -> None:
        """The fault proxy on the host: a route per node listening on the network's gateway
        (where HAProxy's container reaches it) to the node's container; the control API on
        loopback, as on the local stack."""
        routes = [(self._proxy_ports[s.name], s.address, NODE_PORT) for s in layout.nodes]
        argv = proxy_command(
            routes, control_port=self._proxy_control_port, listen_host=layout.gateway
        )
        supervisor = self._host_processes()
        supervisor.add(PROXY, argv, self.spec.restart)
        if not wait_healthy(self._proxy_control_port, deadline, lambda: supervisor.exited(PROXY)):
            raise StackError(f"the fault proxy did not come up: {self._host_log(PROXY)}")

    def _launch_agent(self, layout: DockerLayout, deadline: float) -> None:
        """The lag agent on the host, answering HAProxy's agent checks on the network's
        gateway address and polling each node where HAProxy reaches it."""
        nodes = [
            agent.AgentNode(
                s.name, "http://{}:{}/".format(*self._reach(layout, s)),
                self._agent_ports[s.name], listen_host=layout.gateway,
            )
            for s in layout.nodes
        ]  # fmt: skip
        policy = agent.AgentPolicy(max_lag_blocks=self.spec.agent_max_lag_blocks)
        supervisor = self._host_processes()
        supervisor.add(
            AGENT, agent.command(nodes, self._agent_status_port, policy), self.spec.restart
        )
        # It listens only once it has polled every node, so one line read means ready.
        while time.monotonic() < deadline:
            if supervisor.exited(AGENT):
                break
            try:
                address = (LOOPBACK, self._agent_status_port)
                with socket.create_connection(address, timeout=0.5) as sock:
                    if sock.makefile("rb").readline().endswith(b"\n"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise StackError(f"the lag agent did not come up; its log says: {self._host_log(AGENT)}")

    def _wait_answering(self, c: ComponentState, deadline: float) -> None:
        with RpcClient(c.url, timeout_s=1.0) as client:
            while time.monotonic() < deadline:
                try:
                    client.block_number()
                    return
                except RpcFailure:
                    if self._exited(c.name):
                        break
                    time.sleep(0.01)
        raise StackError(
            f"{c.name} ({c.kind} container) did not answer JSON-RPC on {c.url}; its log "
            f"says: {self._container_log(c.name)}"
        )

    def _wait_ready(self) -> None:
        """Every server UP in HAProxy's own view and one call answered through the frontend."""
        assert self._state is not None
        deadline = time.monotonic() + self.spec.ready_timeout_s
        api = self.runtime_api()
        last = "HAProxy's runtime API did not answer"
        while time.monotonic() < deadline:
            if self._exited(BALANCER):
                break
            try:
                servers = api.servers()
                down = [s.describe() for s in servers if not s.serving]
                if servers and not down:
                    with RpcClient(self._state.frontend_url, timeout_s=1.0) as client:
                        client.block_number()
                    return
                last = "servers not UP: " + ", ".join(down or ["none listed"])
            except (OSError, RpcFailure) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.02)
        raise StackError(
            f"docker stack {self.spec.name!r} not ready after {self.spec.ready_timeout_s:g}s: "
            f"{last}; HAProxy's log: {self._container_log(BALANCER)}"
        )

    def _exited(self, name: str) -> bool:
        with self._lock:
            return any(e.component == name and e.kind == "exited" for e in self._events)

    def _container_log(self, name: str, lines: int = 5) -> str:
        cid = self._containers.get(name)
        if cid is None or self._client is None:
            return "(no container)"
        try:
            text = self._client.api.logs(cid, tail=lines).decode(errors="replace").strip()
        except Exception as exc:
            return f"(no log: {exc})"
        return " | ".join(text.splitlines()) or "(empty log)"

    def _host_log(self, name: str, lines: int = 5) -> str:
        path = self.dir / "logs" / f"{name}.log"
        try:
            return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- events ----------------------------------------------------------------------

    def _attach_netns(self, component: str) -> None:
        """Name the namespace of ``component``'s container (again, after a restart)."""
        cid = self._containers.get(component)
        if cid is None or self._client is None or component not in self._netns:
            return
        try:
            pid = int(self._client.api.inspect_container(cid)["State"]["Pid"] or 0)
        except Exception as exc:
            log.warning("cannot find the namespace of %s: %s", component, exc)
            return
        if pid:
            netns.attach(self._netns[component], pid)

    def _on_event(self, event: ProcessEvent) -> None:
        if event.kind == "started" and self._phase == "ready" and netns.can_name_namespaces():
            self._attach_netns(event.component)
        with self._lock:
            self._events.append(event)
            # A start or death changes the workload's pid: looked up again on next use.
            self._pids.pop(event.component, None)
            if event.kind == "exited":
                self._pids[event.component] = None
            elif event.kind == "started" and self._phase == "ready":
                self._restarts[event.component] = self._restarts.get(event.component, 0) + 1
        self._append_event(event)
        if self._phase == "ready":
            self._write_state()

    def _on_host_event(self, event: ProcessEvent) -> None:
        self._append_event(event)
        if event.kind == "started" and event.pid is not None and self._phase == "ready":
            self._write_state()

    def _on_sync(self, event: ProcessEvent) -> None:
        with self._lock:
            self._events.append(event)
        self._append_event(event)

    def _append_event(self, event: ProcessEvent) -> None:
        if not self.dir.exists():
            return
        with open(self.dir / "events.jsonl", "a") as out:
            out.write(json.dumps(asdict(event)) + "\n")

    def _write_state(self) -> None:
        self._write_state_file(self.state() if self._state is not None else None)

    def _write_state_file(self, stack: StackState | None) -> None:
        if not self.dir.exists():
            return
        processes = {}
        if self._supervisor is not None:
            for name, pid in self._supervisor.pids().items():
                if pid is not None:
                    with contextlib.suppress(psutil.Error):
                        processes[name] = ProcessIdentity.of(pid)
        StateFile(self._owner, processes, stack, self._phase, self.detached).write(self.dir)
