"""What clients saw, checked once at the end of a run: every answer the load's sessions
and the frontend probes were given, against each other and against the chain.

Place in the flow: live run (the load's ``checks-*.txt``, the probes) -> **histories**
(the stack's chain log kept in the run dir, the observations read, `check`) -> each
episode's measured figures (`check_metrics` per phase) and examples -> report.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.experiment.live import Observations
from harness.measure.chains import LoggedChain, NoChainKnown
from harness.measure.checker import ChainLog, CheckResult, check
from harness.measure.observations import read_observations
from harness.stack.model import StackState

log = logging.getLogger(__name__)

CHAIN_FILE = "chain.jsonl"


@dataclass(frozen=True)
class ClientHistories:
    """The checker's findings over a run, and what they were judged against."""

    result: CheckResult
    chain: str  # what the answers were held against, in a few words
    chain_log: str | None  # the run's copy of the stack's chain log
    read_s: float  # reading the observations back
    check_s: float  # the checker itself


def keep_chain_log(state: StackState, run_dir: Path) -> Path | None:
    """Copy the stack's chain log into the run dir as ``chain.jsonl``, before a teardown
    can remove it; None for a stack of independent chains (or a log that is not there)."""
    if state.chain_log is None:
        return None
    source = Path(state.chain_log)
    if not source.is_file():
        log.warning("the stack's chain log %s is missing: checking without a chain", source)
        return None
    return Path(shutil.copyfile(source, run_dir / CHAIN_FILE))


def check_histories(
    seen: Observations, chain_log: Path | None, windows_ns: Sequence[int] = ()
) -> ClientHistories:
    """Every session's answers (the load's, if it ran, and the frontend probes') checked
    against ``chain_log``, or against no chain known; examples kept per window (episode)."""
    started = time.perf_counter()
    observations = read_observations(Path(seen.load.samples_dir)) if seen.load else []
    read_s = time.perf_counter() - started
    chain, what = _chain(chain_log)
    started = time.perf_counter()
    result = check(observations, chain, seen.samples, windows_ns=sorted(windows_ns))
    check_s = time.perf_counter() - started
    return ClientHistories(
        result, what, str(chain_log) if chain_log else None, round(read_s, 3), round(check_s, 3)
    )


def _chain(path: Path | None) -> tuple[ChainLog, str]:
    if path is None:
        return NoChainKnown(), "no chain known (independent chains): each client's own past"
    from harness.chain.chainlog import read_chain_log  # only stacks on one chain pay for it

    try:
        return LoggedChain(read_chain_log(path)), f"the chain source's log ({path.name})"
    except HarnessError as exc:  # the run still reports what the sessions alone show
        log.warning("checking without a chain: %s", exc)
        return NoChainKnown(), f"no chain known: {exc}"
