"""A chaos engineering and reliability harness for Ethereum JSON-RPC infrastructure.

What scenario files touch is re-exported here; everything else may change. The names
are imported on first use: the proxy and Locust worker processes import one corner of the
harness each, and should not pay for the rest (Locust, eth_account, pyroute2) at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.errors import ConfigError, HarnessError, StackError, SteadyStateError
    from harness.experiment import EpisodeSpec, ExperimentResult, ExperimentSpec, RunResult
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
    from harness.measure.budget import ErrorBudget
    from harness.monitor.processes import MonitorProfile
    from harness.monitor.rules import ALERT_RULES, ROADMAP_RULES, RuleTuning, tune_rules
    from harness.plugin import ChaosRun, with_policy
    from harness.stack import (
        HealthCheck,
        LocalStack,
        RestartPolicy,
        Stack,
        StackLifecycle,
        StackSpec,
        StackState,
    )
    from harness.stack.steady import (
        SteadyState,
        SteadyStateSpec,
        check_steady_state,
        wait_for_steady_state,
    )


_EXPORTS: dict[str, tuple[str, str]] = {
    "ALERT_RULES": ("harness.monitor.rules", "ALERT_RULES"),
    "MonitorProfile": ("harness.monitor.processes", "MonitorProfile"),
    "ROADMAP_RULES": ("harness.monitor.rules", "ROADMAP_RULES"),
    "RuleTuning": ("harness.monitor.rules", "RuleTuning"),
    "tune_rules": ("harness.monitor.rules", "tune_rules"),
    "Bandwidth": ("harness.faults", "Bandwidth"),
    "ChaosRun": ("harness.plugin", "ChaosRun"),
    "ConfigError": ("harness.errors", "ConfigError"),
    "CpuStress": ("harness.faults", "CpuStress"),
    "DiskFill": ("harness.faults", "DiskFill"),
    "EpisodeSpec": ("harness.experiment", "EpisodeSpec"),
    "ErrorBudget": ("harness.measure.budget", "ErrorBudget"),
    "ExperimentResult": ("harness.experiment", "ExperimentResult"),
    "ExperimentSpec": ("harness.experiment", "ExperimentSpec"),
    "Fault": ("harness.faults", "Fault"),
    "FaultIneffective": ("harness.faults", "FaultIneffective"),
    "FaultRecord": ("harness.faults", "FaultRecord"),
    "FaultUnavailable": ("harness.faults", "FaultUnavailable"),
    "HarnessError": ("harness.errors", "HarnessError"),
    "HealthCheck": ("harness.stack", "HealthCheck"),
    "Kill": ("harness.faults", "Kill"),
    "Latency": ("harness.faults", "Latency"),
    "LoadSpec": ("harness.load", "LoadSpec"),
    "LocalStack": ("harness.stack", "LocalStack"),
    "StackLifecycle": ("harness.stack", "StackLifecycle"),
    "Loss": ("harness.faults", "Loss"),
    "MemoryPressure": ("harness.faults", "MemoryPressure"),
    "Outcome": ("harness.jsonrpc", "Outcome"),
    "Partition": ("harness.faults", "Partition"),
    "Pause": ("harness.faults", "Pause"),
    "Restart": ("harness.faults", "Restart"),
    "RestartPolicy": ("harness.stack", "RestartPolicy"),
    "RpcClient": ("harness.jsonrpc", "RpcClient"),
    "RpcFailure": ("harness.jsonrpc", "RpcFailure"),
    "RunResult": ("harness.experiment", "RunResult"),
    "SLO": ("harness.measure", "SLO"),
    "Safeguard": ("harness.measure", "Safeguard"),
    "Stack": ("harness.stack", "Stack"),
    "StackError": ("harness.errors", "StackError"),
    "StackSpec": ("harness.stack", "StackSpec"),
    "StackState": ("harness.stack", "StackState"),
    "SteadyState": ("harness.stack.steady", "SteadyState"),
    "SteadyStateError": ("harness.errors", "SteadyStateError"),
    "SteadyStateSpec": ("harness.stack.steady", "SteadyStateSpec"),
    "SyncStall": ("harness.faults", "SyncStall"),
    "Terminate": ("harness.faults", "Terminate"),
    "check_steady_state": ("harness.stack.steady", "check_steady_state"),
    "make_fault": ("harness.faults", "make_fault"),
    "run_experiment": ("harness.experiment", "run"),
    "wait_for_steady_state": ("harness.stack.steady", "wait_for_steady_state"),
    "with_policy": ("harness.plugin", "with_policy"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'harness' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "ALERT_RULES",
    "ROADMAP_RULES",
    "SLO",
    "Bandwidth",
    "ChaosRun",
    "ConfigError",
    "CpuStress",
    "DiskFill",
    "EpisodeSpec",
    "ErrorBudget",
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
    "MonitorProfile",
    "Outcome",
    "Partition",
    "Pause",
    "Restart",
    "RestartPolicy",
    "RpcClient",
    "RpcFailure",
    "RuleTuning",
    "RunResult",
    "Safeguard",
    "Stack",
    "StackError",
    "StackLifecycle",
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
    "tune_rules",
    "wait_for_steady_state",
    "with_policy",
]
