"""The fault proxy's data path: client connections, upstream pools, faults on the way.

One `FaultProxy` listens on one port per route and forwards HTTP/1.1 to that route's node
over a pool of keep-alive connections. With no rule on a route, an exchange takes the
pass-through path: the request is forwarded as received and the response is streamed back
as it arrives, parsed only for its framing. With rules, it takes the fault path: request
and response are buffered, `harness.proxy.rpc` rewrites them and `harness.proxy.toxics`
plans how their bytes are delivered. Rules come and go through `add_rule`/`remove_rule`
(the control API in `harness.proxy.control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, cast

from harness.errors import ConfigError
from harness.proxy.http1 import (
    MAX_BODY_BYTES,
    ChunkedReader,
    HttpError,
    RequestHead,
    ResponseHead,
    client_head,
    dechunk,
    first_last_nonblank,
    looks_like_json,
    parse_request_head,
    parse_response_head,
    proxy_response_head,
    reframed_head,
    simple_response,
)
from harness.proxy.rpc import (
    Answer,
    RequestPlan,
    TokenBuckets,
    dumps,
    rewrite_request,
    rewrite_response,
)
from harness.proxy.rules import RPC_KINDS, Rule
from harness.proxy.toxics import PLAIN, Delivery, plan_delivery, roll

log = logging.getLogger(__name__)

HEAD_CACHE_NS = 100_000_000  # stale_head reads the node's head at most every 100 ms
MAX_IDLE_PER_ROUTE = 256
PAUSE_READING_BYTES = 1024 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_REQUEST = b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}'
_LINGER_RST = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class RouteSpec:
    """One listen port on 127.0.0.1 and the node behind it."""

    listen_port: int
    upstream_host: str
    upstream_port: int


class RouteStats:
    """Counters of one route, as ``GET /stats`` shows them."""

    __slots__ = (
        "client_connections",
        "faulted",
        "non_json_bodies",
        "passed_through",
        "requests",
        "upstream_connections",
        "upstream_errors",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.passed_through = 0
        self.faulted: dict[str, int] = {}
        self.non_json_bodies = 0
        self.upstream_errors = 0
        self.upstream_connections = 0
        self.client_connections = 0

    def count_faults(self, rule_ids: Iterable[str]) -> None:
        for rule_id in rule_ids:
            self.faulted[rule_id] = self.faulted.get(rule_id, 0) + 1

    def to_doc(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}


class UpstreamError(Exception):
    """The node could not be reached, or broke off before its answer was complete."""

    def __init__(self, detail: str, *, started: bool, reused: bool) -> None:
        super().__init__(detail)
        self.started = started  # some of the answer had arrived (nothing may be retried)
        self.reused = reused  # the connection had served an earlier request


class ResponseSink:
    """Where an `UpstreamConn` puts one response."""

    def response_head(self, head: ResponseHead) -> bytes | None:
        """The head to emit in place of the one received (b"": none), or None to keep it."""
        return None

    def response_data(self, data: bytes) -> None:
        raise NotImplementedError

    def response_end(self) -> None:
        raise NotImplementedError

    def response_failed(self, error: UpstreamError) -> None:
        raise NotImplementedError


class Collector(ResponseSink):
    """A sink that buffers one response for the fault path."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.head: ResponseHead | None = None
        self.raw = bytearray()

    def response_head(self, head: ResponseHead) -> bytes | None:
        self.head = head
        return b""

    def response_data(self, data: bytes) -> None:
        self.raw += data

    def response_end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def response_failed(self, error: UpstreamError) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def body(self) -> bytes:
        assert self.head is not None
        return dechunk(bytes(self.raw)) if self.head.chunked else bytes(self.raw)


