"""The hardened HAProxy policy and its lag agent, with real anvil nodes and a real HAProxy.

HAProxy's runtime API is the authority on what the balancer believes; the lag agent's
words reach it through ``agent-check`` and show in ``show stat`` (``last_agent``).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.faults import make_fault
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack import HealthCheck, LocalStack, RestartPolicy, ServerStatus, StackSpec
from harness.stack.state import read_state


def server(stack: LocalStack, name: str) -> ServerStatus:
    return next(s for s in stack.runtime_api().servers() if s.server == name)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``condition`` held; AssertionError naming ``what`` if it never did."""
    started = time.monotonic()
    while time.monotonic() < started + timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s:g}s: {what}")


def head(url: str) -> int:
    with RpcClient(url, timeout_s=1.0) as client:
        return client.block_number()


def test_hardened_stack_is_ready_with_every_server_up_by_its_check_and_by_the_agent() -> None:
    with LocalStack(StackSpec(policy="hardened", block_time_s=0.5)) as stack:
        servers = stack.runtime_api().servers()
        assert [(s.server, s.status, s.backup) for s in servers] == [
            ("node-0", "UP", False),
            ("node-1", "UP", True),
        ]
        assert all(s.check_status.startswith("L7OK") for s in servers)
        assert all(s.agent_status == "L7OK" for s in servers)
        assert all(s.last_agent.startswith("via agent : up (head ") for s in servers)

        state = stack.state()
        assert (state.haproxy_policy, Path(state.haproxy_template or "").name) == (
            "hardened",
            "haproxy-hardened.cfg.j2",
        )
        agent = state.component("lag-agent")
        assert agent.role == "agent" and agent.pid is not None
        on_disk = read_state(Path(state.state_dir))
        assert set(on_disk.processes) == {"node-0", "node-1", "lag-agent", "haproxy"}
        # What HAProxy reads on a node's agent port: one line, then the agent closes.
        node = state.component("node-1")
        assert node.agent_port is not None
        with socket.create_connection(("127.0.0.1", node.agent_port), timeout=1.0) as sock:
            assert sock.makefile("rb").read().decode().startswith("up #head ")


def test_primary_with_a_frozen_head_is_marked_down_and_the_backup_answers() -> None:
    with LocalStack(StackSpec(policy="hardened", block_time_s=1.0)) as stack:
        primary, backup = stack.state().nodes
        started = time.monotonic()
        with make_fault("stall", stack, "primary"):
            wait_for(
                lambda: server(stack, "node-0").status == "DOWN (agent)",
                8.0,
                "HAProxy marks the stalled primary DOWN",
            )
            down_after_s = time.monotonic() - started
            status = server(stack, "node-0")
            assert "blocks behind best head" in status.last_agent
            assert status.check_status.startswith("L7OK")  # its own check never noticed
            frozen = head(primary.url)
            through_frontend = head(stack.frontend_url)
            assert through_frontend > frozen + 2
            assert abs(through_frontend - head(backup.url)) <= 1
            print(f"stalled primary marked DOWN {down_after_s:.2f}s after the stall began")

            # Once its head is back within max_lag_blocks of the best, it is put back.
            with RpcClient(primary.url) as client:
                client.call("anvil_mine", [hex(head(backup.url) - frozen)])
            wait_for(lambda: server(stack, "node-0").up, 2.0, "the caught-up primary is UP")


def test_a_killed_agent_leaves_haproxys_view_as_it_was_until_it_is_back() -> None:
    spec = StackSpec(policy="hardened", block_time_s=1.0, restart=RestartPolicy(delay_s=1.5))
    with LocalStack(spec) as stack:
        with make_fault("stall", stack, "primary"):
            wait_for(lambda: server(stack, "node-0").status == "DOWN (agent)", 8.0, "DOWN")
            old_pid = stack.state().component("lag-agent").pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            # With no agent to ask, HAProxy keeps the last verdict: its own checks pass,
            # and still the primary stays DOWN, and the backup UP.
            until = time.monotonic() + 1.2
            while time.monotonic() < until:
                seen = {s.server: s.status for s in stack.runtime_api().servers()}
                assert seen == {"node-0": "DOWN (agent)", "node-1": "UP"}
                time.sleep(0.05)
            wait_for(
                lambda: stack.state().component("lag-agent").pid not in (None, old_pid),
                5.0,
                "the supervisor restarts the agent",
            )
            # The new agent judges afresh: the primary is still behind, so still DOWN.
            time.sleep(0.5)
            assert server(stack, "node-0").status == "DOWN (agent)"
            assert "blocks behind best head" in server(stack, "node-0").last_agent


# The workload never sends eth_syncing (HAProxy's check does), and the fault says so.
@pytest.mark.filterwarnings("ignore::harness.faults.proxy.FaultMayNeverFire")
def test_an_agents_up_does_not_override_a_failing_health_check() -> None:
    # The fault proxy holds the answers to HAProxy's eth_syncing checks past their timeout:
    # the agent's eth_blockNumber polls on the same path are answered, so it keeps saying
    # "up" while HAProxy's own check fails.
    spec = StackSpec(
        policy="hardened", block_time_s=0.5, fault_proxy=True, health_check=HealthCheck(500)
    )
    with LocalStack(spec) as stack:
        slow_checks = make_fault(
            "rpc_delay", stack, "backup", methods="eth_syncing", delay_ms=1500.0
        )
        with slow_checks:
            wait_for(lambda: server(stack, "node-1").status == "DOWN", 5.0, "checks fail")
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                status = server(stack, "node-1")
                assert status.status == "DOWN", status
                assert status.agent_status.lstrip("* ") == "L7OK", status  # it said "up"
                time.sleep(0.05)
        wait_for(lambda: server(stack, "node-1").up, 5.0, "the backup is UP once checks pass")


def test_a_paused_primary_costs_clients_far_less_than_the_pause() -> None:
    spec = StackSpec(policy="hardened", block_time_s=0.5)
    with LocalStack(spec) as stack:
        answered: list[float] = []
        failures: list[str] = []
        done = threading.Event()

        def client_loop() -> None:
            with RpcClient(stack.frontend_url, timeout_s=1.0) as client:
                while not done.is_set():
                    try:
                        client.block_number()
                        answered.append(time.monotonic())
                    except RpcFailure as exc:
                        failures.append(exc.outcome.value)
                    time.sleep(0.01)

        loop = threading.Thread(target=client_loop, daemon=True)
        loop.start()
        try:
            time.sleep(0.5)
            paused_at = time.monotonic()
            with make_fault("pause", stack, "primary"):
                time.sleep(5.0)
            resumed_at = time.monotonic()
            time.sleep(1.0)
        finally:
            done.set()
            loop.join(5)
        during = [t for t in answered if paused_at - 0.5 <= t <= resumed_at + 1.0]
        worst_gap_s = max(b - a for a, b in itertools.pairwise(during))
        print(
            f"5 s pause of the primary: worst gap between answers {worst_gap_s:.2f}s, "
            f"{len(failures)} failed calls ({', '.join(sorted(set(failures))) or 'none'})"
        )
        assert resumed_at - paused_at >= 5.0
        assert worst_gap_s < 2.5
