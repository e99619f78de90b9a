"""The stack's options, defined once: the CLI (`harness stack up`, `harness run`) and the
pytest plugin each adapt this table, and `stack_spec_from_options` builds the `StackSpec`
from either, so a flag means the same thing, with the same default, in both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.stack.model import (
    AUTO_CHAIN,
    BACKEND_NAMES,
    CHAIN_NAMES,
    POLICY_NAMES,
    HealthCheck,
    RestartPolicy,
    StackSpec,
    auto_chain,
)
from harness.stack.nodes import ADAPTERS
from harness.units import parse_cpus, parse_size_mb

_DEFAULT = StackSpec()


@dataclass(frozen=True)
class StackOption:
    """One option: its flag on the command line, the value's type, default and help.

    ``pytest_flag`` is the flag in pytest where it differs (pytest's own options and
    other plugins' crowd the short names); ``cli_only`` ones have no pytest flag (a pytest
    session names its stacks itself)."""

    flag: str
    dest: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    multiple: bool = False
    pytest_flag: str | None = None
    cli_only: bool = False
    metavar: str | None = None

    @property
    def is_flag(self) -> bool:
        return self.kind is bool

    @property
    def pytest_name(self) -> str:
        return self.pytest_flag or self.flag

    @property
    def pytest_dest(self) -> str:
        """Where pytest keeps the value: prefixed, so no other plugin's option collides."""
        return f"harness_{self.dest}"


