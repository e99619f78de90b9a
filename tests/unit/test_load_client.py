"""The load generator's JSON-RPC client: HTTP/1.1 framing, keep-alive, and kernel timing.

A small socket server in a thread plays the node, answering with the exact bytes each test
needs (framing is the unit under test; the real path through HAProxy and anvil is covered
by tests/integration/test_load.py and bench/latency_fidelity.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from harness.jsonrpc import Outcome, classify_exception
from harness.load.client import BadResponse, RpcConnection

BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)

Handler = Callable[[socket.socket, int], None]  # (connection, index of the request on it)


class Node:
    """Accepts connections; for each request read, calls ``handler(conn, n)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.connections = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._converse, args=(conn,), daemon=True).start()

    def _converse(self, conn: socket.socket) -> None:
        with conn:
            n = 0
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                try:
                    self.handler(conn, n)
                except OSError:
                    return
                n += 1


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Node]]:
    nodes: list[Node] = []

    def start(handler: Handler) -> Node:
        nodes.append(Node(handler))
        return nodes[-1]

    yield start
    for node in nodes:
        node.listener.close()


def answer(raw: bytes) -> Handler:
    return lambda conn, _n: conn.sendall(raw)


def test_posts_the_body_as_json_and_reads_a_content_length_answer(serve) -> None:
    node = serve(answer(OK))
    connection = RpcConnection(node.url, timeout_s=2)
    got = connection.post(b'{"method":"eth_blockNumber"}')
    assert (got.status, got.body) == (200, BODY)
    request = node.requests[0]
    assert request.startswith(b"POST / HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in request
    assert request.endswith(b'\r\n\r\n{"method":"eth_blockNumber"}')


def test_keeps_one_connection_for_many_calls(serve) -> None:
    node = serve(answer(OK))
    connection = RpcConnection(node.url, timeout_s=2)
    for _ in range(5):
        assert connection.post(b"{}").body == BODY
    assert node.connections == 1


def test_reads_a_chunked_answer(serve) -> None:
    chunked = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
    )
    node = serve(lambda conn, _n: [conn.sendall(chunked[i : i + 7]) for i in range(0, 99, 7)])
    connection = RpcConnection(node.url, timeout_s=2)
    assert connection.post(b"{}").body == b'{"a":1}'
    assert connection.post(b"{}").body == b'{"a":1}'  # and the connection is still usable
    assert node.connections == 1


def test_reads_an_answer_framed_by_the_close_and_reconnects_after_it(serve) -> None:
    def close_framed(conn: socket.socket, _n: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + BODY)
        conn.shutdown(socket.SHUT_WR)

    node = serve(close_framed)
    connection = RpcConnection(node.url, timeout_s=2)
    assert connection.post(b"{}").body == BODY
    assert connection.post(b"{}").body == BODY
    assert node.connections == 2


def test_a_keep_alive_connection_closed_while_idle_is_retried_once_on_a_new_one(serve) -> None:
    def answer_then_close(conn: socket.socket, _n: int) -> None:
        conn.sendall(OK)
        conn.shutdown(socket.SHUT_RDWR)  # the server's keep-alive timeout, say

    node = serve(answer_then_close)
    connection = RpcConnection(node.url, timeout_s=2)
    assert connection.post(b"{}").body == BODY
    time.sleep(0.05)
    assert connection.post(b"{}").body == BODY
    assert node.connections == 2


def test_a_close_in_the_middle_of_the_body_is_a_reset(serve) -> None:
    def cut(conn: socket.socket, _n: int) -> None:
        conn.sendall(OK[:-5])
        conn.shutdown(socket.SHUT_RDWR)

    node = serve(cut)
    with pytest.raises(ConnectionResetError) as failure:
        RpcConnection(node.url, timeout_s=2).post(b"{}")
    assert classify_exception(failure.value) is Outcome.RESET


def test_an_answer_that_is_not_http_is_malformed(serve) -> None:
    node = serve(answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    with pytest.raises(BadResponse) as failure:
        RpcConnection(node.url, timeout_s=2).post(b"{}")
    assert classify_exception(failure.value) is Outcome.MALFORMED


def test_a_silent_node_times_out_after_the_timeout(serve) -> None:
    node = serve(lambda conn, _n: None)
    started = time.monotonic()
    with pytest.raises(TimeoutError) as failure:
        RpcConnection(node.url, timeout_s=0.3).post(b"{}")
    assert 0.3 <= time.monotonic() - started < 1.5
    assert classify_exception(failure.value) is Outcome.TIMEOUT


def test_a_refused_connection_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        RpcConnection(f"http://127.0.0.1:{port}/", timeout_s=1).post(b"{}")


def test_latency_runs_from_the_send_to_the_answer_the_node_took_time_over(serve) -> None:
    node = serve(lambda conn, _n: (time.sleep(0.05), conn.sendall(OK)))
    got = RpcConnection(node.url, timeout_s=2).post(b"{}")
    assert 0.05 <= (got.answered_ns - got.sent_ns) / 1e9 < 0.5


def test_latency_ends_when_the_answer_arrived_not_when_the_client_read_it(serve) -> None:
    """A busy load generator reads late; that lateness is not the system's latency."""

    class LateReader(RpcConnection):
        def _recv(self, sock, deadline):  # type: ignore[no-untyped-def]
            time.sleep(0.1)
            return super()._recv(sock, deadline)

    node = serve(answer(OK))
    connection = LateReader(node.url, timeout_s=2)
    if not connection.kernel_timestamps:
        pytest.skip("this kernel gives no receive timestamps (SO_TIMESTAMPNS)")
    got = connection.post(b"{}")
    read_at = time.monotonic_ns()
    assert got.kernel_timed
    assert read_at - got.sent_ns >= 100_000_000
    assert got.answered_ns - got.sent_ns < 50_000_000


def test_a_url_that_is_not_http_is_refused_with_the_url() -> None:
    with pytest.raises(ValueError, match="ftp://x"):
        RpcConnection("ftp://x/", timeout_s=1)
