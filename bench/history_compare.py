"""History and compare at scale: ``harness compare`` over a history of 10,000 runs, target
under 1 s end to end (a fresh interpreter: imports, open, find the run and the one it is
compared against, compare, print the JSON).

A history is filled with realistic runs (~80 metrics each, keyed as result documents key
them; 20 scenario names; the HAProxy template changing every 500 runs; five verdicts and
a 2 KB spec each) through `History.record`, as runs record themselves. Each end-to-end
figure is the median of fresh `python -c` processes, alternated with two references
measured in the same run: ``python -c pass`` and a bare sqlite3 query of one row of the
same file. The CLI's own import (``import harness.cli``, not this module's doing) is
timed beside them, since ``harness compare`` pays it too.

    .venv/bin/python bench/history_compare.py [--runs 10000] [--metrics 80] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.report.compare import compare, tolerances
from harness.report.history import History

NAMES = 20
METHODS = ("eth_call", "eth_getLogs", "eth_blockNumber", "debug_traceCall", "batch")
SLOS = (
    ("error_rate_pct[baseline] <= 1", "error_rate_pct[baseline]", 1.0),
    ("p99_ms[baseline] <= 50", "p99_ms[baseline]", 50.0),
    ("outage_s <= 10", "outage_s", 10.0),
    ("mttr_component_s <= 30", "mttr_component_s", 30.0),
    ("max_head_lag_blocks <= 5", "max_head_lag_blocks", 5.0),
)


def metric_keys(count: int) -> list[str]:
    """The first ``count`` keys a run with load measures, in the document's order."""
    keys = ["ttd_s", "outage_s", "mttr_service_s", "mttr_component_s", "max_head_lag_blocks"]
    for phase in ("baseline", "fault", "recovery"):
        keys += [
            f"{m}[{phase}]"
            for m in (
                "availability_pct",
                "error_rate_pct",
                "throughput_rps",
                "frontend_head_lag_blocks",
                "p50_ms",
                "p99_ms",
                "p999_ms",
                "max_ms",
            )
        ]
    for phase in ("baseline", "recovery", "fault"):
        for method in METHODS:
            keys += [
                f"{m}[{phase}:{method}]"
                for m in ("error_rate_pct", "p50_ms", "p99_ms", "p999_ms", "max_ms")
            ]
    return keys[:count]


def value(rng: random.Random, key: str) -> float | None:
    if "[fault" in key and rng.random() < 0.5:
        return None  # a kill's fault phase lasts no time: nothing measured in it
    if key.startswith(("availability_pct", "error_rate_pct")):
        return round(rng.uniform(0, 2) if key.startswith("error") else rng.uniform(95, 100), 3)
    if key.endswith("_s"):
        return round(rng.lognormvariate(0, 0.3), 6)
    return round(rng.lognormvariate(1, 1), 3)


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "stack": {
            "name": f"bench-{name}",
            "backend": "local",
            "nodes": 2,
            "node_kind": "anvil",
            "block_time_s": 1.0,
            "health_check": {"inter_ms": 2000, "fall": 3, "rise": 2},
            "restart": {"delay_s": 0.5, "backoff": 2.0, "max_delay_s": 10.0},
            "ready_timeout_s": 30.0,
            "max_head_lag_blocks": 5,
        },
        "load": {"profile": "searcher", "model": "open", "rate_per_s": 150, "users": 24},
        "episodes": [{"fault": "kill", "target": "primary", "baseline_s": 2.0}],
        "slos": [s for s, _, _ in SLOS],
        "budget": {"availability_target_pct": 99.99},
        "padding": "x" * 1200,  # a real spec's size, about 2 KB
    }


def document(i: int, keys: list[str], rng: random.Random) -> dict[str, Any]:
    name = f"scenarios/test_bench.py::test_scenario_{i % NAMES:02d}"
    minute = i
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_790_000_000 + 60 * minute))
    run_id = started[:10].replace("-", "") + f"-{minute:06d}-{rng.getrandbits(24):06x}"
    measured = {k: value(rng, k) for k in keys}
    slos = [
        {
            "episode": 0,
            "slo": text,
            "target": target,
            "measured": measured.get(key),
            "passed": (measured.get(key) or 0.0) <= target,
        }
        for text, key, target in SLOS
    ]
    return {
        "run_id": run_id,
        "run_dir": f"reports/{run_id}",
        "name": name,
        "passed": all(s["passed"] for s in slos),
        "aborted": None,
        "started_at": started,
        "duration_s": round(rng.uniform(9, 12), 3),
        "spec": spec(name),
        "fingerprints": {"stack": "558d74aa90c073e7", "template": f"tpl{i // 500:04d}"},
        "measured": measured,
        "slos": slos,
    }


