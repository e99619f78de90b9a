"""Experiments: the main job, one whole chaos run from stack up to verdict and report.

The CLI's ``harness run`` and the scenarios call `run`; neither holds logic of its own.
"""

from harness.experiment.run import ExperimentResult, run
from harness.experiment.spec import DEFAULT_LOAD, DEFAULT_SLOS, ExperimentSpec
from harness.experiment.summary import summarize

__all__ = ["DEFAULT_LOAD", "DEFAULT_SLOS", "ExperimentResult", "ExperimentSpec", "run", "summarize"]
