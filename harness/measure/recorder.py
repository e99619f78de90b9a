"""The recorder: every load sample into HDR histograms per phase and per method, error
classes, and per-second timelines, in constant memory however long the run.

Samples are assigned to the phase their *intended* send time falls in: phases only move
forward, and a sample is never sent before it is due, so a sample that arrives after a
phase boundary was declared is still put on the right side of it. Latencies are recorded
in microseconds (resolution 1 us, up to 10 minutes; 3 significant digits for a phase, 2
for each method of it).

The per-second timeline carries exact p50, p99 and max of each second's samples: a second's
latencies are kept until no sample can still arrive for it (``OPEN_SECONDS`` behind the
newest), then reduced to those figures, so memory stays bounded over an hour-long run.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hdrh.histogram import HdrHistogram

MAX_US = 600_000_000
ALL = "all"
# A sample arrives at most its latency (the load's timeout, 5 s by default) plus the
# workers' 100 ms flush after it was due; seconds further behind the newest are closed.
OPEN_SECONDS = 30
# Heads answered to the load are kept per window of intended send time (the probes'
# window), the lowest of each: the most stale answer a client got then.
HEAD_WINDOW_NS = 250_000_000


class SampleLike(Protocol):
    @property
    def intended_ns(self) -> int: ...
    @property
    def latency_us(self) -> float: ...
    @property
    def method(self) -> str: ...
    @property
    def outcome(self) -> str: ...


def _histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(1, MAX_US, digits)


# A phase's own figures keep 3 significant digits (0.1%); each method's, 2 (1%), which
# is a tenth of the memory: a histogram's arrays (its counts and its encoder's) take
# 2 x 173 KiB at 3 digits, and a phase has one per method of the mix.
PHASE_DIGITS = 3
METHOD_DIGITS = 2


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in microseconds; all None when nothing was recorded."""

    p50_us: float | None = None
    p99_us: float | None = None
    p999_us: float | None = None
    max_us: float | None = None

    @classmethod
    def of(cls, h: HdrHistogram) -> Percentiles:
        if h.get_total_count() == 0:
            return cls()
        return cls(
            float(h.get_value_at_percentile(50)),
            float(h.get_value_at_percentile(99)),
            float(h.get_value_at_percentile(99.9)),
            float(h.get_max_value()),
        )


@dataclass(frozen=True)
class MethodStats:
    """One method in one phase."""

    count: int
    failed: int
    latency: Percentiles


@dataclass(frozen=True)
class LoadPhase:
    """What the load saw in one phase: counts, error classes, throughput, percentiles."""

    phase: str
    duration_s: float
    requests: int
    failed: int
    error_rate_pct: float
    throughput_rps: float
    errors: dict[str, int]
    latency: Percentiles
    methods: dict[str, MethodStats]


@dataclass(frozen=True)
class Second:
    """One second of intended send time (from the first phase): counts and exact latency
    figures of its samples (None for the percentiles of a second whose samples came too late
    to be kept)."""

    second: int
    ok: int
    failed: int
    max_us: float
    p50_us: float | None = None
    p99_us: float | None = None


@dataclass(frozen=True)
class LoadSummary:
    """The recorder's whole account of a run's load."""

    phases: tuple[LoadPhase, ...]
    timeline: tuple[Second, ...]
    before_first_phase: int
    # (window start ns, lowest head answered to eth_blockNumber) per HEAD_WINDOW_NS.
    heads: tuple[tuple[int, int], ...] = field(default=())

    def phase(self, name: str) -> LoadPhase | None:
        return next((p for p in self.phases if p.phase == name), None)


@dataclass(frozen=True)
class RecentLoad:
    """The load's last few seconds, by when the answers came: what a live view shows."""

    seconds: int
    requests: int
    failed: int
    p50_us: float | None
    p99_us: float | None

    @property
    def error_rate_pct(self) -> float | None:
        return 100.0 * self.failed / self.requests if self.requests else None


