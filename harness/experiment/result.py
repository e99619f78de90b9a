"""What a run found, as typed, frozen data: the only thing the reports read.

A run is one stack, one load, and its episodes; each `EpisodeResult` carries its phases,
fault, recovery figures and verdicts. The run passes when every episode passed and the
steady state held before the first and after the last.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from harness.experiment.episode import EpisodeResult
from harness.experiment.histories import ClientHistories
from harness.experiment.live import LoadInfo
from harness.experiment.spec import ExperimentSpec
from harness.faults import FaultRecord
from harness.measure import ProbeSample, Recovery, ServerTransition
from harness.measure.budget import BudgetUse
from harness.measure.head_lag import LagPoint
from harness.measure.metrics import Measured, metric_of
from harness.measure.slo import SLOResult
from harness.stack.model import ProcessEvent, StackState
from harness.stack.steady import SteadyState


@dataclass(frozen=True)
class ProbeWindow:
    """One target's probes in one window of the run: for the availability timeline."""

    target: str
    t_ns: int
    probes: int
    failed: int
    max_latency_us: float


@dataclass(frozen=True)
class Spread:
    """The median and worst of a figure over episodes (None: never measured in any)."""

    median: float | None
    worst: float | None
    unmeasured: int  # episodes where it was never measured (a component that never came back)

    @classmethod
    def of(cls, values: list[float | None]) -> Spread:
        known = [v for v in values if v is not None]
        median = statistics.median(known) if known else None
        return cls(median, max(known) if known else None, len(values) - len(known))


@dataclass(frozen=True)
class FaultKindFigures:
    """How the stack fared under one kind of fault, over every episode of that kind."""

    kind: str
    episodes: int
    failed: int
    outage_s: Spread
    mttr_service_s: Spread
    mttr_component_s: Spread

    @classmethod
    def of(cls, kind: str, episodes: list[EpisodeResult]) -> FaultKindFigures:
        return cls(
            kind,
            len(episodes),
            sum(not e.passed for e in episodes),
            Spread.of([e.recovery.outage_s for e in episodes]),
            Spread.of([e.recovery.mttr_service_s for e in episodes]),
            Spread.of([e.recovery.mttr_component_s for e in episodes]),
        )


