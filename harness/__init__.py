"""A chaos engineering and reliability harness for Ethereum JSON-RPC infrastructure.

What scenario files touch is re-exported here; everything else may change.
"""

from harness.errors import ConfigError, HarnessError, StackError, SteadyStateError
from harness.experiment import ExperimentResult, ExperimentSpec
from harness.experiment import run as run_experiment
from harness.faults import (
    Bandwidth,
    CpuStress,
    DiskFill,
    Fault,
    FaultIneffective,
    FaultRecord,
    FaultUnavailable,
    Kill,
    Latency,
    Loss,
    MemoryPressure,
    Partition,
    Pause,
    Restart,
    SyncStall,
    Terminate,
    make_fault,
)
from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.load import LoadSpec
from harness.measure import SLO, Safeguard
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
    "SLO",
    "Bandwidth",
    "ConfigError",
    "CpuStress",
    "DiskFill",
    "ExperimentResult",
    "ExperimentSpec",
    "Fault",
    "FaultIneffective",
    "FaultRecord",
    "FaultUnavailable",
    "HarnessError",
    "HealthCheck",
    "Kill",
    "Latency",
    "LoadSpec",
    "LocalStack",
    "Loss",
    "MemoryPressure",
    "Outcome",
    "Partition",
    "Pause",
    "Restart",
    "RestartPolicy",
    "RpcClient",
    "RpcFailure",
    "Safeguard",
    "Stack",
    "StackError",
    "StackSpec",
    "StackState",
    "SteadyState",
    "SteadyStateError",
    "SteadyStateSpec",
    "SyncStall",
    "Terminate",
    "check_steady_state",
    "make_fault",
    "run_experiment",
    "wait_for_steady_state",
]
