"""Transport faults through a real Toxiproxy server: a stack started with ``--toxiproxy``
puts a Toxiproxy proxy before every node, transport faults become toxics there, the record
says "toxiproxy", and nothing is left on the server after teardown or a SIGKILL.

The server is found, not faked: $HARNESS_TOXIPROXY_URL if one answers there, else a
``toxiproxy-server`` binary ($HARNESS_TOXIPROXY_SERVER, or on PATH) started on a free
loopback port for this module. Without either, the tests that need one are skipped and
say why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.faults import make_fault
from harness.faults.network import netem_available
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.proxy.toxiproxy import URL_ENV, ToxiproxyDriver
from harness.stack import LocalStack, StackSpec
from harness.stack.ports import free_port
from harness.stack.state import stacks_dir
from tests.conftest import VENV_BIN

SERVER_ENV = "HARNESS_TOXIPROXY_SERVER"
NO_SERVER = (
    f"no Toxiproxy server: set {URL_ENV} or put toxiproxy-server on PATH (or its path in "
    f"{SERVER_ENV}); none is installable from this machine's registries"
)


@pytest.fixture(scope="module")
def toxiproxy_url() -> Iterator[str]:
    """The URL of a real Toxiproxy server's API, or a skip saying why there is none."""
    configured = os.environ.get(URL_ENV)
    if configured and ToxiproxyDriver(configured).reachable(timeout_s=1.0):
        yield configured.rstrip("/")
        return
    binary = os.environ.get(SERVER_ENV) or shutil.which("toxiproxy-server")
    if not binary:
        pytest.skip(NO_SERVER)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{SERVER_ENV}={binary!r} is not an executable file", pytrace=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [binary, "-host", "127.0.0.1", "-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while not ToxiproxyDriver(url).reachable(timeout_s=0.2):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"{binary} did not serve {url}: {log.read()[-500:]!r}")
                time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(toxiproxy_url: str) -> Iterator[LocalStack]:
    # One node: every frontend call goes through node-0's Toxiproxy proxy.
    spec = StackSpec(name="toxic", nodes=1, block_time_s=0.5, toxiproxy=toxiproxy_url)
    with LocalStack(spec) as running:
        yield running


def ours(url: str, stack_name: str) -> dict[str, str]:
    """The proxies of stack ``stack_name`` on the server: {name: upstream}."""
    prefix = f"hx-{stack_name}-"
    return {
        name: proxy.upstream
        for name, proxy in ToxiproxyDriver(url).proxies().items()
        if name.startswith(prefix)
    }


def call_s(url: str, timeout_s: float = 5.0) -> float:
    """Seconds for one eth_blockNumber on a fresh connection."""
    with RpcClient(url, timeout_s=timeout_s) as client:
        started = time.monotonic()
        client.block_number()
        return time.monotonic() - started


