"""The Toxiproxy path, as pure units: fault parameters to toxic attributes, the
``toxiproxy`` field of a stack spec, which mechanism a transport fault chooses, and the
errors of the driver when no server answers. (The real server is in
tests/integration/test_toxiproxy.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ConfigError
from harness.faults import Ledger, make_fault
from harness.faults.proxy import FAULT_PROXY, TOXIPROXY, toxic_for, transport_mechanism
from harness.proxy.toxiproxy import ToxiproxyDriver, ToxiproxyUnreachable
from harness.stack.model import ComponentState, HealthCheck, StackSpec, StackState
from harness.stack.state import ProcessIdentity, StateFile

# --- parameters to toxic attributes ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "toxic_type", "attributes"),
    [
        ("proxy_latency", {"latency_ms": 200.0, "jitter_ms": 20.0}, "latency",
         {"latency": 200, "jitter": 20}),
        ("proxy_bandwidth", {"rate_kb_s": 64.0}, "bandwidth", {"rate": 64}),
        ("slow_close", {"delay_ms": 1500.0}, "slow_close", {"delay": 1500}),
        ("proxy_timeout", {"timeout_ms": 0.0}, "timeout", {"timeout": 0}),
        ("reset_peer", {"timeout_ms": 250.0}, "reset_peer", {"timeout": 250}),
        ("slicer", {"average_size": 64, "size_variation": 32, "delay_us": 100.0}, "slicer",
         {"average_size": 64, "size_variation": 32, "delay": 100}),
        ("limit_data", {"bytes": 1024}, "limit_data", {"bytes": 1024}),
    ],
)  # fmt: skip
def test_each_transport_fault_maps_to_toxiproxys_toxic_with_integer_attributes(
    kind: str, params: dict[str, Any], toxic_type: str, attributes: dict[str, int]
) -> None:
    toxic = toxic_for(kind, {**params, "stream": "upstream", "probability": 0.25})
    assert toxic.type == toxic_type
    assert dict(toxic.attributes) == attributes
    assert all(type(v) is int for v in toxic.attributes.values())  # Go refuses 200.0
    assert (toxic.stream, toxic.toxicity) == ("upstream", 0.25)


def test_stream_and_toxicity_default_to_toxiproxys_defaults() -> None:
    toxic = toxic_for("proxy_latency", {"latency_ms": 100.0})
    assert (toxic.stream, toxic.toxicity) == ("downstream", 1.0)


@pytest.mark.parametrize(
    ("kind", "param", "value", "unit"),
    [
        ("proxy_latency", "latency_ms", 0.5, "milliseconds"),
        ("proxy_latency", "jitter_ms", 2.25, "milliseconds"),
        ("proxy_bandwidth", "rate_kb_s", 1.5, "KB/s"),
        ("slow_close", "delay_ms", 10.1, "milliseconds"),
        ("proxy_timeout", "timeout_ms", 99.9, "milliseconds"),
        ("reset_peer", "timeout_ms", 0.001, "milliseconds"),
        ("slicer", "delay_us", 0.5, "microseconds"),
    ],
)
def test_a_value_toxiproxy_would_truncate_is_refused_naming_the_field(
    kind: str, param: str, value: float, unit: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        toxic_for(kind, {param: value})
    assert caught.value.field == f"{kind}.{param}"
    assert caught.value.value == value
    assert f"whole {unit}" in caught.value.fix
    assert "fault proxy" in caught.value.fix  # the other way to run it


def test_float_noise_on_a_whole_value_is_not_a_fraction() -> None:
    assert toxic_for("proxy_latency", {"latency_ms": 0.1 * 3 * 1000})
    assert dict(toxic_for("proxy_latency", {"latency_ms": 0.1 * 3 * 1000}).attributes) == {
        "latency": 300
    }


@given(st.integers(min_value=0, max_value=10**9))
def test_any_whole_number_of_milliseconds_passes_unchanged(ms: int) -> None:
    assert toxic_for("proxy_latency", {"latency_ms": float(ms)}).attributes["latency"] == ms


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False).filter(
        lambda v: abs(v - round(v)) > 1e-6
    )
)
def test_any_fraction_of_a_millisecond_is_refused(ms: float) -> None:
    with pytest.raises(ConfigError):
        toxic_for("proxy_latency", {"latency_ms": ms})


@pytest.mark.parametrize("kind", ["rpc_error", "stale_head", "kill", "no_such_fault"])
def test_only_transport_faults_have_a_toxic(kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        toxic_for(kind, {})
    assert caught.value.field == "fault"
    assert "proxy_latency" in caught.value.fix


# --- the toxiproxy field of a stack spec --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8474", "http://127.0.0.1:8474/", "http://localhost:18474",
     "http://[::1]:8474", "http://127.0.0.2:9000"],
)  # fmt: skip
def test_a_toxiproxy_api_on_this_host_is_accepted(url: str) -> None:
    assert StackSpec(toxiproxy=url).toxiproxy == url


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("127.0.0.1:8474", "http://HOST:PORT"),
        ("http://127.0.0.1", "http://HOST:PORT"),
        ("https://127.0.0.1:8474", "http://HOST:PORT"),
        ("http://127.0.0.1:99999", "http://HOST:PORT"),
        ("", "http://HOST:PORT"),
        ("http://127.0.0.1:8474/proxies", "root only"),
        ("http://10.0.0.5:8474", "this host"),
        ("http://toxiproxy.example.com:8474", "this host"),
    ],
)
def test_a_bad_toxiproxy_url_is_refused_naming_the_field_and_the_fix(url: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StackSpec(toxiproxy=url)
    assert (caught.value.field, caught.value.value) == ("toxiproxy", url)
    assert fix in caught.value.fix
    assert caught.value.exit_code == 2


def test_the_toxiproxy_url_survives_the_spec_round_trip() -> None:
    spec = StackSpec(toxiproxy="http://127.0.0.1:8474", fault_proxy=True)
    assert StackSpec.from_dict(spec.to_dict()) == spec


def test_a_bad_toxiproxy_url_on_the_command_line_is_exit_2_naming_the_field() -> None:
    result = CliRunner().invoke(main, ["stack", "up", "--toxiproxy", "http://10.1.2.3:8474"])
    assert result.exit_code == 2
    assert "toxiproxy='http://10.1.2.3:8474'" in result.output


# --- which mechanism a transport fault runs through ---------------------------------------


def node(name: str, role: str = "backup", **proxies: Any) -> ComponentState:
    return ComponentState(name, "anvil", role, 1, "127.0.0.1", 8545, **proxies)  # type: ignore[arg-type]


def stack_state(
    *nodes: ComponentState, control: bool = False, toxiproxy: bool = False
) -> StackState:
    return StackState(
        "s", "local", "/tmp/s", 1, "http://127.0.0.1:1/", "", "", HealthCheck(), 1.0,
        (*nodes, ComponentState("haproxy", "haproxy", "balancer", 1, "127.0.0.1", 1)),
        proxy_control_url="http://127.0.0.1:2/" if control else None,
        toxiproxy_url="http://127.0.0.1:8474" if toxiproxy else None,
    )  # fmt: skip


BEHIND_BOTH = node("node-0", "primary", proxy_port=3, toxiproxy_proxy="hx-s-node-0")
BEHIND_FAULT_PROXY = node("node-1", proxy_port=4)


def test_targets_behind_toxiproxy_use_toxiproxy_even_with_the_fault_proxy_too() -> None:
    state = stack_state(BEHIND_BOTH, control=True, toxiproxy=True)
    assert transport_mechanism("proxy_latency", state, (BEHIND_BOTH,)) == TOXIPROXY


def test_a_stack_with_the_fault_proxy_only_uses_the_fault_proxy() -> None:
    state = stack_state(BEHIND_FAULT_PROXY, control=True)
    assert transport_mechanism("proxy_latency", state, (BEHIND_FAULT_PROXY,)) == FAULT_PROXY


def test_one_target_without_a_toxiproxy_proxy_sends_the_whole_fault_to_the_fault_proxy() -> None:
    state = stack_state(BEHIND_BOTH, BEHIND_FAULT_PROXY, control=True, toxiproxy=True)
    targets = (BEHIND_BOTH, BEHIND_FAULT_PROXY)
    assert transport_mechanism("reset_peer", state, targets) == FAULT_PROXY


def test_a_stack_with_neither_proxy_says_how_to_start_one() -> None:
    bare = node("node-0", "primary")
    with pytest.raises(ConfigError) as caught:
        transport_mechanism("proxy_latency", stack_state(bare), (bare,))
    assert "--fault-proxy" in caught.value.fix and "--toxiproxy" in caught.value.fix


@dataclass
class FixedStack:
    """A stack that is only its state: for faults that fail before they touch anything."""

    snapshot: StackState

    def state(self) -> StackState:
        return self.snapshot


TOXIPROXY_ONLY = node("node-0", "primary", toxiproxy_proxy="hx-s-node-0", toxiproxy_port=5)


def test_a_json_rpc_fault_on_a_toxiproxy_only_stack_asks_for_the_fault_proxy(
    tmp_path: Any,
) -> None:
    ledger = Ledger(tmp_path)
    fault = make_fault(
        "rpc_error", FixedStack(stack_state(TOXIPROXY_ONLY, toxiproxy=True)), "primary"
    )
    fault.ledger = ledger
    with pytest.raises(ConfigError) as caught:
        fault.__enter__()
    assert caught.value.field == "fault_proxy"
    assert not ledger.path.exists()  # refused before anything was ledgered or applied


def test_a_fraction_is_refused_when_the_fault_is_built_for_a_toxiproxy_stack() -> None:
    stack = FixedStack(stack_state(TOXIPROXY_ONLY, toxiproxy=True))
    with pytest.raises(ConfigError) as caught:
        make_fault("proxy_latency", stack, "primary", latency_ms="12.5")
    assert caught.value.field == "proxy_latency.latency_ms"


def test_a_fraction_is_fine_for_the_fault_proxy() -> None:
    stack = FixedStack(stack_state(BEHIND_FAULT_PROXY, control=True))
    assert (
        make_fault("proxy_latency", stack, "backup", latency_ms="12.5").params()["latency_ms"]
        == 12.5
    )


# --- state on disk ------------------------------------------------------------------------


def test_the_state_file_keeps_the_toxiproxy_url_and_proxy_names_for_the_reaper() -> None:
    state = stack_state(replace(TOXIPROXY_ONLY, toxiproxy_port=40000), toxiproxy=True)
    doc = StateFile(ProcessIdentity(1, 1.0), {}, state, "ready").to_dict()
    back = StateFile.from_dict(doc).stack
    assert back is not None and back.toxiproxy_url == "http://127.0.0.1:8474"
    assert (back.nodes[0].toxiproxy_proxy, back.nodes[0].toxiproxy_port) == ("hx-s-node-0", 40000)


# --- the driver when the server is not there ----------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_server_is_unreachable_and_the_error_says_how_to_start_one() -> None:
    port = closed_port()
    driver = ToxiproxyDriver(f"http://127.0.0.1:{port}")
    assert driver.reachable() is False
    with pytest.raises(ToxiproxyUnreachable) as caught:
        driver.version()
    message = str(caught.value)
    assert f"no Toxiproxy server answers at http://127.0.0.1:{port}" in message
    assert f"toxiproxy-server -host 127.0.0.1 -port {port}" in message
    assert "--toxiproxy" in message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_a_server_that_never_answers_times_out_instead_of_hanging(silent_server: int) -> None:
    driver = ToxiproxyDriver(f"http://127.0.0.1:{silent_server}", timeout_s=0.3)
    assert driver.reachable(timeout_s=0.2) is False
    with pytest.raises(ToxiproxyUnreachable, match=r"did not answer GET /proxies within 0\.3s"):
        driver.proxies()


def test_two_drivers_keep_their_own_addresses() -> None:
    # toxiproxy-python holds one global address; each driver has its own.
    one, two = ToxiproxyDriver("http://127.0.0.1:1111"), ToxiproxyDriver("http://[::1]:2222")
    assert (one._api.host, one._api.port) == ("127.0.0.1", 1111)
    assert (two._api.host, two._api.port) == ("[::1]", 2222)  # the library adds no brackets
