"""Game days: a seeded, randomised schedule of episodes inside a time window, under load.

The spec (`load_gameday_spec`) says how long, when, which faults how often, and what may
never be hit at once; `make_schedule` turns it and a planned stack into the episodes the
runner (`harness.experiment.run`) executes, written to ``schedule.json`` first so that any
day, even one killed half-way, can be replayed. Nothing here starts a process.
"""

from harness.gameday.mix import DEFAULT_CHOICES, FaultChoice, default_choice, usable_mix
from harness.gameday.schedule import (
    Schedule,
    ScheduledEpisode,
    make_schedule,
    schedule_document,
    schedule_from_document,
)
from harness.gameday.spec import GamedaySpec, load_gameday_spec
from harness.gameday.window import DEFAULT_WINDOW, Window

__all__ = [
    "DEFAULT_CHOICES",
    "DEFAULT_WINDOW",
    "FaultChoice",
    "GamedaySpec",
    "Schedule",
    "ScheduledEpisode",
    "Window",
    "default_choice",
    "load_gameday_spec",
    "make_schedule",
    "schedule_document",
    "schedule_from_document",
    "usable_mix",
]
