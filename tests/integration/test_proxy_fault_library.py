"""JSON-RPC faults from the fault library, through the fault proxy of a real stack:
in effect, verified, undone, ledgered (the proxy's own behaviour is in test_proxy_faults)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.errors import ConfigError
from harness.faults import make_fault, replay_open_records
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.proxy.client import ProxyControl
from harness.stack import LocalStack, StackSpec
from harness.stack.state import reap_stale_stacks


@pytest.fixture(scope="module")
def stack() -> LocalStack:  # type: ignore[misc]
    # One node: every frontend call goes through that node's proxy route.
    with LocalStack(StackSpec(name="proxied", nodes=1, block_time_s=0.5, fault_proxy=True)) as s:
        yield s


def frontend(stack: LocalStack) -> RpcClient:
    return RpcClient(stack.frontend_url, timeout_s=3)


def rules(stack: LocalStack) -> list[dict[str, object]]:
    url = stack.state().proxy_control_url
    assert url is not None
    return ProxyControl(url).rules()


def test_the_stack_passes_traffic_through_the_proxy_untouched_without_faults(
    stack: LocalStack,
) -> None:
    node = stack.state().nodes[0]
    with frontend(stack) as via_proxy, RpcClient(node.url) as direct:
        assert abs(via_proxy.block_number() - direct.block_number()) <= 1
        assert via_proxy.call("eth_chainId") == direct.call("eth_chainId")
    assert rules(stack) == []


def test_rpc_error_answers_header_not_found_for_matching_methods_only(stack: LocalStack) -> None:
    with make_fault(
        "rpc_error", stack, "primary", methods="eth_blockNumber", message="header not found"
    ) as fault:
        with frontend(stack) as client:
            with pytest.raises(RpcFailure) as failure:
                client.block_number()
            assert failure.value.outcome == Outcome.HEADER_NOT_FOUND
            assert client.call("eth_chainId") == "0x7a69"  # another method passes
    assert fault.mechanism == "fault proxy"
    assert rules(stack) == []
    with frontend(stack) as client:
        assert client.block_number() >= 0


def test_stale_head_serves_a_head_n_blocks_old(stack: LocalStack) -> None:
    node = stack.state().nodes[0]
    time.sleep(3)  # some blocks to lag behind
    with make_fault("stale_head", stack, "primary", blocks="4"):
        with frontend(stack) as client, RpcClient(node.url) as direct:
            lag = direct.block_number() - client.block_number()
    assert 3 <= lag <= 5


def test_rpc_delay_slows_one_method_while_others_stay_fast(stack: LocalStack) -> None:
    with make_fault("rpc_delay", stack, "primary", methods="eth_getBalance", delay_ms="300"):
        with frontend(stack) as client:
            started = time.monotonic()
            client.call("eth_getBalance", ["0x" + "00" * 20, "latest"])
            slow = time.monotonic() - started
            started = time.monotonic()
            client.block_number()
            fast = time.monotonic() - started
    assert slow >= 0.3 > fast


def test_latency_without_netem_comes_from_the_proxy_and_says_so(stack: LocalStack) -> None:
    with make_fault("latency", stack, "primary", delay_ms="200") as fault:
        with frontend(stack) as client:
            started = time.monotonic()
            client.block_number()
            took = time.monotonic() - started
    assert fault.mechanism.startswith(("netem", "fault proxy"))
    if fault.mechanism.startswith("fault proxy"):
        assert took >= 0.2
    assert rules(stack) == []


def test_proxy_faults_need_a_stack_with_the_proxy() -> None:
    with LocalStack(StackSpec(name="noproxy", nodes=1)) as plain:
        with pytest.raises(ConfigError) as error, make_fault("rpc_error", plain, "primary"):
            pass
    assert error.value.field == "fault_proxy"


def test_a_method_pattern_that_matches_nothing_the_workload_sends_warns(stack: LocalStack) -> None:
    with pytest.warns(UserWarning, match="matches no method the workload sends"):
        make_fault("rpc_error", stack, "primary", methods="eth_mineGold*")


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("rpc_error", {"probability": "1.5"}, "probability"),
        ("rpc_delay", {"delay_ms": "-1"}, "delay"),
        ("rate_limit", {"style": "polite"}, "style"),
    ],
)
def test_bad_proxy_fault_input_names_the_field(
    stack: LocalStack, kind: str, params: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        make_fault(kind, stack, "primary", **params)
    assert field in error.value.field
    assert rules(stack) == []


def test_a_proxy_rule_left_by_a_sigkilled_harness_is_removed_by_cleanup() -> None:
    script = textwrap.dedent(
        """
        import json, time
        from harness.stack import LocalStack, StackSpec
        from harness.faults import make_fault
        stack = LocalStack(StackSpec(name="proxyvictim", nodes=1, fault_proxy=True))
        state = stack.start()
        with make_fault("null_result", stack, "primary"):
            print(json.dumps(state.proxy_control_url), flush=True)
            time.sleep(120)
        """
    )
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert victim.stdout is not None
    control = json.loads(victim.stdout.readline())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert len(ProxyControl(control).rules()) == 1, "the proxy outlives its owner until reaped"
    undone = replay_open_records()
    assert any("removed fault proxy rule null_result" in line for line in undone), undone
    assert ProxyControl(control).rules() == []
    assert replay_open_records() == []
    assert any("proxyvictim" in line for line in reap_stale_stacks())
