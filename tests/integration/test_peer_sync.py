"""anvil nodes have no peers; the local stack's peer sync plays their part: a node that
fell behind while paused catches up once it runs again, and a node whose mining was stopped
on purpose (the stall fault) stays stale until the fault is undone."""

from __future__ import annotations

import time

from harness.faults import make_fault
from harness.jsonrpc import RpcClient
from harness.stack import LocalStack, StackSpec
from harness.stack.steady import check_steady_state


def heads(stack: LocalStack) -> dict[str, int]:
    found = {}
    for node in stack.state().nodes:
        with RpcClient(node.url, timeout_s=1.0) as client:
            found[node.name] = client.block_number()
    return found


def spread_within(stack: LocalStack, blocks: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h = heads(stack)
        if max(h.values()) - min(h.values()) <= blocks:
            return True
        time.sleep(0.1)
    return False


def test_a_node_paused_for_many_blocks_catches_up_and_the_steady_state_returns() -> None:
    with LocalStack(StackSpec(block_time_s=0.25)) as stack:
        with make_fault("pause", stack, "primary"):
            time.sleep(2.0)  # ~8 blocks on the backup
        assert spread_within(stack, 1, timeout_s=3)
        synced = [e for e in stack.events if e.kind == "synced" and e.component == "node-0"]
        assert synced and "mined" in synced[0].detail
        assert check_steady_state(stack).ok


def test_a_stalled_node_is_left_stale_until_the_stall_is_undone() -> None:
    with LocalStack(StackSpec(block_time_s=1.0)) as stack:
        with make_fault("stall", stack, "primary"):
            time.sleep(3.0)
            h = heads(stack)
            assert h["node-1"] - h["node-0"] >= 3, h
            assert not [e for e in stack.events if e.kind == "synced"]
        assert spread_within(stack, 1, timeout_s=5)
