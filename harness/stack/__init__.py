"""Stacks: N Ethereum nodes behind HAProxy, stood up, observed and torn down."""

from harness.stack.haproxy import RuntimeApi, ServerStatus
from harness.stack.local import LocalStack
from harness.stack.model import (
    ComponentState,
    HealthCheck,
    ProcessEvent,
    RestartPolicy,
    Stack,
    StackLifecycle,
    StackSpec,
    StackState,
)
from harness.stack.nodes import ADAPTERS, adapter
from harness.stack.state import AttachedStack, reap_stale_stacks, running_stack, state_root
from harness.stack.supervisor import Supervisor

__all__ = [
    "ADAPTERS",
    "AttachedStack",
    "ComponentState",
    "HealthCheck",
    "LocalStack",
    "ProcessEvent",
    "RestartPolicy",
    "RuntimeApi",
    "ServerStatus",
    "Stack",
    "StackLifecycle",
    "StackSpec",
    "StackState",
    "Supervisor",
    "adapter",
    "reap_stale_stacks",
    "running_stack",
    "state_root",
]
