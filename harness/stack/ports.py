"""Ports for the stack's listeners, picked where no outgoing connection can take them.

A port the kernel hands out for ``bind(host, 0)`` comes from the ephemeral range, the same
range it draws every outgoing connection's source port from. Between our pick and HAProxy's
bind, any connect() on the machine (a load worker, a probe, a test) can take it, and HAProxy
then exits with "Address already in use" (CI saw this once in ~1,650 tests). Ports below the
ephemeral range are only ever taken by a listener, so we pick there, at random, check that
the port binds, and do not hand the same one out twice in a process while it may still be
on its way to its listener.
"""

from __future__ import annotations

import errno
import functools
import random
import socket
import threading
from collections import deque
from pathlib import Path

from harness.errors import ConfigError

LOOPBACK = "127.0.0.1"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20000  # above the well-known and most registered services' ports
_TRIES = 200

_handed_out: deque[int] = deque(maxlen=4000)  # recent picks: each is bound within seconds
_lock = threading.Lock()


@functools.cache  # read once: a stack picks a dozen ports
def listener_range(path: Path = EPHEMERAL_RANGE) -> range:
    """The ports below the kernel's ephemeral range, where only listeners live."""
    try:
        low = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    if low - LOWEST < 1000:  # an ephemeral range that starts low: fall back to the kernel
        return range(0)
    return range(LOWEST, low)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now, outside the ephemeral range when it can be."""
    ports = listener_range()
    with _lock:
        for _ in range(_TRIES if ports else 0):
            port = random.choice(ports)
            if port not in _handed_out and _binds(host, port):
                _handed_out.append(port)
                return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        _handed_out.append(port)
        return port


def require_free_port(port: int, field: str, host: str = LOOPBACK) -> int:
    """``port`` if it can be bound, else a `ConfigError` saying it is taken and what to do."""
    try:
        _bind(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                field, port, "the port is already in use; choose another or omit it"
            ) from exc
        raise
    return port


def _binds(host: str, port: int) -> bool:
    try:
        _bind(host, port)
    except OSError:
        return False
    return True


def _bind(host: str, port: int) -> None:
    """Bind ``port`` and let it go: `OSError` when it cannot be had."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, port))
