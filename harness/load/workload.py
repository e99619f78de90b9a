"""The JSON-RPC workload: which requests the load sends, with parameters from the live chain.

Place in the flow: scenario -> stack -> **load** -> recorder. A `Profile` is the weighted
mix of method labels; `prepare_chain` deploys a tiny contract (the same address on every
node) and leaves a few transactions behind; `sample_context` reads a `ChainContext`
(head, recent blocks, tx hashes, funded accounts and their nonces) from one node every
block; a `RequestFactory` turns profile + context into request bodies; `classify` turns a
response into an `Outcome` string.

This module runs inside Locust worker processes (gevent, one per core, thousands of
requests per second each), so `RequestFactory.next` and `classify` are the per-request
hot path: bodies are byte templates rendered once per block by `RequestFactory.update`
and filled with a request id by ``%``; a success is recognised without parsing JSON;
transactions are RLP-encoded here and signed with libsecp256k1 (coincurve) when it is
installed, eth_keys' pure-Python signer otherwise (about 70 times slower).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import sys
import time
import tomllib
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from eth_hash.auto import keccak

from harness.errors import ConfigError, StackError
from harness.jsonrpc import (
    Outcome,
    RpcClient,
    RpcFailure,
    classify_http_status,
    error_class,
)

log = logging.getLogger(__name__)

try:  # libsecp256k1: ~30 us a signature instead of ~2 ms
    import coincurve as _coincurve
except ImportError:  # pragma: no cover - depends on the environment
    _coincurve = None  # type: ignore[assignment]

# -- profiles ------------------------------------------------------------------------

#: Every method label a profile may weigh, as reports name them. A label is a JSON-RPC
#: method, except ``eth_getBlockByNumber_full`` (with full transactions) and ``batch``.
KNOWN_METHODS: tuple[str, ...] = (
    "eth_call",
    "eth_getStorageAt",
    "eth_blockNumber",
    "eth_getLogs",
    "eth_getBlockByNumber",
    "eth_getBlockByNumber_full",
    "eth_getTransactionReceipt",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_maxPriorityFeePerGas",
    "eth_gasPrice",
    "eth_getTransactionCount",
    "debug_traceCall",
    "eth_getBalance",
    "eth_sendRawTransaction",
    "eth_chainId",
    "batch",
)
_KNOWN = frozenset(KNOWN_METHODS)
MAX_BATCH_SIZE = 1000
#: The methods inside a "batch" request.
BATCH_METHODS = ("eth_call", "eth_getStorageAt", "eth_getBalance", "eth_blockNumber")


@dataclass(frozen=True)
class Profile:
    """A named, weighted mix of method labels. Validated on construction (`ConfigError`)."""

    name: str
    weights: dict[str, float]
    batch_size: int = 10  # calls in one request of the "batch" label

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("profile name", self.name, "give the profile a non-empty name")
        field_ = f"profile {self.name}.weights"
        if not isinstance(self.weights, Mapping):
            raise ConfigError(field_, self.weights, "a table of method label = weight")
        weights: dict[str, float] = {}
        for label, weight in self.weights.items():
            if label not in _KNOWN:
                raise ConfigError(field_, label, f"known methods: {', '.join(KNOWN_METHODS)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ConfigError(f"{field_}.{label}", weight, "a weight is a number >= 0")
            if not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"{field_}.{label}", weight, "a weight is a finite number >= 0")
            weights[label] = float(weight)
        if not any(w > 0 for w in weights.values()):
            raise ConfigError(field_, dict(self.weights), "at least one weight must be > 0")
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
            raise ConfigError(
                f"profile {self.name}.batch_size", size, f"an integer from 1 to {MAX_BATCH_SIZE}"
            )
        object.__setattr__(self, "weights", weights)  # a private copy, all floats

    def shares(self) -> dict[str, float]:
        """Each label's expected fraction of requests (weights normalised to sum 1)."""
        total = sum(self.weights.values())
        return {label: w / total for label, w in self.weights.items() if w > 0}

    def to_toml(self) -> str:
        """The profile as a TOML file that `load_profile` reads back (a start for editing)."""
        lines = [f"name = {json.dumps(self.name)}", f"batch_size = {self.batch_size}", ""]
        lines.append("[weights]")
        lines += [f"{label} = {weight!r}" for label, weight in self.weights.items()]
        return "\n".join(lines) + "\n"


