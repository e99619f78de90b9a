"""Labels on everything the harness creates in Docker: which run, stack and process own it.

The owner label is a process identity (pid and start time): a container whose owner is
gone belongs to a killed run, and ``harness cleanup`` removes it, as testcontainers' reaper
does, without ever touching a container the harness did not make.
"""

from __future__ import annotations

from harness.stack.state import ProcessIdentity

LABEL_RUN = "io.harness.run"  # the run id: one per stack instance
LABEL_STACK = "io.harness.stack"  # the stack's name
LABEL_COMPONENT = "io.harness.component"  # node-0, haproxy, ...
LABEL_OWNER = "io.harness.owner"  # "<pid>:<create_time>" of the owning harness process
LABEL_IMAGE = "io.harness.image"  # on baked images: the recipe's name
LABEL_RECIPE = "io.harness.recipe"  # on baked images: the hash of what went into it


def owner_label(identity: ProcessIdentity) -> str:
    return f"{identity.pid}:{identity.create_time:.3f}"


def owner_of(label: str | None) -> ProcessIdentity | None:
    """The owner a label names, or None if it names none (not the harness's format)."""
    if not label:
        return None
    pid, _, created = label.partition(":")
    try:
        return ProcessIdentity(int(pid), float(created))
    except ValueError:
        return None
