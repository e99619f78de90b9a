"""The recipe that makes an anvil follower mine exactly a source block, and its repairs.

Per block (measured with anvil 1.7.1 to keep every field of every block and receipt equal):
empty the pool, set the next block's timestamp and base fee (a rollback does not reset the
base fee), send the block's raw transactions in block order (``--order fifo`` keeps that
order), mine. The mined hash is compared with the source's; on a mismatch the block is
rolled back and replayed one request per call. Transactions a client sent to the follower
itself (through the balancer) would land in the replayed block: the pool is read and
emptied before the sends and again after them, a block that got one anyway is rolled
back and mined again, and they are put back in the pool after the mine (pending there,
as on a real node) and passed on to the source, as a real node gossips them.
What cannot be closed: anvil 1.7.1 drops a transaction's descendants (the sender's
higher nonces) with it, so one that arrives between the read of the pool and the drop
is lost. A sender with one transaction in flight never meets this; a burst of nonces
sent to a follower while it replays can. The sound setup sends writes to the source.

Repairs: `rewind` rolls a follower back to the common ancestor with the source (a reorg,
or a follower that was rolled back and changed); `rebuild_block_hashes` fixes BLOCKHASH
after anvil loaded its ``--state`` file (it then answers BLOCKHASH of earlier blocks wrongly
until one block is mined and rolled back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.chain.blocks import SourceBlock, parse_header
from harness.chain.rpc import BatchClient, Call
from harness.jsonrpc import Outcome, RpcFailure

log = logging.getLogger(__name__)

#: One-request-per-call attempts after the batched one mismatched.
SLOW_ATTEMPTS = 2
#: Batched attempts after a client's transaction got into the mined block.
FOREIGN_ATTEMPTS = 8


@dataclass(frozen=True)
class Mined:
    """What the follower mined: its hash and its transactions' hashes in order."""

    hash: str
    tx_hashes: tuple[str, ...]


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying one block: ``ok`` when the hashes are equal; ``attempts``
    counts mines (1 = the batched path sufficed); ``foreign`` are raw transactions the
    follower had from elsewhere, for the source; ``detail`` says what differed."""

    ok: bool
    attempts: int
    foreign: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Pool:
    """Transactions in a node's pool: (hash, raw) in pool order; and the senders with a
    transaction behind a nonce gap ("queued")."""

    txs: tuple[tuple[str, str], ...] = ()
    queued: frozenset[str] = frozenset()

    @property
    def raws(self) -> tuple[str, ...]:
        return tuple(raw for _, raw in self.txs)


def _raws(client: BatchClient, hashes: Sequence[str]) -> tuple[tuple[str, str], ...]:
    raws = client.batch_results([("eth_getRawTransactionByHash", [h]) for h in hashes])
    return tuple((h, r) for h, r in zip(hashes, raws, strict=True) if isinstance(r, str))


def _pool_of(client: BatchClient, content: Any) -> Pool:
    """The `Pool` a ``txpool_content`` answer describes (raw transactions read)."""
    if not isinstance(content, dict):
        raise RpcFailure(Outcome.MALFORMED, f"txpool_content answered {str(content)[:80]}")
    by_sender: dict[str, set[str]] = {}
    for group in ("pending", "queued"):
        for sender, by_nonce in (content.get(group) or {}).items():
            by_sender.setdefault(sender, set()).update(str(tx["hash"]) for tx in by_nonce.values())
    if not by_sender:
        return Pool()
    hashes = [h for group in by_sender.values() for h in group]
    return Pool(_raws(client, hashes), frozenset(content.get("queued") or {}))


def read_pool(client: BatchClient) -> Pool:
    """What is in the node's pool, left there."""
    return _pool_of(client, client.call("txpool_content"))


