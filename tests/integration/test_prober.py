"""The probes against a JSON-RPC server of known behaviour: slow is measured as slow, a
stall as an outage with every slot accounted for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.measure import FRONTEND, Prober
from harness.stack.model import HealthCheck, StackState


@dataclass
class Behaviour:
    delay_s: float = 0.0
    stall_until: float = 0.0  # monotonic: answers wait until then


def serve(behaviour: Behaviour) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(max(behaviour.delay_s, behaviour.stall_until - time.monotonic()))
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x10"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass(frozen=True)
class OneUrl:
    """A stack of nothing but a frontend: what the prober needs to see."""

    url: str

    def state(self) -> StackState:
        return StackState(
            "fake", "fake", "/nonexistent", 0, self.url, "", "/nonexistent/haproxy.sock",
            HealthCheck(), 1.0, (),
        )  # fmt: skip


@pytest.fixture
def behaviour() -> Iterator[tuple[Behaviour, str]]:
    b = Behaviour()
    server = serve(b)
    yield b, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_slow_service_is_measured_as_slow_not_as_unavailable(
    behaviour: tuple[Behaviour, str],
) -> None:
    b, url = behaviour
    b.delay_s = 0.1  # five probe intervals per answer
    with Prober(OneUrl(url), interval_s=0.02, timeout_s=0.5) as prober:
        time.sleep(1.5)
    samples = [s for s in prober.snapshot()[0] if s.target == FRONTEND]
    ok = [s for s in samples if s.outcome == "ok"]
    assert len(samples) >= 60
    assert len(ok) / len(samples) >= 0.97
    latencies = sorted(s.latency_us for s in ok)
    assert 95_000 <= latencies[len(latencies) // 2] <= 200_000


def test_a_stall_is_an_outage_and_every_slot_it_swallowed_is_a_timeout(
    behaviour: tuple[Behaviour, str],
) -> None:
    b, url = behaviour
    with Prober(OneUrl(url), interval_s=0.02, timeout_s=0.25) as prober:
        time.sleep(0.5)
        stall_start = time.monotonic_ns()
        b.stall_until = time.monotonic() + 1.0
        time.sleep(1.5)
    samples = sorted(
        (s for s in prober.snapshot()[0] if s.target == FRONTEND), key=lambda s: s.intended_ns
    )
    # No slot lost: one sample per interval over the whole run.
    span_s = (samples[-1].intended_ns - samples[0].intended_ns) / 1e9
    assert len(samples) >= span_s / 0.02 * 0.95
    during = [
        s for s in samples if stall_start <= s.intended_ns < stall_start + 700_000_000
    ]  # due in the stall, more than a timeout before its end
    assert during and all(s.outcome == "timeout" for s in during)
    after = [s for s in samples if s.intended_ns > stall_start + 1_200_000_000]
    assert after and all(s.outcome == "ok" for s in after)
