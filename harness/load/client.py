"""A keep-alive HTTP/1.1 JSON-RPC client for the load generator, timed by the kernel.

Why not Locust's FastHttpUser client: its path (geventhttpclient and Locust's response
wrapper) costs 150-250 us per request on a small machine, and a gevent worker notices an
answer tens of us after it arrived; both were counted as the system's latency
(``bench/latency_fidelity.py`` measured the harness's p50 at 1.9x an independent measurer).
This client writes one prebuilt request and reads the answer with ``recvmsg``, asking the
kernel when the answer's last bytes arrived (``SO_TIMESTAMPNS``): a latency is then the
system's, not the load generator's scheduling. Where the kernel gives no timestamp, the time
of the read is used, and `Answer.kernel_timed` says so.

Blocking sockets only: in a Locust worker gevent has patched ``socket``, so a wait here
yields to the other users.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.proxy.http1 import ChunkedReader, HttpError, parse_response_head

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python names it from 3.12 on
_ANCILLARY_BYTES = socket.CMSG_SPACE(16)
_RECV_BYTES = 256 * 1024
_TIMESPEC = struct.Struct("qq")


class BadResponse(http.client.HTTPException):
    """The answer is not HTTP/1.1 we can frame (the outcome is ``malformed``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, with when its request left and when its last byte arrived."""

    status: int
    body: bytes
    sent_ns: int  # time.monotonic_ns() just before the request was written
    answered_ns: int  # the arrival of the last byte, on the same clock
    kernel_timed: bool  # answered_ns is the kernel's receive time, not our read's


class RpcConnection:
    """POSTs JSON-RPC bodies to one URL over one keep-alive connection, reconnecting as needed.

    An idle keep-alive connection the server has closed is noticed on the next request
    (nothing comes back on a reused connection); that request is sent once more on a fresh
    connection, as every HTTP client does. Any other failure raises: ``OSError`` for the
    transport (refused, reset, timed out), `BadResponse` for an answer that cannot be framed.
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {url!r}")
        self._address = (parts.hostname, parts.port or 80)
        self._timeout_s = timeout_s
        host = parts.netloc.encode()
        path = (parts.path or "/").encode()
        self._head = (
            b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
        )
        self._sock: socket.socket | None = None
        self._reused = False
        self.kernel_timestamps = True  # until the kernel says otherwise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def post(self, body: bytes) -> Answer:
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        try:
            return self._exchange(request)
        except _StaleConnection:
            self.close()
            return self._exchange(request)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            self.kernel_timestamps = False
        self._sock = sock
        self._reused = False
        return sock

    def _exchange(self, request: bytes) -> Answer:
        sock = self._sock or self._connect()
        reused = self._reused
        self._reused = True
        deadline = time.monotonic() + self._timeout_s
        try:
            sent_ns = time.monotonic_ns()
            self._send(sock, request)
            status, body, keep_alive, arrived_realtime_ns = self._read(sock, deadline, reused)
        except BaseException:
            self.close()
            raise
        now_ns = time.monotonic_ns()
        answered_ns = now_ns
        kernel_timed = False
        if arrived_realtime_ns:
            # The kernel stamps with CLOCK_REALTIME; convert with an offset read right now,
            # so that a clock step or slew since the last request costs nothing.
            arrived = arrived_realtime_ns - (time.time_ns() - time.monotonic_ns())
            if sent_ns <= arrived <= now_ns:
                answered_ns, kernel_timed = arrived, True
        if not keep_alive:
            self.close()
        return Answer(status, body, sent_ns, answered_ns, kernel_timed)

    @staticmethod
    def _send(sock: socket.socket, request: bytes) -> None:
        """Write the request straight to the socket: a request fits its send buffer, so the
        one system call is all it takes, without the tens of microseconds of Python that
        gevent's ``sendall`` spends first (the request's time starts before this call)."""
        try:
            written = os.write(sock.fileno(), request)
        except BlockingIOError:
            written = 0
        if written < len(request):
            sock.sendall(request[written:])

    def _recv(self, sock: socket.socket, deadline: float) -> tuple[bytes, int]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete answer within {self._timeout_s:g}s")
        sock.settimeout(remaining)
        data, ancillary, _flags, _address = sock.recvmsg(_RECV_BYTES, _ANCILLARY_BYTES)
        stamp = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                stamp = seconds * 1_000_000_000 + nanoseconds
        return data, stamp

    def _read(
        self, sock: socket.socket, deadline: float, reused: bool
    ) -> tuple[int, bytes, bool, int]:
        """Status, body, whether the connection stays open, and the last byte's kernel time."""
        buf = bytearray()
        stamp = 0
        while True:
            data, stamp = self._recv(sock, deadline)
            if not data:
                if not buf and reused:
                    raise _StaleConnection
                raise ConnectionResetError("the server closed the connection mid-answer")
            buf += data
            try:
                head = parse_response_head(buf, b"POST")
            except HttpError as exc:
                raise BadResponse(str(exc)) from None
            if head is not None:
                break
        if 100 <= head.status < 200:
            raise BadResponse(f"unexpected interim response {head.status}")
        length = head.content_length
        if length >= 0:
            end = head.size + length
            while len(buf) < end:
                data, stamp = self._recv(sock, deadline)
                if not data:
                    raise ConnectionResetError("the server closed the connection mid-body")
                buf += data
            return head.status, bytes(buf[head.size : end]), head.keep_alive, stamp
        if length == -1:
            reader = ChunkedReader(collect=True)
            pending = bytes(buf[head.size :])
            try:
                while reader.feed(pending) < 0:
                    pending, stamp = self._recv(sock, deadline)
                    if not pending:
                        raise ConnectionResetError("the server closed the connection mid-body")
            except HttpError as exc:
                raise BadResponse(str(exc)) from None
            assert reader.collected is not None
            return head.status, bytes(reader.collected), head.keep_alive, stamp
        # Framed by the close of the connection.
        while True:
            data, last = self._recv(sock, deadline)
            if not data:
                return head.status, bytes(buf[head.size :]), False, stamp
            buf += data
            stamp = last


class _StaleConnection(Exception):
    """A reused keep-alive connection the server had already closed."""
