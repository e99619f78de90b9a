"""The wire's own account of HTTP exchanges on loopback: the latency benchmarks' arbiter.

`WireCapture` reads every TCP packet on ``lo`` to or from one port through an AF_PACKET
socket with kernel receive timestamps (``SO_TIMESTAMPNS``) and pairs, per client
connection, the first packet of each request with the last packet of its answer. That is
the latency of each exchange as the network saw it, whoever sent it and however busy the
sender was, measured by none of the code under test. Needs root (CAP_NET_RAW); keep-alive
HTTP/1.1 without pipelining, which is what every client here speaks.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # on lo every packet is seen twice; the incoming copy is kept
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("qq")


@dataclass
class Exchange:
    """One request and its answer on one connection, in CLOCK_REALTIME nanoseconds."""

    client_port: int
    request_ns: int
    answer_ns: int

    @property
    def latency_us(self) -> float:
        return (self.answer_ns - self.request_ns) / 1000


@dataclass
class _Connection:
    request_ns: int = 0
    answer_ns: int = 0  # the last answer packet so far; 0: none yet


@dataclass
class WireCapture:
    """Captures exchanges with the server at ``port`` for the length of a ``with`` block."""

    port: int
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._connections: dict[int, _Connection] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._capture, daemon=True)

    def __enter__(self) -> WireCapture:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.05)  # the last answers' packets
        self._stop.set()
        self._thread.join()
        self._sock.close()
        for port, conn in self._connections.items():
            if conn.answer_ns:
                self.exchanges.append(Exchange(port, conn.request_ns, conn.answer_ns))
        self._connections.clear()

    def between(self, start_realtime_ns: int, end_realtime_ns: int) -> list[Exchange]:
        """The exchanges whose request went out in [start, end)."""
        return [e for e in self.exchanges if start_realtime_ns <= e.request_ns < end_realtime_ns]

    def _capture(self) -> None:
        port = self.port
        while not self._stop.is_set():
            try:
                frame, ancillary, _flags, address = self._sock.recvmsg(65536 + 64, 64)
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING or len(frame) < 54 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            if ip[9] != 6:  # not TCP
                continue
            ip_header = (ip[0] & 0x0F) * 4
            total = int.from_bytes(ip[2:4], "big")
            tcp = ip[ip_header:total]
            source, destination = int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big")
            if port not in (source, destination):
                continue
            if len(tcp) <= (tcp[12] >> 4) * 4:  # no payload: an ACK, SYN or FIN
                continue
            stamp = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                    stamp = seconds * 1_000_000_000 + nanoseconds
            if not stamp:
                stamp = time.time_ns()
            if destination == port:  # from a client
                conn = self._connections.setdefault(source, _Connection())
                if conn.answer_ns:  # a new request: the previous exchange is complete
                    self.exchanges.append(Exchange(source, conn.request_ns, conn.answer_ns))
                    conn.answer_ns = 0
                    conn.request_ns = stamp
                elif not conn.request_ns:
                    conn.request_ns = stamp
            else:
                conn = self._connections.get(destination) or _Connection()
                if conn.request_ns:
                    conn.answer_ns = stamp
