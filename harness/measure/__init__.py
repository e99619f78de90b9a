"""Measurement: probes, phases, recovery figures and SLO verdicts."""

from harness.measure.probes import FRONTEND, Prober, ProbeSample, ServerTransition
from harness.measure.recovery import Phase, PhaseStats, Recovery, phase_stats, recovery
from harness.measure.slo import SLO, SLOResult, evaluate

__all__ = [
    "FRONTEND",
    "SLO",
    "Phase",
    "PhaseStats",
    "ProbeSample",
    "Prober",
    "Recovery",
    "SLOResult",
    "ServerTransition",
    "evaluate",
    "phase_stats",
    "recovery",
]
