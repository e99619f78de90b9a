"""What the integration tests of the docker backend share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.engine import connect, docker_missing_reason
from harness.images import bake_all


@pytest.fixture(scope="module")
def docker() -> Iterator[Any]:
    """A client of the Docker daemon the harness finds, with the stack's images baked (a
    second or two the first time; idempotent after); the test is skipped, naming the fix,
    where no daemon answers."""
    why = docker_missing_reason()
    if why is not None:
        pytest.skip(f"no Docker daemon for the docker backend: {why}")
    bake_all()
    client = connect()
    yield client
    client.close()
