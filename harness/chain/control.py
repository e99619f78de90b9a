"""The replicator's control API: status and per-node settings over HTTP/JSON on loopback.

``GET /health`` -> 200; ``GET /status`` -> the `ReplicatorStatus` document;
``GET /nodes/NAME`` -> one node's status; ``POST /nodes/NAME`` with any of
``{"paused": bool, "lag_blocks": int >= 0, "delay_ms": [fixed, jitter]}`` -> 200 and the
node's status after; 400 ``{"error": "<field>=<value>: <fix>", "field", "value", "fix"}``
on bad input; 404 for an unknown node or path. Faults drive it (``stall`` and
``peer_partition`` pause a node, ``lag`` sets ``lag_blocks``). Low volume by design: the
standard library's threading HTTP server.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from harness.chain.settings import NodeChange, parse_change
from harness.chain.status import NodeStatus, ReplicatorStatus
from harness.errors import ConfigError

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class Controlled(Protocol):
    """What the control API drives: a `harness.chain.replicator.Replicator`."""

    def names(self) -> tuple[str, ...]: ...

    def status(self) -> ReplicatorStatus: ...

    def node_status(self, name: str) -> NodeStatus: ...

    def configure(self, name: str, change: NodeChange) -> NodeStatus: ...


def _json(value: object) -> object:
    """``value`` if JSON can carry it, else its repr (an error may echo anything)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def dispatch(replicator: Controlled, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """(status, JSON document) for one control request."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if path == "/health":
        return (200, {"ok": True}) if method in ("GET", "HEAD") else _not_allowed(method, path)
    if path == "/status":
        if method != "GET":
            return _not_allowed(method, path)
        return 200, replicator.status().to_doc()
    if path.startswith("/nodes/"):
        name = path[len("/nodes/") :]
        if name not in replicator.names():
            known = ", ".join(replicator.names())
            return 404, {"error": f"no node {name!r}; the replicator follows: {known}"}
        if method == "GET":
            return 200, replicator.node_status(name).to_doc()
        if method != "POST":
            return _not_allowed(method, path)
        try:
            try:
                doc = json.loads(body) if body.strip() else None
            except (ValueError, RecursionError):
                raise ConfigError(
                    "body", body[:80].decode(errors="replace"), "is not JSON"
                ) from None
            change = parse_change(doc)
        except ConfigError as exc:
            return 400, {"error": str(exc), "field": exc.field, "value": _json(exc.value),
                         "fix": exc.fix}  # fmt: skip
        status = replicator.configure(name, change)
        log.info("node %s set: %s", name, body[:200].decode(errors="replace"))
        return 200, status.to_doc()
    return 404, {"error": f"no such resource {path}; see /health, /status, /nodes/NAME"}


def _not_allowed(method: str, path: str) -> tuple[int, Any]:
    return 405, {"error": f"{method} is not allowed on {path}"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": f"body over {MAX_BODY} bytes"}, close=True)
            return
        body = self.rfile.read(length) if length else b""
        try:
            status, doc = dispatch(self.server.replicator, self.command, self.path, body)
        except Exception as exc:  # an answer, never a dropped connection
            log.exception("control request %s %s failed", self.command, self.path)
            status, doc = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self._answer(status, doc)

    def _answer(self, status: int, doc: Any, close: bool = False) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replicator: Controlled


class ControlServer:
    """Serves `dispatch` on ``host``:``port`` (0: the system picks) in a thread; a context
    manager. `ConfigError` naming --control when it cannot listen."""

    def __init__(self, replicator: Controlled, host: str, port: int) -> None:
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise ConfigError("--control", f"{host}:{port}", f"cannot listen: {exc}") from exc
        self._server.replicator = replicator
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name="replicator-control",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> ControlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
