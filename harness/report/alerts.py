"""The alerts of one episode as the report shows them, read from its measured figures
(``alert_pending_s[Name]``, ``alert_fired_s[Name]``, ``alert_resolved_s[Name]``,
``alert_expected_s[Name]``; harness.monitor.alerts writes them): one row per alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_FIGURES = ("alert_pending_s", "alert_fired_s", "alert_resolved_s", "alert_expected_s")


@dataclass(frozen=True)
class AlertRow:
    """One alert of an episode, times in s from the fault's effective time (None: not)."""

    name: str
    pending_s: float | None
    fired_s: float | None
    resolved_s: float | None
    expected_s: float | None  # the rule's for: (and group interval) + scrape, evaluation, notify

    @property
    def times_s(self) -> tuple[float, ...]:
        """Its moments on the timeline: fired and resolved, those that happened."""
        return tuple(t for t in (self.fired_s, self.resolved_s) if t is not None)

    @property
    def held_to_fired_s(self) -> float | None:
        """From the rule's condition holding to the firing notification: its for: and the
        pipeline, no more than ``expected_s`` (to the 0.25 s of the pending time)."""
        if self.fired_s is None or self.pending_s is None:
            return None
        return self.fired_s - self.pending_s


def alert_rows(measured: dict[str, Any]) -> list[AlertRow]:
    """Every alert with a figure in ``measured``, by when it fired (or went pending)."""
    found: dict[str, dict[str, float | None]] = {}
    for key, value in measured.items():
        metric, _, rest = key.partition("[")
        if metric in _FIGURES and rest.endswith("]"):
            found.setdefault(rest[:-1], {})[metric] = value
    rows = [
        AlertRow(
            name,
            f.get("alert_pending_s"),
            f.get("alert_fired_s"),
            f.get("alert_resolved_s"),
            f.get("alert_expected_s"),
        )
        for name, f in found.items()
    ]
    return sorted(rows, key=lambda r: (r.fired_s is None, r.fired_s or r.pending_s or 0.0))
