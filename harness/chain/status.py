"""The replicator's status as the control API serves it and `ReplicatorClient` reads it.

``{"source": {"head", "hash", ...}, "nodes": {name: {"head", "hash", "behind", "paused",
"lag_blocks", "delay_ms": [fixed, jitter], "replayed", "mismatches", "last_error", ...}}}``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SourceStatus:
    head: int | None
    hash: str | None
    reachable: bool = True
    reorgs: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class NodeStatus:
    """One follower: its head as last read, how far behind the source it is (None while
    either head is unknown), its settings and its counters."""

    name: str
    head: int | None
    hash: str | None
    behind: int | None
    paused: bool
    lag_blocks: int
    delay_ms: tuple[float, float]
    replayed: int  # blocks mined to the source's hash
    mismatches: int  # blocks that stayed different after every attempt (the node is held)
    last_error: str | None
    reachable: bool = True
    retries: int = 0  # blocks that needed the one-request-per-call path
    rollbacks: int = 0  # rewinds to a common ancestor (a reorg, a changed node)
    restarts: int = 0  # new node instances met (the BLOCKHASH fix applied)
    gossiped: int = 0  # transactions clients sent to this node, passed on to the source

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["name"]
        doc["delay_ms"] = list(self.delay_ms)
        return doc

    @classmethod
    def from_doc(cls, name: str, doc: dict[str, Any]) -> NodeStatus:
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        fixed, jitter = doc["delay_ms"]
        return cls(**{**fields, "name": name, "delay_ms": (float(fixed), float(jitter))})


@dataclass(frozen=True)
class ReplicatorStatus:
    source: SourceStatus
    nodes: dict[str, NodeStatus]

    def to_doc(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "nodes": {name: node.to_doc() for name, node in self.nodes.items()},
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ReplicatorStatus:
        source = doc["source"]
        fields = {k: v for k, v in source.items() if k in SourceStatus.__dataclass_fields__}
        return cls(
            source=SourceStatus(**fields),
            nodes={name: NodeStatus.from_doc(name, node) for name, node in doc["nodes"].items()},
        )
