"""A run's instruments while it goes: probes, the load, the recorder, and the safeguards.

One `LiveRun` spans every episode of a run: the probes and the load start once, after the
stack reached its steady state, and stop once, after the last episode. Safeguards watch
the load throughout; when one trips, every sleep of the run is cut short, the fault in
effect is reverted by its own ``with`` block, and no further episode starts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.experiment.spec import ExperimentSpec
from harness.jsonrpc import RpcClient
from harness.load.runner import LoadRun, accounts_needed
from harness.load.workload import prepare_chain
from harness.measure import Prober, ProbeSample, ServerTransition
from harness.measure.host import HostStall, HostWatch
from harness.measure.recorder import LoadSummary, RecentLoad, Recorder
from harness.stack.model import Stack, StackState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadInfo:
    """How the load ran, beside what the recorder made of its samples."""

    url: str
    samples: int
    duration_s: float
    generator_health: dict[str, object]
    samples_dir: str
    summary: LoadSummary


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a live view: the episode, its phase, what has been judged so far
    (provisionally: the final verdict comes with the whole run's samples), and the load's
    last ten seconds."""

    elapsed_s: float
    episode: int | None  # 0-based index of the episode under way
    episodes: int
    phase: str  # starting, baseline, fault, recovery, steady, done
    fault: str
    done: int
    failed: int
    recent: RecentLoad | None
    aborted: str | None


ProgressCallback = Callable[[Progress], None]


