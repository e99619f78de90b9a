"""Load capacity: requests/s of one worker process of the harness's load path, against bare
Locust on the same target, with wrk's figure beside both.

The target is one anvil node directly (a 1-node stack's node URL, no HAProxy: the balancer
would take a share of the two cores and cap both). The harness (`LoadRun`: its locustfile,
sample files, and the reader thread feeding a `Recorder` in this process) and bare Locust
(`bare_locustfile.py`: the same bodies of the ``light`` profile, nothing else) run alone,
one after the other (ABBA), each standalone in one process with the same users, closed loop,
no wait. Each is measured over the same number of whole seconds once every user runs:
requests by Locust's own per-second counts (its final stats) for both, and the CPU its
process used in them (the Locust process is the bottleneck; another tenant of the host
shows as CPU below 100%). The harness's samples read back must agree with Locust's count
of its requests within 1%. wrk posts eth_blockNumber with 2 threads and 16 connections:
what the target can answer. The figures come as ratios; nothing is pinned.

    .venv/bin/python bench/load_capacity.py [--seconds 8] [--rounds 4] [--users 32]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-capacity-")
os.environ["HARNESS_STATE_DIR"] = _STATE.name

from bare_locust import (  # noqa: E402
    LocustFigures,
    Window,
    bare_locust,
    locust_figures,
    locust_json_for_harness,
    measure_window,
    write_bodies,
)

from harness.load import LoadRun, LoadSpec, prepare_chain  # noqa: E402
from harness.load.runner import accounts_needed  # noqa: E402
from harness.measure.recorder import Recorder  # noqa: E402
from harness.stack import LocalStack, StackSpec  # noqa: E402

PROFILE = "light"
WARMUP_S = 1.0  # every user spawned (Locust spawns them at -r users per second)
WRK_LUA = """
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
wrk.headers["Content-Type"] = "application/json"
"""


def harness_run(
    url: str, contract: str, users: int, seconds: int, work: Path
) -> tuple[LocustFigures, Window, int]:
    """Locust's figures, the measured window, and how many samples the harness read back."""
    spec = LoadSpec(profile=PROFILE, model="closed", users=users, workers=1, wait_ms=0)
    recorder = Recorder()
    recorder.begin_phase("run", 0)
    with (
        locust_json_for_harness(work / "conf", work / "locust") as json_file,
        LoadRun(spec, url, work / "samples", contract, recorder.add) as run,
    ):
        time.sleep(WARMUP_S)
        window = measure_window(run.processes[0].pid, seconds)
    return locust_figures(json_file), window, run.sample_count


def bare_run(
    url: str, bodies: Path, users: int, seconds: int, work: Path
) -> tuple[LocustFigures, Window]:
    work.mkdir(parents=True)
    with bare_locust(url, bodies, users, work / "locust") as bare:
        time.sleep(WARMUP_S)
        window = measure_window(bare.pid, seconds)
    return locust_figures(bare.json_file), window


def wrk_run(url: str, seconds: float, work: Path) -> float:
    script = work / "post.lua"
    script.write_text(WRK_LUA)
    argv = ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    if "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        raise RuntimeError(f"wrk saw errors: {out.stdout}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output: {out.stdout} {out.stderr}")
    return float(found.group(1))


@dataclass
class Side:
    """One load generator's runs: requests and CPU in the measured windows."""

    requests: list[int] = field(default_factory=list)
    seconds: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def add(self, figures: LocustFigures, window: Window) -> str:
        n = figures.requests_in(window)
        self.requests.append(n)
        self.seconds.append(window.seconds)
        self.cpu_s.append(window.cpu_s)
        return (
            f"{n / window.seconds:6.0f} req/s, Locust process at "
            f"{100 * window.cpu_s / window.seconds:3.0f}% CPU, {n / window.cpu_s:6.0f} req/CPU-s"
        )

    def rate(self, i: int | None = None) -> float:
        if i is not None:
            return self.requests[i] / self.seconds[i]
        return sum(self.requests) / sum(self.seconds)

    def per_cpu_s(self) -> float:
        return sum(self.requests) / sum(self.cpu_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--users", type=int, default=32)
    args = parser.parse_args()
    ours, bare = Side(), Side()
    wrk: list[float] = []
    agreement: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp, _STATE:
        work = Path(tmp)
        with LocalStack(StackSpec(name="bench-capacity", nodes=1)) as stack:
            url = stack.state().nodes[0].url
            spec = LoadSpec(profile=PROFILE, model="closed", workers=1)
            contract = prepare_chain([url], accounts=accounts_needed(spec))
            bodies = write_bodies(work / "bodies.jsonl", url, contract, PROFILE)
            for r in range(args.rounds):
                # ABBA: a drift of the host's speed falls on both sides alike.
                order = ("ours", "bare") if r % 4 in (0, 3) else ("bare", "ours")
                for who in order:
                    run_dir = work / f"{who}-{r}"
                    if who == "ours":
                        figures, window, count = harness_run(
                            url, contract, args.users, args.seconds, run_dir
                        )
                        agreement.append((figures.requests, count))
                        line = ours.add(figures, window)
                    else:
                        figures, window = bare_run(url, bodies, args.users, args.seconds, run_dir)
                        line = bare.add(figures, window)
                    print(f"  round {r + 1} {who}: {line}", flush=True)
                wrk.append(wrk_run(url, args.seconds, work))
                print(f"  round {r + 1} wrk:  {wrk[-1]:6.0f} req/s (eth_blockNumber)", flush=True)
    wrk_rate = statistics.median(wrk)
    ratio = ours.rate() / bare.rate()
    per_round = [ours.rate(i) / bare.rate(i) for i in range(args.rounds)]
    worst = max(abs(count - locust) / locust for locust, count in agreement)
    print(f"Load capacity, {os.cpu_count()} CPUs (nothing pinned), one anvil node directly:")
    print(
        f"  closed loop, {args.users} users, no wait, 1 standalone worker process each; "
        f"profile {PROFILE}; {args.rounds} rounds of {args.seconds} s each, alternating (ABBA)"
    )
    print(
        f"  harness load path: {ours.rate():6.0f} req/s per worker process "
        f"({ours.per_cpu_s():.0f} req/CPU-s)"
    )
    print(
        f"  bare Locust:       {bare.rate():6.0f} req/s per worker process "
        f"({bare.per_cpu_s():.0f} req/CPU-s)"
    )
    print(f"  wrk, 2 threads, 16 connections, eth_blockNumber: {wrk_rate:.0f} req/s (median)")
    print(f"  ratio harness / bare Locust = {ratio:.3f} (target >= 0.9)")
    print(f"    per round: {', '.join(f'{x:.3f}' for x in per_round)}")
    print(f"    per CPU-second of the Locust process: {ours.per_cpu_s() / bare.per_cpu_s():.3f}")
    print(f"  ratio harness / wrk         = {ours.rate() / wrk_rate:.3f}")
    print(f"  ratio bare Locust / wrk     = {bare.rate() / wrk_rate:.3f}")
    print(
        f"  harness samples read back vs Locust's request count: worst "
        f"{100 * worst:.2f}% apart over {len(agreement)} runs (must be <= 1%)"
    )


if __name__ == "__main__":
    main()
