"""The bare-Locust reference of the load benchmarks, and Locust's own figures for a run.

`write_bodies` renders the harness's request mix (its own `RequestFactory`, from the live
chain) into a file, so the harness and `bare_locustfile.py` send the same bodies;
`bare_locust` runs that locustfile out of process for the length of a ``with`` block;
`locust_json_for_harness` makes the harness's own Locust write its final stats too (through
Locust's ``locust.conf`` in the working directory: the runner's argument list is the
library's, not ours); `locust_figures` reads such a file with Locust's own percentile
function (in a subprocess: importing locust here would monkey-patch this process);
`measure_window` times whole seconds of a run, aligned with Locust's per-second counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from harness.load.workload import RequestFactory, load_profile, sample_context

BARE_LOCUSTFILE = Path(__file__).with_name("bare_locustfile.py")
LOCUST = str(Path(sys.executable).with_name("locust"))


def write_bodies(path: Path, url: str, contract: str, profile: str, count: int = 4096) -> Path:
    """``count`` request bodies of ``profile`` as JSON lines ``[label, body]``; seeded."""
    factory = RequestFactory(load_profile(profile), sample_context(url, contract), seed=0)
    with open(path, "w") as out:
        for _ in range(count):
            label, body = factory.next()
            out.write(json.dumps([label, body.decode()]) + "\n")
    return path


@dataclass(frozen=True)
class LocustFigures:
    """What Locust itself counted for one run (its response times are rounded to 1 ms)."""

    requests: int
    failures: int
    percentiles_ms: dict[float, float]  # of PERCENTILES, by Locust's own function
    per_second: dict[int, int]  # requests logged in each wall-clock second (Locust's keys)

    @property
    def p50_ms(self) -> float:
        return self.percentiles_ms[50]

    @property
    def p99_ms(self) -> float:
        return self.percentiles_ms[99]

    def requests_in(self, window: Window) -> int:
        return sum(self.per_second.get(s, 0) for s in range(window.first_s, window.end_s))


@dataclass(frozen=True)
class Window:
    """Whole wall-clock seconds ``[first_s, end_s)`` and the CPU one process used in them."""

    first_s: int
    end_s: int
    cpu_s: float

    @property
    def seconds(self) -> int:
        return self.end_s - self.first_s


def measure_window(pid: int, seconds: int) -> Window:
    """Sleep over ``seconds`` whole seconds of the wall clock (Locust counts requests per
    wall-clock second, so the window is aligned to its keys), timing ``pid``'s CPU."""
    process = psutil.Process(pid)
    first = int(time.time()) + 1
    time.sleep(max(0.0, first - time.time()))
    before = process.cpu_times()
    time.sleep(max(0.0, first + seconds - time.time()))
    after = process.cpu_times()
    cpu_s = (after.user + after.system) - (before.user + before.system)
    return Window(first, first + seconds, cpu_s)


_PERCENTILES = """
import json, sys
from locust.stats import calculate_response_time_percentile as percentile
entries = [e for path in sys.argv[2:] for e in json.load(open(path))]
times = {}
for e in entries:
    for ms, n in e["response_times"].items():
        times[float(ms)] = times.get(float(ms), 0) + n
total = sum(e["num_requests"] for e in entries)
print(json.dumps([percentile(times, total, p / 100) for p in json.loads(sys.argv[1])]))
"""
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def locust_figures(*json_files: Path) -> LocustFigures:
    """Locust's final stats (``--json-file``), summed over its entries (and files) as its
    Aggregated row sums them."""
    entries = [e for path in json_files for e in json.loads(path.read_text())]
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", _PERCENTILES, json.dumps(PERCENTILES), *map(str, json_files)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    per_second: dict[int, int] = {}
    for e in entries:
        for second, n in e["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + n
    return LocustFigures(
        requests=sum(e["num_requests"] for e in entries),
        failures=sum(e["num_failures"] for e in entries),
        percentiles_ms={p: float(ms) for p, ms in zip(PERCENTILES, found, strict=True)},
        per_second=per_second,
    )


@contextlib.contextmanager
def locust_json_for_harness(directory: Path, json_base: Path) -> Iterator[Path]:
    """Inside the block, a Locust started here writes its final stats to ``json_base``.json."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "locust.conf").write_text(f"json-file = {json_base}\n")
    with contextlib.chdir(directory):
        yield json_base.with_name(json_base.name + ".json")


def _connected(pid: int, port: int) -> int:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED")


@dataclass(frozen=True)
class BareRun:
    pid: int
    json_file: Path  # Locust's final stats, once the block is left


@contextlib.contextmanager
def bare_locust(
    url: str, bodies: Path, users: int, json_base: Path, *, pacing_s: float = 0.0
) -> Iterator[BareRun]:
    """Bare Locust, standalone, for the block: started, every user connected, yielded; then
    stopped as the harness's runner stops its own (SIGTERM, ``--stop-timeout 2``)."""
    argv = [LOCUST, "-f", str(BARE_LOCUSTFILE), "--headless", "--host", url.rstrip("/"),
            "-u", str(users), "-r", str(users), "--loglevel", "WARNING", "--stop-timeout", "2",
            "--json-file", str(json_base)]  # fmt: skip
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_PACING_S": str(pacing_s)}
    log = json_base.with_name(json_base.name + ".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=json_base.parent,
            start_new_session=True,
        )
    try:
        port = urlsplit(url).port or 80
        deadline = time.monotonic() + 60
        while _connected(proc.pid, port) < users:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bare locust did not start: {log.read_text()[-800:]}")
            time.sleep(0.02)
        yield BareRun(proc.pid, json_base.with_name(json_base.name + ".json"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
