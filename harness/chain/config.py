"""The replicator process's command line, parsed into a `ReplicatorConfig`.

    python -m harness.chain --source URL --node NAME=URL [--node ...]
        --control HOST:PORT --log PATH [--delay-ms NAME=DELAY ...]
        [--lag-blocks NAME=N ...] [--log-level LEVEL]

A bad option is a `ConfigError` naming it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from harness.chain.delays import parse_delay
from harness.chain.replicator import FollowerSpec
from harness.chain.settings import NodeSettings
from harness.errors import ConfigError

USAGE = (
    "usage: python -m harness.chain --source URL --node NAME=URL [--node ...] "
    "--control HOST:PORT --log PATH [--delay-ms NAME=FIXED[,JITTER]] [--lag-blocks NAME=N] "
    "[--log-level LEVEL]"
)
OPTIONS = ("--source", "--node", "--control", "--log", "--delay-ms", "--lag-blocks", "--log-level")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ReplicatorConfig:
    source_url: str
    nodes: tuple[FollowerSpec, ...]
    control_host: str
    control_port: int
    log_path: Path
    log_level: str = "INFO"


def _url(field: str, text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(field, text, "give an http:// URL, e.g. http://127.0.0.1:8545/")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(field, text, "the port must be a number from 1 to 65535") from None
    return text


def _named(field: str, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not _NAME.fullmatch(name):
        raise ConfigError(field, text, "write NAME=VALUE; a name is letters, digits, . _ -")
    return name, value


def _control(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError("--control", text, "write HOST:PORT, e.g. 127.0.0.1:8600 (port 0 picks)")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError("--control", text, "bind it to a loopback IP such as 127.0.0.1")
    return host, int(port)


def parse_args(argv: Sequence[str]) -> ReplicatorConfig:
    """The configuration in ``argv``; `ConfigError` naming the first bad option."""
    values: dict[str, list[str]] = {option: [] for option in OPTIONS}
    args = list(argv)
    i = 0
    while i < len(args):
        option, eq, inline = args[i].partition("=")
        if option not in OPTIONS:
            raise ConfigError("argument", args[i], USAGE)
        if eq:
            values[option].append(inline)
            i += 1
        elif i + 1 < len(args):
            values[option].append(args[i + 1])
            i += 2
        else:
            raise ConfigError(option, None, f"needs a value; {USAGE}")
    for option in ("--source", "--control", "--log", "--log-level"):
        if len(values[option]) > 1:
            raise ConfigError(option, values[option], "give it once")
    for option in ("--source", "--control", "--log"):
        if not values[option]:
            raise ConfigError(option, None, f"is required; {USAGE}")
    if not values["--node"]:
        raise ConfigError("--node", None, f"give at least one follower; {USAGE}")
    source = _url("--source", values["--source"][0])
    nodes: dict[str, FollowerSpec] = {}
    for text in values["--node"]:
        name, url = _named("--node", text)
        if name in nodes:
            raise ConfigError("--node", text, f"node {name!r} is given twice")
        nodes[name] = FollowerSpec(name, _url("--node", url))
    for text in values["--delay-ms"]:
        name, spec = _named("--delay-ms", text)
        if name not in nodes:
            raise ConfigError("--delay-ms", text, f"no --node {name}; give its --node first")
        delay = parse_delay(spec, "--delay-ms")
        node = nodes[name]
        nodes[name] = replace(node, settings=replace(node.settings, delay=delay))
    for text in values["--lag-blocks"]:
        name, count = _named("--lag-blocks", text)
        if name not in nodes:
            raise ConfigError("--lag-blocks", text, f"no --node {name}; give its --node first")
        if not count.isdigit():
            raise ConfigError("--lag-blocks", text, "give a whole number of blocks, 0 or more")
        node = nodes[name]
        settings: NodeSettings = replace(node.settings, lag_blocks=int(count))
        nodes[name] = replace(node, settings=settings)
    level = (values["--log-level"] or ["INFO"])[0].upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("--log-level", level, "use DEBUG, INFO, WARNING or ERROR")
    host, port = _control(values["--control"][0])
    return ReplicatorConfig(
        source_url=source,
        nodes=tuple(nodes.values()),
        control_host=host,
        control_port=port,
        log_path=Path(values["--log"][0]),
        log_level=level,
    )


def command_line(config: ReplicatorConfig) -> list[str]:
    """The arguments (after ``python -m harness.chain``) that `parse_args` reads back as
    ``config``."""
    args = ["--source", config.source_url]
    for node in config.nodes:
        args += ["--node", f"{node.name}={node.url}"]
    args += ["--control", f"{config.control_host}:{config.control_port}"]
    args += ["--log", str(config.log_path), "--log-level", config.log_level]
    for node in config.nodes:
        if node.settings.delay.fixed_ms or node.settings.delay.jitter_ms:
            args += ["--delay-ms", f"{node.name}={node.settings.delay.text}"]
        if node.settings.lag_blocks:
            args += ["--lag-blocks", f"{node.name}={node.settings.lag_blocks}"]
    return args
