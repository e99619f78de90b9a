"""Running Locust out of process: one master and W workers (or one standalone process).

Locust monkey-patches with gevent, so it never runs in the harness's (pytest's) process.
The runner spawns it with argument lists, records the processes in the fault ledger (so
a SIGKILLed harness leaves no load generator running), and tails the workers' sample
files in a thread, handing every sample to a callback as it arrives. Beside them the
workers write what clients were answered (``checks-*.txt``, unless ``HARNESS_LOAD_CHECKS=0``),
which `harness.measure.observations` reads for the checker.

Distributed over machines is Locust's own distributed mode: with ``remote_workers`` the
master binds ``master_bind:master_port``, expects the local and the remote workers, and
the runner writes ``<samples dir>/remote-worker.sh``, which starts one worker on another
machine. Remote workers send their samples to the master as Locust messages; the master
appends them to ``samples-remote-<worker id>.txt``, tailed like the local workers' files.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psutil

from harness.errors import ConfigError, HarnessError
from harness.faults.fault import default_ledger
from harness.faults.ledger import Ledger
from harness.load.workload import load_profile
from harness.stack.ports import free_port
from harness.stack.state import ProcessIdentity

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REMOTE_WORKER_SCRIPT = "remote-worker.sh"


class LoadError(HarnessError):
    """The load generator could not start or died."""


@dataclass(frozen=True)
class Sample:
    """One request: when it was due, how long until it was answered, what it was, how it went."""

    intended_ns: int
    latency_us: float
    method: str
    outcome: str
    head: int | None = None  # the block number an eth_blockNumber answer gave


@dataclass(frozen=True)
class LoadSpec:
    """What load to drive. ``rate_per_s`` is for the open model, ``wait_ms`` for the closed.

    ``workers`` is the local worker processes; 0 (the default) means one per core, at
    most one per user, and is resolved on construction, so a built spec always holds the
    count. ``remote_workers`` more run on other machines (see `LoadRun`); the master
    waits ``start_timeout_s`` for all of them. ``remote_target_url`` is the target as
    those machines reach it (empty: the same URL as here). ``warmup_s`` is how long the
    load runs after its first request before any phase begins: the users' start-up (their
    connections, the first signing) is not the stack's baseline, and is not judged.
    """

    profile: str = "searcher"
    model: str = "open"
    rate_per_s: float = 200.0
    users: int = 32
    workers: int = 0
    wait_ms: float = 0.0
    seed: int = 0
    timeout_s: float = 5.0
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    remote_target_url: str = ""
    start_timeout_s: float = 60.0
    warmup_s: float = 1.0

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
        if not 0 <= self.remote_workers <= 256:
            raise ConfigError(
                "remote_workers", self.remote_workers, "choose 0 to 256 remote worker processes"
            )
        if not 0 <= self.workers <= 256:
            raise ConfigError(
                "workers", self.workers, "choose 1 to 256 worker processes, or 0 for one per core"
            )
        if self.workers == 0:
            per_core = min(os.cpu_count() or 1, self.users - self.remote_workers)
            object.__setattr__(self, "workers", max(1, per_core))
        if self.users < self.workers + self.remote_workers:
            raise ConfigError(
                "users",
                self.users,
                f"needs at least one per worker ({self.workers} local, "
                f"{self.remote_workers} remote)",
            )
        if not (math.isfinite(self.wait_ms) and 0 <= self.wait_ms <= 60_000):
            raise ConfigError("wait_ms", self.wait_ms, "choose 0 to 60000 ms")
        if not 0.1 <= self.timeout_s <= 300:
            raise ConfigError("timeout_s", self.timeout_s, "choose 0.1 to 300 s")
        if not (math.isfinite(self.start_timeout_s) and 1 <= self.start_timeout_s <= 3600):
            raise ConfigError("start_timeout_s", self.start_timeout_s, "choose 1 to 3600 s")
        if not (math.isfinite(self.warmup_s) and 0 <= self.warmup_s <= 600):
            raise ConfigError("warmup_s", self.warmup_s, "choose 0 to 600 s")
        if not 0 <= self.master_port <= 65535:
            raise ConfigError(
                "master_port", self.master_port, "choose a TCP port, or 0 for a free one"
            )
        check_master_bind(self.master_bind)
        if self.remote_target_url:
            url = urlsplit(self.remote_target_url)
            if url.scheme != "http" or not url.hostname:
                raise ConfigError(
                    "remote_target_url",
                    self.remote_target_url,
                    "give the target as the worker machines reach it, e.g. "
                    "http://10.0.0.5:8545/ (the load client speaks plain HTTP/1.1)",
                )


def check_master_bind(host: str) -> None:
    """Raise `ConfigError` unless ``host`` is every interface (0.0.0.0, ::), loopback, or an
    address of this host: the master listens here, it never binds someone else's address."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if literal.is_unspecified or literal.is_loopback:
            return
    try:
        resolved = {
            str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        }
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            "master_bind", host, f"not an IP address or a host name that resolves ({exc})"
        ) from exc
    own = {
        a.address.split("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
    for address in resolved:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_unspecified or ip.is_loopback or str(ip) in own):
            raise ConfigError(
                "master_bind",
                host,
                f"{ip} is not an address of this host; choose 0.0.0.0, ::, 127.0.0.1 or one "
                f"of {', '.join(sorted(own))}",
            )


def accounts_needed(spec: LoadSpec) -> int:
    """Funded accounts the load needs: one per worker, local or remote, plus account 0
    (anvil's default 10 at least)."""
    return max(10, spec.workers + spec.remote_workers + 1)


def _locust() -> str:
    exe = Path(sys.executable).with_name("locust")
    if not exe.exists():
        raise LoadError(f"locust is not installed beside {sys.executable}; run `make setup`")
    return str(exe)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _connect_host(bind: str) -> str:
    """Where a worker on this machine reaches a master bound to ``bind``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


def _advertised_host(bind: str) -> str:
    """Where another machine reaches a master bound to ``bind``: for every interface, this
    host's first address that is neither loopback nor link-local (IPv4 first), else its name."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = ipaddress.ip_address(a.address.split("%")[0])
                if not (ip.is_loopback or ip.is_link_local):
                    candidates.append(ip)
    candidates.sort(key=lambda ip: ip.version)
    return str(candidates[0]) if candidates else socket.gethostname()


def _master_port(bind: str, port: int) -> int:
    """``port`` if it can be bound on ``bind`` (0: a free one, below the ephemeral range where
    it can be, see `harness.stack.ports`), else a `ConfigError` naming master_port."""
    family, _, _, _, address = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0]
    if port == 0 and family == socket.AF_INET:
        return free_port(str(address[0]))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(
                "master_port", port, f"cannot listen on {bind}:{port} ({exc}); choose another or 0"
            ) from exc
        return int(sock.getsockname()[1])


