"""The chains a checker of clients' histories can be held against (`checker.ChainLog`).

Place in the flow: the stack's chain source logs its chain (`harness.chain.chainlog`) ->
**chains** -> checker. A stack on one chain has that log: `LoggedChain` asks it. A stack of
independent chains has none: `NoChainKnown` lets every answer be on some branch, so only
what a session was told against what it was told before is judged (head regressions,
blocks advertised then unknown, receipts that vanished), which needs no chain at all.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # measure reads the chain's log; it needs nothing else of the chain
    from harness.chain.chainlog import ChainHistory


@dataclass(frozen=True)
class LoggedChain:
    """A `ChainHistory` (the replicator's chain log, read back) as the checker asks it."""

    history: ChainHistory
    _head_times: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # ChainHistory.head_at builds this list on each call; the checker may ask per receipt.
        object.__setattr__(self, "_head_times", tuple(h.seen_ns for h in self.history.heads))

    def on_any_branch(self, number: int, hash: str, /) -> bool:
        return self.history.on_any_branch(number, hash)

    def canonical_hash(self, number: int, /) -> str | None:
        return self.history.canonical_hash(number)

    def deepest_reorg(self, start_ns: int, end_ns: int, /) -> int:
        return self.history.deepest_reorg(start_ns, end_ns)

    def head_at(self, t_ns: int, /) -> int | None:
        """The source's head's number at ``t_ns``; None before its first block."""
        at = bisect.bisect_right(self._head_times, t_ns)
        return self.history.heads[at - 1].number if at else None

    def logs_in(self, number: int, hash: str, /) -> int | None:
        """The block's log count where the chain log records one (today's does not: None,
        and the checker takes the most logs any answer showed)."""
        block = self.history.block(hash)
        logs = getattr(block, "logs", None)
        if block is None or block.number != number or not isinstance(logs, int):
            return None
        return logs


class NoChainKnown:
    """No chain log: every block is on some branch, no reorg, nothing else known."""

    def on_any_branch(self, number: int, hash: str, /) -> bool:
        return True

    def canonical_hash(self, number: int, /) -> str | None:
        return None

    def deepest_reorg(self, start_ns: int, end_ns: int, /) -> int:
        return 0

    def head_at(self, t_ns: int, /) -> int | None:
        return None

    def logs_in(self, number: int, hash: str, /) -> int | None:
        return None
