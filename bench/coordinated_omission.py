"""Coordinated omission: the only backend paused for exactly 2 s under an open load; the
harness's p99 for the run against the truth computed from the intended send times.

A 1-node stack; load through its HAProxy frontend (a 2 s pause is too short for the health
check to mark the node DOWN, so every request waits for the node). The harness runs as an
experiment runs it (`LoadRun`, open model, ``light`` profile, LoadSpec's default users, one
worker, samples into a `Recorder` whose "run" phase spans the measured window) while
`harness.faults.Pause` stops the node with SIGSTOP for 2.000 s.

The truth: for each request the harness intended to send in the window (its due times;
their count is checked against the offered rate x the window), the base latency, or, if it
fell due while the node was stopped (from the fault record's effective to reverted time),
the wait until the node resumed plus the base. Base is the target's median latency measured
here first (sequential requests of the same bodies with http.client): independent of the
harness, and under a millisecond either way. The truth over an even schedule (one request
every 1/rate s) is printed beside: the harness's users start at random phases, so its due
times clump and gap a little, and the top 1% of a 10 s run is the first ~100 ms of the pause.

Beside it: bare Locust (`bare_locustfile.py`, same bodies, same users, each paced to the
same overall rate with Locust's ``constant_pacing``, a closed loop as Locust users are)
under the same pause, with p99 from Locust's own stats; and Locust's own p99 of the
harness's run (timed from the send, as Locust times it). Rounds alternate (ABBA).

    .venv/bin/python bench/coordinated_omission.py [--rate 100] [--users 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-co-")
os.environ["HARNESS_STATE_DIR"] = _STATE.name

from bare_locust import (  # noqa: E402
    PERCENTILES,
    bare_locust,
    locust_figures,
    locust_json_for_harness,
    write_bodies,
)

from harness.faults import FaultRecord, Pause  # noqa: E402
from harness.load import LoadRun, LoadSpec, Sample, prepare_chain  # noqa: E402
from harness.load.runner import accounts_needed  # noqa: E402
from harness.measure.recorder import Recorder  # noqa: E402
from harness.stack import LocalStack, StackSpec  # noqa: E402

PROFILE = "light"
WARMUP_S = 1.5  # every user spawned and on its schedule
BEFORE_S = 3.0  # measured, before the pause
PAUSE_S = 2.0
AFTER_S = 5.0  # measured, after the pause: the backlog is answered well within it


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of values at or below it (as HDR)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def paused_node(stack: LocalStack) -> FaultRecord:
    """BEFORE_S of load, the node stopped for PAUSE_S, AFTER_S of load; the fault's record."""
    time.sleep(BEFORE_S)
    with Pause(stack, "node-0") as fault:
        time.sleep(PAUSE_S)
    time.sleep(AFTER_S)
    assert fault.record is not None
    return fault.record


@dataclass(frozen=True)
class HarnessRun:
    p99_us: float  # of the "run" phase, from the harness's Recorder
    samples: list[Sample]  # due in the measured window
    window: tuple[int, int]  # monotonic ns
    record: FaultRecord
    locust_json: Path  # the harness's own Locust's final stats

    def truth_us(self, base_us: float, rate_per_s: float | None = None) -> list[float]:
        """True latencies of the harness's due times, or of an even schedule at a rate."""
        start, end = self.window
        stopped, resumed = self.record.effective_ns, self.record.reverted_ns
        if rate_per_s is None:
            due = [s.intended_ns for s in self.samples]
        else:
            period_ns = 1e9 / rate_per_s
            due = [
                int(start + (k + 0.5) * period_ns) for k in range(int((end - start) / period_ns))
            ]
        return [(resumed - t) / 1000 + base_us if stopped <= t < resumed else base_us for t in due]


