"""The fault proxy end to end: a real proxy process in front of a real anvil.

One anvil and one proxy serve the whole module (the rules are cleared after each test).
Every fault kind is proved by what a plain HTTP client sees; the counters by ``/stats``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.proxy import ProxyControl, ProxyProcess
from harness.stack.ports import free_port

ANVIL = str(Path(sys.executable).parent / "anvil")
ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's first dev account


def call(method: str, params: list[Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}


class Http:
    """A keep-alive client for one port that returns (status, body bytes)."""

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def post(self, doc: Any, raw: bytes | None = None) -> tuple[int, bytes]:
        body = raw if raw is not None else json.dumps(doc).encode()
        self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def rpc(self, doc: Any) -> Any:
        status, body = self.post(doc)
        assert status == 200, (status, body)
        return json.loads(body)

    def close(self) -> None:
        self.conn.close()


def raw_exchange(port: int, doc: Any, timeout_s: float = 5.0) -> tuple[bytes, float, str]:
    """Send one request on a fresh socket and read until the proxy closes or resets it:
    (bytes received, seconds until the end, how it ended: "eof", "reset" or "timeout")."""
    body = json.dumps(doc).encode()
    request = (
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        start = time.monotonic()
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
            ending = "eof"
        except ConnectionResetError:
            ending = "reset"
        except TimeoutError:
            ending = "timeout"
        return received, time.monotonic() - start, ending


@pytest.fixture(scope="module")
def anvil_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [ANVIL, "--port", str(port), "--block-time", "1", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                Http(port, 1).rpc(call("eth_chainId"))
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


@pytest.fixture(scope="module")
def proxy(
    anvil_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProxyProcess, int]]:
    """The proxy; at the end, its log must show no traceback (every fault is handled)."""
    listen = free_port()
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with ProxyProcess([(listen, "127.0.0.1", anvil_port)], log_path=log) as process:
        yield process, listen
    text = log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text, text[-3000:]


@pytest.fixture
def control(proxy: tuple[ProxyProcess, int]) -> Iterator[ProxyControl]:
    control = proxy[0].control
    control.clear()
    yield control
    control.clear()


@pytest.fixture
def port(proxy: tuple[ProxyProcess, int]) -> int:
    return proxy[1]


@pytest.fixture
def client(port: int) -> Iterator[Http]:
    client = Http(port)
    yield client
    client.close()


def route_stats(control: ProxyControl, port: int) -> dict[str, Any]:
    return dict(control.stats()["routes"][str(port)])


# --- pass-through ----------------------------------------------------------------------


def _mixed_requests() -> list[bytes]:
    """200 requests whose answers do not change with the head: singles, batches,
    notifications, unknown methods, invalid JSON."""
    singles = [
        call("eth_chainId"),
        call("net_version", request_id="s"),
        call("eth_getBalance", [ALICE, "0x0"]),
        call("eth_getBlockByNumber", ["0x0", False]),
        call("eth_getCode", [ALICE, "0x0"]),
        call("no_suchMethod"),
        call("eth_getTransactionCount", [ALICE, "0x0"], request_id=None),
    ]
    docs: list[bytes] = []
    for i in range(200):
        kind = i % 5
        if kind == 3:
            batch = [dict(singles[(i + k) % len(singles)], id=k) for k in range(1 + i % 4)]
            batch.append({"jsonrpc": "2.0", "method": "eth_chainId", "params": []})
            docs.append(json.dumps(batch).encode())
        elif kind == 4 and i % 20 == 4:
            docs.append(b'{"jsonrpc": "2.0", "id": 1, "method": ')  # not JSON
        else:
            docs.append(json.dumps(dict(singles[i % len(singles)], id=i)).encode())
    return docs


def test_pass_through_answers_are_byte_identical_to_the_node_for_200_mixed_requests(
    control: ProxyControl, port: int, anvil_port: int
) -> None:
    before = route_stats(control, port)
    via_proxy, direct = Http(port), Http(anvil_port)
    try:
        for body in _mixed_requests():
            assert via_proxy.post(None, raw=body) == direct.post(None, raw=body), body
    finally:
        via_proxy.close()
        direct.close()
    after = route_stats(control, port)
    assert after["requests"] - before["requests"] == 200
    assert after["passed_through"] - before["passed_through"] == 200
    assert after["faulted"] == before["faulted"]


def test_one_upstream_connection_serves_many_keep_alive_requests(
    control: ProxyControl, client: Http, port: int
) -> None:
    client.rpc(call("eth_chainId"))  # warm: the pool has a connection
    before = route_stats(control, port)
    for i in range(100):
        assert client.rpc(call("eth_blockNumber", request_id=i))["id"] == i
    after = route_stats(control, port)
    assert after["upstream_connections"] == before["upstream_connections"]
    assert after["client_connections"] == before["client_connections"]
    assert after["requests"] - before["requests"] == 100


def test_chunked_request_and_connection_close_pass_through(port: int) -> None:
    body = json.dumps(call("eth_chainId")).encode()
    request = (
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, answer = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert json.loads(answer) == {"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}


# --- JSON-RPC faults -------------------------------------------------------------------


def test_rpc_error_answers_only_the_batch_element_whose_method_matches(
    control: ProxyControl, client: Http, port: int
) -> None:
    rule = control.add(
        {"kind": "rpc_error", "methods": "eth_get*", "code": -32000, "message": "header not found"}
    )
    answers = client.rpc(
        [call("eth_chainId", request_id=1), call("eth_getBlockByNumber", ["latest", False], 2)]
    )
    assert answers[0] == {"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}
    assert answers[1] == {
        "jsonrpc": "2.0",
        "id": 2,
        "error": {"code": -32000, "message": "header not found"},
    }
    assert client.rpc(call("eth_getBalance", [ALICE]))["error"]["code"] == -32000
    assert route_stats(control, port)["faulted"][rule] == 2


def test_rpc_delay_slows_the_matching_method_only(control: ProxyControl, client: Http) -> None:
    control.add({"kind": "rpc_delay", "methods": "eth_chainId", "delay_ms": 300})
    start = time.monotonic()
    client.rpc(call("eth_blockNumber"))
    fast_s = time.monotonic() - start
    start = time.monotonic()
    assert client.rpc(call("eth_chainId"))["result"] == "0x7a69"
    slow_s = time.monotonic() - start
    assert slow_s >= 0.3
    assert fast_s < 0.2


def test_stale_head_lags_block_number_and_latest_by_n_blocks(
    control: ProxyControl, client: Http, anvil_port: int
) -> None:
    direct = Http(anvil_port)
    try:
        direct.rpc(call("anvil_mine", ["0x8"]))
        control.add({"kind": "stale_head", "blocks": 5})
        head_before = int(direct.rpc(call("eth_blockNumber"))["result"], 16)
        stale = int(client.rpc(call("eth_blockNumber"))["result"], 16)
        block = client.rpc(call("eth_getBlockByNumber", ["latest", False]))["result"]
        head_after = int(direct.rpc(call("eth_blockNumber"))["result"], 16)
    finally:
        direct.close()
    assert head_before - 5 <= stale <= head_after - 5
    assert head_before - 5 <= int(block["number"], 16) <= head_after - 5


def test_null_result_answers_null_for_the_matching_method(
    control: ProxyControl, client: Http
) -> None:
    control.add({"kind": "null_result", "methods": "eth_getBlockByNumber"})
    answer = client.rpc(call("eth_getBlockByNumber", ["0x0", False], request_id=7))
    assert answer == {"jsonrpc": "2.0", "id": 7, "result": None}
    assert client.rpc(call("eth_chainId"))["result"] == "0x7a69"


def test_rate_limit_http429_refuses_calls_over_budget_with_a_json_rpc_body(
    control: ProxyControl, client: Http
) -> None:
    control.add({"kind": "rate_limit", "budget_per_s": 2, "style": "http429"})
    statuses = []
    for i in range(6):
        status, body = client.post(call("eth_chainId", request_id=i))
        statuses.append(status)
        if status == 429:
            assert json.loads(body)["error"]["code"] == -32005
            assert json.loads(body)["id"] == i
    assert statuses[:2] == [200, 200]
    assert statuses.count(429) >= 3


def test_rate_limit_rpc_32005_answers_an_error_inside_http_200(
    control: ProxyControl, client: Http
) -> None:
    control.add({"kind": "rate_limit", "budget_per_s": 1, "style": "rpc-32005"})
    answers = [client.rpc(call("eth_chainId", request_id=i)) for i in range(4)]
    assert answers[0]["result"] == "0x7a69"
    limited = [a for a in answers if "error" in a]
    assert len(limited) >= 2
    assert all(a["error"] == {"code": -32005, "message": "rate limit exceeded"} for a in limited)


def test_drop_sends_the_head_and_part_of_the_body_then_closes(
    control: ProxyControl, port: int
) -> None:
    control.add({"kind": "drop", "methods": "eth_getBlockByNumber"})
    received, _, ending = raw_exchange(port, call("eth_getBlockByNumber", ["0x0", False]))
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    assert head.startswith(b"HTTP/1.1 200")
    assert ending == "eof"
    assert 0 < len(body) < length


def test_malformed_answers_200_with_a_body_that_is_not_json(
    control: ProxyControl, client: Http
) -> None:
    control.add({"kind": "malformed"})
    status, body = client.post(call("eth_chainId"))
    assert status == 200
    assert body and body.startswith(b"{")
    with pytest.raises(ValueError):
        json.loads(body)


def test_wrong_id_answers_with_another_id(control: ProxyControl, client: Http) -> None:
    control.add({"kind": "wrong_id", "methods": "eth_chainId"})
    answers = client.rpc([call("eth_chainId", request_id=5), call("net_version", request_id=6)])
    assert [a["id"] for a in answers] == [6, 6]
    assert answers[0]["result"] == "0x7a69"


def test_probability_decides_per_call(control: ProxyControl, client: Http, port: int) -> None:
    rule = control.add({"kind": "null_result", "probability": 0.5})
    nulls = sum(client.rpc(call("eth_chainId"))["result"] is None for _ in range(200))
    assert 60 <= nulls <= 140
    assert route_stats(control, port)["faulted"][rule] == nulls


# --- transport faults (Toxiproxy's toxics) ----------------------------------------------


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_delays_every_exchange(control: ProxyControl, client: Http, stream: str) -> None:
    control.add({"kind": "latency", "latency": 200, "jitter": 20, "stream": stream})
    start = time.monotonic()
    assert client.rpc(call("eth_chainId"))["result"] == "0x7a69"
    assert 0.18 <= time.monotonic() - start < 1.0


def test_bandwidth_paces_the_answer(control: ProxyControl, client: Http) -> None:
    control.add({"kind": "bandwidth", "rate": 10})  # 10 KB/s
    start = time.monotonic()
    answer = client.rpc(call("eth_getBlockByNumber", ["0x0", True]))  # ~1.5 KB
    elapsed_s = time.monotonic() - start
    size = len(json.dumps(answer))
    assert elapsed_s >= 0.8 * size / 10_000


def test_slicer_delivers_the_answer_in_small_delayed_pieces(
    control: ProxyControl, port: int
) -> None:
    control.add({"kind": "slicer", "average_size": 64, "size_variation": 16, "delay": 20_000})
    body = json.dumps(call("eth_getBlockByNumber", ["0x0", False])).encode()
    pieces: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(
            b"POST / HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        while True:
            pieces.append(sock.recv(65536))
            head, _, answer = b"".join(pieces).partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            if length and len(answer) >= int(length.group(1)):
                break
        elapsed_s = time.monotonic() - start
    assert json.loads(answer)["result"]["number"] == "0x0"
    assert all(len(piece) <= 80 for piece in pieces)
    assert elapsed_s >= (len(b"".join(pieces)) // 80) * 0.02


def test_slow_close_delays_closing_the_client_connection(control: ProxyControl, port: int) -> None:
    control.add({"kind": "slow_close", "delay": 300})
    body = json.dumps(call("eth_chainId")).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        first = sock.recv(65536)
        start = time.monotonic()
        while sock.recv(65536):
            pass
        closed_after_s = time.monotonic() - start
    assert first.startswith(b"HTTP/1.1 200")
    assert closed_after_s >= 0.25


def test_timeout_stops_the_data_and_closes_after_the_timeout(
    control: ProxyControl, port: int
) -> None:
    control.add({"kind": "timeout", "timeout": 300})
    received, elapsed_s, ending = raw_exchange(port, call("eth_chainId"))
    assert (received, ending) == (b"", "eof")
    assert 0.28 <= elapsed_s < 2.0


def test_timeout_zero_holds_until_the_rule_is_removed(control: ProxyControl, port: int) -> None:
    rule = control.add({"kind": "timeout", "timeout": 0, "stream": "upstream"})
    threading.Timer(0.4, control.remove, [rule]).start()
    conn = Http(port)
    try:
        start = time.monotonic()
        assert conn.rpc(call("eth_chainId"))["result"] == "0x7a69"
        assert time.monotonic() - start >= 0.35
    finally:
        conn.close()


def test_reset_peer_resets_the_connection_after_its_timeout(
    control: ProxyControl, port: int
) -> None:
    control.add({"kind": "reset_peer", "timeout": 100})
    received, elapsed_s, ending = raw_exchange(port, call("eth_chainId"))
    assert (received, ending) == (b"", "reset")
    assert elapsed_s >= 0.09


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_limit_data_passes_that_many_bytes_then_closes(
    control: ProxyControl, port: int, stream: str
) -> None:
    control.add({"kind": "limit_data", "bytes": 100, "stream": stream})
    received, _, ending = raw_exchange(port, call("eth_getBlockByNumber", ["0x0", False]))
    assert ending == "eof"
    if stream == "downstream":
        assert len(received) == 100
    else:  # the node got 100 bytes of the request and no answer went out
        assert received == b""


def test_transport_rule_on_another_route_leaves_this_one_alone(
    control: ProxyControl, client: Http, port: int
) -> None:
    with pytest.raises(ConfigError) as refused:
        control.add({"kind": "latency", "latency": 500, "route": port + 1 if port < 65535 else 1})
    assert refused.value.field == "route"
    control.add({"kind": "latency", "latency": 500, "route": port, "probability": 0})
    start = time.monotonic()
    client.rpc(call("eth_chainId"))
    assert time.monotonic() - start < 0.3
