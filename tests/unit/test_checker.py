"""The checker: what clients were answered, against their own past and against the chain;
and the observation lines the load writes for it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.measure import FRONTEND, ProbeSample
from harness.measure.checker import (
    HASH_MISMATCH,
    HEAD_REGRESSIONS,
    KINDS,
    MISSING_LOGS,
    UNKNOWN_ADVERTISED_BLOCK,
    VANISHED_RECEIPTS,
    CheckResult,
    check,
    check_metrics,
)
from harness.measure.observations import (
    BlockSeen,
    Observation,
    ObservationTail,
    move_line,
    observation_line,
    parse_line,
    read_observations,
    summarize,
    summarize_parsed,
)

MS = 1_000_000


def h(tag: str) -> str:
    """A block hash, recognisable in a failure: h("5a") is 0x5a00...00."""
    return "0x" + tag.ljust(64, "0")


@dataclass
class FakeChain:
    """A chain log written by hand: the canonical blocks, the reorged-out ones, reorgs
    (time, depth), the source's heads (time, head) and the logs per block (None: unknown)."""

    canonical: dict[int, str] = field(default_factory=dict)
    orphans: set[tuple[int, str]] = field(default_factory=set)
    reorgs: list[tuple[int, int]] = field(default_factory=list)
    heads: list[tuple[int, int]] = field(default_factory=list)
    logs: dict[tuple[int, str], int] | None = field(default_factory=dict)

    def on_any_branch(self, number: int, hash: str) -> bool:
        return self.canonical.get(number) == hash or (number, hash) in self.orphans

    def canonical_hash(self, number: int) -> str | None:
        return self.canonical.get(number)

    def deepest_reorg(self, start_ns: int, end_ns: int) -> int:
        return max((d for t, d in self.reorgs if start_ns <= t <= end_ns), default=0)

    def head_at(self, t_ns: int) -> int | None:
        before = [head for t, head in self.heads if t <= t_ns]
        return before[-1] if before else None

    def logs_in(self, number: int, hash: str) -> int | None:
        if self.logs is None:
            return None
        return self.logs.get((number, hash), 0)


def linear(top: int = 100) -> FakeChain:
    """Blocks 0..top, one branch, no logs, no reorg."""
    return FakeChain(canonical={n: h(f"{n:x}") for n in range(top + 1)})


def obs(
    t_ms: float,
    method: str,
    *,
    session: str = "1.0",
    answered_ms: float | None = None,
    **kw: object,
) -> Observation:
    """An observation sent at ``t_ms`` and answered 1 ms later (or at ``answered_ms``)."""
    sent = int(t_ms * MS)
    answered = sent + MS if answered_ms is None else int(answered_ms * MS)
    return Observation(session, sent, answered, method, outcome=kw.pop("outcome", "ok"), **kw)  # type: ignore[arg-type]


def head(t_ms: float, number: int, **kw: object) -> Observation:
    return obs(t_ms, "eth_blockNumber", key="", head=number, **kw)


def block(t_ms: float, number: int, block_hash: str | None = None, **kw: object) -> Observation:
    seen = (BlockSeen(number, block_hash or h(f"{number:x}")),)
    return obs(
        t_ms, "eth_getBlockByNumber", key=hex(number), blocks=seen,
        first_block=number, last_block=number, **kw,
    )  # fmt: skip


def latest(t_ms: float, number: int, **kw: object) -> Observation:
    seen = (BlockSeen(number, h(f"{number:x}")),)
    return obs(t_ms, "eth_getBlockByNumber", key="latest", head=number, blocks=seen, **kw)


def no_block(t_ms: float, number: int, **kw: object) -> Observation:
    """Block ``number`` answered null (or, with ``outcome`` and ``unknown_block``, an error)."""
    kw.setdefault("null", kw.get("outcome", "ok") == "ok")
    return obs(
        t_ms, "eth_getBlockByNumber", key=hex(number), first_block=number, last_block=number,
        **kw,
    )  # fmt: skip


def receipt(t_ms: float, tx: str, at: BlockSeen | None, **kw: object) -> Observation:
    if at is None:
        return obs(t_ms, "eth_getTransactionReceipt", key=tx, null=True, **kw)
    return obs(t_ms, "eth_getTransactionReceipt", key=tx, blocks=(at,), **kw)