def base_latency_us(url: str, bodies: Path, count: int = 400) -> float:
    """The target's median latency, one request at a time, for the same bodies."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    latencies = []
    try:
        for line in bodies.read_text().splitlines()[:count]:
            body = json.loads(line)[1].encode()
            sent = time.perf_counter_ns()
            conn.request("POST", "/", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            latencies.append((time.perf_counter_ns() - sent) / 1000)
    finally:
        conn.close()
    return statistics.median(latencies)


def harness_run(
    stack: LocalStack, contract: str, users: int, rate_per_s: float, work: Path
) -> HarnessRun:
    spec = LoadSpec(profile=PROFILE, model="open", rate_per_s=rate_per_s, users=users, workers=1)
    recorder = Recorder()
    got: list[Sample] = []

    def on_samples(samples: list[Sample]) -> None:
        got.extend(samples)
        recorder.add(samples)

    with (
        locust_json_for_harness(work / "conf", work / "locust") as json_file,
        LoadRun(spec, stack.frontend_url, work / "samples", contract, on_samples),
    ):
        time.sleep(WARMUP_S)
        start = time.monotonic_ns()
        recorder.begin_phase("run", start)
        record = paused_node(stack)
        end = time.monotonic_ns()
        recorder.begin_phase("after", end)
    run = recorder.summary(end).phases[0]
    assert run["phase"] == "run"
    window = [s for s in got if start <= s.intended_ns < end]
    assert run.requests == len(window), (run.requests, len(window))
    return HarnessRun(run.latency.p99_us, window, (start, end), record, json_file)


def bare_run(
    stack: LocalStack, bodies: Path, users: int, rate_per_s: float, work: Path
) -> tuple[Path, FaultRecord]:
    """Bare Locust under the same pause: where its final stats are, and the fault's record."""
    work.mkdir(parents=True)
    pacing_s = users / rate_per_s
    with bare_locust(stack.frontend_url, bodies, users, work / "locust", pacing_s=pacing_s) as bare:
        time.sleep(WARMUP_S)
        record = paused_node(stack)
    return bare.json_file, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--users", type=int, default=LoadSpec().users)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    users = args.users
    ours: list[HarnessRun] = []
    bare_json: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="bench-co-") as tmp, _STATE:
        work = Path(tmp)
        with LocalStack(StackSpec(name="bench-co", nodes=1)) as stack:
            spec = LoadSpec(profile=PROFILE, users=users, workers=1)
            contract = prepare_chain([stack.state().nodes[0].url], accounts=accounts_needed(spec))
            bodies = write_bodies(work / "bodies.jsonl", stack.frontend_url, contract, PROFILE)
            base_us = base_latency_us(stack.frontend_url, bodies)
            for r in range(args.rounds):
                order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
                for who in order:
                    if who == "harness":
                        run = harness_run(stack, contract, users, args.rate, work / f"harness-{r}")
                        ours.append(run)
                        truth = percentile(run.truth_us(base_us), 99)
                        record = run.record
                        line = f"p99 {run.p99_us / 1000:7.1f} ms, truth {truth / 1000:7.1f} ms"
                    else:
                        json_file, record = bare_run(
                            stack, bodies, users, args.rate, work / f"bare-{r}"
                        )
                        bare_json.append(json_file)
                        p99_ms = locust_figures(json_file).p99_ms
                        line = f"p99 {p99_ms:7.1f} ms (Locust's stats)"
                    paused_s = (record.reverted_ns - record.effective_ns) / 1e9
                    print(f"  round {r + 1} {who:7}: {line}; paused {paused_s:.4f} s", flush=True)
            ours_locust = locust_figures(*(run.locust_json for run in ours))
            bare_locust_all = locust_figures(*bare_json)
    window_s = BEFORE_S + PAUSE_S + AFTER_S
    print(
        f"Coordinated omission, the only node paused (SIGSTOP) for {PAUSE_S:.3f} s under an "
        f"open load of {args.rate:g} req/s (profile {PROFILE}, {users} users, 1 worker, "
        f"through HAProxy); a {window_s:g} s run; {args.rounds} rounds, alternating (ABBA):"
    )
    worst = 0.0
    for i, run in enumerate(ours, 1):
        truth = percentile(run.truth_us(base_us), 99)
        even = percentile(run.truth_us(base_us, args.rate), 99)
        worst = max(worst, abs(run.p99_us / truth - 1))
        offered = (run.window[1] - run.window[0]) / 1e9 * args.rate
        print(
            f"  harness run {i}: p99 {run.p99_us / 1000:.1f} ms (its Recorder), truth "
            f"{truth / 1000:.1f} ms, ratio {run.p99_us / truth:.3f}; {len(run.samples)} requests "
            f"due in the run, {offered:.0f} offered; truth over an even schedule "
            f"{even / 1000:.1f} ms (ratio {run.p99_us / even:.3f})"
        )
    truth_all = [t for run in ours for t in run.truth_us(base_us)]
    samples_all = [s.latency_us for run in ours for s in run.samples]
    print(f"  base latency of the target (unloaded, sequential, http.client): {base_us:.0f} us")
    print(
        f"  percentiles over all rounds, ms: truth | harness (its samples) | Locust's own stats "
        f"of the harness's runs (from the send) | bare Locust, {users} users paced at "
        f"{users / args.rate:g} s (Locust's stats)"
    )
    for p in PERCENTILES:
        print(
            f"    p{p:<5g} {percentile(truth_all, p) / 1000:8.1f} | "
            f"{percentile(samples_all, p) / 1000:8.1f} | {ours_locust.percentiles_ms[p]:8g} | "
            f"{bare_locust_all.percentiles_ms[p]:8g}"
        )
    print(f"  worst |harness p99 / truth - 1| = {100 * worst:.1f}% (target <= 5%)")
    bare_ratios = ", ".join(
        f"p{p:g} {1000 * bare_locust_all.percentiles_ms[p] / percentile(truth_all, p):.3f}"
        for p in (90, 95, 99)
    )
    print(f"  ratio bare Locust / truth: {bare_ratios}")


if __name__ == "__main__":
    main()
