"""Probes: independent of any load, ask the frontend and every node for their head every
few milliseconds, and read HAProxy's view of its servers, so outages, detection and
recovery are measured rather than guessed.

Each probe target has a fixed schedule and a small pool of senders, one connection each,
so every probe goes out when it is due even while earlier ones wait: a slow service shows
as slow, not as down. A sample's latency is taken from its *intended* send time, and the
slots a stall kept every sender from taking are recorded as the timeouts they would have
been (coordinated omission corrected). Samples are appended to a JSONL
file as they come, so a killed run still leaves what it measured.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO

from harness.jsonrpc import Outcome, RpcClient, RpcFailure
from harness.measure.samples import FRONTEND, ProbeSample, SampleStore, ServerTransition
from harness.stack.haproxy import RuntimeApi
from harness.stack.model import Stack

log = logging.getLogger(__name__)


class Prober:
    """Probes a stack until stopped; a context manager. Thread-safe sample lists."""

    def __init__(
        self,
        stack: Stack,
        interval_s: float = 0.02,
        timeout_s: float = 0.5,
        samples_path: Path | None = None,
    ) -> None:
        if not 0.001 <= interval_s <= 10:
            raise ValueError(f"probe interval_s={interval_s} must be in [0.001, 10]")
        self.stack = stack
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._samples = SampleStore()
        self.transitions: list[ServerTransition] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._out: IO[str] | None = open(samples_path, "a") if samples_path else None  # noqa: SIM115

    def __enter__(self) -> Prober:
        state = self.stack.state()
        targets = [(FRONTEND, state.frontend_url)] + [(n.name, n.url) for n in state.nodes]
        for name, url in targets:
            thread = threading.Thread(target=self._probe_loop, args=(name, url), daemon=True)
            self._threads.append(thread)
        self._threads.append(
            threading.Thread(target=self._haproxy_loop, args=(state.stats_socket,), daemon=True)
        )
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 2)
        if self._out is not None:
            self._out.close()
            self._out = None

    def _keep(self, item: ProbeSample | ServerTransition) -> None:
        with self._lock:
            if isinstance(item, ProbeSample):
                self._samples.append(item)
            else:
                self.transitions.append(item)
            if self._out is not None:
                self._out.write(json.dumps({"type": type(item).__name__, **asdict(item)}) + "\n")

    def _probe_loop(self, name: str, url: str) -> None:
        """Due a probe every interval, each sent on time by an idle sender of a small pool
        (its own connection each): a slow answer delays no later probe, so a slow service
        is measured as slow, not as down. A slot no sender could take within the timeout
        (every one held by an unanswered probe: a stall) is recorded as the timeout it
        would have been, without being sent late (the coordinated-omission correction)."""
        interval_ns = int(self.interval_s * 1e9)
        # Enough senders for every slot of a timeout to be in flight at once; started only
        # as they are needed (a healthy service needs one or two), since each thread holds
        # a connection and memory.
        most = math.ceil(self.timeout_s / self.interval_s) + 2
        due_slots: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        pool: list[threading.Thread] = []

        def grow() -> None:
            thread = threading.Thread(
                target=self._send_loop, args=(name, url, due_slots), daemon=True
            )
            thread.start()
            pool.append(thread)

        grow()
        due = time.monotonic_ns()
        while True:
            pause_s = (due - time.monotonic_ns()) / 1e9
            if pause_s > 0 and self._stop.wait(pause_s):
                break
            if self._stop.is_set():
                break
            if due_slots.qsize() and len(pool) < most:  # the last slot found no idle sender
                grow()
            due_slots.put(due)
            due += interval_ns
        for _ in pool:
            due_slots.put(None)
        for thread in pool:
            thread.join(self.timeout_s + 2)

    def _send_loop(self, name: str, url: str, due_slots: queue.SimpleQueue[int | None]) -> None:
        timeout_ns = int(self.timeout_s * 1e9)
        with RpcClient(url, timeout_s=self.timeout_s) as client:
            while (due := due_slots.get()) is not None:
                if time.monotonic_ns() - due >= timeout_ns:
                    # Due while every sender waited on a stalled answer: a client sending
                    # on time would have timed out.
                    self._keep(ProbeSample(name, due, timeout_ns / 1000, Outcome.TIMEOUT.value))
                    continue
                head: int | None = None
                try:
                    head = client.block_number()
                    outcome = Outcome.OK.value
                except RpcFailure as exc:
                    outcome = exc.outcome.value
                latency_us = (time.monotonic_ns() - due) / 1000
                if outcome == Outcome.OK.value and latency_us > self.timeout_s * 1e6:
                    # Answered, but later than a client sending at the intended time would
                    # have waited: for that client it was a timeout (a stall, not a success).
                    outcome = Outcome.TIMEOUT.value
                self._keep(ProbeSample(name, due, latency_us, outcome, head))

    def _haproxy_loop(self, socket_path: str) -> None:
        api = RuntimeApi(socket_path, timeout_s=self.timeout_s)
        last: dict[str, str] = {}
        while not self._stop.is_set():
            try:
                servers = api.servers()
            except OSError:
                servers = []
            now = time.monotonic_ns()
            for s in servers:
                if last.get(s.server) != s.status:
                    last[s.server] = s.status
                    self._keep(ServerTransition(now, s.server, s.status, s.check_status))
            self._stop.wait(self.interval_s / 2)

    def snapshot(self, since_ns: int = 0) -> tuple[list[ProbeSample], list[ServerTransition]]:
        """The samples intended at or after ``since_ns`` (all by default), and every
        HAProxy transition seen."""
        # A sample is appended at most its timeout after it was due, plus the senders'
        # backlog drain: a few timeouts of slack.
        slack_ns = int((4 * self.timeout_s + 1) * 1e9)
        with self._lock:
            return self._samples.since(since_ns, slack_ns), list(self.transitions)
