"""What clients saw: one `Observation` per answer to a checked method, and its file format.

Place in the flow: load (each Locust worker writes its observations) -> **observations** ->
checker (`harness.measure.checker`) -> verdict. The samples say how fast and how often a
request failed; an observation says *what* it was answered, so that the checker can hold
the answers against each other and against the chain.

Only four methods are checked: eth_blockNumber, eth_getBlockByNumber (``latest`` or a
number, full or not), eth_getLogs and eth_getTransactionReceipt. A worker appends one line
per answer to ``checks-<pid>.txt`` beside its samples (a remote worker's come through the
master into ``checks-remote-<worker id>.txt``), flushed with the samples every 100 ms:

    <sent_ns> <answered_ns> <session> <label> <outcome> <result> <params>

``sent_ns``/``answered_ns`` are ``time.monotonic_ns()`` (the harness's clock; a remote
worker's are moved onto it by the master). ``session`` is one Locust user of one process
(``<pid>.<user>``): its requests go one after the other over one connection. ``label`` is
the sample's method label, ``outcome`` the sample's outcome. ``params`` is the request's
``params`` JSON as sent: the worker does not parse its own requests; the reader does, once
per distinct request. ``result`` is the answer, summarised by `summarize` (the worker's
per-request cost, so it is byte searches, not a JSON parse):

- ``0x1a``: eth_blockNumber's head;
- ``0x1a:0x<hash>``: a block's number and hash, or a receipt's blockNumber and blockHash;
- ``0x1a:0x<hash>:3,0x1b:0x<hash>:1``: eth_getLogs: each block its logs carry, with how
  many; ``[]`` for none;
- ``null``: the answer was null (no such block, no such receipt);
- ``unknown``: a failure whose message says the node does not have the block (geth's
  "header not found", "unknown block", anvil's BlockOutOfRangeError);
- ``-``: any other failure; ``?``: an answer that could not be read.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: The method labels whose answers are observed (`harness.load.workload` labels).
CHECKED_LABELS = frozenset(
    {
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByNumber_full",
        "eth_getLogs",
        "eth_getTransactionReceipt",
    }
)
FILE_GLOB = "checks-*.txt"
#: The outcome a header-not-found style JSON-RPC error is classified as (`harness.jsonrpc`).
HEADER_NOT_FOUND = "rpc_header_not_found"

NULL = "null"
UNKNOWN = "unknown"
FAILED = "-"
UNREADABLE = "?"
NO_LOGS = "[]"


@dataclass(frozen=True, slots=True)
class BlockSeen:
    """A block an answer showed: its number and hash, and (eth_getLogs) how many logs in it."""

    number: int
    hash: str  # 0x-prefixed, lower case
    logs: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """One answer a client got to a checked method, and what it asked.

    ``head`` is the head the answer advertised (eth_blockNumber's result, a ``latest``
    block's number); ``blocks`` are the blocks it showed (a block, a receipt's block, the
    logs' blocks); ``null`` an ok answer of null; ``unknown_block`` a failure saying the
    node does not have the block. ``first_block``..``last_block`` is the block range the
    request named (a block by number: one block; eth_getLogs: its range), None for a tag.
    ``key`` is the request as one string: ``latest``/``0x1a`` (`` full`` if with full
    transactions), ``0x19-0x1a address+topics`` (range and filter), a transaction hash.
    """

    session: str
    sent_ns: int
    answered_ns: int
    method: str  # the JSON-RPC method
    key: str
    outcome: str  # "ok", or the sample's error class
    head: int | None = None
    blocks: tuple[BlockSeen, ...] = ()
    null: bool = False
    unknown_block: bool = False
    first_block: int | None = None
    last_block: int | None = None
    log_filter: str = ""  # eth_getLogs: address, topics or address+topics

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def answer(self) -> str:
        """What the answer was, in a few words (for a report's examples)."""
        if not self.ok:
            return f"{self.outcome}{' (unknown block)' if self.unknown_block else ''}"
        if self.null:
            return "null"
        if self.method == "eth_blockNumber":
            return f"head {self.head}"
        if self.method == "eth_getLogs":
            if not self.blocks:
                return "no logs"
            return ", ".join(f"{b.logs} in {b.number} {b.hash[:10]}" for b in self.blocks)
        return ", ".join(f"block {b.number} {b.hash[:10]}" for b in self.blocks) or "?"


# -- the worker's side: summarising an answer, per request -------------------------------

_RESULT = b'"result":'
_UNKNOWN_BLOCK = re.compile(
    rb"header not found|unknown block|BlockOutOfRange|block height is", re.IGNORECASE
)
_LOG_HASH = re.compile(rb'"blockHash":"(0x[0-9a-fA-F]{64})"')
_LOG_NUMBER = re.compile(rb'"blockNumber":"(0x[0-9a-fA-F]+)"')
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")


def summarize(label: str, ok: bool, body: bytes) -> str:
    """The ``result`` field of an observation line, from the HTTP body of the answer.

    Byte searches on the common compact form (anvil's, geth's); anything else is parsed
    (`summarize_parsed`, which this must agree with). Never raises."""
    if not ok:
        return UNKNOWN if _UNKNOWN_BLOCK.search(body) else FAILED
    try:
        start = body.find(_RESULT)
        if start < 0:
            return summarize_parsed(label, body)
        start += len(_RESULT)
        if body.startswith(b"null", start):
            return NULL
        if label == "eth_blockNumber":
            end = body.find(b'"', start + 1)
            if body[start : start + 3] == b'"0x' and end > 0:
                return body[start + 1 : end].decode()
        elif label == "eth_getLogs":
            if body.startswith(b"[]", start):
                return NO_LOGS
            token = _logs_fast(body, start)
            if token:
                return token
            hashes = _LOG_HASH.findall(body, start)
            numbers = _LOG_NUMBER.findall(body, start)
            if hashes and len(hashes) == len(numbers):
                return _logs_token(zip(numbers, hashes, strict=True))
        elif label == "eth_getTransactionReceipt":
            h = body.find(b'"blockHash":"', start)
            n = body.find(b'"blockNumber":"', start)
            if h > 0 and n > 0:
                return _block_token(body, n + 15, h + 13)
        else:  # eth_getBlockByNumber(_full): the block's own hash and number come before
            # its transactions (anvil's order, and geth's alphabetical one); a full
            # block's transactions have hashes of their own.
            h = body.find(b'"hash":"', start)
            n = body.find(b'"number":"', start)
            t = body.find(b'"transactions":', start)
            if h > 0 and n > 0 and (t < 0 or (h < t and n < t)):
                return _block_token(body, n + 10, h + 8)
    except Exception:  # a malformed answer must not break the load loop
        return UNREADABLE
    return summarize_parsed(label, body)


_BLOCK_HASH = b'"blockHash":"'
_BLOCK_NUMBER = b'"blockNumber":"'


def _logs_fast(body: bytes, start: int) -> str:
    """The logs token when the logs are in one or two blocks (the load asks for two), by
    counting: each log carries its block's hash and number once, so the first and the last
    log name the blocks, and counting each block's hash says whether every log is in one of
    them. "" when that does not add up. Three scans of the body, where a regex costs 4 and
    a JSON parse 12. Assumes what every node does: one number per block hash."""
    total = body.count(_BLOCK_HASH, start)  # a scan of the body: one costs ~0.3 us/kB
    if not total:
        return ""
    first_h = body.find(_BLOCK_HASH, start) + len(_BLOCK_HASH)
    last_h = body.rfind(_BLOCK_HASH) + len(_BLOCK_HASH)
    first_n = body.find(_BLOCK_NUMBER, start) + len(_BLOCK_NUMBER)
    last_n = body.rfind(_BLOCK_NUMBER) + len(_BLOCK_NUMBER)
    h1, h2 = body[first_h : first_h + 66], body[last_h : last_h + 66]
    n1 = body[first_n : body.find(b'"', first_n)]
    n2 = body[last_n : body.find(b'"', last_n)]
    if b'"' in h1 or b'"' in h2 or not (n1.startswith(b"0x") and n2.startswith(b"0x")):
        return ""
    c1 = body.count(_BLOCK_HASH + h1, start)
    one = f"{n1.decode()}:{h1.decode().lower()}:{c1}"
    if h1 == h2:
        return one if c1 == total and n1 == n2 else ""
    if c1 + body.count(_BLOCK_HASH + h2, start) != total:
        return ""
    return f"{one},{n2.decode()}:{h2.decode().lower()}:{total - c1}"


def _block_token(body: bytes, number_at: int, hash_at: int) -> str:
    number = body[number_at : body.find(b'"', number_at)]
    if body[hash_at + 66 : hash_at + 67] != b'"' or not number.startswith(b"0x"):
        raise ValueError("not a compact block hash and number")
    return f"{number.decode()}:{body[hash_at : hash_at + 66].decode().lower()}"


def _logs_token(pairs: Iterable[tuple[bytes, bytes]]) -> str:
    """``number:hash:count`` per block the logs are in, in the order first seen."""
    counts: dict[tuple[bytes, bytes], int] = {}
    for number, block_hash in pairs:
        key = (number, block_hash.lower())
        counts[key] = counts.get(key, 0) + 1
    return ",".join(f"{n.decode()}:{h.decode()}:{c}" for (n, h), c in counts.items())


def summarize_parsed(label: str, body: bytes) -> str:
    """`summarize` of an ok answer by a full JSON parse (the reference of the fast path)."""
    try:
        result = json.loads(body)["result"]
        if result is None:
            return NULL
        if label == "eth_blockNumber":
            return _checked_hex(result)
        if label == "eth_getLogs":
            if not result:
                return NO_LOGS
            return _logs_token(
                (
                    _checked_hex(log["blockNumber"]).encode(),
                    _checked_hash(log["blockHash"]).encode(),
                )
                for log in result
            )
        if label == "eth_getTransactionReceipt":
            number, block_hash = result["blockNumber"], result["blockHash"]
        else:
            number, block_hash = result["number"], result["hash"]
        return f"{_checked_hex(number)}:{_checked_hash(block_hash).lower()}"
    except Exception:
        return UNREADABLE


def _checked_hex(value: Any) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise ValueError(f"not a hex quantity: {value!r}")
    return value


def _checked_hash(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 66 or not _HEX.match(value):
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return value


def observation_line(
    sent_ns: int, answered_ns: int, session: str, label: str, outcome: str, result: str, body: bytes
) -> str:
    """One line of a checks file; ``body`` is the request (its ``params`` are kept as sent)."""
    params = body[body.rfind(b'"params":') + 9 : -1].decode()
    return f"{sent_ns} {answered_ns} {session} {label} {outcome} {result} {params}\n"


def move_line(line: str, offset_ns: int, session_prefix: str) -> str | None:
    """A remote worker's line moved onto this host's clock, its session made unique here;
    None if it is not an observation line."""
    parts = line.split(" ", 3)
    if len(parts) != 4 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    sent, answered = int(parts[0]) + offset_ns, int(parts[1]) + offset_ns
    return f"{sent} {answered} {session_prefix}/{parts[2]} {parts[3]}\n"


# -- the harness's side: reading them back -----------------------------------------------


@functools.lru_cache(maxsize=4096)
def _request(label: str, params: str) -> tuple[str, str, int | None, int | None, str]:
    """(method, key, first block, last block, log filter) of a request's params."""
    method = label.removesuffix("_full")
    try:
        args = json.loads(params)
    except ValueError:
        return method, params, None, None, ""
    if not isinstance(args, list) or not args:
        return method, "", None, None, ""
    first = args[0]
    if method == "eth_getBlockByNumber" and isinstance(first, str):
        full = " full" if len(args) > 1 and args[1] is True else ""
        number = int(first, 16) if _HEX.match(first) else None
        return method, first + full, number, number, ""
    if method == "eth_getLogs" and isinstance(first, dict):
        low, high = first.get("fromBlock"), first.get("toBlock")
        what = "+".join(k for k in ("address", "topics") if k in first) or "all"
        lo = int(low, 16) if isinstance(low, str) and _HEX.match(low) else None
        hi = int(high, 16) if isinstance(high, str) and _HEX.match(high) else None
        return method, f"{low}-{high} {what}", lo, hi, what
    if method == "eth_getTransactionReceipt" and isinstance(first, str):
        return method, first.lower(), None, None, ""
    return method, params, None, None, ""


@functools.lru_cache(maxsize=65536)
def _blocks(result: str) -> tuple[BlockSeen, ...]:
    blocks = []
    for part in result.split(","):
        fields = part.split(":")
        logs = int(fields[2]) if len(fields) > 2 else 0
        blocks.append(BlockSeen(int(fields[0], 16), fields[1], logs))
    return tuple(blocks)


def parse_line(line: str) -> Observation | None:
    """The `Observation` of one line of a checks file; None for a line that is not one."""
    parts = line.rstrip("\n").split(" ", 6)
    if len(parts) != 7:
        return None
    sent, answered, session, label, outcome, result, params = parts
    if label not in CHECKED_LABELS or not (sent.isdigit() and answered.isdigit()):
        return None
    method, key, first, last, log_filter = _request(label, params)
    head: int | None = None
    blocks: tuple[BlockSeen, ...] = ()
    try:
        if result in (NULL, UNKNOWN, FAILED, UNREADABLE, NO_LOGS):
            pass
        elif method == "eth_blockNumber":
            head = int(result, 16)
        else:
            blocks = _blocks(result)
            if method == "eth_getBlockByNumber" and key.startswith("latest"):
                head = blocks[0].number
    except (ValueError, IndexError):
        return None
    return Observation(
        session=sys.intern(session),  # one string per session, not one per line
        sent_ns=int(sent),
        answered_ns=int(answered),
        method=method,
        key=key,
        outcome=sys.intern(outcome),
        head=head,
        blocks=blocks,
        null=result == NULL and outcome == "ok",
        unknown_block=result == UNKNOWN or outcome == HEADER_NOT_FOUND,
        first_block=first,
        last_block=last,
        log_filter=log_filter,
    )


_READ_CHARS = 1 << 21


class ObservationTail:
    """Reads the complete lines appended to every ``checks-*.txt`` in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[Path, IO[str]] = {}
        self._partial: dict[Path, str] = {}

    def poll(self) -> list[Observation]:
        """The observations appended since the last poll (a line still being written waits)."""
        found: list[Observation] = []
        for path in sorted(self.directory.glob(FILE_GLOB)):
            if path not in self._files:
                self._files[path] = open(path)  # noqa: SIM115 - closed in close()
            # In pieces: an hour's file is ~30 MiB of text, its observations ~50 MiB.
            while data := self._files[path].read(_READ_CHARS):
                lines = (self._partial.pop(path, "") + data).split("\n")
                if lines[-1]:
                    self._partial[path] = lines[-1]
                for line in lines[:-1]:
                    o = parse_line(line)
                    if o is not None:
                        found.append(o)
        return found

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def __enter__(self) -> ObservationTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_observations(directory: Path) -> list[Observation]:
    """Every observation in a load's samples directory (each file in the order written)."""
    with ObservationTail(directory) as tail:
        return tail.poll()