def take_pool(
    client: BatchClient,
    keep: frozenset[str] = frozenset(),
    rounds: int = 3,
    content: Any = None,
) -> Pool:
    """Read the node's pool (the first read may be given: a ``txpool_content`` answer)
    and drop exactly what was read (but ``keep``), again until a read finds nothing more
    (at most ``rounds`` times). A transaction that arrives after a read stays, to be read
    by the next, so none is dropped unseen (as one arriving just before
    ``anvil_dropAllTransactions`` would be; but see the module's note on descendants).
    anvil 1.7.1 drops a queued transaction (one behind a nonce gap) only with all of its
    sender's: without ``keep`` (before the sends) those senders' go so; with it they stay,
    unminable until the block's sends close their gap, and then mined and undone."""
    taken: dict[str, str] = {}
    for _ in range(rounds):
        read = read_pool(client) if content is None else _pool_of(client, content)
        content = None
        pool = [(h, raw) for h, raw in read.txs if h not in keep and h not in taken]
        if not pool:
            break
        calls: list[Call] = [("anvil_dropTransaction", [h]) for h, _ in pool]
        if not keep:  # before the sends, when no transaction of the block is in the pool
            calls += [("anvil_removePoolTransactions", [sender]) for sender in read.queued]
        client.batch_results(calls)
        log.debug("took from the pool: %s", [h[:10] for h, _ in pool])
        taken.update(pool)
    return Pool(tuple(taken.items()))


def put_back(client: BatchClient, pending: Pool) -> None:
    """Return transactions to the node's pool: what clients sent it stays pending there
    (its nonce counted, its hash found) until a replayed block holds it."""
    if pending.txs:
        results = client.batch_results([("eth_sendRawTransaction", [r]) for r in pending.raws])
        log.debug(
            "put back: %s",
            [(h[:10], str(r)[:60]) for (h, _), r in zip(pending.txs, results, strict=True)],
        )


def _setup(block: SourceBlock) -> list[Call]:
    calls: list[Call] = [("evm_setNextBlockTimestamp", [block.timestamp])]
    if block.base_fee is not None:
        calls.append(("anvil_setNextBlockBaseFeePerGas", [block.base_fee]))
    return calls


def _mine(client: BatchClient) -> Mined:
    mined: Any = client.call("evm_mine_detailed")
    doc = mined[0] if isinstance(mined, list) and mined else mined
    header = parse_header(doc, "evm_mine_detailed")
    return Mined(header.hash, header.tx_hashes)


