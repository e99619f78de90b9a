"""Node adapters build command lines that put every listener on a port of the stack's."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.stack import nodes
from harness.stack.nodes import ADAPTERS


@pytest.fixture
def fake_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes.NodeAdapter, "binary", lambda self: Path(f"/opt/{self.binary_name}"))


@pytest.mark.usefixtures("fake_binaries")
@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_every_listener_of_a_node_is_on_a_port_the_stack_assigned(kind: str) -> None:
    adapter = ADAPTERS[kind]
    extra = tuple(range(40001, 40001 + adapter.extra_ports))
    argv = adapter.command(
        port=40000, data_dir=Path("/d"), block_time_s=1, extra_ports=extra, extra_args=("--x",)
    )
    text = " ".join(argv)
    assert argv[0] == f"/opt/{adapter.binary_name}"
    assert "40000" in text
    for port in extra:
        assert str(port) in text, f"{kind} does not use assigned port {port}"
    assert argv[-1] == "--x", "user flags come last so they can override ours"
    assert "127.0.0.1" in text, f"{kind} must listen on loopback only"
    assert "/d" in text


def test_erigon_is_checked_through_its_own_health_endpoint() -> None:
    check = ADAPTERS["erigon"].health_check
    assert (check.method, check.uri, check.body) == ("GET", "/health", None)
    assert ("X-ERIGON-HEALTHCHECK", "synced") in check.headers


def test_anvil_resumes_from_a_state_file_in_its_data_dir(fake_binaries: None) -> None:
    argv = ADAPTERS["anvil"].command(
        port=1, data_dir=Path("/data"), block_time_s=0.25, extra_ports=(), extra_args=()
    )
    assert argv[argv.index("--state") + 1] == "/data/state.json"
    assert argv[argv.index("--block-time") + 1] == "0.25"
