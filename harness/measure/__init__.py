"""Measurement: probes, phases, recovery figures and SLO verdicts.

The names are imported on first use: the prober needs the JSON-RPC client and HAProxy's
runtime API, which reports and ``harness compare`` (reading figures only) need not pay for.
The function ``recovery`` is imported from `harness.measure.recovery` itself: here that
name is its module's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.measure.probes import Prober
    from harness.measure.recovery import Phase, PhaseStats, Recovery, phase_stats
    from harness.measure.samples import FRONTEND, ProbeSample, ServerTransition
    from harness.measure.slo import SLO, Safeguard, SLOResult, evaluate, load_spec_file

_EXPORTS = {
    "FRONTEND": "harness.measure.samples",
    "Phase": "harness.measure.recovery",
    "PhaseStats": "harness.measure.recovery",
    "ProbeSample": "harness.measure.samples",
    "Prober": "harness.measure.probes",
    "Recovery": "harness.measure.recovery",
    "SLO": "harness.measure.slo",
    "SLOResult": "harness.measure.slo",
    "Safeguard": "harness.measure.slo",
    "ServerTransition": "harness.measure.samples",
    "evaluate": "harness.measure.slo",
    "load_spec_file": "harness.measure.slo",
    "phase_stats": "harness.measure.recovery",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'harness.measure' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "FRONTEND",
    "SLO",
    "Phase",
    "PhaseStats",
    "ProbeSample",
    "Prober",
    "Recovery",
    "SLOResult",
    "Safeguard",
    "ServerTransition",
    "evaluate",
    "load_spec_file",
    "phase_stats",
]