def logs(
    t_ms: float, first: int, last: int, seen: Iterable[BlockSeen] = (), **kw: object
) -> Observation:
    return obs(
        t_ms, "eth_getLogs", key=f"{hex(first)}-{hex(last)} address", blocks=tuple(seen),
        first_block=first, last_block=last, log_filter="address", **kw,
    )  # fmt: skip


def counts(result: CheckResult) -> dict[str, int]:
    return {k: v for k, v in result.counts().items() if v}


# -- head regressions ------------------------------------------------------------------------


def test_a_head_that_only_grows_or_repeats_is_no_regression() -> None:
    seen = [head(0, 10), head(10, 10), head(20, 11), latest(30, 12), head(40, 12)]
    assert counts(check(seen, linear())) == {}


def test_a_head_below_one_the_session_was_answered_is_a_regression() -> None:
    seen = [head(0, 26), head(10, 10), head(20, 11), head(30, 27)]
    result = check(seen, linear())
    assert counts(result) == {HEAD_REGRESSIONS: 2}  # 10 and 11, both below 26
    first = result.examples[HEAD_REGRESSIONS][0]
    assert (first.observation.head, first.at_ns) == (10, 10 * MS)
    assert "after 26" in first.why


def test_a_latest_block_advertises_its_number_as_a_head() -> None:
    assert counts(check([latest(0, 26), head(10, 25)], linear())) == {HEAD_REGRESSIONS: 1}
    assert counts(check([head(0, 26), latest(10, 25)], linear())) == {HEAD_REGRESSIONS: 1}


def test_a_regression_explained_by_a_reorg_in_between_is_not_counted() -> None:
    chain = linear()
    chain.reorgs = [(5 * MS, 3)]
    seen = [head(0, 26), head(10, 23), head(20, 22)]
    result = check(seen, chain)
    # 23 is what a reorg of 3 blocks from 26 can show; 22 is one block more than it explains.
    assert counts(result) == {HEAD_REGRESSIONS: 1}
    assert result.examples[HEAD_REGRESSIONS][0].observation.head == 22


def test_a_reorg_before_the_higher_head_was_answered_explains_nothing() -> None:
    chain = linear()
    chain.reorgs = [(5 * MS, 3)]
    seen = [head(0, 20), head(10, 26), head(20, 24)]
    assert counts(check(seen, chain)) == {HEAD_REGRESSIONS: 1}


def test_a_regression_counts_only_against_answers_that_arrived_before_the_request_was_sent() -> (
    None
):
    # Probes overlap: the one sent at 5 ms was still in flight when the one at 10 ms left.
    probes = [
        ProbeSample(FRONTEND, 0, 1000.0, "ok", 20),
        ProbeSample(FRONTEND, 5 * MS, 20_000.0, "ok", 26),  # answered at 25 ms
        ProbeSample(FRONTEND, 10 * MS, 1000.0, "ok", 21),  # sent before 26 arrived: fine
        ProbeSample(FRONTEND, 30 * MS, 1000.0, "ok", 22),  # sent after: a regression
        ProbeSample("node-0", 40 * MS, 1000.0, "ok", 1),  # a node's probe is no client's
    ]
    result = check([], linear(), probes)
    assert counts(result) == {HEAD_REGRESSIONS: 1}
    assert result.examples[HEAD_REGRESSIONS][0].observation.session == "probes"
    assert result.examples[HEAD_REGRESSIONS][0].at_ns == 30 * MS


def test_heads_told_to_another_session_do_not_count() -> None:
    seen = [head(0, 26, session="a"), head(10, 10, session="b")]
    assert counts(check(seen, linear())) == {}


def test_failed_answers_advertise_nothing() -> None:
    seen = [obs(0, "eth_blockNumber", key="", outcome="timeout"), head(10, 10)]
    assert counts(check(seen, linear())) == {}


def reference_regressions(seen: list[Observation], chain: FakeChain) -> int:
    """The definition, by brute force: below some earlier answer less the reorgs since."""
    found = 0
    for j, o in enumerate(seen):
        assert o.head is not None
        floors = [
            p.head - chain.deepest_reorg(p.answered_ns, o.answered_ns)
            for p in seen[:j]
            if p.head is not None and p.answered_ns <= o.sent_ns
        ]
        found += bool(floors) and o.head < max(floors)
    return found


