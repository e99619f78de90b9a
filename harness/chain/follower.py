"""One follower: the thread that keeps one served anvil node on the source's chain.

Each round reads the node's head (and its instance id, which changes when anvil restarts),
passes on any transaction clients sent to it, checks that its head is on the source's
chain (else rewinds it to the common ancestor), and replays the blocks it lacks up to
the source's head minus ``lag_blocks``, each once it is ``delay`` old (from when the
reader saw it). A paused follower does nothing; an unreachable one (killed, SIGSTOPped) is
retried quietly, and met again as a new instance it gets the BLOCKHASH fix first.
A block that stays different after every attempt holds the follower below it, counted in
``mismatches`` and named in ``last_error``, until the source's block changes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence

from harness.chain.blocks import SourceBlock, read_headers, read_linked_blocks
from harness.chain.delays import Delay
from harness.chain.reader import SourceReader
from harness.chain.replay import (
    common_ancestor,
    read_pool,
    rebuild_block_hashes,
    replay_block,
    rewind,
)
from harness.chain.rpc import BatchClient
from harness.chain.settings import NodeChange, NodeSettings
from harness.chain.status import NodeStatus
from harness.jsonrpc import RpcFailure

log = logging.getLogger(__name__)

#: How often an idle follower re-reads its node (restarts, rollbacks, client transactions).
IDLE_S = 0.05
#: How long to wait after the node did not answer.
RETRY_S = 0.1
#: Blocks replayed per round before the node's head is read again.
CATCHUP_BLOCKS = 64
#: How far back a rewind looks for a block the node shares with the source.
ANCESTOR_SEARCH_BLOCKS = 4096


class Follower:
    """Replays the source's blocks into the node at ``url``; a context manager running
    its thread. `configure` and `status` are safe from any thread."""

    def __init__(
        self,
        name: str,
        url: str,
        reader: SourceReader,
        settings: NodeSettings | None = None,
        *,
        timeout_s: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._reader = reader
        self._wake = reader.listen()
        self._node = BatchClient(url, timeout_s=timeout_s)
        self._source = BatchClient(reader.url, timeout_s=timeout_s)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._settings = settings or NodeSettings()
        self._head: int | None = None
        self._hash: str | None = None
        self._reachable = False
        self._last_error: str | None = None
        self._replayed = self._mismatches = self._retries = 0
        self._rollbacks = self._restarts = self._gossiped = 0
        self._instance: str | None = None
        self._held: tuple[int, str] | None = None
        self._due: dict[int, tuple[str, Delay, int]] = {}
        self._passed: dict[str, None] = {}  # raw transactions gossiped from the pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{name}", daemon=True)

    # -- lifecycle and control ------------------------------------------------------------

    def __enter__(self) -> Follower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        self._node.close()
        self._source.close()

    @property
    def settings(self) -> NodeSettings:
        with self._lock:
            return self._settings

    def configure(self, change: NodeChange) -> NodeSettings:
        """Apply ``change``; takes effect at once (a resumed follower starts right away)."""
        with self._lock:
            self._settings = change.applied_to(self._settings)
            settings = self._settings
        log.info("%s: %s", self.name, settings)
        self._wake.set()
        return settings

    def status(self) -> NodeStatus:
        source = self._reader.head()
        with self._lock:
            settings = self._settings
        head = self._head
        return NodeStatus(
            name=self.name,
            head=head,
            hash=self._hash,
            behind=None if source is None or head is None else source.number - head,
            paused=settings.paused,
            lag_blocks=settings.lag_blocks,
            delay_ms=(settings.delay.fixed_ms, settings.delay.jitter_ms),
            replayed=self._replayed,
            mismatches=self._mismatches,
            last_error=self._last_error,
            reachable=self._reachable,
            retries=self._retries,
            rollbacks=self._rollbacks,
            restarts=self._restarts,
            gossiped=self._gossiped,
        )

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            settings = self.settings
            if settings.paused:
                self._wake.wait(IDLE_S)
                continue
            try:
                wait_s = self.step(settings)
                if not self._reachable:
                    log.info("%s answers at %s (head %s)", self.name, self.url, self._head)
                    self._reachable = True
            except RpcFailure as exc:
                if self._reachable or self._last_error is None:
                    log.info("%s: %s (retrying quietly)", self.name, exc)
                self._reachable = False
                self._last_error = str(exc)
                self._node.close()
                wait_s = RETRY_S
            except Exception as exc:  # the follower must outlive any one odd answer
                log.exception("%s: round failed", self.name)
                self._last_error = f"{type(exc).__name__}: {exc}"
                wait_s = RETRY_S
            if wait_s > 0:
                self._wake.wait(wait_s)

    def step(self, settings: NodeSettings) -> float:
        """One round; the seconds to wait before the next (0: go on at once)."""
        meta, pool = self._node.batch([("anvil_metadata", []), ("txpool_status", [])])
        head, head_hash = int(meta["latestBlockNumber"]), str(meta["latestBlockHash"])
        if meta["instanceId"] != self._instance:
            self._meet(str(meta["instanceId"]), head)
        self._head, self._hash = head, head_hash
        if int(pool.get("pending", "0x0"), 16) + int(pool.get("queued", "0x0"), 16):
            self._gossip_pool()
        source = self._reader.head()
        if source is None:
            return IDLE_S
        if self._source_hash(head, source) != head_hash:
            return self._realign(head, source)
        target = source.number - settings.lag_blocks
        if head >= target:
            self._last_error = None
            return IDLE_S
        if self._held is not None:
            if self._held == (head + 1, self._source_hash(head + 1, source)):
                return IDLE_S  # the mismatch stands until the source's block changes
            self._held = None
        blocks = self._next_blocks(head + 1, min(target, head + CATCHUP_BLOCKS))
        if not blocks:
            return IDLE_S  # the source's chain moved in the middle of the read
        parent = head_hash
        for block in blocks:
            if self._stop.is_set() or self.settings.paused:
                return 0
            due_ns = self._due_ns(block, settings.delay)
            now_ns = time.monotonic_ns()
            if due_ns > now_ns:
                return min(IDLE_S, (due_ns - now_ns) / 1e9)
            if block.parent != parent:
                return 0  # the source's chain changed under this round
            result = replay_block(self._node, block)
            if result.foreign or result.attempts > 1:
                log.debug(
                    "%s: block %d (%d txs) took %d mines; %d client transactions",
                    self.name, block.number, len(block.raw_txs), result.attempts,
                    len(result.foreign),
                )  # fmt: skip
            if result.foreign:
                self._pass_on(result.foreign)
            if not result.ok:
                self._held = (block.number, block.hash)
                self._mismatches += 1
                self._last_error = f"{result.detail}; held at {block.number - 1}"
                log.warning("%s: %s", self.name, self._last_error)
                return IDLE_S
            self._retries += result.attempts > 1
            self._replayed += 1
            self._head, self._hash = block.number, block.hash
            parent = block.hash
        self._last_error = None
        return 0

    # -- pieces of a round -------------------------------------------------------------

    def _meet(self, instance: str, head: int) -> None:
        """A node instance not met before: a start or a restart. After a restart from its
        state file anvil answers BLOCKHASH of earlier blocks wrongly until fixed."""
        if self._instance is not None:
            self._restarts += 1
            log.info("%s restarted (instance %s, head %d)", self.name, instance[:10], head)
        if head > 0:
            self._pass_on(rebuild_block_hashes(self._node).raws)
        self._instance = instance

    def _realign(self, head: int, source: SourceBlock) -> float:
        """The node's head is not on the source's chain: rewind it to the common ancestor."""
        ancestor = common_ancestor(
            self._node,
            min(head, source.number),
            self._source_hashes,
            limit=ANCESTOR_SEARCH_BLOCKS,
        )
        if ancestor < 0:
            self._last_error = (
                f"no block of the last {ANCESTOR_SEARCH_BLOCKS} below {head} is the source's: "
                "is the node started with the source's genesis (follower_args)?"
            )
            log.warning("%s: %s", self.name, self._last_error)
            return 1.0
        log.info("%s: rewinding %d -> %d (source head %d)", self.name, head, ancestor,
                 source.number)  # fmt: skip
        rewind(self._node, head, ancestor)
        self._rollbacks += 1
        self._head = ancestor
        self._hash = self._source_hash(ancestor, source)
        return 0

    def _source_hash(self, number: int, source: SourceBlock) -> str | None:
        if number > source.number:
            return None
        cached = self._reader.block(number)
        if cached is not None:
            return cached.hash
        return self._source_hashes([number]).get(number)

    def _source_hashes(self, numbers: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        missing = []
        for number in numbers:
            cached = self._reader.block(number)
            if cached is not None:
                found[number] = cached.hash
            else:
                missing.append(number)
        for header in read_headers(self._source, missing) if missing else []:
            if header is not None:
                found[header.number] = header.hash
        return found

    def _next_blocks(self, low: int, high: int) -> list[SourceBlock]:
        """Blocks ``low..high``: from the reader's cache, or (older ones) from the source."""
        if self._reader.block(low) is None:
            return read_linked_blocks(self._source, low, high)
        blocks = []
        for number in range(low, high + 1):
            block = self._reader.block(number)
            if block is None:
                break
            blocks.append(block)
        return blocks

    def _due_ns(self, block: SourceBlock, delay: Delay) -> int:
        """When this node may have ``block``: when the reader saw it plus this node's
        draw of its delay (drawn once per block and delay)."""
        memo = self._due.get(block.number)
        if memo is not None and memo[0] == block.hash and memo[1] == delay:
            return memo[2]
        due = block.seen_ns + delay.draw_ns(self._rng)
        self._due[block.number] = (block.hash, delay, due)
        if len(self._due) > 4 * CATCHUP_BLOCKS:
            for number in [n for n in self._due if n < block.number - CATCHUP_BLOCKS]:
                del self._due[number]
        return due

    def _gossip_pool(self) -> None:
        """Pass the transactions in the node's pool to the source, as a real node gossips
        them, each once; they stay pending here until the next replay empties the pool."""
        pool = read_pool(self._node)
        fresh = [raw for raw in pool.raws if raw not in self._passed]
        self._pass_on(fresh)
        self._passed.update(dict.fromkeys(fresh))
        while len(self._passed) > 4096:
            del self._passed[next(iter(self._passed))]

    def _pass_on(self, raws: Sequence[str]) -> None:
        if not raws:
            return
        try:
            results = self._source.batch_results([("eth_sendRawTransaction", [r]) for r in raws])
        except RpcFailure as exc:
            log.info("%s: could not pass %d transactions on: %s", self.name, len(raws), exc)
            return
        passed = [r for r in results if not isinstance(r, RpcFailure)]
        self._gossiped += len(passed)
        log.debug(
            "%s: passed on %d: %s", self.name, len(raws),
            [str(r)[:10] if r in passed else str(r)[-30:] for r in results],
        )  # fmt: skip
