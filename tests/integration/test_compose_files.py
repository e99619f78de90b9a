"""compose.test.yml and its baked override: valid for compose itself, loopback only, images
as variables, and HAProxy configs that are what the local stack's template renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import pytest
import yaml

from harness.engine.client import docker_host
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.docker.compose import COMPOSE_DIR, CONFIGS, render
from harness.stack.haproxy import validate_config
from harness.stack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE, BAKED = ROOT / "compose.test.yml", ROOT / "compose.baked.yml"


def _compose() -> str:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return compose


def _config(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    argv = [_compose()]
    for f in files:
        argv += ["-f", str(f)]
    proc = subprocess.run(
        [*argv, "config"], capture_output=True, text=True, timeout=60, check=False,
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = yaml.safe_load(proc.stdout)
    return doc


def _published(doc: dict[str, Any]) -> list[str]:
    return [str(p) for s in doc["services"].values() for p in s.get("ports", [])]


def test_the_compose_file_is_valid_and_publishes_on_loopback_only() -> None:
    doc = _config(BASE)
    assert set(doc["services"]) == {
        "primary", "backup", "toxiproxy-primary", "toxiproxy-backup", "haproxy", "prometheus",
    }  # fmt: skip
    assert _published(doc) and all(p.startswith("127.0.0.1:") for p in _published(doc))
    assert doc["services"]["primary"]["image"] == "erigontech/erigon:v3.0.0"
    assert {"primary-data", "backup-data"} <= set(doc["volumes"])


def test_images_and_tags_are_variables_a_user_can_pin() -> None:
    doc = _config(BASE, env={"NODE_TAG": "v3.1.0", "HAPROXY_TAG": "3.0"})
    assert doc["services"]["backup"]["image"] == "erigontech/erigon:v3.1.0"
    assert doc["services"]["haproxy"]["image"] == "haproxy:3.0"


def test_the_baked_override_runs_the_same_topology_on_local_images() -> None:
    doc = _config(BASE, BAKED)
    images = {name: s["image"] for name, s in doc["services"].items()}
    assert images["primary"] == images["backup"] == "harness/anvil:1.7.1"
    assert images["haproxy"] == "harness/haproxy:2.6"
    assert images["prometheus"] == "harness/prometheus:2.42.0"
    # No Toxiproxy image here: those services start only when asked for.
    assert doc["services"]["toxiproxy-primary"]["profiles"] == ["toxiproxy"]
    assert all(p.startswith("127.0.0.1:") for p in _published(doc))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compose_haproxy_configs_are_what_the_template_renders_now(name: str) -> None:
    kind, servers = CONFIGS[name]
    checked_in = (COMPOSE_DIR / name).read_text()
    assert checked_in == render(kind, servers), (
        f"{name} is stale: run `python -m harness.stack.docker.compose` and commit it"
    )
    validate_config(COMPOSE_DIR / name)  # haproxy -c (names resolve only inside compose)


def _until(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = check()
            if got:
                return got
        except (OSError, RpcFailure, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s")
        time.sleep(0.25)


PROJECT_PREFIX = "hxcompose"


def _remove_dead_projects(docker: Any) -> None:
    """What a SIGKILLed run of this test left: the projects whose pytest (the pid in the
    name) is gone. compose labels its objects with the project; the harness's reaper does
    not know compose projects."""

    def dead(labels: dict[str, str] | None) -> bool:
        project = (labels or {}).get("com.docker.compose.project", "")
        pid = project.removeprefix(PROJECT_PREFIX)
        return (
            project.startswith(PROJECT_PREFIX) and pid.isdigit() and not psutil.pid_exists(int(pid))
        )

    for container in docker.containers.list(all=True):
        if dead(container.labels):
            container.remove(force=True)
    for network in docker.networks.list():
        if dead(network.attrs.get("Labels")):
            network.remove()
    for volume in docker.volumes.list():
        if dead(volume.attrs.get("Labels")):
            volume.remove()


@pytest.fixture
def baked_compose_stack(docker: Any) -> Iterator[dict[str, int]]:
    """compose.test.yml + compose.baked.yml up, on free loopback ports, under a project of
    this test's own; `down -v` after, whatever happened."""
    compose = _compose()
    _remove_dead_projects(docker)
    ports = {
        name: free_port()
        for name in ("FRONTEND_PORT", "STATS_PORT", "HAPROXY_METRICS_PORT", "PROMETHEUS_PORT",
                     "PRIMARY_RPC_PORT", "PRIMARY_METRICS_PORT", "BACKUP_RPC_PORT",
                     "BACKUP_METRICS_PORT")
    }  # fmt: skip
    env = {
        "PATH": "/usr/bin:/bin", "DOCKER_HOST": docker_host(),
        **{k: str(v) for k, v in ports.items()},
    }  # fmt: skip
    argv = [compose, "-p", f"{PROJECT_PREFIX}{os.getpid()}", "-f", str(BASE), "-f", str(BAKED)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=180, check=False,
            cwd=ROOT, env=env,
        )  # fmt: skip

    try:
        up = run("up", "-d")
        assert up.returncode == 0, up.stderr
        yield ports
    finally:
        down = run("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr


def test_the_baked_compose_stack_serves_json_rpc_and_prometheus_scrapes_haproxy(
    baked_compose_stack: dict[str, int],
) -> None:
    """`docker-compose -f compose.test.yml -f compose.baked.yml up` works as the README says:
    clients get answers through HAProxy, and Prometheus scrapes HAProxy's exporter with the
    harness's alert rules loaded."""
    ports = baked_compose_stack
    with RpcClient(f"http://127.0.0.1:{ports['FRONTEND_PORT']}/", timeout_s=2) as client:
        _until("the frontend answers", lambda: client.block_number() >= 0)
    prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}/api/v1/"

    def get(path: str) -> Any:
        with urllib.request.urlopen(prometheus + path, timeout=2) as answer:
            return json.load(answer)["data"]

    targets = _until(
        "Prometheus scrapes HAProxy",
        lambda: [t for t in get("targets")["activeTargets"] if t["health"] == "up"],
    )
    assert {t["labels"]["job"] for t in targets} == {"haproxy"}
    rules = {r["name"] for g in get("rules")["groups"] for r in g["rules"]}
    assert {"HAProxyBackendServerDown", "HAProxyNoServerUp"} <= rules
    servers = _until(
        "HAProxy reports both servers UP",
        lambda: get("query?" + urlencode({"query": 'haproxy_server_status{state="UP"} == 1'}))[
            "result"
        ],
    )
    assert {s["metric"]["server"] for s in servers} == {"primary", "backup"}
