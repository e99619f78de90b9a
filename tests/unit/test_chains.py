"""What the checker of clients' histories is held against: the chain source's log, read
back and adapted (`LoggedChain`), or, on a stack of independent chains, no chain at all
(`NoChainKnown`), where each session's own past still convicts an answer."""

from __future__ import annotations

import json
from pathlib import Path

from harness.chain.chainlog import read_chain_log
from harness.measure.chains import LoggedChain, NoChainKnown
from harness.measure.checker import (
    HASH_MISMATCH,
    HEAD_REGRESSIONS,
    MISSING_LOGS,
    UNKNOWN_ADVERTISED_BLOCK,
    VANISHED_RECEIPTS,
    ChainLog,
    check,
)
from harness.measure.observations import BlockSeen, Observation

MS = 1_000_000


def h(tag: str) -> str:
    return "0x" + tag.ljust(64, "0")


def write_log(path: Path) -> None:
    """Blocks 0-1-2a-3a (seen at 10..40 ms), then a reorg of depth 2 at 50 ms to 2b-3b-4b,
    as the replicator's reader writes them."""
    lines: list[dict[str, object]] = []
    parent = h("00")
    for number, tag, seen_ms in ((0, "0a", 10), (1, "1a", 20), (2, "2a", 30), (3, "3a", 40)):
        lines.append({"number": number, "hash": h(tag), "parent": parent, "timestamp": number,
                      "txs": [], "seen_ns": seen_ms * MS})  # fmt: skip
        parent = h(tag)
    lines.append({"reorg": 2, "from": h("3a"), "to": h("4b"), "ancestor": 1, "seen_ns": 50 * MS})
    parent = h("1a")
    for number, tag in ((2, "2b"), (3, "3b"), (4, "4b")):
        lines.append({"number": number, "hash": h(tag), "parent": parent, "timestamp": number,
                      "txs": [], "seen_ns": 50 * MS})  # fmt: skip
        parent = h(tag)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def head(session: str, at_ms: int, number: int) -> Observation:
    """eth_blockNumber sent at ``at_ms``, answered 1 ms later with ``number``."""
    return Observation(session, at_ms * MS, (at_ms + 1) * MS, "eth_blockNumber", "", "ok",
                       head=number)  # fmt: skip


def test_the_logged_chain_answers_what_the_chain_log_says(tmp_path: Path) -> None:
    write_log(tmp_path / "chain.jsonl")
    chain: ChainLog = LoggedChain(read_chain_log(tmp_path / "chain.jsonl"))
    assert chain.on_any_branch(2, h("2a")) and chain.on_any_branch(2, h("2b"))  # both branches
    assert not chain.on_any_branch(3, h("2a")) and not chain.on_any_branch(2, h("2c"))
    assert [chain.canonical_hash(n) for n in range(6)] == [
        h("0a"), h("1a"), h("2b"), h("3b"), h("4b"), None
    ]  # fmt: skip
    assert chain.deepest_reorg(0, 49 * MS) == 0 and chain.deepest_reorg(0, 50 * MS) == 2


def test_the_logged_chain_gives_the_head_as_a_number_and_none_before_the_first_block(
    tmp_path: Path,
) -> None:
    write_log(tmp_path / "chain.jsonl")
    chain = LoggedChain(read_chain_log(tmp_path / "chain.jsonl"))
    assert chain.head_at(9 * MS) is None
    assert chain.head_at(10 * MS) == 0
    assert chain.head_at(45 * MS) == 3
    assert chain.head_at(10_000 * MS) == 4


def test_the_logged_chain_does_not_know_log_counts_the_log_does_not_record(
    tmp_path: Path,
) -> None:
    write_log(tmp_path / "chain.jsonl")
    chain = LoggedChain(read_chain_log(tmp_path / "chain.jsonl"))
    assert chain.logs_in(2, h("2a")) is None
    assert chain.logs_in(3, h("2a")) is None  # a known hash at another height


def test_a_head_regression_within_a_logged_reorg_is_honest_and_beyond_it_is_not(
    tmp_path: Path,
) -> None:
    write_log(tmp_path / "chain.jsonl")
    chain = LoggedChain(read_chain_log(tmp_path / "chain.jsonl"))
    # Told 3 before the depth-2 reorg at 50 ms: 1 afterwards is within its reach, 0 is not.
    honest = check([head("a", 45, 3), head("a", 60, 1)], chain)
    beyond = check([head("b", 45, 3), head("b", 60, 0)], chain)
    assert honest.count(HEAD_REGRESSIONS) == 0
    assert beyond.count(HEAD_REGRESSIONS) == 1


def test_with_no_chain_known_a_session_told_a_lower_head_is_a_regression() -> None:
    result = check([head("a", 0, 16), head("a", 10, 17), head("a", 20, 1)], NoChainKnown())
    assert result.count(HEAD_REGRESSIONS) == 1
    [example] = result.examples[HEAD_REGRESSIONS]
    assert example.observation.head == 1 and "after 17" in example.why


def test_with_no_chain_known_every_block_is_on_some_branch() -> None:
    block = Observation("a", 0, MS, "eth_getBlockByNumber", "0x5", "ok",
                        blocks=(BlockSeen(5, h("ff")),), first_block=5, last_block=5)  # fmt: skip
    assert check([block], NoChainKnown()).count(HASH_MISMATCH) == 0


def test_with_no_chain_known_an_advertised_block_then_unknown_is_counted() -> None:
    unknown = Observation("a", 10 * MS, 11 * MS, "eth_getBlockByNumber", "0x10", "ok",
                          null=True, first_block=16, last_block=16)  # fmt: skip
    result = check([head("a", 0, 16), unknown], NoChainKnown())
    assert result.count(UNKNOWN_ADVERTISED_BLOCK) == 1


def test_with_no_chain_known_a_receipt_seen_then_null_has_vanished() -> None:
    tx = h("7e")
    seen = Observation("a", 0, MS, "eth_getTransactionReceipt", tx, "ok",
                       blocks=(BlockSeen(5, h("5a")),))  # fmt: skip
    gone = Observation("a", 10 * MS, 11 * MS, "eth_getTransactionReceipt", tx, "ok", null=True)
    assert check([seen, gone], NoChainKnown()).count(VANISHED_RECEIPTS) == 1


def test_with_no_chain_known_logs_are_held_against_what_other_answers_showed() -> None:
    def logs(session: str, at_ms: int, count: int) -> Observation:
        return Observation(session, at_ms * MS, (at_ms + 1) * MS, "eth_getLogs",
                           "0x5-0x5 address", "ok", blocks=(BlockSeen(5, h("5a"), count),),
                           first_block=5, last_block=5, log_filter="address")  # fmt: skip

    result = check([head("a", 0, 6), logs("a", 10, 3), logs("b", 0, 6), head("b", 5, 6),
                    logs("b", 20, 2)], NoChainKnown())  # fmt: skip
    # a's 3 and b's 2, against 6 that b was shown of the same block before.
    assert result.count(MISSING_LOGS) == 2


def test_each_window_keeps_its_own_first_examples() -> None:
    # 10 regressions before 1 s, 10 after: one example each side, not two of the first.
    seen = [head("a", 0, 100)]
    seen += [head("a", 10 + 10 * i, 1) for i in range(10)]
    seen += [head("a", 1000 + 10 * i, 1) for i in range(10)]
    result = check(seen, NoChainKnown(), examples=1, windows_ns=[1000 * MS])
    assert result.count(HEAD_REGRESSIONS) == 20
    assert [a.at_ns // MS for a in result.examples[HEAD_REGRESSIONS]] == [10, 1000]
