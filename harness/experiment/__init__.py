"""Experiments: the main job, one whole run from stack up to verdict and report.

Today an experiment stands the stack up, verifies its steady state and writes the report;
faults, load and SLO verdicts join it as their packages land. The CLI's ``harness run``
and the scenarios call this; neither holds logic of its own.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cleanup import cleanup_leftovers
from harness.report import RunDir
from harness.stack.local import LocalStack
from harness.stack.model import StackSpec
from harness.stack.steady import SteadyState, SteadyStateSpec, wait_for_steady_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentSpec:
    """What to run."""

    stack: StackSpec = field(default_factory=StackSpec)
    steady_state: SteadyStateSpec = field(default_factory=SteadyStateSpec)
    steady_state_timeout_s: float = 30.0


@dataclass(frozen=True)
class ExperimentResult:
    """What a run found: plain data, the only thing the report reads."""

    run_id: str
    run_dir: str
    passed: bool
    started_at: str
    duration_s: float
    stack_ready_s: float
    stack: dict[str, Any]
    steady_state: dict[str, Any]
    reaped: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "harness.result/1", **asdict(self)}


def _steady_doc(result: SteadyState) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "heads": result.heads,
        "duration_s": round(result.duration_s, 3),
        "checks": [asdict(c) for c in result.checks],
    }


def summarize(result: ExperimentResult) -> str:
    """The few lines a person reads first."""
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"{verdict}  run {result.run_id}  ({result.duration_s:.1f}s on {socket.gethostname()})",
        f"stack: {len(result.stack['components']) - 1} x {result.stack['components'][0]['kind']}"
        f" behind HAProxy, ready in {result.stack_ready_s:.2f}s",
    ]
    for check in result.steady_state["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        lines.append(f"  {mark} {check['name']}: {check['detail']}")
    if result.reaped:
        lines.append("removed leftovers of earlier runs: " + "; ".join(result.reaped))
    lines.append(f"report: {result.run_dir}/result.json")
    return "\n".join(lines)


def run(spec: ExperimentSpec, reports_dir: Path) -> ExperimentResult:
    """Run one experiment and write ``<reports_dir>/<run-id>/result.json`` and summary.txt."""
    run_dir = RunDir.create(reports_dir)
    reaped = cleanup_leftovers()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with LocalStack(spec.stack) as stack:
        steady = wait_for_steady_state(stack, spec.steady_state, spec.steady_state_timeout_s)
        state = stack.state()
        assert stack.ready_s is not None
        result = ExperimentResult(
            run_id=run_dir.run_id,
            run_dir=str(run_dir.path),
            passed=steady.ok,
            started_at=started_at,
            duration_s=round(time.monotonic() - started, 3),
            stack_ready_s=round(stack.ready_s, 3),
            stack=state.to_dict(),
            steady_state=_steady_doc(steady),
            reaped=tuple(reaped + stack.reaped),
        )
    run_dir.write_result(result.to_dict())
    run_dir.write_summary(summarize(result))
    log.info("wrote %s (pid %d)", run_dir.path, os.getpid())
    return result


__all__ = ["ExperimentResult", "ExperimentSpec", "run", "summarize"]
