"""The reader of the chain source: polls its head, caches its recent blocks, logs them.

One thread asks the source for its latest block every `POLL_S`; a new head is linked back
to the cached chain (a gap is read in batches, a changed branch block by block by hash),
its blocks' raw transactions are read, and the cache, the chain log and every waiting
follower are told at once. When the new head does not extend the cached head, the
source's chain changed (a reorg): the cache above the common ancestor is replaced and a
``reorg`` line logged. The cache keeps the last `KEEP_BLOCKS` blocks (a follower further
behind reads from the source itself) and the hashes of the last `KEEP_HASHES`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TypeVar

from harness.chain.blocks import (
    HEADER_BATCH,
    Header,
    SourceBlock,
    read_header,
    read_headers,
    with_raw_txs,
)
from harness.chain.chainlog import ChainLogWriter
from harness.chain.rpc import BatchClient
from harness.chain.status import SourceStatus
from harness.jsonrpc import RpcFailure

_V = TypeVar("_V")

log = logging.getLogger(__name__)

POLL_S = 0.01
#: Blocks the cache keeps (with raw transactions) below the head.
KEEP_BLOCKS = 2048
#: Block hashes kept below the head, to find where a changed chain leaves the old one.
KEEP_HASHES = 65_536
#: Blocks below the head the reader reads (and logs) when it starts.
START_BLOCKS = 256
#: Hashes remembered as logged, so a block seen again on a branch that returns is not
#: logged twice.
LOGGED_MEMORY = 100_000


class SourceReader:
    """The source's recent chain as the replicator knows it; a context manager that runs
    the polling thread. Thread-safe readers: `head`, `block`, `wait`."""

    def __init__(
        self,
        url: str,
        chain_log: ChainLogWriter | None = None,
        *,
        poll_s: float = POLL_S,
        keep_blocks: int = KEEP_BLOCKS,
    ) -> None:
        self.url = url
        self._log = chain_log
        self._poll_s = poll_s
        self._keep = keep_blocks
        self._client = BatchClient(url, timeout_s=2.0)
        self._lock = threading.Condition()
        self._by_number: dict[int, SourceBlock] = {}  # the last keep_blocks, with raws
        self._hash_at: dict[int, str] = {}  # the last KEEP_HASHES, to link new blocks to
        self._head: SourceBlock | None = None
        self._block_floor = 0  # the lowest number each window may hold
        self._hash_floor = 0
        self._version = 0
        self._logged: dict[str, None] = {}
        self._reorgs = 0
        self._reachable = False
        self._last_error: str | None = None
        self._listeners: list[threading.Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="source-reader", daemon=True)

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SourceReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except RpcFailure as exc:
                if self._reachable or self._last_error is None:
                    log.warning("source %s: %s (retrying)", self.url, exc)
                self._reachable = False
                self._last_error = str(exc)
            except Exception as exc:  # the reader must outlive any one odd answer
                log.exception("source reader round failed")
                self._last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(max(0.0, self._poll_s - (time.monotonic() - started)))

    # -- what followers ask -------------------------------------------------------------

    def head(self) -> SourceBlock | None:
        with self._lock:
            return self._head

    def block(self, number: int) -> SourceBlock | None:
        """The cached block ``number`` of the source's current chain, if cached."""
        with self._lock:
            return self._by_number.get(number)

    def listen(self) -> threading.Event:
        """An event set at every change of the source's head (the listener clears it)."""
        event = threading.Event()
        with self._lock:
            self._listeners.append(event)
        return event

    def wait_for_head(self, timeout_s: float) -> SourceBlock | None:
        """The head once the reader has one, or None after ``timeout_s``."""
        with self._lock:
            self._lock.wait_for(lambda: self._head is not None, timeout_s)
            return self._head

    def state(self) -> SourceStatus:
        with self._lock:
            head = self._head
            return SourceStatus(
                head=None if head is None else head.number,
                hash=None if head is None else head.hash,
                reachable=self._reachable,
                reorgs=self._reorgs,
                last_error=self._last_error,
            )

    # -- one round ---------------------------------------------------------------------

    def poll(self) -> bool:
        """Read the source's head once; True when it changed. `RpcFailure` when the source
        does not answer (nothing changes then)."""
        top = read_header(self._client, "latest")
        self._reachable = True
        current = self._head
        if current is not None and top.hash == current.hash:
            return False
        seen_ns = time.monotonic_ns()
        if current is None:
            self._hash_floor = self._block_floor = max(0, top.number - START_BLOCKS + 1)
        ancestor, chain = self._link(top, current)
        if not chain and top.number not in self._by_number:
            chain = [top]  # back to a block the cache no longer holds: read it again
        blocks = with_raw_txs(self._client, chain, seen_ns)
        self._apply(ancestor, blocks, top, current, seen_ns)
        self._last_error = None
        return True

    def _link(self, top: Header, current: SourceBlock | None) -> tuple[int, list[Header]]:
        """The highest block of the known chain that ``top`` descends from, and the blocks
        from there up to ``top``, lowest first."""
        chain = [top]
        while True:
            low = chain[-1]
            below = low.number - 1
            if below < self._hash_floor:
                break
            known = self._hash_at.get(below)
            if known == low.parent:
                break
            if known is None and (current is None or below > current.number):
                # A gap above the known head: read it by number, many at once, and keep
                # what links (the chain may change in the middle of the read).
                lowest = max(self._hash_floor, below - HEADER_BATCH + 1)
                if current is not None:
                    lowest = max(lowest, current.number + 1)
                headers = read_headers(self._client, list(range(below, lowest - 1, -1)))
                linked = 0
                for header in headers:
                    if header is None or header.hash != chain[-1].parent:
                        break
                    chain.append(header)
                    linked += 1
                if linked:
                    continue
            chain.append(read_header(self._client, low.parent))  # a changed branch
        chain.reverse()
        # A head that went back along the known chain (a rollback): nothing new below it.
        while chain and self._hash_at.get(chain[0].number) == chain[0].hash:
            chain.pop(0)
        ancestor = chain[0].number - 1 if chain else top.number
        return ancestor, chain

    def _apply(
        self,
        ancestor: int,
        blocks: list[SourceBlock],
        top: Header,
        current: SourceBlock | None,
        seen_ns: int,
    ) -> None:
        with self._lock:
            if current is not None and ancestor < current.number:
                depth = current.number - ancestor
                for number in range(ancestor + 1, current.number + 1):
                    self._by_number.pop(number, None)
                    self._hash_at.pop(number, None)
                self._reorgs += 1
                log.info(
                    "source reorg of depth %d at %d: %s -> %s",
                    depth, ancestor, current.hash, top.hash,
                )  # fmt: skip
                if self._log is not None:
                    self._log.reorg(depth, current.hash, top.hash, ancestor, seen_ns)
                if ancestor < self._hash_floor:
                    log.warning("source chain changed below the reader's window (%d)", ancestor)
            for block in blocks:
                self._by_number[block.number] = block
                self._hash_at[block.number] = block.hash
                self._block_floor = min(self._block_floor, block.number)
                self._hash_floor = min(self._hash_floor, block.number)
                if block.hash not in self._logged:
                    self._logged[block.hash] = None
                    if self._log is not None:
                        self._log.block(block)
            self._head = self._by_number[top.number]
            # Both windows are contiguous up to the head: trim them from their floors.
            self._block_floor = _trim(self._by_number, self._block_floor, top.number - self._keep)
            self._hash_floor = _trim(self._hash_at, self._hash_floor, top.number - KEEP_HASHES)
            while len(self._logged) > LOGGED_MEMORY:
                del self._logged[next(iter(self._logged))]
            self._version += 1
            self._lock.notify_all()
            for event in self._listeners:
                event.set()


def _trim(window: dict[int, _V], floor: int, below: int) -> int:
    """Drop ``window``'s numbers from ``floor`` up to ``below``; the new floor."""
    while floor <= below:
        window.pop(floor, None)
        floor += 1
    return floor
