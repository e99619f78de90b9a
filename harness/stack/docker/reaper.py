"""Removing what killed runs left in Docker: containers, networks, volumes by label.

Only objects labelled by the harness whose owner process is gone are touched (or, with
``include_live``, every labelled one). A host without a reachable daemon has nothing of
ours to remove, so that is no error here.

Every docker run also leaves a marker file in the state root while it lives
(`run_marker`): the cleanup that runs at every start and after every test asks the daemon
only when one is there (a daemon round trip per test adds up: ~20 ms x 1,600 tests), while
``harness cleanup`` sweeps the whole daemon (``everywhere``), whatever state root ran it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.engine.client import DockerUnavailable, connect, docker_host
from harness.engine.labels import LABEL_OWNER, LABEL_RUN, owner_of
from harness.stack.state import state_root

log = logging.getLogger(__name__)


def _dead(labels: dict[str, str], include_live: bool) -> bool:
    if LABEL_RUN not in labels:
        return False
    owner = owner_of(labels.get(LABEL_OWNER))
    return include_live or owner is None or not owner.alive()


def remove_run(client: Any, run_id: str) -> list[str]:
    """Remove every container, then network, then volume of ``run_id``; say what went."""
    return _remove(client, {"label": f"{LABEL_RUN}={run_id}"}, include_live=True)


def _remove(client: Any, filters: dict[str, str], include_live: bool) -> list[str]:
    import docker.errors

    removed: list[str] = []
    containers = client.containers.list(all=True, filters=filters)
    # HAProxy first, so clients see a refusal rather than a backend vanishing under it.
    containers.sort(key=lambda c: c.labels.get("io.harness.component") != "haproxy")
    for c in containers:
        if not _dead(c.labels, include_live):
            continue
        try:
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters=filters):
        if not _dead(n.attrs.get("Labels") or {}, include_live):
            continue
        try:
            n.remove()
            removed.append(f"network {n.name}")
        except docker.errors.NotFound:
            pass
    for v in client.volumes.list(filters=filters):
        if not _dead(v.attrs.get("Labels") or {}, include_live):
            continue
        try:
            v.remove(force=True)
            removed.append(f"volume {v.name}")
        except docker.errors.NotFound:
            pass
    return removed


def markers_dir() -> Path:
    return state_root() / "docker-runs"


def run_marker(run_id: str) -> Path:
    """The file that says run ``run_id`` may have objects in Docker (made before any is)."""
    return markers_dir() / run_id


def reap_stale_containers(include_live: bool = False, everywhere: bool = False) -> list[str]:
    """Remove the harness's Docker objects whose owner died; nothing if no daemon answers.
    Asks the daemon only if a run of this state root left a marker, unless ``everywhere``."""
    markers = sorted(markers_dir().glob("*")) if markers_dir().is_dir() else []
    if not markers and not everywhere:
        return []
    removed = _reap(include_live)
    for marker in markers:  # runs whose owner is gone have nothing left now
        owner = owner_of(marker.read_text().strip() if marker.is_file() else None)
        if include_live or owner is None or not owner.alive():
            marker.unlink(missing_ok=True)
    return removed


def _reap(include_live: bool) -> list[str]:
    host = docker_host()
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return []
    try:
        client = connect(timeout_s=5.0)
    except DockerUnavailable as exc:
        log.debug("no docker daemon to reap: %s", exc)
        return []
    try:
        return _remove(client, {"label": LABEL_RUN}, include_live)
    finally:
        client.close()
