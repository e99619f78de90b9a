"""A chaos engineering and reliability harness for Ethereum JSON-RPC infrastructure.

What scenario files touch is re-exported here; everything else may change.
"""

from harness.errors import ConfigError, HarnessError, StackError, SteadyStateError
from harness.experiment import ExperimentResult, ExperimentSpec
from harness.experiment import run as run_experiment
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.stack import (
    HealthCheck,
    LocalStack,
    RestartPolicy,
    Stack,
    StackSpec,
    StackState,
)
from harness.stack.steady import (
    SteadyState,
    SteadyStateSpec,
    check_steady_state,
    wait_for_steady_state,
)

__all__ = [
    "ConfigError",
    "ExperimentResult",
    "ExperimentSpec",
    "HarnessError",
    "HealthCheck",
    "LocalStack",
    "Outcome",
    "RestartPolicy",
    "RpcClient",
    "RpcFailure",
    "Stack",
    "StackError",
    "StackSpec",
    "StackState",
    "SteadyState",
    "SteadyStateError",
    "SteadyStateSpec",
    "check_steady_state",
    "run_experiment",
    "wait_for_steady_state",
]
