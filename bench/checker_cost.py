"""Checker cost: what checking clients' histories at the end of a run adds to the run.

One real run of about a minute (the main job's load: open model, 200 req/s through
HAProxy, the searcher mix; a kill of the primary after a long baseline) on a local stack
of independent chains, as `harness run` does it. Its end-of-run check is timed by the run
itself (``result.json``'s ``clients.read_s`` and ``check_s``); then the same files are read
back and checked again, ``--repeat`` times (median), with the frontend probes' heads from
``probes.jsonl``, as `check_histories` does. ``--chain one`` runs the stack on one chain,
checked against the chain log it kept (``chain.jsonl``).

Reference in the same run: writing the run's reports (result.json, summary, report.html,
timed here by calling `write_reports` again on the result) and the run's own length.
Goal: well under a second for a minute; never seconds per scenario.

    .venv/bin/python bench/checker_cost.py [--baseline 55] [--repeat 5] [--chain one]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-checker-cost-")
os.environ.setdefault("HARNESS_STATE_DIR", _STATE.name)

from harness import ExperimentSpec, StackSpec, run_experiment  # noqa: E402
from harness.chain.chainlog import read_chain_log  # noqa: E402
from harness.experiment.spec import DEFAULT_LOAD  # noqa: E402
from harness.measure import ProbeSample  # noqa: E402
from harness.measure.chains import LoggedChain, NoChainKnown  # noqa: E402
from harness.measure.checker import ChainLog, check  # noqa: E402
from harness.measure.observations import read_observations  # noqa: E402
from harness.report import RunDir, write_reports  # noqa: E402
from harness.stack import RestartPolicy  # noqa: E402

T = TypeVar("T")


def probe_samples(path: Path) -> list[ProbeSample]:
    samples = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        if doc.pop("type") == "ProbeSample":
            samples.append(ProbeSample(**doc))
    return samples


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median seconds of ``repeat`` calls, and the last call's value."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=float, default=55.0, help="seconds before the kill")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chain", choices=("independent", "one"), default="independent")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-checker-cost-reports-") as reports:
        spec = ExperimentSpec(
            stack=StackSpec(
                name="bench-checker-cost", restart=RestartPolicy(delay_s=0.3), chain=args.chain
            ),
            load=DEFAULT_LOAD,
            baseline_s=args.baseline,
            settle_s=1.0,
        )
        result = run_experiment(spec, Path(reports))
        run_dir = Path(result.run_dir)
        h = result.histories
        assert h is not None and result.load is not None
        load_dir = Path(result.load.samples_dir)
        size = sum(p.stat().st_size for p in load_dir.glob("checks-*.txt"))
        probes = probe_samples(run_dir / "probes.jsonl")
        read_s, observations = timed(lambda: read_observations(load_dir), args.repeat)
        chain: ChainLog = NoChainKnown()
        if h.chain_log is not None:
            chain = LoggedChain(read_chain_log(h.chain_log))
        check_s, found = timed(lambda: check(observations, chain, probes), args.repeat)
        again = RunDir(result.run_id, run_dir)
        reports_s, _ = timed(lambda: write_reports(result, again), args.repeat)
        run_s = result.duration_s
        phases_s = (result.end_ns - result.origin_ns) / 1e9
        print(
            f"One run: kill of the primary after {args.baseline:g} s of baseline, the main "
            f"job's load ({DEFAULT_LOAD.model} model, {DEFAULT_LOAD.rate_per_s:g} req/s, "
            f"{DEFAULT_LOAD.profile}), 2 x anvil, chain {args.chain}; {phases_s:.1f} s of "
            f"phases, {run_s:.1f} s in all"
        )
        print(
            f"  observations: {h.result.observations} ({len(observations)} of the load in "
            f"{size / 2**20:.2f} MiB of checks files, "
            f"{h.result.observations - len(observations)} probe heads), "
            f"{h.result.sessions} sessions; found {h.result.counts()}"
        )
        print(f"  held against {h.chain}")
        print(
            f"  in the run itself: read {h.read_s * 1000:.0f} ms + check {h.check_s * 1000:.0f} ms"
            f" = {(h.read_s + h.check_s) * 1000:.0f} ms"
        )
        total_s = read_s + check_s
        print(
            f"  again, median of {args.repeat}: read {read_s * 1000:.0f} ms + check "
            f"{check_s * 1000:.0f} ms = {total_s * 1000:.0f} ms (found the same: "
            f"{found.counts() == h.result.counts()})"
        )
        print(
            f"  reference: writing the run's reports {reports_s * 1000:.0f} ms "
            f"(the check is {total_s / reports_s:.2f}x that); the check is "
            f"{100 * total_s / run_s:.2f}% of the run's {run_s:.1f} s"
        )


if __name__ == "__main__":
    main()
