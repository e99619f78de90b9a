"""The checker: what clients were answered, held against each other and against the chain.

Place in the flow: load -> observations (`harness.measure.observations`) -> **checker** ->
verdict (`check_metrics`: per-phase counts an SLO names, ``head_regressions[fault]``).
Jepsen's idea applied to JSON-RPC: behind a balancer a client talks to nodes that each
see the one chain at their own moment, and every answer it gets must fit one history of
that chain, given what it had already been told. Pure: the chain is what the replicator
logged, asked through `ChainLog`; nothing here does I/O.

A session is one client (a Locust user: one connection, one request at a time; the
frontend probes are one more, ``probes``). What a session "had been told" when it sent a
request is what it had been *answered* by then: an answer arriving at or before the send.
A session's **floor** then is the lowest head the chain can honestly show it: the highest
head it had been advertised (eth_blockNumber, a ``latest`` block), less the deepest reorg
of the chain since that answer (a reorg of depth d may move the head back d blocks). The
anomalies, each counted once per answer, at the request's send time:

- ``head_regressions``: an advertised head below the session's floor.
- ``unknown_advertised_block``: a block asked by number (eth_getBlockByNumber; the range
  end of eth_getLogs) answered null or with an unknown-block error ("header not found",
  anvil's out-of-range), though it is at or below the session's floor; and ``latest``
  answered so, once the session had been advertised any head.
- ``hash_mismatch``: an answer showed a block (a block; a receipt's blockNumber and
  blockHash; a log's) on no branch the chain ever had. A reorged-out branch is a branch.
- ``vanished_receipts``: a receipt the session had been answered, then null for the same
  transaction, unless the chain reorged between the two answers and the receipt's block was
  within the reach of that reorg (it left the canonical chain, or it was less than the
  reorg's depth below the source's head when the receipt was seen).
- ``missing_logs``: eth_getLogs answered fewer logs in a block than the block has, for a
  block at or below the session's floor. What a block has: ``ChainLog.logs_in``, or where
  the chain log cannot say (None), the most logs any answer (of any session) showed for
  that block and filter. For a block absent from the answer, the block is taken on the
  branch least favourable to the anomaly: the fewest logs among its canonical hash and
  every hash of a branch that any answer showed at that number.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from harness.errors import ConfigError
from harness.measure.observations import BlockSeen, Observation
from harness.measure.samples import FRONTEND, ProbeSample

HEAD_REGRESSIONS = "head_regressions"
UNKNOWN_ADVERTISED_BLOCK = "unknown_advertised_block"
HASH_MISMATCH = "hash_mismatch"
VANISHED_RECEIPTS = "vanished_receipts"
MISSING_LOGS = "missing_logs"
KINDS = (HEAD_REGRESSIONS, UNKNOWN_ADVERTISED_BLOCK, HASH_MISMATCH, VANISHED_RECEIPTS, MISSING_LOGS)
PROBES_SESSION = "probes"
EXAMPLES = 5
#: eth_getLogs ranges longer than this are not judged block by block (the load asks for 2).
MAX_LOG_RANGE = 1024


class ChainLog(Protocol):
    """The one chain, as the chain source logged it: every block it mined, reorged-out ones
    too. Hashes are 0x-prefixed lower-case hex; times are ``time.monotonic_ns()``. The
    arguments are positional: an implementation may name them as it likes."""

    def on_any_branch(self, number: int, hash: str, /) -> bool:
        """Whether the source ever had block ``number`` with this hash (canonical or not)."""
        ...

    def canonical_hash(self, number: int, /) -> str | None:
        """The hash of block ``number`` on the canonical chain; None if it has none (yet)."""
        ...

    def deepest_reorg(self, start_ns: int, end_ns: int, /) -> int:
        """The depth (blocks of the old branch replaced) of the deepest reorg the source made
        at a time in [start_ns, end_ns]; 0 if none."""
        ...

    def head_at(self, t_ns: int, /) -> int | None:
        """The source's head at ``t_ns``; None before its first block."""
        ...

    def logs_in(self, number: int, hash: str, /) -> int | None:
        """How many logs the load's eth_getLogs filters see in that block (the workload
        contract's Swap logs: all three filters see the same); None if unknown."""
        ...