def fill(path: Path, runs: int, metrics: int) -> tuple[float, str, str]:
    """Record ``runs`` documents; (seconds per record, newest run id, a baseline run id)."""
    rng = random.Random(0)
    keys = metric_keys(metrics)
    newest = baseline = ""
    half = runs // 2
    baseline_at = half - half % NAMES + (runs - 1) % NAMES  # mid-history, the newest's name
    began = time.perf_counter()
    with History(path) as history:
        for i in range(runs):
            doc = document(i, keys, rng)
            history.record(doc)
            if i == baseline_at:
                baseline = doc["run_id"]
            newest = doc["run_id"]
        if baseline:
            history.set_baseline(baseline)
    return (time.perf_counter() - began) / runs, newest, baseline


COMPARE = """
import json, sys
from pathlib import Path
from harness.report.compare import compare, tolerances
from harness.report.history import History
with History(Path(sys.argv[1]), create=False) as h:
    current = h.run(sys.argv[2])
    against = h.reference(sys.argv[2], sys.argv[3])
    c = compare(current, against, tolerances(["p99_ms=25%"]))
    print(json.dumps(c.to_dict()))
"""
ONE_ROW = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT * FROM runs WHERE run_id = ?", (sys.argv[2],)).fetchone()[0])
"""


def timed(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the history")
    parser.add_argument("--metrics", type=int, default=80, help="metrics per run")
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per figure")
    parser.add_argument("--dir", type=Path, help="where to put the history (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.dir or Path(tmp)) / "history.sqlite"
        path.unlink(missing_ok=True)
        per_record_s, newest, baseline = fill(path, args.runs, args.metrics)
        size_mb = sum(p.stat().st_size for p in path.parent.glob("history.sqlite*")) / 1e6
        print(f"history of {args.runs} runs x {len(metric_keys(args.metrics))} metrics:")
        print(f"  record: {1000 * per_record_s:.2f} ms per run (one transaction each)")
        print(f"  compared: newest {newest}; baseline {baseline}, mid-history, same name")
        print(f"  file: {size_mb:.1f} MB ({1000 * size_mb / args.runs:.1f} kB per run)")

        in_process = []
        with History(path, create=False) as history:
            for _ in range(args.repeat):
                began = time.perf_counter()
                current = history.run(newest)
                for against in ("previous", "baseline"):
                    compare(current, history.reference(newest, against), tolerances())
                history.runs(limit=20)
                in_process.append((time.perf_counter() - began) / 2)
        print(f"  in process, warm: find + compare {1000 * statistics.median(in_process):.2f} ms")

        py = sys.executable
        figures: dict[str, list[float]] = {}
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "sqlite3: one row": [py, "-c", ONE_ROW, str(path), newest],
            "import harness.cli": [py, "-c", "import harness.cli"],
            "compare vs previous": [py, "-c", COMPARE, str(path), newest, "previous"],
            "compare vs baseline": [py, "-c", COMPARE, str(path), newest, "baseline"],
            "cli import + compare": [
                py,
                "-c",
                "import harness.cli\n" + COMPARE,
                str(path),
                newest,
                "previous",
            ],
        }
        for _ in range(args.repeat):  # interleaved: each round sees the same machine
            for label, argv in commands.items():
                figures.setdefault(label, []).append(timed(argv))
        base = statistics.median(figures["python -c pass"])
        row = statistics.median(figures["sqlite3: one row"])
        print(f"fresh process, median of {args.repeat} (min), ratio to python -c pass / one row:")
        for label, times in figures.items():
            median = statistics.median(times)
            print(
                f"  {label:22} {1000 * median:7.1f} ms ({1000 * min(times):6.1f})"
                f"  x{median / base:5.2f}  x{median / row:5.2f}"
            )
        worst = max(
            statistics.median(figures[k]) for k in ("compare vs previous", "compare vs baseline")
        )
        cli = statistics.median(figures["cli import + compare"])
        print(f"  compare end to end: {1000 * worst:.0f} ms (target < 1000 ms)")
        print(f"  with today's cli.py imports: {1000 * cli:.0f} ms")


if __name__ == "__main__":
    main()
