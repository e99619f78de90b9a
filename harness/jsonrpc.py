"""A small, honest JSON-RPC client and the classification of its failures.

Used by the stack (health, heads), the probes and the steady-state check. A JSON-RPC
response with an ``error`` member is a failure, never a success; every failure carries
one `Outcome` so that the recorder can count classes of errors, not just errors.
"""

from __future__ import annotations

import enum
import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class Outcome(enum.StrEnum):
    """What happened to one request, as the recorder counts it."""

    OK = "ok"
    CONNECT_REFUSED = "connect_refused"
    RESET = "connection_reset"
    TIMEOUT = "timeout"
    HTTP_503 = "http_503"
    HTTP_5XX = "http_5xx"
    HTTP_429 = "http_429"
    HTTP_4XX = "http_4xx"
    RPC_ERROR = "rpc_error"
    HEADER_NOT_FOUND = "rpc_header_not_found"
    RATE_LIMITED = "rpc_rate_limited"
    MALFORMED = "malformed_body"
    WRONG_ID = "wrong_id"
    NETWORK = "network_error"


class RpcFailure(Exception):
    """One failed JSON-RPC call, with its classified `outcome`."""

    def __init__(self, outcome: Outcome, detail: str, code: int | None = None) -> None:
        self.outcome = outcome
        self.detail = detail
        self.code = code
        super().__init__(f"{outcome.value}: {detail}")


def classify_http_status(status: int) -> Outcome:
    """The outcome of a non-200 HTTP status."""
    if status == 503:
        return Outcome.HTTP_503
    if status == 429:
        return Outcome.HTTP_429
    if status >= 500:
        return Outcome.HTTP_5XX
    return Outcome.HTTP_4XX


def classify_rpc_error(error: Any) -> tuple[Outcome, int | None]:
    """The outcome of a JSON-RPC ``error`` member (by code, and message where codes are shared)."""
    if not isinstance(error, dict):
        return Outcome.MALFORMED, None
    code = error.get("code")
    message = str(error.get("message", "")).lower()
    if "header not found" in message or "unknown block" in message:
        return Outcome.HEADER_NOT_FOUND, code
    if code == -32005 or "rate limit" in message or "too many requests" in message:
        return Outcome.RATE_LIMITED, code
    return Outcome.RPC_ERROR, code


def error_class(error: Any) -> str:
    """The class of a JSON-RPC ``error`` member as the recorder counts it: the `Outcome`,
    and for a plain `Outcome.RPC_ERROR` its code too (``rpc_error:-32602``), so that a
    report tells invalid params from execution reverts from a node's internal errors."""
    outcome, code = classify_rpc_error(error)
    if outcome is Outcome.RPC_ERROR and isinstance(code, int) and not isinstance(code, bool):
        return f"{outcome.value}:{code}"
    return outcome.value


def classify_exception(exc: BaseException) -> Outcome:
    """The outcome of a transport-level exception."""
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.CONNECT_REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return Outcome.RESET
    if isinstance(exc, TimeoutError | socket.timeout):
        return Outcome.TIMEOUT
    if isinstance(exc, http.client.HTTPException):
        return Outcome.MALFORMED
    return Outcome.NETWORK


def parse_response(status: int, body: bytes, request_id: int) -> Any:
    """The ``result`` of one HTTP response to a single JSON-RPC request, or `RpcFailure`."""
    if status != 200:
        raise RpcFailure(classify_http_status(status), f"HTTP {status}", status)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise RpcFailure(Outcome.MALFORMED, f"body is not JSON: {body[:80]!r}") from exc
    if not isinstance(doc, dict):
        raise RpcFailure(Outcome.MALFORMED, f"body is not a JSON-RPC object: {body[:80]!r}")
    if "error" in doc and doc["error"] is not None:
        outcome, code = classify_rpc_error(doc["error"])
        raise RpcFailure(outcome, json.dumps(doc["error"])[:200], code)
    if doc.get("id") != request_id:
        raise RpcFailure(Outcome.WRONG_ID, f"id {doc.get('id')!r} != {request_id}")
    if "result" not in doc:
        raise RpcFailure(Outcome.MALFORMED, "neither result nor error in response")
    return doc["result"]


@dataclass
class RpcClient:
    """A keep-alive JSON-RPC client for one endpoint; not thread-safe (one per thread)."""

    url: str
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported, got {self.url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = parts.path or "/"
        self._conn: http.client.HTTPConnection | None = None
        self._next_id = 1

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """Call ``method`` and return its result; raises `RpcFailure` on any failure."""
        request_id = self._next_id
        self._next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}
        ).encode()
        try:
            conn = self._connection()
            conn.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            status = response.status
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RpcFailure(classify_exception(exc), f"{type(exc).__name__}: {exc}") from exc
        return parse_response(status, payload, request_id)

    def block_number(self) -> int:
        """The endpoint's head block number."""
        return int(self.call("eth_blockNumber"), 16)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        return self._conn

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
