"""Process faults on containers, through the Docker API: what a pause and a stop are when
the target is a container of the docker backend (`ComponentState.container` is set).

A pause freezes the container's cgroup (``docker pause``), so every process in it stops
at once, sockets open, as a SIGSTOP does to one process. A stop is a ``docker kill``: Docker
counts it as stopped by hand, so its restart policy holds off until the undo starts the
container again. A kill needs nothing here: SIGKILL of the container's process is a crash,
and the restart policy brings it back, as the supervisor does on the local stack.

The undo operations carry the daemon's URL and the container id, so ``harness cleanup`` in
another process unpauses or restarts what a SIGKILLed harness left.
"""

from __future__ import annotations

import threading
from typing import Any

from harness.engine.client import connect, docker_host
from harness.faults.fault import FaultIneffective, wait_until
from harness.faults.undo import UndoOp, undo_op
from harness.stack.model import ComponentState

MECHANISM_PAUSE = "docker pause (cgroup freezer)"
MECHANISM_STOP = "docker kill + start (restart policy held off)"


def in_containers(targets: tuple[ComponentState, ...]) -> bool:
    """True if every target is a container (the docker backend's); a mix is refused."""
    inside = [t.container is not None for t in targets]
    if any(inside) and not all(inside):
        raise FaultIneffective("fault ineffective: targets mix containers and host processes")
    return bool(inside) and all(inside)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(host: str | None = None) -> Any:
    """One connection per daemon for this process: a fault's apply is then one API call,
    not a connect and a ping first (about 30 ms each)."""
    host = host or docker_host()
    with _clients_lock:
        if host not in _clients:
            _clients[host] = connect(timeout_s=5.0, host=host)
        return _clients[host]


def _status(client: Any, container: str) -> dict[str, Any]:
    import docker.errors

    try:
        state: dict[str, Any] = client.api.inspect_container(container)["State"]
        return state
    except docker.errors.NotFound:
        return {"Running": False, "Paused": False, "Status": "gone"}


def undo_unpause(c: ComponentState) -> UndoOp:
    return {"op": "docker_unpause", "name": c.name, "container": c.container, "host": docker_host()}


def undo_start(c: ComponentState) -> UndoOp:
    return {"op": "docker_start", "name": c.name, "container": c.container, "host": docker_host()}


def pause(targets: tuple[ComponentState, ...]) -> None:
    client = _client()
    for t in targets:
        client.api.pause(t.container)


def stop(targets: tuple[ComponentState, ...]) -> None:
    """SIGKILL through Docker: the restart policy leaves a container killed so alone."""
    client = _client()
    for t in targets:
        client.api.kill(t.container)


def wait_status(
    targets: tuple[ComponentState, ...], *, paused: bool | None = None,
    running: bool | None = None, timeout_s: float = 5.0, what: str,
) -> None:  # fmt: skip
    """Wait until every target's container is (not) paused / (not) running."""
    client = _client()
    for t in targets:

        def holds(container: str = str(t.container)) -> bool:
            s = _status(client, container)
            return (paused is None or bool(s["Paused"]) == paused) and (
                running is None or bool(s["Running"]) == running
            )

        wait_until(holds, timeout_s, what.format(name=t.name), interval_s=0.002)


@undo_op("docker_unpause")
def _docker_unpause(op: UndoOp) -> str | None:
    client = _client(op["host"])  # the daemon the fault used, named in the ledger
    if not _status(client, op["container"]).get("Paused"):
        return None
    client.api.unpause(op["container"])
    return f"unpaused container of {op.get('name', '')} ({op['container'][:12]})"


@undo_op("docker_start")
def _docker_start(op: UndoOp) -> str | None:
    client = _client(op["host"])
    s = _status(client, op["container"])
    if s["Status"] == "gone" or s["Running"]:
        return None
    client.api.start(op["container"])
    return f"started container of {op.get('name', '')} again ({op['container'][:12]})"
