"""The fault proxy as a process and as an HTTP/1.1 hop, in front of a tiny HTTP server.

The tiny server answers by path: text that is not JSON, a chunked body, a body read until
the connection closes, ``Connection: close``, and an echo of what reached it. It proves
what anvil cannot: the framing and hop-by-hop rules of a proxy, and the count of non-JSON
bodies. Also here: the ready line, SIGTERM, bad arguments and the control API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.errors import ConfigError, HarnessError
from harness.proxy import ProxyControl, ProxyProcess
from tests.integration.test_proxy_faults import free_port


class Node(BaseHTTPRequestHandler):
    """Answers by path; counts the connections it accepted."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        Node.connections += 1
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._answer(self.rfile.read(length))

    def _answer(self, body: bytes) -> None:
        if self.path == "/text":
            self._send(b"this is not JSON", "text/plain")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"jsonrpc":"2.0",', b'"id":1,', b'"result":"0x1"}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"jsonrpc":"2.0","id":1,"result":"until close"}')
            self.close_connection = True
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"{}")
            self.close_connection = True
        else:  # echo: the request's headers (lower-cased names) and body
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(json.dumps({"headers": headers, "body": body.decode()}).encode())

    def _send(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def node_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxied(
    node_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProxyProcess, int, int]]:
    """A proxy with a route to the tiny node and one to a port nobody listens on; at the
    end, its log must show no traceback."""
    listen, dead = free_port(), free_port()
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    routes = [(listen, "127.0.0.1", node_port), (dead, "127.0.0.1", free_port())]
    with ProxyProcess(routes, log_path=log) as proxy:
        yield proxy, listen, dead
    text = log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text, text[-3000:]


@pytest.fixture
def control(proxied: tuple[ProxyProcess, int, int]) -> Iterator[ProxyControl]:
    control = proxied[0].control
    control.clear()
    yield control
    control.clear()


@pytest.fixture
def port(proxied: tuple[ProxyProcess, int, int]) -> int:
    return proxied[1]


def raw(port: int, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Everything the proxy sends back on one connection until it closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def stats(control: ProxyControl, port: int) -> dict[str, Any]:
    return dict(control.stats()["routes"][str(port)])


# --- the process ------------------------------------------------------------------------


def test_ready_line_is_all_of_stdout_and_sigterm_exits_cleanly(node_port: int) -> None:
    control_port = free_port()
    argv = [
        sys.executable,
        "-m",
        "harness.proxy",
        "--control",
        f"127.0.0.1:{control_port}",
        "--route",
        f"{free_port()}=127.0.0.1:{node_port}",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert json.loads(line) == {"ready": True, "control": f"http://127.0.0.1:{control_port}/"}
    assert ProxyControl(f"http://127.0.0.1:{control_port}/").healthy()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=5)
    assert process.returncode == 0, stderr
    assert stdout == b""
    assert b"Traceback" not in stderr


def test_sigint_exits_cleanly_too(proxied: tuple[ProxyProcess, int, int], node_port: int) -> None:
    proxy = ProxyProcess([(free_port(), "127.0.0.1", node_port)])
    proxy.start()
    os.kill(proxy.pid, signal.SIGINT)
    assert proxy.process is not None
    assert proxy.process.wait(5) == 0
    proxy.stop()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--route", "9000=127.0.0.1:8545"], "--control"),
        (["--control", "127.0.0.1:9001"], "--route"),
        (["--control", "127.0.0.1:9001", "--route", "9000=127.0.0.1"], "--route"),
        (["--control", "127.0.0.1:9001", "--route", "99999=127.0.0.1:8545"], "--route"),
        (["--control", "10.1.2.3:9001", "--route", "9000=127.0.0.1:8545"], "--control"),
        (["--control", "127.0.0.1:9001", "--route", "9000=h:1", "--verbose"], "argument"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_the_field(args: list[str], field: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.proxy", *args], capture_output=True, timeout=20
    )
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{field}=")


def test_a_port_in_use_exits_2_naming_the_route(node_port: int) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.proxy",
                "--control",
                f"127.0.0.1:{free_port()}",
                "--route",
                f"{port}=127.0.0.1:{node_port}",
            ],
            capture_output=True,
            timeout=20,
        )
    assert done.returncode == 2
    assert done.stderr.decode().startswith("--route=")


# --- the control API --------------------------------------------------------------------


