"""A game day's fault mix: which kinds, how often, on which targets, held how long.

`DEFAULT_CHOICES` gives every registered kind a sensible setting (a spec's ``[[mix]]`` entry
starts from its kind's, via `default_choice`); `usable_mix` keeps the choices a planned
stack can run and says why it left out the others, for the dry run to print;
`check_blast_radius` refuses targets that would take down more than a day may at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ConfigError
from harness.faults import FAULTS, FaultUnavailable, make_fault, parameters
from harness.faults.registry import fault_class
from harness.faults.targets import ROLE_WORDS, select, validate_selector
from harness.stack.model import NODE_ROLES, StackState

MAX_HOLD_S = 3600.0
#: How to fix a refused target, said by every refusal.
_NARROWER = (
    "target primary, backup, one, minority or node-N, or set allow_total_outage = true "
    "to accept a total outage"
)
_HAPROXY = "HAProxy carries every client's requests: a fault on it is a total outage; "
_EVERY_NODE = "every node at once, the last serving one too, is a total outage; "


@dataclass(frozen=True)
class FaultChoice:
    """One kind in the mix: drawn with probability ``weight`` / the mix's total weight, on
    one of ``targets`` (each a selector, equally likely), held for a time drawn uniformly
    in ``hold_s`` = (lo, hi) seconds, with ``params`` as the fault takes them. The default
    targets, the primary or one node drawn by the episode's seed, hit one node on a stack of
    any size (``backup`` is every backup: two of three nodes at once)."""

    kind: str
    weight: float = 1.0
    targets: tuple[str, ...] = ("primary", "one")
    hold_s: tuple[float, float] = (0.0, 0.0)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            cls = fault_class(self.kind)
        except ConfigError as exc:
            raise ConfigError("mix kind", self.kind, exc.fix) from None
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"mix {self.kind} weight", weight, "must be a number above 0")
        if not (math.isfinite(weight) and weight > 0):
            raise ConfigError(f"mix {self.kind} weight", weight, "must be finite and above 0")
        object.__setattr__(self, "weight", float(weight))
        targets = tuple(self.targets)
        if not targets or not all(isinstance(t, str) for t in targets):
            raise ConfigError(
                f"mix {self.kind} targets", self.targets, "give one or more selectors"
            )
        for target in targets:
            try:
                validate_selector(target)
            except ConfigError as exc:
                raise ConfigError(f"mix {self.kind} target", target, exc.fix) from None
        object.__setattr__(self, "targets", targets)
        hold = tuple(self.hold_s)
        if (
            len(hold) != 2
            or not all(isinstance(h, int | float) and not isinstance(h, bool) for h in hold)
            or not all(math.isfinite(h) for h in hold)
            or not 0 <= hold[0] <= hold[1] <= MAX_HOLD_S
        ):
            raise ConfigError(
                f"mix {self.kind} hold",
                self.hold_s,
                f"give (lo, hi) seconds with 0 <= lo <= hi <= {MAX_HOLD_S:g}",
            )
        object.__setattr__(self, "hold_s", (float(hold[0]), float(hold[1])))
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"mix {self.kind} params", self.params, "give a table of parameters")
        known = set(parameters(self.kind)) | set(getattr(cls, "param_aliases", {}))
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ConfigError(
                f"mix {self.kind} parameter",
                unknown[0],
                f"unknown; {self.kind} takes: {', '.join(sorted(known)) or 'none'}",
            )
        # Sorted, so a schedule's document and a replay's flags never depend on the order
        # a file happened to list them in.
        object.__setattr__(self, "params", dict(sorted(self.params.items())))


def _choice(kind: str, hold_s: tuple[float, float] = (0.0, 0.0), **params: Any) -> FaultChoice:
    return FaultChoice(kind, hold_s=hold_s, params=params)


_NETWORK_HOLD = (5.0, 15.0)
_RESOURCE_HOLD = (10.0, 30.0)
#: Every registered kind with settings that show its effect on a 2-node anvil stack without
#: taking it past recovery: process faults held briefly (a kill holds nothing: the
#: supervisor restarts the node), links and the JSON-RPC path degraded for 5-15 s, resources
#: pressed for 10-30 s, a fraction of requests hit where all of them would be an outage of
#: the node rather than a degradation. Every choice is weight 1 and targets the primary or
#: the backup; a spec's ``[[mix]]`` reweights or replaces them.
DEFAULT_CHOICES: tuple[FaultChoice, ...] = (
    _choice("bandwidth", _NETWORK_HOLD, rate_kbit=1000),
    _choice("corrupt", _NETWORK_HOLD, percent=1),
    _choice("cpu", _RESOURCE_HOLD, cores=1, load_pct=100),
    _choice("disk", _RESOURCE_HOLD, percent=100),
    _choice("drop_response", _NETWORK_HOLD, probability=0.1),
    _choice("duplicate", _NETWORK_HOLD, percent=1),
    _choice("kill"),
    _choice("lag", (5.0, 15.0), blocks=3),
    _choice("latency", _NETWORK_HOLD, delay_ms=200, jitter_ms=50),
    _choice("limit_data", _NETWORK_HOLD, probability=0.2, bytes=1024),
    _choice("loss", _NETWORK_HOLD, percent=5),
    _choice("malformed", _NETWORK_HOLD, probability=0.05),
    _choice("memory", _RESOURCE_HOLD, scope="host", mb=1024),
    _choice("null_result", _NETWORK_HOLD, probability=0.1),
    _choice("partition", (3.0, 10.0)),
    _choice("pause", (2.0, 10.0)),
    _choice("peer_partition", (5.0, 15.0)),
    _choice("propagation", _NETWORK_HOLD, delay="50-300ms"),
    _choice("proxy_bandwidth", _NETWORK_HOLD, rate_kb_s=100),
    _choice("proxy_latency", _NETWORK_HOLD, latency_ms=200, jitter_ms=50),
    _choice("proxy_timeout", (3.0, 10.0), timeout_ms=0),
    _choice("rate_limit", _NETWORK_HOLD, budget_per_s=50),
    _choice("reorder", _NETWORK_HOLD, percent=25, delay_ms=10),
    _choice("reorg", depth=2),
    _choice("reset_peer", _NETWORK_HOLD, probability=0.2),
    _choice("restart"),
    _choice("rpc_delay", _NETWORK_HOLD, delay_ms=200, jitter_ms=50),
    _choice(
        "rpc_error",
        _NETWORK_HOLD,
        methods="eth_call",
        probability=0.2,
        code=-32000,
        message="header not found",
    ),
    _choice("slicer", _NETWORK_HOLD, average_size=64, size_variation=32),
    _choice("slow_close", _NETWORK_HOLD, delay_ms=1000),
    _choice("stale_head", _NETWORK_HOLD, blocks=5),
    _choice("stall", (5.0, 15.0)),
    _choice("stop", (3.0, 10.0)),
    _choice("terminate"),
    _choice("wrong_id", _NETWORK_HOLD, probability=0.05),
)
_DEFAULT_BY_KIND = {c.kind: c for c in DEFAULT_CHOICES}


def default_choice(kind: str, **changes: Any) -> FaultChoice:
    """The default choice of ``kind`` with ``changes`` (weight, targets, hold_s, params)."""
    try:
        base = _DEFAULT_BY_KIND[kind]
    except KeyError:
        base = FaultChoice(kind)  # a registered kind without a default, or a bad kind's error
    return replace(base, **changes)


class _Planned:
    """A `Stack` that only answers `state()`: what faults are built against here."""

    def __init__(self, state: StackState) -> None:
        self._state = state

    def state(self) -> StackState:
        return self._state


def usable_mix(
    choices: Sequence[FaultChoice], planned_state: StackState
) -> tuple[tuple[FaultChoice, ...], list[tuple[str, str]]]:
    """The choices a stack in ``planned_state`` can run, in order, and ``(kind, reason)`` for
    each it cannot (this host lacks something, or the stack was started without what the
    fault needs): the dry run prints those. A target the stack does not have, a target the
    kind cannot hit, or a bad parameter is a mistake, not a reason: `ConfigError`."""
    stack = _Planned(planned_state)
    usable: list[FaultChoice] = []
    left_out: list[tuple[str, str]] = []
    for choice in choices:
        reason = None
        for target in choice.targets:
            _check_target(choice, target, planned_state)
            try:
                fault = make_fault(choice.kind, stack, target, 0, **choice.params)
            except ConfigError as exc:
                raise ConfigError(f"mix {choice.kind} {exc.field}", exc.value, exc.fix) from None
            max_s = getattr(fault, "max_s", None)
            if isinstance(max_s, int | float) and choice.hold_s[1] > max_s:
                raise ConfigError(
                    f"mix {choice.kind} hold",
                    choice.hold_s,
                    f"{choice.kind} ends itself after max_s={max_s:g}s: hold at most that, "
                    "or raise params.max_s",
                )
            try:
                fault.preflight(planned_state)
            except FaultUnavailable as exc:
                reason = str(exc)
            except ConfigError as exc:
                reason = exc.fix
            if reason is not None:
                break
        if reason is None:
            usable.append(choice)
        else:
            left_out.append((choice.kind, reason))
    return tuple(usable), left_out


def _check_target(choice: FaultChoice, target: str, state: StackState) -> None:
    """`ConfigError` unless ``target`` names components of this stack ``choice`` may hit."""
    try:
        hit = select(state, target, 0)
    except ConfigError as exc:
        raise ConfigError(f"mix {choice.kind} target", target, exc.fix) from None
    roles = FAULTS[choice.kind].roles
    refused = [c.name for c in hit if c.role not in roles]
    if refused:
        raise ConfigError(
            f"mix {choice.kind} target",
            target,
            f"{choice.kind} cannot target {', '.join(refused)}; it acts on {', '.join(roles)}",
        )


def default_max_nodes(nodes: int) -> int:
    """At most half the nodes at once, rounded down, and at least one: a minority of an odd
    stack, and with two nodes one, never both."""
    return max(1, nodes // 2)


def check_blast_radius(
    choices: Sequence[FaultChoice],
    state: StackState | None,
    max_nodes_at_once: int | None = None,
    allow_total_outage: bool = False,
) -> None:
    """`ConfigError` for the first target that could take more than a day may at once:
    HAProxy (every client's path), every node (the last serving one with them), or more
    nodes than ``max_nodes_at_once`` (default `default_max_nodes`). Unless
    ``allow_total_outage``, which lifts all three.

    With ``state`` None (a spec read before its stack is known) only what holds on every
    stack is checked: ``haproxy``, ``all`` and ``1``, and with the default limit a fraction
    above 0.5. The rest is checked against the planned stack when the schedule is made.
    Counts are by selector, whatever the kind: a latency on every node is refused like a
    kill of every node, since either leaves no node serving well."""
    if allow_total_outage:
        return
    for choice in choices:
        for target in choice.targets:
            if state is None:
                _refuse_on_any_stack(choice.kind, target, max_nodes_at_once)
            else:
                _refuse_on(choice.kind, target, state, max_nodes_at_once)


def _refuse_on_any_stack(kind: str, target: str, max_nodes_at_once: int | None) -> None:
    field_name = f"mix {kind} target"
    if target == "haproxy":
        raise ConfigError(field_name, target, _HAPROXY + _NARROWER)
    if target == "all":
        raise ConfigError(field_name, target, _EVERY_NODE + _NARROWER)
    if target in ROLE_WORDS or target.startswith("node-"):
        return
    fraction = float(target)
    if fraction >= 1:
        raise ConfigError(field_name, target, _EVERY_NODE + _NARROWER)
    if max_nodes_at_once is None and fraction > 0.5:
        raise ConfigError(
            field_name,
            target,
            "more than half the nodes at once, beyond the default blast radius (half the "
            "nodes, rounded down, at least one; set max_nodes_at_once to allow more); " + _NARROWER,
        )


def _refuse_on(kind: str, target: str, state: StackState, max_nodes_at_once: int | None) -> None:
    field_name = f"mix {kind} target"
    hit = select(state, target, 0)
    if any(c.role == "balancer" for c in hit):
        raise ConfigError(field_name, target, _HAPROXY + _NARROWER)
    nodes = [c.name for c in hit if c.role in NODE_ROLES]
    every = len(state.nodes)
    if len(nodes) >= every:
        raise ConfigError(
            field_name,
            target,
            f"hits {', '.join(nodes)}: {_EVERY_NODE}" + _NARROWER,
        )
    limit = max_nodes_at_once if max_nodes_at_once is not None else default_max_nodes(every)
    if len(nodes) > limit:
        raise ConfigError(
            field_name,
            target,
            f"hits {len(nodes)} of {every} nodes at once ({', '.join(nodes)}); a game day "
            f"takes at most {limit} (max_nodes_at_once); " + _NARROWER,
        )
