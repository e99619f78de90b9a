"""Checker overhead: what recording the checker's observations costs the load, and what
checking an hour of them costs the harness.

1. Load capacity of one worker process with observations recorded (the default) against
   ``HARNESS_LOAD_CHECKS=0``, alternating ABBA in one run, as ``bench/load_capacity.py``
   measures it: the harness's own load path (`LoadRun`, one standalone Locust process,
   closed loop, no wait, the searcher mix) against one anvil node directly, requests
   counted by Locust's own per-second figures over whole seconds once every user runs.
   The goal: capacity with the checker on >= 0.9 of it off. With the searcher mix anvil is
   the bottleneck (the Locust process runs at a fraction of a core), so the CPU the Locust
   process spends per request is shown too, and:
2. The recording's own cost per request, timed in this process on real answers (the
   searcher mix's requests posted to the same node after the load ran, its blocks full of
   the load's Swap logs): `summarize` and `observation_line` for each checked answer, as the
   locustfile calls them, against the Locust process's CPU per request with checks off.
3. The checker's own time on an hour of observations at 200 req/s (a quarter of them
   checked: 180,000): a synthetic one-chain history with reorgs, a lagging node behind
   the balancer and 32 sessions, written as the workers write it, read back
   (`read_observations`) and checked (`check`).

    .venv/bin/python bench/checker_overhead.py [--seconds 6] [--rounds 8] [--users 32]
        [--observations 180000] [--profile searcher]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-checker-")
os.environ["HARNESS_STATE_DIR"] = _STATE.name

from bare_locust import (  # noqa: E402
    LocustFigures,
    Window,
    locust_figures,
    locust_json_for_harness,
    measure_window,
)

from harness.load import LoadRun, LoadSpec, prepare_chain  # noqa: E402
from harness.load.client import RpcConnection  # noqa: E402
from harness.load.runner import accounts_needed  # noqa: E402
from harness.load.workload import (  # noqa: E402
    RequestFactory,
    classify,
    load_profile,
    sample_context,
)
from harness.measure.checker import check  # noqa: E402
from harness.measure.observations import (  # noqa: E402
    CHECKED_LABELS,
    observation_line,
    read_observations,
    summarize,
)
from harness.stack import LocalStack, StackSpec  # noqa: E402

PROFILE = "searcher"  # --profile light: 60% of requests observed, Locust the bottleneck
WARMUP_S = 1.0


def load_run(
    url: str, contract: str, args: argparse.Namespace, work: Path, checks: bool
) -> tuple[LocustFigures, Window, int]:
    """Locust's figures, the measured window, and the observation lines written."""
    os.environ["HARNESS_LOAD_CHECKS"] = "1" if checks else "0"
    spec = LoadSpec(profile=args.profile, model="closed", users=args.users, workers=1, wait_ms=0)
    with (
        locust_json_for_harness(work / "conf", work / "locust") as json_file,
        LoadRun(spec, url, work / "samples", contract) as run,
    ):
        time.sleep(WARMUP_S)
        window = measure_window(run.processes[0].pid, args.seconds)
    lines = sum(path.read_text().count("\n") for path in (work / "samples").glob("checks-*.txt"))
    return locust_figures(json_file), window, lines


@dataclass
class Side:
    requests: list[int] = field(default_factory=list)
    seconds: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    observations: list[int] = field(default_factory=list)
    total: list[int] = field(default_factory=list)

    def add(self, figures: LocustFigures, window: Window, lines: int) -> str:
        n = figures.requests_in(window)
        self.requests.append(n)
        self.seconds.append(window.seconds)
        self.cpu_s.append(window.cpu_s)
        self.observations.append(lines)
        self.total.append(figures.requests)
        return (
            f"{n / window.seconds:6.0f} req/s, Locust process at "
            f"{100 * window.cpu_s / window.seconds:3.0f}% CPU, {n / window.cpu_s:6.0f} req/CPU-s"
            + (f", {lines} observations ({100 * lines / figures.requests:.0f}%)" if lines else "")
        )

    def rate(self, i: int | None = None) -> float:
        if i is not None:
            return self.requests[i] / self.seconds[i]
        return sum(self.requests) / sum(self.seconds)

    def per_cpu_s(self) -> float:
        return sum(self.requests) / sum(self.cpu_s)


