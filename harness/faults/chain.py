"""Faults of one chain (``--chain one``): what goes wrong between a node and its network.

On a one-chain stack the served nodes follow the chain source through the replicator
(`harness.chain`); these faults act on that replication, through its control API:

- ``lag``: hold nodes ``blocks`` behind the source's head (``-p blocks=3``); they keep
  answering, a few blocks old. Undo: lag 0, and the node catches up.
- ``peer_partition``: cut nodes off from the chain source; they keep serving an ever
  older head at full availability. Undo: replication resumes; the node replays what it
  missed (its catch-up is part of its MTTR).
- ``propagation``: blocks reach nodes late (``-p delay=50-300ms``): "node A has block N+1,
  node B not yet", as between production nodes. Undo: the node's delay before.
- ``stall`` on a one-chain stack is the real sync stall, the same mechanism as a peer
  partition (`harness.faults.resources.SyncStall` hands over to `replication_pause`).
- ``reorg``: the source replaces its last ``depth`` blocks with another branch
  (``anvil_reorg``); the nodes follow at their own delays (each finds the common ancestor,
  rolls back and replays), so clients can meet both branches. A reorg is not undone: the
  chain moves on from the new branch, as a network's does.

Every setting is ledgered before it is made ({op: replicator_set}), so a harness killed
mid-fault leaves a node that `harness cleanup` (or the next run) sets back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.chain.client import ReplicatorClient, ReplicatorError
from harness.chain.delays import parse_delay
from harness.chain.settings import NodeSettings
from harness.errors import ConfigError
from harness.faults.fault import Fault, FaultIneffective, wait_until
from harness.faults.registry import register
from harness.faults.undo import UndoOp, undo_op
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.model import ComponentState, StackState

#: How long a node may take to be back in sync after a replication fault is undone.
CATCH_UP_TIMEOUT_S = 30.0


def replicator_of(state: StackState, kind: str) -> str:
    """The replicator's control URL; `ConfigError` on a stack whose nodes do not replicate."""
    if state.chain != "one" or not state.replicator_url:
        raise ConfigError(
            "fault",
            kind,
            f"{kind} acts on the replication of one chain, and stack {state.name!r} runs "
            "independent chains: start it with --chain one (anvil nodes)",
        )
    return state.replicator_url


@undo_op("replicator_set")
def replicator_set(op: UndoOp) -> str | None:
    """Give node {node} the settings {paused, lag_blocks} at replicator {url}; None if they
    are already so (or the replicator is gone: a new one starts with its own)."""
    client = ReplicatorClient(op["url"])
    try:
        now = client.node(op["node"])
    except ReplicatorError:
        return None
    delay = tuple(op.get("delay_ms", now.delay_ms))
    if (now.paused, now.lag_blocks, now.delay_ms) == (op["paused"], op["lag_blocks"], delay):
        return None
    client.set(op["node"], paused=op["paused"], lag_blocks=op["lag_blocks"], delay_ms=delay)
    return (
        f"set {op['node']} back to paused={op['paused']} lag_blocks={op['lag_blocks']} "
        f"delay_ms={list(delay)}"
    )


def _in_sync(client: ReplicatorClient, name: str) -> bool:
    try:
        node = client.node(name)
    except ReplicatorError:
        return False
    return node.behind is not None and node.behind <= 1


@dataclass
class _ReplicationFault(Fault):
    """A setting of the replicator for every targeted node, ledgered; its undo puts back
    what the node had, and the fault is reverted when the node is back in sync."""

    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    sets_delay: ClassVar[bool] = False  # whether the fault's settings include the delay

    def __post_init__(self) -> None:
        super().__post_init__()
        self._url = ""

    def settings(self) -> NodeSettings:
        raise NotImplementedError

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        replicator_of(state, self.kind)
        return super().preflight(state)

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        self._url = replicator_of(self.stack.state(), self.kind)
        client = ReplicatorClient(self._url)
        ops: list[UndoOp] = []
        for target in targets:
            try:
                before = client.node(target.name)
            except ReplicatorError as exc:
                raise FaultIneffective(f"fault ineffective: {exc}") from exc
            ops.append(
                {
                    "op": "replicator_set",
                    "url": self._url,
                    "node": target.name,
                    "paused": before.paused,
                    "lag_blocks": before.lag_blocks,
                    "delay_ms": list(before.delay_ms),
                }
            )
        return ops

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        client = ReplicatorClient(self._url)
        wanted = self.settings()
        for target in targets:
            client.set(
                target.name,
                paused=wanted.paused,
                lag_blocks=wanted.lag_blocks,
                delay_ms=wanted.delay if self.sets_delay else None,
            )

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        client = ReplicatorClient(self._url)
        wanted = self.settings()
        for target in targets:
            node = client.node(target.name)
            delay_wrong = self.sets_delay and node.delay_ms != tuple(wanted.delay.as_list())
            if node.paused != wanted.paused or node.lag_blocks != wanted.lag_blocks or delay_wrong:
                raise FaultIneffective(
                    f"fault ineffective: the replicator holds {target.name} at paused="
                    f"{node.paused} lag_blocks={node.lag_blocks}"
                )

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        """Every node back within a block of the source: caught up, not merely unpaused."""
        client = ReplicatorClient(self._url)
        for target in targets:

            def caught_up(name: str = target.name) -> bool:
                return _in_sync(client, name)

            wait_until(
                caught_up,
                CATCH_UP_TIMEOUT_S,
                f"{target.name} did not catch up with the chain source",
                interval_s=0.02,
            )


