"""The local stack on one chain (``--chain one``): real anvils (a hidden chain source and
served followers), the real replicator process and HAProxy; the chain's faults against it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.chain import ReplicatorClient
from harness.faults import Lag, PeerPartition, Reorg, SyncStall, replay_open_records
from harness.jsonrpc import RpcClient
from harness.stack import LocalStack, StackSpec
from harness.stack.model import StackState


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackSpec(name="one-chain", chain="one", block_time_s=0.5)) as running:
        yield running


def _head(url: str) -> int:
    with RpcClient(url, timeout_s=2.0) as client:
        return client.block_number()


def _hash(url: str, number: int) -> str:
    with RpcClient(url, timeout_s=2.0) as client:
        return str(client.call("eth_getBlockByNumber", [hex(number), False])["hash"])


def _replicator(state: StackState) -> ReplicatorClient:
    assert state.replicator_url is not None
    return ReplicatorClient(state.replicator_url)


def _wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_every_node_holds_the_sources_blocks_and_a_transaction_sent_anywhere_reaches_all(
    stack: LocalStack,
) -> None:
    state = stack.state()
    assert state.chain_source_url is not None
    with RpcClient(state.frontend_url) as frontend:
        accounts = frontend.call("eth_accounts")
        sent = frontend.call(
            "eth_sendTransaction", [{"from": accounts[3], "to": accounts[4], "value": "0x7"}]
        )

    def mined_everywhere() -> bool:
        for node in state.nodes:
            with RpcClient(node.url) as client:
                if not isinstance(client.call("eth_getTransactionReceipt", [sent]), dict):
                    return False
        return True

    _wait_for(mined_everywhere, 10, f"transaction {sent} did not reach every node")
    _replicator(state).wait_synced(timeout_s=5)
    top = min(_head(n.url) for n in state.nodes)
    assert top >= 1
    for number in range(top + 1):
        theirs = _hash(state.chain_source_url, number)
        assert [_hash(n.url, number) for n in state.nodes] == [theirs, theirs]


def test_lag_holds_a_node_that_many_blocks_behind_and_it_catches_up_when_undone(
    stack: LocalStack,
) -> None:
    state = stack.state()
    assert state.chain_source_url is not None
    with Lag(stack=stack, target="primary", blocks=3):
        time.sleep(1.5)  # three blocks at 0.5 s
        behind = _head(state.chain_source_url) - _head(state.nodes[0].url)
        assert 3 <= behind <= 4
        assert _head(state.chain_source_url) - _head(state.nodes[1].url) <= 1
    assert _replicator(state).node("node-0").behind in (0, 1)


def test_a_stall_on_one_chain_stops_replication_while_the_node_keeps_answering(
    stack: LocalStack,
) -> None:
    state = stack.state()
    with SyncStall(stack=stack, target="primary") as fault:
        assert fault.mechanism == "replicator paused"
        stalled = _head(state.nodes[0].url)
        time.sleep(1.5)
        assert _head(state.nodes[0].url) == stalled
        assert _head(state.nodes[1].url) >= stalled + 2
    assert _head(state.nodes[0].url) >= stalled + 2  # replayed what it missed


def test_a_reorg_is_followed_by_every_node(stack: LocalStack) -> None:
    state = stack.state()
    assert state.chain_source_url is not None
    _wait_for(lambda: _head(state.chain_source_url or "") >= 4, 5, "too few blocks")
    _replicator(state).wait_synced(timeout_s=5)
    top = _head(state.chain_source_url)
    old = [_hash(state.chain_source_url, n) for n in (top - 1, top)]
    with Reorg(stack=stack, depth=2) as fault:
        assert fault.record is not None
    _replicator(state).wait_synced(timeout_s=5)
    new = [_hash(state.chain_source_url, n) for n in (top - 1, top)]
    assert new != old
    # A node that had the old branch rolled back; one that had not replayed it yet (a slow
    # machine) went straight to the new one. Either way every node is on the new branch.
    for node in state.nodes:
        assert [_hash(node.url, n) for n in (top - 1, top)] == new, node.name


def test_a_peer_partition_left_by_a_dead_harness_is_undone_from_the_ledger(
    stack: LocalStack,
) -> None:
    state = stack.state()
    fault = PeerPartition(stack=stack, target="backup")
    fault.__enter__()  # and never left: as if the harness had been SIGKILLed here
    assert _replicator(state).node("node-1").paused

    undone = replay_open_records(include_live=True)

    assert any("set node-1 back to paused=False" in line for line in undone), undone
    assert not _replicator(state).node("node-1").paused
    assert replay_open_records(include_live=True) == [], "replay must be idempotent"
