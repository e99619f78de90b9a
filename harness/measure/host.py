"""The host under the harness: did the machine itself stall while a phase was measured?

On a shared 2-core VM every process can stop at once for a hundred milliseconds or more
(the hypervisor takes the CPUs: "steal"; or every core is busy). The stack, the load and
the probes all stall together, and a latency SLO breaks that says nothing about the
stack. A separate process (its own interpreter, so the harness's own busy threads do not
count) sleeps in short ticks and records every oversleep beyond ``threshold_ms``, with
the CPU steal the kernel counted meanwhile. A breach that one such stall explains is
*inconclusive*, not a verdict on the stack (`harness.measure.slo`).

    python -m harness.measure.host OUT.jsonl     # one JSON line per stall; exits with its parent
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: The watcher's sleep: shorter catches shorter stalls, at ~1% of a core per 5 ms.
TICK_S = 0.005
#: An oversleep beyond this is a stall. Busy 2-core hosts oversleep 5-15 ms routinely.
THRESHOLD_MS = 20.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these per second


@dataclass(frozen=True)
class HostStall:
    """The host did not run the watcher from ``start_ns`` to ``end_ns`` (monotonic, the
    clock of every phase); ``steal_ms`` of it the hypervisor counted as stolen."""

    start_ns: int
    end_ns: int
    steal_ms: float

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def longest_stall_ms(stalls: Sequence[HostStall], start_ns: int, end_ns: int) -> float:
    """The longest stall overlapping [start_ns, end_ns); 0.0 when none did."""
    return max((s.ms for s in stalls if s.start_ns < end_ns and s.end_ns > start_ns), default=0.0)


def _steal_ticks() -> int:
    """CPU steal of all CPUs in clock ticks (the 8th value of /proc/stat's ``cpu`` line)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
        return int(fields[8]) if len(fields) > 8 else 0
    except (OSError, ValueError):
        return 0


def watch(out: Path, tick_s: float = TICK_S, threshold_ms: float = THRESHOLD_MS) -> None:
    """Record stalls to ``out`` until the parent process goes away (even SIGKILLed) or a
    SIGTERM ends it. SIGTERM ends the watch after the tick it comes in, so a stall still
    going on when the run ends (the host has not run the watcher since) is recorded too."""
    parent = os.getppid()
    threshold_ns = int(threshold_ms * 1e6)
    tick_ns = int(tick_s * 1e9)
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    with open(out, "a", encoding="utf-8") as sink:
        print("ready", flush=True)
        while not stopped and os.getppid() == parent:
            steal = _steal_ticks()
            before = time.monotonic_ns()
            time.sleep(tick_s)  # a signal's handler runs, then the sleep goes on (PEP 475)
            after = time.monotonic_ns()
            if after - before - tick_ns > threshold_ns:
                stolen = (_steal_ticks() - steal) * 1000 / _CLK_TCK
                doc = {"start_ns": before + tick_ns, "end_ns": after, "steal_ms": stolen}
                sink.write(json.dumps(doc) + "\n")
                sink.flush()


def read_stalls(path: Path) -> tuple[HostStall, ...]:
    """The stalls a watcher wrote to ``path`` (none if it wrote nothing)."""
    if not path.exists():
        return ()
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            doc = json.loads(line)
            found.append(HostStall(int(doc["start_ns"]), int(doc["end_ns"]), doc["steal_ms"]))
    return tuple(found)


class HostWatch:
    """The watcher process for the duration of a ``with`` block; `stalls` after it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._process: subprocess.Popen[bytes] | None = None
        self.stalls: tuple[HostStall, ...] = ()

    @property
    def pid(self) -> int | None:
        """The watcher's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> HostWatch:
        from harness.helper_process import harness_env, read_ready_line

        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.measure.host", str(self.out)],
            stdout=subprocess.PIPE,
            env=harness_env(),
        )
        if read_ready_line(self._process, timeout_s=10) != b"ready":
            # Without the watcher a run still measures; it only cannot tell host stalls.
            log.warning("the host-stall watcher did not start: host stalls go unnoticed")
            self._stop()
        return self

    def _stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def so_far(self) -> tuple[HostStall, ...]:
        """The stalls recorded until now, while the watcher runs."""
        return read_stalls(self.out)

    def __exit__(self, *exc: object) -> None:
        self._stop()
        self.stalls = read_stalls(self.out)


if __name__ == "__main__":
    watch(Path(sys.argv[1]))