PROFILES: dict[str, Profile] = {
    # DESIGN's searcher mix: eth_call at the tip dominates, then head polling and per-block
    # pool updates; ~90% at the tip, the rest in recent history (receipts, getLogs, blocks).
    "searcher": Profile(
        "searcher",
        {
            "eth_call": 42,
            "eth_getStorageAt": 10,
            "eth_blockNumber": 10,
            "eth_getLogs": 8,
            "eth_getBlockByNumber": 6,
            "eth_getTransactionReceipt": 5,
            "eth_estimateGas": 4,
            "eth_feeHistory": 2,
            "eth_maxPriorityFeePerGas": 1,
            "eth_gasPrice": 1,
            "eth_getTransactionCount": 3,
            "debug_traceCall": 3,
            "eth_getBalance": 2,
            "eth_sendRawTransaction": 2,
            "eth_chainId": 1,
            "batch": 2,
            "eth_getBlockByNumber_full": 1,
        },
        batch_size=10,
    ),
    # A dashboard or a wallet: cheap head polling only, nothing that executes code.
    "light": Profile(
        "light",
        {
            "eth_blockNumber": 40,
            "eth_getBlockByNumber": 20,
            "eth_gasPrice": 10,
            "eth_getBalance": 10,
            "eth_getTransactionCount": 10,
            "eth_maxPriorityFeePerGas": 5,
            "eth_chainId": 5,
        },
        batch_size=10,
    ),
    # An indexer or a MEV simulator: logs, traces, full blocks and large batches.
    "heavy": Profile(
        "heavy",
        {
            "eth_getLogs": 25,
            "debug_traceCall": 25,
            "eth_getBlockByNumber_full": 20,
            "batch": 10,
            "eth_call": 10,
            "eth_estimateGas": 5,
            "eth_getTransactionReceipt": 5,
        },
        batch_size=50,
    ),
}
DEFAULT_PROFILE = "searcher"
_PROFILE_KEYS = ("name", "batch_size", "weights")


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or one read from a TOML file; `ConfigError` otherwise.

    The file has ``name = "..."`` (default: the file's stem), optional ``batch_size``
    and a ``[weights]`` table of method label = weight.
    """
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    builtins = ", ".join(PROFILES)
    path = Path(name_or_path)
    if path.suffix != ".toml" and os.sep not in name_or_path and not path.exists():
        raise ConfigError(
            "profile",
            name_or_path,
            f"no such built-in profile; choose one of: {builtins}, or give a path to a TOML file",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
        raise ConfigError(
            "profile",
            name_or_path,
            f"{reason}; give a readable TOML file or a built-in name: {builtins}",
        ) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            "profile", name_or_path, f"not valid TOML ({exc}); fix the file's syntax"
        ) from exc
    for key in doc:
        if key not in _PROFILE_KEYS:
            raise ConfigError(
                f"profile {path}", key, "unknown key; allowed: name, batch_size and [weights]"
            )
    name = doc.get("name", path.stem)
    if "weights" not in doc:
        raise ConfigError(
            f"profile {name}.weights", None, "add a [weights] table, e.g. eth_call = 42"
        )
    return Profile(name=name, weights=doc["weights"], batch_size=doc.get("batch_size", 10))


def methods_sent(profile: Profile) -> frozenset[str]:
    """The JSON-RPC methods a profile's requests carry (labels are not all methods:
    ``eth_getBlockByNumber_full`` is eth_getBlockByNumber, ``batch`` is several)."""
    sent: set[str] = set()
    for label, weight in profile.weights.items():
        if weight <= 0:
            continue
        if label == "batch":
            sent.update(BATCH_METHODS)
        else:
            sent.add(label.removesuffix("_full"))
    return frozenset(sent)


# -- accounts, contract, transactions ---------------------------------------------------

#: anvil's (and hardhat's) default mnemonic: its first accounts hold 10000 ETH each.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
#: anvil starts with this many funded accounts; `prepare_chain` funds more on request.
DEFAULT_ACCOUNTS = 10
CHAIN_ID_ANVIL = 31337
GWEI = 10**9


@dataclass(frozen=True)
class FundedAccount:
    """An account with ether: its lower-case 0x address and its private key."""

    address: str
    private_key: bytes = field(repr=False)


@contextlib.contextmanager
def keeping_recursion_limit() -> Iterator[None]:
    """Undo what an import does to the recursion limit: eth_account imports py_ecc, which
    raises it to 100000, and then deeply nested JSON overflows the C stack (a segfault)
    where it would raise RecursionError."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


@functools.cache
def mnemonic_account(index: int) -> FundedAccount:
    """Account ``index`` of `ANVIL_MNEMONIC` (path m/44'/60'/0'/0/index); cached, ~20 ms."""
    with keeping_recursion_limit():
        from eth_account import Account  # slow to import; only needed off the hot path

    Account.enable_unaudited_hdwallet_features()
    acct = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return FundedAccount(acct.address.lower(), bytes(acct.key))


def funded_accounts(count: int = DEFAULT_ACCOUNTS) -> tuple[FundedAccount, ...]:
    """The first ``count`` accounts of `ANVIL_MNEMONIC`."""
    return tuple(mnemonic_account(i) for i in range(count))


