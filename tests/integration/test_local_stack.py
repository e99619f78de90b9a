"""The local stack, with real anvil nodes and a real HAProxy."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import ConfigError, StackError
from harness.jsonrpc import RpcClient
from harness.stack import LocalStack, RestartPolicy, StackSpec
from harness.stack.ports import free_port
from harness.stack.state import read_state
from harness.stack.steady import SteadyStateSpec, check_steady_state
from tests.conftest import processes_under


def test_stack_is_ready_with_every_server_up_and_answers_through_the_frontend() -> None:
    with LocalStack(StackSpec(block_time_s=0.5)) as stack:
        servers = stack.runtime_api().servers()
        assert [(s.server, s.status, s.backup) for s in servers] == [
            ("node-0", "UP", False),
            ("node-1", "UP", True),
        ]
        assert all(s.check_status.startswith("L7OK") for s in servers)
        with RpcClient(stack.frontend_url) as client:
            assert client.block_number() >= 0
        assert stack.ready_s is not None and stack.ready_s < 10


def test_teardown_stops_every_process_and_removes_state() -> None:
    stack = LocalStack(StackSpec())
    state = stack.start()
    pids = [c.pid for c in state.components]
    assert all(pid and psutil.pid_exists(pid) for pid in pids)
    stack.stop()
    assert not Path(state.state_dir).exists()
    assert processes_under(Path(state.state_dir)) == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_state_file_lists_every_process_with_its_start_time() -> None:
    with LocalStack(StackSpec()) as stack:
        state_file = read_state(Path(stack.state().state_dir))
        assert state_file.phase == "ready"
        assert set(state_file.processes) == {"node-0", "node-1", "haproxy"}
        for name, identity in state_file.processes.items():
            assert identity.alive(), name
            assert identity.pid == stack.state().component(name).pid


def test_killed_primary_is_restarted_by_the_supervisor_and_rejoins_haproxy() -> None:
    spec = StackSpec(
        block_time_s=0.2, restart=RestartPolicy(delay_s=0.2), health_check=_fast_checks()
    )
    with LocalStack(spec) as stack:
        old_pid = stack.state().component("node-0").pid
        assert old_pid is not None
        psutil.Process(old_pid).send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            node = stack.state().component("node-0")
            if node.pid not in (None, old_pid) and _server_status(stack, "node-0") == "UP":
                break
            time.sleep(0.05)
        node = stack.state().component("node-0")
        assert node.pid not in (None, old_pid)
        assert node.restarts == 1
        kinds = [e.kind for e in stack.events if e.component == "node-0"]
        assert kinds == ["started", "exited", "restart_scheduled", "started"]
        exited = next(e for e in stack.events if e.kind == "exited")
        assert exited.detail == "killed by SIGKILL"
        # The state file follows the restart, so another process targets the new pid.
        on_disk = read_state(Path(stack.state().state_dir)).stack
        assert on_disk is not None and on_disk.component("node-0").pid == node.pid


def test_restarted_anvil_node_catches_up_with_its_peer() -> None:
    spec = StackSpec(block_time_s=0.1, restart=RestartPolicy(delay_s=1.0))
    with LocalStack(spec) as stack:
        node = stack.state().component("node-0")
        assert node.pid is not None
        psutil.Process(node.pid).send_signal(signal.SIGKILL)
        time.sleep(1.0)  # ~10 blocks mined by the peer while node-0 is dead
        deadline = time.monotonic() + 10
        spread = None
        while time.monotonic() < deadline:
            try:
                result = check_steady_state(stack, SteadyStateSpec(max_head_lag_blocks=3))
            except Exception:
                result = None
            if result is not None and result.ok:
                spread = max(result.heads.values()) - min(result.heads.values())
                break
            time.sleep(0.2)
        assert spread is not None and spread <= 3


def test_steady_state_reports_a_paused_node_as_not_answering() -> None:
    with LocalStack(StackSpec(block_time_s=0.2)) as stack:
        pid = stack.state().component("node-1").pid
        assert pid is not None
        proc = psutil.Process(pid)
        proc.suspend()
        try:
            result = check_steady_state(stack)
        finally:
            proc.resume()
        assert not result.ok
        assert [c.name for c in result.failures] == ["node-1 answers"]
        assert "timeout" in result.failures[0].detail


def test_steady_state_reports_a_frozen_head() -> None:
    with LocalStack(StackSpec(block_time_s=0.2)) as stack:
        node = stack.state().component("node-1")
        with RpcClient(node.url) as client:
            client.call("evm_setIntervalMining", [0])
        result = check_steady_state(stack)
        # A frozen head also falls behind: on a slow host the check lasts long enough for
        # "heads agree" to fail too. Both must name the frozen node.
        names = [c.name for c in result.failures]
        assert names[0] == "heads advance" and set(names) <= {"heads advance", "heads agree"}
        assert all("node-1" in c.detail for c in result.failures)


def test_a_taken_frontend_port_is_refused_and_nothing_is_left_running() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = LocalStack(StackSpec(frontend_port=port))
        with pytest.raises(ConfigError, match=f"frontend_port={port}.*already in use"):
            stack.start()
    assert not stack.dir.exists()
    assert processes_under(stack.dir) == []


def test_a_port_taken_between_its_pick_and_haproxys_bind_fails_at_once_in_haproxys_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    import harness.stack.local as local

    with socket.socket() as thief:  # stands for whoever took the port in the race
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        stolen = thief.getsockname()[1]
        picks = iter([stolen])
        monkeypatch.setattr(local, "free_port", lambda: next(picks, None) or free_port())
        stack = LocalStack(StackSpec(name="port-race"))
        started = time.monotonic()
        with pytest.raises(StackError, match=r"HAProxy exited while starting.*cannot bind"):
            stack.start()
        assert time.monotonic() - started < stack.spec.ready_timeout_s / 2
    assert not stack.dir.exists()
    assert processes_under(stack.dir) == []


def test_a_template_haproxy_rejects_fails_with_haproxys_words(tmp_path: Path) -> None:
    template = tmp_path / "bad.cfg.j2"
    template.write_text("global\n    no-such-keyword 1\n")
    stack = LocalStack(StackSpec(haproxy_template=template))
    with pytest.raises(ConfigError, match=r"HAProxy rejects it.*no-such-keyword"):
        stack.start()
    assert not stack.dir.exists()


def test_a_users_own_template_is_used(tmp_path: Path) -> None:
    source = (Path(__file__).parents[2] / "fixtures" / "haproxy.cfg.j2").read_text()
    template = tmp_path / "mine.cfg.j2"
    template.write_text(source.replace("balance roundrobin", "balance leastconn"))
    with LocalStack(StackSpec(haproxy_template=template)) as stack:
        config = (Path(stack.state().state_dir) / "haproxy.cfg").read_text()
        assert "balance leastconn" in config


def test_a_second_stack_with_the_same_name_is_refused() -> None:
    with LocalStack(StackSpec(name="twin")), pytest.raises(StackError, match="already running"):
        LocalStack(StackSpec(name="twin")).start()


def _fast_checks():  # type: ignore[no-untyped-def]
    from harness.stack import HealthCheck

    return HealthCheck(inter_ms=200, fall=2, rise=1)


def _server_status(stack: LocalStack, name: str) -> str:
    return next(s.status for s in stack.runtime_api().servers() if s.server == name)


def test_a_netns_stack_can_be_restarted_under_the_same_name_at_once() -> None:
    if os.geteuid() != 0:
        pytest.skip("netns isolation needs root")
    for _ in range(3):
        with LocalStack(StackSpec(name="again", isolation="netns")) as stack:
            assert all(n.netns for n in stack.state().nodes)
    assert not any(Path("/run/netns").glob("hx-again-*"))