@dataclass(frozen=True)
class RunResult:
    """One whole run."""

    run_id: str
    run_dir: str
    spec: ExperimentSpec
    started_at: str  # wall clock, ISO 8601 UTC: for people and file names only
    duration_s: float
    origin_ns: int  # the start of the first episode: every relative time counts from here
    end_ns: int
    stack: StackState
    stack_ready_s: float
    steady_state_before: SteadyState
    steady_state_after: SteadyState
    episodes: tuple[EpisodeResult, ...]
    load: LoadInfo | None
    probe_interval_s: float
    probe_timeout_s: float
    probe_windows: tuple[ProbeWindow, ...]
    probe_window_s: float
    node_lag: Mapping[str, tuple[LagPoint, ...]]
    frontend_lag: tuple[LagPoint, ...]
    transitions: tuple[ServerTransition, ...]
    events: tuple[ProcessEvent, ...]
    aborted: str | None
    budget: BudgetUse
    reaped: tuple[str, ...]
    template_fingerprint: str
    stack_fingerprint: str
    # Episodes of the spec that did not run (index, why): a stop, an abort, a deadline.
    skipped: tuple[tuple[int, str], ...] = ()
    # How to run it all again: a scenario's one episode, or `harness gameday --replay`.
    replay_command: tuple[str, ...] = ()
    # What clients saw, checked at the end (None: a result built without the check).
    histories: ClientHistories | None = None

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def passed(self) -> bool:
        return (
            self.steady_state_before.ok
            and self.steady_state_after.ok
            and self.aborted is None
            and all(e.passed for e in self.episodes)
        )

    @property
    def inconclusive(self) -> str | None:
        """Why a failed run says nothing about the stack: every SLO it broke, the machine
        itself explains (`harness.measure.host`), and nothing else failed. None otherwise."""
        broken = [v for e in self.episodes for v in e.slos if not v.passed]
        if self.passed or len(self.failures()) != len(broken):  # an abort, the steady state
            return None
        if any(v.inconclusive is None for v in broken):
            return None
        return "; ".join(f"{v.slo}: {v.inconclusive}" for v in broken)

    def _broken_messages(self) -> list[str]:
        several = len(self.episodes) > 1
        return [
            (f"episode {e.index + 1} ({e.spec.label}): " if several else "") + v.message
            for e in self.episodes
            for v in e.slos
            if not v.passed
        ]

    # -- a scenario runs one episode: its figures, without indexing --------------------

    @property
    def episode(self) -> EpisodeResult:
        """The first (for a scenario, the only) episode."""
        return self.episodes[0]

    @property
    def fault(self) -> FaultRecord:
        return self.episode.fault

    @property
    def recovery(self) -> Recovery:
        return self.episode.recovery

    @property
    def slos(self) -> tuple[SLOResult, ...]:
        """Every verdict of every episode, in order."""
        return tuple(v for e in self.episodes for v in e.slos)

    @property
    def measured(self) -> Measured:
        """Each metric's worst value over the episodes (for one episode, its own)."""
        if len(self.episodes) == 1:
            return dict(self.episode.measured)
        worst: Measured = {}
        for e in self.episodes:
            for key, value in e.measured.items():
                if value is None:
                    worst.setdefault(key, None)
                    continue
                known = worst.get(key)
                lower = metric_of(key).better == "lower"
                if known is None or (value > known if lower else value < known):
                    worst[key] = value
        return worst

    def by_fault_kind(self) -> dict[str, FaultKindFigures]:
        """Outage and MTTR per fault kind over the episodes: median and worst."""
        kinds: dict[str, list[EpisodeResult]] = {}
        for e in self.episodes:
            kinds.setdefault(e.fault.kind, []).append(e)
        return {kind: FaultKindFigures.of(kind, found) for kind, found in sorted(kinds.items())}

    def seconds(self, t_ns: int) -> float:
        """``t_ns`` as seconds since the run's origin."""
        return round((t_ns - self.origin_ns) / 1e9, 6)

    def failures(self) -> list[str]:
        """One sentence per thing that failed the run: broken SLOs, an abort, steady state."""
        found = self._broken_messages()
        several = len(self.episodes) > 1
        if self.aborted:
            found.append(f"run aborted: {self.aborted}")
        checks = [("before", self.steady_state_before), ("after", self.steady_state_after)]
        if several:
            checks += [
                (f"after episode {e.index + 1}", e.steady_after)
                for e in self.episodes[:-1]
                if e.steady_after is not None
            ]
        for label, steady in checks:
            found += [
                f"steady state {label} the fault: {c.name}: {c.detail}" for c in steady.failures
            ]
        return found

    def assert_passed(self) -> None:
        """Raise AssertionError whose first line says what broke (for pytest scenarios)."""
        failures = self.failures()
        if failures:
            raise AssertionError("; ".join(failures) + f" (report: {self.run_dir}/report.html)")


def probe_windows(
    samples: tuple[ProbeSample, ...], origin_ns: int, end_ns: int, targets: list[str]
) -> tuple[tuple[ProbeWindow, ...], float]:
    """Probes per target per window, the window sized so an hour's run stays small (at
    most ~2,000 windows, never under 250 ms): the availability timeline of the report."""
    duration_s = max((end_ns - origin_ns) / 1e9, 0.0)
    window_s = max(0.25, duration_s / 2000)
    window_ns = int(window_s * 1e9)
    cells: dict[tuple[str, int], list[float]] = {}
    for s in samples:
        if s.target not in targets or s.intended_ns < origin_ns:
            continue
        key = (s.target, (s.intended_ns - origin_ns) // window_ns)
        cell = cells.setdefault(key, [0, 0, 0.0])
        cell[0] += 1
        cell[1] += s.outcome != "ok"
        cell[2] = max(cell[2], s.latency_us)
    windows = tuple(
        ProbeWindow(target, origin_ns + w * window_ns, int(c[0]), int(c[1]), c[2])
        for (target, w), c in sorted(cells.items())
    )
    return windows, window_s
