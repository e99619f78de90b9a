"""The local stack: real nodes and a real HAProxy as processes on loopback.

The embedded default backend. ``LocalStack`` is a context manager: entering it stands the
stack up and returns when HAProxy sees every server UP and a JSON-RPC call through the
frontend has been answered; leaving it stops every process and removes its state, also
on an exception or Ctrl-C. A harness killed outright leaves a state file behind, which
`reap_stale_stacks` (run at every start and by ``harness cleanup``) uses to remove it all.

Between HAProxy and each node there may be a proxy: the harness's fault proxy
(``fault_proxy``), a proxy on a Toxiproxy server (``toxiproxy``), or both, in the order
HAProxy -> Toxiproxy -> fault proxy -> node.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

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
from harness.errors import BackendUnsupported, ConfigError, StackError
from harness.jsonrpc import RpcClient, RpcFailure
from harness.monitor import processes as monitor
from harness.proxy.process import proxy_command, wait_healthy
from harness.proxy.toxiproxy import ToxiproxyDriver, ToxiproxyError
from harness.stack import agent, haproxy
from harness.stack.isolation import (
    NodeNetwork,
    delete_netns,
    mount_tmpfs,
    netns_of_stack,
    require_root,
    unmount_all_under,
)
from harness.stack.model import (
    NODE_ROLES,
    ComponentState,
    ProcessEvent,
    Role,
    StackSpec,
    StackState,
    split_toxiproxy_url,
)
from harness.stack.nodes import NodeAdapter, adapter
from harness.stack.ports import LOOPBACK, free_port, require_free_port
from harness.stack.software import local_software
from harness.stack.state import (
    HOLD_DIR,
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

BALANCER = "haproxy"
PROXY = "fault-proxy"
AGENT = "lag-agent"
SOURCE = "chain-source"  # one chain: the hidden anvil that mines (harness.chain)
REPLICATOR = "replicator"  # one chain: replays the source's blocks into every node
CHAIN_LOG = "chain.jsonl"


def node_name(index: int) -> str:
    return f"node-{index}"


def balancer_address(node: ComponentState) -> tuple[str, int]:
    """Where HAProxy reaches ``node``: its Toxiproxy proxy, its fault proxy route, or itself."""
    if node.toxiproxy_port or node.proxy_port:
        return LOOPBACK, node.toxiproxy_port or node.proxy_port or 0
    return node.host, node.port


def toxiproxy_name(stack: str, node: str) -> str:
    """The name of a node's proxy on the Toxiproxy server: ``hx-<stack>-<node>``."""
    return f"hx-{stack}-{node}"


def layout(
    spec: StackSpec, frontend_port: int, port: Callable[[], int], data_dir: Callable[[str], str]
) -> tuple[list[ComponentState], str | None]:
    """The components a stack of ``spec`` has, in order, and its fault proxy's control URL:
    nodes (in their namespaces with isolation=netns), the fault proxy, Toxiproxy's proxies,
    the lag agent (policy=hardened), HAProxy. Pure: ``port`` picks each port, ``data_dir``
    names each node's directory."""
    components: list[ComponentState] = []
    if spec.chain == "one":
        components.append(
            ComponentState(SOURCE, "anvil", "source", None, LOOPBACK, port(), data_dir(SOURCE))
        )
    for index in range(spec.nodes):
        name = node_name(index)
        role: Role = "primary" if index == 0 else "backup"
        node = ComponentState(
            name, spec.node_kind, role, None, LOOPBACK, port(), data_dir(name),
            data_dir_size_mb=spec.data_dir_size_mb,
        )  # fmt: skip
        if spec.isolation == "netns":
            network = NodeNetwork.plan(spec.name, index)
            node = replace(
                node,
                host=network.node_address,
                netns=network.netns,
                ifname=network.node_ifname,
                host_ifname=network.host_ifname,
            )
        components.append(node)
    proxy_control_url = None
    if spec.fault_proxy:
        # HAProxy -> fault proxy (one listen port per node) -> node.
        components = [replace(c, proxy_port=port()) for c in components]
        control_port = port()
        proxy_control_url = f"http://{LOOPBACK}:{control_port}/"
        components.append(ComponentState(PROXY, PROXY, "proxy", None, LOOPBACK, control_port))
    if spec.toxiproxy:
        # HAProxy -> Toxiproxy (a proxy per node, on the server) -> [fault proxy ->] node.
        components = [
            replace(c, toxiproxy_proxy=toxiproxy_name(spec.name, c.name), toxiproxy_port=port())
            if c.role in NODE_ROLES
            else c
            for c in components
        ]
    if spec.policy == "hardened":
        # The lag agent: a port per node for HAProxy's agent-check, and one of its own.
        components = [
            replace(c, agent_port=port()) if c.role in NODE_ROLES else c for c in components
        ]
        components.append(ComponentState(AGENT, AGENT, "agent", None, LOOPBACK, port()))
    if spec.chain == "one":
        components.append(
            ComponentState(REPLICATOR, REPLICATOR, "replicator", None, LOOPBACK, port())
        )
    components.append(
        ComponentState(BALANCER, "haproxy", "balancer", None, LOOPBACK, frontend_port)
    )
    if spec.prometheus:
        components += monitor.components(port)
    return components, proxy_control_url


