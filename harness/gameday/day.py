"""Running a game day: the window checked, the schedule written before anything starts,
the episodes run on one stack under one load, the day reported as one run.

The runner is the experiment engine's (`harness.experiment.run`): a day is an experiment
of many episodes, so its report, history entry and `harness compare` are a scenario's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.experiment import ExperimentSpec, RunResult
from harness.experiment import run as run_experiment
from harness.experiment.live import ProgressCallback, StopRequest
from harness.gameday.schedule import Schedule, schedule_document, schedule_from_document
from harness.gameday.spec import GamedaySpec
from harness.gameday.window import Window
from harness.stack.model import StackSpec
from harness.stack.state import write_json_atomic

SCHEDULE_FILE = "schedule.json"


@dataclass(frozen=True)
class DayPlan:
    """What will run: the schedule, and until when the window lets it (seconds from the
    start; None: no end but the schedule's own)."""

    schedule: Schedule
    deadline_s: float | None


def window_deadline_s(window: Window, now: dt.datetime, ignore: bool) -> float | None:
    """Seconds until ``window`` closes after ``now``; `ConfigError` saying when it next
    opens if it is closed. ``ignore`` (``--now``): no window at all."""
    if ignore or window.always:
        return None
    if not window.contains(now):
        opens = window.next_open(now)
        raise ConfigError(
            "window",
            str(window),
            f"is closed now ({now.astimezone(dt.UTC):%a %Y-%m-%d %H:%M} UTC); it next opens "
            f"{opens:%a %Y-%m-%d %H:%M} UTC: run then, or pass --now to run outside it",
        )
    closes = window.closes_at(now)
    return None if closes is None else (closes - now).total_seconds()


def read_schedule(run_dir: Path) -> Schedule:
    """The schedule a game day wrote to its run dir; `ConfigError` if it holds none."""
    path = run_dir / SCHEDULE_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "replay",
            str(run_dir),
            f"holds no {SCHEDULE_FILE}: give the directory of a game day's run "
            "(`harness history --name gameday` lists them)",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError("replay", str(path), f"cannot be read as a schedule: {exc}") from exc
    return schedule_from_document(doc)


def day_spec(spec: GamedaySpec, stack: StackSpec, schedule: Schedule) -> ExperimentSpec:
    """The experiment a day is: its episodes, load, SLOs and safeguards on one stack."""
    return ExperimentSpec(
        stack=stack,
        load=spec.load,
        episodes=tuple(s.episode for s in schedule.episodes),
        slos=spec.slos,
        safeguards=spec.abort_if,
        seed=schedule.seed,
        name="gameday",
        kind="gameday",
    )


def run_day(
    spec: GamedaySpec,
    stack: StackSpec,
    plan: DayPlan,
    reports_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    stop: StopRequest | None = None,
) -> RunResult:
    """Run the day; its schedule is written to the run dir before the stack starts."""

    def write_schedule(run_dir: Path) -> None:
        write_json_atomic(run_dir / SCHEDULE_FILE, schedule_document(plan.schedule))

    deadline = plan.deadline_s
    if deadline is None or plan.schedule.duration_s < deadline:
        # The day's own length, with a grace for recoveries slower than planned.
        deadline = plan.schedule.duration_s * 1.1 + 30
    return run_experiment(
        day_spec(spec, stack, plan.schedule),
        reports_dir,
        progress=progress,
        stop=stop,
        deadline_s=deadline,
        prepare=write_schedule,
    )
