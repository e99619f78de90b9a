"""The replicator: one reader of the chain source and one follower per served node.

A context manager: entering it opens the chain log and starts the reader and every
follower; leaving it stops them and closes the log. `status` and `configure` are what the
control API serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.chain.chainlog import ChainLogWriter
from harness.chain.follower import Follower
from harness.chain.reader import SourceReader
from harness.chain.settings import NodeChange, NodeSettings
from harness.chain.status import NodeStatus, ReplicatorStatus
from harness.errors import ConfigError


@dataclass(frozen=True)
class FollowerSpec:
    """A served node the replicator keeps on the source's chain, and its settings at start."""

    name: str
    url: str
    settings: NodeSettings = field(default_factory=NodeSettings)


class UnknownNode(KeyError):
    """No follower has this name."""


class Replicator:
    def __init__(
        self,
        source_url: str,
        nodes: Sequence[FollowerSpec],
        log_path: Path | None = None,
    ) -> None:
        names = [n.name for n in nodes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError("node", duplicated[0], "is given twice; name every node once")
        self.source_url = source_url
        self.nodes = tuple(nodes)
        self.log_path = log_path
        self._stack = contextlib.ExitStack()
        self._reader: SourceReader | None = None
        self._followers: dict[str, Follower] = {}

    def __enter__(self) -> Replicator:
        with contextlib.ExitStack() as stack:
            chain_log = None
            if self.log_path is not None:
                chain_log = stack.enter_context(ChainLogWriter(self.log_path))
            self._reader = stack.enter_context(SourceReader(self.source_url, chain_log))
            for node in self.nodes:
                follower = Follower(node.name, node.url, self._reader, node.settings)
                self._followers[node.name] = stack.enter_context(follower)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()  # followers first, then the reader, then the log
        self._followers = {}
        self._reader = None

    @property
    def reader(self) -> SourceReader:
        if self._reader is None:
            raise RuntimeError("the replicator is not running")
        return self._reader

    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def follower(self, name: str) -> Follower:
        try:
            return self._followers[name]
        except KeyError:
            raise UnknownNode(name) from None

    def node_status(self, name: str) -> NodeStatus:
        return self.follower(name).status()

    def configure(self, name: str, change: NodeChange) -> NodeStatus:
        """Apply ``change`` to node ``name``; its status after. `UnknownNode` if none."""
        follower = self.follower(name)
        follower.configure(change)
        return follower.status()

    def status(self) -> ReplicatorStatus:
        return ReplicatorStatus(
            source=self.reader.state(),
            nodes={name: f.status() for name, f in self._followers.items()},
        )
