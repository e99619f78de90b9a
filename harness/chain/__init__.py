"""One chain across the local stack's nodes: a hidden chain source and served followers.

The chain source is an anvil that mines at the block time and is not served to clients;
the followers are the served nodes (anvil with the same genesis, not mining), into which
the replicator (``python -m harness.chain``: `harness.chain.replicator`) replays every
source block, each follower at its own delay, pause and lag as the control API sets
them. Clients behind the balancer then meet what production's clients meet: nodes that
see one chain at different moments. The chain log records every block of every branch
the source had, for a checker of what clients saw (`read_chain_log`, `ChainHistory`).

Flow: source anvil -> `SourceReader` (cache, chain log) -> one `Follower` per node
(`replay` recipe) -> served anvils; faults -> `ReplicatorClient` -> control API.
Only the standard library and `harness.jsonrpc` are imported here: the replicator
process starts fast and imports nothing of the stack, the load or the faults.
"""

from __future__ import annotations

from harness.chain.anvil import (
    check_genesis,
    follower_args,
    genesis_timestamp,
    seed_state,
    source_args,
)
from harness.chain.chainlog import (
    ChainHistory,
    ChainLogError,
    HeadChange,
    LoggedBlock,
    Reorg,
    read_chain_log,
)
from harness.chain.client import ReplicatorClient, ReplicatorError
from harness.chain.config import ReplicatorConfig, parse_args
from harness.chain.delays import Delay, parse_delay
from harness.chain.process import ReplicatorProcess, replicator_command
from harness.chain.replicator import FollowerSpec
from harness.chain.settings import NodeSettings
from harness.chain.status import NodeStatus, ReplicatorStatus, SourceStatus

__all__ = [
    "ChainHistory",
    "ChainLogError",
    "Delay",
    "FollowerSpec",
    "HeadChange",
    "LoggedBlock",
    "NodeSettings",
    "NodeStatus",
    "Reorg",
    "ReplicatorClient",
    "ReplicatorConfig",
    "ReplicatorError",
    "ReplicatorProcess",
    "ReplicatorStatus",
    "SourceStatus",
    "check_genesis",
    "follower_args",
    "genesis_timestamp",
    "parse_args",
    "parse_delay",
    "read_chain_log",
    "replicator_command",
    "seed_state",
    "source_args",
]