class UpstreamConn(asyncio.Protocol):
    """One keep-alive connection to a route's node; parses responses for their framing."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.reused = False
        self.closed = False
        self._method = b"POST"
        self._buf = bytearray()
        self._head: ResponseHead | None = None
        self._remaining = 0
        self._chunks: ChunkedReader | None = None
        self._first = -1
        self._last = -1
        self._started = False
        self._paused = False

    # -- driven by the exchange --------------------------------------------------------
    def begin(self, sink: ResponseSink, method: bytes, request: bytes | None) -> None:
        """Expect one response for ``sink``; write ``request`` when given."""
        self.sink = sink
        self._method = method
        self._started = False
        if request is not None:
            assert self.transport is not None
            self.transport.write(request)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def detach(self) -> None:
        """The client is gone: read the rest of the response into nothing, then rejoin."""
        self.sink = _DISCARD
        self.pause(False)

    def pause(self, paused: bool) -> None:
        if self.transport is None or self.closed or paused == self._paused:
            return
        self._paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def give_up(self, *, slowly: bool = False) -> None:
        """End the exchange from the proxy's side: no sink hears of it, nothing is counted."""
        self.sink = None
        self._head = None
        if slowly:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Close, after the route's upstream slow_close delay if one fires."""
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if transport is None:
            return
        delay_s = self.route.slow_close_s("upstream")
        if delay_s:
            asyncio.get_running_loop().call_later(delay_s, transport.close)
        else:
            transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # an idle connection is not spoken to; whatever this is, end it
            self.close()
            return
        self._started = True
        head = self._head
        if head is None:
            if self._buf:
                self._buf += data
                data = bytes(self._buf)
                self._buf.clear()
            try:
                head = parse_response_head(data, self._method)
            except HttpError as exc:
                self._fail(str(exc))
                return
            if head is None:
                self._buf += data
                return
            if 100 <= head.status < 200:  # interim responses are the proxy's business
                rest = data[head.size :]
                if rest:
                    self.data_received(rest)
                return
            self._head = head
            self._first = self._last = -1
            self._remaining = head.content_length
            self._chunks = ChunkedReader() if head.content_length == -1 else None
            replacement = sink.response_head(head)
            if replacement is None:  # the head goes out as it came, with what follows it
                self._body(data, head.size, 0, b"")
            else:
                self._body(data, head.size, head.size, replacement)
            return
        self._body(data, 0, 0, b"")

    def _body(self, data: bytes, pos: int, emit_from: int, prefix: bytes) -> None:
        """Account for the body bytes ``data[pos:]`` and emit ``prefix + data[emit_from:end]``
        where ``end`` is the end of the response."""
        head = self._head
        sink = self.sink
        assert head is not None and sink is not None
        n = len(data)
        remaining = self._remaining
        if remaining >= 0:  # Content-Length (0: no body)
            end = pos + min(remaining, n - pos)
            self._remaining = remaining - (end - pos)
            done = self._remaining == 0
        elif remaining == -1:  # chunked
            assert self._chunks is not None
            found = self._chunks.feed(data, pos)
            done = found >= 0
            end = found if done else n
        else:  # until the node closes the connection
            end = n
            done = False
        if end > pos and remaining != -1:
            first, last = first_last_nonblank(data, pos, end)
            if first >= 0:
                if self._first < 0:
                    self._first = first
                self._last = last
        if emit_from == 0 and end == n and not prefix:
            sink.response_data(data)
        elif end > emit_from or prefix:
            sink.response_data(prefix + data[emit_from:end])
        if end < n:  # bytes after the response: the node broke the protocol
            self._finish(keep=False)
        elif done:
            self._finish(keep=head.keep_alive)

    def _finish(self, *, keep: bool) -> None:
        head = self._head
        sink = self.sink
        assert head is not None and sink is not None
        chunks = self._chunks
        if chunks is not None:
            first, last = chunks.first, chunks.last
        else:
            first, last = self._first, self._last
        if head.content_length != 0 and not looks_like_json(first, last):
            self.route.stats.non_json_bodies += 1
        self._head = None
        self._chunks = None
        self.sink = None
        if self._paused:
            self.pause(False)
        if keep and not self.closed:
            self.reused = True
            self.route.release(self)
        else:
            self.close()
        sink.response_end()

    def _fail(self, detail: str) -> None:
        sink = self.sink
        self.sink = None
        self._head = None
        self.abort()
        if sink is not None and sink is not _DISCARD:
            self.route.stats.upstream_errors += 1
            sink.response_failed(UpstreamError(detail, started=self._started, reused=self.reused))

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.route.forget(self)
        head = self._head
        if self.sink is None:
            return
        if head is not None and head.content_length == -2:  # the close ends the body
            self._finish(keep=False)
            return
        self._fail(f"the node closed the connection{f': {exc}' if exc else ''}")


