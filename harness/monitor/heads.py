"""``python -m harness.monitor.heads``: each node's head as Prometheus metrics.

No exporter gives a node's head (the blackbox exporter only says a probe passed), so this
small one polls eth_blockNumber on every node and serves, on ``/metrics``:
``eth_head_block{node}`` (the last head answered), ``eth_head_block_age_seconds{node}``
(since that head last changed, as this poller saw it) and ``eth_head_poll_success{node}``.
A node that does not answer keeps its last head and its age grows: a dead node's head
stalls, as a client sees it. Run by the stack as a supervised process (--prometheus).
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.jsonrpc import RpcClient, RpcFailure


@dataclass
class NodeHead:
    """What the poller last saw of one node: its head, when it changed, if it answered."""

    name: str
    url: str
    block: int | None = None
    changed_s: float = 0.0  # time.monotonic() of the last change
    ok: bool = False


def render(heads: list[NodeHead], now_s: float) -> str:
    """The Prometheus text exposition of ``heads`` at monotonic time ``now_s``."""
    lines = [
        "# HELP eth_head_block The head block number the node last answered.",
        "# TYPE eth_head_block gauge",
        *(f'eth_head_block{{node="{h.name}"}} {h.block}' for h in heads if h.block is not None),
        "# HELP eth_head_block_age_seconds Seconds since the node's head last changed.",
        "# TYPE eth_head_block_age_seconds gauge",
        *(
            f'eth_head_block_age_seconds{{node="{h.name}"}} {now_s - h.changed_s:.3f}'
            for h in heads
            if h.block is not None
        ),
        "# HELP eth_head_poll_success 1 if the node answered the last eth_blockNumber.",
        "# TYPE eth_head_poll_success gauge",
        *(f'eth_head_poll_success{{node="{h.name}"}} {int(h.ok)}' for h in heads),
    ]
    return "\n".join(lines) + "\n"


def poll(head: NodeHead, interval_s: float, stop: threading.Event) -> None:
    """Poll one node until ``stop``; a failure keeps the last head (its age grows)."""
    with RpcClient(head.url, timeout_s=min(1.0, interval_s * 2)) as client:
        while not stop.is_set():
            try:
                block = client.block_number()
                if block != head.block:
                    head.block, head.changed_s = block, time.monotonic()
                head.ok = True
            except RpcFailure:
                head.ok = False
            stop.wait(interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.monitor.heads")
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve /metrics on")
    parser.add_argument("--node", action="append", default=[], help="NAME=URL (repeat)")
    parser.add_argument("--interval", type=float, default=0.25, help="poll interval (s)")
    args = parser.parse_args(argv)
    heads = [NodeHead(*item.split("=", 1)) for item in args.node]
    stop = threading.Event()
    for head in heads:
        threading.Thread(target=poll, args=(head, args.interval, stop), daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render(heads, time.monotonic()).encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    try:
        server.serve_forever()
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