@settings(max_examples=300, deadline=None)
@given(
    heads=st.lists(st.integers(0, 30), min_size=1, max_size=40),
    reorgs=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 6)), max_size=4),
)
def test_regressions_of_a_sequential_session_are_exactly_the_definition(
    heads: list[int], reorgs: list[tuple[int, int]]
) -> None:
    chain = linear()
    chain.reorgs = [(t * MS, d) for t, d in reorgs]
    seen = [head(10 * i, n) for i, n in enumerate(heads)]
    assert check(seen, chain).count(HEAD_REGRESSIONS) == reference_regressions(seen, chain)


# -- unknown advertised blocks --------------------------------------------------------------


def test_a_null_block_above_the_advertised_head_is_fine_at_or_below_it_is_an_anomaly() -> None:
    assert counts(check([head(0, 20), no_block(10, 21)], linear())) == {}
    assert counts(check([head(0, 20), no_block(10, 20)], linear())) == {UNKNOWN_ADVERTISED_BLOCK: 1}
    assert counts(check([head(0, 20), no_block(10, 5)], linear())) == {UNKNOWN_ADVERTISED_BLOCK: 1}


def test_a_null_block_before_any_head_was_advertised_is_fine() -> None:
    assert counts(check([no_block(0, 5)], linear())) == {}


def test_header_not_found_for_an_advertised_block_is_an_unknown_advertised_block() -> None:
    error = no_block(10, 18, unknown_block=True, outcome="rpc_header_not_found")
    result = check([head(0, 20), error], linear())
    assert counts(result) == {UNKNOWN_ADVERTISED_BLOCK: 1}
    assert (
        "block 18 rpc_header_not_found after head 20"
        in result.examples[UNKNOWN_ADVERTISED_BLOCK][0].why
    )


def test_get_logs_out_of_range_for_an_advertised_block_is_an_unknown_advertised_block() -> None:
    out_of_range = logs(10, 19, 20, outcome="rpc_error:-32602", unknown_block=True)
    assert counts(check([head(0, 20), out_of_range], linear())) == {UNKNOWN_ADVERTISED_BLOCK: 1}
    assert counts(check([head(0, 19), out_of_range], linear())) == {}


def test_the_latest_block_answered_null_after_a_head_was_advertised_is_an_anomaly() -> None:
    null_latest = obs(10, "eth_getBlockByNumber", key="latest", null=True)
    assert counts(check([head(0, 20), null_latest], linear())) == {UNKNOWN_ADVERTISED_BLOCK: 1}
    assert counts(check([null_latest], linear())) == {}


def test_a_transport_failure_is_no_unknown_block() -> None:
    refused = no_block(10, 5, outcome="connect_refused")
    assert counts(check([head(0, 20), refused], linear())) == {}


def test_a_block_a_reorg_took_back_may_be_unknown() -> None:
    chain = linear()
    chain.reorgs = [(5 * MS, 3)]
    assert counts(check([head(0, 20), no_block(10, 18)], chain)) == {}
    assert counts(check([head(0, 20), no_block(10, 17)], chain)) == {UNKNOWN_ADVERTISED_BLOCK: 1}


# -- hash mismatches ------------------------------------------------------------------------


def test_a_hash_on_a_reorged_out_branch_is_no_mismatch_one_on_no_branch_is() -> None:
    chain = linear()
    chain.orphans = {(10, h("dead"))}
    assert counts(check([block(0, 10, h("dead"))], chain)) == {}
    result = check([block(0, 10, h("beef"))], chain)
    assert counts(result) == {HASH_MISMATCH: 1}
    assert h("beef") in result.examples[HASH_MISMATCH][0].why


def test_a_receipt_or_a_log_in_a_block_on_no_branch_is_a_hash_mismatch() -> None:
    bad = BlockSeen(10, h("beef"), 1)
    seen = [receipt(0, "0xaa", bad), logs(10, 9, 10, [bad])]
    assert counts(check(seen, linear())) == {HASH_MISMATCH: 2}


# -- vanished receipts ----------------------------------------------------------------------


def test_a_receipt_answered_then_null_without_a_reorg_has_vanished() -> None:
    at = BlockSeen(10, h("a"))
    seen = [receipt(0, "0xaa", at), receipt(10, "0xaa", None), receipt(20, "0xbb", None)]
    assert counts(check(seen, linear())) == {VANISHED_RECEIPTS: 1}


def test_a_receipt_null_then_answered_is_a_transaction_being_mined() -> None:
    seen = [receipt(0, "0xaa", None), receipt(10, "0xaa", BlockSeen(10, h("a")))]
    assert counts(check(seen, linear())) == {}