@functools.cache
def deployer() -> FundedAccount:
    """The account that deploys the workload contract and nothing else (so its nonce 0 is
    always the deployment, and the contract's address is the same on every chain)."""
    from eth_keys.datatypes import PrivateKey

    key = keccak(b"harness.load.workload deployer")
    return FundedAccount(PrivateKey(key).public_key.to_address().lower(), key)


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract that ``sender`` creates with ``nonce``."""
    encoded = _rlp_list([_rlp_bytes(bytes.fromhex(sender[2:])), _rlp_int(nonce)])
    return "0x" + keccak(encoded)[12:].hex()


def contract_address() -> str:
    """Where `prepare_chain` puts the workload contract, on every chain."""
    return create_address(deployer().address, 0)


def _selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


QUOTE = _selector("quote(uint256)")  # view: amountIn -> amountOut from two storage slots
SWAP = _selector("swap(uint256)")  # writes both slots and emits Swap
GET_RESERVES = _selector("getReserves()")
#: topic0 of ``Swap(address indexed sender, uint256 amountIn, uint256 amountOut)``
SWAP_TOPIC = "0x" + keccak(b"Swap(address,uint256,uint256)").hex()
RESERVE0, RESERVE1 = 10**21, 2 * 10**21

_OPCODES = {
    "STOP": 0x00, "ADD": 0x01, "MUL": 0x02, "SUB": 0x03, "DIV": 0x04, "EQ": 0x14,
    "SHR": 0x1C, "CALLER": 0x33, "CALLDATALOAD": 0x35, "CODECOPY": 0x39, "POP": 0x50,
    "MSTORE": 0x52, "SLOAD": 0x54, "SSTORE": 0x55, "JUMPI": 0x57, "JUMPDEST": 0x5B,
    "DUP1": 0x80, "DUP2": 0x81, "DUP3": 0x82, "DUP4": 0x83, "SWAP1": 0x90, "SWAP2": 0x91,
    "LOG2": 0xA2, "RETURN": 0xF3, "REVERT": 0xFD,
}  # fmt: skip


def _assemble(program: str, constants: Mapping[str, bytes]) -> bytes:
    """EVM bytecode from whitespace-separated tokens: ``OP``, ``PUSHn value|$const|@label``,
    ``label:`` (a JUMPDEST) and ``.label`` (a position, no code). Labels push as 2 bytes;
    ``;`` comments to the end of a line."""
    tokens = [tok for line in program.splitlines() for tok in line.split(";")[0].split()]
    labels: dict[str, int] = {}
    instructions: list[tuple[str, str | None]] = []
    offset = 0
    for tok in tokens:  # pass 1: where each label lands
        if tok.endswith(":") or tok.startswith("."):
            labels[tok.strip(":.")] = offset
            if tok.startswith("."):
                continue
            tok = "JUMPDEST"
        if instructions and instructions[-1][0].startswith("PUSH") and instructions[-1][1] is None:
            instructions[-1] = (instructions[-1][0], tok)
            offset += int(instructions[-1][0][4:])
            continue
        instructions.append((tok, None))
        offset += 1
    code = bytearray()
    for op, arg in instructions:
        if not op.startswith("PUSH"):
            code.append(_OPCODES[op])
            continue
        size = int(op[4:])
        if arg is None:
            raise ValueError(f"{op} without an argument")
        if arg.startswith("@"):
            value = labels[arg[1:]].to_bytes(size, "big")
        elif arg.startswith("$"):
            value = constants[arg[1:]]
        else:
            value = int(arg, 0).to_bytes(size, "big")
        if len(value) != size:
            raise ValueError(f"{op} {arg}: {len(value)} bytes")
        code += bytes((0x5F + size,)) + value
    return bytes(code)


# A constant-product pool in miniature: quote() is the searcher's eth_call (two SLOADs and
# some arithmetic), swap() the transaction (two SSTOREs and a Swap log for eth_getLogs).
_RUNTIME_ASM = """
    PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR          ; selector
    DUP1 PUSH4 $quote EQ PUSH2 @quote JUMPI
    DUP1 PUSH4 $swap EQ PUSH2 @swap JUMPI
    DUP1 PUSH4 $reserves EQ PUSH2 @reserves JUMPI
    STOP                                         ; anything else (a plain transfer) is accepted
quote:                                           ; x*r1 / (r0+x)
    PUSH1 4 CALLDATALOAD
    DUP1 PUSH1 0 SLOAD ADD SWAP1                 ; r0x x
    PUSH1 1 SLOAD MUL DIV                        ; x*r1 / r0x
    PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
swap:                                            ; r0 += x; r1 -= out; log; return out
    PUSH1 4 CALLDATALOAD                         ; x
    PUSH1 0 SLOAD DUP2 ADD                       ; x r0x
    DUP1 PUSH1 0 SSTORE
    PUSH1 1 SLOAD                                ; x r0x r1
    DUP1 DUP4 MUL DUP3 SWAP1 DIV                 ; x r0x r1 out
    DUP1 SWAP2 SUB PUSH1 1 SSTORE                ; x r0x out
    PUSH1 0x20 MSTORE POP PUSH1 0 MSTORE         ; memory: x out
    CALLER PUSH32 $topic PUSH1 0x40 PUSH1 0 LOG2
    PUSH1 0x20 PUSH1 0x20 RETURN
