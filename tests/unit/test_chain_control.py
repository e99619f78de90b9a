"""The replicator's control API and its client, against a stand-in for the replicator:
what faults send is applied, anything else is refused with a message saying what to send,
and the client turns each refusal back into the error it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.chain.client import ReplicatorClient, ReplicatorError
from harness.chain.control import ControlServer, dispatch
from harness.chain.delays import Delay
from harness.chain.settings import NodeChange, NodeSettings, parse_change
from harness.chain.status import NodeStatus, ReplicatorStatus, SourceStatus
from harness.errors import ConfigError
from harness.stack.local import free_port


class StandIn:
    """Two nodes whose settings change as the control API says."""

    def __init__(self) -> None:
        self.settings = {"node-0": NodeSettings(), "node-1": NodeSettings()}

    def names(self) -> tuple[str, ...]:
        return tuple(self.settings)

    def node_status(self, name: str) -> NodeStatus:
        s = self.settings[name]
        return NodeStatus(
            name, 10, "0xab", 2, s.paused, s.lag_blocks, (s.delay.fixed_ms, s.delay.jitter_ms),
            replayed=10, mismatches=0, last_error=None,
        )  # fmt: skip

    def status(self) -> ReplicatorStatus:
        return ReplicatorStatus(
            SourceStatus(12, "0xcd"), {name: self.node_status(name) for name in self.settings}
        )

    def configure(self, name: str, change: NodeChange) -> NodeStatus:
        self.settings[name] = change.applied_to(self.settings[name])
        return self.node_status(name)


def post(replicator: StandIn, path: str, doc: object) -> tuple[int, dict[str, object]]:
    status, answer = dispatch(replicator, "POST", path, json.dumps(doc).encode())
    return status, answer


def test_status_has_the_source_and_every_node_with_the_documented_fields() -> None:
    status, doc = dispatch(StandIn(), "GET", "/status", b"")
    assert status == 200
    assert doc["source"]["head"] == 12 and doc["source"]["hash"] == "0xcd"
    node = doc["nodes"]["node-0"]
    for field in ("head", "hash", "behind", "paused", "lag_blocks", "delay_ms", "replayed",
                  "mismatches", "last_error"):  # fmt: skip
        assert field in node
    assert node["delay_ms"] == [0.0, 0.0]
    assert dispatch(StandIn(), "GET", "/health", b"")[0] == 200


def test_a_post_applies_any_of_paused_lag_and_delay_and_answers_the_nodes_status() -> None:
    replicator = StandIn()
    status, doc = post(replicator, "/nodes/node-1", {"paused": True})
    assert status == 200 and doc["paused"] is True and doc["lag_blocks"] == 0
    status, doc = post(replicator, "/nodes/node-1", {"lag_blocks": 3, "delay_ms": [50, 250]})
    assert status == 200 and doc["paused"] is True  # what was not sent stays as it was
    assert replicator.settings["node-1"] == NodeSettings(True, 3, Delay(50, 250))
    assert post(replicator, "/nodes/node-1", {"delay_ms": "10-20ms"})[1]["delay_ms"] == [10, 10]
    assert replicator.settings["node-0"] == NodeSettings()


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"paused": "yes"}, "paused"),
        ({"paused": 1}, "paused"),
        ({"lag_blocks": -1}, "lag_blocks"),
        ({"lag_blocks": 2.5}, "lag_blocks"),
        ({"lag_blocks": True}, "lag_blocks"),
        ({"lag_blocks": 10**9}, "lag_blocks"),
        ({"delay_ms": [50]}, "delay_ms"),
        ({"delay_ms": [50, -1]}, "delay_ms"),
        ({"delay_ms": "soon"}, "delay_ms"),
        ({"delay_ms": [1e9, 0]}, "delay_ms"),
        ({"lag": 3}, "lag"),
        ([1, 2], "body"),
    ],
)
def test_bad_input_is_refused_with_400_naming_the_field_and_changes_nothing(
    doc: object, field: str
) -> None:
    replicator = StandIn()
    status, answer = post(replicator, "/nodes/node-0", doc)
    assert status == 400
    assert answer["field"] == field
    assert str(answer["error"]).startswith(f"{field}=")
    assert "\n" not in str(answer["error"])
    assert replicator.settings["node-0"] == NodeSettings()


def test_a_body_that_is_not_json_is_refused_with_400() -> None:
    status, answer = dispatch(StandIn(), "POST", "/nodes/node-0", b"{paused")
    assert status == 400 and "is not JSON" in str(answer["error"])


def test_an_unknown_node_or_path_is_404_naming_what_exists() -> None:
    status, answer = post(StandIn(), "/nodes/node-9", {"paused": True})
    assert status == 404 and "node-0, node-1" in str(answer["error"])
    status, answer = dispatch(StandIn(), "GET", "/nodes", b"")
    assert status == 404 and "/status" in str(answer["error"])
    assert dispatch(StandIn(), "DELETE", "/status", b"")[0] == 405


@given(st.dictionaries(st.sampled_from(["paused", "lag_blocks", "delay_ms", "x"]),
                       st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8)
                       | st.lists(st.integers(-5, 500), max_size=3)))  # fmt: skip
def test_any_body_is_applied_or_refused_with_a_config_error(doc: dict[str, object]) -> None:
    try:
        change = parse_change(doc)
    except ConfigError as exc:
        assert exc.field in (*doc, "body")
    else:
        assert change.applied_to(NodeSettings()).lag_blocks >= 0


# -- the client over HTTP -----------------------------------------------------------------


@pytest.fixture
def control() -> Iterator[tuple[StandIn, ReplicatorClient]]:
    replicator = StandIn()
    with ControlServer(replicator, "127.0.0.1", 0) as server:
        yield replicator, ReplicatorClient(server.url)


def test_the_client_reads_status_and_sets_settings(
    control: tuple[StandIn, ReplicatorClient],
) -> None:
    replicator, client = control
    assert client.healthy()
    status = client.status()
    assert status.source == SourceStatus(12, "0xcd")
    assert status.nodes["node-0"] == replicator.node_status("node-0")
    after = client.set("node-0", paused=True, lag_blocks=2, delay_ms=(5, 10))
    assert (after.paused, after.lag_blocks, after.delay_ms) == (True, 2, (5.0, 10.0))
    assert client.set("node-0", delay_ms=Delay(1, 2)).delay_ms == (1.0, 2.0)
    assert client.node("node-0") == replace(after, delay_ms=(1.0, 2.0))


def test_the_client_raises_the_replicators_config_error_for_a_refused_setting(
    control: tuple[StandIn, ReplicatorClient],
) -> None:
    _, client = control
    with pytest.raises(ConfigError) as raised:
        client.set("node-0", lag_blocks=-2)
    assert (raised.value.field, raised.value.value) == ("lag_blocks", -2)
    assert str(raised.value).startswith("lag_blocks=-2: ")


def test_the_client_says_what_to_do_for_an_unknown_node_or_a_silent_replicator(
    control: tuple[StandIn, ReplicatorClient],
) -> None:
    _, client = control
    with pytest.raises(ReplicatorError, match=r"404.*node-0, node-1"):
        client.set("node-7", paused=True)
    silent = ReplicatorClient(f"http://127.0.0.1:{free_port()}/", timeout_s=0.5)
    assert not silent.healthy()
    with pytest.raises(ReplicatorError, match="is the replicator running"):
        silent.status()
    with pytest.raises(ConfigError, match="url"):
        ReplicatorClient("127.0.0.1:8600")


def test_wait_synced_names_the_laggards(control: tuple[StandIn, ReplicatorClient]) -> None:
    _, client = control
    with pytest.raises(ReplicatorError, match=r"node-0 at 10.*node-1 at 10"):
        client.wait_synced(timeout_s=0.05)
    client.set("node-0", lag_blocks=2)
    client.set("node-1", paused=True)
    assert client.wait_synced(timeout_s=1).nodes["node-0"].behind == 2
