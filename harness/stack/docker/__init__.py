"""The docker backend: the stack's nodes and HAProxy as containers on a network of their own.

Same `StackSpec` in, same `StackState` out, so a scenario runs unchanged on either backend.
Images are the baked ones (`harness.images`); nothing is pulled. Every container, network
and volume is labelled with the run (`harness.engine.labels`), which is how teardown and
``harness cleanup`` find them.
"""

from harness.stack.docker.layout import DockerLayout, plan_layout
from harness.stack.docker.reaper import reap_stale_containers

__all__ = ["DockerLayout", "plan_layout", "reap_stale_containers"]
