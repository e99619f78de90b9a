"""One chain across anvil nodes: a chain source that mines, followers that mine nothing by
themselves, and the replicator process between them. Real anvils on free ports, a real
``python -m harness.chain``; every block, receipt and BLOCKHASH answer is compared with
the source's."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.chain import (
    ReplicatorClient,
    ReplicatorConfig,
    ReplicatorProcess,
    check_genesis,
    follower_args,
    genesis_timestamp,
    parse_args,
    read_chain_log,
    seed_state,
    source_args,
)
from harness.chain.rpc import BatchClient
from harness.errors import ConfigError, StackError
from harness.jsonrpc import RpcClient, RpcFailure
from harness.load import workload
from harness.stack.nodes import adapter
from harness.stack.ports import free_port

ANVIL = str(adapter("anvil").binary())

# Runtime code that stores BLOCKHASH(NUMBER-1), PREVRANDAO, COINBASE, BASEFEE and TIMESTAMP
# in slots 0..4, so that the state root depends on every one of them; and its init code.
PROBE_RUNTIME = bytes.fromhex("60014303405f554460015541600255486003554260045500")
_COPY_AND_RETURN = f"60{len(PROBE_RUNTIME):02x}600a5f3960{len(PROBE_RUNTIME):02x}5ff3"
PROBE_INIT = bytes.fromhex(_COPY_AND_RETURN) + PROBE_RUNTIME


def blockhash_call(number: int) -> str:
    """Calldata of a contract creation that returns BLOCKHASH(number)."""
    return f"0x61{number:04x}405f5260205ff3"


@contextlib.contextmanager
def anvil(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/"
        deadline = time.monotonic() + 10
        with RpcClient(url, timeout_s=0.5) as client:
            while True:
                try:
                    client.block_number()
                    break
                except RpcFailure as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"anvil did not start: {log.read_text()[-500:]}"
                        ) from exc
                    time.sleep(0.02)
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


@dataclass
class Chain:
    """A source, followers and the replicator between them."""

    dir: Path
    timestamp: int
    source_url: str
    follower_ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    replicator: ReplicatorProcess | None = None

    @property
    def client(self) -> ReplicatorClient:
        assert self.replicator is not None
        return self.replicator.client

    @property
    def log_path(self) -> Path:
        return self.dir / "chain.jsonl"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.follower_ports[name]}/"

    def follower_argv(self, name: str) -> list[str]:
        return follower_args(
            ANVIL,
            port=self.follower_ports[name],
            genesis_timestamp=self.timestamp,
            state_path=self.dir / f"{name}.state.json",
        )

    def start_follower(self, name: str) -> None:
        self.procs[name] = self.stack.enter_context(
            anvil(self.follower_argv(name), self.dir / f"{name}.log")
        )

    def kill_follower(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def one_chain(
    tmp_path: Path, block_time_s: float, followers: tuple[str, ...] = ("a", "b"), *args: str
) -> Iterator[Chain]:
    source_port = free_port()
    chain = Chain(
        dir=tmp_path,
        timestamp=genesis_timestamp(),
        source_url=f"http://127.0.0.1:{source_port}/",
        follower_ports={name: free_port() for name in followers},
    )
    with chain.stack:
        source = source_args(
            ANVIL,
            port=source_port,
            block_time_s=block_time_s,
            genesis_timestamp=chain.timestamp,
            state_path=tmp_path / "source.state.json",
        )
        chain.procs["source"] = chain.stack.enter_context(anvil(source, tmp_path / "source.log"))
        for name in followers:
            chain.start_follower(name)
        argv = ["--source", chain.source_url, "--control", "127.0.0.1:0"]
        argv += ["--log", str(chain.log_path), *args]
        for name in followers:
            argv += ["--node", f"{name}={chain.url(name)}"]
        config: ReplicatorConfig = parse_args(argv)
        chain.replicator = chain.stack.enter_context(
            ReplicatorProcess(config, stderr_path=tmp_path / "replicator.log")
        )
        yield chain


def block(url: str, number: int | str) -> dict[str, Any]:
    with RpcClient(url) as client:
        tag = hex(number) if isinstance(number, int) else number
        doc = client.call("eth_getBlockByNumber", [tag, False])
    assert isinstance(doc, dict), (url, number, doc)
    return doc


def head(url: str) -> int:
    with RpcClient(url, timeout_s=1.0) as client:
        return client.block_number()


def wait_for_source_head(chain: Chain, number: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while head(chain.source_url) < number:
        assert time.monotonic() < deadline, f"the source did not reach block {number}"
        time.sleep(0.05)


class TransactionFlow:
    """Sends a mix to the source from anvil's unlocked accounts while it runs: EIP-1559
    and legacy transfers, swaps of the workload contract (logs), calls of the probe
    contract (BLOCKHASH, PREVRANDAO, COINBASE, BASEFEE), and deployments."""

    def __init__(self, url: str, probe: str, pool: str) -> None:
        self.url = url
        self.probe = probe
        self.pool = pool
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TransactionFlow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with RpcClient(self.url) as client:
            accounts = client.call("eth_accounts")
            i = 0
            while not self._stop.wait(0.04):
                i += 1
                sender = accounts[1 + i % 8]
                kind = i % 5
                tx: dict[str, Any] = {"from": sender, "gas": hex(200_000)}
                if kind == 0:
                    tx |= {"to": accounts[9], "value": hex(i)}
                elif kind == 1:  # legacy, with a gas price of its own
                    tx |= {"to": accounts[9], "value": hex(i), "gasPrice": hex(2 * 10**9 + i)}
                elif kind == 2:
                    data = workload.calldata(workload.SWAP, 10**15 + i)
                    tx |= {"to": self.pool, "data": "0x" + data.hex()}
                elif kind == 3:
                    tx |= {"to": self.probe, "data": "0x"}
                else:
                    tx |= {"data": "0x" + PROBE_INIT.hex(), "gas": hex(300_000)}
                client.call("eth_sendTransaction", [tx])
                self.sent += 1


def receipt(client: RpcClient, tx: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while not isinstance(found := client.call("eth_getTransactionReceipt", [tx]), dict):
        assert time.monotonic() < deadline, f"{tx} not mined"
        time.sleep(0.05)
    return dict(found)


def deploy_contracts(url: str) -> tuple[str, str]:
    """The probe contract and the workload's contract, deployed on the source by real
    transactions only (a cheat such as anvil_setBalance is not in any block, so followers
    would not have it): the deployer is funded by a transfer first."""
    with RpcClient(url) as client:
        accounts = client.call("eth_accounts")
        funding = client.call(
            "eth_sendTransaction",
            [{"from": accounts[0], "to": workload.deployer().address, "value": hex(10**20)}],
        )
        probe_tx = client.call(
            "eth_sendTransaction", [{"from": accounts[0], "data": "0x" + PROBE_INIT.hex()}]
        )
        receipt(client, funding)
        probe = receipt(client, probe_tx)["contractAddress"]
    pool = workload.prepare_chain([url])
    return probe, pool


def read_all(url: str, last: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every block 0..last and every receipt of them, in batches."""
    with BatchClient(url, timeout_s=10) as client:
        blocks = client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(last + 1)])
        txs = [tx for b in blocks for tx in b["transactions"]]
        receipts = client.batch([("eth_getTransactionReceipt", [tx]) for tx in txs])
    return blocks, receipts


