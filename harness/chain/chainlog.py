"""The chain log: every block the source had, on every branch, and every change of its
chain, as JSON lines; and `ChainHistory`, what a checker of what clients saw asks of it.

The replicator's reader appends one line per block the first time it sees its hash,
``{"number", "hash", "parent", "timestamp", "txs", "seen_ns"}``, and one line when the
source's chain changes under it, ``{"reorg": depth, "from", "to", "ancestor", "seen_ns"}``
(written before the new branch's blocks, with the same ``seen_ns``). ``seen_ns`` is
``time.monotonic_ns()``, comparable with the harness's samples on the same host.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from harness.chain.blocks import SourceBlock
from harness.errors import HarnessError


class ChainLogError(HarnessError):
    """A chain log line that is not one the replicator writes."""


@dataclass(frozen=True)
class LoggedBlock:
    number: int
    hash: str
    parent: str
    timestamp: int
    txs: tuple[str, ...]
    seen_ns: int


@dataclass(frozen=True)
class Reorg:
    """The source's chain changed: ``depth`` blocks of the old head's branch were replaced
    (or dropped) above block ``ancestor``."""

    depth: int
    from_hash: str
    to_hash: str
    ancestor: int | None
    seen_ns: int


@dataclass(frozen=True)
class HeadChange:
    """From ``seen_ns`` on, the source's head was block ``number`` with ``hash``."""

    seen_ns: int
    number: int
    hash: str


@dataclass(frozen=True)
class ChainHistory:
    """What the source's chain was, on every branch and at every moment of a run."""

    blocks: Mapping[str, LoggedBlock]  # every block of every branch, by hash
    canonical: Mapping[int, str]  # number -> hash on the chain as of the end of the log
    reorgs: tuple[Reorg, ...]  # in time order
    heads: tuple[HeadChange, ...]  # the source's head over time, in time order

    def on_any_branch(self, number: int, block_hash: str) -> bool:
        """Whether the source ever had block ``number`` with ``block_hash``."""
        block = self.blocks.get(block_hash.lower())
        return block is not None and block.number == number

    def canonical_hash(self, number: int) -> str | None:
        """The hash of block ``number`` on the final chain; None above its head or below
        the first block logged."""
        return self.canonical.get(number)

    def block(self, block_hash: str) -> LoggedBlock | None:
        return self.blocks.get(block_hash.lower())

    def reorgs_between(self, start_ns: int, end_ns: int) -> tuple[Reorg, ...]:
        """The reorgs seen in ``[start_ns, end_ns]``."""
        return tuple(r for r in self.reorgs if start_ns <= r.seen_ns <= end_ns)

    def deepest_reorg(self, start_ns: int, end_ns: int) -> int:
        """The depth of the deepest reorg seen in ``[start_ns, end_ns]``; 0 when none."""
        return max((r.depth for r in self.reorgs_between(start_ns, end_ns)), default=0)

    def head_at(self, t_ns: int) -> HeadChange | None:
        """The source's head at ``t_ns`` (monotonic); None before the first block seen."""
        at = bisect.bisect_right([h.seen_ns for h in self.heads], t_ns)
        return self.heads[at - 1] if at else None

    @property
    def head(self) -> HeadChange | None:
        """The source's head at the end of the log."""
        return self.heads[-1] if self.heads else None


class ChainLogWriter:
    """Appends chain log lines to ``path``, each flushed whole; a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> ChainLogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def block(self, block: SourceBlock) -> None:
        self._write(
            {
                "number": block.number,
                "hash": block.hash,
                "parent": block.parent,
                "timestamp": block.timestamp,
                "txs": list(block.tx_hashes),
                "seen_ns": block.seen_ns,
            }
        )

    def reorg(self, depth: int, from_hash: str, to_hash: str, ancestor: int, seen_ns: int) -> None:
        self._write(
            {"reorg": depth, "from": from_hash, "to": to_hash, "ancestor": ancestor,
             "seen_ns": seen_ns}
        )  # fmt: skip

    def _write(self, doc: dict[str, Any]) -> None:
        if self._file is None:
            raise HarnessError(f"chain log {self.path} is not open")
        self._file.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self._file.flush()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, document) of each line; a last line cut short by a killed writer is
    left out, any other bad line raises `ChainLogError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChainLogError(
            f"cannot read the chain log {path}: {exc}; pass the replicator's --log file"
        ) from exc
    lines = text.split("\n")
    complete = text.endswith("\n")
    for index, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            if index == len(lines) and not complete:
                return  # the writer died in the middle of this line
            raise ChainLogError(
                f"{path}:{index} is not a chain log line: {line[:80]!r}; "
                "is this the replicator's --log file?"
            ) from None
        yield index, doc


def read_chain_log(path: Path | str) -> ChainHistory:
    """The `ChainHistory` in the chain log at ``path``; `ChainLogError` naming the file
    and line when a line is not the replicator's."""
    path = Path(path)
    blocks: dict[str, LoggedBlock] = {}
    reorgs: list[Reorg] = []
    heads: list[HeadChange] = []
    for index, doc in _lines(path):
        try:
            if "reorg" in doc:
                reorg = Reorg(
                    depth=int(doc["reorg"]),
                    from_hash=str(doc["from"]).lower(),
                    to_hash=str(doc["to"]).lower(),
                    ancestor=None if doc.get("ancestor") is None else int(doc["ancestor"]),
                    seen_ns=int(doc["seen_ns"]),
                )
                reorgs.append(reorg)
                target = blocks.get(reorg.to_hash)
                if target is not None:  # a head we knew already (back to an old branch)
                    heads.append(HeadChange(reorg.seen_ns, target.number, target.hash))
                continue
            block = LoggedBlock(
                number=int(doc["number"]),
                hash=str(doc["hash"]).lower(),
                parent=str(doc["parent"]).lower(),
                timestamp=int(doc["timestamp"]),
                txs=tuple(str(t) for t in doc["txs"]),
                seen_ns=int(doc["seen_ns"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainLogError(
                f"{path}:{index}: a chain log line lacks or mangles {exc}: {str(doc)[:80]}"
            ) from None
        blocks.setdefault(block.hash, block)
        heads.append(HeadChange(block.seen_ns, block.number, block.hash))
    heads.sort(key=lambda h: h.seen_ns)  # stable: lines of one observation keep their order
    reorgs.sort(key=lambda r: r.seen_ns)
    canonical: dict[int, str] = {}
    if heads:
        at: LoggedBlock | None = blocks[heads[-1].hash]
        while at is not None and at.number not in canonical:
            canonical[at.number] = at.hash
            at = blocks.get(at.parent)
    return ChainHistory(
        blocks=MappingProxyType(blocks),
        canonical=MappingProxyType(dict(sorted(canonical.items()))),
        reorgs=tuple(reorgs),
        heads=tuple(heads),
    )
