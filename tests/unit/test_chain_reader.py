"""The source reader against an in-memory source whose chain grows, jumps ahead, reorgs
and rolls back in any order: after each poll its cache is the source's chain, and its
chain log holds every branch and each reorg with the depth the source really had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from harness.chain.chainlog import ChainLogWriter, read_chain_log
from harness.chain.reader import SourceReader
from harness.jsonrpc import Outcome, RpcFailure

KEEP = 8


class FakeSource:
    """A chain in memory answering the calls the reader makes."""

    def __init__(self) -> None:
        self.blocks: dict[str, dict[str, Any]] = {}
        self.raws: dict[str, str] = {}
        self.chain: list[str] = []
        self.counter = 0
        self.down = False
        self._append(txs=0)

    def _hash(self) -> str:
        self.counter += 1
        return f"0x{self.counter:064x}"

    def _append(self, txs: int) -> None:
        number = len(self.chain)
        tx_hashes = []
        for _ in range(txs):
            tx = self._hash()
            self.raws[tx] = "0x02" + tx[2:]
            tx_hashes.append(tx)
        block = {
            "number": hex(number),
            "hash": self._hash(),
            "parentHash": self.chain[-1] if self.chain else "0x" + "00" * 32,
            "timestamp": hex(1000 + number),
            "baseFeePerGas": "0x7",
            "transactions": tx_hashes,
        }
        self.blocks[block["hash"]] = block
        self.chain.append(block["hash"])

    def mine(self, count: int, txs: int) -> None:
        for _ in range(count):
            self._append(txs)

    def reorg(self, depth: int, length: int) -> None:
        del self.chain[len(self.chain) - depth :]
        self.mine(length, txs=1)

    def rollback(self, depth: int) -> None:
        del self.chain[len(self.chain) - depth :]

    # -- the client's interface ----------------------------------------------------------

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        if self.down:
            raise RpcFailure(Outcome.CONNECT_REFUSED, "down")
        params = params or []
        if method == "eth_getBlockByNumber":
            tag = params[0]
            number = len(self.chain) - 1 if tag == "latest" else int(tag, 16)
            return self.blocks[self.chain[number]] if number < len(self.chain) else None
        if method == "eth_getBlockByHash":
            return self.blocks.get(params[0])
        if method == "eth_getRawTransactionByHash":
            return self.raws.get(params[0])
        raise AssertionError(method)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return [self.call(method, params) for method, params in calls]

    def close(self) -> None:
        pass


class ReaderFollowsAnyChain(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.source = FakeSource()

    @initialize(tmp=st.integers(0, 10**9))
    def start(self, tmp: int) -> None:
        self.path = Path(pytest_tmp) / f"chain-{id(self)}-{tmp}.jsonl"
        self.path.unlink(missing_ok=True)
        self.log = ChainLogWriter(self.path).__enter__()
        self.reader = SourceReader("http://127.0.0.1:1/", self.log, keep_blocks=KEEP)
        self.reader._client = self.source  # type: ignore[assignment]
        self.reader.poll()
        self.polled = [self.source.chain[-1]]
        self.chain_at_poll = list(self.source.chain)
        self.expected_depths: list[int] = []

    def teardown(self) -> None:
        if hasattr(self, "log"):
            self.log.__exit__(None, None, None)

    @rule(count=st.integers(1, 80), txs=st.integers(0, 2))
    def mine(self, count: int, txs: int) -> None:
        self.source.mine(count, txs)

    @rule(depth=st.integers(1, KEEP - 1), length=st.integers(0, 3))
    def reorg(self, depth: int, length: int) -> None:
        if depth < len(self.source.chain) and (length or depth < len(self.source.chain) - 1):
            self.source.reorg(depth, length)

    @rule(depth=st.integers(1, 3))
    def rollback(self, depth: int) -> None:
        if depth < len(self.source.chain):
            self.source.rollback(depth)

    @rule()
    def source_down_for_a_poll(self) -> None:
        self.source.down = True
        with pytest.raises(RpcFailure):
            self.reader.poll()
        self.source.down = False

    @rule()
    def poll(self) -> None:
        before = self.polled[-1]
        changed = self.reader.poll()
        now = self.source.chain[-1]
        assert changed == (now != before)
        # The depth the source had: the old head's blocks that are no longer canonical.
        old_number = int(self.source.blocks[before]["number"], 16)
        at, depth = before, 0
        while (
            int(self.source.blocks[at]["number"], 16) >= len(self.source.chain)
            or self.source.chain[int(self.source.blocks[at]["number"], 16)] != at
        ):
            at = self.source.blocks[at]["parentHash"]
            depth += 1
        assert depth <= old_number
        if depth:
            self.expected_depths.append(depth)
        self.polled.append(now)
        self.chain_at_poll = list(self.source.chain)

    @invariant()
    def the_cache_is_the_sources_chain(self) -> None:
        if not hasattr(self, "reader"):
            return
        head = self.reader.head()
        assert head is not None and head.hash == self.polled[-1]
        assert self.reader.block(head.number) == head
        cached = 0
        for number in range(head.number + 1):
            block = self.reader.block(number)
            if block is None:
                continue
            cached += 1
            assert block.hash == self.chain_at_poll[number]
            source = self.source.blocks[block.hash]
            assert block.raw_txs == tuple(self.source.raws[t] for t in source["transactions"])
        assert cached <= KEEP
        assert self.reader.block(head.number + 1) is None

    @invariant()
    def the_log_has_every_branch_and_each_reorg_with_its_depth(self) -> None:
        if not hasattr(self, "reader"):
            return
        history = read_chain_log(self.path)
        assert [r.depth for r in history.reorgs] == self.expected_depths
        head = self.reader.head()
        assert head is not None and history.head is not None
        assert history.head.hash == head.hash
        for number in range(head.number + 1):
            assert history.canonical_hash(number) == self.chain_at_poll[number]
        for logged in history.blocks.values():
            assert int(self.source.blocks[logged.hash]["number"], 16) == logged.number
        for polled in self.polled:
            assert history.block(polled) is not None


pytest_tmp = ""


@pytest.fixture(autouse=True)
def _tmp(tmp_path: Path) -> None:
    global pytest_tmp
    pytest_tmp = str(tmp_path)


ReaderFollowsAnyChain.TestCase.settings = settings(max_examples=40, stateful_step_count=20,
                                                    deadline=None)  # fmt: skip
test_the_reader_follows_any_sequence_of_growth_reorgs_and_rollbacks = ReaderFollowsAnyChain.TestCase
