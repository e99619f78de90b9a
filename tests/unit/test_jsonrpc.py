"""The JSON-RPC client and the classification of its failures.

`RpcClient` runs against a small real HTTP server on 127.0.0.1 whose path picks the
answer; `parse_response` is checked with hypothesis over arbitrary bodies and statuses.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.jsonrpc import (
    Outcome,
    RpcClient,
    RpcFailure,
    classify_exception,
    classify_http_status,
    classify_rpc_error,
    parse_response,
)

RPC_ERROR_OUTCOMES = {
    Outcome.RPC_ERROR,
    Outcome.HEADER_NOT_FOUND,
    Outcome.RATE_LIMITED,
    Outcome.MALFORMED,
}

# --- a node that answers according to the request path -----------------------------------


class FakeNode(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeNodeHandler)
        self.requests: list[dict[str, Any]] = []
        self.client_ports: list[int] = []
        self.release = threading.Event()  # lets a /slow handler go at teardown

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeNodeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real nodes do
    server: FakeNode

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(request)
        self.server.client_ports.append(self.client_address[1])
        rid = request["id"]
        path = self.path
        if path == "/ok":
            self._json(200, {"jsonrpc": "2.0", "id": rid, "result": "0x1b4"})
        elif path == "/error-200":
            error = {"code": -32601, "message": "the method eth_foo does not exist"}
            self._json(200, {"jsonrpc": "2.0", "id": rid, "error": error})
        elif path == "/header-not-found":
            error = {"code": -32000, "message": "header not found"}
            self._json(200, {"jsonrpc": "2.0", "id": rid, "error": error})
        elif path == "/rate-limited":
            error = {"code": -32005, "message": "limit exceeded"}
            self._json(200, {"jsonrpc": "2.0", "id": rid, "error": error})
        elif path == "/503":
            self._send(503, b"<html><body>No server is available</body></html>", "text/html")
        elif path == "/not-json":
            self._send(200, b"<html>502 Bad Gateway</html>", "text/html")
        elif path == "/wrong-id":
            self._json(200, {"jsonrpc": "2.0", "id": rid + 1, "result": "0x1"})
        elif path == "/slow":
            self.server.release.wait(5)
            self._json(200, {"jsonrpc": "2.0", "id": rid, "result": "0x1"})
        else:
            self._send(404, b"no such path", "text/plain")

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[FakeNode]:
    server = FakeNode()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound (so nobody else takes it) but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def failure_of(url: str, timeout_s: float = 2.0) -> RpcFailure:
    with RpcClient(url, timeout_s=timeout_s) as client, pytest.raises(RpcFailure) as caught:
        client.call("eth_blockNumber")
    return caught.value


# --- RpcClient against a real server -----------------------------------------------------


def test_client_returns_the_result_of_a_successful_call(node: FakeNode) -> None:
    with RpcClient(f"{node.url}/ok") as client:
        assert client.call("eth_blockNumber") == "0x1b4"


def test_client_sends_a_json_rpc_2_request_with_method_params_and_fresh_ids(
    node: FakeNode,
) -> None:
    with RpcClient(f"{node.url}/ok") as client:
        client.call("eth_getBlockByNumber", ["latest", False])
        client.call("eth_chainId")

    first, second = node.requests
    assert first == {
        "jsonrpc": "2.0",
        "id": first["id"],
        "method": "eth_getBlockByNumber",
        "params": ["latest", False],
    }
    assert second["params"] == [] and second["method"] == "eth_chainId"
    assert second["id"] != first["id"]


def test_client_reuses_one_connection_across_calls(node: FakeNode) -> None:
    with RpcClient(f"{node.url}/ok") as client:
        for _ in range(3):
            client.call("eth_blockNumber")
    assert len(set(node.client_ports)) == 1


def test_block_number_decodes_the_hex_head(node: FakeNode) -> None:
    with RpcClient(f"{node.url}/ok") as client:
        assert client.block_number() == 0x1B4


def test_a_json_rpc_200_with_an_error_member_is_a_failure(node: FakeNode) -> None:
    failure = failure_of(f"{node.url}/error-200")
    assert failure.outcome is Outcome.RPC_ERROR
    assert failure.code == -32601
    assert "does not exist" in failure.detail


def test_header_not_found_is_its_own_outcome(node: FakeNode) -> None:
    failure = failure_of(f"{node.url}/header-not-found")
    assert (failure.outcome, failure.code) == (Outcome.HEADER_NOT_FOUND, -32000)


def test_code_32005_is_rate_limited(node: FakeNode) -> None:
    failure = failure_of(f"{node.url}/rate-limited")
    assert (failure.outcome, failure.code) == (Outcome.RATE_LIMITED, -32005)


def test_http_503_is_classified_by_its_status(node: FakeNode) -> None:
    failure = failure_of(f"{node.url}/503")
    assert (failure.outcome, failure.code) == (Outcome.HTTP_503, 503)


def test_a_body_that_is_not_json_is_malformed(node: FakeNode) -> None:
    failure = failure_of(f"{node.url}/not-json")
    assert failure.outcome is Outcome.MALFORMED
    assert "502 Bad Gateway" in failure.detail  # the start of the body, to debug with


def test_a_response_to_another_request_id_is_a_failure(node: FakeNode) -> None:
    assert failure_of(f"{node.url}/wrong-id").outcome is Outcome.WRONG_ID


def test_a_refused_connection_is_connect_refused(closed_port: int) -> None:
    failure = failure_of(f"http://127.0.0.1:{closed_port}/")
    assert failure.outcome is Outcome.CONNECT_REFUSED
    assert isinstance(failure.__cause__, ConnectionRefusedError)


def test_a_server_slower_than_timeout_s_is_a_timeout(node: FakeNode) -> None:
    began = time.monotonic()
    failure = failure_of(f"{node.url}/slow", timeout_s=0.2)
    took_s = time.monotonic() - began
    assert failure.outcome is Outcome.TIMEOUT
    assert 0.2 <= took_s < 1.5


def test_the_client_reconnects_after_a_timeout(node: FakeNode) -> None:
    with RpcClient(f"{node.url}/slow", timeout_s=0.2) as client:
        with pytest.raises(RpcFailure):
            client.call("eth_blockNumber")
        node.release.set()
        assert client.call("eth_blockNumber") == "0x1"
    assert len(set(node.client_ports)) == 2


@pytest.mark.parametrize("url", ["https://127.0.0.1:8545/", "ws://127.0.0.1:8546", "localhost"])
def test_client_refuses_urls_it_cannot_speak(url: str) -> None:
    with pytest.raises(ValueError, match="only http://"):
        RpcClient(url)


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, Outcome.HTTP_503),
        (429, Outcome.HTTP_429),
        (500, Outcome.HTTP_5XX),
        (502, Outcome.HTTP_5XX),
        (504, Outcome.HTTP_5XX),
        (400, Outcome.HTTP_4XX),
        (404, Outcome.HTTP_4XX),
    ],
)
def test_classify_http_status(status: int, outcome: Outcome) -> None:
    assert classify_http_status(status) is outcome


@pytest.mark.parametrize(
    ("error", "outcome", "code"),
    [
        ({"code": -32000, "message": "header not found"}, Outcome.HEADER_NOT_FOUND, -32000),
        ({"code": -32000, "message": "Unknown block"}, Outcome.HEADER_NOT_FOUND, -32000),
        ({"code": -32005, "message": "limit exceeded"}, Outcome.RATE_LIMITED, -32005),
        ({"code": -32016, "message": "Rate limit reached"}, Outcome.RATE_LIMITED, -32016),
        ({"code": 429, "message": "Too Many Requests"}, Outcome.RATE_LIMITED, 429),
        ({"code": -32601, "message": "method not found"}, Outcome.RPC_ERROR, -32601),
        ({"code": -32000, "message": "execution reverted"}, Outcome.RPC_ERROR, -32000),
        ({}, Outcome.RPC_ERROR, None),
        ("internal error", Outcome.MALFORMED, None),
        ([1, 2], Outcome.MALFORMED, None),
    ],
)
def test_classify_rpc_error(error: Any, outcome: Outcome, code: int | None) -> None:
    assert classify_rpc_error(error) == (outcome, code)


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (ConnectionRefusedError(111, "refused"), Outcome.CONNECT_REFUSED),
        (ConnectionResetError(104, "reset"), Outcome.RESET),
        (BrokenPipeError(32, "pipe"), Outcome.RESET),
        (http.client.RemoteDisconnected("closed"), Outcome.RESET),
        (TimeoutError("timed out"), Outcome.TIMEOUT),
        (TimeoutError("timed out"), Outcome.TIMEOUT),
        (http.client.BadStatusLine("garbage"), Outcome.MALFORMED),
        (http.client.IncompleteRead(b"partial"), Outcome.MALFORMED),
        (OSError(113, "No route to host"), Outcome.NETWORK),
    ],
)
def test_classify_exception(exc: BaseException, outcome: Outcome) -> None:
    assert classify_exception(exc) is outcome


def test_rpc_failure_says_its_outcome_and_detail() -> None:
    failure = RpcFailure(Outcome.HTTP_503, "HTTP 503", 503)
    assert str(failure) == "http_503: HTTP 503"
    assert (failure.outcome, failure.detail, failure.code) == (Outcome.HTTP_503, "HTTP 503", 503)


# --- parse_response ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
request_ids = st.integers(min_value=1, max_value=2**53)


def test_parse_response_returns_the_result_of_a_success() -> None:
    body = b'{"jsonrpc":"2.0","id":7,"result":"0x10"}'
    assert parse_response(200, body, 7) == "0x10"


def test_a_null_error_member_does_not_make_a_success_a_failure() -> None:
    body = b'{"jsonrpc":"2.0","id":7,"result":null,"error":null}'
    assert parse_response(200, body, 7) is None


def test_a_response_with_neither_result_nor_error_is_malformed() -> None:
    with pytest.raises(RpcFailure) as caught:
        parse_response(200, b'{"jsonrpc":"2.0","id":7}', 7)
    assert caught.value.outcome is Outcome.MALFORMED


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'"0x1"', b"null", b"42"])
def test_a_body_that_is_not_one_json_rpc_object_is_malformed(body: bytes) -> None:
    with pytest.raises(RpcFailure) as caught:
        parse_response(200, body, 1)
    assert caught.value.outcome is Outcome.MALFORMED


@given(status=st.integers(min_value=0, max_value=999), body=st.binary(), request_id=request_ids)
def test_parse_response_raises_only_rpc_failure_for_arbitrary_bytes(
    status: int, body: bytes, request_id: int
) -> None:
    try:
        parse_response(status, body, request_id)
    except RpcFailure as failure:
        assert isinstance(failure.outcome, Outcome)


@given(doc=json_values, request_id=request_ids)
def test_parse_response_raises_only_rpc_failure_for_arbitrary_json(
    doc: Any, request_id: int
) -> None:
    try:
        parse_response(200, json.dumps(doc).encode(), request_id)
    except RpcFailure as failure:
        assert isinstance(failure.outcome, Outcome)


@given(result=json_values, request_id=request_ids, null_error=st.booleans())
def test_parse_response_returns_the_result_of_any_well_formed_success(
    result: Any, request_id: int, null_error: bool
) -> None:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": result}
    if null_error:
        doc["error"] = None
    assert parse_response(200, json.dumps(doc).encode(), request_id) == result


@given(error=json_values.filter(lambda e: e is not None), request_id=request_ids)
def test_parse_response_never_returns_a_result_beside_an_error_member(
    error: Any, request_id: int
) -> None:
    doc = {"jsonrpc": "2.0", "id": request_id, "result": "0x1", "error": error}
    with pytest.raises(RpcFailure) as caught:
        parse_response(200, json.dumps(doc).encode(), request_id)
    assert caught.value.outcome in RPC_ERROR_OUTCOMES


@given(
    status=st.integers(min_value=100, max_value=599).filter(lambda s: s != 200),
    result=json_values,
)
def test_parse_response_fails_any_status_but_200_even_with_a_valid_body(
    status: int, result: Any
) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()
    with pytest.raises(RpcFailure) as caught:
        parse_response(status, body, 1)
    assert caught.value.code == status
    assert caught.value.outcome is classify_http_status(status)


@given(request_id=request_ids, other=request_ids)
def test_parse_response_rejects_any_other_id(request_id: int, other: int) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": other, "result": "0x1"}).encode()
    if other == request_id:
        assert parse_response(200, body, request_id) == "0x1"
    else:
        with pytest.raises(RpcFailure) as caught:
            parse_response(200, body, request_id)
        assert caught.value.outcome is Outcome.WRONG_ID


def test_a_deeply_nested_body_is_malformed_not_a_crash() -> None:
    with pytest.raises(RpcFailure) as caught:
        parse_response(200, b"[" * 100_000, 1)
    assert caught.value.outcome is Outcome.MALFORMED