class StopRequest:
    """A request to end a run early, from outside it (a signal handler): set it, and the
    run's watcher stops the run within a quarter of a second, as a safeguard would."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = threading.Event()

    def ask(self, reason: str) -> None:
        """Safe from a signal handler: it only records and sets."""
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class Observations:
    """Everything the instruments saw, once they stopped."""

    origin_ns: int
    end_ns: int
    samples: tuple[ProbeSample, ...]
    transitions: tuple[ServerTransition, ...]
    load: LoadInfo | None
    aborted: str | None
    #: When the machine itself stalled (`harness.measure.host`).
    host_stalls: tuple[HostStall, ...] = ()


def _prepare(state: StackState, accounts: int) -> str:
    """The workload contract on every node: deployed on each chain, or on one chain's
    source and then waited for on every node (the replicator replays it)."""
    if state.chain != "one" or not state.chain_source_url or not state.replicator_url:
        # Chains of their own: each anvil mines the set-up's blocks at once (two fewer block
        # times before the load starts); other clients' chains are left to their own pace.
        mine_now = all(n.kind == "anvil" for n in state.nodes)
        return prepare_chain([n.url for n in state.nodes], accounts=accounts, mine_now=mine_now)
    from harness.chain import ReplicatorClient

    contract = prepare_chain(
        [state.chain_source_url], accounts=accounts, by_transactions=True, mine_now=True
    )
    with RpcClient(state.chain_source_url, timeout_s=2.0) as source:
        deployed = source.block_number()
    client = ReplicatorClient(state.replicator_url)
    deadline = time.monotonic() + 30
    while (client.wait_synced(timeout_s=30).source.head or 0) < deployed:
        if time.monotonic() > deadline:
            raise StackError(f"the nodes did not replay the source's block {deployed} in 30 s")
        time.sleep(0.05)
    return contract


class LiveRun:
    """Probes, load and safeguards over a stack, for the duration of a ``with`` block."""

    def __init__(
        self,
        stack: Stack,
        spec: ExperimentSpec,
        run_dir: Path,
        progress: ProgressCallback | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.stack = stack
        self.spec = spec
        self.run_dir = run_dir
        self._progress = progress
        self._stop_request = stop
        self._where: tuple[int | None, str, str] = (None, "starting", "")
        self.done = 0
        self.failed = 0
        self.recorder = Recorder()
        self.abort = threading.Event()
        self.reason: str | None = None
        self.origin_ns = 0
        self.prober: Prober | None = None
        self._host: HostWatch | None = None
        self._load: LoadRun | None = None
        self._exit = contextlib.ExitStack()
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="safeguards", daemon=True)
        self._observations: Observations | None = None

    def __enter__(self) -> LiveRun:
        state = self.stack.state()
        with self._exit:
            self._host = self._exit.enter_context(HostWatch(self.run_dir / "host_stalls.jsonl"))
            if self.spec.load is not None:
                contract = _prepare(state, accounts_needed(self.spec.load))
                self._load = LoadRun(
                    self.spec.load, load_url(self.spec.load_at, state),
                    self.run_dir / "load", contract, self.recorder.add,
                )  # fmt: skip
            self.prober = self._exit.enter_context(
                Prober(
                    self.stack,
                    self.spec.probe_interval_s,
                    samples_path=self.run_dir / "probes.jsonl",
                )
            )
            if self._load is not None:
                self._exit.enter_context(self._load)
            self._watcher.start()
            self._exit.callback(self._done.set)
            if self.spec.load is not None:
                self.sleep(self.spec.load.warmup_s)  # the users' start-up: never a phase
            self.origin_ns = time.monotonic_ns()
            self._exit = self._exit.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        end_ns = time.monotonic_ns()
        self._exit.close()
        assert self.prober is not None
        samples, transitions = self.prober.snapshot()
        load = None
        if self._load is not None:
            run = self._load
            load = LoadInfo(
                url=run.target_url,
                samples=run.sample_count,
                duration_s=round(max((run.stopped_ns - run.started_ns) / 1e9, 0.0), 3),
                generator_health=dict(getattr(run, "health_at_end", {})),
                samples_dir=str(run.samples_dir),
                summary=self.recorder.summary(end_ns),
            )
        self._observations = Observations(
            self.origin_ns,
            end_ns,
            tuple(samples),
            tuple(transitions),
            load,
            self.reason,
            self._host.stalls if self._host is not None else (),
        )

    @property
    def observations(self) -> Observations:
        """What was seen; available once the ``with`` block has ended."""
        if self._observations is None:
            raise RuntimeError("the run is still going: observations come at its end")
        return self._observations

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a safeguard trips (or a stop is asked) meanwhile."""
        self.abort.wait(seconds)

    @property
    def aborted(self) -> bool:
        return self.abort.is_set()

    def request_stop(self, reason: str) -> None:
        """End the run early, as a safeguard would: the fault in effect is reverted by its
        own ``with`` block, no further episode starts, and the report is written."""
        if not self.abort.is_set():
            self.reason = reason
            log.warning("ending the run: %s", reason)
            self.abort.set()

    def mark(self, episode: int | None, phase: str, fault: str = "") -> None:
        """Where the run is now (for the live view)."""
        self._where = (episode, phase, fault)
        self._report()

    def judged(self, passed: bool) -> None:
        """One more episode over, provisionally judged."""
        self.done += 1
        self.failed += not passed
        self._report()

    def snapshot(self, since_ns: int = 0) -> Observations:
        """What the instruments saw so far (the probes' since ``since_ns``), while the run
        goes on: for provisional verdicts. Only the window asked for is materialised, so a
        long day's memory does not ratchet up with each episode's judgement."""
        assert self.prober is not None
        now = time.monotonic_ns()
        samples, transitions = self.prober.snapshot(since_ns)
        load = None
        if self._load is not None:
            run = self._load
            load = LoadInfo(
                run.target_url, run.sample_count, 0.0, {}, str(run.samples_dir),
                self.recorder.summary(now),
            )  # fmt: skip
        stalls = self._host.so_far() if self._host is not None else ()
        return Observations(
            self.origin_ns, now, tuple(samples), tuple(transitions), load, self.reason, stalls
        )

    def progress(self) -> Progress:
        episode, phase, fault = self._where
        recent = self.recorder.recent(time.monotonic_ns()) if self._load is not None else None
        return Progress(
            elapsed_s=(time.monotonic_ns() - self.origin_ns) / 1e9 if self.origin_ns else 0.0,
            episode=episode,
            episodes=len(self.spec.episodes),
            phase=phase,
            fault=fault,
            done=self.done,
            failed=self.failed,
            recent=recent,
            aborted=self.reason,
        )

    def _report(self) -> None:
        if self._progress is None:
            return
        try:
            self._progress(self.progress())
        except Exception:  # a live view must never break the run it shows
            log.exception("the progress callback failed")

    def _watch(self) -> None:
        """Safeguards, four times a second; the live view, once a second."""
        ticks = 0
        while not self._done.wait(0.25):
            ticks += 1
            if ticks % 4 == 0:
                self._report()
            if self.abort.is_set():
                continue
            if self._stop_request is not None and self._stop_request.is_set():
                self.request_stop(self._stop_request.reason or "stopped")
                continue
            timeline = self.recorder.answered_timeline()
            for guard in self.spec.safeguards:
                if guard.breached(timeline):
                    self.request_stop(f"safeguard tripped: {guard}")
                    break


def load_url(load_at: str, state: StackState) -> str:
    """The URL the load goes to: HAProxy's frontend, or one node's own port."""
    if load_at == "frontend":
        return state.frontend_url
    if load_at == "primary":
        return next(n for n in state.nodes if n.role == "primary").url
    return state.component(load_at).url
