"""Chain replication: how far behind the chain source its followers are, how fast a
resumed follower catches up, and whether every node has every block, against references
measured in the same run.

- Lag: an independent poller asks the source and each follower for its head every few
  milliseconds (eth_blockNumber, keep-alive); a block's lag on a follower is the first
  time the follower had it minus the first time the source had it, under a transaction
  load of about five per block. At 1 s and 0.25 s block times; one follower with no
  delay, one with a fixed delay (the lag beyond it is what counts). Goal: p50 under 20 ms
  beyond the delay. References: the source's own block interval, a bare eth_blockNumber
  round trip, the poller's interval.
- Catch-up: a follower paused while the source mines N blocks (five transactions each,
  EIP-1559 and legacy), then resumed: blocks/s until it has the head (polled every 5 ms).
  Goal >= 100. Reference: the first 300 of those blocks replayed by the naive recipe (one
  block at a time, one request per call, reads unbatched) into a fresh node in the run.
- Equality: every block hash of every node over N blocks mined at 0.1 s under load
  (transfers, legacy and EIP-1559, contract deployments, log-emitting calls). Goal 100%.

    .venv/bin/python bench/chain_replication.py [--seconds 60] [--delay-ms 100]
        [--catchup-blocks 1000] [--equality-blocks 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.chain import (
    ReplicatorClient,
    ReplicatorProcess,
    follower_args,
    genesis_timestamp,
    parse_args,
    source_args,
)
from harness.chain.blocks import read_linked_blocks
from harness.chain.rpc import BatchClient
from harness.jsonrpc import RpcClient, RpcFailure
from harness.load import workload
from harness.stack.local import free_port
from harness.stack.nodes import adapter

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
ANVIL = str(adapter("anvil").binary())
TXS_PER_CATCHUP_BLOCK = 5


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


@contextlib.contextmanager
def anvil(argv: list[str], log: Path) -> Iterator[str]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/"
    try:
        deadline = time.monotonic() + 10
        with RpcClient(url, timeout_s=0.5) as client:
            while True:
                try:
                    client.block_number()
                    break
                except RpcFailure:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"anvil did not start: {log.read_text()[-300:]}") from None
                    time.sleep(0.02)
        yield url
    finally:
        proc.kill()
        proc.wait(5)


@dataclass
class Chain:
    source: str
    followers: dict[str, str]
    client: ReplicatorClient
    timestamp: int
    dir: Path


@contextlib.contextmanager
def one_chain(
    directory: Path, block_time_s: float, followers: dict[str, str], extra: tuple[str, ...] = ()
) -> Iterator[Chain]:
    """A source mining every ``block_time_s`` and followers NAME -> delay spec."""
    timestamp = genesis_timestamp()
    with contextlib.ExitStack() as stack:
        port = free_port()
        argv = source_args(ANVIL, port=port, block_time_s=block_time_s, genesis_timestamp=timestamp)
        source = stack.enter_context(anvil(argv, directory / "source.log"))
        urls = {}
        for name in followers:
            argv = follower_args(ANVIL, port=free_port(), genesis_timestamp=timestamp)
            urls[name] = stack.enter_context(anvil(argv, directory / f"{name}.log"))
        args = ["--source", source, "--control", "127.0.0.1:0"]
        args += ["--log", str(directory / "chain.jsonl"), "--log-level", "WARNING", *extra]
        for name, url in urls.items():
            args += ["--node", f"{name}={url}"]
            if followers[name]:
                args += ["--delay-ms", f"{name}={followers[name]}"]
        replicator = stack.enter_context(
            ReplicatorProcess(parse_args(args), stderr_path=directory / "replicator.log")
        )
        yield Chain(source, urls, replicator.client, timestamp, directory)


class HeadPoller:
    """Asks one node for its head every ``interval_s``; the first time each block number
    was there (monotonic ns, taken when the answer arrived)."""

    def __init__(self, url: str, interval_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self.first_seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HeadPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        top = -1
        with RpcClient(self.url, timeout_s=1.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    head = client.block_number()
                except RpcFailure:
                    head = top
                now = time.monotonic_ns()
                for number in range(top + 1, head + 1):
                    self.first_seen[number] = now
                top = max(top, head)
                next_at += self.interval_s
                time.sleep(max(0.0, next_at - time.monotonic()))


class Load:
    """Sends about ``rate_per_s`` transactions a second to the source: EIP-1559 and legacy
    transfers, deployments and swaps of the workload contract (which emit logs)."""

    def __init__(self, url: str, rate_per_s: float, pool: str | None) -> None:
        self.url = url
        self.rate_per_s = rate_per_s
        self.pool = pool
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        runtime = "600160015500"  # SSTORE(1, 1); a deployment is a contract of 6 bytes
        init = "0x6006600a5f3960065ff3" + runtime
        with RpcClient(self.url) as client:
            accounts = client.call("eth_accounts")
            i = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                i += 1
                tx: dict[str, Any] = {"from": accounts[1 + i % 8], "gas": hex(300_000)}
                kind = i % 4
                if kind == 0:
                    tx |= {"to": accounts[9], "value": hex(i)}
                elif kind == 1:
                    tx |= {"to": accounts[9], "value": hex(i), "gasPrice": hex(3 * 10**9 + i)}
                elif kind == 2 and self.pool:
                    data = workload.calldata(workload.SWAP, 10**15 + i)
                    tx |= {"to": self.pool, "data": "0x" + data.hex()}
                else:
                    tx |= {"data": init}
                with contextlib.suppress(RpcFailure):
                    client.call("eth_sendTransaction", [tx])
                    self.sent += 1
                next_at += 1 / self.rate_per_s
                time.sleep(max(0.0, next_at - time.monotonic()))


def deploy_pool(url: str) -> str:
    """The workload contract on the source, deployed by real transactions only."""
    with RpcClient(url) as client:
        accounts = client.call("eth_accounts")
        tx = {"from": accounts[0], "to": workload.deployer().address, "value": hex(10**20)}
        funding = client.call("eth_sendTransaction", [tx])
        deadline = time.monotonic() + 10
        while client.call("eth_getTransactionReceipt", [funding]) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the funding transaction was not mined")
            time.sleep(0.05)
    return workload.prepare_chain([url])


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def round_trip_ms(url: str, count: int = 300) -> float:
    with RpcClient(url) as client:
        times = []
        for _ in range(count):
            started = time.perf_counter_ns()
            client.block_number()
            times.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(times)


# -- the three measurements --------------------------------------------------------------


def measure_lag(directory: Path, block_time_s: float, seconds: float, delay_ms: float) -> None:
    poll_s = 0.004
    followers = {"a": "", "b": f"{delay_ms:g}ms"}
    with one_chain(directory, block_time_s, followers) as chain:
        pool = deploy_pool(chain.source)
        rtt_ms = round_trip_ms(chain.source)
        chain.client.wait_synced(timeout_s=10)
        before = load_text()
        with contextlib.ExitStack() as stack:
            polls = {
                name: stack.enter_context(HeadPoller(url, poll_s))
                for name, url in {"source": chain.source, **chain.followers}.items()
            }
            load = stack.enter_context(Load(chain.source, 5 / block_time_s, pool))
            time.sleep(seconds)
        status = chain.client.status()
    source = polls["source"].first_seen
    numbers = sorted(source)[2:]  # the first two may predate the poller
    intervals_ms = [(source[n] - source[n - 1]) / 1e6 for n in numbers if n - 1 in source]
    print(
        f"lag behind the source at a {block_time_s:g} s block time, {seconds:g} s, "
        f"{load.sent} transactions sent ({load.sent / max(1, len(numbers)):.1f} per block):"
    )
    print(
        f"  references: source block interval p50 {statistics.median(intervals_ms):.1f} ms; "
        f"eth_blockNumber round trip p50 {rtt_ms:.2f} ms; poll interval {poll_s * 1000:g} ms"
    )
    for name, delay in (("a", 0.0), ("b", delay_ms)):
        seen = polls[name].first_seen
        lags = [(seen[n] - source[n]) / 1e6 for n in numbers if n in seen]
        beyond = [lag - delay for lag in lags]
        p50, p99 = percentile(beyond, 50), percentile(beyond, 99)
        node = status.nodes[name]
        print(
            f"  follower {name} (delay {delay:g} ms), {len(lags)} blocks: lag beyond the delay "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(beyond):.1f} ms "
            f"(goal p50 < 20 ms); mismatches {node.mismatches}, retried {node.retries}"
        )
        print(
            f"    ratios: p50 / block interval = {p50 / statistics.median(intervals_ms):.3f}; "
            f"p50 / round trip = {p50 / rtt_ms:.1f}"
        )
    print(f"  machine: before {before}; after {load_text()}")


def naive_replay(source: str, follower: str, low: int, high: int) -> float:
    """The reference: one block at a time, one request per call; blocks/s."""
    with BatchClient(source) as src, BatchClient(follower) as node:
        started = time.monotonic()
        for number in range(low, high + 1):
            doc = src.call("eth_getBlockByNumber", [hex(number), False])
            raws = [src.call("eth_getRawTransactionByHash", [h]) for h in doc["transactions"]]
            node.call("anvil_dropAllTransactions")
            node.call("evm_setNextBlockTimestamp", [int(doc["timestamp"], 16)])
            for raw in raws:
                node.call("eth_sendRawTransaction", [raw])
            node.call("anvil_setNextBlockBaseFeePerGas", [doc["baseFeePerGas"]])
            node.call("evm_mine")
        elapsed = time.monotonic() - started
        if node.call("eth_getBlockByNumber", [hex(high), False])["hash"] != doc["hash"]:
            raise SystemExit("the naive reference replay diverged")
    return (high - low + 1) / elapsed


def measure_catchup(directory: Path, blocks: int) -> None:
    with one_chain(directory, 1.0, {"a": ""}) as chain:
        chain.client.wait_synced(timeout_s=10)
        chain.client.set("a", paused=True)
        before = chain.client.node("a").head or 0
        with RpcClient(chain.source) as source:
            accounts = source.call("eth_accounts")
            for i in range(blocks):
                for k in range(TXS_PER_CATCHUP_BLOCK):
                    sender = accounts[(i + k) % 9]
                    tx = {"from": sender, "to": accounts[9], "value": hex(i + 1)}
                    if k % 2:
                        tx["gasPrice"] = hex(3 * 10**9 + k)  # legacy
                    source.call("eth_sendTransaction", [tx])
                source.call("evm_mine")
        target = RpcClient(chain.source).block_number()
        machine = load_text()
        started = time.monotonic()
        chain.client.set("a", paused=False)
        with RpcClient(chain.followers["a"]) as follower:
            while follower.block_number() < target:
                time.sleep(0.005)
        elapsed = time.monotonic() - started
        rate = (target - before) / elapsed
        # The reference, on a fresh node of the same genesis that the replicator does not own.
        argv = follower_args(ANVIL, port=free_port(), genesis_timestamp=chain.timestamp)
        with anvil(argv, directory / "naive.log") as naive:
            reference = naive_replay(chain.source, naive, 1, min(target, 300))
        with BatchClient(chain.source) as src:
            txs = sum(len(b.raw_txs) for b in read_linked_blocks(src, before + 1, target))
    print(
        f"catch-up of a resumed follower: {target - before} blocks ({txs} transactions) "
        f"in {elapsed:.3f} s = {rate:.0f} blocks/s (goal >= 100)"
    )
    print(
        f"  reference: the naive recipe (one request per call) {reference:.0f} blocks/s; "
        f"ratio {rate / reference:.2f}x"
    )
    print(f"  machine: {machine}")


def measure_equality(directory: Path, blocks: int) -> None:
    block_time_s = 0.1
    with one_chain(directory, block_time_s, {"a": "", "b": "20-80ms"}) as chain:
        pool = deploy_pool(chain.source)
        started = time.monotonic()
        with Load(chain.source, 5 / block_time_s, pool) as load, RpcClient(chain.source) as source:
            while source.block_number() < blocks:
                time.sleep(0.2)
        status = chain.client.wait_synced(timeout_s=30)
        elapsed = time.monotonic() - started
        last = status.source.head or 0
        hashes: dict[str, list[str]] = {}
        receipts: dict[str, int] = {}
        for name, url in {"source": chain.source, **chain.followers}.items():
            with BatchClient(url, timeout_s=30) as client:
                docs = []
                for low in range(0, last + 1, 500):
                    calls = [
                        ("eth_getBlockByNumber", [hex(n), False])
                        for n in range(low, min(last, low + 499) + 1)
                    ]
                    docs += client.batch(calls)
                hashes[name] = [d["hash"] for d in docs]
                receipts[name] = sum(len(d["transactions"]) for d in docs)
    print(
        f"block-hash equality over {last + 1} blocks at {block_time_s:g} s with load "
        f"({load.sent} transactions sent, {receipts['source']} mined) in {elapsed:.0f} s:"
    )
    for name in chain.followers:
        equal = sum(a == b for a, b in zip(hashes["source"], hashes[name], strict=True))
        node = status.nodes[name]
        print(
            f"  follower {name} (delay {node.delay_ms[0]:g}+{node.delay_ms[1]:g} ms): "
            f"{equal}/{last + 1} equal = {100 * equal / (last + 1):.2f}% (goal 100%); "
            f"mismatches {node.mismatches}, blocks retried {node.retries}"
        )
    print(f"  machine: {load_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="each lag measurement")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="follower b's delay")
    parser.add_argument("--catchup-blocks", type=int, default=1000)
    parser.add_argument("--equality-blocks", type=int, default=1000)
    args = parser.parse_args()
    version = subprocess.run([ANVIL, "--version"], capture_output=True, text=True, check=True)
    print(f"chain replication ({version.stdout.splitlines()[0]}), {load_text()} at start")
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        for index, block_time_s in enumerate((1.0, 0.25)):
            directory = Path(tmp) / f"lag-{index}"
            directory.mkdir()
            measure_lag(directory, block_time_s, args.seconds, args.delay_ms)
        (Path(tmp) / "catchup").mkdir()
        measure_catchup(Path(tmp) / "catchup", args.catchup_blocks)
        (Path(tmp) / "equality").mkdir()
        measure_equality(Path(tmp) / "equality", args.equality_blocks)


if __name__ == "__main__":
    main()
