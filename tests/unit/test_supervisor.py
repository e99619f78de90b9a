"""The supervisor with real, short-lived child processes: restart delays, backoff, stop.

Delays are small (0.05-0.6 s) so each test takes well under three seconds; timings are
read from the events' own ``t_ns`` so they measure what the supervisor saw, not the test.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.stack.model import RestartPolicy
from harness.stack.supervisor import ProcessEvent, Supervisor, describe_returncode

SLEEPER = ["sleep", "30"]
# Ignores SIGTERM, then says so (the test must not signal it before the handler is set).
IGNORES_SIGTERM = [
    sys.executable,
    "-c",
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n",
]


def says_when_sigterm_came(exit_after_s: float) -> list[str]:
    """A child that logs ``term <monotonic_ns>`` on SIGTERM and exits ``exit_after_s`` later."""
    return [
        sys.executable,
        "-c",
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('term', time.monotonic_ns(), flush=True)\n"
        f"    time.sleep({exit_after_s})\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n",
    ]


def policy(
    delay_s: float = 0.05,
    backoff: float = 1.0,
    max_delay_s: float = 10.0,
    reset_after_s: float = 10.0,
    enabled: bool = True,
) -> RestartPolicy:
    return RestartPolicy(delay_s, backoff, max_delay_s, reset_after_s, enabled)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.005)


def of_kind(sup: Supervisor, kind: str, component: str | None = None) -> list[ProcessEvent]:
    return [
        e
        for e in list(sup.events)
        if e.kind == kind and (component is None or e.component == component)
    ]


def wait_for_events(sup: Supervisor, kind: str, count: int, timeout_s: float = 3.0) -> None:
    wait_for(lambda: len(of_kind(sup, kind)) >= count, f"{count} {kind!r} event(s)", timeout_s)


def wait_for_output(sup: Supervisor, name: str, text: str) -> None:
    log_path = sup.log_dir / f"{name}.log"
    wait_for(lambda: log_path.exists() and text in log_path.read_text(), f"{text!r} in {name}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ms_between(earlier: ProcessEvent, later: ProcessEvent) -> float:
    return (later.t_ns - earlier.t_ns) / 1e6


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    """A supervisor whose every child, ever started, must be gone after the test."""
    sup = Supervisor(tmp_path)
    try:
        yield sup
    finally:
        sup.stop(timeout_s=1.0)
        started = {e.pid for e in sup.events if e.kind == "started" and e.pid is not None}
        survivors = [pid for pid in started if alive(pid)]
        for pid in survivors:  # clean up before failing, so one bug does not leak into others
            os.kill(pid, signal.SIGKILL)
        assert not survivors, f"children outlived stop(): {survivors}"


def forks_a_helper(pid_file: Path) -> list[str]:
    """A child that starts a grandchild (writing its pid to ``pid_file``) and waits."""
    return ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"]


def helper_pid(pid_file: Path) -> int:
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the helper")
    return int(pid_file.read_text())


# --- restart after a death ---------------------------------------------------------------


def test_sigkilled_child_is_restarted_after_the_configured_delay(supervisor: Supervisor) -> None:
    child = supervisor.add("node", SLEEPER, policy(delay_s=0.2))
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    wait_for_events(supervisor, "started", 2)

    (exited,) = of_kind(supervisor, "exited")
    restarted = of_kind(supervisor, "started")[1]
    gap_ms = ms_between(exited, restarted)
    assert 200 <= gap_ms < 400, f"restart came {gap_ms:.1f} ms after the death, delay is 200 ms"


def test_what_a_dead_child_started_dies_before_it_is_restarted(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    pid_file = tmp_path / "helper.pid"
    child = supervisor.add("node", forks_a_helper(pid_file), policy(delay_s=0.3))
    helper = helper_pid(pid_file)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    wait_for_events(supervisor, "restart_scheduled", 1)
    assert not alive(helper), "the killed child's helper outlived it"


def test_consecutive_quick_deaths_multiply_the_delay_up_to_max_delay_s(
    supervisor: Supervisor,
) -> None:
    supervisor.add("node", ["false"], policy(delay_s=0.05, backoff=2.0, max_delay_s=0.2))
    wait_for_events(supervisor, "restart_scheduled", 5)
    supervisor.stop()

    scheduled = [e.detail for e in of_kind(supervisor, "restart_scheduled")][:5]
    assert scheduled == ["in 0.050s", "in 0.100s", "in 0.200s", "in 0.200s", "in 0.200s"]
    exits = of_kind(supervisor, "exited")
    starts = of_kind(supervisor, "started")[1:]
    for expected_ms, died, came_back in zip([50, 100, 200, 200], exits, starts, strict=False):
        gap_ms = ms_between(died, came_back)
        assert expected_ms <= gap_ms < expected_ms + 150, (expected_ms, gap_ms)


def test_delay_resets_once_the_process_stayed_up_reset_after_s(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    # Runs 1 and 2 die at once; run 3 lives 0.4 s (> reset_after_s) before it dies.
    counter = tmp_path / "runs"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'if [ "$n" -eq 3 ]; then sleep 0.4; fi; exit 1'
    )
    supervisor.add(
        "node", ["sh", "-c", script], policy(delay_s=0.05, backoff=4.0, reset_after_s=0.25)
    )
    wait_for_events(supervisor, "restart_scheduled", 3)
    supervisor.stop()

    scheduled = [e.detail for e in of_kind(supervisor, "restart_scheduled")][:3]
    # Without the reset the third delay would be 0.8 s (0.05 x 4 x 4).
    assert scheduled == ["in 0.050s", "in 0.200s", "in 0.050s"]


def test_disabled_policy_leaves_a_dead_child_dead(supervisor: Supervisor) -> None:
    supervisor.add("node", ["false"], policy(delay_s=0.05, enabled=False))
    wait_for_events(supervisor, "exited", 1)
    time.sleep(0.3)  # six restart delays

    assert [e.kind for e in supervisor.events] == ["started", "exited"]
    assert supervisor.restarts() == {"node": 0}
    assert supervisor.pids() == {"node": None}


def test_a_restart_that_cannot_spawn_is_reported_and_not_retried(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    # The program deletes itself: the first run works, the restart finds nothing to run.
    program = tmp_path / "vanishing"
    program.write_text('#!/bin/sh\nrm -f "$0"\nexit 1\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    supervisor.add("node", [str(program)], policy(delay_s=0.05))
    wait_for_events(supervisor, "spawn_failed", 1)
    time.sleep(0.2)

    kinds = [e.kind for e in supervisor.events]
    assert kinds == ["started", "exited", "restart_scheduled", "spawn_failed"]
    assert "No such file" in of_kind(supervisor, "spawn_failed")[0].detail
    assert supervisor.restarts() == {"node": 0}


def test_an_observer_that_raises_does_not_stop_restarts(tmp_path: Path) -> None:
    seen: list[str] = []

    def broken_observer(event: ProcessEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("observer bug")

    with Supervisor(tmp_path, on_event=broken_observer) as sup:
        child = sup.add("node", SLEEPER, policy(delay_s=0.05))
        first_pid = child.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        wait_for_events(sup, "started", 2)
        assert sup.restarts() == {"node": 1}
    assert seen[:4] == ["started", "exited", "restart_scheduled", "started"]
    assert not alive(first_pid)
    assert all(not alive(e.pid) for e in of_kind(sup, "started") if e.pid is not None)


# --- events, pids and restart counts -----------------------------------------------------


def test_exited_event_names_the_dead_pid_and_the_signal_that_killed_it(
    supervisor: Supervisor,
) -> None:
    child = supervisor.add("node", SLEEPER, policy(delay_s=0.05))
    pid = child.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for_events(supervisor, "exited", 1)

    (exited,) = of_kind(supervisor, "exited")
    assert exited.component == "node"
    assert exited.pid == pid
    assert exited.returncode == -signal.SIGKILL
    assert exited.detail == "killed by SIGKILL"


def test_events_come_in_order_with_monotonic_timestamps(supervisor: Supervisor) -> None:
    child = supervisor.add("node", SLEEPER, policy(delay_s=0.05))
    for restarts in (1, 2):
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        wait_for_events(supervisor, "started", restarts + 1)
    supervisor.stop()

    events = supervisor.events
    assert [e.kind for e in events] == [
        "started",
        *["exited", "restart_scheduled", "started"] * 2,
        "stopped",
    ]
    stamps = [e.t_ns for e in events]
    assert stamps == sorted(stamps)
    starts = of_kind(supervisor, "started")
    assert [e.pid for e in of_kind(supervisor, "exited")] == [s.pid for s in starts[:2]]
    assert of_kind(supervisor, "stopped")[0].pid == starts[2].pid
    assert {e.component for e in events} == {"node"}


def test_restarts_and_pids_follow_each_restart(supervisor: Supervisor) -> None:
    child = supervisor.add("node", SLEEPER, policy(delay_s=0.05))
    other = supervisor.add("other", SLEEPER, policy(delay_s=0.05))
    old_pids = []
    for restarts in (1, 2):
        pid = supervisor.pids()["node"]
        assert pid is not None
        old_pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda n=restarts: supervisor.restarts()["node"] == n, f"restart {restarts}")

    assert supervisor.restarts() == {"node": 2, "other": 0}
    new_pid = supervisor.pids()["node"]
    assert new_pid == child.pid
    assert new_pid is not None and new_pid not in old_pids and alive(new_pid)
    assert supervisor.pids()["other"] == other.pid
    supervisor.stop()
    assert supervisor.pids() == {"node": None, "other": None}


def test_each_run_appends_its_output_to_the_components_log(supervisor: Supervisor) -> None:
    supervisor.add("node", ["sh", "-c", "echo run"], policy(delay_s=0.05))
    wait_for_events(supervisor, "exited", 2)
    supervisor.stop()

    assert (supervisor.log_dir / "node.log").read_text().splitlines()[:2] == ["run", "run"]


# --- adding ------------------------------------------------------------------------------


def test_a_binary_that_cannot_be_spawned_raises_oserror_from_add(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    with pytest.raises(OSError):
        supervisor.add("ghost", [str(tmp_path / "no-such-binary")], policy())
    assert of_kind(supervisor, "started") == []


def test_a_name_whose_spawn_failed_can_be_added_again(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    with pytest.raises(OSError):
        supervisor.add("node", [str(tmp_path / "no-such-binary")], policy())
    child = supervisor.add("node", SLEEPER, policy())
    assert supervisor.pids() == {"node": child.pid}


def test_adding_the_same_name_twice_is_refused(supervisor: Supervisor) -> None:
    supervisor.add("node", SLEEPER, policy())
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.add("node", SLEEPER, policy())


# --- stopping ----------------------------------------------------------------------------


def test_stop_ends_children_with_sigterm_and_reports_no_death(supervisor: Supervisor) -> None:
    supervisor.add("a", SLEEPER, policy())
    supervisor.add("b", SLEEPER, policy())
    supervisor.stop()

    stopped = of_kind(supervisor, "stopped")
    assert {e.component: e.returncode for e in stopped} == {
        "a": -signal.SIGTERM,
        "b": -signal.SIGTERM,
    }
    assert of_kind(supervisor, "exited") == []
    assert supervisor.pids() == {"a": None, "b": None}


def test_stop_ends_what_the_children_started_too(supervisor: Supervisor, tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    supervisor.add("node", forks_a_helper(pid_file), policy())
    helper = helper_pid(pid_file)
    supervisor.stop(timeout_s=1.0)
    wait_for(lambda: not alive(helper), "the helper to be gone", timeout_s=1.0)


def test_stop_never_restarts_what_it_stopped(supervisor: Supervisor) -> None:
    supervisor.add("node", SLEEPER, policy(delay_s=0.05))
    supervisor.stop()
    time.sleep(0.25)  # five restart delays

    assert len(of_kind(supervisor, "started")) == 1
    assert of_kind(supervisor, "restart_scheduled") == []
    assert supervisor.restarts() == {"node": 0}


def test_stop_sigkills_a_child_that_ignores_sigterm_after_timeout_s(
    supervisor: Supervisor,
) -> None:
    supervisor.add("stubborn", IGNORES_SIGTERM, policy())
    wait_for_output(supervisor, "stubborn", "ready")

    began = time.monotonic()
    supervisor.stop(timeout_s=0.3)
    took_s = time.monotonic() - began

    (stopped,) = of_kind(supervisor, "stopped")
    assert stopped.returncode == -signal.SIGKILL
    assert 0.3 <= took_s < 1.5


def test_stop_resumes_a_sigstopped_child_so_that_sigterm_ends_it(
    supervisor: Supervisor,
) -> None:
    child = supervisor.add("paused", SLEEPER, policy())
    assert child.pid is not None
    os.kill(child.pid, signal.SIGSTOP)
    process = psutil.Process(child.pid)
    wait_for(lambda: process.status() == psutil.STATUS_STOPPED, "the child to stop")

    began = time.monotonic()
    supervisor.stop(timeout_s=2.0)
    took_s = time.monotonic() - began

    (stopped,) = of_kind(supervisor, "stopped")
    # SIGTERM, not the SIGKILL of the timeout: it was resumed and acted on SIGTERM.
    assert stopped.returncode == -signal.SIGTERM
    assert took_s < 1.0


def test_stop_during_a_pending_restart_delay_spawns_nothing(supervisor: Supervisor) -> None:
    child = supervisor.add("node", SLEEPER, policy(delay_s=0.6))
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    wait_for_events(supervisor, "restart_scheduled", 1)

    began = time.monotonic()
    supervisor.stop()
    took_s = time.monotonic() - began
    time.sleep(0.8)  # past the moment the restart was due

    assert took_s < 0.3, "stop() waited out the restart delay instead of cancelling it"
    assert len(of_kind(supervisor, "started")) == 1
    assert supervisor.restarts() == {"node": 0}
    assert supervisor.pids() == {"node": None}


def test_stop_with_first_sends_sigterm_to_the_rest_only_once_those_have_exited(
    supervisor: Supervisor,
) -> None:
    supervisor.add("node", says_when_sigterm_came(exit_after_s=0), policy())
    supervisor.add("balancer", says_when_sigterm_came(exit_after_s=0.3), policy())
    for name in ("node", "balancer"):
        wait_for_output(supervisor, name, "ready")

    supervisor.stop(first=["balancer"])

    def sigterm_ns(name: str) -> int:
        log = (supervisor.log_dir / f"{name}.log").read_text()
        return int(log.split("term ")[1].split()[0])

    balancer_stopped = of_kind(supervisor, "stopped", "balancer")[0].t_ns
    assert sigterm_ns("balancer") < balancer_stopped <= sigterm_ns("node")
    assert [e.component for e in of_kind(supervisor, "stopped")] == ["balancer", "node"]


def test_leaving_the_context_stops_every_child(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        child = sup.add("node", SLEEPER, policy())
        pid = child.pid
        assert pid is not None and alive(pid)
    assert not alive(pid)
    assert [e.kind for e in sup.events] == ["started", "stopped"]


# --- describe_returncode -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "described"),
    [
        (0, "exited with status 0"),
        (1, "exited with status 1"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),
    ],
)
def test_describe_returncode_names_the_status_or_the_signal(
    returncode: int, described: str
) -> None:
    assert describe_returncode(returncode) == described


@given(st.integers(min_value=0, max_value=2**31))
def test_describe_returncode_reports_any_non_negative_code_as_an_exit_status(code: int) -> None:
    assert describe_returncode(code) == f"exited with status {code}"


@given(st.integers(min_value=-(2**31), max_value=-1))
def test_describe_returncode_reports_any_negative_code_as_a_signal(code: int) -> None:
    assert describe_returncode(code).startswith("killed by ")
