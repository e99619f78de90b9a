"""Network faults against a real stack in network namespaces: in effect on the wire, verified
through the kernel (nft, pyroute2), timed, and always undone, even after a SIGKILL."""

from __future__ import annotations

import itertools
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.faults import FaultUnavailable, make_fault, replay_open_records
from harness.faults.ledger import ledger_dir
from harness.faults.network import (
    Bandwidth,
    Corrupt,
    Duplicate,
    Latency,
    Loss,
    Partition,
    Reorder,
    capabilities,
    netem_available,
)
from harness.faults.undo import run_undo
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.stack import HealthCheck, LocalStack, StackSpec
from harness.stack.model import ComponentState
from harness.stack.state import reap_stale_stacks

FAST_CHECK = HealthCheck(inter_ms=200, fall=2, rise=1)
IDENTITY_PRECOMPILE = "0x0000000000000000000000000000000000000004"  # eth_call echoes the data


# A fresh name per stack: the kernel removes a deleted namespace's host-side veth a little
# after `ip netns del` returns, so reusing a name at once can meet "File exists".
_stack_names = (f"nf{n}" for n in itertools.count())


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    spec = StackSpec(
        name=next(_stack_names), isolation="netns", block_time_s=0.5, health_check=FAST_CHECK
    )
    with LocalStack(spec) as s:
        yield s


# -- what the kernel says, read independently of the code under test -----------------------


def nft_tables(netns: str | None = None) -> list[str]:
    """Names of the nft tables in ``netns`` (the host's own with None)."""
    argv = ["nft", "-j", "list", "tables"]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    return [o["table"]["name"] for o in json.loads(out)["nftables"] if "table" in o]


