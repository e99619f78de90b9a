"""The chain log as the checker of what clients saw reads it: which blocks the source ever
had, its chain at the end, its reorgs and its head at any moment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.chain.blocks import SourceBlock
from harness.chain.chainlog import ChainLogError, ChainLogWriter, read_chain_log


def h(name: str) -> str:
    return "0x" + name.encode().hex().ljust(64, "0")


def blk(number: int, name: str, parent: str, seen_ns: int) -> SourceBlock:
    return SourceBlock(number, h(name), h(parent), 1000 + number, "0x7", (h("tx" + name),),
                       ("0x02",), seen_ns)  # fmt: skip


def write_forked_log(path: Path) -> None:
    """0 - 1 - 2a - 3a, then a reorg of depth 2 to 2b - 3b - 4b, then back to 3a (depth 2)."""
    with ChainLogWriter(path) as log:
        for b in (blk(0, "g", "none", 10), blk(1, "1", "g", 20), blk(2, "2a", "1", 30),
                  blk(3, "3a", "2a", 40)):  # fmt: skip
            log.block(b)
        log.reorg(2, h("3a"), h("4b"), 1, 50)
        for b in (blk(2, "2b", "1", 50), blk(3, "3b", "2b", 50), blk(4, "4b", "3b", 50)):
            log.block(b)
        log.reorg(3, h("4b"), h("3a"), 1, 70)  # back to a branch seen before: no block lines


def test_every_branch_is_known_and_the_canonical_chain_is_the_last_one(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    history = read_chain_log(path)
    assert history.on_any_branch(2, h("2a")) and history.on_any_branch(2, h("2b"))
    assert history.on_any_branch(4, h("4b"))
    assert not history.on_any_branch(3, h("2a"))  # a known hash at another height
    assert not history.on_any_branch(2, h("2c"))
    assert [history.canonical_hash(n) for n in range(5)] == [h("g"), h("1"), h("2a"), h("3a"), None]
    assert history.block(h("3b")) is not None and history.block(h("3b")).txs == (h("tx3b"),)


def test_the_deepest_reorg_between_two_moments(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    history = read_chain_log(path)
    assert history.deepest_reorg(0, 49) == 0
    assert history.deepest_reorg(0, 50) == 2
    assert history.deepest_reorg(50, 100) == 3
    assert history.deepest_reorg(51, 69) == 0
    assert [r.ancestor for r in history.reorgs_between(0, 100)] == [1, 1]


def test_the_source_head_at_any_moment(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    history = read_chain_log(path)
    assert history.head_at(9) is None
    assert (history.head_at(10).number, history.head_at(10).hash) == (0, h("g"))
    assert history.head_at(45).hash == h("3a")
    assert history.head_at(50).hash == h("4b")  # the whole new branch at one moment
    assert history.head_at(69).number == 4
    assert history.head_at(70).hash == h("3a")  # back to the old branch: the reorg's "to"
    assert history.head is not None and history.head.hash == h("3a")


def test_lines_are_json_with_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(docs[0]) == {"number", "hash", "parent", "timestamp", "txs", "seen_ns"}
    assert set(docs[4]) == {"reorg", "from", "to", "ancestor", "seen_ns"}
    assert docs[4]["reorg"] == 2


def test_a_last_line_cut_short_by_a_killed_writer_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    with path.open("a") as out:
        out.write('{"number": 5, "hash": "0x')
    assert read_chain_log(path).head.hash == h("3a")


def test_a_bad_line_in_the_middle_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    write_forked_log(path)
    lines = path.read_text().splitlines()
    lines.insert(2, "garbage")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ChainLogError, match=r"chain.jsonl:3 "):
        read_chain_log(path)
    path.write_text('{"number": 1}\n')
    with pytest.raises(ChainLogError, match=r":1: .*lacks"):
        read_chain_log(path)


def test_a_missing_log_says_which_file_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ChainLogError, match="--log"):
        read_chain_log(tmp_path / "nowhere.jsonl")


def test_an_empty_log_has_no_head(tmp_path: Path) -> None:
    path = tmp_path / "chain.jsonl"
    path.write_text("")
    history = read_chain_log(path)
    assert history.head is None and history.head_at(10**18) is None
    assert history.canonical_hash(0) is None and history.deepest_reorg(0, 10**18) == 0