def test_a_receipt_seen_by_another_session_cannot_vanish_from_this_one() -> None:
    seen = [receipt(0, "0xaa", BlockSeen(10, h("a")), session="a"), receipt(10, "0xaa", None)]
    assert counts(check(seen, linear())) == {}


def test_a_receipt_whose_block_a_reorg_took_between_the_answers_has_not_vanished() -> None:
    chain = linear()
    chain.orphans = {(10, h("old"))}  # the receipt's block, replaced by h("a") at 5 ms
    chain.reorgs = [(5 * MS, 1)]
    seen = [receipt(0, "0xaa", BlockSeen(10, h("old"))), receipt(10, "0xaa", None)]
    assert counts(check(seen, chain)) == {}


def test_a_reorg_too_shallow_to_reach_the_receipts_block_explains_nothing() -> None:
    chain = linear()
    chain.reorgs = [(5 * MS, 1)]
    chain.heads = [(0, 20)]
    seen = [receipt(0, "0xaa", BlockSeen(10, h("a"))), receipt(10, "0xaa", None)]
    assert counts(check(seen, chain)) == {VANISHED_RECEIPTS: 1}
    chain.reorgs = [(5 * MS, 11)]  # deep enough to have taken block 10
    assert counts(check(seen, chain)) == {}


def test_a_reorg_after_the_null_answer_explains_nothing() -> None:
    chain = linear()
    chain.orphans = {(10, h("old"))}
    chain.reorgs = [(50 * MS, 1)]
    seen = [receipt(0, "0xaa", BlockSeen(10, h("old"))), receipt(10, "0xaa", None)]
    assert counts(check(seen, chain)) == {VANISHED_RECEIPTS: 1}


# -- missing logs ---------------------------------------------------------------------------


def with_logs(**per_block: int) -> FakeChain:
    chain = linear()
    chain.logs = {(int(n[1:]), h(f"{int(n[1:]):x}")): c for n, c in per_block.items()}
    return chain


def test_empty_logs_for_an_advertised_block_that_has_logs_are_missing_logs() -> None:
    chain = with_logs(b20=3)
    result = check([head(0, 20), logs(10, 19, 20)], chain)
    assert counts(result) == {MISSING_LOGS: 1}
    assert "0 logs in block 20, which has 3" in result.examples[MISSING_LOGS][0].why


def test_empty_logs_are_fine_above_the_advertised_head_or_for_blocks_without_logs() -> None:
    chain = with_logs(b20=3)
    assert counts(check([head(0, 19), logs(10, 19, 20)], chain)) == {}
    assert counts(check([head(0, 30), logs(10, 21, 22)], chain)) == {}


def test_fewer_logs_than_the_block_has_are_missing_logs() -> None:
    chain = with_logs(b20=3)
    short = logs(10, 19, 20, [BlockSeen(20, h("14"), 2)])
    whole = logs(20, 19, 20, [BlockSeen(20, h("14"), 3)])
    assert counts(check([head(0, 20), short, whole], chain)) == {MISSING_LOGS: 1}


def test_missing_logs_are_judged_from_other_answers_when_the_chain_log_cannot_say() -> None:
    chain = linear()
    chain.logs = None
    other = logs(5, 19, 20, [BlockSeen(20, h("14"), 3)], session="other")
    mine = [head(0, 20), logs(10, 19, 20)]
    assert counts(check([*mine, other], chain)) == {MISSING_LOGS: 1}
    assert counts(check(mine, chain)) == {}  # nobody saw logs there: nothing to miss


def test_a_block_absent_from_an_answer_is_judged_on_the_branch_with_the_fewest_logs() -> None:
    # Block 20 had 3 logs on a branch a reorg replaced by one without logs.
    chain = with_logs(b20=0)
    chain.orphans = {(20, h("old"))}
    assert chain.logs is not None
    chain.logs[(20, h("old"))] = 3
    seen = [head(0, 20), logs(5, 20, 20, [BlockSeen(20, h("old"), 3)]), logs(10, 19, 20)]
    assert counts(check(seen, chain)) == {}


# -- results --------------------------------------------------------------------------------