STACK_OPTIONS: tuple[StackOption, ...] = (
    StackOption("--name", "name", str, _DEFAULT.name, "Stack name.", cli_only=True),
    StackOption(
        "--backend",
        "backend",
        str,
        _DEFAULT.backend,
        "Where the stack runs: local (real processes on loopback) or docker (containers of "
        "images baked by `harness images bake`, on a network of their own).",
        choices=BACKEND_NAMES,
        pytest_flag="--stack-backend",
    ),
    StackOption("--nodes", "nodes", int, _DEFAULT.nodes, "Number of nodes."),
    StackOption(
        "--node",
        "node_kind",
        str,
        _DEFAULT.node_kind,
        "Node client.",
        choices=tuple(sorted(ADAPTERS)),
    ),
    StackOption("--block-time", "block_time", float, _DEFAULT.block_time_s, "Seconds per block."),
    StackOption(
        "--node-arg", "node_args", str, (), "Extra flag for every node (repeat).", multiple=True
    ),
    StackOption(
        "--haproxy-config",
        "haproxy_config",
        Path,
        None,
        "Your own HAProxy Jinja2 template (see fixtures/haproxy.cfg.j2).",
    ),
    StackOption(
        "--haproxy-policy",
        "policy",
        str,
        _DEFAULT.policy,
        "roadmap (the roadmap's haproxy.cfg) or hardened (lag-aware agent check, fast "
        "checks, retries and redispatch); --haproxy-config overrides both.",
        choices=POLICY_NAMES,
    ),
    StackOption(
        "--agent-max-lag-blocks",
        "agent_max_lag_blocks",
        int,
        _DEFAULT.agent_max_lag_blocks,
        "hardened policy: the lag agent takes a node out this many blocks behind the best.",
    ),
    StackOption(
        "--frontend-port", "frontend_port", int, None, "Frontend port (default: a free one)."
    ),
    StackOption(
        "--check-inter-ms",
        "check_inter_ms",
        int,
        _DEFAULT.health_check.inter_ms,
        "HAProxy's health check interval.",
    ),
    StackOption("--fall", "fall", int, _DEFAULT.health_check.fall, "Failed checks to mark DOWN."),
    StackOption("--rise", "rise", int, _DEFAULT.health_check.rise, "Passed checks to mark UP."),
    StackOption(
        "--restart-delay",
        "restart_delay",
        float,
        _DEFAULT.restart.delay_s,
        "Seconds before the supervisor restarts a dead node.",
    ),
    StackOption(
        "--restart-backoff",
        "restart_backoff",
        float,
        _DEFAULT.restart.backoff,
        "Factor the delay grows by on each quick death.",
    ),
    StackOption(
        "--isolation",
        "isolation",
        str,
        _DEFAULT.isolation,
        "netns: each node in a network namespace of its own (root; network faults).",
        choices=("loopback", "netns"),
    ),
    StackOption(
        "--data-dir-size-mb",
        "data_dir_size_mb",
        int,
        None,
        "Each node's data dir on a tmpfs of this size (root; disk fill faults); on docker "
        "a tmpfs volume of this size at /data.",
    ),
    StackOption(
        "--container-memory-mb",
        "container_memory_mb",
        str,
        None,
        "docker backend: each node's container limited to this much memory, no swap "
        "(512, 512m, 2g); memory faults squeeze the node within it.",
        metavar="MIB",
    ),
    StackOption(
        "--container-cpus",
        "container_cpus",
        str,
        None,
        "docker backend: each node's container limited to this many CPUs (0.5, 1.5); cpu "
        "faults compete with the node within it.",
        metavar="CPUS",
    ),
    StackOption(
        "--fault-proxy",
        "fault_proxy",
        bool,
        False,
        "Put the JSON-RPC fault proxy between HAProxy and every node.",
    ),
    StackOption(
        "--toxiproxy",
        "toxiproxy",
        str,
        None,
        "A Toxiproxy server's API (http://127.0.0.1:8474): a proxy there before every node; "
        "transport faults go through it.",
        metavar="URL",
    ),
    StackOption(
        "--chain",
        "chain",
        str,
        AUTO_CHAIN,
        "one: the served anvil nodes follow one hidden chain source through the "
        "replicator, as real nodes follow their network; independent: a chain per node; "
        "auto: one for anvil, the nodes' own network for other clients.",
        choices=(AUTO_CHAIN, *CHAIN_NAMES),
    ),
    StackOption(
        "--propagation-delay",
        "propagation_delay",
        str,
        "",
        "With --chain one: how late each block reaches each node: 50ms, 50-300ms, or "
        "FIXED,JITTER in ms (50,250: 50 to 300 ms).",
        metavar="MS",
    ),
    StackOption(
        "--node-lag",
        "node_lag",
        str,
        (),
        "With --chain one: hold a node this many blocks behind the source from the start, "
        "NODE=BLOCKS (repeat), e.g. node-1=3 for a lagging backup.",
        multiple=True,
        metavar="NODE=BLOCKS",
    ),
    StackOption(
        "--prometheus",
        "prometheus",
        bool,
        False,
        "Run Prometheus (alert rules: fixtures/alerts.yml), Alertmanager, the node and "
        "blackbox exporters and an alert webhook with the stack, at 1 s intervals.",
    ),
    StackOption(
        "--alert-rules",
        "alert_rules",
        str,
        (),
        "With --prometheus: a rule file to load instead of fixtures/alerts.yml (repeat for "
        "several, e.g. fixtures/alerts.yml and fixtures/alerts-roadmap.yml side by side).",
        multiple=True,
        metavar="FILE",
    ),
)


def parse_node_lag(items: tuple[str, ...] | list[str]) -> tuple[tuple[str, int], ...]:
    """``("node-1=3",)`` as ``(("node-1", 3),)``; `ConfigError` naming a malformed one."""
    parsed: list[tuple[str, int]] = []
    for item in items:
        name, sep, blocks = str(item).partition("=")
        if not sep or not name or not blocks.strip().isdigit():
            raise ConfigError("--node-lag", item, "write NODE=BLOCKS, e.g. node-1=3")
        parsed.append((name.strip(), int(blocks)))
    return tuple(parsed)


def _maybe(parse: Callable[[Any, str], Any], value: Any, flag: str) -> Any:
    return None if value is None else parse(value, flag)