def median_s(url: str, calls: int = 5) -> float:
    return sorted(call_s(url) for _ in range(calls))[calls // 2]


def failure_of(url: str, timeout_s: float = 5.0) -> tuple[Outcome, float]:
    """The outcome of one call expected to fail, and how long it took to fail."""
    started = time.monotonic()
    with pytest.raises(RpcFailure) as failed:
        call_s(url, timeout_s)
    return failed.value.outcome, time.monotonic() - started


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


# -- the stack ------------------------------------------------------------------------------


def test_a_stack_with_toxiproxy_serves_json_rpc_through_a_toxiproxy_proxy_per_node(
    stack: LocalStack, toxiproxy_url: str
) -> None:
    state = stack.state()
    node = state.nodes[0]
    assert state.toxiproxy_url == toxiproxy_url
    assert (node.toxiproxy_proxy, node.toxiproxy_port) == ("hx-toxic-node-0", node.toxiproxy_port)
    assert ours(toxiproxy_url, "toxic") == {"hx-toxic-node-0": f"127.0.0.1:{node.port}"}
    # HAProxy's server is Toxiproxy's listen port, not the node.
    config = (Path(state.state_dir) / "haproxy.cfg").read_text()
    assert f"127.0.0.1:{node.toxiproxy_port}" in config
    assert f"127.0.0.1:{node.port} " not in config
    with RpcClient(stack.frontend_url, timeout_s=3) as client, RpcClient(node.url) as direct:
        assert abs(client.block_number() - direct.block_number()) <= 1


def test_proxy_latency_of_200_ms_delays_calls_through_the_frontend_until_reverted(
    stack: LocalStack, toxiproxy_url: str
) -> None:
    before = median_s(stack.frontend_url)
    with make_fault("proxy_latency", stack, "primary", latency_ms="200") as fault:
        during = median_s(stack.frontend_url)
        toxics = ToxiproxyDriver(toxiproxy_url).toxic_names("hx-toxic-node-0")
    after = median_s(stack.frontend_url)
    assert before < 0.05 and after < 0.05, (before, after)
    assert 0.19 <= during < 0.6, during
    assert fault.mechanism == "toxiproxy"
    assert fault.record is not None and fault.record.mechanism == "toxiproxy"
    assert fault.record.to_dict()["mechanism"] == "toxiproxy"
    assert toxics == [f"hx-{fault.record.id}"]
    assert ToxiproxyDriver(toxiproxy_url).toxic_names("hx-toxic-node-0") == []


def test_reset_peer_resets_connections_until_reverted(stack: LocalStack) -> None:
    node = stack.state().nodes[0]
    direct = f"http://127.0.0.1:{node.toxiproxy_port}/"
    with make_fault("reset_peer", stack, "primary", timeout_ms="0") as fault:
        at_toxiproxy, _ = failure_of(direct)
        at_frontend, _ = failure_of(stack.frontend_url)
    assert fault.mechanism == "toxiproxy"
    assert at_toxiproxy == Outcome.RESET
    assert at_frontend in (Outcome.HTTP_5XX, Outcome.HTTP_503, Outcome.RESET), at_frontend
    assert call_s(stack.frontend_url) < 1


def test_proxy_timeout_holds_answers_until_the_client_gives_up_then_passes_again(
    stack: LocalStack,
) -> None:
    with make_fault("proxy_timeout", stack, "primary", timeout_ms="0") as fault:
        outcome, waited_s = failure_of(stack.frontend_url, timeout_s=1.0)
    assert fault.mechanism == "toxiproxy"
    assert outcome == Outcome.TIMEOUT and waited_s >= 0.9
    assert call_s(stack.frontend_url) < 1


def test_limit_data_cuts_the_answer_short(stack: LocalStack) -> None:
    with make_fault("limit_data", stack, "primary", bytes="10") as fault:
        outcome, _ = failure_of(stack.frontend_url)
    assert fault.mechanism == "toxiproxy"
    assert outcome != Outcome.OK
    assert call_s(stack.frontend_url) < 1


def test_latency_without_netem_comes_from_toxiproxy_and_says_so(
    stack: LocalStack, toxiproxy_url: str
) -> None:
    if netem_available()[0]:
        pytest.skip("this kernel has sch_netem: latency runs through netem")
    with make_fault("latency", stack, "primary", delay_ms="200") as fault:
        delayed = median_s(stack.frontend_url)
    assert fault.mechanism == "toxiproxy (the kernel has no sch_netem)"
    assert fault.record is not None and fault.record.mechanism == fault.mechanism
    assert delayed >= 0.19
    assert ToxiproxyDriver(toxiproxy_url).toxic_names("hx-toxic-node-0") == []


def test_a_fraction_of_a_millisecond_is_refused_for_toxiproxy_and_applies_nothing(
    stack: LocalStack, toxiproxy_url: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_fault("proxy_latency", stack, "primary", latency_ms="0.5")
    assert caught.value.field == "proxy_latency.latency_ms"
    assert ToxiproxyDriver(toxiproxy_url).toxic_names("hx-toxic-node-0") == []


def test_with_the_fault_proxy_too_haproxy_reaches_toxiproxy_then_the_fault_proxy(
    toxiproxy_url: str,
) -> None:
    spec = StackSpec(name="chain", nodes=1, fault_proxy=True, toxiproxy=toxiproxy_url)
    with LocalStack(spec) as stack:
        node = stack.state().nodes[0]
        assert ours(toxiproxy_url, "chain") == {"hx-chain-node-0": f"127.0.0.1:{node.proxy_port}"}
        with make_fault("proxy_latency", stack, "primary", latency_ms="150") as transport:
            delayed = median_s(stack.frontend_url)
        with make_fault("rpc_error", stack, "primary", methods="eth_blockNumber") as rpc:
            outcome, _ = failure_of(stack.frontend_url)
    assert (transport.mechanism, rpc.mechanism) == ("toxiproxy", "fault proxy")
    assert delayed >= 0.14
    assert outcome == Outcome.HEADER_NOT_FOUND


# -- nothing left on the server ---------------------------------------------------------------


def test_teardown_leaves_no_proxies_on_the_server(toxiproxy_url: str) -> None:
    with LocalStack(StackSpec(name="brief", nodes=2, toxiproxy=toxiproxy_url)) as stack:
        assert sorted(ours(toxiproxy_url, "brief")) == ["hx-brief-node-0", "hx-brief-node-1"]
        with make_fault("proxy_bandwidth", stack, "all", rate_kb_s="100"):
            pass
    assert ours(toxiproxy_url, "brief") == {}


VICTIM = textwrap.dedent(
    """
    import json, sys, time
    from harness.faults import make_fault
    from harness.stack import LocalStack, StackSpec
    stack = LocalStack(StackSpec(name="victim", nodes=1, toxiproxy=sys.argv[1]))
    stack.start()
    fault = make_fault("proxy_latency", stack, "primary", latency_ms=300)
    fault.__enter__()
    print(json.dumps({"fault": fault.record.id}), flush=True)
    time.sleep(120)
    """
)


def test_a_sigkilled_owners_toxics_and_proxies_are_removed_by_cleanup(toxiproxy_url: str) -> None:
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, toxiproxy_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert victim.stdout is not None
        line = victim.stdout.readline()
        assert line, "the victim did not start its stack"
        toxic = f"hx-{json.loads(line)['fault']}"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    driver = ToxiproxyDriver(toxiproxy_url)
    assert driver.toxic_names("hx-victim-node-0") == [toxic], "left behind by the SIGKILL"
    result = subprocess.run(
        [str(VENV_BIN / "harness"), "cleanup"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "300"},  # one removal per line
    )
    assert result.returncode == 0, result.stderr
    assert f"removed Toxiproxy toxic {toxic} from proxy hx-victim-node-0" in result.stdout
    assert f"Toxiproxy proxy hx-victim-node-0 at {toxiproxy_url}" in result.stdout
    assert ours(toxiproxy_url, "victim") == {}
    assert not (stacks_dir() / "victim").exists()


def test_the_reaper_leaves_a_same_named_proxy_that_listens_elsewhere(toxiproxy_url: str) -> None:
    # Another stack of the same name (another state dir) owns it now: not ours to delete.
    driver = ToxiproxyDriver(toxiproxy_url)
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, toxiproxy_url], stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None and victim.stdout.readline()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    driver.destroy_proxy("hx-victim-node-0")
    driver.create_proxy("hx-victim-node-0", f"127.0.0.1:{free_port()}", "127.0.0.1:9")
    try:
        subprocess.run([str(VENV_BIN / "harness"), "cleanup"], timeout=60, check=True)
        assert "hx-victim-node-0" in ours(toxiproxy_url, "victim")
    finally:
        driver.destroy_proxy("hx-victim-node-0")


# -- the run and the doctor ---------------------------------------------------------------------


def test_harness_run_with_toxiproxy_records_the_mechanism_in_result_json(
    toxiproxy_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "harness"), "run", "--reports-dir", str(tmp_path), "--nodes", "1",
            "--block-time", "0.5", "--toxiproxy", toxiproxy_url, "--no-load",
            "--fault", "proxy_latency", "-p", "latency_ms=100", "--baseline", "1s",
            "--hold", "1s", "--settle", "1s", "--slo", "outage_s <= 10",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    fault = json.loads((run_dir / "result.json").read_text())["episodes"][0]["fault"]
    assert (fault["kind"], fault["mechanism"]) == ("proxy_latency", "toxiproxy")
    assert ours(toxiproxy_url, "default") == {}


def doctor(toxiproxy_url: str) -> subprocess.CompletedProcess[str]:
    """``harness doctor`` looking for Toxiproxy at ``toxiproxy_url``."""
    return subprocess.run(
        [str(VENV_BIN / "harness"), "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, URL_ENV: toxiproxy_url, "COLUMNS": "300"},
    )


def test_doctor_says_a_toxiproxy_server_answers(toxiproxy_url: str) -> None:
    result = doctor(toxiproxy_url)
    version = ToxiproxyDriver(toxiproxy_url).version()
    assert f"Toxiproxy {version} answers at {toxiproxy_url}" in result.stdout


# -- without a server (never skipped) -----------------------------------------------------------


def test_a_toxiproxy_that_does_not_answer_is_refused_before_anything_starts() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as caught:
        LocalStack(StackSpec(name="nothing", toxiproxy=url)).start()
    assert (caught.value.field, caught.value.value) == ("toxiproxy", url)
    assert "no Toxiproxy server answers" in caught.value.fix
    assert not (stacks_dir() / "nothing").exists()


def test_stack_up_without_a_toxiproxy_server_is_exit_2_and_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [str(VENV_BIN / "harness"), "stack", "up", "--name", "nothing", "--toxiproxy", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "toxiproxy-server -host 127.0.0.1" in result.stderr
    assert not (stacks_dir() / "nothing").exists()


def test_doctor_without_a_server_says_transport_faults_use_the_fault_proxy() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = doctor(url)
    assert f"no server answers at {url}" in result.stdout
    assert "fault proxy" in result.stdout