def test_the_examples_kept_are_the_first_ones_by_send_time() -> None:
    seen = [head(0, 100, session="a"), head(0, 100, session="b")]
    seen += [head(10 + i, 50, session="ab"[i % 2]) for i in range(20)]
    result = check(list(reversed(seen)), linear(), examples=3)
    assert result.count(HEAD_REGRESSIONS) == 20
    assert [a.at_ns for a in result.examples[HEAD_REGRESSIONS]] == [10 * MS, 11 * MS, 12 * MS]


def test_anomalies_are_counted_per_phase_window_by_send_time() -> None:
    seen = [head(0, 30)] + [head(t, 10) for t in (5, 15, 16, 25)]
    result = check(seen, linear())
    phases = [("baseline", 0, 10 * MS), ("fault", 10 * MS, 20 * MS), ("recovery", 20 * MS, 30 * MS)]
    metrics = check_metrics(result, phases)
    assert metrics["head_regressions[baseline]"] == 1.0
    assert metrics["head_regressions[fault]"] == 2.0
    assert metrics["head_regressions[recovery]"] == 1.0
    assert metrics["missing_logs[fault]"] == 0.0
    assert set(metrics) == {f"{k}[{p}]" for k in KINDS for p, _, _ in phases}


@settings(deadline=None)
@given(
    times=st.lists(st.integers(1, 1000), max_size=30),
    cuts=st.lists(st.integers(0, 1100), min_size=1, max_size=5),
)
def test_phase_windows_that_tile_the_run_share_out_every_anomaly(
    times: list[int], cuts: list[int]
) -> None:
    seen = [head(0, 1000)] + [head(t, 1) for t in sorted(times)]
    result = check(seen, linear())
    edges = [0, *sorted(cuts), 2000]
    windows = [(f"p{i}", a * MS, b * MS) for i, (a, b) in enumerate(itertools.pairwise(edges))]
    shared = sum(check_metrics(result, windows)[f"head_regressions[{n}]"] for n, _, _ in windows)
    assert shared == result.count(HEAD_REGRESSIONS) == len(times)


def test_an_unknown_kind_is_a_config_error_naming_the_kinds() -> None:
    with pytest.raises(ConfigError, match="head_regressions"):
        check([], linear()).count("head_regresions")


# -- observation lines ----------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
numbers = st.integers(0, 2**40).map(hex)


def _block_body(
    number: str, block_hash: str, txs: list[tuple[str, str]], full: bool
) -> dict[str, object]:
    transactions: list[object] = [
        {"hash": t, "blockHash": block_hash, "blockNumber": number, "nonce": "0x1"} if full else t
        for t, _ in txs
    ]
    return {
        "hash": block_hash,
        "parentHash": "0x" + "11" * 32,
        "number": number,
        "transactions": transactions,
        "uncles": [],
    }


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, bytes]:
    """A label and a plausible answer, compact or not, keys in the node's order or sorted."""
    label = draw(
        st.sampled_from(
            ["eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByNumber_full",
             "eth_getLogs", "eth_getTransactionReceipt"]
        )
    )  # fmt: skip
    number, block_hash = draw(numbers), draw(hashes)
    result: object
    if draw(st.booleans()) and label != "eth_blockNumber":
        result = None if label != "eth_getLogs" else []
    elif label == "eth_blockNumber":
        result = number
    elif label.startswith("eth_getBlockByNumber"):
        txs = draw(st.lists(st.tuples(hashes, hashes), max_size=3))
        result = _block_body(number, block_hash, txs, label.endswith("_full"))
    elif label == "eth_getTransactionReceipt":
        log = {"address": "0x" + "22" * 20, "blockHash": block_hash, "blockNumber": number}
        result = {"logs": [log] * draw(st.integers(0, 2)), "blockHash": block_hash,
                  "blockNumber": number, "transactionHash": draw(hashes)}  # fmt: skip
    else:
        blocks = draw(st.dictionaries(hashes, numbers, max_size=3))  # a number per hash
        entries = [(n, bh) for bh, n in blocks.items() for _ in range(draw(st.integers(1, 4)))]
        if draw(st.booleans()):  # not in block order: a node should not, but may
            entries = draw(st.permutations(entries))
        result = [
            {"address": "0x" + "22" * 20, "topics": [], "blockHash": bh, "blockNumber": n}
            for n, bh in entries
        ]
    doc = {"jsonrpc": "2.0", "id": 7, "result": result}
    compact = draw(st.booleans())
    text = json.dumps(
        doc, separators=(",", ":") if compact else None, sort_keys=draw(st.booleans())
    )
    return label, text.encode()


