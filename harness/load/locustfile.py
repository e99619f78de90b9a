"""The harness's Locust user: JSON-RPC load with every sample timed from its intended send.

Runs inside Locust worker processes (gevent), never in the pytest process. Configured by
the runner through ``HARNESS_LOAD_*`` environment variables. Each worker process shares
one `RequestFactory` among its users (gevent is single-threaded, so its nonce counter is
safe) and appends every sample to ``<samples dir>/samples-<pid>.txt`` as

    <intended_ns> <latency_us> <method label> <outcome>

flushed every 100 ms, so the harness reads samples as they come and a killed run keeps
what it measured. ``intended_ns`` is ``time.monotonic_ns()``: the harness's clock too.

What clients saw, for the checker (`harness.measure.observations`): each answer to a
checked method (eth_blockNumber, eth_getBlockByNumber, eth_getLogs,
eth_getTransactionReceipt; about a quarter of the searcher mix) is also appended, with its
session (``<pid>.<user>``), send and answer times, request parameters and a summary of the
result, to ``<samples dir>/checks-<pid>.txt``, flushed with the samples. Samples and
Locust's statistics are the same with or without it; ``HARNESS_LOAD_CHECKS=0`` turns it off.

A worker on another machine (``HARNESS_LOAD_SEND_SAMPLES=1``, set by the script the
runner writes) cannot reach that directory: it sends the same lines to the master as a
``harness_samples`` message, and the master (this file, in master mode) appends them to
``samples-remote-<worker id>.txt``, and its observations to ``checks-remote-<worker
id>.txt`` (their sessions prefixed with the worker id). A message carries the worker's
monotonic clock at sending; the master moves every ``intended_ns`` (and an observation's
send and answer times) onto its own clock (the harness's: same host) by the smallest
receive-minus-send difference seen from that worker, so a remote sample's time is late by
at most the network's one-way delay.

Two load models:
- closed: Locust's own: a user sends, waits for the answer, thinks ``wait_ms``, sends again.
- open: a constant arrival rate ``HARNESS_LOAD_RATE`` (req/s) shared by all users; each
  user keeps a fixed schedule, and a request that could not be sent when due because the
  user was still waiting for its previous answer is measured from when it was due, so a
  stall counts in full (coordinated omission corrected, as wrk2 does). A user that was
  idle and merely woke late (gevent's timers have millisecond granularity) is timed from
  the send: that lateness is the load generator's, not the system's.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import User, constant, events, task
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner, Runner, WorkerRunner

from harness.jsonrpc import classify_exception
from harness.load.client import RpcConnection
from harness.load.workload import RequestFactory, classify, load_profile, sample_context
from harness.measure.observations import CHECKED_LABELS, move_line, observation_line, summarize

ENV = os.environ
TARGET = ENV.get("HARNESS_LOAD_TARGET", "http://127.0.0.1:8545/")
MODEL = ENV.get("HARNESS_LOAD_MODEL", "closed")
RATE_PER_S = float(ENV.get("HARNESS_LOAD_RATE", "0") or 0)
USERS_TOTAL = int(ENV.get("HARNESS_LOAD_USERS", "1"))
WAIT_S = float(ENV.get("HARNESS_LOAD_WAIT_MS", "0")) / 1000
SEED = int(ENV.get("HARNESS_LOAD_SEED", "0"))
SAMPLES_DIR = Path(ENV.get("HARNESS_LOAD_SAMPLES_DIR", "."))
CONTRACT = ENV.get("HARNESS_LOAD_CONTRACT", "")
ACCOUNTS = int(ENV.get("HARNESS_LOAD_ACCOUNTS", "10"))
REFRESH_S = float(ENV.get("HARNESS_LOAD_REFRESH_S", "1.0"))
TIMEOUT_S = float(ENV.get("HARNESS_LOAD_TIMEOUT_S", "5.0"))
SEND_SAMPLES = ENV.get("HARNESS_LOAD_SEND_SAMPLES") == "1"
CHECKS = ENV.get("HARNESS_LOAD_CHECKS", "1") != "0"
SAMPLES_MESSAGE = "harness_samples"


def _head_of(body: bytes) -> int | None:
    """The block number of an answered eth_blockNumber, or None if it is not one."""
    try:
        return int(json.loads(body)["result"], 16)
    except (ValueError, TypeError, KeyError):
        return None


class _Process:
    """What the users of one worker process share: the request factory and the sample file."""

    factory: RequestFactory | None = None
    lines: list[str] = []
    out: Any = None
    checks: list[str] = []  # observation lines (harness.measure.observations)
    checks_out: Any = None
    users = itertools.count()
    runner: Runner | None = None

    starting = False
    ready = gevent.event.Event()

    @classmethod
    def start(cls, runner: Runner | None) -> None:
        """Set the process up once; every user waits for it. The flag is claimed before
        anything yields: sampling the chain is network I/O, and gevent would let all the
        other users in (each spawning its own refresher, 32x the sampling traffic)."""
        if cls.starting:
            cls.ready.wait()
            return
        cls.starting = True
        cls.runner = runner
        # Every worker, on this machine or another, gets a distinct index from the master
        # (0 .. workers + remote workers - 1); a standalone process is worker 0.
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        profile = load_profile(ENV.get("HARNESS_LOAD_PROFILE", "searcher"))
        context = sample_context(TARGET, CONTRACT, accounts=ACCOUNTS)
        # Account 0 is left to people; each worker signs from an account of its own, so
        # their nonces never collide.
        cls.factory = RequestFactory(
            profile, context, seed=SEED * 1000 + index, account_index=1 + index
        )
        if not SEND_SAMPLES:
            SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
            cls.out = open(SAMPLES_DIR / f"samples-{os.getpid()}.txt", "a")  # noqa: SIM115
            if CHECKS:
                cls.checks_out = open(SAMPLES_DIR / f"checks-{os.getpid()}.txt", "a")  # noqa: SIM115
        gevent.spawn(cls._flush_forever)
        gevent.spawn(cls._refresh_forever)
        cls.ready.set()

    @classmethod
    def _flush_forever(cls) -> None:
        while True:
            gevent.sleep(0.1)
            cls.flush()

    @classmethod
    def flush(cls) -> None:
        if not cls.lines and not cls.checks:
            return
        if SEND_SAMPLES and isinstance(cls.runner, WorkerRunner):
            lines, cls.lines = cls.lines, []
            checks, cls.checks = cls.checks, []
            data = {"lines": "".join(lines), "sent_ns": time.monotonic_ns()}
            if checks:
                data["checks"] = "".join(checks)
            cls.runner.send_message(SAMPLES_MESSAGE, data)
        elif cls.out is not None:
            lines, cls.lines = cls.lines, []
            cls.out.write("".join(lines))
            cls.out.flush()
            if cls.checks_out is not None:
                checks, cls.checks = cls.checks, []
                cls.checks_out.write("".join(checks))
                cls.checks_out.flush()

    @classmethod
    def _refresh_forever(cls) -> None:
        """New head, new parameters: searchers re-read the chain every block."""
        while True:
            gevent.sleep(REFRESH_S)
            try:
                context = sample_context(TARGET, CONTRACT, accounts=ACCOUNTS)
            except Exception:  # the target is down: keep the old parameters
                continue
            if cls.factory is not None:
                cls.factory.update(context)


def _on_quit(**_: Any) -> None:
    _Process.flush()


events.quitting.add_listener(_on_quit)  # type: ignore[no-untyped-call]


class _RemoteSamples:
    """In the master: appends each remote worker's sample lines, moved onto this host's
    monotonic clock, to a file of its own."""

    files: dict[str, Any] = {}
    checks_files: dict[str, Any] = {}
    offsets_ns: dict[str, int] = {}

    @classmethod
    def store(cls, environment: Environment, msg: Message, **_: Any) -> None:
        received = time.monotonic_ns()
        data = msg.data if isinstance(msg.data, dict) else {}
        lines, sent = data.get("lines"), data.get("sent_ns")
        if not isinstance(lines, str) or not isinstance(sent, int):
            return
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(msg.node_id))
        # Receive minus send is the clock offset plus the message's delay; the smallest
        # seen is the closest to the offset alone.
        offset = cls.offsets_ns[name] = min(
            cls.offsets_ns.get(name, received - sent), received - sent
        )
        out = cls.files.get(name)
        if out is None:
            SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
            out = cls.files[name] = open(  # noqa: SIM115 - open for the master's life
                SAMPLES_DIR / f"samples-remote-{name}.txt", "a"
            )
        moved = []
        for line in lines.splitlines():
            intended, sep, rest = line.partition(" ")
            if sep and intended.isdigit():
                moved.append(f"{int(intended) + offset} {rest}\n")
        out.write("".join(moved))
        out.flush()
        checks = data.get("checks")
        if isinstance(checks, str):
            cls.store_checks(name, offset, checks)

    @classmethod
    def store_checks(cls, name: str, offset: int, checks: str) -> None:
        out = cls.checks_files.get(name)
        if out is None:
            out = cls.checks_files[name] = open(  # noqa: SIM115 - open for the master's life
                SAMPLES_DIR / f"checks-remote-{name}.txt", "a"
            )
        moved = (move_line(line, offset, name) for line in checks.splitlines())
        out.write("".join(line for line in moved if line is not None))
        out.flush()


def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(SAMPLES_MESSAGE, _RemoteSamples.store)


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]


class RpcFailed(Exception):
    """What Locust's statistics see of a failed call: its outcome."""