# -- genesis -------------------------------------------------------------------------------


def test_a_follower_has_the_genesis_of_its_source_and_another_timestamp_is_refused(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 1.0) as chain:
        genesis = check_genesis(chain.source_url, chain.url("a"))
        assert genesis == block(chain.source_url, 0)["hash"] == block(chain.url("b"), 0)["hash"]
        other_port = free_port()
        argv = follower_args(ANVIL, port=other_port, genesis_timestamp=chain.timestamp - 60)
        with anvil(argv, tmp_path / "other.log"):
            with pytest.raises(StackError, match="timestamp"):
                check_genesis(chain.source_url, f"http://127.0.0.1:{other_port}/")


def test_follower_args_refuse_flags_that_would_make_it_mine_by_itself() -> None:
    with pytest.raises(ConfigError, match="block-time"):
        follower_args(ANVIL, port=1, genesis_timestamp=1, extra_args=("--block-time", "1"))


# -- equality under load ------------------------------------------------------------------


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_every_block_and_receipt_of_two_followers_equals_the_sources_under_load(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 0.25) as chain:
        probe, pool = deploy_contracts(chain.source_url)
        start = head(chain.source_url)
        with TransactionFlow(chain.source_url, probe, pool) as flow:
            wait_for_source_head(chain, start + 55, timeout_s=20)
        status = chain.client.wait_synced(timeout_s=5)
        last = status.source.head
        assert last is not None
        source_blocks, source_receipts = read_all(chain.source_url, last)
        for name in ("a", "b"):
            blocks, receipts = read_all(chain.url(name), last)
            for theirs, ours in zip(source_blocks, blocks, strict=True):
                assert ours == theirs, f"{name} block {theirs['number']} differs"
            for theirs, ours in zip(source_receipts, receipts, strict=True):
                assert ours == theirs, f"{name} receipt of {theirs['transactionHash']} differs"
            assert status.nodes[name].mismatches == 0
    # The run had what it claims to have had.
    assert flow.sent > 200 and len(source_receipts) > 200
    assert any(r["logs"] for r in source_receipts)
    assert sum(1 for r in source_receipts if r["contractAddress"]) > 20
    assert all(r["status"] == "0x1" for r in source_receipts)
    assert len({b["baseFeePerGas"] for b in source_blocks}) > 5


