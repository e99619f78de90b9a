"""The fault proxy as its own process.

    python -m harness.proxy --control 127.0.0.1:PORT [--listen ADDRESS] \
        --route LISTEN=HOST:PORT [--route ...]

The routes listen on 127.0.0.1 unless ``--listen`` names another address of this host: the
docker stack's bridge gateway, where HAProxy in its container reaches them. The control API
stays on loopback.

Prints one line, ``{"ready": true, "control": "http://HOST:PORT/"}``, on stdout once every
port listens, and nothing else there (logs go to stderr). Exits 0 on SIGTERM or SIGINT;
on a bad argument prints one line naming it on stderr and exits 2.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.proxy.control import ControlServer
from harness.proxy.server import FaultProxy, RouteSpec

log = logging.getLogger("harness.proxy")

USAGE = (
    "usage: python -m harness.proxy --control HOST:PORT [--listen ADDRESS] "
    "--route LISTEN_PORT=HOST:PORT [--route ...] [--log-level LEVEL]"
)


@dataclass(frozen=True)
class ProxyConfig:
    control_host: str
    control_port: int
    routes: tuple[RouteSpec, ...]
    log_level: str = "WARNING"
    listen_host: str = "127.0.0.1"


def _port(field: str, text: str, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not text.isdigit() or not low <= int(text) <= 65535:
        raise ConfigError(field, text, f"need a port number from {low} to 65535")
    return int(text)


def _host_port(field: str, text: str, *, allow_zero: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ConfigError(field, text, "write HOST:PORT, e.g. 127.0.0.1:8545")
    return host, _port(field, port, allow_zero=allow_zero)


def _listen_address(text: str) -> str:
    """A loopback or private address: routes are for our own HAProxy, never the world."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError("--listen", text, "give an IP address, e.g. 127.0.0.1") from None
    if address.is_unspecified or not (address.is_loopback or address.is_private):
        raise ConfigError(
            "--listen", text, "listen on loopback or a private address of this host only"
        )
    return text


def parse_args(argv: Sequence[str]) -> ProxyConfig:
    """The configuration in ``argv``; ConfigError naming the first bad option."""
    control: tuple[str, int] | None = None
    routes: list[RouteSpec] = []
    log_level = "WARNING"
    listen_host = "127.0.0.1"
    args = list(argv)
    i = 0
    while i < len(args):
        option = args[i]
        name, eq, inline = option.partition("=")
        if name not in ("--control", "--listen", "--route", "--log-level"):
            raise ConfigError("argument", option, USAGE)
        if eq:
            value = inline
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            raise ConfigError(name, None, f"needs a value; {USAGE}")
        if name == "--control":
            control = _host_port("--control", value, allow_zero=True)
            try:
                loopback = ipaddress.ip_address(control[0]).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ConfigError("--control", value, "bind it to a loopback IP such as 127.0.0.1")
        elif name == "--listen":
            listen_host = _listen_address(value)
        elif name == "--route":
            listen, sep, upstream = value.partition("=")
            if not sep:
                raise ConfigError("--route", value, "write LISTEN_PORT=HOST:PORT, e.g. 8545=...")
            port = _port("--route", listen, allow_zero=False)
            host, upstream_port = _host_port("--route", upstream, allow_zero=False)
            if any(r.listen_port == port for r in routes):
                raise ConfigError("--route", value, f"listen port {port} is given twice")
            routes.append(RouteSpec(port, host, upstream_port))
        else:
            level = value.upper()
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                raise ConfigError("--log-level", value, "use DEBUG, INFO, WARNING or ERROR")
            log_level = level
    if control is None:
        raise ConfigError("--control", None, f"is required; {USAGE}")
    if not routes:
        raise ConfigError("--route", None, f"give at least one; {USAGE}")
    if control[1] in {r.listen_port for r in routes}:
        raise ConfigError("--control", f"{control[0]}:{control[1]}", "is also a route's port")
    return ProxyConfig(control[0], control[1], tuple(routes), log_level, listen_host)


async def serve(config: ProxyConfig) -> None:
    """Run until SIGTERM or SIGINT; prints the ready line once listening."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    proxy = FaultProxy(config.routes)
    control = ControlServer(proxy)
    await proxy.start(config.listen_host)
    try:
        port = await control.start(config.control_host, config.control_port)
        url = f"http://{config.control_host}:{port}/"
        sys.stdout.write(json.dumps({"ready": True, "control": url}) + "\n")
        sys.stdout.flush()
        log.info(
            "proxying %s",
            ", ".join(
                f"{r.listen_port}->{r.upstream_host}:{r.upstream_port}" for r in config.routes
            ),
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await control.close()
        await proxy.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        config = parse_args(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s proxy %(levelname)s %(message)s",
    )
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # the standard loop works, only slower
        runner = asyncio.run
    try:
        runner(serve(config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