class _Discard(ResponseSink):
    def response_data(self, data: bytes) -> None:
        pass

    def response_end(self) -> None:
        pass

    def response_failed(self, error: UpstreamError) -> None:
        pass


_DISCARD = _Discard()


class Route:
    """One listen port: its node, its pool of idle connections, its rules and counters."""

    def __init__(self, proxy: FaultProxy, spec: RouteSpec) -> None:
        self.proxy = proxy
        self.spec = spec
        self.port = spec.listen_port
        self.stats = RouteStats()
        self.idle: list[UpstreamConn] = []
        self.clients: set[ClientConn] = set()
        self.busy: set[UpstreamConn] = set()
        self.faulty = False  # some rule may touch an exchange: take the fault path
        self.rpc_rules: tuple[Rule, ...] = ()
        self.stream_rules: dict[str, tuple[Rule, ...]] = {"upstream": (), "downstream": ()}
        self.slow_close: dict[str, tuple[Rule, ...]] = {"upstream": (), "downstream": ()}
        self.has_stale_head = False
        self._head: int | None = None
        self._head_at_ns = 0
        self._head_fetch: asyncio.Task[int | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task that is kept referenced until it is done (the loop holds only weak ones)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def set_rules(self, rules: Iterable[Rule]) -> None:
        mine = [r for r in rules if r.applies_to(self.port)]
        self.rpc_rules = tuple(r for r in mine if r.kind in RPC_KINDS)
        for stream in ("upstream", "downstream"):
            self.stream_rules[stream] = tuple(
                r for r in mine if r.is_transport and r.kind != "slow_close" and r.stream == stream
            )
            self.slow_close[stream] = tuple(
                r for r in mine if r.kind == "slow_close" and r.stream == stream
            )
        self.has_stale_head = any(r.kind == "stale_head" for r in self.rpc_rules)
        self.faulty = bool(
            self.rpc_rules or self.stream_rules["upstream"] or self.stream_rules["downstream"]
        )

    def slow_close_s(self, stream: str) -> float:
        """The delay of a close towards ``stream``'s side, from the slow_close rules that fire."""
        rng = self.proxy.rng
        for rule in self.slow_close[stream]:
            if rule.probability >= 1.0 or rng.random() < rule.probability:
                self.stats.count_faults((rule.id,))
                return rule.num("delay") / 1000.0
        return 0.0

    # -- the pool ------------------------------------------------------------------------
    def acquire(self) -> UpstreamConn | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self.busy.add(conn)
                return conn
        return None

    def release(self, conn: UpstreamConn) -> None:
        self.busy.discard(conn)
        if len(self.idle) < MAX_IDLE_PER_ROUTE:
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConn) -> None:
        self.busy.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    async def connect(self) -> UpstreamConn:
        """A new connection to the node; UpstreamError (counted) when it cannot be had."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: UpstreamConn(self), self.spec.upstream_host, self.spec.upstream_port
            )
        except OSError as exc:
            self.stats.upstream_errors += 1
            raise UpstreamError(
                f"cannot connect to {self.upstream}: {exc}", started=False, reused=False
            ) from exc
        self.stats.upstream_connections += 1
        self.busy.add(conn)
        return conn

    async def get(self) -> UpstreamConn:
        return self.acquire() or await self.connect()

    @property
    def upstream(self) -> str:
        return f"{self.spec.upstream_host}:{self.spec.upstream_port}"

    async def roundtrip(self, request: bytes, method: bytes) -> tuple[ResponseHead, bytes]:
        """Send ``request`` and buffer the answer; one retry when a reused connection
        turns out to be closed before any of the answer arrived."""
        for attempt in (1, 2):
            conn = await self.get()
            collector = Collector(asyncio.get_running_loop())
            conn.begin(collector, method, request)
            try:
                await collector.done
            except UpstreamError as exc:
                if attempt == 1 and exc.reused and not exc.started:
                    self.stats.upstream_errors -= 1  # a stale pooled connection, not the node
                    continue
                raise
            except BaseException:
                conn.give_up()
                raise
            assert collector.head is not None
            return collector.head, collector.body()
        raise AssertionError("unreachable")

    # -- the node's head, for stale_head -------------------------------------------------
    def cached_head(self) -> int | None:
        """The node's head block if read in the last ~100 ms, else None."""
        if self._head is not None and time.monotonic_ns() - self._head_at_ns < HEAD_CACHE_NS:
            return self._head
        return None

    async def node_head(self) -> int | None:
        """The node's head block (cached ~100 ms); None when the node cannot say."""
        head = self.cached_head()
        if head is not None:
            return head
        if self._head_fetch is None:
            self._head_fetch = asyncio.get_running_loop().create_task(self._fetch_head())
        return await asyncio.shield(self._head_fetch)

    async def _fetch_head(self) -> int | None:
        try:
            request = (
                b"POST / HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s"
                % (self.upstream.encode(), len(_HEAD_REQUEST), _HEAD_REQUEST)
            )
            _, body = await self.roundtrip(request, b"POST")
            head = int(json.loads(body)["result"], 16)
        except (UpstreamError, HttpError, ValueError, KeyError, TypeError) as exc:
            log.warning("route %d: cannot read the node's head: %s", self.port, exc)
            return None
        finally:
            self._head_fetch = None
        self._head, self._head_at_ns = head, time.monotonic_ns()
        return head

    def close(self) -> None:
        for client in list(self.clients):
            client.abort()
        for conn in [*self.idle, *self.busy]:
            conn.abort()
        self.idle.clear()
        self.busy.clear()