# -- pause, lag, delay -----------------------------------------------------------------------


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_a_paused_follower_stays_behind_then_catches_up_at_over_30_blocks_per_s(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 1.0) as chain:
        chain.client.wait_synced(timeout_s=5)
        paused = chain.client.set("a", paused=True)
        assert paused.paused
        before = head(chain.url("a"))
        with RpcClient(chain.source_url) as source:
            accounts = source.call("eth_accounts")
            for i in range(300):  # 300 blocks, most with a transaction
                if i % 3:
                    tx = {"from": accounts[i % 9], "to": accounts[9], "value": hex(i + 1)}
                    source.call("eth_sendTransaction", [tx])
                source.call("evm_mine")
        time.sleep(0.3)
        assert head(chain.url("a")) == before, "a paused follower replayed blocks"
        assert chain.client.node("a").behind >= 300
        started = time.monotonic()
        chain.client.set("a", paused=False)
        status = chain.client.wait_synced(timeout_s=15, poll_s=0.005)
        elapsed_s = time.monotonic() - started
        caught_up = (status.nodes["a"].head or 0) - before
        rate = caught_up / elapsed_s
        print(f"caught up {caught_up} blocks in {elapsed_s:.3f}s: {rate:.0f} blocks/s")
        assert caught_up >= 300
        assert rate >= 30
        assert (
            block(chain.url("a"), before + 150)["hash"]
            == block(chain.source_url, before + 150)["hash"]
        )


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_lag_blocks_holds_a_follower_exactly_that_many_behind_and_zero_releases_it(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 0.25) as chain:
        chain.client.wait_synced(timeout_s=5)
        assert chain.client.set("a", lag_blocks=3).lag_blocks == 3
        time.sleep(1.5)
        gaps = []
        with BatchClient(chain.source_url) as source, BatchClient(chain.url("a")) as node:
            for _ in range(60):
                theirs = source.block_number()
                ours = node.block_number()
                gaps.append(theirs - ours)
                time.sleep(0.03)
        assert min(gaps) >= 3, gaps
        assert statistics.median(gaps) == 3, gaps
        assert max(gaps) <= 4, gaps
        chain.client.set("a", lag_blocks=0)
        chain.client.wait_synced(timeout_s=2)


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_a_delay_holds_a_follower_behind_the_source_by_time(tmp_path: Path) -> None:
    with one_chain(tmp_path, 0.25, ("a",), "--delay-ms", "a=600-700ms") as chain:
        assert chain.client.node("a").delay_ms == (600.0, 100.0)
        wait_for_source_head(chain, 4, timeout_s=5)
        samples = []  # (time, head hash of the follower)
        with RpcClient(chain.url("a")) as node:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                hash_ = node.call("eth_getBlockByNumber", ["latest", False])["hash"]
                samples.append((time.monotonic_ns(), hash_))
                time.sleep(0.02)
        behind = chain.client.node("a").behind or 0
        history = read_chain_log(chain.log_path)
    ages_ms = []
    for t_ns, hash_ in samples:
        logged = history.block(hash_)
        assert logged is not None
        if logged.number == 0:
            continue
        # The follower's head was seen by the source at least 600 ms before; and the block
        # after it, if the source had it, not more than 700 ms (+ one replay) before.
        ages_ms.append((t_ns - logged.seen_ns) / 1e6)
        following = history.canonical_hash(logged.number + 1)
        if following is not None:
            next_seen = history.blocks[following].seen_ns
            assert (t_ns - next_seen) / 1e6 < 700 + 50, (logged.number, t_ns, next_seen)
    assert ages_ms and min(ages_ms) >= 600, min(ages_ms)
    assert behind >= 2


