"""Faults: every one a context manager that is ledgered, verified, timed and always undone."""

from harness.faults import chain, network, proxy, resources
from harness.faults.chain import Lag, PeerPartition, Propagation, Reorg
from harness.faults.fault import Fault, FaultIneffective, FaultRecord, FaultUnavailable
from harness.faults.ledger import Ledger, replay_open_records
from harness.faults.network import (
    Bandwidth,
    Corrupt,
    Duplicate,
    Latency,
    Loss,
    Partition,
    Reorder,
)
from harness.faults.process import Kill, Pause, Restart, Stop, Terminate
from harness.faults.registry import FAULTS, make_fault, parameters, register
from harness.faults.resources import CpuStress, DiskFill, MemoryPressure, SyncStall

for _cls in (Kill, Terminate, Pause, Restart, Stop):
    register(_cls)

__all__ = [
    "FAULTS",
    "Bandwidth",
    "Corrupt",
    "CpuStress",
    "DiskFill",
    "Duplicate",
    "Fault",
    "FaultIneffective",
    "FaultRecord",
    "FaultUnavailable",
    "Kill",
    "Lag",
    "Latency",
    "Ledger",
    "Loss",
    "MemoryPressure",
    "Partition",
    "Pause",
    "PeerPartition",
    "Propagation",
    "Reorder",
    "Reorg",
    "Restart",
    "Stop",
    "SyncStall",
    "Terminate",
    "chain",
    "make_fault",
    "network",
    "parameters",
    "proxy",
    "replay_open_records",
    "resources",
]
