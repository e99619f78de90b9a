"""Locust load against a real stack: samples arrive as they happen, at the rate asked."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import ConfigError
from harness.faults import replay_open_records
from harness.load import LoadRun, LoadSpec, Sample, prepare_chain
from harness.load.runner import REMOTE_WORKER_SCRIPT, accounts_needed
from harness.stack import LocalStack, StackSpec
from harness.stack.state import reap_stale_stacks


@pytest.fixture(scope="module")
def stack() -> LocalStack:  # type: ignore[misc]
    with LocalStack(StackSpec(name="load", block_time_s=0.5)) as s:
        yield s


def drive(stack: LocalStack, spec: LoadSpec, seconds: float, tmp_path: Path) -> list[Sample]:
    state = stack.state()
    contract = prepare_chain([n.url for n in state.nodes], accounts=accounts_needed(spec))
    got: list[Sample] = []
    with LoadRun(spec, state.frontend_url, tmp_path / "load", contract, got.extend) as run:
        start = time.monotonic_ns()
        time.sleep(seconds)
        end = time.monotonic_ns()
    assert run.sample_count == len(got)
    return [s for s in got if start <= s.intended_ns < end]


def test_open_model_sends_at_the_intended_rate_with_every_method_of_the_mix(
    stack: LocalStack, tmp_path: Path
) -> None:
    samples = drive(stack, LoadSpec(rate_per_s=150, users=16, workers=1), 3.0, tmp_path)
    assert 150 * 3 * 0.85 <= len(samples) <= 150 * 3 * 1.15
    outcomes = collections.Counter(s.outcome for s in samples)
    assert outcomes["ok"] / len(samples) > 0.97, outcomes
    methods = {s.method for s in samples}
    assert {"eth_call", "eth_blockNumber", "eth_getStorageAt"} <= methods
    assert all(s.latency_us > 0 for s in samples)


def test_closed_model_with_two_workers_reads_samples_from_both(
    stack: LocalStack, tmp_path: Path
) -> None:
    spec = LoadSpec(model="closed", users=4, workers=2, wait_ms=20)
    samples = drive(stack, spec, 3.0, tmp_path)
    assert len(list((tmp_path / "load").glob("samples-*.txt"))) == 2
    assert len(samples) > 100
    assert collections.Counter(s.outcome for s in samples)["ok"] / len(samples) > 0.97


def test_an_open_load_counts_a_stall_from_the_intended_send_time(
    stack: LocalStack, tmp_path: Path
) -> None:
    state = stack.state()
    contract = prepare_chain([n.url for n in state.nodes])
    got: list[Sample] = []
    spec = LoadSpec(profile="light", rate_per_s=100, users=8, workers=1)
    procs = [psutil.Process(n.pid) for n in state.nodes if n.pid]
    with LoadRun(spec, state.frontend_url, tmp_path / "load", contract, got.extend):
        time.sleep(1.0)
        for p in procs:
            p.suspend()
        time.sleep(1.0)
        for p in procs:
            p.resume()
        time.sleep(1.0)
    worst = max(s.latency_us for s in got)
    # Requests due at the start of the 1 s stall waited for all of it.
    assert worst >= 900_000


def test_a_remote_worker_started_from_the_written_script_sends_its_samples_to_the_harness(
    stack: LocalStack, tmp_path: Path
) -> None:
    state = stack.state()
    spec = LoadSpec(model="closed", users=4, workers=1, remote_workers=1, wait_ms=20)
    contract = prepare_chain([n.url for n in state.nodes], accounts=accounts_needed(spec))
    samples_dir = tmp_path / "load"
    script = samples_dir / REMOTE_WORKER_SCRIPT
    # The "remote" machine: its own directory and an environment without the harness's
    # variables, so all it knows is the script.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_LOAD_")}
    remote: list[subprocess.Popen[bytes]] = []

    def start_remote_worker() -> None:
        deadline = time.monotonic() + 30
        while not (script.exists() and script.read_text().endswith("WARNING\n")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        with open(tmp_path / "remote-worker.log", "wb") as out:
            remote.append(
                subprocess.Popen(
                    ["sh", str(script)], cwd=elsewhere, env=env, stdout=out, stderr=out
                )
            )

    starter = threading.Thread(target=start_remote_worker)
    starter.start()
    got: list[Sample] = []
    try:
        with LoadRun(spec, state.frontend_url, samples_dir, contract, got.extend) as run:
            time.sleep(3.0)
    finally:
        starter.join()
        for proc in remote:
            proc.terminate()
            proc.wait(10)
    assert remote, "the runner wrote no remote-worker script"
    [remote_file] = samples_dir.glob("samples-remote-*.txt")
    remote_lines = remote_file.read_text().splitlines()
    assert len(remote_lines) > 20, (tmp_path / "remote-worker.log").read_text()
    delivered = {(s.intended_ns, s.method) for s in got}
    for line in remote_lines:
        intended, _, method = line.split(" ")[:3]  # an eth_blockNumber line adds its head
        assert (int(intended), method) in delivered
    assert run.sample_count == len(got)
    assert not any(elsewhere.iterdir()), "the remote worker wrote files where it ran"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"profile": "nope"}, "profile"),
        ({"rate_per_s": -1}, "rate_per_s"),
        ({"model": "half-open"}, "load model"),
        ({"users": 1, "workers": 2}, "users"),
    ],
)
def test_bad_load_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        LoadSpec(**kwargs)  # type: ignore[arg-type]
    assert field in error.value.field


def test_locust_does_not_outlive_a_sigkilled_harness(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, time
        from pathlib import Path
        from harness.stack import LocalStack, StackSpec
        from harness.load import LoadRun, LoadSpec, prepare_chain
        stack = LocalStack(StackSpec(name="loadvictim"))
        state = stack.start()
        contract = prepare_chain([n.url for n in state.nodes])
        run = LoadRun(LoadSpec(rate_per_s=50, users=4, workers=2), state.frontend_url,
                      Path({str(tmp_path)!r}) / "load", contract)
        run.__enter__()
        print(json.dumps([p.pid for p in run.processes]), flush=True)
        time.sleep(120)
        """
    )
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert victim.stdout is not None
    pids = json.loads(victim.stdout.readline())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert all(psutil.pid_exists(p) for p in pids)
    undone = replay_open_records()
    assert any("locust" in line for line in undone), undone
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
        assert time.monotonic() < deadline, "locust survived cleanup"
        time.sleep(0.1)
    reap_stale_stacks()