def stack_spec_from_options(values: Mapping[str, Any], *, name: str | None = None) -> StackSpec:
    """The `StackSpec` the options describe (keyed by `StackOption.dest`); an option left
    out, or given as None, takes its default. ``name`` overrides ``values["name"]``."""
    v = {o.dest: o.default for o in STACK_OPTIONS}
    v.update({k: val for k, val in values.items() if k in v and val is not None})
    template = v["haproxy_config"]
    return StackSpec(
        name=name or v["name"],
        backend=v["backend"],
        nodes=v["nodes"],
        node_kind=v["node_kind"],
        block_time_s=v["block_time"],
        node_args=tuple(v["node_args"] or ()),
        haproxy_template=Path(template) if template else None,
        policy=v["policy"],
        agent_max_lag_blocks=v["agent_max_lag_blocks"],
        frontend_port=v["frontend_port"],
        health_check=HealthCheck(v["check_inter_ms"], v["fall"], v["rise"]),
        restart=RestartPolicy(delay_s=v["restart_delay"], backoff=v["restart_backoff"]),
        isolation=v["isolation"],
        data_dir_size_mb=v["data_dir_size_mb"],
        container_memory_mb=_maybe(
            parse_size_mb, v["container_memory_mb"], "--container-memory-mb"
        ),
        container_cpus=_maybe(parse_cpus, v["container_cpus"], "--container-cpus"),
        fault_proxy=bool(v["fault_proxy"]),
        toxiproxy=v["toxiproxy"],
        chain=v["chain"],
        propagation_delay=v["propagation_delay"],
        node_lag_blocks=parse_node_lag(v["node_lag"] or ()),
        prometheus=bool(v["prometheus"]),
        alert_rules=tuple(v["alert_rules"] or ()),
    )


# Where each option's value lives in a `StackSpec`: the way back from a spec to its flags.
_SPEC_VALUE: dict[str, Any] = {
    "name": lambda s: s.name,
    "backend": lambda s: s.backend,
    "nodes": lambda s: s.nodes,
    "node_kind": lambda s: s.node_kind,
    "block_time": lambda s: s.block_time_s,
    "node_args": lambda s: s.node_args,
    "haproxy_config": lambda s: s.haproxy_template,
    "policy": lambda s: s.policy,
    "agent_max_lag_blocks": lambda s: s.agent_max_lag_blocks,
    "frontend_port": lambda s: s.frontend_port,
    "check_inter_ms": lambda s: s.health_check.inter_ms,
    "fall": lambda s: s.health_check.fall,
    "rise": lambda s: s.health_check.rise,
    "restart_delay": lambda s: s.restart.delay_s,
    "restart_backoff": lambda s: s.restart.backoff,
    "isolation": lambda s: s.isolation,
    "data_dir_size_mb": lambda s: s.data_dir_size_mb,
    "container_memory_mb": lambda s: s.container_memory_mb,
    "container_cpus": lambda s: s.container_cpus,
    "fault_proxy": lambda s: s.fault_proxy,
    "toxiproxy": lambda s: s.toxiproxy,
    "chain": lambda s: AUTO_CHAIN if s.chain == auto_chain(s.node_kind) else s.chain,
    "propagation_delay": lambda s: s.propagation_delay,
    "node_lag": lambda s: tuple(f"{name}={blocks}" for name, blocks in s.node_lag_blocks),
    "prometheus": lambda s: s.prometheus,
    "alert_rules": lambda s: s.alert_rules,
}
assert set(_SPEC_VALUE) == {o.dest for o in STACK_OPTIONS}


def stack_flags(spec: StackSpec, *, with_name: bool = False) -> list[str]:
    """The command-line flags that describe ``spec`` (those that differ from the defaults):
    what a report prints so that a run can be repeated with ``harness run``."""
    flags: list[str] = []
    for o in STACK_OPTIONS:
        if o.dest == "name" and not with_name:
            continue
        value = _SPEC_VALUE[o.dest](spec)
        default = o.default
        if o.multiple:
            for item in value:
                flags += [o.flag, str(item)]
        elif o.is_flag:
            if value:
                flags.append(o.flag)
        elif value is not None and value != default:
            flags += [o.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return flags