def capacity(args: argparse.Namespace, url: str, contract: str) -> tuple[list[str], float]:
    """The report's lines, and the Locust process's CPU per request with checks off (us)."""
    on, off = Side(), Side()
    with tempfile.TemporaryDirectory(prefix="bench-checker-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            # ABBA: a drift of the host's speed falls on both sides alike.
            order = ("on", "off") if r % 4 in (0, 3) else ("off", "on")
            for who in order:
                figures, window, lines = load_run(
                    url, contract, args, work / f"{who}-{r}", who == "on"
                )
                side = on if who == "on" else off
                print(f"  round {r + 1} {who:3s}: {side.add(figures, window, lines)}", flush=True)
    os.environ.pop("HARNESS_LOAD_CHECKS", None)
    ratio = on.rate() / off.rate()
    per_round = [on.rate(i) / off.rate(i) for i in range(args.rounds)]
    share = sum(on.observations) / sum(on.total)
    lines = [
        f"Load capacity with the checker's observations on vs off, {os.cpu_count()} CPUs "
        "(nothing pinned), one anvil node directly:",
        f"  closed loop, {args.users} users, no wait, 1 standalone worker process; profile "
        f"{args.profile}; {args.rounds} rounds of {args.seconds} s each, alternating (ABBA)",
        f"  checks on:  {on.rate():6.0f} req/s ({on.per_cpu_s():.0f} req/CPU-s); "
        f"{100 * share:.1f}% of requests observed",
        f"  checks off: {off.rate():6.0f} req/s ({off.per_cpu_s():.0f} req/CPU-s)",
        f"  ratio on / off = {ratio:.3f} (goal >= 0.9); median of rounds "
        f"{statistics.median(per_round):.3f}",
        f"    per round: {', '.join(f'{x:.3f}' for x in per_round)}",
        f"    per CPU-second of the Locust process: {on.per_cpu_s() / off.per_cpu_s():.3f}",
    ]
    return lines, 1e6 / off.per_cpu_s()


def hot_path(
    url: str, contract: str, profile: str, base_us: float, requests: int = 4000
) -> list[str]:
    """What recording costs per request, on real answers, timed alone."""
    factory = RequestFactory(load_profile(profile), sample_context(url, contract), seed=7)
    connection = RpcConnection(url, 10.0)
    answers: list[tuple[str, str, bytes, bytes]] = []
    for _ in range(requests):
        label, body = factory.next()
        if label in CHECKED_LABELS:
            answer = connection.post(body)
            outcome = classify(answer.status, answer.body, False)
            answers.append((label, outcome, answer.body, body))
    connection.close()
    runs = []
    for _ in range(5):
        out: list[str] = []
        start = time.perf_counter_ns()
        for label, outcome, reply, body in answers:
            result = summarize(label, outcome == "ok", reply) if reply else "-"
            out.append(observation_line(1, 2, "4242.7", label, outcome, result, body))
        runs.append((time.perf_counter_ns() - start) / 1000 / len(answers))
    per_checked = statistics.median(runs)
    share = len(answers) / requests
    by_label: dict[str, list[int]] = {}
    for label, _, reply, _ in answers:
        by_label.setdefault(label, []).append(len(reply))
    sizes = ", ".join(
        f"{label.removeprefix('eth_')} {statistics.mean(v) / 1024:.1f} KiB"
        for label, v in sorted(by_label.items())
    )
    added = per_checked * share
    return [
        f"Recording's own cost, timed in-process on {len(answers)} real answers "
        f"({100 * share:.0f}% of {requests} {profile} requests; mean answer: {sizes}):",
        f"  {per_checked:.2f} us per observed answer = {added:.2f} us per request, against "
        f"{base_us:.0f} us of Locust CPU per request with checks off:",
        f"  implied capacity ratio {base_us / (base_us + added):.3f} where the load generator "
        "is the bottleneck",
    ]


# -- the checker on an hour of observations ------------------------------------------------


def block_hash(number: int, branch: int = 0) -> str:
    return "0x" + format((number * 0x9E3779B97F4A7C15 + branch * 7919) % 2**256, "064x")


class SyntheticChain:
    """One block a second for ``seconds``, reorgs of 2 blocks every 10 minutes, 3 logs in
    every block; what `check` asks of the replicator's chain log, answered from memory."""

    def __init__(self, seconds: int) -> None:
        self.top = seconds
        self.reorgs = [(t * 10**9, 2) for t in range(600, seconds, 600)]
        self.orphans = {(t // 10**9 - k, block_hash(t // 10**9 - k, 1)) for t, _ in self.reorgs
                        for k in range(2)}  # fmt: skip

    def on_any_branch(self, number: int, hash: str) -> bool:
        return (0 <= number <= self.top and hash == block_hash(number)) or (
            number,
            hash,
        ) in self.orphans

    def canonical_hash(self, number: int) -> str | None:
        return block_hash(number) if 0 <= number <= self.top else None

    def deepest_reorg(self, start_ns: int, end_ns: int) -> int:
        return max((d for t, d in self.reorgs if start_ns <= t <= end_ns), default=0)

    def head_at(self, t_ns: int) -> int | None:
        return min(self.top, t_ns // 10**9)

    def logs_in(self, number: int, hash: str) -> int | None:
        return 3


def write_hour(path: Path, count: int, seconds: int, sessions: int = 32) -> None:
    """``count`` observation lines over ``seconds``, as the workers write them: each session
    sequential; a node 5 blocks behind serves 5% of requests (regressions, unknown blocks,
    short logs); hashes are canonical but for a few from an unknown branch."""
    rng = random.Random(1)
    per_session = count // sessions
    gap_ns = seconds * 10**9 // per_session
    contract = "0x" + "22" * 20
    with open(path, "w") as out:
        for s in range(sessions):
            session = f"4242.{s}"
            t = rng.randrange(gap_ns)
            for _ in range(per_session):
                sent, answered = t, t + rng.randrange(200_000, 2_000_000)
                t += gap_ns
                source = t // 10**9
                top = source - (5 if rng.random() < 0.05 else 0)
                kind = rng.random() * 30
                if kind < 10:
                    label, result, body = "eth_blockNumber", hex(top), b'"params":[]}'
                elif kind < 16:
                    label = "eth_getBlockByNumber"
                    result = f"{hex(top)}:{block_hash(top, rng.random() < 0.001)}"
                    body = b'"params":["latest",false]}'
                elif kind < 17:
                    label, n = "eth_getBlockByNumber_full", source - rng.randrange(1, 4)
                    result = f"{hex(n)}:{block_hash(n)}" if n <= top else "null"
                    body = b'"params":["%s",true]}' % hex(n).encode()
                elif kind < 25:
                    label, lo, hi = "eth_getLogs", source - 1, source
                    result = (
                        ",".join(f"{hex(n)}:{block_hash(n)}:3" for n in (lo, hi) if n <= top)
                        or "[]"
                    )
                    body = b'"params":[{"fromBlock":"%s","toBlock":"%s","address":"%s"}]}' % (
                        hex(lo).encode(), hex(hi).encode(), contract.encode(),
                    )  # fmt: skip
                else:
                    label, n = "eth_getTransactionReceipt", source - rng.randrange(1, 8)
                    result = f"{hex(n)}:{block_hash(n)}" if n <= top else "null"
                    body = b'"params":["0x%064x"]}' % n
                out.write(observation_line(sent, answered, session, label, "ok", result, body))


def checker_time(count: int) -> list[str]:
    seconds = 3600
    chain = SyntheticChain(seconds)
    with tempfile.TemporaryDirectory(prefix="bench-checker-") as tmp:
        write_hour(Path(tmp) / "checks-4242.txt", count, seconds)
        size_mb = (Path(tmp) / "checks-4242.txt").stat().st_size / 2**20
        rss = psutil.Process().memory_info().rss
        reads, checks = [], []
        for _ in range(3):
            start = time.perf_counter()
            seen = read_observations(Path(tmp))
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = check(seen, chain)
            checks.append(time.perf_counter() - start)
        held_mb = (psutil.Process().memory_info().rss - rss) / 2**20
    found = ", ".join(f"{k} {v}" for k, v in result.counts().items())
    return [
        f"The checker on an hour of observations ({len(seen)}; 180,000 is 200 req/s x 3600 s "
        "x 25%), 32 sessions, one block a second, a reorg every 10 minutes:",
        f"  the file: {size_mb:.1f} MiB; read back (read_observations): "
        f"{statistics.median(reads):.2f} s (median of 3), held in about {held_mb:.0f} MiB",
        f"  check(): {statistics.median(checks):.2f} s (median of 3); found: {found}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=8, help="ABBA rounds of on and off")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--profile", default=PROFILE, help="the load's mix (default searcher)")
    parser.add_argument("--observations", type=int, default=180_000, help="for the checker's time")
    parser.add_argument("--skip-load", action="store_true", help="only the checker's own time")
    args = parser.parse_args()
    lines: list[str] = []
    with _STATE:
        if not args.skip_load:
            with LocalStack(StackSpec(name="bench-checker", nodes=1)) as stack:
                url = stack.state().nodes[0].url
                spec = LoadSpec(profile=args.profile, model="closed", workers=1)
                contract = prepare_chain([url], accounts=accounts_needed(spec))
                found, base_us = capacity(args, url, contract)
                lines += found + hot_path(url, contract, args.profile, base_us)
        lines += checker_time(args.observations)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
