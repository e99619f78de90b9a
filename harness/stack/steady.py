"""Steady state: the conditions a stack must meet before a fault, and after recovery.

The roadmap's health-check framework, done right: every node answers, HAProxy sees every
server UP (after a passed check), every head advances, heads agree within a bound, and
the host has memory and disk to spare. One call, one frozen result that says what failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.errors import ConfigError, SteadyStateError
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.haproxy import RuntimeApi
from harness.stack.model import Stack, StackState


@dataclass(frozen=True)
class SteadyStateSpec:
    """Thresholds of the steady state."""

    max_head_lag_blocks: int = 5
    min_available_memory_pct: float = 10.0
    min_free_disk_pct: float = 5.0
    # How long heads may take to advance, in block times (at least one second).
    head_advance_blocks: float = 3.0
    # Servers a scenario keeps out of rotation on purpose (a lagging backup the lag agent
    # takes out): their DOWN is part of the steady state, not a break of it.
    out_of_rotation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_head_lag_blocks < 0:
            raise ConfigError("max_head_lag_blocks", self.max_head_lag_blocks, "must be >= 0")
        for name in ("min_available_memory_pct", "min_free_disk_pct"):
            value = getattr(self, name)
            if not 0 <= value < 100:
                raise ConfigError(name, value, "must be a percentage in [0, 100)")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SteadyState:
    """The result of one steady-state check."""

    checks: tuple[Check, ...]
    heads: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def summary(self) -> str:
        if self.ok:
            return f"steady state holds ({len(self.checks)} checks)"
        return "steady state broken: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failures)


def _heads(state: StackState) -> tuple[dict[str, int], dict[str, str]]:
    """Each node's head block, and the failure of each node that did not answer."""
    heads: dict[str, int] = {}
    errors: dict[str, str] = {}
    for node in state.nodes:
        try:
            with RpcClient(node.url, timeout_s=1.0) as client:
                heads[node.name] = client.block_number()
        except RpcFailure as exc:
            errors[node.name] = str(exc)
    return heads, errors


def check_steady_state(stack: Stack, spec: SteadyStateSpec | None = None) -> SteadyState:
    """Evaluate every steady-state condition once (takes about a block time)."""
    spec = spec or SteadyStateSpec()
    started = time.monotonic()
    state = stack.state()
    checks: list[Check] = []

    first, errors = _heads(state)
    for node in state.nodes:
        answered = node.name in first
        detail = f"head {first[node.name]}" if answered else errors[node.name]
        checks.append(Check(f"{node.name} answers", answered, detail))

    try:
        servers = RuntimeApi(state.stats_socket).servers()
        not_up = [
            f"{s.server} is {s.status} ({s.check_status})"
            for s in servers
            if not s.up and s.server not in spec.out_of_rotation
        ]
        missing = {n.name for n in state.nodes} - {s.server for s in servers}
        not_up += [f"{name} is not in HAProxy's backend" for name in sorted(missing)]
        detail = "; ".join(not_up) or "all UP"
        checks.append(Check("haproxy sees every server UP", not not_up, detail))
    except OSError as exc:
        checks.append(Check("haproxy sees every server UP", False, f"runtime API: {exc}"))

    heads = dict(first)
    if first:
        wait_s = max(1.0, spec.head_advance_blocks * state.block_time_s)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(min(0.1, state.block_time_s / 4))
            latest, _ = _heads(state)
            heads.update(latest)
            if all(heads[n] > h for n, h in first.items()):
                break
        stuck = [n for n, h in first.items() if heads[n] <= h]
        detail = f"no new block within {wait_s:.1f}s on: {', '.join(stuck)}"
        checks.append(Check("heads advance", not stuck, detail if stuck else "all advancing"))
        spread = max(heads.values()) - min(heads.values())
        lowest = min(heads, key=lambda n: heads[n])
        highest = max(heads, key=lambda n: heads[n])
        detail = (
            f"spread {spread} blocks (limit {spec.max_head_lag_blocks}): {lowest} at"
            f" {heads[lowest]}, {highest} at {heads[highest]}"
        )
        checks.append(Check("heads agree", spread <= spec.max_head_lag_blocks, detail))

    memory = psutil.virtual_memory()
    available_pct = 100.0 * memory.available / memory.total
    checks.append(
        Check(
            "host memory available",
            available_pct >= spec.min_available_memory_pct,
            f"{available_pct:.1f}% available (floor {spec.min_available_memory_pct:g}%)",
        )
    )
    disk = psutil.disk_usage(str(Path(state.state_dir).parent))
    free_pct = 100.0 - disk.percent
    checks.append(
        Check(
            "host disk free",
            free_pct >= spec.min_free_disk_pct,
            f"{free_pct:.1f}% free (floor {spec.min_free_disk_pct:g}%)",
        )
    )
    return SteadyState(tuple(checks), heads, time.monotonic() - started)


def wait_for_steady_state(
    stack: Stack, spec: SteadyStateSpec | None = None, timeout_s: float = 30.0
) -> SteadyState:
    """Check until the steady state holds; `SteadyStateError` with the last failures if not."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check_steady_state(stack, spec)
        if result.ok:
            return result
        if time.monotonic() > deadline:
            raise SteadyStateError(f"after {timeout_s:g}s: {result.summary()}")
        time.sleep(0.1)