def chain_fields(
    spec: StackSpec, components: list[ComponentState], stack_dir: str
) -> dict[str, Any]:
    """The `StackState` fields that say which chain the nodes follow."""
    if spec.chain != "one":
        return {"chain": spec.chain}
    named = {c.name: c for c in components}
    return {
        "chain": "one",
        "chain_source_url": named[SOURCE].url,
        "replicator_url": f"http://{LOOPBACK}:{named[REPLICATOR].port}/",
        "chain_log": str(Path(stack_dir) / CHAIN_LOG) if stack_dir else None,
    }


def check_local_spec(spec: StackSpec) -> None:
    """`BackendUnsupported` for what only a container has: a memory or CPU limit of its own."""
    refused = {
        "container_memory_mb": (spec.container_memory_mb, "limits a node's container, and the "
                                "local backend runs processes: use --backend docker, or a "
                                "memory fault with scope=cgroup to squeeze a local node"),
        "container_cpus": (spec.container_cpus, "limits a node's container, and the local "
                           "backend runs processes: use --backend docker, or a cpu fault with "
                           "pin_to_node=true to compete with a local node on its CPUs"),
    }  # fmt: skip
    for field, (value, fix) in refused.items():
        if value is not None:
            raise BackendUnsupported(field, value, fix)


class PlannedStack:
    """A stack of ``spec`` as it will be, before anything starts (no process, ports 0): what
    a fault is checked against so that bad input fails before a stack is up."""

    def __init__(self, spec: StackSpec) -> None:
        check_local_spec(spec)
        self.spec = spec
        components, control_url = layout(
            spec, spec.frontend_port or 0, lambda: 0, lambda node: f"<{node} data>"
        )
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
            proxy_control_url=control_url,
            toxiproxy_url=spec.toxiproxy,
            haproxy_policy=spec.policy,
            haproxy_template=str(haproxy.template_for(spec.policy, spec.haproxy_template)),
            **chain_fields(spec, components, ""),
        )

    def state(self) -> StackState:
        return self._state


def require_toxiproxy(url: str) -> None:
    """`ConfigError` (before anything starts) unless a Toxiproxy server answers at ``url``."""
    host, port = split_toxiproxy_url(url)
    if not ToxiproxyDriver(url).reachable(timeout_s=2.0):
        raise ConfigError(
            "toxiproxy",
            url,
            "no Toxiproxy server answers here: start one "
            f"(`toxiproxy-server -host {host} -port {port}`) or drop --toxiproxy",
        )


