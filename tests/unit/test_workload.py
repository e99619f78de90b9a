"""The JSON-RPC workload without a chain: profiles, TOML files, request bodies, signed
transactions and the classification of responses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.jsonrpc import Outcome
from harness.load.workload import (
    CONTRACT_INIT,
    CONTRACT_RUNTIME,
    GET_RESERVES,
    KNOWN_METHODS,
    NONCE_RESYNC_GAP,
    PROFILES,
    QUOTE,
    SWAP,
    SWAP_TOPIC,
    ChainContext,
    Profile,
    RequestFactory,
    Signer,
    classify,
    classify_slow,
    contract_address,
    create_address,
    deployer,
    funded_accounts,
    keeping_recursion_limit,
    load_profile,
    sign_eip1559,
    sign_legacy,
)


def eth_account() -> Any:
    """eth_account's `Account`, imported without keeping py_ecc's recursion limit of 100000
    (which turns the deep-nesting tests of this session into segfaults)."""
    with keeping_recursion_limit():
        from eth_account import Account
    return Account


CONTRACT = "0x3d54e91cfe1ff0a08c1a86a1cd2d566ed4797705"
TX_HASHES = ("0x" + "ab" * 32, "0x" + "cd" * 32)


def context(head: int = 100, nonces: tuple[int, ...] = (5, 0, 7), **kw: Any) -> ChainContext:
    fields: dict[str, Any] = {
        "chain_id": 31337,
        "head": head,
        "recent_blocks": tuple(range(head, head - 4, -1)),
        "recent_hashes": tuple("0x" + f"{n:064x}" for n in range(head, head - 4, -1)),
        "tx_hashes": TX_HASHES,
        "base_fee_wei": 7,
        "accounts": funded_accounts(len(nonces)),
        "pending_nonces": nonces,
        "contract": CONTRACT,
        "sampled_ns": 0,
    }
    fields.update(kw)
    return ChainContext(**fields)


def only(label: str, batch_size: int = 10) -> Profile:
    return Profile(label, {label: 1}, batch_size=batch_size)


# --- profiles ---------------------------------------------------------------------------


def test_searcher_light_and_heavy_are_built_in_and_searcher_carries_the_design_mix() -> None:
    assert {"searcher", "light", "heavy"} <= set(PROFILES)
    w = PROFILES["searcher"].weights
    design = {
        "eth_call": 42,
        "eth_getStorageAt": 10,
        "eth_blockNumber": 10,
        "eth_getLogs": 8,
        "eth_getBlockByNumber": 6,
        "eth_getTransactionReceipt": 5,
        "eth_estimateGas": 4,
        "eth_getTransactionCount": 3,
        "debug_traceCall": 3,
        "eth_getBalance": 2,
        "eth_sendRawTransaction": 2,
        "eth_chainId": 1,
    }
    assert {k: w[k] for k in design} == design
    assert w["eth_feeHistory"] + w["eth_maxPriorityFeePerGas"] + w["eth_gasPrice"] == 4
    assert 0 < w["batch"] <= 3 and 0 < w["eth_getBlockByNumber_full"] <= 3


def test_light_profile_only_polls_the_head_and_heavy_is_dominated_by_expensive_calls() -> None:
    expensive = {
        "eth_call",
        "eth_estimateGas",
        "debug_traceCall",
        "eth_getLogs",
        "eth_getBlockByNumber_full",
        "eth_sendRawTransaction",
        "batch",
    }
    assert not expensive & set(PROFILES["light"].weights)
    heavy = PROFILES["heavy"].shares()
    costly = ("eth_getLogs", "debug_traceCall", "eth_getBlockByNumber_full")
    assert sum(heavy[label] for label in costly) > 0.6


def test_unknown_method_label_names_the_field_and_lists_the_known_methods() -> None:
    with pytest.raises(ConfigError) as err:
        Profile("mine", {"eth_call": 1, "eth_frobnicate": 2})
    assert err.value.field == "profile mine.weights"
    assert err.value.value == "eth_frobnicate"
    assert "known methods:" in err.value.fix and "eth_getLogs" in err.value.fix


weight_values = st.floats(min_value=0, max_value=1e9, allow_nan=False)
labels = st.sampled_from(KNOWN_METHODS)


@given(st.dictionaries(labels, weight_values, min_size=1))
def test_finite_non_negative_weights_with_one_positive_make_a_profile(w: dict[str, float]) -> None:
    assume(any(v > 0 for v in w.values()))
    profile = Profile("p", w)
    shares = profile.shares()
    assert math.isclose(sum(shares.values()), 1.0)
    assert set(shares) == {k for k, v in w.items() if v > 0}


@given(
    st.dictionaries(labels, weight_values, min_size=1),
    labels,
    st.one_of(
        st.floats(max_value=-1e-300, allow_infinity=True, allow_nan=False),
        st.just(math.nan),
        st.just(math.inf),
        st.integers(max_value=-1),
    ),
)
def test_a_negative_or_non_finite_weight_is_refused_naming_its_label(
    w: dict[str, float], bad_label: str, bad: float
) -> None:
    w = {**w, bad_label: bad}
    with pytest.raises(ConfigError) as err:
        Profile("p", w)
    assert err.value.field == f"profile p.weights.{bad_label}"


@pytest.mark.parametrize("weights", [{}, {"eth_call": 0}, {"eth_call": 0.0, "batch": 0}])
def test_weights_that_are_all_zero_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="at least one weight must be > 0"):
        Profile("p", weights)


@pytest.mark.parametrize("bad", ["42", True, None, [1]])
def test_a_weight_that_is_not_a_number_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        Profile("p", {"eth_call": bad})
    assert err.value.field == "profile p.weights.eth_call"


@pytest.mark.parametrize("size", [0, -1, 1001, 2.5, True])
def test_batch_size_outside_1_to_1000_is_refused(size: Any) -> None:
    with pytest.raises(ConfigError) as err:
        Profile("p", {"batch": 1}, batch_size=size)
    assert err.value.field == "profile p.batch_size"


def test_a_profile_keeps_its_own_copy_of_the_weights() -> None:
    weights = {"eth_call": 1}
    profile = Profile("p", weights)
    weights["eth_call"] = 0
    assert profile.weights == {"eth_call": 1.0}


# --- loading profiles -------------------------------------------------------------------


def test_built_in_names_load_the_built_in_profiles() -> None:
    for name, profile in PROFILES.items():
        assert load_profile(name) is profile


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_built_in_profile_written_as_toml_reads_back_equal(name: str, tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(PROFILES[name].to_toml())
    assert load_profile(str(path)) == PROFILES[name]


@settings(max_examples=50)
@given(st.dictionaries(labels, weight_values, min_size=1), st.integers(1, 1000))
def test_any_valid_profile_round_trips_through_toml(w: dict[str, float], size: int) -> None:
    assume(any(v > 0 for v in w.values()))
    import tomllib

    profile = Profile("p q", w, batch_size=size)
    doc = tomllib.loads(profile.to_toml())
    assert Profile(doc["name"], doc["weights"], doc["batch_size"]) == profile


def test_a_toml_file_without_name_or_batch_size_is_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mev.toml"
    path.write_text("[weights]\neth_call = 9\neth_blockNumber = 1\n")
    profile = load_profile(str(path))
    assert profile.name == "mev"
    assert profile.batch_size == 10
    assert profile.shares() == {"eth_call": 0.9, "eth_blockNumber": 0.1}


def test_an_unknown_profile_name_lists_the_built_ins() -> None:
    with pytest.raises(ConfigError) as err:
        load_profile("searchr")
    assert err.value.field == "profile"
    assert err.value.value == "searchr"
    assert "searcher, light, heavy" in err.value.fix


def test_a_missing_profile_file_says_so_and_lists_the_built_ins(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_profile(str(tmp_path / "nope.toml"))
    assert err.value.field == "profile"
    assert "no such file" in err.value.fix and "searcher" in err.value.fix


def test_a_profile_file_that_is_not_toml_names_the_file_and_the_syntax_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[weights\neth_call = 1\n")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert err.value.value == str(path)
    assert "not valid TOML" in err.value.fix and "line 1" in err.value.fix


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('name = "x"\n[weights]\neth_call = "lots"\n', "profile x.weights.eth_call", "lots"),
        ('name = "x"\n[weights]\neth_calls = 1\n', "profile x.weights", "eth_calls"),
        ('name = "x"\nweights = 3\n', "profile x.weights", 3),
        ('name = "x"\n', "profile x.weights", None),
        ('name = "x"\nbatch_size = 0\n[weights]\nbatch = 1\n', "profile x.batch_size", 0),
    ],
)
def test_a_profile_file_with_bad_content_names_the_field_and_value(
    tmp_path: Path, text: str, field: str, value: object
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert (err.value.field, err.value.value) == (field, value)


def test_an_unknown_key_in_a_profile_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("batchsize = 3\n[weights]\neth_call = 1\n")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert err.value.value == "batchsize" and "allowed" in err.value.fix


# --- the factory ------------------------------------------------------------------------


def test_labels_are_drawn_by_weight_within_tolerance_over_20k_draws() -> None:
    profile = PROFILES["searcher"]
    factory = RequestFactory(profile, context(), seed=7, account_index=1)
    n = 20_000
    counts = dict.fromkeys(profile.weights, 0)
    for _ in range(n):
        counts[factory.next()[0]] += 1
    for label, p in profile.shares().items():
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(counts[label] / n - p) < 4 * sigma + 1e-3, (label, counts[label], p)


@pytest.mark.parametrize("label", KNOWN_METHODS)
def test_every_label_yields_a_valid_json_rpc_request(label: str) -> None:
    factory = RequestFactory(only(label, batch_size=5), context(), seed=1)
    for _ in range(20):
        got, body = factory.next()
        assert got == label
        doc = json.loads(body)
        requests = doc if label == "batch" else [doc]
        if label == "batch":
            assert isinstance(doc, list) and len(doc) == 5
        for req in requests:
            assert set(req) == {"jsonrpc", "id", "method", "params"}
            assert req["jsonrpc"] == "2.0" and isinstance(req["id"], int)
            assert isinstance(req["params"], list)
            if label != "batch":
                assert req["method"] == label.removesuffix("_full")


def test_parameters_come_from_the_context_and_follow_update() -> None:
    factory = RequestFactory(only("eth_getLogs"), context(head=100), seed=1)
    first = json.loads(factory.next()[1])["params"][0]
    assert (first["fromBlock"], first["toBlock"]) == ("0x63", "0x64")
    assert first.get("address") == CONTRACT or first.get("topics") == [SWAP_TOPIC]
    factory.update(context(head=200))
    later = json.loads(factory.next()[1])["params"][0]
    assert (later["fromBlock"], later["toBlock"]) == ("0xc7", "0xc8")

    receipts = RequestFactory(only("eth_getTransactionReceipt"), context(), seed=1)
    seen = {json.loads(receipts.next()[1])["params"][0] for _ in range(50)}
    assert seen == set(TX_HASHES)

    calls = RequestFactory(only("eth_call"), context(), seed=1)
    for _ in range(20):
        tx, tag = json.loads(calls.next()[1])["params"]
        assert tx["to"] == CONTRACT and tag == "latest"
        assert tx["data"][:10] in ("0x" + QUOTE.hex(), "0x" + GET_RESERVES.hex())


def test_request_ids_are_unique_and_increasing_across_batches() -> None:
    factory = RequestFactory(PROFILES["searcher"], context(), seed=3)
    ids: list[int] = []
    for _ in range(500):
        doc = json.loads(factory.next()[1])
        ids += [r["id"] for r in doc] if isinstance(doc, list) else [doc["id"]]
    assert ids == sorted(set(ids))


def test_the_same_seed_gives_the_same_requests() -> None:
    def draw(seed: int) -> list[tuple[str, bytes]]:
        factory = RequestFactory(PROFILES["searcher"], context(), seed=seed)
        return [factory.next() for _ in range(300)]

    assert draw(11) == draw(11)
    assert draw(11) != draw(12)


def test_receipts_fall_back_to_the_factorys_own_transactions_when_blocks_have_none() -> None:
    profile = Profile("p", {"eth_sendRawTransaction": 1, "eth_getTransactionReceipt": 1})
    factory = RequestFactory(profile, context(tx_hashes=()), seed=1)
    for _ in range(20):
        factory.next()
    factory.update(context(tx_hashes=()))
    asked = set()
    for _ in range(100):
        label, body = factory.next()
        if label == "eth_getTransactionReceipt":
            asked.add(json.loads(body)["params"][0])
    assert asked and asked <= set(factory.sent_tx_hashes)


def _decode_type2(raw: bytes) -> list[Any]:
    assert raw[0] == 2
    return list(rlp.decode(raw[1:]))


def test_raw_transactions_are_signed_by_the_factorys_account_with_consecutive_nonces() -> None:
    ctx = context(nonces=(5, 0, 7))
    factory = RequestFactory(only("eth_sendRawTransaction"), ctx, seed=1, account_index=2)
    for expected_nonce in range(7, 12):
        doc = json.loads(factory.next()[1])
        raw = bytes.fromhex(doc["params"][0][2:])
        fields = _decode_type2(raw)
        assert int.from_bytes(fields[0], "big") == 31337
        assert int.from_bytes(fields[1], "big") == expected_nonce
        assert "0x" + fields[5].hex() == CONTRACT
        assert fields[7][:4] == SWAP
        assert eth_account().recover_transaction(raw).lower() == ctx.accounts[2].address
        assert factory.sent_tx_hashes[-1] == "0x" + keccak(raw).hex()
    assert factory.next_nonce == 12


@pytest.mark.parametrize("native", [False, True])
def test_our_transaction_bytes_equal_eth_accounts(native: bool) -> None:
    key = funded_accounts(1)[0].private_key
    signer = Signer(key, native=native)
    fields = {"chain_id": 31337, "gas": 100_000, "value_wei": 5, "data": SWAP + b"\x01" * 32}
    to = bytes.fromhex(CONTRACT[2:])
    ours = sign_eip1559(
        signer, nonce=3, max_priority_fee_wei=10**9, max_fee_wei=3 * 10**9, to=to, **fields
    )
    theirs = (
        eth_account()
        .sign_transaction(
            {
                "type": 2,
                "chainId": 31337,
                "nonce": 3,
                "maxPriorityFeePerGas": 10**9,
                "maxFeePerGas": 3 * 10**9,
                "gas": 100_000,
                "to": to_checksum_address(CONTRACT),
                "value": 5,
                "data": fields["data"],
                "accessList": [],
            },
            key,
        )
        .raw_transaction
    )
    assert ours == bytes(theirs)
    legacy = sign_legacy(signer, nonce=0, gas_price_wei=50 * 10**9, to=b"", **fields)
    theirs_legacy = (
        eth_account()
        .sign_transaction(
            {
                "chainId": 31337,
                "nonce": 0,
                "gasPrice": 50 * 10**9,
                "gas": 100_000,
                "value": 5,
                "data": fields["data"],
            },
            key,
        )
        .raw_transaction
    )
    assert legacy == bytes(theirs_legacy)


def test_the_nonce_follows_the_node_when_it_is_ahead_or_far_behind() -> None:
    factory = RequestFactory(only("eth_sendRawTransaction"), context(nonces=(5,)), seed=1)
    for _ in range(3):
        factory.next()
    assert factory.next_nonce == 8
    factory.update(context(nonces=(6,)))  # two still in flight: keep counting
    assert factory.next_nonce == 8
    factory.update(context(nonces=(20,)))  # someone else used the account
    assert factory.next_nonce == 20
    factory.update(context(nonces=(20 - NONCE_RESYNC_GAP - 1,)))  # ours were lost
    assert factory.next_nonce == 20 - NONCE_RESYNC_GAP - 1


def test_an_account_index_without_an_account_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        RequestFactory(PROFILES["searcher"], context(nonces=(0, 0)), seed=1, account_index=2)
    assert err.value.field == "account_index" and "0 to 1" in err.value.fix


def test_the_contract_address_is_the_deployers_first_creation() -> None:
    sender = deployer().address
    expected = keccak(rlp.encode([bytes.fromhex(sender[2:]), 0]))[12:]
    assert contract_address() == "0x" + expected.hex() == create_address(sender, 0)
    assert (
        create_address(sender, 300)
        == "0x" + keccak(rlp.encode([bytes.fromhex(sender[2:]), 300]))[12:].hex()
    )
    assert sender not in {a.address for a in funded_accounts()}
    assert CONTRACT_INIT.endswith(CONTRACT_RUNTIME)


# --- classify ---------------------------------------------------------------------------

OK_SINGLE = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'


@pytest.mark.parametrize(
    ("status", "body", "batch", "outcome"),
    [
        (200, OK_SINGLE, False, Outcome.OK),
        (200, OK_SINGLE + b"\n", False, Outcome.OK),
        (200, b'{"jsonrpc":"2.0","id":1,"result":null}', False, Outcome.OK),
        (200, b'{"jsonrpc":"2.0","id":1,"result":"0x","error":null}', False, Outcome.OK),
        (200, b'{"jsonrpc":"2.0","id":1,"result":{"error":"execution reverted"}}', False, "ok"),
        (
            200,
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}',
            False,
            "rpc_error:-32000",  # a plain JSON-RPC error is counted by its code
        ),
        (
            200,
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}',
            False,
            Outcome.HEADER_NOT_FOUND,
        ),
        (200, b'{"id":1,"error":{"code":-32005,"message":"slow down"}}', False, "rpc_rate_limited"),
        (200, b'{"jsonrpc":"2.0","id":1,"error":"boom"}', False, Outcome.MALFORMED),
        (200, b'{"jsonrpc":"2.0","id":1}', False, Outcome.MALFORMED),
        (200, b'{"jsonrpc":"2.0","id":1,"result":"0x1', False, Outcome.MALFORMED),
        (200, b"", False, Outcome.MALFORMED),
        (200, b"<html>502 Bad Gateway</html>", False, Outcome.MALFORMED),
        (200, b"\xff\xfe\x00garbage", False, Outcome.MALFORMED),
        (200, b"[" * 100_000, False, Outcome.MALFORMED),
        (200, b'"result"', False, Outcome.MALFORMED),
        (503, b"<html>No server is available</html>", False, Outcome.HTTP_503),
        (502, OK_SINGLE, False, Outcome.HTTP_5XX),
        (429, b"", False, Outcome.HTTP_429),
        (404, b"", True, Outcome.HTTP_4XX),
        (200, b"[" + OK_SINGLE + b"," + OK_SINGLE + b"]", True, Outcome.OK),
        (
            200,
            b"["
            + OK_SINGLE
            + b',{"id":2,"error":{"code":-32000,"message":"header not found"}},'
            + b'{"id":3,"error":{"code":-32601,"message":"Method not found"}}]',
            True,
            Outcome.HEADER_NOT_FOUND,
        ),
        (200, b"[" + OK_SINGLE + b',{"jsonrpc":"2.0","id":2}]', True, Outcome.MALFORMED),
        (200, b"[" + OK_SINGLE + b',{"id":2}]', True, Outcome.MALFORMED),
        (200, b"[]", True, Outcome.MALFORMED),
        (200, b'[1,"result"]', True, Outcome.MALFORMED),
        (
            200,
            b'{"id":null,"error":{"code":-32600,"message":"too large"}}',
            True,
            "rpc_error:-32600",
        ),
        (200, b'{"id":1,"error":{"code":"x","message":"odd"}}', False, "rpc_error"),
        (200, OK_SINGLE, True, Outcome.OK),  # a node may answer a 1-element batch with an object
    ],
)
def test_classify_crafted_responses(status: int, body: bytes, batch: bool, outcome: str) -> None:
    assert classify(status, body, batch) == outcome
    assert classify_slow(status, body, batch) == outcome


@given(st.integers(0, 999), st.binary(max_size=300), st.booleans())
def test_classify_never_raises_and_returns_an_outcome(status: int, body: bytes, b: bool) -> None:
    outcome, _, code = classify(status, body, b).partition(":")
    assert outcome in {o.value for o in Outcome}
    assert not code or (outcome == Outcome.RPC_ERROR and int(code) == int(code))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
errors = st.fixed_dictionaries(
    {"code": st.integers(-32768, -32000), "message": st.text(max_size=20)}
)
responses = st.one_of(
    st.builds(lambda r: {"jsonrpc": "2.0", "id": 1, "result": r}, json_values),
    st.builds(lambda e: {"jsonrpc": "2.0", "id": 1, "error": e}, errors | json_values),
)


@given(st.one_of(responses, st.lists(responses, min_size=1, max_size=4)), st.booleans())
def test_the_fast_path_agrees_with_a_full_parse_on_json_rpc_responses(
    doc: Any, spaced: bool
) -> None:
    body = json.dumps(doc, separators=(", ", ": ") if spaced else (",", ":")).encode()
    batch = isinstance(doc, list)
    assert classify(200, body, batch) == classify_slow(200, body, batch)
