"""Measurement: probes, phases, recovery figures and SLO verdicts."""

from harness.measure.probes import FRONTEND, Prober, ProbeSample, ServerTransition
from harness.measure.recovery import Phase, PhaseStats, Recovery, phase_stats, recovery
from harness.measure.slo import SLO, Safeguard, SLOResult, evaluate, load_spec_file

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
    "recovery",
]