class ClientConn(asyncio.Protocol, ResponseSink):
    """One client connection: parses requests, runs one exchange at a time, in order."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._busy = False
        self._closed = False
        self._eof = False
        self._keep_alive = True
        self._close_after = False
        self._upstream: UpstreamConn | None = None
        self._request = b""
        self._method = b"POST"
        self._retried = False
        self._continued = False
        self._pending_chunks: tuple[RequestHead, ChunkedReader, int] | None = None
        self._write_paused = False
        self._read_paused = False
        self._task: asyncio.Task[None] | None = None
        self.sent: dict[str, int] = {}  # limit_data: bytes per rule on this connection
        self.sticky: dict[str, bool] = {}  # limit_data: toxicity rolled once per connection

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.route.clients.add(self)
        self.route.stats.client_connections += 1

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._busy or self._buf:
            self._buf += data
            if self._busy:
                if len(self._buf) > PAUSE_READING_BYTES and not self._read_paused:
                    self._read_paused = True
                    assert self.transport is not None
                    self.transport.pause_reading()
                return
            self._next(self._buf)
        else:
            self._next(data)

    def eof_received(self) -> bool:
        self._eof = True
        if not self._busy:
            self.close()
        return True  # half-open: an exchange in flight still gets its answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.route.clients.discard(self)
        if self._upstream is not None:
            self._upstream.detach()
            self._upstream = None
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._upstream is not None:
            self._upstream.pause(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._upstream is not None:
            self._upstream.pause(False)

    # -- requests ------------------------------------------------------------------------
    def _next(self, buf: bytes | bytearray) -> None:
        """Start the request at the start of ``buf`` (data or self._buf) when it is whole."""
        try:
            if self._pending_chunks is not None:
                req, reader, pos = self._pending_chunks
                end = reader.feed(buf, pos)
                if end < 0:
                    self._pending_chunks = (req, reader, len(buf))
                    self._keep(buf)
                    return
                self._pending_chunks = None
            else:
                parsed = parse_request_head(buf)
                if parsed is None:
                    self._keep(buf)
                    return
                req = parsed
                if req.content_length >= 0:
                    end = req.size + req.content_length
                else:
                    reader = ChunkedReader()
                    end = reader.feed(buf, req.size)
                    if end < 0:
                        self._pending_chunks = (req, reader, len(buf))
                if end < 0 or len(buf) < end:
                    if req.expect_continue and not self._continued and self.transport:
                        self._continued = True
                        self.transport.write(_CONTINUE)
                    self._keep(buf)
                    return
        except HttpError as exc:
            self._refuse(exc)
            return
        if buf is self._buf:
            message = bytes(memoryview(buf)[:end])
            del buf[:end]
        elif end == len(buf):
            message = bytes(buf)
        else:
            message = bytes(buf[:end])
            self._buf += buf[end:]
        self._start(req, message)

    def _keep(self, buf: bytes | bytearray) -> None:
        if buf is not self._buf:
            self._buf += buf
        if len(self._buf) > MAX_BODY_BYTES + 65536:
            self._refuse(HttpError(413, "request too large"))

    def _refuse(self, exc: HttpError) -> None:
        body = dumps({"error": exc.reason})
        self._closed = True
        if self.transport is not None:
            self.transport.write(simple_response(exc.status, body, close=True))
            self.transport.close()

    def _start(self, req: RequestHead, message: bytes) -> None:
        route = self.route
        self._busy = True
        self._continued = False
        self._keep_alive = req.keep_alive and not self._eof
        self._close_after = not self._keep_alive
        self._method = req.method
        route.stats.requests += 1
        if route.faulty or req.http10:
            # Decide now which rules fire; stream the exchanges none of them touches.
            rng = route.proxy.rng
            up = roll(route.stream_rules["upstream"], rng, self.sticky)
            down = roll(route.stream_rules["downstream"], rng, self.sticky)
            plan = None if req.http10 else self._plan(req, message)
            if plan is None or not plan.untouched or up or down:
                self._task = route.spawn(self._fault_exchange(req, message, plan, up, down))
                return
        route.stats.passed_through += 1
        if req.rewritten:
            message = req.head + message[req.size :]
        self._request = message
        self._retried = False
        conn = route.acquire()
        if conn is None:
            self.route.spawn(self._connect_and_send())
            return
        self._send(conn)

    def _plan(
        self, req: RequestHead, message: bytes, head: int | None = None, *, head_known: bool = False
    ) -> RequestPlan | None:
        """The JSON-RPC plan for this request; None when it needs a head not at hand
        (``head_known``: ``head`` is what the node said, even None)."""
        route = self.route
        if route.has_stale_head and not head_known:
            head = route.cached_head()
            if head is None:
                return None
        raw_body = message[req.size :]
        body = dechunk(raw_body) if req.content_length < 0 else raw_body
        return rewrite_request(
            body,
            route.rpc_rules,
            route.proxy.rng,
            head=head,
            allow=lambda rule: route.proxy.buckets.take(rule, route.port),
        )

    def _send(self, conn: UpstreamConn) -> None:
        self._upstream = conn
        if self._write_paused:
            conn.pause(True)
        conn.begin(self, self._method, self._request)

    async def _connect_and_send(self) -> None:
        try:
            conn = await self.route.connect()
        except UpstreamError as exc:
            self.response_failed(exc)
            return
        if self._closed:
            self.route.release(conn)
            return
        self._send(conn)

    # -- ResponseSink (the pass-through path) ----------------------------------------------
    def response_head(self, head: ResponseHead) -> bytes | None:
        if head.content_length == -2:
            self._close_after = True
        if head.hop_headers or self._close_after:
            return client_head(head, close=self._close_after)
        return None

    def response_data(self, data: bytes) -> None:
        if not self._closed:
            assert self.transport is not None
            self.transport.write(data)

    def response_end(self) -> None:
        self._upstream = None
        self._request = b""
        self._exchange_done()

    def response_failed(self, error: UpstreamError) -> None:
        self._upstream = None
        if self._closed:
            return
        if not error.started and error.reused and not self._retried:
            self._retried = True  # a pooled connection the node had closed: once more
            self.route.stats.upstream_errors -= 1
            conn = self.route.acquire()
            if conn is None:
                self.route.spawn(self._connect_and_send())
            else:
                self._send(conn)
            return
        if error.started:
            self.abort()  # part of the answer went out: the client must see the break
            return
        self._answer_bad_gateway(error)
        self._exchange_done()

    def _answer_bad_gateway(self, error: UpstreamError) -> None:
        body = dumps(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32603, "message": f"fault proxy: {error}"},
            }
        )
        assert self.transport is not None
        self.transport.write(simple_response(502, body, close=self._close_after))

    def _exchange_done(self) -> None:
        self._busy = False
        self._task = None
        if self._closed:
            return
        if self._close_after or (self._eof and not self._buf):
            self.close()
            return
        if self._read_paused:
            self._read_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        if self._buf:
            self._next(self._buf)

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Close after what was written, later if a downstream slow_close fires."""
        if self._closed:
            return
        self._closed = True
        transport = self.transport
        assert transport is not None
        delay_s = self.route.slow_close_s("downstream")
        if delay_s:
            asyncio.get_running_loop().call_later(delay_s, transport.close)
        else:
            transport.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as reset_peer does."""
        self._closed = True
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        transport.abort()

    # -- the fault path ------------------------------------------------------------------
    async def _fault_exchange(
        self,
        req: RequestHead,
        message: bytes,
        plan: RequestPlan | None,
        up_rules: tuple[Rule, ...],
        down_rules: tuple[Rule, ...],
    ) -> None:
        try:
            await self._faulted(req, message, plan, up_rules, down_rules)
        except asyncio.CancelledError:
            raise
        except HttpError as exc:
            self._refuse(exc)
        except Exception:
            log.exception("route %d: fault path failed", self.route.port)
            self.abort()
        else:
            self._exchange_done()

    async def _faulted(
        self,
        req: RequestHead,
        message: bytes,
        plan: RequestPlan | None,
        up_rules: tuple[Rule, ...],
        down_rules: tuple[Rule, ...],
    ) -> None:
        route = self.route
        rng = route.proxy.rng
        if plan is None:
            head = await route.node_head() if route.has_stale_head else None
            plan = self._plan(req, message, head, head_known=True)
            assert plan is not None
        fired = list(plan.fired)
        if plan.body_for_node is not None:
            to_node = plan.body_for_node
            request = reframed_head(req.head, len(to_node), close=False) + to_node
            up = plan_delivery(
                len(request), up_rules, rng, sent=self.sent, sticky=self.sticky, rolled=True
            )
            fired.extend(up.fired)
            try:
                result = await self._roundtrip(request, req.method, up)
            except UpstreamError as exc:
                route.stats.count_faults(fired)
                self._answer_bad_gateway(exc)
                return
            if result is None:  # an upstream toxic cut the exchange
                route.stats.count_faults(fired)
                return
            response, node_body = result
            answer = rewrite_response(plan, response.status, node_body)
            out_head = reframed_head(
                response.head,
                len(answer.body),
                close=self._close_after,
                status=answer.status if answer.status != response.status else 0,
            )
        else:
            answer = rewrite_response(plan, None, None)
            out_head = _synthetic_head(answer, close=self._close_after)
        route.stats.count_faults(fired)
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        payload = out_head + answer.body
        down = plan_delivery(
            len(payload), down_rules, rng, sent=self.sent, sticky=self.sticky, rolled=True
        )
        route.stats.count_faults(down.fired)
        if not fired and not down.fired:
            route.stats.passed_through += 1
        if answer.drop_after is not None:
            cut = len(out_head) + answer.drop_after
            down = replace(down, limit=cut if down.limit is None else min(cut, down.limit))
            if down.pieces:
                down = replace(down, pieces=tuple((min(e, cut), p) for e, p in down.pieces))
        assert self.transport is not None
        if not await self._deliver(self.transport.write, payload, down):
            return

    async def _roundtrip(
        self, request: bytes, method: bytes, up: Delivery
    ) -> tuple[ResponseHead, bytes] | None:
        """The node's answer to ``request`` sent under ``up``; None when ``up`` cut it."""
        route = self.route
        if up.plain:
            return await route.roundtrip(request, method)
        if up.hold is not None or up.reset is not None:  # nothing reaches the node yet
            if not await self._hold_or_reset(up):
                return None
            up = replace(up, hold=None, reset=None)
        conn = await route.get()
        collector = Collector(asyncio.get_running_loop())
        conn.begin(collector, method, None)
        try:
            if not await self._deliver(conn.write, request, up, upstream=conn):
                return None
            await collector.done
        except BaseException:
            conn.give_up()
            raise
        assert collector.head is not None
        return collector.head, collector.body()

    async def _hold_or_reset(self, delivery: Delivery) -> bool:
        """Carry out timeout and reset_peer; True when the flow may go on (rule removed)."""
        if delivery.reset is not None:
            await asyncio.sleep(delivery.reset.num("timeout") / 1000.0)
            self.reset()
            return False
        hold = delivery.hold
        assert hold is not None
        timeout_ms = hold.num("timeout")
        if await self.route.proxy.wait_removed(hold.id, timeout_ms / 1000.0 or None):
            return True
        self.abort_soft()
        return False

    def abort_soft(self) -> None:
        """Close the client connection as Toxiproxy's timeout does: a plain close."""
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    async def _deliver(
        self,
        write: Callable[[bytes], None],
        payload: bytes,
        delivery: Delivery,
        upstream: UpstreamConn | None = None,
    ) -> bool:
        """Write ``payload`` as ``delivery`` says; False when the flow was cut."""
        if delivery is PLAIN or (delivery.plain and delivery.limit is None):
            write(payload)
            return True
        if (delivery.hold is not None or delivery.reset is not None) and not (
            await self._hold_or_reset(delivery)
        ):
            return False
        if delivery.delay_s:
            await asyncio.sleep(delivery.delay_s)
        limit = len(payload) if delivery.limit is None else min(delivery.limit, len(payload))
        if delivery.pieces:
            start = 0
            view = memoryview(payload)
            for end, pause_s in delivery.pieces:
                if pause_s:
                    await asyncio.sleep(pause_s)
                if self._closed and upstream is None:
                    return False
                write(bytes(view[start:end]))
                start = end
            if start < limit:
                write(payload[start:limit])
        else:
            write(payload[:limit] if limit < len(payload) else payload)
        if limit < len(payload):  # limit_data or drop: cut, then close both sides
            if upstream is not None:
                upstream.give_up(slowly=True)
            self.close()
            return False
        return True