@register
@dataclass
class Lag(_ReplicationFault):
    """Nodes held ``blocks`` behind the source's head: answering, a few blocks old."""

    kind: ClassVar[str] = "lag"
    blocks: int = 3

    def validate(self) -> None:
        if not isinstance(self.blocks, int) or not 1 <= self.blocks <= 10_000:
            raise ConfigError("blocks", self.blocks, "choose 1 to 10000 blocks behind the tip")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = f"replicator lag_blocks={self.blocks}"

    def params(self) -> dict[str, Any]:
        return {"blocks": self.blocks}

    def settings(self) -> NodeSettings:
        return NodeSettings(lag_blocks=self.blocks)


@register
@dataclass
class PeerPartition(_ReplicationFault):
    """Nodes cut off from the chain source: they serve an ever older head, fully available."""

    kind: ClassVar[str] = "peer_partition"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "replicator paused"

    def settings(self) -> NodeSettings:
        return NodeSettings(paused=True)


@register
@dataclass
class Propagation(_ReplicationFault):
    """Blocks reach nodes ``delay`` late (``50ms``, ``50-300ms``, ``50,250``: fixed, jitter)."""

    kind: ClassVar[str] = "propagation"
    sets_delay: ClassVar[bool] = True
    delay: str = "50-300ms"

    def validate(self) -> None:
        self._delay = parse_delay(str(self.delay), "delay")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = f"replicator delay {self._delay.fixed_ms:g}+{self._delay.jitter_ms:g} ms"

    def params(self) -> dict[str, Any]:
        return {"delay": self.delay}

    def settings(self) -> NodeSettings:
        return NodeSettings(delay=self._delay)


def replication_pause(fault: Fault) -> PeerPartition:
    """The replication pause a ``stall`` is on a one-chain stack: same target, same ledger."""
    return PeerPartition(
        stack=fault.stack, target=fault.target, seed=fault.seed, ledger=fault.ledger
    )


@register
@dataclass
class Reorg(Fault):
    """The chain source replaces its last ``depth`` blocks with another branch.

    The new branch holds one self-transfer of the last dev account (which the load never
    uses), so it differs from the old one even where the old blocks were empty. The target
    is the chain source whatever the selector says: every node follows it.
    """

    kind: ClassVar[str] = "reorg"
    # Whatever node a selector names, the reorg is the source's (see `preflight`).
    roles: ClassVar[tuple[str, ...]] = ("source", "primary", "backup")
    depth: int = 2

    def validate(self) -> None:
        if not isinstance(self.depth, int) or not 1 <= self.depth <= 64:
            raise ConfigError("depth", self.depth, "choose 1 to 64 blocks")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = f"anvil_reorg depth {self.depth}"
        self._old: list[str] = []
        self._top = 0

    def params(self) -> dict[str, Any]:
        return {"depth": self.depth}

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        replicator_of(state, self.kind)
        return tuple(c for c in state.components if c.role == "source")

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        (source,) = targets
        with RpcClient(source.url, timeout_s=2.0) as client:
            head = client.block_number()
        if head < self.depth + 1:
            raise ConfigError(
                "depth",
                self.depth,
                f"the chain has {head} blocks above genesis: a reorg can replace at most "
                f"{max(0, head - 1)}; choose a smaller depth or wait for more blocks",
            )
        return []  # a reorg is not undone: the chain goes on from the new branch

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        (source,) = targets
        with RpcClient(source.url, timeout_s=5.0) as client:
            try:
                accounts = client.call("eth_accounts")
                self._top = client.block_number()
                self._old = [
                    str(client.call("eth_getBlockByNumber", [hex(n), False])["hash"])
                    for n in range(self._top - self.depth + 1, self._top + 1)
                ]
                tx = {"from": accounts[-1], "to": accounts[-1], "value": "0x1"}
                client.call("anvil_reorg", [self.depth, [[tx, 0]]])
            except (RpcFailure, KeyError, TypeError, IndexError) as exc:
                raise FaultIneffective(f"fault ineffective: anvil_reorg failed: {exc}") from exc

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        (source,) = targets
        with RpcClient(source.url, timeout_s=2.0) as client:
            first = self._top - self.depth + 1
            try:
                now = client.call("eth_getBlockByNumber", [hex(first), False])
            except RpcFailure as exc:
                raise FaultIneffective(f"fault ineffective: {exc}") from exc
        if not isinstance(now, dict) or now.get("hash") == self._old[0]:
            raise FaultIneffective(
                f"fault ineffective: block {first} on the source is still {self._old[0]}"
            )

    def revert(self, targets: tuple[ComponentState, ...]) -> None:
        """Nothing to take back; the nodes are waited for in `verify_reverted`."""

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        """Every node has left the old branch: its block at the reorg's base is the source's
        new one (asked of each node: the replicator's status may predate the reorg)."""
        (source,) = targets
        first = hex(self._top - self.depth + 1)
        with RpcClient(source.url, timeout_s=2.0) as client:
            wanted = client.call("eth_getBlockByNumber", [first, False])["hash"]
        nodes = self.stack.state().nodes
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        left = {n.name: n.url for n in nodes}
        while left and time.monotonic() < deadline:
            for name, url in list(left.items()):
                try:
                    with RpcClient(url, timeout_s=1.0) as client:
                        block = client.call("eth_getBlockByNumber", [first, False])
                except RpcFailure:
                    continue
                if isinstance(block, dict) and block.get("hash") == wanted:
                    del left[name]
            time.sleep(0.02)
        if left:
            raise FaultIneffective(
                f"fault ineffective: {', '.join(sorted(left))} still on the old branch at "
                f"block {int(first, 16)} after {CATCH_UP_TIMEOUT_S:g}s"
            )