# -- restarts and reorgs -----------------------------------------------------------------------


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_a_sigkilled_follower_restarted_on_its_state_file_catches_up_with_right_blockhashes(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 0.25, ("a",)) as chain:
        wait_for_source_head(chain, 24, timeout_s=10)
        chain.client.wait_synced(timeout_s=3)
        time.sleep(1.2)  # a state dump (every second) after block 24
        chain.kill_follower("a")
        time.sleep(1.0)  # the source goes on: the follower misses blocks
        assert chain.client.node("a").last_error is not None
        chain.start_follower("a")
        status = chain.client.wait_synced(timeout_s=5)
        assert status.nodes["a"].restarts == 1
        top = status.nodes["a"].head or 0
        with BatchClient(chain.source_url) as source, BatchClient(chain.url("a")) as node:
            numbers = range(max(1, top - 255), top)
            for number in numbers:
                call = [{"data": blockhash_call(number)}, "latest"]
                ours, theirs = node.call("eth_call", call), source.call("eth_call", call)
                expected = block(chain.source_url, number)["hash"]
                if head(chain.source_url) - number < 256:  # still in the source's window
                    assert theirs == expected
                assert ours == expected, f"BLOCKHASH({number}) on the restarted follower"


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_a_new_follower_seeded_from_the_sources_dump_starts_at_its_head_with_right_blockhashes(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 1.0, ("a",)) as chain:
        with RpcClient(chain.source_url) as source:
            for _ in range(300):
                source.call("evm_mine")
        seed = tmp_path / "b.state.json"
        assert seed_state(chain.source_url, seed) > 0
        top = head(chain.source_url)
        port = free_port()
        argv = follower_args(ANVIL, port=port, genesis_timestamp=chain.timestamp, state_path=seed)
        url = f"http://127.0.0.1:{port}/"
        with anvil(argv, tmp_path / "b.log"):
            assert head(url) >= top - 1  # at the head at once, not at genesis
            config = parse_args(
                ["--source", chain.source_url, "--node", f"b={url}", "--control", "127.0.0.1:0",
                 "--log", str(tmp_path / "b.jsonl")]
            )  # fmt: skip
            with ReplicatorProcess(config, stderr_path=tmp_path / "b-replicator.log") as other:
                other.client.wait_synced(timeout_s=5)
                with RpcClient(url) as node:
                    for number in (top - 200, top - 10, top - 1):
                        answer = node.call("eth_call", [{"data": blockhash_call(number)}, "latest"])
                        assert answer == block(chain.source_url, number)["hash"], number


