"""The command lines of a one-chain anvil stack: the chain source and its followers.

The source mines at the block time and is not served to clients; followers are the served
nodes: the same genesis (chain id, accounts, genesis timestamp, gas limit and any other
flag that shapes it), no mining of their own, and ``--order fifo`` so that the replicator's
sends are mined in block order (the default ``--order fees`` reorders blocks that are not
fee-sorted). Both keep a state file dumped every second, so a restarted node resumes near
its old head (the replicator then fixes BLOCKHASH and replays the rest).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from pathlib import Path

from harness.chain.blocks import read_header
from harness.chain.rpc import BatchClient
from harness.errors import ConfigError, StackError
from harness.jsonrpc import RpcFailure

#: anvil's (and hardhat's) default mnemonic, passed explicitly so both ends agree.
MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337
ACCOUNTS = 10
#: Flags that would make a follower mine by itself or order blocks its own way.
FOLLOWER_REFUSES = ("--block-time", "-b", "--mixed-mining", "--order", "--no-mining")


def genesis_timestamp() -> int:
    """A genesis timestamp for a new chain: now, in seconds. Choose it once per stack and
    give the same to the source and every follower, also when one restarts."""
    return int(time.time())


def _common(
    exe: str | Path,
    host: str,
    port: int,
    genesis_timestamp: int,
    state_path: Path | None,
) -> list[str]:
    args = [
        str(exe), "--host", host, "--port", str(port),
        "--chain-id", str(CHAIN_ID), "--accounts", str(ACCOUNTS), "--mnemonic", MNEMONIC,
        "--timestamp", str(genesis_timestamp),
    ]  # fmt: skip
    if state_path is not None:
        # A restarted node resumes near its old head, as a real node restarts from its
        # data dir; every second, so a SIGKILL loses at most a second.
        args += ["--state", str(state_path), "--state-interval", "1"]
    return [*args, "--quiet"]


def source_args(
    exe: str | Path,
    *,
    port: int,
    block_time_s: float,
    genesis_timestamp: int,
    state_path: Path | None = None,
    host: str = "127.0.0.1",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argument list of the chain source: mines every ``block_time_s``. ``extra_args``
    (the stack's node args) must be given to the followers too."""
    if not 0 < block_time_s <= 3600:
        raise ConfigError("block_time_s", block_time_s, "choose a block time above 0 s")
    return [
        *_common(exe, host, port, genesis_timestamp, state_path),
        "--block-time", f"{block_time_s:g}",
        *extra_args,
    ]  # fmt: skip


def follower_args(
    exe: str | Path,
    *,
    port: int,
    genesis_timestamp: int,
    state_path: Path | None = None,
    host: str = "127.0.0.1",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argument list of a follower: the source's genesis, no mining, FIFO order.
    `ConfigError` when ``extra_args`` would make it mine or reorder by itself."""
    for arg in extra_args:
        if arg.split("=", 1)[0] in FOLLOWER_REFUSES:
            raise ConfigError(
                "node_args", arg, "a follower mines only what the source mined; drop this flag"
            )
    return [
        *_common(exe, host, port, genesis_timestamp, state_path),
        "--no-mining", "--order", "fifo",
        *extra_args,
    ]  # fmt: skip


def check_genesis(source_url: str, follower_url: str, timeout_s: float = 2.0) -> str:
    """The genesis hash both nodes share; `StackError` saying which differs and why when
    they do not (a follower started with other flags or another genesis timestamp)."""
    try:
        with BatchClient(source_url, timeout_s=timeout_s) as source:
            theirs = read_header(source, 0)
        with BatchClient(follower_url, timeout_s=timeout_s) as follower:
            ours = read_header(follower, 0)
    except RpcFailure as exc:
        raise StackError(
            f"cannot read the genesis of {source_url} or {follower_url}: {exc}"
        ) from exc
    if ours.hash != theirs.hash:
        what = (
            f"timestamp {ours.timestamp} != {theirs.timestamp}"
            if ours.timestamp != theirs.timestamp
            else "chain id, accounts, gas limit or another genesis flag"
        )
        raise StackError(
            f"follower {follower_url} has genesis {ours.hash} but the source {source_url} has "
            f"{theirs.hash} ({what} differs); start both with source_args/follower_args and "
            "the same genesis_timestamp and extra args"
        )
    return ours.hash


def seed_state(source_url: str, state_path: Path, timeout_s: float = 30.0) -> int:
    """Write the source's chain (``anvil_dumpState``) to ``state_path``, for a new follower
    started with it (``follower_args(state_path=...)``) to begin at the source's head
    instead of replaying from genesis (1,000 blocks load in well under a second). The
    replicator fixes its BLOCKHASH on first contact. Returns the bytes written;
    `StackError` when the source cannot dump."""
    try:
        with BatchClient(source_url, timeout_s=timeout_s) as source:
            blob = source.call("anvil_dumpState")
        data = bytes.fromhex(str(blob).removeprefix("0x"))
    except (RpcFailure, ValueError) as exc:
        raise StackError(f"cannot dump the state of the source {source_url}: {exc}") from exc
    if data[:2] == b"\x1f\x8b":  # anvil gzips the dump; --state reads plain JSON
        data = gzip.decompress(data)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = state_path.with_suffix(state_path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(state_path)
    return len(data)
