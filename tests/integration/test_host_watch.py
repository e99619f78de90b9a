"""The host-stall watcher sees the machine stop running it, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.measure.host import HostWatch


def _watcher_pid(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and b"harness.measure.host" in cmdline:
            return int(entry.name)
    return None


def test_a_200_ms_freeze_of_the_watcher_is_recorded_as_a_host_stall(tmp_path: Path) -> None:
    with HostWatch(tmp_path / "stalls.jsonl") as watch:
        pid = watch.pid
        assert pid is not None and pid == _watcher_pid(os.getpid())
        time.sleep(0.2)
        frozen_ns = time.monotonic_ns()
        os.kill(pid, signal.SIGSTOP)  # what a hypervisor taking the CPUs looks like to it
        time.sleep(0.2)
        os.kill(pid, signal.SIGCONT)
        thawed_ns = time.monotonic_ns()
        # The watcher writes the stall once the host runs it again: on a loaded host, later.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(s.end_ns > frozen_ns for s in watch.so_far()):
            time.sleep(0.02)
    covering = [s for s in watch.stalls if s.start_ns < thawed_ns and s.end_ns > frozen_ns]
    assert len(covering) == 1, watch.stalls  # the freeze is one stall, not several
    (stall,) = covering
    assert stall.ms >= 150  # the whole freeze (less one tick and the kill's own latency)
    assert stall.start_ns <= frozen_ns + 50_000_000


def test_a_stall_still_going_on_when_the_watch_ends_is_recorded_up_to_its_end(
    tmp_path: Path,
) -> None:
    with HostWatch(tmp_path / "stalls.jsonl") as watch:
        pid = watch.pid
        assert pid is not None
        time.sleep(0.1)
        frozen_ns = time.monotonic_ns()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)  # the run ends while the host has not run the watcher
        os.kill(pid, signal.SIGCONT)
    (stall,) = [s for s in watch.stalls if s.end_ns > frozen_ns]
    assert stall.ms >= 150 and stall.start_ns <= frozen_ns + 50_000_000


def test_the_watcher_exits_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; from pathlib import Path\n"
            "from harness.measure.host import HostWatch\n"
            "with HostWatch(Path(sys.argv[1])):\n"
            "    print('watching', flush=True); time.sleep(60)",
            str(tmp_path / "stalls.jsonl"),
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"watching"
    watcher = _watcher_pid(parent.pid)
    assert watcher is not None
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _running(watcher):
        time.sleep(0.02)
    assert not _running(watcher), "the watcher outlived its SIGKILLed parent"


def _running(pid: int) -> bool:
    """Alive and not a zombie (one that exited and waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