@pytest.mark.chaos  # full suite only: the one-chain stack tests are the CI set
def test_a_reorg_of_depth_2_on_the_source_is_followed_and_logged_with_both_branches(
    tmp_path: Path,
) -> None:
    with one_chain(tmp_path, 1.0, ("a",)) as chain:
        wait_for_source_head(chain, 3, timeout_s=5)
        chain.client.wait_synced(timeout_s=3)
        top = head(chain.source_url) + 1
        wait_for_source_head(chain, top, timeout_s=2)  # just mined: a second until the next
        old = [block(chain.source_url, n)["hash"] for n in (top - 1, top)]
        with RpcClient(chain.source_url) as source:
            accounts = source.call("eth_accounts")
            tx = {"from": accounts[0], "to": accounts[1], "value": "0x1"}
            source.call("anvil_reorg", [2, [[tx, 0]]])
        new = [block(chain.source_url, n)["hash"] for n in (top - 1, top)]
        assert new != old
        deadline = time.monotonic() + 2
        while chain.client.status().source.hash == old[1]:
            assert time.monotonic() < deadline, "the replicator did not see the reorg"
            time.sleep(0.01)
        status = chain.client.wait_synced(timeout_s=3)
        assert status.nodes["a"].rollbacks >= 1
        for number in range(top - 2, (status.source.head or 0) + 1):
            assert block(chain.url("a"), number)["hash"] == block(chain.source_url, number)["hash"]
        history = read_chain_log(chain.log_path)
    assert all(history.on_any_branch(n, h) for n, h in zip((top - 1, top), old, strict=True))
    assert [history.canonical_hash(n) for n in (top - 1, top)] == new
    (reorg,) = history.reorgs
    assert (reorg.depth, reorg.from_hash, reorg.ancestor) == (2, old[1], top - 2)
    assert history.deepest_reorg(reorg.seen_ns - 1, reorg.seen_ns + 1) == 2
    assert history.deepest_reorg(0, reorg.seen_ns - 1) == 0
    before = history.head_at(reorg.seen_ns - 1)
    after = history.head_at(reorg.seen_ns)
    assert before is not None and before.hash == old[1]
    assert after is not None and after.number == top and after.hash == new[1]


def test_transactions_clients_send_to_a_follower_are_mined_by_the_source(
    tmp_path: Path,
) -> None:
    """Through the balancer clients send transactions to followers; a follower passes them
    on, as a real node gossips them, keeps them pending until a replayed block holds them,
    and its blocks stay the source's. Here each sender waits for its receipt from the
    follower before it sends its next nonce. (A burst of consecutive nonces from one
    sender can lose one: anvil 1.7.1 drops a transaction's descendants with it, also one
    that arrived after the pool was read; see `harness.chain.replay`.)"""
    keys = workload.funded_accounts(9)
    with one_chain(tmp_path, 0.25, ("a",)) as chain:
        with RpcClient(chain.url("a")) as follower, RpcClient(chain.source_url) as source:
            mined = []
            for nonce in range(3):  # three waves: each sender's next after its last is mined
                sent = []
                for key in keys:
                    raw = workload.sign_eip1559(
                        workload.Signer(key.private_key),
                        chain_id=workload.CHAIN_ID_ANVIL,
                        nonce=nonce,
                        max_priority_fee_wei=10**9,
                        max_fee_wei=10 * 10**9,
                        gas=21_000,
                        to=bytes.fromhex(keys[0].address[2:]),
                        value_wei=nonce + 1,
                        data=b"",
                    )
                    sent.append(follower.call("eth_sendRawTransaction", ["0x" + raw.hex()]))
                    time.sleep(0.01)
                mined += [receipt(source, tx) for tx in sent]
                assert [receipt(follower, tx) for tx in sent] == mined[-len(sent) :]
        last = max(int(r["blockNumber"], 16) for r in mined)
        deadline = time.monotonic() + 3
        while head(chain.url("a")) < last:
            assert time.monotonic() < deadline, "the follower did not replay the blocks"
            time.sleep(0.02)
        status = chain.client.node("a")
        assert status.gossiped >= 27 and status.mismatches == 0
        for number in range(last + 1):
            assert block(chain.url("a"), number) == block(chain.source_url, number)


# -- control API -----------------------------------------------------------------------------


def test_the_control_api_refuses_bad_input_with_400_and_an_unknown_node_with_404(
    tmp_path: Path,
) -> None:
    import http.client
    import json

    with one_chain(tmp_path, 1.0, ("a",)) as chain:
        with pytest.raises(ConfigError, match="lag_blocks=-1"):
            chain.client.set("a", lag_blocks=-1)
        with pytest.raises(ConfigError, match="delay_ms"):
            chain.client.set("a", delay_ms="soon")
        port = int(chain.client.url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("POST", "/nodes/a", b"{not json")
        answer = conn.getresponse()
        assert answer.status == 400
        assert "is not JSON" in json.loads(answer.read())["error"]
        conn.request("POST", "/nodes/zz", b'{"paused": true}')
        answer = conn.getresponse()
        assert answer.status == 404
        assert "'zz'" in json.loads(answer.read())["error"]
        conn.close()
        assert chain.client.node("a").paused is False  # nothing bad was applied
        assert os.path.exists(chain.log_path)
