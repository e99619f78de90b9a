"""The workload against two real anvil nodes (independent chains), started here."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.jsonrpc import RpcClient, RpcFailure
from harness.load.workload import (
    CONTRACT_RUNTIME,
    GET_RESERVES,
    PROFILES,
    QUOTE,
    SWAP_TOPIC,
    WARMUP_TXS,
    Profile,
    RequestFactory,
    calldata,
    classify,
    deployer,
    prepare_chain,
    quote_out,
    sample_context,
)
from harness.stack.nodes import adapter
from harness.stack.ports import free_port

BLOCK_TIME_S = 0.5


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two anvil nodes as the stack runs them, each its own chain; stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(2):
            data_dir = tmp_path_factory.mktemp(f"anvil-{i}")
            port = free_port()
            argv = adapter("anvil").command(
                port=port,
                data_dir=Path(data_dir),
                block_time_s=BLOCK_TIME_S,
                extra_ports=(),
                extra_args=(),
            )
            log = open(data_dir / "anvil.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}/")
        for url in urls:
            _wait_answering(url)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture(scope="module")
def contract(nodes: list[str]) -> str:
    return prepare_chain(nodes)


def _wait_answering(url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    with RpcClient(url, timeout_s=1.0) as client:
        while True:
            try:
                client.block_number()
                return
            except RpcFailure:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=5)


def test_prepare_chain_deploys_the_same_address_on_both_nodes_and_is_idempotent(
    nodes: list[str], contract: str
) -> None:
    nonces = []
    for url in nodes:
        with RpcClient(url) as client:
            assert client.call("eth_getCode", [contract, "latest"]) == "0x" + CONTRACT_RUNTIME.hex()
            nonce = client.call("eth_getTransactionCount", [deployer().address, "latest"])
            nonces.append(int(nonce, 16))
    assert nonces == [1 + WARMUP_TXS] * 2  # the deployment and the warm-up swaps
    assert prepare_chain(nodes) == contract
    for url in nodes:
        with RpcClient(url) as client:
            nonce = client.call("eth_getTransactionCount", [deployer().address, "pending"])
            assert int(nonce, 16) == 1 + WARMUP_TXS  # nothing sent the second time


def test_the_context_has_the_warm_up_transactions_and_funded_accounts(
    nodes: list[str], contract: str
) -> None:
    ctx = sample_context(nodes[0], contract, history_blocks=64)
    assert ctx.chain_id == 31337
    assert ctx.recent_blocks[0] == ctx.head and len(ctx.recent_hashes) == len(ctx.recent_blocks)
    assert len(ctx.tx_hashes) >= WARMUP_TXS
    assert ctx.accounts[0].address == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # anvil's #0
    with RpcClient(nodes[0]) as client:
        receipt = client.call("eth_getTransactionReceipt", [ctx.tx_hashes[-1]])
        assert receipt["status"] == "0x1"


@pytest.mark.parametrize("label", sorted(PROFILES["searcher"].weights))
def test_every_searcher_label_is_answered_ok_by_anvil(
    nodes: list[str], contract: str, label: str
) -> None:
    factory = RequestFactory(
        Profile(label, {label: 1}), sample_context(nodes[0], contract), seed=5, account_index=3
    )
    conn = _connection(nodes[0])
    failures = []
    for _ in range(20):
        got, body = factory.next()
        status, answer = _post(conn, body)
        outcome = classify(status, answer, got == "batch")
        if outcome != "ok":
            failures.append((outcome, body[:200], answer[:300]))
    conn.close()
    assert failures == []


def test_sent_transactions_are_mined_with_their_swap_logs(nodes: list[str], contract: str) -> None:
    ctx = sample_context(nodes[1], contract)
    start = ctx.pending_nonces[4]
    factory = RequestFactory(
        Profile("send", {"eth_sendRawTransaction": 1}), ctx, seed=9, account_index=4
    )
    conn = _connection(nodes[1])
    for _ in range(20):
        status, answer = _post(conn, factory.next()[1])
        assert classify(status, answer, False) == "ok", answer
        assert json.loads(answer)["result"] == factory.sent_tx_hashes[-1]
    conn.close()
    receipts = [_receipt(nodes[1], h) for h in factory.sent_tx_hashes[-20:]]
    assert all(r["status"] == "0x1" for r in receipts)
    assert all(r["logs"][0]["topics"][0] == SWAP_TOPIC for r in receipts)
    with RpcClient(nodes[1]) as client:
        mined = client.call("eth_getTransactionCount", [ctx.accounts[4].address, "latest"])
    assert int(mined, 16) == start + 20


def _receipt(url: str, tx: str, timeout_s: float = 10 * BLOCK_TIME_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with RpcClient(url) as client:
        while True:
            receipt = client.call("eth_getTransactionReceipt", [tx])
            if receipt is not None:
                return dict(receipt)
            assert time.monotonic() < deadline, f"{tx} not mined on {url}"
            time.sleep(0.05)


def test_the_contract_quotes_by_constant_product_on_its_current_reserves(
    nodes: list[str], contract: str
) -> None:
    with RpcClient(nodes[0]) as client:
        raw = client.call("eth_call", [{"to": contract, "data": "0x" + GET_RESERVES.hex()}])
        reserve0, reserve1 = int(raw[2:66], 16), int(raw[66:130], 16)
        amount = 123 * 10**15
        data = "0x" + calldata(QUOTE, amount).hex()
        out = int(client.call("eth_call", [{"to": contract, "data": data}, "latest"]), 16)
    assert out == quote_out(amount, reserve0, reserve1) > 0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_mixed_run_of_each_built_in_profile_is_all_ok(
    nodes: list[str], contract: str, name: str
) -> None:
    factory = RequestFactory(
        PROFILES[name], sample_context(nodes[0], contract), seed=1, account_index=5
    )
    conn = _connection(nodes[0])
    outcomes: dict[str, int] = {}
    for _ in range(300):
        label, body = factory.next()
        status, answer = _post(conn, body)
        outcome = classify(status, answer, label == "batch")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    conn.close()
    assert outcomes == {"ok": 300}