def remote_worker_script(env: dict[str, str], master_host: str, master_port: int) -> str:
    """A POSIX shell script that starts one Locust worker for this run on another machine.

    It runs from a checkout of the harness (``HARNESS_DIR``, default this one's path) with
    its venv; ``HARNESS_MASTER_HOST`` overrides where the master is reached."""
    root = LOCUSTFILE.parents[2]
    lines = [
        "#!/bin/sh",
        "# One remote Locust worker for a harness load run. Run it on each worker machine,",
        "# in a checkout of the harness with its venv (`make setup`, the same Locust version).",
        "# It sends its samples to the master; it writes no files. The target below must be",
        "# reachable from the worker machine.",
        "set -eu",
        # Defaults quoted as words of their own: a path may hold any character.
        f'[ -n "${{HARNESS_DIR:-}}" ] || HARNESS_DIR={shlex.quote(str(root))}',
        f'[ -n "${{HARNESS_MASTER_HOST:-}}" ] || HARNESS_MASTER_HOST={shlex.quote(master_host)}',
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "export HARNESS_LOAD_SEND_SAMPLES=1",
        'exec "$HARNESS_DIR/.venv/bin/locust" -f "$HARNESS_DIR/harness/load/locustfile.py" \\',
        f'    --worker --master-host "$HARNESS_MASTER_HOST" --master-port {master_port} \\',
        "    --loglevel WARNING",
    ]
    return "\n".join(lines) + "\n"


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
                elif len(parts) == 5:
                    samples.append(
                        Sample(int(parts[0]), float(parts[1]), parts[2], parts[3], int(parts[4]))
                    )
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
        parts = urlsplit(target_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                "target_url",
                target_url,
                "give an http:// URL such as http://127.0.0.1:8545/ (the load client "
                "speaks plain HTTP/1.1, as nodes and HAProxy here do)",
            )
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

    def _load_env(self, target_url: str) -> dict[str, str]:
        """The ``HARNESS_LOAD_*`` variables the locustfile reads, for any worker."""
        s = self.spec
        return {
            "HARNESS_LOAD_TARGET": target_url,
            "HARNESS_LOAD_PROFILE": s.profile,
            "HARNESS_LOAD_MODEL": s.model,
            "HARNESS_LOAD_RATE": str(s.rate_per_s),
            "HARNESS_LOAD_USERS": str(s.users),
            "HARNESS_LOAD_WAIT_MS": str(s.wait_ms),
            "HARNESS_LOAD_SEED": str(s.seed),
            "HARNESS_LOAD_CONTRACT": self.contract,
            "HARNESS_LOAD_ACCOUNTS": str(accounts_needed(s)),
            "HARNESS_LOAD_TIMEOUT_S": str(s.timeout_s),
            "HARNESS_LOAD_REFRESH_S": os.environ.get("HARNESS_LOAD_REFRESH_S", "1.0"),
            # What clients saw, for the checker (harness.measure.observations); 0: off.
            "HARNESS_LOAD_CHECKS": os.environ.get("HARNESS_LOAD_CHECKS", "1"),
        }

    def _spawn(self, argv: list[str], log_name: str) -> None:
        with open(self.samples_dir / log_name, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    **self._load_env(self.target_url),
                    "HARNESS_LOAD_SAMPLES_DIR": str(self.samples_dir),
                },
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
            if s.workers == 1 and not s.remote_workers:
                self._spawn([locust, *common], "locust.log")
            else:
                bind = s.master_bind if s.remote_workers else "127.0.0.1"
                port = _master_port(bind, s.master_port if s.remote_workers else 0)
                # Locust (zmq) spells "every interface" as *; "::" is not a zmq address.
                self._spawn(
                    [locust, *common, "--master",
                     "--expect-workers", str(s.workers + s.remote_workers),
                     "--master-bind-host", "*" if bind == "::" else bind,
                     "--master-bind-port", str(port)],
                    "locust-master.log",
                )  # fmt: skip
                for index in range(s.workers):
                    self._spawn(
                        [locust, "-f", str(LOCUSTFILE), "--worker",
                         "--master-host", _connect_host(bind),
                         "--master-port", str(port), "--loglevel", "WARNING"],
                        f"locust-worker-{index}.log",
                    )  # fmt: skip
                if s.remote_workers:
                    self._invite_remote_workers(bind, port)
            self._wait_for_first_samples(s.start_timeout_s)
        except BaseException:
            self._shutdown()
            raise
        self.started_ns = time.monotonic_ns()
        self._reader = threading.Thread(target=self._read_forever, daemon=True)
        self._reader.start()
        return self

    def _invite_remote_workers(self, bind: str, port: int) -> Path:
        """Write the script that starts one remote worker, and say (WARNING) where it is."""
        s = self.spec
        target = s.remote_target_url or self.target_url
        script = self.samples_dir / REMOTE_WORKER_SCRIPT
        env = self._load_env(target)
        script.write_text(remote_worker_script(env, _advertised_host(bind), port))
        script.chmod(0o755)
        log.warning(
            "waiting up to %gs for %d remote Locust worker(s) on %s:%d: on each worker machine, "
            "in a checkout of this harness (`make setup`), run `sh %s` (copy it there); "
            "the load target %s must be reachable from there",
            s.start_timeout_s, s.remote_workers, bind, port, script, target,
        )  # fmt: skip
        host = urlsplit(target).hostname or ""
        if _is_loopback(host):
            log.warning(
                "the load target %s is on loopback, which other machines cannot reach; "
                "forward a port to it and give that URL (--load-url-for-remote)",
                target,
            )
        return script

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
        if self.spec.remote_workers:
            raise LoadError(
                f"no request within {timeout_s:g}s: the master starts the load only when all "
                f"{self.spec.remote_workers} remote worker(s) have connected; run "
                f"{self.samples_dir / REMOTE_WORKER_SCRIPT} on each worker machine, or raise "
                "start_timeout_s (--load-start-timeout)"
            )
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
