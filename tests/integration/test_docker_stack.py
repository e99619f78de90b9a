"""The docker backend against a real daemon: up, healthy, faults in containers, nothing left.

Skipped, with the fix in the reason, where no daemon answers (`scripts/dockerd.sh start`).
Images are baked on first use (a second or two; idempotent after that).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.engine import LABEL_RUN
from harness.errors import ConfigError
from harness.faults import Partition, Pause, Stop, make_fault, replay_open_records
from harness.images import bake_all
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.monitor.processes import expected_targets, wait_scraped
from harness.stack.docker.stack import DockerStack
from harness.stack.model import StackSpec
from tests.conftest import VENV_BIN

HARNESS = [str(VENV_BIN / "harness")]


def _ours(client: Any, run_id: str) -> list[str]:
    selector = {"label": f"{LABEL_RUN}={run_id}"}
    return (
        [c.name for c in client.containers.list(all=True, filters=selector)]
        + [n.name for n in client.networks.list(filters=selector)]
        + [v.name for v in client.volumes.list(filters=selector)]
    )


def _spec(name: str, **kw: Any) -> StackSpec:
    return StackSpec(name=name, backend="docker", chain="independent", block_time_s=0.5, **kw)


def test_baking_twice_builds_nothing_the_second_time(docker: Any) -> None:
    again = bake_all()
    assert [(r.name, r.action) for r in again] == [
        ("anvil", "present"), ("haproxy", "present"), ("prometheus", "present"),
    ]  # fmt: skip
    assert all(r.took_s < 5 for r in again)


def test_a_docker_stack_is_healthy_on_loopback_and_leaves_nothing_when_it_goes(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-up")) as stack:
        state = stack.state()
        run_id = stack.run_id
        assert stack.ready_s is not None and stack.ready_s < 10
        assert [s.status for s in stack.runtime_api().servers()] == ["UP", "UP"]
        with RpcClient(state.frontend_url, timeout_s=2) as client:
            assert client.block_number() >= 0
        for c in state.components:
            assert c.container is not None and c.pid is not None, c
            bindings = docker.api.inspect_container(c.container)["HostConfig"]["PortBindings"]
            assert {b["HostIp"] for spec in bindings.values() for b in spec} == {"127.0.0.1"}
        assert len(_ours(docker, run_id)) == 3 + 1 + 2  # containers, network, node volumes
    assert _ours(docker, run_id) == []
    assert not Path(state.state_dir).exists()


def test_an_image_that_is_not_there_is_one_error_naming_the_bake_and_nothing_starts(
    docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_IMAGE_ANVIL", "harness/anvil:0.0.0-never-baked")
    before = {c.id for c in docker.containers.list(all=True)}
    with pytest.raises(ConfigError, match="harness images bake anvil"):
        DockerStack(_spec("dk-noimage")).start()
    assert {c.id for c in docker.containers.list(all=True)} == before


def test_a_frontend_port_in_use_is_refused_before_any_container_starts(docker: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = {c.id for c in docker.containers.list(all=True)}
        with pytest.raises(ConfigError, match="already in use"):
            DockerStack(_spec("dk-port", frontend_port=port)).start()
        assert {c.id for c in docker.containers.list(all=True)} == before


def test_a_haproxy_template_haproxy_rejects_fails_before_any_container_starts(
    docker: Any, tmp_path: Path
) -> None:
    template = tmp_path / "bad.cfg.j2"
    template.write_text("global\n    no-such-keyword 1\n")
    before = {c.id for c in docker.containers.list(all=True)}
    with pytest.raises(ConfigError, match="HAProxy rejects it"):
        DockerStack(_spec("dk-badcfg", haproxy_template=template)).start()
    assert {c.id for c in docker.containers.list(all=True)} == before
    assert docker.networks.list(filters={"label": "io.harness.stack=dk-badcfg"}) == []


def test_no_daemon_is_one_line_and_exit_2_naming_how_to_start_one(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    proc = subprocess.run(
        [*HARNESS, "stack", "up", "--backend", "docker", "--name", "dk-nodaemon"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "scripts/dockerd.sh start" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.chaos
def test_a_killed_node_container_is_restarted_by_docker_and_the_restart_is_an_event(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-kill")) as stack:
        node = stack.state().component("node-0")
        assert node.pid is not None
        os.kill(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = stack.state().component("node-0")
            if now.pid not in (None, node.pid) and now.restarts == 1:
                break
            time.sleep(0.05)
        assert now.restarts == 1 and now.pid not in (None, node.pid)
        kinds = [e.kind for e in stack.events if e.component == "node-0"]
        assert kinds[-2:] == ["exited", "started"]
        # Back where clients look for it (started is not yet listening: poll briefly).
        with RpcClient(now.url, timeout_s=1) as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert client.block_number() >= 0
                    break
                except RpcFailure:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


@pytest.mark.chaos
def test_pause_freezes_the_container_and_stop_holds_it_down_until_undone(docker: Any) -> None:
    with DockerStack(_spec("dk-pause")) as stack:
        node = stack.state().component("node-1")
        with Pause(stack, "backup") as fault:
            assert docker.api.inspect_container(node.container)["State"]["Paused"]
            assert fault.mechanism.startswith("docker pause")
        assert not docker.api.inspect_container(node.container)["State"]["Paused"]
        with Stop(stack, "backup"):
            time.sleep(1.0)  # the restart policy would have brought it back by now
            assert not docker.api.inspect_container(node.container)["State"]["Running"]
        assert docker.api.inspect_container(node.container)["State"]["Running"]


@pytest.mark.chaos
def test_a_paused_container_is_unpaused_after_the_harness_holding_it_is_killed(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-ledger")) as stack:
        node = stack.state().component("node-0")
        holder = subprocess.Popen(
            [*HARNESS, "fault", "pause", "primary", "--for", "60s", "--name", "dk-ledger"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        assert "in effect" in holder.stdout.readline()
        assert docker.api.inspect_container(node.container)["State"]["Paused"]
        holder.kill()
        holder.wait(10)
        undone = replay_open_records()
        assert any("unpaused container of node-0" in line for line in undone), undone
        assert not docker.api.inspect_container(node.container)["State"]["Paused"]


@pytest.mark.chaos
def test_what_a_killed_stack_up_leaves_in_docker_is_removed_by_cleanup(docker: Any) -> None:
    up = subprocess.run(
        [*HARNESS, "stack", "up", "--backend", "docker", "--name", "dk-orphan", "--chain",
         "independent", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    run_label = docker.api.inspect_container(state["components"][0]["container"])["Config"][
        "Labels"
    ][LABEL_RUN]
    os.kill(state["owner_pid"], signal.SIGKILL)
    time.sleep(0.2)
    cleanup = subprocess.run(
        [*HARNESS, "cleanup"], capture_output=True, text=True, timeout=120, check=False
    )
    assert cleanup.returncode == 0, cleanup.stderr
    assert "container hx-dk-orphan" in cleanup.stdout
    assert _ours(docker, run_label) == []


@pytest.mark.chaos
@pytest.mark.skipif(os.geteuid() != 0, reason="naming a container's namespace needs root")
def test_a_partition_inside_a_node_container_cuts_it_off_and_is_gone_after(docker: Any) -> None:
    with DockerStack(_spec("dk-net")) as stack:
        node = stack.state().component("node-0")
        assert node.netns == "hx-dk-net-0" and node.ifname == "eth0"
        with RpcClient(node.url, timeout_s=0.5) as client:
            with Partition(stack, "primary") as fault:
                assert fault.mechanism == "nftables"
                with pytest.raises(RpcFailure):
                    client.block_number()
            client.close()
            assert client.block_number() >= 0
    assert not Path("/run/netns/hx-dk-net-0").exists()


@pytest.mark.chaos
@pytest.mark.quick
def test_json_rpc_faults_reach_a_node_container_through_the_fault_proxy_on_the_host(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-proxy", nodes=1, fault_proxy=True)) as stack:
        state = stack.state()
        node = state.nodes[0]
        assert state.proxy_control_url and node.proxy_port
        assert state.component("fault-proxy").pid is not None  # a host process, supervised
        with RpcClient(state.frontend_url, timeout_s=3) as client:
            assert client.block_number() >= 0  # untouched while no rule is active
            with make_fault(
                "rpc_error", stack, "primary", methods="eth_blockNumber",
                message="header not found",
            ) as fault:  # fmt: skip
                assert fault.mechanism == "fault proxy"
                with pytest.raises(RpcFailure) as failure:
                    client.block_number()
                assert failure.value.outcome == Outcome.HEADER_NOT_FOUND
                assert client.call("eth_chainId") == "0x7a69"
            assert client.block_number() >= 0
        # The routes listen on the network's gateway only: nothing on the host's loopback.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", node.proxy_port)) != 0


def test_prometheus_on_the_host_scrapes_every_container_and_haproxys_exporter(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-prom", prometheus=True)) as stack:
        state = stack.state()
        assert state.prometheus_url and state.haproxy_metrics_url and state.monitor_start_s
        expected = expected_targets(len(state.nodes), haproxy_scraped=True)
        assert wait_scraped(state.prometheus_url, expected, timeout_s=30) is not None
        query = f"{state.prometheus_url}api/v1/query?query=up"
        with urllib.request.urlopen(query, timeout=5) as answer:
            series = json.load(answer)["data"]["result"]
        assert len(series) == expected
        down = [s["metric"] for s in series if s["value"][1] != "1"]
        assert down == []
        assert all(stack.state().component(n).pid for n in ("prometheus", "alertmanager"))
    assert not Path(state.state_dir).exists()


def test_cleanup_at_every_start_asks_the_daemon_only_when_a_run_left_a_marker(
    docker: Any, isolated_state_dir: Path
) -> None:
    from harness.stack.docker.reaper import markers_dir, reap_stale_containers

    assert not markers_dir().exists()
    with DockerStack(_spec("dk-marker")) as stack:
        assert (markers_dir() / stack.run_id).is_file()
    assert list(markers_dir().iterdir()) == []
    started = time.perf_counter()
    assert reap_stale_containers() == []
    assert time.perf_counter() - started < 0.005  # no daemon round trip
