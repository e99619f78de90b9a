"""The recorder: every load sample into HDR histograms per phase and per method, error
classes, and a per-second timeline, in constant memory however long the run.

Samples are assigned to the phase their *intended* send time falls in: phases only move
forward, and a sample is never sent before it is due, so a sample that arrives after a
phase boundary was declared is still put on the right side of it. Latencies are recorded
in microseconds (resolution 1 us, 3 significant digits, up to 10 minutes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram

MAX_US = 600_000_000
ALL = "all"


class SampleLike(Protocol):
    @property
    def intended_ns(self) -> int: ...
    @property
    def latency_us(self) -> float: ...
    @property
    def method(self) -> str: ...
    @property
    def outcome(self) -> str: ...


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_US, 3)


@dataclass
class _Cell:
    """What is known of one (phase, method)."""

    histogram: HdrHistogram
    ok: int = 0
    failed: int = 0


def _percentiles(h: HdrHistogram) -> dict[str, float | None]:
    if h.get_total_count() == 0:
        return {"p50_us": None, "p99_us": None, "p999_us": None, "max_us": None}
    return {
        "p50_us": float(h.get_value_at_percentile(50)),
        "p99_us": float(h.get_value_at_percentile(99)),
        "p999_us": float(h.get_value_at_percentile(99.9)),
        "max_us": float(h.get_max_value()),
    }


class Recorder:
    """Thread-safe: the load reader thread adds, the experiment declares phases and reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: list[tuple[str, int]] = []
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._seconds: dict[int, list[float]] = {}  # second -> [ok, failed, max_us]
        self._done_seconds: dict[int, list[float]] = {}  # the same, by second of answer
        self.origin_ns: int | None = None
        self.before_first_phase = 0

    def begin_phase(self, name: str, t_ns: int) -> None:
        """Samples intended at or after ``t_ns`` belong to ``name`` (until the next phase)."""
        with self._lock:
            if self._phases and t_ns < self._phases[-1][1]:
                raise ValueError(f"phase {name!r} starts before phase {self._phases[-1][0]!r}")
            self._phases.append((name, t_ns))
            if self.origin_ns is None:
                self.origin_ns = t_ns

    def _phase_of(self, t_ns: int) -> str | None:
        found = None
        for name, start in self._phases:
            if t_ns >= start:
                found = name
            else:
                break
        return found

    def add(self, samples: Iterable[SampleLike]) -> None:
        with self._lock:
            for s in samples:
                phase = self._phase_of(s.intended_ns)
                if phase is None:
                    self.before_first_phase += 1
                    continue
                latency = min(max(1, round(s.latency_us)), MAX_US)
                failed = s.outcome != "ok"
                for key in ((phase, s.method), (phase, ALL)):
                    cell = self._cells.get(key)
                    if cell is None:
                        cell = self._cells[key] = _Cell(_histogram())
                    cell.histogram.record_value(latency)
                    if failed:
                        cell.failed += 1
                    else:
                        cell.ok += 1
                if failed:
                    key = (phase, s.outcome)
                    self._errors[key] = self._errors.get(key, 0) + 1
                assert self.origin_ns is not None
                second = (s.intended_ns - self.origin_ns) // 1_000_000_000
                # Answered at intended + latency (to within the sender's timer lateness).
                done = (s.intended_ns + int(s.latency_us * 1000) - self.origin_ns) // 1_000_000_000
                for seconds, sec in ((self._seconds, second), (self._done_seconds, done)):
                    bucket = seconds.setdefault(sec, [0, 0, 0.0])
                    bucket[1 if failed else 0] += 1
                    bucket[2] = max(bucket[2], s.latency_us)

    def timeline(self) -> list[dict[str, float]]:
        """Per second of intended send since the first phase: ok, failed, max latency."""
        with self._lock:
            return _seconds(self._seconds)

    def answered_timeline(self) -> list[dict[str, float]]:
        """The same per second in which the answers came: what safeguards watch, since a
        stall shows there as it happens, while the seconds of intended send it delays are
        filled in only when their late answers come."""
        with self._lock:
            return _seconds(self._done_seconds)

    def summary(self, end_ns: int) -> dict[str, Any]:
        """Per phase: counts, error rate and classes, throughput, percentiles overall and
        per method; and the per-second timeline."""
        with self._lock:
            bounds = [(n, s, self._phases[i + 1][1] if i + 1 < len(self._phases) else end_ns)
                      for i, (n, s) in enumerate(self._phases)]  # fmt: skip
            phases = []
            for name, start, end in bounds:
                total = self._cells.get((name, ALL))
                count = (total.ok + total.failed) if total else 0
                duration_s = max((end - start) / 1e9, 1e-9)
                methods = {
                    method: {
                        "count": cell.ok + cell.failed,
                        "failed": cell.failed,
                        **_percentiles(cell.histogram),
                    }
                    for (phase, method), cell in sorted(self._cells.items())
                    if phase == name and method != ALL
                }
                phases.append(
                    {
                        "phase": name,
                        "duration_s": round(duration_s, 6),
                        "requests": count,
                        "failed": total.failed if total else 0,
                        "error_rate_pct": 100.0 * total.failed / count if total and count else 0.0,
                        "throughput_rps": count / duration_s,
                        "errors": {o: c for (p, o), c in sorted(self._errors.items()) if p == name},
                        **_percentiles(total.histogram if total else _histogram()),
                        "methods": methods,
                    }
                )
            timeline = _seconds(self._seconds)
        return {
            "phases": phases,
            "timeline": timeline,
            "before_first_phase": self.before_first_phase,
        }


def _seconds(buckets: dict[int, list[float]]) -> list[dict[str, float]]:
    return [
        {"second": sec, "ok": int(b[0]), "failed": int(b[1]), "max_us": b[2]}
        for sec, b in sorted(buckets.items())
    ]
