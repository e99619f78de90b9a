"""Backends by name: the one place a `StackSpec` becomes a stack of processes or containers.

A run, the pytest plugin and the ``harness stack up`` daemon all open their stack here, so
a new backend (docker) slots in by adding a factory, without touching any of them.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.stack.model import BACKEND_NAMES, Stack, StackLifecycle, StackSpec


def _local(spec: StackSpec, detached: bool) -> StackLifecycle:
    from harness.stack.local import LocalStack

    return LocalStack(spec, detached=detached)


def _local_plan(spec: StackSpec) -> Stack:
    from harness.stack.local import PlannedStack

    return PlannedStack(spec)


def _docker(spec: StackSpec, detached: bool) -> StackLifecycle:
    from harness.stack.docker.stack import DockerStack

    return DockerStack(spec, detached=detached)


def _docker_plan(spec: StackSpec) -> Stack:
    from harness.stack.docker.stack import PlannedDockerStack

    return PlannedDockerStack(spec)


_FACTORIES: dict[
    str, tuple[Callable[[StackSpec, bool], StackLifecycle], Callable[[StackSpec], Stack]]
] = {
    "local": (_local, _local_plan),
    "docker": (_docker, _docker_plan),
}
assert set(_FACTORIES) == set(BACKEND_NAMES)


def open_stack(spec: StackSpec, *, detached: bool = False) -> StackLifecycle:
    """A stack of ``spec`` on its backend, not yet started: enter it to stand it up."""
    factory, _ = _FACTORIES[spec.backend]
    return factory(spec, detached)


def plan_stack(spec: StackSpec) -> Stack:
    """The stack ``spec`` describes as it will be, before anything starts: what faults are
    checked against, so that bad input fails before a stack exists."""
    _, plan = _FACTORIES[spec.backend]
    return plan(spec)
