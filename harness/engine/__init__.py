"""The Docker Engine, as the docker backend, its faults and the image baker reach it.

A connection that fails says why and what to do (`DockerUnavailable`, exit 2); every object
the harness creates carries `LABEL_RUN` and friends, so teardown and ``harness cleanup``
remove exactly what a run made and nothing else.
"""

from harness.engine.client import (
    DEFAULT_SOCKETS,
    DockerUnavailable,
    connect,
    docker_host,
    docker_missing_reason,
)
from harness.engine.labels import (
    LABEL_COMPONENT,
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_STACK,
    owner_label,
    owner_of,
)

__all__ = [
    "DEFAULT_SOCKETS",
    "LABEL_COMPONENT",
    "LABEL_OWNER",
    "LABEL_RUN",
    "LABEL_STACK",
    "DockerUnavailable",
    "connect",
    "docker_host",
    "docker_missing_reason",
    "owner_label",
    "owner_of",
]
