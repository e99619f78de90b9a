"""Cleanup of leftovers: what a killed harness left behind, found from state on disk.

Faults first (resume paused processes and containers, delete qdiscs and nft tables, remove
fill files, stop stressors), then stacks (their processes, mounts, namespaces, state dirs),
then the docker backend's labelled containers, networks and volumes whose owner is gone.
Run by ``harness cleanup``, ``harness stack up``, ``harness run`` and every pytest session
start.
"""

from __future__ import annotations

from harness.faults.ledger import replay_open_records
from harness.stack.docker.reaper import reap_stale_containers
from harness.stack.state import reap_stale_stacks


def cleanup_leftovers(everywhere: bool = False) -> list[str]:
    """Revert and remove everything left by processes that no longer exist; say what.
    ``everywhere``: also Docker objects of runs from other state roots (`harness cleanup`)."""
    # Containers before stack dirs: a dir's removal deletes the namespace names that point
    # into its containers.
    return (
        replay_open_records() + reap_stale_containers(everywhere=everywhere) + reap_stale_stacks()
    )