@dataclass
class _Cell:
    """What is known of one (phase, method). A histogram takes 173 KiB however few samples it
    holds, so one of a phase long over is kept encoded (HdrHistogram's own compressed form,
    exact, a few KiB) and decoded only when read, or when a very late sample comes."""

    _histogram: HdrHistogram | None
    ok: int = 0
    failed: int = 0
    _encoded: bytes | None = None

    def record(self, latency_us: int) -> None:
        if self._histogram is not None:
            self._histogram.record_value(latency_us)
            return
        assert self._encoded is not None  # a very late sample: decode, add, encode again
        histogram = HdrHistogram.decode(self._encoded)
        histogram.record_value(latency_us)
        self._encoded = histogram.encode()

    def percentiles(self) -> Percentiles:
        """Read without keeping a decoded copy: a summary mid-run must not undo compaction."""
        if self._histogram is not None:
            return Percentiles.of(self._histogram)
        assert self._encoded is not None
        return Percentiles.of(HdrHistogram.decode(self._encoded))

    def compact(self) -> None:
        if self._histogram is not None:
            self._encoded, self._histogram = self._histogram.encode(), None

    @property
    def compacted(self) -> bool:
        return self._histogram is None


@dataclass
class _Bucket:
    """One second while it fills: counts, and its latencies until it is closed."""

    ok: int = 0
    failed: int = 0
    max_us: float = 0.0
    latencies: array[float] | None = field(default_factory=lambda: array("d"))
    p50_us: float | None = None
    p99_us: float | None = None

    def add(self, latency_us: float, failed: bool) -> None:
        if failed:
            self.failed += 1
        else:
            self.ok += 1
        self.max_us = max(self.max_us, latency_us)
        if self.latencies is not None:
            self.latencies.append(latency_us)

    def close(self) -> None:
        if self.latencies is None:
            return
        values = sorted(self.latencies)
        self.latencies = None
        if values:
            self.p50_us = _nearest_rank(values, 50)
            self.p99_us = _nearest_rank(values, 99)

    def frozen(self, second: int) -> Second:
        """The second's figures; an open second's from what it holds so far."""
        p50, p99 = self.p50_us, self.p99_us
        if self.latencies is not None and self.latencies:
            values = sorted(self.latencies)
            p50, p99 = _nearest_rank(values, 50), _nearest_rank(values, 99)
        return Second(second, self.ok, self.failed, self.max_us, p50, p99)


def _counts(second: int, bucket: _Bucket) -> Second:
    return Second(second, bucket.ok, bucket.failed, bucket.max_us)