class LocalStack:
    """N nodes behind HAProxy on loopback, supervised, with its state on disk."""

    backend = "local"

    def __init__(self, spec: StackSpec, *, detached: bool = False) -> None:
        self.spec = spec
        self.detached = detached
        self.adapter: NodeAdapter = adapter(spec.node_kind)
        self.dir = stacks_dir() / spec.name
        self.reaped: list[str] = []
        self.ready_s: float | None = None
        self._supervisor: Supervisor | None = None
        self._state: StackState | None = None
        self._identities: dict[str, ProcessIdentity] = {}
        self._owner = ProcessIdentity.current()
        self._write_lock = threading.Lock()
        self._phase = "starting"
        self._toxiproxy_made: list[str] = []  # proxies this object created: only these go
        # anvil nodes have no peers: this loop syncs one that fell behind (see sync.py).
        self._sync: PeerSync | None = None
        self._synced: list[ProcessEvent] = []
        self._monitor: monitor.MonitorLayout | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StackState:
        """Stand the stack up; returns once it is ready. Leaves nothing behind on failure."""
        started_ns = time.monotonic_ns()
        check_local_spec(self.spec)
        self.adapter.binary()  # a missing binary fails before anything is created
        haproxy.haproxy_binary()
        if self.spec.isolation == "netns":
            require_root("isolation", "netns")
        if self.spec.data_dir_size_mb is not None:
            require_root("data_dir_size_mb", self.spec.data_dir_size_mb)
        if self.spec.toxiproxy is not None:
            require_toxiproxy(self.spec.toxiproxy)
        if self.spec.prometheus:
            monitor.require_binaries()
        self.reaped = reap_stale_stacks()
        for line in self.reaped:
            log.warning("removed leftover of an earlier run: %s", line)
        if (self.dir / STATE_FILE).exists():
            owner = read_state(self.dir).owner
            raise StackError(
                f"stack {self.spec.name!r} is already running (owner pid {owner.pid}); "
                "stop it with `harness stack down` or choose another name with --name"
            )
        try:
            self._layout()
            self._launch()
            self._wait_ready()
            if self.spec.prometheus:
                self._launch_monitor()
        except BaseException:
            self.stop()
            raise
        self.ready_s = (time.monotonic_ns() - started_ns) / 1e9
        self._phase = "ready"
        if self.adapter.kind == "anvil" and self.spec.chain == "independent":
            # One chain: the replicator is the nodes' sync; no peer sync of their own.
            self._sync = PeerSync(
                lambda: self.state().nodes, self.spec.block_time_s, self._on_sync
            ).__enter__()
        self._write_state()
        log.info("stack %s ready in %.3fs at %s", self.spec.name, self.ready_s, self.frontend_url)
        return self.state()

    def stop(self) -> None:
        """Stop every process (HAProxy first, so clients see a clean refusal) and remove state."""
        self._phase = "stopping"
        if self._sync is not None:
            self._sync.__exit__(None, None, None)
            self._sync = None
        if self._supervisor is not None:
            self._supervisor.stop(timeout_s=3.0, first=[BALANCER])
            self._supervisor = None
        self._destroy_toxiproxy_proxies()
        if self.dir.exists() and self._owns_dir():
            unmount_all_under(self.dir)
            for netns in netns_of_stack(self.spec.name):
                delete_netns(netns)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _owns_dir(self) -> bool:
        try:
            return read_state(self.dir).owner == self._owner
        except StackError:
            return True

    # -- state -----------------------------------------------------------------------

    def state(self) -> StackState:
        """The current snapshot; pids reflect restarts by the supervisor."""
        if self._state is None:
            raise StackError(f"stack {self.spec.name!r} is not started")
        if self._supervisor is None:
            return self._state
        pids = self._supervisor.pids()
        restarts = self._supervisor.restarts()
        components = tuple(
            replace(c, pid=pids.get(c.name), restarts=restarts.get(c.name, 0))
            for c in self._state.components
        )
        return replace(self._state, components=components)

    @property
    def frontend_url(self) -> str:
        return self.state().frontend_url

    @property
    def events(self) -> list[ProcessEvent]:
        """Every start, death and restart of the stack's processes, and every peer sync
        of a node that fell behind, in order."""
        own = list(self._supervisor.events) if self._supervisor else []
        return sorted([*own, *self._synced], key=lambda e: e.t_ns)

    def runtime_api(self) -> haproxy.RuntimeApi:
        return haproxy.RuntimeApi(self.state().stats_socket)

    # -- start-up --------------------------------------------------------------------

    def _layout(self) -> None:
        spec = self.spec
        frontend_port = (
            require_free_port(spec.frontend_port, "frontend_port")
            if spec.frontend_port
            else free_port()
        )
        stats_port = free_port()
        metrics_port = free_port() if spec.prometheus else None
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        # The state file exists before any process does, so a crash from here on is reapable.
        self._identities = {}
        self._write_state_file(None)
        components, proxy_control_url = layout(
            spec, frontend_port, free_port, lambda node: str(self.dir / "nodes" / node / "data")
        )
        self._networks: dict[str, NodeNetwork] = {}
        for c in components:
            if c.role == "source":
                assert c.data_dir is not None
                Path(c.data_dir).mkdir(parents=True, exist_ok=True)
        for index, node in enumerate(c for c in components if c.role in NODE_ROLES):
            assert node.data_dir is not None
            Path(node.data_dir).mkdir(parents=True, exist_ok=True)
            if spec.data_dir_size_mb is not None:
                mount_tmpfs(Path(node.data_dir), spec.data_dir_size_mb)
            if spec.isolation == "netns":
                network = NodeNetwork.plan(spec.name, index)
                network.create()
                self._networks[node.name] = network
        template = haproxy.template_for(spec.policy, spec.haproxy_template)
        self._state = StackState(
            name=spec.name,
            backend=self.backend,
            state_dir=str(self.dir),
            owner_pid=self._owner.pid,
            frontend_url=f"http://{LOOPBACK}:{frontend_port}/",
            stats_url=f"http://{LOOPBACK}:{stats_port}/stats",
            stats_socket=str(self.dir / "haproxy.sock"),
            health_check=spec.health_check,
            block_time_s=spec.block_time_s,
            components=tuple(components),
            proxy_control_url=proxy_control_url,
            toxiproxy_url=spec.toxiproxy,
            haproxy_policy=spec.policy,
            haproxy_template=str(template),
            **chain_fields(spec, components, str(self.dir)),
            software=local_software(
                spec,
                self.adapter.binary(),
                haproxy.haproxy_binary(),
                ToxiproxyDriver(spec.toxiproxy).version() if spec.toxiproxy else None,
            ),
        )
        servers = [
            haproxy.ServerEntry(
                c.name,
                *balancer_address(c),
                backup=c.role == "backup",
                agent_port=c.agent_port,
            )
            for c in components
            if c.role in NODE_ROLES
        ]
        config = haproxy.render_config(
            template=template,
            frontend_host=LOOPBACK,
            frontend_port=frontend_port,
            stats_port=stats_port,
            stats_socket=self.dir / "haproxy.sock",
            servers=servers,
            check=self.adapter.health_check,
            health=spec.health_check,
            chain_source=next(
                (
                    haproxy.ServerEntry(c.name, c.host, c.port, backup=False)
                    for c in components
                    if c.role == "source"
                ),
                None,
            ),
            metrics_port=metrics_port,
        )
        config_path = self.dir / "haproxy.cfg"
        config_path.write_text(config)
        haproxy.validate_config(config_path)
        haproxy.require_every_server(config, servers, template)
        if spec.prometheus:
            self._layout_monitor(config, metrics_port)

    def _layout_monitor(self, haproxy_config: str, metrics_port: int | None) -> None:
        """Render and check (promtool) the monitoring's configs; name its URLs in the state."""
        assert self._state is not None
        metrics = None
        if metrics_port is not None and haproxy.serves_metrics(haproxy_config):
            metrics = f"{LOOPBACK}:{metrics_port}"
        self._monitor, fields = monitor.plan_monitor(
            self._state, metrics, self.spec.alert_rules, self.dir / "monitor"
        )
        self._state = replace(self._state, **fields)

    def _launch_monitor(self) -> None:
        """Prometheus and the rest, once the stack is ready (so no start-up is alerted on);
        how long they took to answer is the stack's ``monitor_start_s``."""
        assert self._state is not None and self._supervisor is not None
        assert self._monitor is not None
        took_s = monitor.launch(
            self._monitor, self.dir / "monitor", self._supervisor, self.spec.restart,
            time.monotonic() + self.spec.ready_timeout_s, self._log_tail,
        )  # fmt: skip
        self._state = replace(self._state, monitor_start_s=took_s)
        log.info("monitoring of %s ready in %.3fs", self.spec.name, took_s)

    def _launch(self) -> None:
        assert self._state is not None
        self._supervisor = Supervisor(
            self.dir / "logs", on_event=self._on_event, hold_dir=self.dir / HOLD_DIR
        )
        deadline = time.monotonic() + self.spec.ready_timeout_s
        one_chain = self._state.chain == "one"
        genesis = genesis_timestamp()  # one chain: the same for the source and every node
        if one_chain:
            source = self._state.component(SOURCE)
            assert source.data_dir is not None
            argv = source_args(
                self.adapter.binary(),
                port=source.port,
                block_time_s=self.spec.block_time_s,
                genesis_timestamp=genesis,
                state_path=Path(source.data_dir) / "state.json",
                extra_args=self.spec.node_args,
            )
            self._supervisor.add(SOURCE, argv, self.spec.restart)
            self._wait_answering(source, deadline)
        for c in self._state.nodes:
            assert c.data_dir is not None
            if one_chain:
                argv = follower_args(
                    self.adapter.binary(),
                    port=c.port,
                    host=c.host,
                    genesis_timestamp=genesis,
                    state_path=Path(c.data_dir) / "state.json",
                    extra_args=self.spec.node_args,
                )
            else:
                argv = self.adapter.command(
                    port=c.port,
                    host=c.host,
                    data_dir=Path(c.data_dir),
                    block_time_s=self.spec.block_time_s,
                    extra_ports=tuple(free_port() for _ in range(self.adapter.extra_ports)),
                    extra_args=self.spec.node_args,
                )
            if c.name in self._networks:
                argv = self._networks[c.name].wrap(argv)
            self._supervisor.add(c.name, argv, self.spec.restart)
        for c in self._state.nodes:
            self._wait_answering(c, deadline)
        if one_chain:
            self._launch_replicator(deadline)
        if self._state.proxy_control_url:
            self._launch_proxy(deadline)
        if self._state.toxiproxy_url:
            self._create_toxiproxy_proxies(self._state.toxiproxy_url)
        if any(c.name == AGENT for c in self._state.components):
            self._launch_agent(deadline)
        self._supervisor.add(BALANCER, haproxy.command(self.dir / "haproxy.cfg"), self.spec.restart)

    def _launch_replicator(self, deadline: float) -> None:
        """The replicator, once the source and every node answer; ready when every node
        holds the source's head (a fresh stack: the genesis, or a block or two)."""
        assert self._state is not None and self._supervisor is not None
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
        self._supervisor.add(REPLICATOR, replicator_command(config), self.spec.restart)
        assert state.replicator_url is not None
        client = ReplicatorClient(state.replicator_url)
        supervisor = self._supervisor
        while time.monotonic() < deadline:
            if supervisor.exited(REPLICATOR):
                break
            if client.healthy():
                try:
                    client.wait_synced(max(0.1, deadline - time.monotonic()))
                    return
                except ReplicatorError as exc:
                    raise StackError(
                        f"the nodes did not catch up with the chain source: {exc}; the "
                        f"replicator's log says: {self._log_tail(REPLICATOR)}"
                    ) from exc
            time.sleep(0.02)
        raise StackError(
            f"the chain replicator did not come up; its log says: {self._log_tail(REPLICATOR)}"
        )

    def _launch_proxy(self, deadline: float) -> None:
        assert self._state is not None and self._supervisor is not None
        control = self._state.component(PROXY)
        routes = [(n.proxy_port or 0, n.host, n.port) for n in self._state.nodes]
        self._supervisor.add(
            PROXY, proxy_command(routes, control_port=control.port), self.spec.restart
        )
        supervisor = self._supervisor
        if wait_healthy(control.port, deadline, lambda: supervisor.exited(PROXY)):
            return
        raise StackError(f"the fault proxy did not come up: {self._log_tail(PROXY)}")

    def _launch_agent(self, deadline: float) -> None:
        """The lag agent, before HAProxy, which then finds it answering on every port."""
        assert self._state is not None and self._supervisor is not None
        # It polls each node where HAProxy reaches it, so it judges what the traffic gets.
        nodes = []
        for c in self._state.nodes:
            host, port = balancer_address(c)
            nodes.append(agent.AgentNode(c.name, f"http://{host}:{port}/", c.agent_port or 0))
        policy = agent.AgentPolicy(max_lag_blocks=self.spec.agent_max_lag_blocks)
        status_port = self._state.component(AGENT).port
        self._supervisor.add(AGENT, agent.command(nodes, status_port, policy), self.spec.restart)
        # It listens only once it has polled every node, so one line read means ready.
        supervisor = self._supervisor
        while time.monotonic() < deadline:
            if supervisor.exited(AGENT):
                break
            try:
                with socket.create_connection((LOOPBACK, status_port), timeout=0.5) as sock:
                    if sock.makefile("rb").readline().endswith(b"\n"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise StackError(f"the lag agent did not come up; its log says: {self._log_tail(AGENT)}")

    def _create_toxiproxy_proxies(self, url: str) -> None:
        """One Toxiproxy proxy per node, to the fault proxy's route for it or to the node.
        The state file names them first, so a harness killed here leaves them reapable."""
        assert self._state is not None
        self._write_state()
        driver = ToxiproxyDriver(url)
        for c in self._state.nodes:
            assert c.toxiproxy_proxy is not None
            upstream = f"{LOOPBACK}:{c.proxy_port}" if c.proxy_port else f"{c.host}:{c.port}"
            try:
                driver.create_proxy(c.toxiproxy_proxy, f"{LOOPBACK}:{c.toxiproxy_port}", upstream)
            except ToxiproxyError as exc:
                raise StackError(f"cannot put {c.name} behind Toxiproxy: {exc}") from exc
            self._toxiproxy_made.append(c.toxiproxy_proxy)

    def _destroy_toxiproxy_proxies(self) -> None:
        """Delete the Toxiproxy proxies this stack created (with their toxics)."""
        if not self._toxiproxy_made or self.spec.toxiproxy is None:
            return
        driver = ToxiproxyDriver(self.spec.toxiproxy)
        while self._toxiproxy_made:
            name = self._toxiproxy_made.pop()
            try:
                driver.destroy_proxy(name)
            except ToxiproxyError as exc:  # the stack still goes; the proxy is reported
                log.warning("could not remove Toxiproxy proxy %s: %s", name, exc)

    def _wait_answering(self, component: ComponentState, deadline: float) -> None:
        assert self._supervisor is not None
        supervisor = self._supervisor
        with RpcClient(component.url, timeout_s=1.0) as client:
            while time.monotonic() < deadline:
                died = [
                    e
                    for e in supervisor.events
                    if e.component == component.name and e.kind == "exited"
                ]
                if died:
                    raise StackError(
                        f"{component.name} ({component.kind}) {died[0].detail} while starting; "
                        f"its log says: {self._log_tail(component.name)}"
                    )
                try:
                    client.block_number()
                    return
                except RpcFailure:
                    time.sleep(0.01)
        raise StackError(
            f"{component.name} ({component.kind}) did not answer JSON-RPC on {component.url} "
            f"within {self.spec.ready_timeout_s:g}s; its log says: {self._log_tail(component.name)}"
        )

    def _wait_ready(self) -> None:
        """Every server UP in HAProxy's own view and one call answered through the frontend."""
        assert self._state is not None
        deadline = time.monotonic() + self.spec.ready_timeout_s
        api = self.runtime_api()
        last = "HAProxy's runtime API did not answer"
        while time.monotonic() < deadline:
            if self._supervisor is not None and self._supervisor.exited(BALANCER):
                raise StackError(
                    f"stack {self.spec.name!r}: HAProxy exited while starting; "
                    f"its log says: {self._log_tail(BALANCER)}"
                )
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
            time.sleep(0.01)
        raise StackError(
            f"stack {self.spec.name!r} not ready after {self.spec.ready_timeout_s:g}s: {last}; "
            f"HAProxy log: {self._log_tail(BALANCER)}"
        )

    def _log_tail(self, name: str, lines: int = 5) -> str:
        path = self.dir / "logs" / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return " | ".join(tail) or "(empty log)"

    # -- supervision -------------------------------------------------------------------

    def _on_sync(self, event: ProcessEvent) -> None:
        self._synced.append(event)
        with self._write_lock, open(self.dir / "events.jsonl", "a") as out:
            out.write(json.dumps(asdict(event)) + "\n")

    def _on_event(self, event: ProcessEvent) -> None:
        with self._write_lock, open(self.dir / "events.jsonl", "a") as out:
            out.write(json.dumps(asdict(event)) + "\n")
        if event.kind == "started" and event.pid is not None:
            with contextlib.suppress(Exception):
                self._identities[event.component] = ProcessIdentity.of(event.pid)
            self._write_state()
        elif event.kind == "exited" and self._phase == "ready":
            # Another process reading the state file (a CLI fault, `stack status`) must
            # see the component down, not the pid of a process that is gone.
            self._write_state()

    def _write_state(self) -> None:
        with self._write_lock:
            self._write_state_file(self.state() if self._state is not None else None)

    def _write_state_file(self, stack: StackState | None) -> None:
        if not self.dir.exists():
            return
        StateFile(self._owner, dict(self._identities), stack, self._phase, self.detached).write(
            self.dir
        )