def _checked(results: list[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, RpcFailure):
            raise result
    return results


def _attempt(
    client: BatchClient, block: SourceBlock, batched: bool, pending: dict[str, str]
) -> Mined:
    """One mine of ``block``. The pool is emptied (into ``pending``) before the sends, so
    that clients' transactions do not go first, and read again with the sends, so that
    one that came meanwhile is not mined. Batched: the pool's read rides with the setup
    and with the sends (order does not matter there), so a block costs three requests (an
    empty one two) when no client sent anything; else one request per call."""
    keep = frozenset(block.tx_hashes)
    sends: list[Call] = [("eth_sendRawTransaction", [raw]) for raw in block.raw_txs]
    if batched:
        before, *setup = client.batch_results([("txpool_content", []), *_setup(block)])
        _checked(setup)
        pending.update(take_pool(client, content=_checked([before])[0]).txs)
        if sends:
            # A send that fails (a client's transaction took the nonce) shows in the hash.
            *_, after = client.batch_results([*sends, ("txpool_content", [])])
            pending.update(take_pool(client, keep, content=_checked([after])[0]).txs)
        return _mine(client)
    pending.update(take_pool(client).txs)
    for method, params in _setup(block):
        client.call(method, params)
    for method, params in sends:
        try:
            client.call(method, params)
        except RpcFailure as exc:
            if exc.outcome is not Outcome.RPC_ERROR:
                raise
            log.debug("block %d: send refused: %s", block.number, exc.detail)
    pending.update(take_pool(client, keep).txs)
    return _mine(client)


def _foreign(client: BatchClient, block: SourceBlock, mined: Mined) -> Pool:
    """The transactions the follower mined that the source's block does not hold."""
    theirs = set(block.tx_hashes)
    extra = [h for h in mined.tx_hashes if h not in theirs]
    return Pool(_raws(client, extra)) if extra else Pool()


def replay_block(client: BatchClient, block: SourceBlock) -> ReplayResult:
    """Mine ``block`` on the follower whose head is ``block.parent``. On a mismatch the
    mined block is rolled back, so the follower stays at the parent. `RpcFailure` when the
    follower does not answer (its head is then whatever it reached). The transactions
    clients had sent to the follower are put back in its pool after the mine (unless the
    block holds them) and come back in ``foreign``, for the source."""
    pending: dict[str, str] = {}
    mined = _attempt(client, block, True, pending)
    log.debug("block %d: mined %s", block.number, [h[:10] for h in mined.tx_hashes])
    attempts = 1
    fast_left, slow_left = FOREIGN_ATTEMPTS, SLOW_ATTEMPTS
    ok = True
    while mined.hash != block.hash:
        extra = _foreign(client, block, mined)
        pending.update(extra.txs)
        client.call("anvil_rollback", [1])
        # A client's transaction that arrived after the pool was emptied got into the
        # block: the batched path again. Otherwise (an order anvil changed): one request
        # per call.
        fast = bool(extra.txs) and fast_left > 0
        if not fast and slow_left == 0:
            ok = False
            break
        if fast:
            fast_left -= 1
        else:
            slow_left -= 1
        attempts += 1
        mined = _attempt(client, block, fast, pending)
    included = set(block.tx_hashes) if ok else set()
    put_back(client, Pool(tuple((h, r) for h, r in pending.items() if h not in included)))
    foreign = tuple(pending.values())
    if ok:
        return ReplayResult(True, attempts, foreign)
    same_txs = mined.tx_hashes == block.tx_hashes
    detail = (
        f"block {block.number}: mined {mined.hash} but the source has {block.hash} "
        + ("with the same transactions" if same_txs else
           f"({len(mined.tx_hashes)} transactions mined, {len(block.tx_hashes)} in the source)")
    )  # fmt: skip
    return ReplayResult(False, attempts, foreign, detail)


def rebuild_block_hashes(client: BatchClient) -> Pool:
    """After anvil loaded a state file: mine one empty block at the head's timestamp and
    roll it back, which rebuilds the table BLOCKHASH reads. Returns what is in the pool,
    for the source."""
    head = parse_header(client.call("eth_getBlockByNumber", ["latest", False]), "latest")
    if head.number == 0:
        return Pool()
    pool = take_pool(client)
    client.call("evm_setNextBlockTimestamp", [head.timestamp])
    _mine(client)
    client.call("anvil_rollback", [1])
    put_back(client, pool)
    after = parse_header(client.call("eth_getBlockByNumber", ["latest", False]), "latest")
    if after.hash != head.hash:
        raise RpcFailure(
            Outcome.RPC_ERROR, f"the head changed from {head.hash} to {after.hash} in the fix"
        )
    return pool


def common_ancestor(
    client: BatchClient,
    head: int,
    source_hashes: Callable[[Sequence[int]], dict[int, str]],
    *,
    limit: int,
    chunk: int = 16,
) -> int:
    """The highest block number at or below ``head`` where the follower's hash equals the
    source's (``source_hashes`` gives the source's hashes of some numbers); -1 if none of
    the ``limit`` blocks below ``head`` is."""
    top = head
    while top >= 0 and top > head - limit:
        numbers = list(range(top, max(-1, top - chunk), -1))
        docs = client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        theirs = source_hashes(numbers)
        for number, doc in zip(numbers, docs, strict=True):
            if isinstance(doc, dict) and theirs.get(number) == doc.get("hash"):
                return number
        top -= chunk
    return -1


def rewind(client: BatchClient, head: int, to: int) -> None:
    """Roll the follower back from ``head`` to block ``to``."""
    if to < head:
        client.call("anvil_rollback", [head - to])
