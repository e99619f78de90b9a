"""From probe samples and HAProxy transitions to the numbers an operator asks for after a
fault: time to detect, client-visible outage, time to recover, availability per phase.

Definitions (all from the fault's effective time, t0):
- TTD: t0 to HAProxy first marking a faulted server DOWN (None if it never did).
- client-visible outage: from the intended time of the first failed frontend probe to the
  moment the first successful one after the last failure was *answered* (a probe sent
  during a stall and answered just after it is not proof the service was up when sent);
  0 if no frontend probe failed.
- MTTR (service): t0 to the end of the client-visible outage, or 0 if there was none.
- MTTR (component): t0 to the faulted node answering its own probe again (answered) and, if HAProxy
  had marked it DOWN, to HAProxy marking it UP again: back in rotation. On one chain
  (``in_sync``), answering means in sync too: a probe whose head is more than a block
  below the best head any node had answered by then does not count, so a node that
  restarted or resumed is back when it has replayed what it missed, as a real node is
  back when it has synced.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.measure.samples import FRONTEND, ProbeSample, ServerTransition


@dataclass(frozen=True)
class Phase:
    """A named window of monotonic time: [start_ns, end_ns)."""

    name: str
    start_ns: int
    end_ns: int

    def contains(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class PhaseStats:
    """Probe statistics of one target in one phase."""

    phase: str
    target: str
    probes: int
    failures: int
    availability_pct: float | None  # None: no probe fell in the phase
    p50_us: float | None
    p99_us: float | None
    max_us: float | None
    failure_classes: dict[str, int]


@dataclass(frozen=True)
class Recovery:
    """What happened after a fault, in seconds from its effective time."""

    ttd_s: float | None
    outage_s: float
    outage_start_s: float | None
    mttr_service_s: float
    mttr_component_s: float | None
    failed_probes: int


def answered_ns(sample: ProbeSample) -> int:
    """When a probe's answer arrived (its intended time plus its latency)."""
    return sample.intended_ns + int(sample.latency_us * 1000)


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def phase_stats(samples: Sequence[ProbeSample], phase: Phase, target: str) -> PhaseStats:
    mine = [s for s in samples if s.target == target and phase.contains(s.intended_ns)]
    latencies = sorted(s.latency_us for s in mine)
    failures: dict[str, int] = {}
    for s in mine:
        if s.outcome != "ok":
            failures[s.outcome] = failures.get(s.outcome, 0) + 1
    failed = sum(failures.values())
    return PhaseStats(
        phase=phase.name,
        target=target,
        probes=len(mine),
        failures=failed,
        availability_pct=100.0 * (len(mine) - failed) / len(mine) if mine else None,
        p50_us=percentile(latencies, 50),
        p99_us=percentile(latencies, 99),
        max_us=latencies[-1] if latencies else None,
        failure_classes=failures,
    )


def _in_sync_judge(samples: Sequence[ProbeSample]) -> Callable[[ProbeSample], bool]:
    """Whether a node's probe was answered ok with a head within a block of the best head
    any node's answer had shown by the time it was sent."""
    answers = sorted(
        (answered_ns(s), s.head)
        for s in samples
        if s.target != FRONTEND and s.outcome == "ok" and s.head is not None
    )
    times = [t for t, _ in answers]
    best: list[int] = []
    for _, head in answers:
        best.append(max(head, best[-1]) if best else head)  # type: ignore[arg-type]

    def good(s: ProbeSample) -> bool:
        if s.outcome != "ok" or s.head is None:
            return False
        seen = bisect_right(times, s.intended_ns)
        return seen == 0 or s.head >= best[seen - 1] - 1

    return good


def recovery(
    samples: Sequence[ProbeSample],
    transitions: Sequence[ServerTransition],
    fault_ns: int,
    faulted: Sequence[str],
    in_sync: bool = False,
) -> Recovery:
    """TTD, outage and MTTRs after a fault that became effective at ``fault_ns``."""
    after = sorted((s for s in samples if s.intended_ns >= fault_ns), key=lambda s: s.intended_ns)
    good = _in_sync_judge(samples) if in_sync else (lambda s: s.outcome == "ok")
    frontend = [s for s in after if s.target == FRONTEND]
    failed = [s for s in frontend if s.outcome != "ok"]
    if failed:
        first_fail, last_fail = failed[0], failed[-1]
        recovered = next(
            (s for s in frontend if s.intended_ns > last_fail.intended_ns and s.outcome == "ok"),
            None,
        )
        end_ns = answered_ns(recovered) if recovered else answered_ns(frontend[-1])
        outage_s = (end_ns - first_fail.intended_ns) / 1e9
        outage_start_s: float | None = (first_fail.intended_ns - fault_ns) / 1e9
        mttr_service_s = (end_ns - fault_ns) / 1e9
    else:
        outage_s, outage_start_s, mttr_service_s = 0.0, None, 0.0

    down = [
        t for t in transitions
        if t.t_ns >= fault_ns and t.server in faulted and t.status.startswith("DOWN")
    ]  # fmt: skip
    ttd_s = (down[0].t_ns - fault_ns) / 1e9 if down else None

    component_s: list[float] = []
    for name in faulted:
        own = [s for s in after if s.target == name]
        last_bad = max((s.intended_ns for s in own if not good(s)), default=None)
        answering = next(
            (
                s.intended_ns
                for s in own
                if good(s) and (last_bad is None or s.intended_ns > last_bad)
            ),
            None,
        )
        if answering is None:
            component_s = []
            break
        back_ns = answering
        went_down = [t for t in down if t.server == name]
        if went_down:
            up_again = next(
                (t.t_ns for t in transitions
                 if t.server == name and t.t_ns > went_down[0].t_ns and t.status == "UP"),
                None,
            )  # fmt: skip
            if up_again is None:
                component_s = []
                break
            back_ns = max(back_ns, up_again)
        component_s.append((back_ns - fault_ns) / 1e9)
    return Recovery(
        ttd_s=ttd_s,
        outage_s=outage_s,
        outage_start_s=outage_start_s,
        mttr_service_s=mttr_service_s,
        mttr_component_s=max(component_s) if component_s else None,
        failed_probes=len(failed),
    )
