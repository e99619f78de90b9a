"""The proxy's control API: rules and counters over HTTP/JSON, for `ProxyControl`.

``GET /health``, ``GET|POST|DELETE /rules``, ``DELETE /rules/<id>``, ``GET /stats``. A bad
rule is answered 400 with ``{"error": "<field>=<value>: <fix>"}`` (the `ConfigError`'s
message). Low volume by design: one small asyncio server next to the data path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from harness.errors import ConfigError
from harness.proxy.http1 import HEAD_END, MAX_HEAD_BYTES, simple_response
from harness.proxy.rpc import dumps
from harness.proxy.rules import parse_rule
from harness.proxy.server import FaultProxy

log = logging.getLogger(__name__)
MAX_CONTROL_BODY = 1024 * 1024


def dispatch(proxy: FaultProxy, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """(status, JSON document) for one control request."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if path == "/health":
        return (200, {"ok": True}) if method in ("GET", "HEAD") else _not_allowed(method, path)
    if path == "/stats":
        return (200, proxy.stats()) if method == "GET" else _not_allowed(method, path)
    if path == "/rules":
        if method == "GET":
            return 200, {"rules": [rule.to_doc() for rule in proxy.rules()]}
        if method == "POST":
            try:
                rule = proxy.add_rule(parse_rule(_json(body)))
            except ConfigError as exc:
                return 400, {"error": str(exc)}
            log.info("rule added: %s", json.dumps(rule.to_doc()))
            return 201, {"id": rule.id}
        if method == "DELETE":
            count = proxy.clear_rules()
            log.info("rules cleared (%d)", count)
            return 200, {"deleted": count}
        return _not_allowed(method, path)
    if path.startswith("/rules/"):
        if method != "DELETE":
            return _not_allowed(method, path)
        rule_id = path[len("/rules/") :]
        deleted = proxy.remove_rule(rule_id)
        if deleted:
            log.info("rule removed: %s", rule_id)
        return (200 if deleted else 404), {"deleted": deleted}
    return 404, {"error": f"no such resource {path}; see /rules, /stats, /health"}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ConfigError("rule", body[:80].decode(errors="replace"), "is not JSON") from None


def _not_allowed(method: str, path: str) -> tuple[int, Any]:
    return 405, {"error": f"{method} is not allowed on {path}"}


class ControlServer:
    """Serves `dispatch` on one address; `close` ends every open control connection."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; the bound port. ConfigError naming --control when it cannot."""
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, reuse_address=True, limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            raise ConfigError("--control", f"{host}:{port}", f"cannot listen: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(HEAD_END)
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    writer.write(simple_response(400, b'{"error":"bad request"}', close=True))
                    break
                method, path, version = parts
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length > MAX_CONTROL_BODY:
                    writer.write(simple_response(413, b'{"error":"body too large"}', close=True))
                    break
                body = await reader.readexactly(length) if length else b""
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                status, doc = dispatch(self.proxy, method, path, body)
                writer.write(simple_response(status, dumps(doc), close=close))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except ValueError:  # a bad Content-Length
            writer.write(simple_response(400, b'{"error":"bad request"}', close=True))
        finally:
            self._writers.discard(writer)
            writer.close()