def _synthetic_head(answer: Answer, *, close: bool) -> bytes:
    extra = b"retry-after: 1\r\n" if answer.status == 429 else b""
    return proxy_response_head(answer.status, len(answer.body), close=close, extra=extra)


class FaultProxy:
    """All routes of one proxy process, their rules and counters."""

    def __init__(self, routes: Iterable[RouteSpec], *, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.buckets = TokenBuckets(time.monotonic_ns)
        self.routes = {spec.listen_port: Route(self, spec) for spec in routes}
        self._rules: dict[str, Rule] = {}
        self._removed: dict[str, asyncio.Event] = {}
        self._servers: list[asyncio.Server] = []

    async def start(self, host: str = "127.0.0.1") -> None:
        """Listen on every route's port; ConfigError naming the route that cannot."""
        loop = asyncio.get_running_loop()
        for port, route in self.routes.items():
            try:
                server = await loop.create_server(
                    functools.partial(ClientConn, route),
                    host,
                    port,
                    reuse_address=True,
                    backlog=1024,
                )
            except OSError as exc:
                await self.close()
                raise ConfigError(
                    "--route", f"{port}={route.upstream}", f"cannot listen: {exc}"
                ) from exc
            self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for route in self.routes.values():
            route.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()

    # -- rules ---------------------------------------------------------------------------
    def add_rule(self, rule: Rule) -> Rule:
        """Activate ``rule`` under a new id; ConfigError if its route is not one of ours."""
        if rule.route is not None and rule.route not in self.routes:
            ours = ", ".join(str(p) for p in self.routes)
            raise ConfigError(
                "route", rule.route, f"is not a route of this proxy; use {ours} or '*'"
            )
        rule = replace(rule, id=f"{rule.kind}-{secrets.token_hex(4)}")
        self._rules[rule.id] = rule
        self._removed[rule.id] = asyncio.Event()
        self._apply()
        return rule

    def remove_rule(self, rule_id: str) -> bool:
        """Deactivate one rule; False when there was none by that id."""
        if self._rules.pop(rule_id, None) is None:
            return False
        self._removed.pop(rule_id).set()
        self.buckets.forget(rule_id)
        self._apply()
        return True

    def clear_rules(self) -> int:
        count = len(self._rules)
        for rule_id in list(self._rules):
            self.remove_rule(rule_id)
        return count

    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    async def wait_removed(self, rule_id: str, timeout_s: float | None) -> bool:
        """Wait until the rule is removed (True) or ``timeout_s`` passes (False)."""
        event = self._removed.get(rule_id)
        if event is None:
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _apply(self) -> None:
        rules = list(self._rules.values())
        for route in self.routes.values():
            route.set_rules(rules)

    def stats(self) -> dict[str, Any]:
        return {
            "routes": {
                str(port): {"upstream": route.upstream, **route.stats.to_doc()}
                for port, route in self.routes.items()
            }
        }