@dataclass(frozen=True)
class Anomaly:
    """One answer that fits no history of the chain: which kind, the answer, and why."""

    kind: str
    observation: Observation
    why: str

    @property
    def at_ns(self) -> int:
        """When the request was sent: the time phases are judged by."""
        return self.observation.sent_ns


@dataclass(frozen=True)
class CheckResult:
    """Every anomaly's time per kind (sorted), and the first few of each kind (in each
    window asked for) in full."""

    observations: int
    sessions: int
    times_ns: dict[str, tuple[int, ...]] = field(default_factory=dict)
    examples: dict[str, tuple[Anomaly, ...]] = field(default_factory=dict)

    def count(self, kind: str, start_ns: int | None = None, end_ns: int | None = None) -> int:
        """Anomalies of ``kind`` whose request was sent in [start_ns, end_ns) (default: all)."""
        if kind not in KINDS:
            raise ConfigError("anomaly kind", kind, f"choose one of {', '.join(KINDS)}")
        times = self.times_ns.get(kind, ())
        lo = 0 if start_ns is None else bisect_left(times, start_ns)
        hi = len(times) if end_ns is None else bisect_left(times, end_ns)
        return max(0, hi - lo)

    def counts(self) -> dict[str, int]:
        """Every kind's total."""
        return {kind: len(self.times_ns.get(kind, ())) for kind in KINDS}


def check_metrics(result: CheckResult, phases: Iterable[tuple[str, int, int]]) -> dict[str, float]:
    """Each kind's count per phase, keyed as SLOs name them: ``head_regressions[fault]``.
    ``phases`` are (name, start_ns, end_ns) windows, [start, end)."""
    return {
        f"{kind}[{name}]": float(result.count(kind, start, end))
        for name, start, end in phases
        for kind in KINDS
    }


def probe_observations(samples: Iterable[ProbeSample]) -> list[Observation]:
    """The frontend probes' answered heads, as observations of the ``probes`` session
    (sent when due; several may be in flight at once)."""
    return [
        Observation(
            session=PROBES_SESSION,
            sent_ns=s.intended_ns,
            answered_ns=s.intended_ns + int(s.latency_us * 1000),
            method="eth_blockNumber",
            key="",
            outcome="ok",
            head=s.head,
        )
        for s in samples
        if s.target == FRONTEND and s.outcome == "ok" and s.head is not None
    ]


def check(
    observations: Iterable[Observation],
    chain: ChainLog,
    probe_heads: Iterable[ProbeSample] = (),
    *,
    examples: int = EXAMPLES,
    windows_ns: Sequence[int] = (),
) -> CheckResult:
    """Judge every observation (and frontend probe) against its session's past and the chain;
    keep the first ``examples`` anomalies of each kind (by send time), in each window that
    starts at one of ``windows_ns`` (sorted; a run's episodes) and in the time before."""
    ordered = sorted([*observations, *probe_observations(probe_heads)], key=_sent)
    if not ordered:
        return CheckResult(0, 0, {k: () for k in KINDS}, {k: () for k in KINDS})
    checker = _Checker(chain, ordered, examples, windows_ns)
    for o in ordered:
        checker.judge(o)
    return CheckResult(
        observations=len(ordered),
        sessions=len(checker.sessions),
        times_ns={k: tuple(v) for k, v in checker.times.items()},
        examples={k: tuple(v) for k, v in checker.examples.items()},
    )


def _sent(o: Observation) -> int:
    return o.sent_ns


class _Session:
    """What one session had been answered so far."""

    __slots__ = ("heads", "pending", "receipts")

    def __init__(self) -> None:
        # Answers not yet arrived at the time of the request being judged: (answered, seq, o).
        self.pending: list[tuple[int, int, Observation]] = []
        # The heads advertised that nothing later and higher supersedes: (head, answered_ns),
        # heads decreasing, times increasing. Usually one; a regression adds one.
        self.heads: list[tuple[int, int]] = []
        self.receipts: dict[str, tuple[BlockSeen, int]] = {}  # tx hash -> block, answered_ns