def test_control_api_adds_lists_removes_and_clears_rules(control: ProxyControl, port: int) -> None:
    first = control.add({"kind": "latency", "latency": 10, "route": port})
    second = control.add({"kind": "rpc_error", "code": -32000, "methods": "eth_call"})
    listed = control.rules()
    assert [r["id"] for r in listed] == [first, second]
    assert listed[0] == {
        "id": first,
        "route": port,
        "kind": "latency",
        "probability": 1.0,
        "methods": "*",
        "stream": "downstream",
        "latency": 10,
        "jitter": 0,
    }
    assert control.remove(first) is True
    assert control.remove(first) is False  # already gone
    control.clear()
    assert control.rules() == []


def test_a_bad_rule_is_refused_with_400_naming_the_field(
    control: ProxyControl, proxied: tuple[ProxyProcess, int, int]
) -> None:
    with pytest.raises(ConfigError) as refused:
        control.add({"kind": "latency", "latency": 10, "probability": 1.5})
    assert refused.value.field == "probability"
    assert refused.value.value == 1.5
    url = proxied[0].url
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")), timeout=2)
    conn.request("POST", "/rules", json.dumps({"kind": "teleport"}))
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"].startswith("kind='teleport': unknown kind")
    conn.request("DELETE", "/rules/no-such-rule")
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())) == (404, {"deleted": False})
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


def test_a_control_api_that_is_not_there_raises_harness_error() -> None:
    with pytest.raises(HarnessError, match="did not answer"):
        ProxyControl(f"http://127.0.0.1:{free_port()}/").rules()


# --- HTTP/1.1 as a hop ------------------------------------------------------------------


def test_a_non_json_body_from_the_node_is_passed_through_and_counted(
    control: ProxyControl, port: int
) -> None:
    before = stats(control, port)["non_json_bodies"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/text")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"this is not JSON")
    control.add({"kind": "rpc_delay", "delay_ms": 1})  # the fault path counts it too
    conn.request("POST", "/text", b"{}")
    assert conn.getresponse().read() == b"this is not JSON"
    conn.close()
    assert stats(control, port)["non_json_bodies"] - before == 2


@pytest.mark.parametrize("faulty", [False, True])
def test_chunked_and_until_close_answers_reach_the_client_whole(
    control: ProxyControl, port: int, faulty: bool
) -> None:
    if faulty:
        control.add({"kind": "latency", "latency": 1})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/chunked")
    assert json.loads(conn.getresponse().read()) == {"jsonrpc": "2.0", "id": 1, "result": "0x1"}
    conn.request("GET", "/until-close")
    response = conn.getresponse()
    assert json.loads(response.read())["result"] == "until close"
    conn.close()


def test_connection_close_from_the_node_keeps_the_client_connection(
    control: ProxyControl, port: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    before = stats(control, port)
    for _ in range(3):
        conn.request("GET", "/close")
        response = conn.getresponse()
        assert response.read() == b"{}"
        assert response.getheader("Connection") is None
    after = stats(control, port)
    conn.close()
    assert after["client_connections"] - before["client_connections"] == 1
    assert after["upstream_connections"] - before["upstream_connections"] >= 3


def test_hop_by_hop_headers_stop_at_the_proxy_and_close_is_honoured(port: int) -> None:
    body = b'{"a":1}'
    answer = raw(
        port,
        b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close, x-hop\r\nx-hop: 1\r\n"
        b"keep-alive: timeout=5\r\nx-end: 2\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body),
    )
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    echoed = json.loads(payload)
    assert echoed["body"] == '{"a":1}'
    assert echoed["headers"]["x-end"] == "2"
    assert not {"connection", "keep-alive", "x-hop"} & set(echoed["headers"])


def test_http10_and_expect_100_continue_clients_are_served(port: int) -> None:
    body = b'{"b":2}'
    answer = raw(port, b"POST /echo HTTP/1.0\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == '{"b":2}'
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        payload = response.read()
    assert response.status == 200
    assert "expect" not in json.loads(payload)["headers"]


def test_an_unreachable_node_is_a_502_and_an_upstream_error(
    control: ProxyControl, proxied: tuple[ProxyProcess, int, int]
) -> None:
    dead = proxied[2]
    before = stats(control, dead)["upstream_errors"]
    conn = http.client.HTTPConnection("127.0.0.1", dead, timeout=5)
    conn.request("POST", "/", b"{}")
    response = conn.getresponse()
    assert response.status == 502
    assert "cannot connect" in json.loads(response.read())["error"]["message"]
    conn.close()
    assert stats(control, dead)["upstream_errors"] - before == 1


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n%d" % i for i in range(5)
    )
    answers = raw(port, requests + b"GET /close HTTP/1.1\r\nconnection: close\r\n\r\n")
    bodies = [
        json.loads(part.split(b"\r\n\r\n")[1])["body"]
        for part in answers.split(b"HTTP/1.1 200 OK")[1:6]
    ]
    assert bodies == ["0", "1", "2", "3", "4"]
