"""Load: a realistic searcher JSON-RPC workload, driven by Locust out of process.

The names below load on first use: every Locust process imports this package on its way to
the locustfile, and the runner's imports (the fault ledger, pyroute2) cost it ~0.5 s of start
up that it never uses."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.load.runner import LoadError, LoadRun, LoadSpec, Sample
    from harness.load.workload import PROFILES, Profile, load_profile, prepare_chain

_WHERE = {
    "LoadError": "runner",
    "LoadRun": "runner",
    "LoadSpec": "runner",
    "Sample": "runner",
    "PROFILES": "workload",
    "Profile": "workload",
    "load_profile": "workload",
    "prepare_chain": "workload",
}

__all__ = [
    "PROFILES",
    "LoadError",
    "LoadRun",
    "LoadSpec",
    "Profile",
    "Sample",
    "load_profile",
    "prepare_chain",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.load.{_WHERE[name]}"), name)
