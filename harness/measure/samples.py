"""What the probes observe, as plain data: a probe's answer, HAProxy changing its mind.

Kept apart from the prober (`harness.measure.probes`, which needs the JSON-RPC client and
HAProxy's runtime API) so that the figures, the reports and `harness compare` read samples
without importing the instruments.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

FRONTEND = "frontend"


@dataclass(frozen=True)
class ProbeSample:
    """One probe: when it was due, how long until it was answered, and how."""

    target: str  # "frontend" or a node name
    intended_ns: int  # time.monotonic_ns() the probe was scheduled for
    latency_us: float  # from intended_ns to the answer (or the failure)
    outcome: str  # an Outcome value
    head: int | None = None


@dataclass(frozen=True)
class ServerTransition:
    """HAProxy changed its mind about a server (seen by polling the runtime API)."""

    t_ns: int
    server: str
    status: str
    check_status: str


class SampleStore:
    """Probe samples kept in columns, per target: 25 bytes a sample instead of ~150 as
    objects, so an hour of probing (540k samples) holds 13 MiB, not 80. Not thread-safe:
    the prober appends and reads under its own lock."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[array[int], array[float], array[int], array[int]]] = {}
        self._outcomes: list[str] = []
        self._codes: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(c[0]) for c in self._columns.values())

    def append(self, s: ProbeSample) -> None:
        columns = self._columns.get(s.target)
        if columns is None:
            columns = self._columns[s.target] = (array("q"), array("d"), array("B"), array("q"))
        code = self._codes.get(s.outcome)
        if code is None:
            code = self._codes[s.outcome] = len(self._outcomes)
            self._outcomes.append(s.outcome)
        intended, latency, outcome, head = columns
        intended.append(s.intended_ns)
        latency.append(s.latency_us)
        outcome.append(code)
        head.append(-1 if s.head is None else s.head)

    def since(self, start_ns: int = 0, slack_ns: int = 0) -> list[ProbeSample]:
        """The samples intended at or after ``start_ns``. Appended as answers come, a
        target's samples are in intended order but for stragglers of at most ``slack_ns``,
        so the scan from the newest back stops there: reading the last seconds of an
        hour's probing costs the last seconds, not the hour."""
        found: list[ProbeSample] = []
        for target, (intended, latency, outcome, head) in self._columns.items():
            first = len(intended)
            while first > 0 and intended[first - 1] >= start_ns - slack_ns:
                first -= 1
            for i in range(first, len(intended)):
                if intended[i] >= start_ns:
                    h = None if head[i] < 0 else head[i]
                    what = self._outcomes[outcome[i]]
                    found.append(ProbeSample(target, intended[i], latency[i], what, h))
        return found
