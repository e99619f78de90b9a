"""What the fault benchmarks share: which fault kinds a stack on this host can run.

Imported by `fault_timing.py` and `fault_residue.py` (run from bench/, so it is on the path).
"""

from __future__ import annotations

import os

from harness.faults import FAULTS

IS_ROOT = os.geteuid() == 0
NETWORK_MODULE = "harness.faults.network"


def is_network(kind: str) -> bool:
    return FAULTS[kind].__module__ == NETWORK_MODULE


def why_not_runnable(kind: str) -> str | None:
    """Why ``kind`` cannot run on this host or needs a stack option only root can have."""
    ok, why = FAULTS[kind].available()
    if not ok:
        return why
    if is_network(kind) and not IS_ROOT:
        return 'needs StackSpec(isolation="netns"), which needs root'
    if kind == "disk" and not IS_ROOT:
        return "needs StackSpec(data_dir_size_mb=...), which needs root"
    return None