reserves:
    PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 1 SLOAD PUSH1 0x20 MSTORE
    PUSH1 0x40 PUSH1 0 RETURN
"""
_SWAP_EVENT = b"Swap(address,uint256,uint256)"
CONTRACT_RUNTIME = _assemble(
    _RUNTIME_ASM,
    {"quote": QUOTE, "swap": SWAP, "reserves": GET_RESERVES, "topic": keccak(_SWAP_EVENT)},
)
CONTRACT_INIT = (
    _assemble(
        f"""
    PUSH9 {RESERVE0} PUSH1 0 SSTORE
    PUSH9 {RESERVE1} PUSH1 1 SSTORE
    PUSH2 {len(CONTRACT_RUNTIME)} DUP1 PUSH2 @runtime PUSH1 0 CODECOPY
    PUSH1 0 RETURN
    .runtime
    """,
        {},
    )
    + CONTRACT_RUNTIME
)


def calldata(selector: bytes, *words: int) -> bytes:
    """ABI call data: a selector and uint256 arguments."""
    return selector + b"".join(w.to_bytes(32, "big") for w in words)


def quote_out(amount_in: int, reserve0: int = RESERVE0, reserve1: int = RESERVE1) -> int:
    """What the contract's quote() returns for ``amount_in`` with these reserves."""
    return amount_in * reserve1 // (reserve0 + amount_in)


def _rlp_bytes(data: bytes) -> bytes:
    n = len(data)
    if n == 1 and data[0] < 0x80:
        return data
    if n <= 55:
        return bytes((0x80 + n,)) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(size),)) + size + data


def _rlp_int(value: int) -> bytes:
    if value == 0:
        return b"\x80"
    return _rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rlp_list(items: Iterable[bytes]) -> bytes:
    payload = b"".join(items)
    n = len(payload)
    if n <= 55:
        return bytes((0xC0 + n,)) + payload
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(size),)) + size + payload


class Signer:
    """Signs transaction hashes for one key: libsecp256k1 when coincurve is installed."""

    def __init__(self, private_key: bytes, *, native: bool = False) -> None:
        self._fast: Any = None
        self._slow: Any = None
        if _coincurve is not None and not native:
            self._fast = _coincurve.PrivateKey(private_key)
        else:
            from eth_keys.backends.native.main import NativeECCBackend
            from eth_keys.datatypes import PrivateKey

            self._slow = PrivateKey(private_key, backend=NativeECCBackend())

    def sign(self, msg_hash: bytes) -> tuple[int, int, int]:
        """(y parity, r, s) of ``msg_hash``: RFC 6979 nonces, low s (as eth_account)."""
        if self._fast is not None:
            sig: bytes = self._fast.sign_recoverable(msg_hash, hasher=None)
            return sig[64], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
        signature = self._slow.sign_msg_hash(msg_hash)
        return int(signature.v), int(signature.r), int(signature.s)


def sign_eip1559(
    signer: Signer,
    *,
    chain_id: int,
    nonce: int,
    max_priority_fee_wei: int,
    max_fee_wei: int,
    gas: int,
    to: bytes,
    value_wei: int,
    data: bytes,
) -> bytes:
    """A signed type-2 transaction, ready for eth_sendRawTransaction (no access list)."""
    fields = [
        _rlp_int(chain_id),
        _rlp_int(nonce),
        _rlp_int(max_priority_fee_wei),
        _rlp_int(max_fee_wei),
        _rlp_int(gas),
        _rlp_bytes(to),
        _rlp_int(value_wei),
        _rlp_bytes(data),
        b"\xc0",
    ]
    parity, r, s = signer.sign(keccak(b"\x02" + _rlp_list(fields)))
    return b"\x02" + _rlp_list([*fields, _rlp_int(parity), _rlp_int(r), _rlp_int(s)])


def sign_legacy(
    signer: Signer,
    *,
    chain_id: int,
    nonce: int,
    gas_price_wei: int,
    gas: int,
    to: bytes,
    value_wei: int,
    data: bytes,
) -> bytes:
    """A signed EIP-155 legacy transaction; ``to=b""`` creates a contract. Deterministic:
    the same fields give the same bytes, hence the same hash, on every chain."""
    fields = [
        _rlp_int(nonce),
        _rlp_int(gas_price_wei),
        _rlp_int(gas),
        _rlp_bytes(to),
        _rlp_int(value_wei),
        _rlp_bytes(data),
    ]
    parity, r, s = signer.sign(keccak(_rlp_list([*fields, _rlp_int(chain_id), b"\x80", b"\x80"])))
    v = parity + 35 + 2 * chain_id
    return _rlp_list([*fields, _rlp_int(v), _rlp_int(r), _rlp_int(s)])


