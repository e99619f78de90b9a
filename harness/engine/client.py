"""One connection to the Docker daemon, found the way the docker CLI finds it.

``DOCKER_HOST`` when set; else the system socket, else the harness's private daemon
(``scripts/dockerd.sh start``). Any failure to reach it is a `DockerUnavailable` that says
which socket was tried and how to get one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

#: Tried in order when DOCKER_HOST is unset: the system daemon, then scripts/dockerd.sh's.
DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/harness-docker.sock")
START_HINT = (
    "start a daemon (`scripts/dockerd.sh start` starts a private one as root, then "
    "`export DOCKER_HOST=unix:///run/harness-docker.sock`), or point DOCKER_HOST at yours"
)


class DockerUnavailable(ConfigError):
    """No Docker daemon can be used: not installed, not running, or not ours to reach."""

    def __init__(self, host: str, why: str, fix: str = START_HINT) -> None:
        super().__init__("DOCKER_HOST", host, f"{why}; {fix}")


def docker_host() -> str:
    """The daemon URL the harness uses (see the module docstring)."""
    configured = os.environ.get("DOCKER_HOST")
    if configured:
        return configured
    for path in DEFAULT_SOCKETS:
        if Path(path).exists():
            return f"unix://{path}"
    return f"unix://{DEFAULT_SOCKETS[0]}"


def connect(timeout_s: float = 10.0, host: str | None = None) -> Any:
    """A `docker.DockerClient` (of ``host``, else `docker_host`) that has answered a ping;
    `DockerUnavailable` otherwise."""
    host = host or docker_host()
    try:
        import docker
        import docker.errors
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise DockerUnavailable(
            host, "the docker SDK for Python is not installed", "run `make setup`"
        ) from exc
    if host.startswith("unix://"):
        path = Path(host.removeprefix("unix://"))
        if not path.exists():
            raise DockerUnavailable(host, f"no Docker daemon: {path} does not exist")
        if not os.access(path, os.R_OK | os.W_OK):
            raise DockerUnavailable(
                host,
                f"permission denied on {path}",
                "run as root or add your user to the socket's group (`docker`), then log in again",
            )
    try:
        client = docker.DockerClient(base_url=host, timeout=int(timeout_s))
        client.ping()
    except docker.errors.DockerException as exc:
        why = str(exc)
        if "ermission denied" in why:
            raise DockerUnavailable(
                host, "permission denied", "run as root or join the socket's group (`docker`)"
            ) from exc
        raise DockerUnavailable(host, f"the daemon does not answer ({why})") from exc
    return client


def docker_missing_reason() -> str | None:
    """Why the docker backend cannot run here, with the fix; None when it can (for tests'
    skip reasons and `harness doctor`)."""
    try:
        connect(timeout_s=3.0).close()
    except DockerUnavailable as exc:
        return str(exc)
    return None