def root_qdisc(netns: str, ifname: str = "eth0") -> dict[str, Any]:
    """The root qdisc of ``ifname`` in ``netns`` as ``tc -j`` reports it (handle "0:": default)."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "tc", "-j", "qdisc", "show", "dev", ifname],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    roots = [q for q in json.loads(out) if q.get("root")]
    return roots[0] if roots else {"kind": None, "handle": "0:"}


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def ledger_records() -> list[dict[str, Any]]:
    directory = ledger_dir()
    if not directory.is_dir():
        return []
    lines = [line for path in directory.glob("*.jsonl") for line in path.read_text().splitlines()]
    return [json.loads(line) for line in lines]


def rpc_outcome(node: ComponentState, timeout_s: float = 0.5) -> Outcome:
    with RpcClient(node.url, timeout_s=timeout_s) as client:
        try:
            client.block_number()
        except RpcFailure as failure:
            return failure.outcome
    return Outcome.OK


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until ``condition``; seconds it took. Fails the test after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what} within {timeout_s}s"
        time.sleep(0.05)
    return time.monotonic() - started


def haproxy_status(stack: LocalStack, server: str) -> str:
    return next(s.status for s in stack.runtime_api().servers() if s.server == server)


def nothing_applied(node: ComponentState) -> bool:
    assert node.netns is not None
    return (
        not [t for t in nft_tables(node.netns) if t.startswith("harness_")]
        and root_qdisc(node.netns)["handle"] == "0:"
    )


# -- partition -------------------------------------------------------------------------------


def test_partition_cuts_the_node_off_and_haproxy_marks_it_down_until_the_block_ends(
    stack: LocalStack,
) -> None:
    node = stack.state().component("node-0")
    assert node.netns is not None
    with Partition(stack, "primary") as fault:
        assert fault.table in nft_tables(node.netns)
        with pytest.raises(TimeoutError):
            socket.create_connection((node.host, node.port), timeout=0.5).close()
        assert rpc_outcome(node) == Outcome.TIMEOUT
        wait_for(lambda: haproxy_status(stack, "node-0") == "DOWN", 5, "HAProxy marks it DOWN")
        with RpcClient(stack.frontend_url, timeout_s=2) as client:
            assert client.block_number() >= 0, "the backup serves while the primary is cut off"
    assert rpc_outcome(node) == Outcome.OK
    assert nothing_applied(node)
    assert fault.table not in nft_tables(node.netns)
    wait_for(lambda: haproxy_status(stack, "node-0") == "UP", 5, "HAProxy marks it UP again")
    assert fault.record is not None and fault.record.mechanism == "nftables"
    assert fault.record.params == {"direction": "both"}
    assert 0 < fault.record.apply_us < 2_000_000 and 0 < fault.record.revert_us < 2_000_000


def test_partition_is_undone_when_the_block_raises_and_undo_is_idempotent(
    stack: LocalStack,
) -> None:
    node = stack.state().component("node-1")
    with pytest.raises(RuntimeError), Partition(stack, "backup"):
        raise RuntimeError("a failing scenario")
    assert nothing_applied(node)
    opened, closed = ledger_records()
    assert (opened["event"], closed["event"]) == ("open", "close")
    assert [op["op"] for op in opened["undo"]] == ["nft_delete_table"]
    assert [run_undo(op) for op in opened["undo"]] == [None], "undoing again does nothing"


def test_one_way_partition_drops_only_what_reaches_the_node(stack: LocalStack) -> None:
    node = stack.state().component("node-0")
    assert node.netns is not None
    with Partition(stack, "primary", direction="ingress") as fault:
        listing = subprocess.run(
            ["ip", "netns", "exec", node.netns, "nft", "list", "table", "inet", fault.table],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        assert "hook input" in listing and "hook output" not in listing
        assert rpc_outcome(node) == Outcome.TIMEOUT
    assert nothing_applied(node)


# -- loss --------------------------------------------------------------------------------


def test_full_loss_via_nftables_makes_rpc_time_out_and_is_removed_after(
    stack: LocalStack,
) -> None:
    node = stack.state().component("node-0")
    assert node.netns is not None
    with Loss(stack, "primary", percent=100) as fault:
        assert fault.mechanism == "nftables"  # both directions: netem cannot, even where present
        assert fault.table in nft_tables(node.netns)
        assert rpc_outcome(node) == Outcome.TIMEOUT
    assert rpc_outcome(node) == Outcome.OK
    assert nothing_applied(node)
    assert fault.record is not None and fault.record.mechanism == "nftables"


def test_correlated_loss_without_netem_is_unavailable_and_applies_nothing(
    stack: LocalStack,
) -> None:
    if netem_available()[0]:
        pytest.skip("this kernel has sch_netem: correlated egress loss runs through netem")
    node = stack.state().component("node-0")
    loss = Loss(stack, "primary", percent=50, correlation_pct=25)
    with pytest.raises(FaultUnavailable, match="correlation_pct"), loss:
        pass
    assert nothing_applied(node)
    assert ledger_records() == []


# -- bandwidth ---------------------------------------------------------------------------


def test_bandwidth_installs_a_tbf_qdisc_that_slows_responses_and_removes_it(
    stack: LocalStack,
) -> None:
    node = stack.state().component("node-0")
    assert node.netns is not None
    payload = "0x" + "ab" * 20_000  # echoed back: a 40 kB response, shaped on the node's egress

    def echo_s() -> float:
        with RpcClient(node.url, timeout_s=5) as client:
            started = time.monotonic()
            assert len(client.call("eth_call", [{"to": IDENTITY_PRECOMPILE, "data": payload}])) > 0
            return time.monotonic() - started

    assert echo_s() < 0.15
    with Bandwidth(stack, "primary", rate_kbit=800, burst_kb=16) as fault:
        qdisc = root_qdisc(node.netns)
        assert (qdisc["kind"], qdisc["handle"]) == ("tbf", "4858:")
        assert qdisc["options"]["rate"] == 100_000  # 800 kbit/s in bytes/s
        assert echo_s() > 0.2  # 24 kB beyond the burst at 100 kB/s
    assert echo_s() < 0.15
    assert nothing_applied(node)
    assert fault.record is not None and fault.record.mechanism == "tbf"


def test_a_second_qdisc_fault_on_the_same_node_is_refused_and_the_first_stays(
    stack: LocalStack,
) -> None:
    node = stack.state().component("node-0")
    assert node.netns is not None
    with Bandwidth(stack, "primary"):
        with pytest.raises(ConfigError) as error, Bandwidth(stack, "primary", rate_kbit=100):
            pass
        assert error.value.field == "target"
        assert root_qdisc(node.netns)["kind"] == "tbf"
    assert nothing_applied(node)


# -- what cannot run, and what must be refused -----------------------------------------


@pytest.mark.parametrize("cls", [Latency, Corrupt, Duplicate, Reorder], ids=lambda c: c.kind)
def test_netem_faults_are_unavailable_without_sch_netem_and_apply_nothing(
    stack: LocalStack, cls: Any
) -> None:
    if netem_available()[0]:
        pytest.skip("this kernel has sch_netem: netem faults can run here")
    node = stack.state().component("node-0")
    with pytest.raises(FaultUnavailable, match="sch_netem"), cls(stack, "primary"):
        pass
    assert nothing_applied(node)
    assert ledger_records() == []


def test_capabilities_say_what_this_host_can_run_and_leave_nothing_behind() -> None:
    before = (netns_list(), nft_tables())
    caps = capabilities()
    assert set(caps) == {
        "latency", "loss", "corrupt", "duplicate", "reorder", "bandwidth", "partition"
    }  # fmt: skip
    assert caps["partition"] == (True, "") and caps["bandwidth"] == (True, "")
    assert caps["loss"] == (True, "")
    netem, why = netem_available()
    if not netem:
        assert not caps["latency"][0] and "sch_netem" in caps["latency"][1]
        assert "fault proxy" in caps["latency"][1]
        assert "sch_netem" in why
    assert (netns_list(), nft_tables()) == before


@pytest.mark.parametrize("cls", [Partition, Loss, Bandwidth], ids=lambda c: c.kind)
def test_a_loopback_stack_refuses_network_faults_and_applies_nothing(cls: Any) -> None:
    host_tables = nft_tables()
    with LocalStack(StackSpec(name="nflo", block_time_s=0.5, health_check=FAST_CHECK)) as stack:
        with pytest.raises(ConfigError) as error, cls(stack, "primary"):
            pass
        assert error.value.field == "isolation"
        assert "isolation=netns" in error.value.fix
        assert ledger_records() == []
        assert nft_tables() == host_tables
        assert rpc_outcome(stack.state().component("node-0")) == Outcome.OK


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("loss", {"percent": "101"}, "percent"),
        ("loss", {"percent": "0"}, "percent"),
        ("latency", {"delay_ms": "-1"}, "delay_ms"),
        ("bandwidth", {"rate_kbit": "0"}, "rate_kbit"),
        ("partition", {"direction": "sideways"}, "direction"),
    ],
)
def test_bad_network_parameters_are_config_errors_and_apply_nothing(
    stack: LocalStack, kind: str, params: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as error, make_fault(kind, stack, "primary", **params):
        pass
    assert error.value.field == field
    assert all(nothing_applied(n) for n in stack.state().nodes)
    assert ledger_records() == []


# -- the SIGKILL guarantee -----------------------------------------------------------------


def test_partition_and_bandwidth_are_undone_from_the_ledger_after_the_harness_is_killed() -> None:
    script = textwrap.dedent(
        """
        import json, time
        from harness.stack import LocalStack, StackSpec
        from harness.faults.network import Bandwidth, Partition
        stack = LocalStack(StackSpec(name="netvictim", isolation="netns", block_time_s=0.5))
        stack.start()
        with Partition(stack, "primary") as cut, Bandwidth(stack, "backup", rate_kbit=800):
            nodes = [n.netns for n in stack.state().nodes]
            print(json.dumps({"netns": nodes, "table": cut.table}), flush=True)
            time.sleep(120)
        """
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert victim.stdout is not None and victim.stderr is not None
        line = victim.stdout.readline()
        assert line, victim.stderr.read()
        held = json.loads(line)
        primary_ns, backup_ns = held["netns"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert held["table"] in nft_tables(primary_ns), "the killed harness left the partition"
        assert root_qdisc(backup_ns)["kind"] == "tbf", "the killed harness left the tbf qdisc"

        undone = replay_open_records()

        # The namespaces are still there (the stack is not reaped yet): the ledger did it.
        assert {primary_ns, backup_ns} <= set(netns_list())
        assert held["table"] not in nft_tables(primary_ns)
        assert root_qdisc(backup_ns)["handle"] == "0:"
        assert any(
            line.startswith("partition on node-0") and "deleted nft table" in line
            for line in undone
        ), undone
        assert any(
            line.startswith("bandwidth on node-1") and "removed tbf qdisc" in line
            for line in undone
        ), undone
        assert replay_open_records() == [], "replay must be idempotent"
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        replay_open_records()
        reaped = reap_stale_stacks()
    assert any("netvictim" in line for line in reaped)
    assert not [ns for ns in netns_list() if ns.startswith("hx-netvictim-")]