@settings(max_examples=400, deadline=None)
@given(answers())
def test_the_fast_summary_of_an_answer_agrees_with_a_full_parse(answer: tuple[str, bytes]) -> None:
    label, body = answer
    assert summarize(label, True, body) == summarize_parsed(label, body)


def test_a_failure_says_unknown_when_its_message_says_the_block_is_unknown() -> None:
    anvil = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"BlockOutOfRangeError: block height is 5 but requested was 9"}}'  # noqa: E501
    geth = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}'
    other = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"execution reverted"}}'
    assert summarize("eth_getLogs", False, anvil) == "unknown"
    assert summarize("eth_getBlockByNumber", False, geth) == "unknown"
    assert summarize("eth_getBlockByNumber", False, other) == "-"
    assert summarize("eth_getBlockByNumber", True, b"<html>") == "?"


def _request(method: str, params: list[object]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, separators=(",", ":")
    ).encode()


def test_an_observation_line_reads_back_as_the_request_and_its_answer() -> None:
    logs_request = _request(
        "eth_getLogs", [{"fromBlock": "0x13", "toBlock": "0x14", "address": "0x" + "22" * 20}]
    )
    answer = b'{"jsonrpc":"2.0","id":1,"result":[{"blockHash":"%s","blockNumber":"0x14"}]}' % (
        h("AB").encode()
    )
    line = observation_line(
        5, 9, "77.3", "eth_getLogs", "ok", summarize("eth_getLogs", True, answer), logs_request
    )
    assert parse_line(line) == Observation(
        "77.3", 5, 9, "eth_getLogs", "0x13-0x14 address", "ok",
        blocks=(BlockSeen(20, h("ab"), 1),), first_block=19, last_block=20, log_filter="address",
    )  # fmt: skip
    latest_line = observation_line(
        1, 2, "s", "eth_getBlockByNumber_full", "ok", f"0x14:{h('ab')}",
        _request("eth_getBlockByNumber", ["latest", True]),
    )  # fmt: skip
    o = parse_line(latest_line)
    assert o is not None and (o.key, o.head, o.first_block) == ("latest full", 20, None)
    missing = parse_line(
        observation_line(1, 2, "s", "eth_getBlockByNumber", "rpc_header_not_found", "unknown",
                         _request("eth_getBlockByNumber", ["0x14", False]))
    )  # fmt: skip
    assert missing is not None and missing.unknown_block and missing.last_block == 20
    gone = parse_line(
        observation_line(1, 2, "s", "eth_getTransactionReceipt", "ok", "null",
                         _request("eth_getTransactionReceipt", ["0xABC"]))
    )  # fmt: skip
    assert gone is not None and gone.null and gone.key == "0xabc"


@pytest.mark.parametrize(
    "line",
    ["", "garbage", "1 2 s eth_call ok 0x1 []", "x 2 s eth_blockNumber ok 0x1 []",
     "1 2 s eth_blockNumber ok zz []"],
)  # fmt: skip
def test_a_line_that_is_no_observation_reads_as_none(line: str) -> None:
    assert parse_line(line) is None


def test_a_remote_workers_line_is_moved_onto_this_clock_and_its_session_made_unique() -> None:
    moved = move_line("100 150 77.3 eth_blockNumber ok 0x5 []", 1000, "w1")
    assert moved == "1100 1150 w1/77.3 eth_blockNumber ok 0x5 []\n"
    assert move_line("not a line", 1000, "w1") is None


def test_the_tail_reads_complete_lines_only_and_the_rest_when_it_is_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checks-1.txt"
    line = "100 150 1.0 eth_blockNumber ok 0x5 []\n"
    path.write_text(line + line[:10])
    (tmp_path / "samples-1.txt").write_text("not observations\n")
    with ObservationTail(tmp_path) as tail:
        assert [o.head for o in tail.poll()] == [5]
        with open(path, "a") as out:
            out.write(line[10:])
        assert [o.head for o in tail.poll()] == [5]
    assert len(read_observations(tmp_path)) == 2


def test_every_anomaly_kind_is_an_slo_metric_per_phase() -> None:
    from harness.measure.metrics import HISTORY_METRICS, METRICS

    assert set(HISTORY_METRICS) == set(KINDS)
    assert all(METRICS[k].per_phase and METRICS[k].better == "lower" for k in KINDS)
