"""Experiments: a run of one stack and one load over one or more episodes, judged by SLOs.

The CLI's ``harness run``, the pytest plugin and the scenarios call `run`; none holds
logic of its own.
"""

from harness.experiment.episode import EpisodeResult
from harness.experiment.result import RunResult
from harness.experiment.run import run
from harness.experiment.spec import DEFAULT_LOAD, DEFAULT_SLOS, EpisodeSpec, ExperimentSpec

#: The name scenarios have always used for a run's result.
ExperimentResult = RunResult

__all__ = [
    "DEFAULT_LOAD",
    "DEFAULT_SLOS",
    "EpisodeResult",
    "EpisodeSpec",
    "ExperimentResult",
    "ExperimentSpec",
    "RunResult",
    "run",
]