def tx_hash(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


# -- preparing and sampling the chain --------------------------------------------------

DEPLOY_GAS_PRICE_WEI = 50 * GWEI  # fixed, so the deployment's bytes are the same each time
WARMUP_TXS = 3
_SWAP_GAS = 100_000  # swap() uses ~50k: two SSTOREs and a LOG2
_MIN_BALANCE_WEI = 10**18
_FUNDED_BALANCE_WEI = 10_000 * 10**18
_TRANSFERRED_WEI = 100 * 10**18  # from a dev account (10,000 ETH): a hundred accounts' worth


def prepare_chain(
    node_urls: list[str],
    *,
    accounts: int = DEFAULT_ACCOUNTS,
    timeout_s: float = 60.0,
    by_transactions: bool = False,
    mine_now: bool = False,
) -> str:
    """Deploy the workload contract on every node and return its address (the same on all).

    Each node is its own chain, so the contract is deployed to each directly, by the
    `deployer` at nonce 0 with a deterministic transaction. The deployer then sends
    `WARMUP_TXS` swaps so receipts and logs exist. Idempotent: a node that already has
    the code is left alone. Also funds mnemonic accounts ``DEFAULT_ACCOUNTS..accounts-1``
    (anvil_setBalance). Raises `StackError` naming the node when anything fails.

    ``by_transactions``: fund by transfers from the node's first dev account instead, for a
    chain source whose followers must replay every change (a cheat is in no block).

    ``mine_now``: have each node mine the transactions' block at once (``evm_mine``) instead
    of waiting up to two block times for it: for a chain source or nodes that mine chains of
    their own, never for a follower (its blocks must be the source's).
    """
    address = contract_address()
    pending: list[tuple[str, list[str]]] = []
    for url in node_urls:
        try:
            with RpcClient(url, timeout_s=5.0) as client:
                wanting = [a.address for a in funded_accounts(accounts)[DEFAULT_ACCOUNTS:]]
                if by_transactions:
                    # The deployer too: a chain source's followers replay transactions only.
                    wanting.append(deployer().address)
                    _fund_by_transfers(client, wanting, time.monotonic() + timeout_s, mine_now)
                else:
                    _fund(client, wanting)
                sent = _deploy(client, address)
                if sent:
                    pending.append((url, sent))
                    if mine_now:
                        _mine_now(client)
        except RpcFailure as exc:
            raise StackError(f"preparing the workload contract on {url} failed: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    for url, hashes in pending:
        with RpcClient(url, timeout_s=5.0) as client:
            for h in hashes:
                receipt = _wait_receipt(client, h, deadline, url)
                if receipt.get("status") != "0x1":
                    raise StackError(f"transaction {h} failed on {url}: {receipt}")
            code = client.call("eth_getCode", [address, "latest"])
            if code != "0x" + CONTRACT_RUNTIME.hex():
                raise StackError(f"no workload contract at {address} on {url} after deploying")
    return address


def _fund(client: RpcClient, addresses: list[str]) -> None:
    """Give each of ``addresses`` ether if it has less than 1 ETH (anvil's cheat method)."""
    for address in addresses:
        if int(client.call("eth_getBalance", [address, "latest"]), 16) >= _MIN_BALANCE_WEI:
            continue
        try:
            client.call("anvil_setBalance", [address, hex(_FUNDED_BALANCE_WEI)])
        except RpcFailure as exc:
            raise StackError(
                f"{client.url}: {address} needs ether and the node cannot mint it "
                f"(anvil_setBalance: {exc}); fund it from a dev account, or use anvil"
            ) from exc


def _fund_by_transfers(
    client: RpcClient, addresses: list[str], deadline: float, mine_now: bool = False
) -> None:
    """Give each of ``addresses`` ether from the node's first dev account, in blocks."""
    poor = [
        a
        for a in addresses
        if int(client.call("eth_getBalance", [a, "latest"]), 16) < _MIN_BALANCE_WEI
    ]
    if not poor:
        return
    (sender, *_) = client.call("eth_accounts")
    hashes = [
        client.call(
            "eth_sendTransaction",
            [{"from": sender, "to": a, "value": hex(_TRANSFERRED_WEI)}],
        )
        for a in poor
    ]
    if mine_now:
        _mine_now(client)
    for h in hashes:
        _wait_receipt(client, str(h), deadline, client.url)


def _mine_now(client: RpcClient) -> None:
    """Mine the pending transactions now; a node that cannot (not anvil) mines them later."""
    try:
        client.call("evm_mine")
    except RpcFailure as exc:
        log.info("%s cannot mine on demand (%s): waiting for its next block", client.url, exc)


def _deploy(client: RpcClient, address: str) -> list[str]:
    """Send the deployment and the warm-up swaps if the code is missing; their hashes."""
    code = client.call("eth_getCode", [address, "latest"])
    if code == "0x" + CONTRACT_RUNTIME.hex():
        return []
    if code not in ("0x", "0x0", None):
        raise StackError(f"{client.url} has other code at {address}: {str(code)[:40]}...")
    chain_id = int(client.call("eth_chainId"), 16)
    who = deployer()
    nonce = int(client.call("eth_getTransactionCount", [who.address, "latest"]), 16)
    if nonce != 0:
        raise StackError(
            f"{client.url}: the deployer {who.address} has nonce {nonce} but no contract at "
            f"{address}; its deployment failed. Restart the chain from genesis"
        )
    _fund(client, [who.address])
    signer = Signer(who.private_key)
    txs = [
        sign_legacy(
            signer,
            chain_id=chain_id,
            nonce=0,
            gas_price_wei=DEPLOY_GAS_PRICE_WEI,
            gas=300_000,
            to=b"",
            value_wei=0,
            data=CONTRACT_INIT,
        )
    ]
    to = bytes.fromhex(address[2:])
    for i in range(1, 1 + WARMUP_TXS):
        txs.append(
            sign_legacy(
                signer,
                chain_id=chain_id,
                nonce=i,
                gas_price_wei=DEPLOY_GAS_PRICE_WEI,
                gas=_SWAP_GAS,
                to=to,
                value_wei=0,
                data=calldata(SWAP, i * 10**15),
            )
        )
    for raw in txs:
        try:
            client.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        except RpcFailure as exc:  # a repeated prepare whose transactions are still pending
            if "already" not in exc.detail.lower() and "known" not in exc.detail.lower():
                raise
    return [tx_hash(raw) for raw in txs]


def _wait_receipt(client: RpcClient, h: str, deadline: float, url: str) -> dict[str, Any]:
    while True:
        receipt = client.call("eth_getTransactionReceipt", [h])
        if isinstance(receipt, dict):
            return receipt
        if time.monotonic() > deadline:
            raise StackError(f"transaction {h} was not mined on {url} in time; is it mining?")
        time.sleep(0.05)


@dataclass(frozen=True)
class ChainContext:
    """What request parameters need, as one node saw it at ``sampled_ns`` (monotonic)."""

    chain_id: int
    head: int
    recent_blocks: tuple[int, ...]  # newest first, starting with head
    recent_hashes: tuple[str, ...]  # aligned with recent_blocks
    tx_hashes: tuple[str, ...]  # of transactions in recent blocks, newest first
    base_fee_wei: int
    accounts: tuple[FundedAccount, ...]
    pending_nonces: tuple[int, ...]  # aligned with accounts
    contract: str
    sampled_ns: int


MAX_TX_HASHES = 64


def sample_context(
    url: str,
    contract: str,
    *,
    accounts: int = DEFAULT_ACCOUNTS,
    history_blocks: int = 8,
    timeout_s: float = 2.0,
) -> ChainContext:
    """Read a `ChainContext` from the node at ``url`` (about ``history_blocks + accounts``
    calls). Raises `RpcFailure` if the node does not answer properly: keep the old one."""
    with RpcClient(url, timeout_s=timeout_s) as client:
        try:
            chain_id = int(client.call("eth_chainId"), 16)
            latest = client.call("eth_getBlockByNumber", ["latest", False])
            head = int(latest["number"], 16)
            blocks = [latest]
            for number in range(head - 1, max(-1, head - history_blocks), -1):
                block = client.call("eth_getBlockByNumber", [hex(number), False])
                if isinstance(block, dict):
                    blocks.append(block)
            owners = funded_accounts(accounts)
            nonces = tuple(
                int(client.call("eth_getTransactionCount", [a.address, "pending"]), 16)
                for a in owners
            )
            return ChainContext(
                chain_id=chain_id,
                head=head,
                recent_blocks=tuple(int(b["number"], 16) for b in blocks),
                recent_hashes=tuple(str(b["hash"]) for b in blocks),
                tx_hashes=tuple(
                    h if isinstance(h, str) else str(h["hash"])
                    for b in blocks
                    for h in b.get("transactions", ())
                )[:MAX_TX_HASHES],
                base_fee_wei=int(latest.get("baseFeePerGas") or "0x0", 16),
                accounts=owners,
                pending_nonces=nonces,
                contract=contract.lower(),
                sampled_ns=time.monotonic_ns(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RpcFailure(Outcome.MALFORMED, f"unexpected block or number: {exc}") from exc


# -- request bodies ---------------------------------------------------------------------

PRIORITY_FEE_WEI = 1 * GWEI
#: A locally tracked nonce this far ahead of the node's pending count is reset to it
#: (its transactions were lost: a failed send, a restarted node, a failover).
NONCE_RESYNC_GAP = 64
_ZERO_HASH = "0x" + "00" * 32


def _template(method: str, params: list[Any]) -> bytes:
    """A request body with ``%d`` where the id goes."""
    rendered = json.dumps(params, separators=(",", ":"))
    assert "%" not in rendered, rendered  # every value is hex or a keyword
    return (
        b'{"jsonrpc":"2.0","id":%d,"method":"'
        + method.encode()
        + b'","params":'
        + (rendered.encode() + b"}")
    )


_SEND_TEMPLATE = _template("eth_sendRawTransaction", ["RAW"]).replace(b'"RAW"', b'"0x%s"')


class RequestFactory:
    """Request bodies drawn from a `Profile` with parameters from a `ChainContext`.

    Deterministic for a ``seed`` and a sequence of contexts. ``account_index`` picks the
    funded account this factory signs with: give each concurrent factory (each Locust
    worker) its own, below ``len(context.accounts)``, or their nonces collide.
    """

    _context: ChainContext
    _account: FundedAccount

    def __init__(
        self,
        profile: Profile,
        context: ChainContext,
        seed: int,
        *,
        account_index: int = 0,
        native_signer: bool = False,
    ) -> None:
        self.profile = profile
        self.account_index = account_index
        self._rng = Random(seed)
        self._random = self._rng.random
        self._id = 0
        self._nonce: int | None = None
        self._sent: deque[str] = deque(maxlen=MAX_TX_HASHES)
        self._native_signer = native_signer
        self._signer: Signer | None = None
        # Argument variety fixed per factory: amounts for quote()/swap() calls.
        self._amounts = [self._rng.randrange(10**12, 10**18) for _ in range(32)]
        shares = [(label, w) for label, w in profile.weights.items() if w > 0]
        self._labels = [label for label, _ in shares]
        cumulative: list[float] = []
        total = 0.0
        for _, weight in shares:
            total += weight
            cumulative.append(total)
        cumulative[-1] = math.inf  # random() * total may round up to total
        self._cumulative = cumulative
        self._total = total
        self._templates: list[tuple[bytes, ...]] = []
        self._batch_pool: tuple[bytes, ...] = ()
        self.update(context)

    @property
    def context(self) -> ChainContext:
        return self._context

    @property
    def next_nonce(self) -> int:
        """The nonce the next eth_sendRawTransaction will carry."""
        assert self._nonce is not None
        return self._nonce

    @property
    def sent_tx_hashes(self) -> tuple[str, ...]:
        """Hashes of the most recent transactions this factory signed, oldest first."""
        return tuple(self._sent)

    def next(self) -> tuple[str, bytes]:
        """The next (method label, JSON-RPC request body)."""
        random = self._random
        index = bisect_right(self._cumulative, random() * self._total)
        label = self._labels[index]
        self._id += 1
        templates = self._templates[index]
        if templates:
            return label, templates[int(random() * len(templates))] % self._id
        if label == "eth_sendRawTransaction":
            return label, _SEND_TEMPLATE % (self._id, self._sign_next().hex().encode())
        return label, self._batch()

    def update(self, context: ChainContext) -> None:
        """Swap in a fresh context (every block): re-renders templates, resyncs the nonce."""
        if not 0 <= self.account_index < len(context.accounts):
            raise ConfigError(
                "account_index",
                self.account_index,
                f"choose 0 to {len(context.accounts) - 1}, or prepare and sample more "
                "accounts (prepare_chain/sample_context accounts=N)",
            )
        self._context = context
        account = context.accounts[self.account_index]
        if self._signer is None or self._account != account:
            self._signer = Signer(account.private_key, native=self._native_signer)
            self._nonce = None
        self._account = account
        pending = context.pending_nonces[self.account_index]
        if (
            self._nonce is None
            or pending > self._nonce
            or self._nonce - pending > (NONCE_RESYNC_GAP)
        ):
            self._nonce = pending
        self._max_fee_wei = 2 * context.base_fee_wei + PRIORITY_FEE_WEI
        self._to = bytes.fromhex(context.contract[2:])
        self._render()

    def _render(self) -> None:
        ctx, me = self._context, self._account.address
        contract, head = ctx.contract, ctx.head
        quotes = [{"to": contract, "data": "0x" + calldata(QUOTE, x).hex()} for x in self._amounts]
        reserves = {"to": contract, "data": "0x" + GET_RESERVES.hex()}
        swaps = [
            {"from": me, "to": contract, "data": "0x" + calldata(SWAP, x // 1000).hex()}
            for x in self._amounts[:8]
        ]
        logs_range = {"fromBlock": hex(max(0, head - 1)), "toBlock": hex(head)}
        tx_hashes = ctx.tx_hashes or tuple(reversed(self._sent)) or (_ZERO_HASH,)
        owners = [a.address for a in ctx.accounts]
        by_label: dict[str, list[bytes]] = {
            "eth_call": [_template("eth_call", [q, "latest"]) for q in [*quotes, reserves]],
            "eth_getStorageAt": [
                _template("eth_getStorageAt", [contract, slot, "latest"])
                for slot in ("0x0", "0x1", "0x2")
            ],
            "eth_blockNumber": [_template("eth_blockNumber", [])],
            "eth_getLogs": [
                _template("eth_getLogs", [logs_range | extra])
                for extra in (
                    {"address": contract},
                    {"topics": [SWAP_TOPIC]},
                    {"address": contract, "topics": [SWAP_TOPIC]},
                )
            ],
            "eth_getBlockByNumber": [_template("eth_getBlockByNumber", ["latest", False])],
            "eth_getBlockByNumber_full": [
                _template("eth_getBlockByNumber", [tag, True])
                for tag in ["latest", *(hex(n) for n in ctx.recent_blocks[1:4])]
            ],
            "eth_getTransactionReceipt": [
                _template("eth_getTransactionReceipt", [h]) for h in tx_hashes
            ],
            "eth_estimateGas": [_template("eth_estimateGas", [s]) for s in swaps],
            "eth_feeHistory": [_template("eth_feeHistory", ["0x4", "latest", [25, 75]])],
            "eth_maxPriorityFeePerGas": [_template("eth_maxPriorityFeePerGas", [])],
            "eth_gasPrice": [_template("eth_gasPrice", [])],
            "eth_getTransactionCount": [
                _template("eth_getTransactionCount", [a, "pending"]) for a in [me, me, *owners]
            ],
            "debug_traceCall": [
                _template("debug_traceCall", [s, "latest", {"tracer": "callTracer"}]) for s in swaps
            ],
            "eth_getBalance": [
                _template("eth_getBalance", [a, "latest"]) for a in [*owners, contract]
            ],
            "eth_chainId": [_template("eth_chainId", [])],
        }
        # Dynamic labels (signed transactions, batches) have no templates: ().
        self._templates = [tuple(by_label.get(label, ())) for label in self._labels]
        # A searcher's batch: mostly eth_calls, with storage reads, balances and the head.
        calls, storage, balances, block_number = (by_label[m] for m in BATCH_METHODS)
        self._batch_pool = tuple(calls * 2 + storage + balances[:3] + block_number)

    def _batch(self) -> bytes:
        pool, random, first = self._batch_pool, self._random, self._id
        size = self.profile.batch_size
        self._id += size - 1
        parts = [pool[int(random() * len(pool))] % (first + k) for k in range(size)]
        return b"[" + b",".join(parts) + b"]"

    def _sign_next(self) -> bytes:
        assert self._signer is not None and self._nonce is not None
        nonce = self._nonce
        self._nonce = nonce + 1
        amount = self._amounts[int(self._random() * len(self._amounts))] // 1000
        raw = sign_eip1559(
            self._signer,
            chain_id=self._context.chain_id,
            nonce=nonce,
            max_priority_fee_wei=PRIORITY_FEE_WEI,
            max_fee_wei=self._max_fee_wei,
            gas=_SWAP_GAS,
            to=self._to,
            value_wei=0,
            data=calldata(SWAP, amount),
        )
        self._sent.append(tx_hash(raw))
        return raw


# -- outcomes -----------------------------------------------------------------------------

_OK = Outcome.OK.value
_MALFORMED = Outcome.MALFORMED.value


def classify(status: int, body: bytes, request_is_batch: bool) -> str:
    """The `Outcome` value of one HTTP response; never raises.

    A JSON-RPC ``error`` member is a failure; a batch fails if any element does (classified
    by the first error). The common success of a single call is recognised without
    parsing: status 200, no ``"error"`` anywhere, a ``"result"`` and a body that ends as a
    JSON object should; anything else, and every batch (a few % of requests), is parsed.
    A body cut short is the HTTP client's to catch (Content-Length), not this check's.
    """
    if (
        status == 200
        and not request_is_batch
        and b'"error"' not in body
        and b'"result"' in body
        and b"}" in body[-2:]
    ):
        return _OK
    return classify_slow(status, body, request_is_batch)


def classify_slow(status: int, body: bytes, request_is_batch: bool) -> str:
    """`classify` by a full parse (what the fast path must agree with)."""
    try:
        if status != 200:
            return classify_http_status(status).value
        doc = _loads_bounded(body)
        if request_is_batch and isinstance(doc, list):
            if not doc:
                return _MALFORMED
            first_failure = None
            for element in doc:
                outcome = _classify_single(element)
                if outcome != _OK and first_failure is None:
                    first_failure = outcome
            return first_failure or _OK
        return _classify_single(doc)
    except Exception:  # malformed input of any kind must not break the load loop
        return _MALFORMED


#: json's C decoder recurses once per nesting level on the C stack; above a few thousand
#: levels that overflows, so a parse never runs with a higher limit than this.
_PARSE_RECURSION_LIMIT = 4000


def _loads_bounded(body: bytes) -> Any:
    """``json.loads``, with RecursionError (not a crash) for absurdly nested input even
    when something raised the recursion limit (py_ecc does, on import)."""
    limit = sys.getrecursionlimit()
    if limit <= _PARSE_RECURSION_LIMIT:
        return json.loads(body)
    sys.setrecursionlimit(_PARSE_RECURSION_LIMIT)
    try:
        return json.loads(body)
    finally:
        sys.setrecursionlimit(limit)


def _classify_single(doc: Any) -> str:
    if not isinstance(doc, dict):
        return _MALFORMED
    error = doc.get("error")
    if error is not None:
        return error_class(error)
    if "result" not in doc:
        return _MALFORMED
    return _OK