class JsonRpcUser(User):
    """A searcher bot: sends the profile's mix of JSON-RPC calls to the target.

    Its client is the harness's own (`RpcConnection`): a latency ends when the kernel
    received the answer, not when this gevent worker got round to reading it.
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        _Process.start(self.environment.runner)
        self._connection = RpcConnection(TARGET, TIMEOUT_S)
        # One user, one connection, one request at a time: a session of the checker's.
        self._session = f"{os.getpid()}.{next(_Process.users)}"
        self._interval_ns = int(1e9 * USERS_TOTAL / RATE_PER_S) if MODEL == "open" else 0
        # A random phase per user spreads the schedule instead of sending in lockstep.
        self._due_ns = time.monotonic_ns() + random.randrange(max(1, self._interval_ns))

    def on_stop(self) -> None:
        self._connection.close()

    @task
    def call(self) -> None:
        factory = _Process.factory
        assert factory is not None
        due = 0  # open model, and the user was busy when this request fell due: its due time
        if self._interval_ns:
            intended = self._due_ns
            self._due_ns += self._interval_ns
            now = time.monotonic_ns()
            if now < intended:
                # Idle when the request fell due: any lateness from here on is the timer's
                # (gevent wakes up to a millisecond late), not the system's; time it from
                # the send.
                gevent.sleep((intended - now) / 1e9)
            else:
                # Busy past its due time (the previous answer was late): time it from the
                # due time, so a stall is counted in full.
                due = intended
        label, body = factory.next()
        sent = time.monotonic_ns()
        try:
            answer = self._connection.post(body)
        except Exception as exc:  # every failure is a sample, never a crashed user
            done = time.monotonic_ns()
            outcome = classify_exception(exc).value
            reply = b""
        else:
            sent, done = answer.sent_ns, answer.answered_ns
            outcome = classify(answer.status, answer.body, label == "batch")
            reply = answer.body
        size = len(reply)
        if CHECKS and label in CHECKED_LABELS:
            result = summarize(label, outcome == "ok", reply) if size else "-"
            _Process.checks.append(
                observation_line(sent, done, self._session, label, outcome, result, body)
            )
        start = due or sent
        if not self._interval_ns:
            intended = sent
        self.environment.events.request.fire(
            request_type="POST",
            name=label,
            response_time=(done - start) / 1e6,
            response_length=size,
            exception=None if outcome == "ok" else RpcFailed(outcome),
            context={},
        )
        line = f"{intended} {(done - start) / 1000:.1f} {label} {outcome}"
        if label == "eth_blockNumber" and outcome == "ok":
            # The head a client was told: what frontend head lag is measured from.
            head = _head_of(answer.body)
            if head is not None:
                line += f" {head}"
        _Process.lines.append(line + "\n")
        if WAIT_S and not self._interval_ns:
            gevent.sleep(WAIT_S)
