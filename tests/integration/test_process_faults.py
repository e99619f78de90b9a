"""Process faults against a real stack: in effect, verified, timed, always undone."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from harness.errors import ConfigError
from harness.faults import Kill, Pause, Terminate, make_fault, replay_open_records
from harness.faults.ledger import ledger_dir
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack import LocalStack, RestartPolicy, StackSpec
from harness.stack.state import reap_stale_stacks


@pytest.fixture
def stack() -> LocalStack:  # type: ignore[misc]
    with LocalStack(
        StackSpec(name="pf", block_time_s=0.5, restart=RestartPolicy(delay_s=0.2))
    ) as s:
        yield s


def _status(pid: int) -> str:
    return str(psutil.Process(pid).status())


def test_pause_stops_the_primary_for_the_block_and_resumes_it(stack: LocalStack) -> None:
    node = stack.state().component("node-0")
    assert node.pid is not None
    with Pause(stack, "primary") as fault:
        assert _status(node.pid) == psutil.STATUS_STOPPED
        with RpcClient(node.url, timeout_s=0.3) as client, pytest.raises(RpcFailure) as failure:
            client.block_number()
        assert failure.value.outcome == "timeout"
    assert _status(node.pid) != psutil.STATUS_STOPPED
    assert fault.record is not None
    assert fault.record.targets == ("node-0",)
    assert fault.record.mechanism == "SIGSTOP"
    assert 0 < fault.record.apply_us < 1_000_000
    assert fault.record.reverted_ns > fault.record.revert_requested_ns > fault.record.effective_ns


def test_pause_is_undone_when_the_block_raises(stack: LocalStack) -> None:
    node = stack.state().component("node-1")
    assert node.pid is not None
    with pytest.raises(RuntimeError), Pause(stack, "backup"):
        raise RuntimeError("a failing scenario")
    assert _status(node.pid) != psutil.STATUS_STOPPED


def test_kill_is_followed_by_the_supervisors_restart(stack: LocalStack) -> None:
    old_pid = stack.state().component("node-0").pid
    with Kill(stack, "primary") as fault:
        assert (old_pid is not None and not psutil.pid_exists(old_pid)) or _status(
            old_pid
        ) == "zombie"
    deadline = time.monotonic() + 5
    while stack.state().component("node-0").pid in (None, old_pid):
        assert time.monotonic() < deadline, "the supervisor did not restart the killed primary"
        time.sleep(0.02)
    assert fault.record is not None and fault.record.mechanism == "SIGKILL"
    started = [e for e in stack.events if e.component == "node-0" and e.kind == "started"]
    assert started[-1].t_ns > fault.record.effective_ns


def test_terminate_escalates_to_sigkill_after_the_grace(stack: LocalStack) -> None:
    node = stack.state().component("node-1")
    assert node.pid is not None
    psutil.Process(node.pid).suspend()  # a stopped process cannot act on SIGTERM
    with Terminate(stack, "backup", grace_s=0.3) as fault:
        pass
    assert fault.mechanism == "SIGTERM+SIGKILL"


def test_fault_can_be_used_from_async_code(stack: LocalStack) -> None:
    pid = stack.state().component("node-0").pid
    assert pid is not None

    async def scenario() -> str:
        async with Pause(stack, "primary"):
            return _status(pid)

    assert asyncio.run(scenario()) == psutil.STATUS_STOPPED
    assert _status(pid) != psutil.STATUS_STOPPED


def test_the_ledger_is_written_before_the_fault_and_closed_after(stack: LocalStack) -> None:
    with Pause(stack, "primary"):
        (ledger,) = ledger_dir().glob("*.jsonl")
        events = [json.loads(line)["event"] for line in ledger.read_text().splitlines()]
        assert events == ["open"]
    events = [json.loads(line)["event"] for line in ledger.read_text().splitlines()]
    assert events == ["open", "close"]


@pytest.mark.parametrize(
    ("kind", "target", "params", "field"),
    [
        ("pause", "node-9", {}, "target"),
        ("pause", "bogus", {}, "target"),
        ("pause", "1.5", {}, "target"),
        ("terminate", "primary", {"grace_s": "-1"}, "grace_s"),
        ("nope", "primary", {}, "fault"),
        ("kill", "primary", {"signal": "9"}, "kill parameter"),
    ],
)
def test_bad_fault_input_is_a_config_error_and_applies_nothing(
    stack: LocalStack, kind: str, target: str, params: dict[str, str], field: str
) -> None:
    pids = {c.name: c.pid for c in stack.state().components}
    with pytest.raises(ConfigError) as error, make_fault(kind, stack, target, **params):
        pass
    assert error.value.field == field
    assert {c.name: c.pid for c in stack.state().components} == pids
    assert all(_status(p) != psutil.STATUS_STOPPED for p in pids.values() if p)


def test_a_paused_node_is_resumed_after_the_harness_is_killed() -> None:
    script = textwrap.dedent(
        """
        import json, time
        from harness.stack import LocalStack, StackSpec
        from harness.faults import Pause
        stack = LocalStack(StackSpec(name="victim"))
        stack.start()
        with Pause(stack, "all"):
            print(json.dumps([n.pid for n in stack.state().nodes]), flush=True)
            time.sleep(120)
        """
    )
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert victim.stdout is not None
    pids = json.loads(victim.stdout.readline())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert all(_status(p) == psutil.STATUS_STOPPED for p in pids)
    undone = replay_open_records()
    assert len(undone) == 2 and all("resumed paused process" in line for line in undone)
    assert all(_status(p) != psutil.STATUS_STOPPED for p in pids)
    assert replay_open_records() == [], "replay must be idempotent"
    assert any("victim" in line for line in reap_stale_stacks())


def test_harness_fault_cli_holds_and_reverts_and_prints_the_record() -> None:
    up = subprocess.run(
        ["harness", "stack", "up", "--name", "clifault"], capture_output=True, timeout=60
    )
    assert up.returncode == 0, up.stderr
    try:
        result = subprocess.run(
            ["harness", "fault", "pause", "backup", "--for", "300ms", "--name", "clifault"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout.strip().splitlines()[-1])
        assert record["kind"] == "pause" and record["targets"] == ["node-1"]
        assert record["reverted_ns"] - record["effective_ns"] >= 300_000_000
    finally:
        subprocess.run(["harness", "stack", "down", "--name", "clifault"], timeout=60)


def test_sigterm_ends_a_cli_fault_early_and_reverts_it() -> None:
    subprocess.run(["harness", "stack", "up", "--name", "cliterm"], capture_output=True, timeout=60)
    try:
        proc = subprocess.Popen(
            ["harness", "fault", "pause", "primary", "--for", "60s", "--name", "cliterm"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert "in effect" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "ended early by SIGTERM" in out
        status = json.loads(
            subprocess.run(
                ["harness", "stack", "status", "--json", "--name", "cliterm"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        )
        node0 = next(c for c in status["components"] if c["name"] == "node-0")
        assert _status(node0["pid"]) != psutil.STATUS_STOPPED
    finally:
        subprocess.run(["harness", "stack", "down", "--name", "cliterm"], timeout=60)


def test_a_fault_on_a_process_that_is_already_dead_is_ineffective() -> None:
    from harness.faults.fault import FaultIneffective
    from harness.faults.process import _identity
    from harness.stack.model import ComponentState

    child = subprocess.Popen(["sleep", "30"])
    child.kill()
    time.sleep(0.2)  # dead but not reaped: a zombie, as a node between death and restart
    zombie = ComponentState("node-0", "anvil", "primary", child.pid, "127.0.0.1", 1)
    with pytest.raises(FaultIneffective, match="already dead"):
        _identity(zombie)
    child.wait()


def test_stop_keeps_a_node_down_past_its_restart_delay_and_undoing_it_restarts_it(
    stack: LocalStack,
) -> None:
    before = stack.state().component("node-1").pid
    with make_fault("stop", stack, "backup") as fault:
        time.sleep(1.0)  # five restart delays of 0.2 s
        assert stack.state().component("node-1").pid is None
        with pytest.raises(RpcFailure), RpcClient(stack.state().component("node-1").url) as c:
            c.block_number()
    after = stack.state().component("node-1").pid
    assert after is not None and after != before
    assert fault.record is not None and fault.record.revert_us < 2_000_000
    held = [e for e in stack.events if e.component == "node-1" and "held down" in e.detail]
    assert len(held) == 1


def test_both_nodes_stopped_answer_503_through_haproxy_until_one_returns(stack: LocalStack) -> None:
    with make_fault("stop", stack, "all"):
        time.sleep(0.3)
        with pytest.raises(RpcFailure) as failure, RpcClient(stack.frontend_url, 5.0) as c:
            c.block_number()
        assert failure.value.outcome.value in ("http_503", "http_502")
    with RpcClient(stack.frontend_url, timeout_s=5.0) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert client.block_number() >= 0
                break
            except RpcFailure:
                time.sleep(0.05)
        else:
            pytest.fail("the frontend never answered after the stop was undone")


def test_a_node_held_down_by_a_killed_harness_is_restarted_by_cleanup() -> None:
    subprocess.run(["harness", "stack", "up", "--name", "clistop"], capture_output=True, timeout=60)
    try:
        proc = subprocess.Popen(
            ["harness", "fault", "stop", "backup", "--for", "60s", "--name", "clistop"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert "in effect" in proc.stdout.readline()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(1.0)  # twice the restart delay: still held

        def backup_pid() -> int | None:
            status = subprocess.run(
                ["harness", "stack", "status", "--json", "--name", "clistop"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            doc = json.loads(status.stdout)
            return next(c["pid"] for c in doc["components"] if c["name"] == "node-1")

        assert backup_pid() is None
        cleanup = subprocess.run(["harness", "cleanup"], capture_output=True, text=True, timeout=60)
        assert "removed" in cleanup.stdout and "hold" in cleanup.stdout, cleanup.stdout
        deadline = time.monotonic() + 10
        while backup_pid() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backup_pid() is not None
    finally:
        subprocess.run(["harness", "stack", "down", "--name", "clistop"], timeout=60)