def _nearest_rank(sorted_values: list[float], pct: float) -> float:
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Recorder:
    """Thread-safe: the load reader thread adds, the experiment declares phases and reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: list[tuple[str, int]] = []
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._seconds: dict[int, _Bucket] = {}  # by second of intended send
        self._done_seconds: dict[int, _Bucket] = {}  # the same, by second of answer
        self._heads: dict[int, int] = {}
        self._newest_second = 0
        self._closed_below = 0
        self._newest_intended_ns = 0
        self._compacted_phases = 0  # the first phases whose histograms are encoded
        self.origin_ns: int | None = None
        self.before_first_phase = 0

    def begin_phase(self, name: str, t_ns: int) -> None:
        """Samples intended at or after ``t_ns`` belong to ``name`` (until the next phase)."""
        with self._lock:
            if self._phases and t_ns < self._phases[-1][1]:
                raise ValueError(f"phase {name!r} starts before phase {self._phases[-1][0]!r}")
            if any(name == known for known, _ in self._phases):
                raise ValueError(f"phase {name!r} was already begun: phase names are unique")
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
                        digits = PHASE_DIGITS if key[1] == ALL else METHOD_DIGITS
                        cell = self._cells[key] = _Cell(_histogram(digits))
                    cell.record(latency)
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
                    bucket = seconds.get(sec)
                    if bucket is None:
                        bucket = seconds[sec] = _Bucket()
                        if sec < self._closed_below:
                            bucket.latencies = None  # too late to be counted in a percentile
                    bucket.add(s.latency_us, failed)
                self._newest_second = max(self._newest_second, second)
                self._newest_intended_ns = max(self._newest_intended_ns, s.intended_ns)
                head = getattr(s, "head", None)
                if head is not None and not failed:
                    window = s.intended_ns // HEAD_WINDOW_NS
                    self._heads[window] = min(self._heads.get(window, head), head)
            self._close_old_seconds()
            self._compact_old_phases()

    def _compact_old_phases(self) -> None:
        """Encode the histograms of phases that ended more than `OPEN_SECONDS` before the
        newest sample: memory per phase then stays small however long a game day runs."""
        horizon = self._newest_intended_ns - OPEN_SECONDS * 1_000_000_000
        while self._compacted_phases + 1 < len(self._phases):
            name = self._phases[self._compacted_phases][0]
            ended_ns = self._phases[self._compacted_phases + 1][1]
            if ended_ns >= horizon:
                break
            for (phase, _), cell in self._cells.items():
                if phase == name:
                    cell.compact()
            self._compacted_phases += 1

    def _close_old_seconds(self) -> None:
        limit = self._newest_second - OPEN_SECONDS
        while self._closed_below < limit:
            for seconds in (self._seconds, self._done_seconds):
                bucket = seconds.get(self._closed_below)
                if bucket is not None:
                    bucket.close()
            self._closed_below += 1

    def timeline(self) -> list[Second]:
        """Per second of intended send since the first phase: counts and max latency."""
        with self._lock:
            return [_counts(sec, b) for sec, b in sorted(self._seconds.items())]

    def answered_timeline(self) -> list[Second]:
        """The same per second in which the answers came: what safeguards watch, since a
        stall shows there as it happens, while the seconds of intended send it delays are
        filled in only when their late answers come. Counts only: it is read 4x a second."""
        with self._lock:
            return [_counts(sec, b) for sec, b in sorted(self._done_seconds.items())]

    def recent(self, now_ns: int, seconds: int = 10) -> RecentLoad:
        """The answers of the ``seconds`` whole seconds before the current one (exact
        percentiles: those seconds are still open)."""
        with self._lock:
            if self.origin_ns is None:
                return RecentLoad(seconds, 0, 0, None, None)
            current = (now_ns - self.origin_ns) // 1_000_000_000
            buckets = [
                b for sec, b in self._done_seconds.items() if current - seconds <= sec < current
            ]
            latencies = sorted(v for b in buckets if b.latencies is not None for v in b.latencies)
            requests = sum(b.ok + b.failed for b in buckets)
            failed = sum(b.failed for b in buckets)
        return RecentLoad(
            seconds,
            requests,
            failed,
            _nearest_rank(latencies, 50) if latencies else None,
            _nearest_rank(latencies, 99) if latencies else None,
        )

    def summary(self, end_ns: int) -> LoadSummary:
        """Per phase: counts, error rate and classes, throughput, percentiles overall and
        per method; the per-second timeline with exact per-second percentiles; the heads."""
        with self._lock:
            bounds = [(n, s, self._phases[i + 1][1] if i + 1 < len(self._phases) else end_ns)
                      for i, (n, s) in enumerate(self._phases)]  # fmt: skip
            phases = []
            for name, start, end in bounds:
                total = self._cells.get((name, ALL))
                count = (total.ok + total.failed) if total else 0
                duration_s = max((end - start) / 1e9, 1e-9)
                methods = {
                    method: MethodStats(cell.ok + cell.failed, cell.failed, cell.percentiles())
                    for (phase, method), cell in sorted(self._cells.items())
                    if phase == name and method != ALL
                }
                phases.append(
                    LoadPhase(
                        phase=name,
                        duration_s=round(duration_s, 6),
                        requests=count,
                        failed=total.failed if total else 0,
                        error_rate_pct=100.0 * total.failed / count if total and count else 0.0,
                        throughput_rps=count / duration_s,
                        errors={o: c for (p, o), c in sorted(self._errors.items()) if p == name},
                        latency=total.percentiles() if total else Percentiles(),
                        methods=methods,
                    )
                )
            timeline = tuple(b.frozen(sec) for sec, b in sorted(self._seconds.items()))
            heads = tuple((w * HEAD_WINDOW_NS, h) for w, h in sorted(self._heads.items()))
        return LoadSummary(tuple(phases), timeline, self.before_first_phase, heads)
