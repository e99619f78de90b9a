"""Running Locust out of process: one master and W workers (or one standalone process).

Locust monkey-patches with gevent, so it never runs in the harness's (pytest's) process.
The runner spawns it with argument lists, records the processes in the fault ledger (so
a SIGKILLed harness leaves no load generator running), and tails the workers' sample
files in a thread, handing every sample to a callback as it arrives.

Distributed over machines: this is Locust's own distributed mode. Start the same
locustfile with ``--worker --master-host <this host>`` on other machines and raise
``--expect-workers``; their samples stay on their machines (see README).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from harness.errors import ConfigError, HarnessError
from harness.faults.fault import default_ledger
from harness.faults.ledger import Ledger
from harness.load.workload import load_profile
from harness.stack.local import free_port
from harness.stack.state import ProcessIdentity

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class LoadError(HarnessError):
    """The load generator could not start or died."""


@dataclass(frozen=True)
class Sample:
    """One request: when it was due, how long until it was answered, what it was, how it went."""

    intended_ns: int
    latency_us: float
    method: str
    outcome: str


@dataclass(frozen=True)
class LoadSpec:
    """What load to drive. ``rate_per_s`` is for the open model, ``wait_ms`` for the closed."""

    profile: str = "searcher"
    model: str = "open"
    rate_per_s: float = 200.0
    users: int = 32
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    wait_ms: float = 0.0
    seed: int = 0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        load_profile(self.profile)  # an unknown profile fails here, naming the choices
        if self.model not in ("open", "closed"):
            raise ConfigError(
                "load model", self.model, "choose open (a fixed arrival rate) or closed"
            )
        if not (math.isfinite(self.rate_per_s) and 0 < self.rate_per_s <= 1e6):
            raise ConfigError(
                "rate_per_s", self.rate_per_s, "choose a rate above 0 and at most 1e6"
            )
        if not 1 <= self.users <= 100_000:
            raise ConfigError("users", self.users, "choose 1 to 100000 users")
        if not 1 <= self.workers <= 256:
            raise ConfigError("workers", self.workers, "choose 1 to 256 worker processes")
        if self.users < self.workers:
            raise ConfigError(
                "users", self.users, f"needs at least one per worker ({self.workers})"
            )
        if not (math.isfinite(self.wait_ms) and 0 <= self.wait_ms <= 60_000):
            raise ConfigError("wait_ms", self.wait_ms, "choose 0 to 60000 ms")
        if not 0.1 <= self.timeout_s <= 300:
            raise ConfigError("timeout_s", self.timeout_s, "choose 0.1 to 300 s")


def accounts_needed(spec: LoadSpec) -> int:
    """Funded accounts the load needs: one per worker, plus account 0 (anvil's default 10
    at least)."""
    return max(10, spec.workers + 1)


def _locust() -> str:
    exe = Path(sys.executable).with_name("locust")
    if not exe.exists():
        raise LoadError(f"locust is not installed beside {sys.executable}; run `make setup`")
    return str(exe)


class SampleTail:
    """Reads the complete lines appended to every ``samples-*.txt`` in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[Path, IO[str]] = {}
        self._partial: dict[Path, str] = {}

    def poll(self) -> list[Sample]:
        samples: list[Sample] = []
        for path in sorted(self.directory.glob("samples-*.txt")):
            if path not in self._files:
                self._files[path] = open(path)  # noqa: SIM115 - closed in close()
            chunk = self._partial.pop(path, "") + self._files[path].read()
            lines = chunk.split("\n")
            if lines[-1]:
                self._partial[path] = lines[-1]
            for line in lines[:-1]:
                parts = line.split(" ")
                if len(parts) == 4:
                    samples.append(Sample(int(parts[0]), float(parts[1]), parts[2], parts[3]))
        return samples

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class LoadRun:
    """Locust against ``target_url`` for the duration of a ``with`` block."""

    def __init__(
        self,
        spec: LoadSpec,
        target_url: str,
        samples_dir: Path,
        contract: str,
        on_samples: Callable[[list[Sample]], None] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.spec = spec
        self.target_url = target_url
        self.samples_dir = samples_dir
        self.contract = contract
        self.on_samples = on_samples
        self.ledger = ledger or default_ledger()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.sample_count = 0
        self.started_ns = 0
        self.stopped_ns = 0
        self._cpu: dict[int, psutil.Process] = {}
        self._tail = SampleTail(samples_dir)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._id = f"load-{secrets.token_hex(4)}"

    def _env(self, worker_index: int) -> dict[str, str]:
        s = self.spec
        return {
            **os.environ,
            "HARNESS_LOAD_TARGET": self.target_url,
            "HARNESS_LOAD_PROFILE": s.profile,
            "HARNESS_LOAD_MODEL": s.model,
            "HARNESS_LOAD_RATE": str(s.rate_per_s),
            "HARNESS_LOAD_USERS": str(s.users),
            "HARNESS_LOAD_WAIT_MS": str(s.wait_ms),
            "HARNESS_LOAD_SEED": str(s.seed),
            "HARNESS_LOAD_WORKER_INDEX": str(worker_index),
            "HARNESS_LOAD_SAMPLES_DIR": str(self.samples_dir),
            "HARNESS_LOAD_CONTRACT": self.contract,
            "HARNESS_LOAD_ACCOUNTS": str(accounts_needed(s)),
            "HARNESS_LOAD_TIMEOUT_S": str(s.timeout_s),
        }

    def _spawn(self, argv: list[str], worker_index: int, log_name: str) -> None:
        with open(self.samples_dir / log_name, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env(worker_index),
                start_new_session=True,
            )
        self.processes.append(proc)
        identity = ProcessIdentity.of(proc.pid)
        self.ledger.add_undo(
            self._id, [{"op": "kill_process_group", "name": "locust", **identity.__dict__}]
        )
        try:
            self._cpu[proc.pid] = psutil.Process(proc.pid)
            self._cpu[proc.pid].cpu_percent()
        except psutil.Error:
            pass

    def __enter__(self) -> LoadRun:
        s = self.spec
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        locust = _locust()
        common = ["-f", str(LOCUSTFILE), "--headless", "--host", self.target_url.rstrip("/"),
                  "-u", str(s.users), "-r", str(s.users), "--loglevel", "WARNING",
                  "--stop-timeout", "2"]  # fmt: skip
        self.ledger.open(self._id, "load", [self.target_url], [])
        try:
            if s.workers == 1:
                self._spawn([locust, *common], 0, "locust.log")
            else:
                port = free_port()
                self._spawn(
                    [locust, *common, "--master", "--expect-workers", str(s.workers),
                     "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)],
                    0, "locust-master.log",
                )  # fmt: skip
                for index in range(s.workers):
                    self._spawn(
                        [locust, "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1",
                         "--master-port", str(port), "--loglevel", "WARNING"],
                        index, f"locust-worker-{index}.log",
                    )  # fmt: skip
            self._wait_for_first_samples(timeout_s=60)
        except BaseException:
            self._shutdown()
            raise
        self.started_ns = time.monotonic_ns()
        self._reader = threading.Thread(target=self._read_forever, daemon=True)
        self._reader.start()
        return self

    def _wait_for_first_samples(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.stat().st_size for p in self.samples_dir.glob("samples-*.txt")):
                return
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                raise LoadError(
                    f"locust exited with status {dead[0].returncode}: {self._log_tail()}"
                )
            time.sleep(0.05)
        raise LoadError(f"locust sent no request within {timeout_s:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        lines: list[str] = []
        for path in sorted(self.samples_dir.glob("locust*.log")):
            lines += path.read_text(errors="replace").strip().splitlines()[-4:]
        return " | ".join(lines[-8:]) or "(no output)"

    def _read_forever(self) -> None:
        while not self._stop.wait(0.1):
            self._deliver()
        self._deliver()

    def _deliver(self) -> None:
        samples = self._tail.poll()
        if samples:
            self.sample_count += len(samples)
            if self.on_samples is not None:
                self.on_samples(samples)

    def health(self) -> dict[str, Any]:
        """The load generator's own health: CPU per process (100 = one core), liveness."""
        cpu: dict[str, float | None] = {}
        for pid, proc in self._cpu.items():
            try:
                cpu[str(pid)] = round(proc.cpu_percent(), 1)
            except psutil.Error:
                cpu[str(pid)] = None
        return {
            "processes": len(self.processes),
            "alive": sum(1 for p in self.processes if p.poll() is None),
            "cpu_pct": cpu,
        }

    def _shutdown(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.ledger.close(self._id)

    def __exit__(self, *exc: object) -> None:
        self.health_at_end = self.health()
        self.stopped_ns = time.monotonic_ns()
        try:
            self._shutdown()
        finally:
            self._stop.set()
            if self._reader is not None:
                self._reader.join(5)
            self._tail.close()
