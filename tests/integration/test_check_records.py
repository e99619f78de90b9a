"""The load records what clients were answered, and the checker reads it back: a real anvil
behind HAProxy, a real Locust, the files it writes."""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.jsonrpc import RpcClient
from harness.load import LoadRun, LoadSpec, Sample, prepare_chain
from harness.load.runner import REMOTE_WORKER_SCRIPT, accounts_needed
from harness.measure.checker import check
from harness.measure.observations import Observation, read_observations
from harness.stack import LocalStack, StackSpec


@pytest.fixture(scope="module")
def stack() -> LocalStack:  # type: ignore[misc]
    with LocalStack(StackSpec(name="checks", nodes=1, block_time_s=0.5)) as s:
        yield s


class OneNode:
    """The chain of a one-node stack, read from the node after the run: one branch, no
    reorg, the workload contract's logs counted per block."""

    def __init__(self, url: str, contract: str) -> None:
        with RpcClient(url, timeout_s=10) as client:
            top = client.block_number()
            self.hashes = {
                n: str(client.call("eth_getBlockByNumber", [hex(n), False])["hash"])
                for n in range(top + 1)
            }
            found = client.call(
                "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(top), "address": contract}]
            )
        self.top = top
        self.logs = collections.Counter((int(x["blockNumber"], 16), x["blockHash"]) for x in found)

    def on_any_branch(self, number: int, hash: str) -> bool:
        return self.hashes.get(number) == hash

    def canonical_hash(self, number: int) -> str | None:
        return self.hashes.get(number)

    def deepest_reorg(self, start_ns: int, end_ns: int) -> int:
        return 0

    def head_at(self, t_ns: int) -> int | None:
        return None

    def logs_in(self, number: int, hash: str) -> int | None:
        return self.logs[(number, hash)] if number <= self.top else None


def run_load(
    stack: LocalStack, samples_dir: Path, seconds: float = 4.0
) -> tuple[str, list[Sample], int, int]:
    state = stack.state()
    spec = LoadSpec(model="closed", users=4, workers=1, wait_ms=5)
    contract = prepare_chain([n.url for n in state.nodes], accounts=accounts_needed(spec))
    got: list[Sample] = []
    with LoadRun(spec, state.frontend_url, samples_dir, contract, got.extend):
        start = time.monotonic_ns()
        time.sleep(seconds)
        end = time.monotonic_ns()
    return contract, got, start, end


def test_a_load_records_what_each_session_was_answered_and_one_node_shows_no_anomaly(
    stack: LocalStack, tmp_path: Path
) -> None:
    contract, samples, start, end = run_load(stack, tmp_path / "load")
    [_] = (tmp_path / "load").glob("checks-*.txt")
    seen = read_observations(tmp_path / "load")
    methods = collections.Counter(o.method for o in seen)
    assert set(methods) == {
        "eth_blockNumber", "eth_getBlockByNumber", "eth_getLogs", "eth_getTransactionReceipt"
    }  # fmt: skip
    # Every answer to a checked method, and nothing else: as many as the samples say.
    checked = sum(s.method.removesuffix("_full") in methods for s in samples)
    assert abs(len(seen) - checked) <= 4 * 2, (len(seen), checked)  # a request in flight each
    sessions: dict[str, list[Observation]] = collections.defaultdict(list)
    for o in seen:
        sessions[o.session].append(o)
        assert o.sent_ns <= o.answered_ns
        assert start - 30e9 < o.sent_ns < end + 10e9
    assert len(sessions) == 4 and all(s.split(".")[0].isdigit() for s in sessions)
    for answers in sessions.values():
        answers.sort(key=lambda o: o.sent_ns)
        heads = [o.head for o in answers if o.head is not None]
        assert len(heads) > 5 and heads == sorted(heads)  # one node: the head only grows
        for earlier, later in itertools.pairwise(answers):
            assert earlier.answered_ns <= later.sent_ns  # one request at a time
    receipts = [o for o in seen if o.method == "eth_getTransactionReceipt" and o.blocks]
    assert receipts and all(len(o.blocks[0].hash) == 66 for o in receipts)
    assert all(o.key.startswith("0x") and len(o.key) == 66 for o in receipts)
    with_logs = [o for o in seen if o.method == "eth_getLogs" and o.blocks]
    assert with_logs and all(o.first_block is not None and o.log_filter for o in with_logs)
    chain = OneNode(stack.state().nodes[0].url, contract)
    for o in receipts[:20]:
        assert chain.canonical_hash(o.blocks[0].number) == o.blocks[0].hash
    result = check(seen, chain)
    assert result.observations == len(seen)
    assert result.counts() == dict.fromkeys(result.counts(), 0), result.examples


def test_a_load_with_checks_off_writes_no_observations(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_LOAD_CHECKS", "0")
    _, samples, _, _ = run_load(stack, tmp_path / "load", seconds=2.0)
    assert len(samples) > 50
    assert not list((tmp_path / "load").glob("checks-*"))


def test_a_remote_workers_observations_come_through_the_master(
    stack: LocalStack, tmp_path: Path
) -> None:
    state = stack.state()
    spec = LoadSpec(model="closed", users=2, workers=1, remote_workers=1, wait_ms=20)
    contract = prepare_chain([n.url for n in state.nodes], accounts=accounts_needed(spec))
    samples_dir = tmp_path / "load"
    script = samples_dir / REMOTE_WORKER_SCRIPT
    elsewhere = tmp_path / "elsewhere"  # the "remote" machine: all it knows is the script
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
    try:
        with LoadRun(spec, state.frontend_url, samples_dir, contract):
            start = time.monotonic_ns()
            time.sleep(3.0)
            end = time.monotonic_ns()
    finally:
        starter.join()
        for proc in remote:
            proc.terminate()
            proc.wait(10)
    assert remote, "the runner wrote no remote-worker script"
    [remote_file] = samples_dir.glob("checks-remote-*.txt")
    name = remote_file.name.removeprefix("checks-remote-").removesuffix(".txt")
    theirs = [o for o in read_observations(samples_dir) if o.session.startswith(f"{name}/")]
    assert len(theirs) > 5, (tmp_path / "remote-worker.log").read_text()
    # On this host's clock: inside the run (the offset is the same host's, near zero).
    assert all(start - 5e9 < o.sent_ns <= o.answered_ns < end + 5e9 for o in theirs)
    assert not any(elsewhere.iterdir()), "the remote worker wrote files where it ran"
