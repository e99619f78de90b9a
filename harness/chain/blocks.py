"""One source block as the replicator needs it, and how blocks are read from the source.

A `SourceBlock` holds what a follower needs to mine the same block (timestamp, base fee,
the raw transactions in block order) and what proves it did (the hash). Reads are
batched: headers of many blocks in one request, then every raw transaction of those
blocks in another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.chain.rpc import BatchClient
from harness.jsonrpc import Outcome, RpcFailure

#: Blocks per batch of header reads; raw transactions per batch of raw reads.
HEADER_BATCH = 64
RAW_BATCH = 256


@dataclass(frozen=True)
class Header:
    """The fields of a block the replicator compares and replays, without transactions."""

    number: int
    hash: str
    parent: str
    timestamp: int
    base_fee: str | None  # hex as the node gave it; None before London
    tx_hashes: tuple[str, ...]


@dataclass(frozen=True)
class SourceBlock:
    """A source block with its raw transactions; ``seen_ns`` is when the reader first saw
    it (monotonic), 0 for a block read on demand long after it was mined."""

    number: int
    hash: str
    parent: str
    timestamp: int
    base_fee: str | None
    tx_hashes: tuple[str, ...]
    raw_txs: tuple[str, ...]
    seen_ns: int


def parse_header(doc: Any, what: str) -> Header:
    """The `Header` of an ``eth_getBlockBy*`` answer; `RpcFailure` (MALFORMED) when the
    answer is null or lacks a field (``what`` names the request)."""
    if not isinstance(doc, dict):
        raise RpcFailure(Outcome.MALFORMED, f"{what}: no block ({doc!r})")
    try:
        txs = tuple(t if isinstance(t, str) else t["hash"] for t in doc["transactions"])
        return Header(
            number=int(doc["number"], 16),
            hash=str(doc["hash"]),
            parent=str(doc["parentHash"]),
            timestamp=int(doc["timestamp"], 16),
            base_fee=doc.get("baseFeePerGas"),
            tx_hashes=txs,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RpcFailure(Outcome.MALFORMED, f"{what}: block lacks {exc}") from None


def read_header(client: BatchClient, ref: int | str) -> Header:
    """The header of block ``ref``: a number, ``"latest"``, or a 0x block hash."""
    if isinstance(ref, str) and len(ref) == 66:
        return parse_header(client.call("eth_getBlockByHash", [ref, False]), f"block {ref}")
    tag = hex(ref) if isinstance(ref, int) else ref
    return parse_header(client.call("eth_getBlockByNumber", [tag, False]), f"block {tag}")


def read_headers(client: BatchClient, numbers: Sequence[int]) -> list[Header | None]:
    """The headers of ``numbers`` in that order; None for a number the node does not have."""
    found: list[Header | None] = []
    for start in range(0, len(numbers), HEADER_BATCH):
        chunk = numbers[start : start + HEADER_BATCH]
        docs = client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
        found += [
            None if d is None else parse_header(d, f"block {n}")
            for n, d in zip(chunk, docs, strict=True)
        ]
    return found


def with_raw_txs(client: BatchClient, headers: Sequence[Header], seen_ns: int) -> list[SourceBlock]:
    """``headers`` as `SourceBlock`s with their raw transactions; `RpcFailure` when one is
    missing (the source's chain moved under the read: read again)."""
    hashes = [h for header in headers for h in header.tx_hashes]
    raws: list[Any] = []
    for start in range(0, len(hashes), RAW_BATCH):
        chunk = hashes[start : start + RAW_BATCH]
        raws += client.batch([("eth_getRawTransactionByHash", [h]) for h in chunk])
    missing = [h for h, raw in zip(hashes, raws, strict=True) if not isinstance(raw, str)]
    if missing:
        raise RpcFailure(Outcome.RPC_ERROR, f"no raw transaction for {missing[0]} (moved?)")
    blocks = []
    at = 0
    for header in headers:
        count = len(header.tx_hashes)
        blocks.append(
            SourceBlock(
                number=header.number,
                hash=header.hash,
                parent=header.parent,
                timestamp=header.timestamp,
                base_fee=header.base_fee,
                tx_hashes=header.tx_hashes,
                raw_txs=tuple(raws[at : at + count]),
                seen_ns=seen_ns,
            )
        )
        at += count
    return blocks


def read_linked_blocks(client: BatchClient, low: int, high: int) -> list[SourceBlock]:
    """Blocks ``low..high`` of the source, each the parent of the next; fewer (possibly
    none) when the source has fewer or its chain changed in the middle of the read."""
    headers = read_headers(client, list(range(low, high + 1)))
    linked: list[Header] = []
    for header in headers:
        if header is None or (linked and header.parent != linked[-1].hash):
            break
        linked.append(header)
    return with_raw_txs(client, linked, seen_ns=0)
