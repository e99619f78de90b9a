"""Nothing outlives a run: not on teardown, not on Ctrl-C, not when the harness is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from harness.stack.state import stacks_dir
from tests.conftest import processes_under

STARTS_A_STACK_AND_WAITS = textwrap.dedent(
    """
    import json, sys, time
    from harness.stack import LocalStack, StackSpec
    stack = LocalStack(StackSpec(name="victim"))
    state = stack.start()
    print(json.dumps([c.pid for c in state.components]), flush=True)
    time.sleep(120)
    """
)


def _start_victim() -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STARTS_A_STACK_AND_WAITS], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the victim did not start its stack"
    return proc, json.loads(line)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_harness_cleanup_removes_what_a_sigkilled_harness_left_and_says_so() -> None:
    victim, pids = _start_victim()
    victim.kill()
    victim.wait()
    assert all(_alive(pid) for pid in pids), "the stack should survive its owner's SIGKILL"
    result = subprocess.run(
        ["harness", "cleanup"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "node-0" in result.stdout and "haproxy" in result.stdout
    assert "4 leftover(s) removed" in result.stdout  # three processes and the state dir
    assert not any(_alive(pid) for pid in pids)
    assert not (stacks_dir() / "victim").exists()


def test_cleanup_is_idempotent_and_quiet_when_there_is_nothing_left() -> None:
    result = subprocess.run(
        ["harness", "cleanup"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "0 leftover(s) removed" in result.stdout


def test_a_new_stack_reaps_the_stack_of_a_sigkilled_harness() -> None:
    victim, pids = _start_victim()
    victim.kill()
    victim.wait()
    from harness.stack import LocalStack, StackSpec

    with LocalStack(StackSpec(name="next")) as stack:
        assert any("victim" in line for line in stack.reaped)
        assert not any(_alive(pid) for pid in pids)


def test_a_stack_that_is_still_owned_is_never_reaped() -> None:
    victim, pids = _start_victim()
    try:
        result = subprocess.run(
            ["harness", "cleanup"], capture_output=True, text=True, timeout=60, check=False
        )
        assert "0 leftover(s) removed" in result.stdout
        assert all(_alive(pid) for pid in pids)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        subprocess.run(["harness", "cleanup"], capture_output=True, timeout=60, check=False)


SESSION_TEST = textwrap.dedent(
    """
    import json, os, time

    def test_holds_the_stack(stack):
        path = os.environ["PIDS_FILE"]
        with open(path, "w") as out:
            json.dump([c.pid for c in stack.state().components], out)
        time.sleep(60)
    """
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pytest_session_interrupted_by(sig: signal.Signals, tmp_path: Path) -> list[int]:
    test_file = tmp_path / "test_session.py"
    test_file.write_text(SESSION_TEST)
    pids_file = tmp_path / "pids.json"
    env = dict(os.environ, PIDS_FILE=str(pids_file))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A suite started in the background (`make test &`) ignores SIGINT, and a child
        # inherits that: the session under test gets Ctrl-C as a terminal would give it.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not pids_file.exists() or not pids_file.read_text():
        assert time.monotonic() < deadline, "the pytest session never started its stack"
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    pids: list[int] = json.loads(pids_file.read_text())
    proc.send_signal(sig)
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()[0]
        raise AssertionError(f"no end within 120 s of {sig.name}: {output}") from None
    return pids


def test_ctrl_c_in_a_pytest_session_tears_the_stack_down(tmp_path: Path) -> None:
    pids = _pytest_session_interrupted_by(signal.SIGINT, tmp_path)
    assert not any(_alive(pid) for pid in pids)
    assert processes_under(stacks_dir()) == []


def test_sigterm_to_a_pytest_session_tears_the_stack_down(tmp_path: Path) -> None:
    pids = _pytest_session_interrupted_by(signal.SIGTERM, tmp_path)
    assert not any(_alive(pid) for pid in pids)


def test_cleanup_stops_a_process_of_the_stack_that_its_state_file_never_listed() -> None:
    # As a node the supervisor restarted in the instant before the harness was killed.
    victim, pids = _start_victim()
    victim.kill()
    victim.wait()
    stack_dir = stacks_dir() / "victim"
    stray = subprocess.Popen(["sh", "-c", "sleep 60", str(stack_dir / "nodes" / "node-0")])
    try:
        result = subprocess.run(
            ["harness", "cleanup"], capture_output=True, text=True, timeout=60, check=False
        )
        assert f"stray process sh (pid {stray.pid})" in result.stdout
        assert stray.wait(timeout=5) is not None
    finally:
        stray.kill()
    assert not any(_alive(pid) for pid in pids)