class _Checker:
    def __init__(
        self,
        chain: ChainLog,
        ordered: Sequence[Observation],
        examples: int,
        windows_ns: Sequence[int] = (),
    ) -> None:
        self.chain = chain
        self.limit = examples
        self.windows_ns = tuple(windows_ns)
        # Examples kept so far per (kind, window): a late episode keeps its own.
        self._kept: dict[tuple[str, int], int] = {}
        self.sessions: dict[str, _Session] = {}
        self.times: dict[str, list[int]] = {k: [] for k in KINDS}
        self.examples: dict[str, list[Anomaly]] = {k: [] for k in KINDS}
        self._seq = 0
        self._branch: dict[tuple[int, str], bool] = {}
        self._canonical: dict[int, str | None] = {}
        self._logs: dict[tuple[int, str], int | None] = {}
        first = ordered[0].sent_ns
        last = max(o.answered_ns for o in ordered)
        # No reorg in the whole run (the common case): no floor needs the chain.
        self.reorgs = chain.deepest_reorg(first, last) > 0
        # What every answer showed, for missing_logs where the chain log cannot say.
        self.hashes_at: dict[int, set[str]] = {}
        self.most_logs: dict[tuple[str, int, str], int] = {}
        for o in ordered:
            if not o.ok:
                continue
            for b in o.blocks:
                self.hashes_at.setdefault(b.number, set()).add(b.hash)
                if o.method == "eth_getLogs":
                    key = (o.log_filter, b.number, b.hash)
                    self.most_logs[key] = max(self.most_logs.get(key, 0), b.logs)

    # -- the chain, asked once per question --------------------------------------------

    def on_any_branch(self, b: BlockSeen) -> bool:
        key = (b.number, b.hash)
        known = self._branch.get(key)
        if known is None:
            known = self._branch[key] = self.chain.on_any_branch(b.number, b.hash)
        return known

    def canonical(self, number: int) -> str | None:
        if number not in self._canonical:
            self._canonical[number] = self.chain.canonical_hash(number)
        return self._canonical[number]

    def logs_in(self, log_filter: str, number: int, block_hash: str) -> int:
        key = (number, block_hash)
        if key not in self._logs:
            self._logs[key] = self.chain.logs_in(number, block_hash)
        known = self._logs[key]
        if known is not None:
            return known
        return self.most_logs.get((log_filter, number, block_hash), 0)

    def floor(self, s: _Session, end_ns: int) -> tuple[int, int, int] | None:
        """(floor, the head it comes from, the reorg depth since) for a request answered at
        ``end_ns``; None if the session had been advertised no head."""
        if not s.heads:
            return None
        head, t = s.heads[0]
        if not self.reorgs:
            return head, head, 0
        best: tuple[int, int, int] | None = None
        for head, t in s.heads:
            depth = self.chain.deepest_reorg(t, end_ns)
            if best is None or head - depth > best[0]:
                best = (head - depth, head, depth)
        return best

    # -- judging ------------------------------------------------------------------------

    def judge(self, o: Observation) -> None:
        s = self.sessions.get(o.session)
        if s is None:
            s = self.sessions[o.session] = _Session()
        while s.pending and s.pending[0][0] <= o.sent_ns:
            self._learn(s, heapq.heappop(s.pending)[2])
        if o.ok:
            if o.head is not None:
                self._head(s, o)
            if o.blocks:
                self._hashes(o)
            if o.method == "eth_getTransactionReceipt" and o.null:
                self._receipt(s, o)
            elif o.method == "eth_getLogs" and o.first_block is not None:
                self._logs_complete(s, o)
        if (o.null or o.unknown_block) and o.method in ("eth_getBlockByNumber", "eth_getLogs"):
            self._unknown(s, o)
        if o.ok and (o.head is not None or (o.blocks and o.method == "eth_getTransactionReceipt")):
            self._seq += 1
            heapq.heappush(s.pending, (o.answered_ns, self._seq, o))

    def _learn(self, s: _Session, o: Observation) -> None:
        """The session has now been told what ``o`` answered."""
        if o.head is not None:
            while s.heads and s.heads[-1][0] <= o.head:
                s.heads.pop()
            s.heads.append((o.head, o.answered_ns))
        if o.method == "eth_getTransactionReceipt" and o.blocks:
            s.receipts[o.key] = (o.blocks[0], o.answered_ns)

    def _found(self, kind: str, o: Observation, why: str) -> None:
        self.times[kind].append(o.sent_ns)
        key = (kind, bisect_right(self.windows_ns, o.sent_ns))
        kept = self._kept.get(key, 0)
        if kept < self.limit:
            self._kept[key] = kept + 1
            self.examples[kind].append(Anomaly(kind, o, why))

    def _head(self, s: _Session, o: Observation) -> None:
        assert o.head is not None
        if not s.heads or o.head >= s.heads[0][0]:
            return
        floor = self.floor(s, o.answered_ns)
        if floor is not None and o.head < floor[0]:
            _, head, depth = floor
            self._found(
                HEAD_REGRESSIONS,
                o,
                f"head {o.head} after {head} had been answered"
                + (
                    f" (a reorg of {depth} since explains {head - depth} at least)" if depth else ""
                ),
            )

    def _unknown(self, s: _Session, o: Observation) -> None:
        what = "null" if o.null else o.outcome
        if o.last_block is None:
            if o.method == "eth_getBlockByNumber" and o.key.startswith("latest") and s.heads:
                self._found(
                    UNKNOWN_ADVERTISED_BLOCK,
                    o,
                    f"latest block {what} after head {s.heads[0][0]} had been answered",
                )
            return
        floor = self.floor(s, o.answered_ns)
        if floor is not None and o.last_block <= floor[0]:
            self._found(
                UNKNOWN_ADVERTISED_BLOCK,
                o,
                f"block {o.last_block} {what} after head {floor[1]} had been answered",
            )

    def _hashes(self, o: Observation) -> None:
        for b in o.blocks:
            if not self.on_any_branch(b):
                self._found(
                    HASH_MISMATCH, o, f"block {b.number} {b.hash} is on no branch of the chain"
                )
                return

    def _receipt(self, s: _Session, o: Observation) -> None:
        seen = s.receipts.get(o.key)
        if seen is None:
            return
        block, seen_ns = seen
        depth = self.chain.deepest_reorg(seen_ns, o.answered_ns) if self.reorgs else 0
        if depth:
            head = self.chain.head_at(seen_ns)
            if self.canonical(block.number) != block.hash or head is None:
                return  # its block left the canonical chain
            if block.number > head - depth:
                return  # within the reorg's reach
        self._found(
            VANISHED_RECEIPTS,
            o,
            f"receipt in block {block.number} {block.hash[:10]} had been answered "
            f"{(o.sent_ns - seen_ns) / 1e9:.3f} s before"
            + (f"; the reorg since ({depth}) could not reach it" if depth else "; no reorg since"),
        )

    def _logs_complete(self, s: _Session, o: Observation) -> None:
        first, last = o.first_block, o.last_block
        if first is None or last is None or not 0 <= last - first < MAX_LOG_RANGE:
            return
        shown = {b.number: b for b in o.blocks}
        short: list[tuple[int, int, int]] = []  # (block, answered, expected)
        for number in range(first, last + 1):
            b = shown.get(number)
            if b is not None:
                expected = self.logs_in(o.log_filter, number, b.hash)
                if b.logs < expected:
                    short.append((number, b.logs, expected))
                continue
            candidates = {
                h
                for h in self.hashes_at.get(number, ())
                if self.on_any_branch(BlockSeen(number, h))
            }
            canonical = self.canonical(number)
            if canonical is not None:
                candidates.add(canonical)
            if candidates:
                expected = min(self.logs_in(o.log_filter, number, h) for h in candidates)
                if expected > 0:
                    short.append((number, 0, expected))
        if not short:
            return
        floor = self.floor(s, o.answered_ns)
        if floor is None:
            return
        known = [x for x in short if x[0] <= floor[0]]
        if known:
            number, got, expected = known[0]
            self._found(
                MISSING_LOGS,
                o,
                f"{got} logs in block {number}, which has {expected}, after head {floor[1]} "
                "had been answered",
            )
