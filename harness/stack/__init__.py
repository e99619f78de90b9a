"""Stacks: N Ethereum nodes behind HAProxy, stood up, observed and torn down.

The names are imported on first use: a module that needs only the stack's data (a spec, a
state) must not pay for the local backend's processes, HAProxy rendering and Toxiproxy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "ADAPTERS": "harness.stack.nodes",
    "AttachedStack": "harness.stack.state",
    "ComponentState": "harness.stack.model",
    "HealthCheck": "harness.stack.model",
    "LocalStack": "harness.stack.local",
    "ProcessEvent": "harness.stack.model",
    "RestartPolicy": "harness.stack.model",
    "RuntimeApi": "harness.stack.haproxy",
    "ServerStatus": "harness.stack.haproxy",
    "Stack": "harness.stack.model",
    "StackLifecycle": "harness.stack.model",
    "StackSpec": "harness.stack.model",
    "StackState": "harness.stack.model",
    "Supervisor": "harness.stack.supervisor",
    "adapter": "harness.stack.nodes",
    "reap_stale_stacks": "harness.stack.state",
    "running_stack": "harness.stack.state",
    "state_root": "harness.stack.state",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'harness.stack' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
