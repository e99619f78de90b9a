"""The proxy's JSON-RPC rewriting: `rewrite_request` and `rewrite_response`, pure.

Each test states a plan the proxy must make for a body under some rules, then what the
client gets once the node's answer (or none) is merged in.
"""

from __future__ import annotations

import fnmatch
import json
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.proxy.rpc import (
    TokenBuckets,
    rewrite_latest,
    rewrite_request,
    rewrite_response,
)
from harness.proxy.rules import Rule, parse_rule


def rule(doc: dict[str, Any], rule_id: str = "r1") -> Rule:
    return replace(parse_rule(doc), id=rule_id)


def call(method: str, request_id: Any = 1, params: list[Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def result(request_id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def node_answer(request: bytes) -> bytes:
    """What a node answers: ``"r-<method>"`` for every call that has an id."""
    doc = json.loads(request)
    calls = doc if isinstance(doc, list) else [doc]
    answers = [result(c["id"], f"r-{c['method']}") for c in calls if "id" in c]
    return body(answers if isinstance(doc, list) else answers[0])


def roundtrip(request: bytes, rules: list[Rule], seed: int = 0, **kw: Any) -> tuple[int, Any]:
    plan = rewrite_request(request, rules, random.Random(seed), **kw)
    if plan.body_for_node is None:
        answer = rewrite_response(plan, None, None)
    else:
        answer = rewrite_response(plan, 200, node_answer(plan.body_for_node))
    return answer.status, json.loads(answer.body) if answer.body else None


# --- pass-through ------------------------------------------------------------------------


def test_without_rpc_rules_the_body_goes_to_the_node_as_it_is() -> None:
    request = body(call("eth_call"))
    plan = rewrite_request(request, [rule({"kind": "latency", "latency": 5})], random.Random())
    assert plan.body_for_node is request
    assert plan.untouched


def test_a_body_that_is_not_json_is_left_alone() -> None:
    plan = rewrite_request(b"{not json", [rule({"kind": "null_result"})], random.Random())
    assert plan.body_for_node == b"{not json"
    assert plan.untouched


json_ids = st.integers(-(2**40), 2**40) | st.text(max_size=8)
calls = st.builds(
    call, st.sampled_from(["eth_call", "eth_chainId", "net_version", "eth_getLogs"]), json_ids
)


@given(st.lists(calls, min_size=1, max_size=6) | calls)
def test_when_no_call_matches_the_node_sees_and_the_client_gets_the_bytes_unchanged(
    doc: Any,
) -> None:
    rules = [rule({"kind": "rpc_error", "code": 1, "methods": "debug_*"})]
    request = body(doc)
    plan = rewrite_request(request, rules, random.Random(0))
    assert plan.body_for_node is request
    node = node_answer(request)
    assert rewrite_response(plan, 200, node).body is node


# --- element-wise ----------------------------------------------------------------------


def test_only_the_matching_batch_element_is_answered_by_the_proxy() -> None:
    rules = [rule({"kind": "rpc_error", "code": -32000, "message": "nope", "methods": "eth_get*"})]
    request = body([call("eth_chainId", 1), call("eth_getBalance", 2), call("net_version", 3)])
    plan = rewrite_request(request, rules, random.Random())
    assert plan.body_for_node is not None
    assert [c["method"] for c in json.loads(plan.body_for_node)] == ["eth_chainId", "net_version"]
    _, answers = roundtrip(request, rules)
    assert answers == [
        result(1, "r-eth_chainId"),
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32000, "message": "nope"}},
        result(3, "r-net_version"),
    ]
    assert plan.fired == ("r1",)


def test_when_every_call_is_answered_the_node_is_not_called() -> None:
    rules = [rule({"kind": "null_result"})]
    plan = rewrite_request(body([call("a", 1), call("b", 2)]), rules, random.Random())
    assert plan.body_for_node is None
    answer = rewrite_response(plan, None, None)
    assert json.loads(answer.body) == [result(1, None), result(2, None)]


def test_notifications_are_never_answered() -> None:
    notification = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    status, answers = roundtrip(body([notification, call("x", 9)]), [rule({"kind": "null_result"})])
    assert (status, answers) == (200, [result(9, None)])


def test_the_node_answers_are_merged_by_id_even_out_of_order() -> None:
    rules = [rule({"kind": "null_result", "methods": "b"})]
    plan = rewrite_request(body([call("a", 1), call("b", 2), call("c", 3)]), rules, random.Random())
    node = body([result(3, "c"), result(1, "a"), result(None, "stray")])
    merged = json.loads(rewrite_response(plan, 200, node).body)
    assert merged == [result(1, "a"), result(2, None), result(3, "c"), result(None, "stray")]


def test_a_node_answer_that_is_not_json_passes_through_unmerged() -> None:
    rules = [rule({"kind": "null_result", "methods": "b"})]
    plan = rewrite_request(body([call("a", 1), call("b", 2)]), rules, random.Random())
    assert rewrite_response(plan, 502, b"<html>bad gateway</html>").body == (
        b"<html>bad gateway</html>"
    )


def test_rules_apply_in_order_until_one_answers_and_delays_add_up() -> None:
    rules = [
        rule({"kind": "rpc_delay", "delay_ms": 100}, "d1"),
        rule({"kind": "rpc_delay", "delay_ms": 50}, "d2"),
        rule({"kind": "rpc_error", "code": 7}, "e"),
        rule({"kind": "null_result"}, "never"),
    ]
    plan = rewrite_request(body(call("x")), rules, random.Random())
    assert plan.delay_s == pytest.approx(0.15)
    assert plan.fired == ("d1", "d2", "e")
    assert plan.answers[0]["error"]["code"] == 7


def test_a_batch_waits_for_its_slowest_delayed_call_once_per_call() -> None:
    rules = [rule({"kind": "rpc_delay", "delay_ms": 100, "methods": "slow"})]
    plan = rewrite_request(body([call("slow", 1), call("fast", 2)]), rules, random.Random())
    assert plan.delay_s == pytest.approx(0.1)
    assert plan.body_for_node is not None


@given(st.integers(0, 2**32), st.floats(0, 500), st.floats(0, 500))
def test_jitter_stays_within_delay_plus_or_minus_jitter_and_never_negative(
    seed: int, delay_ms: float, jitter_ms: float
) -> None:
    rules = [rule({"kind": "rpc_delay", "delay_ms": delay_ms, "jitter_ms": jitter_ms})]
    plan = rewrite_request(body(call("x")), rules, random.Random(seed))
    assert max(delay_ms - jitter_ms, 0) / 1000 - 1e-9 <= plan.delay_s
    assert plan.delay_s <= (delay_ms + jitter_ms) / 1000 + 1e-9


@given(st.integers(0, 2**32))
def test_probability_zero_never_fires_and_one_always_does(seed: int) -> None:
    never = [rule({"kind": "null_result", "probability": 0})]
    always = [rule({"kind": "null_result", "probability": 1})]
    request = body([call("a", i) for i in range(5)])
    assert rewrite_request(request, never, random.Random(seed)).untouched
    assert len(rewrite_request(request, always, random.Random(seed)).answers) == 5


def test_probability_is_rolled_per_call() -> None:
    rules = [rule({"kind": "null_result", "probability": 0.5})]
    plan = rewrite_request(body([call("a", i) for i in range(400)]), rules, random.Random(1))
    assert 150 < len(plan.answers) < 250


# --- stale_head ------------------------------------------------------------------------


def test_stale_head_answers_block_number_itself_and_rewrites_latest() -> None:
    rules = [rule({"kind": "stale_head", "blocks": 3})]
    request = body(
        [
            call("eth_blockNumber", 1),
            call("eth_getBlockByNumber", 2, ["latest", False]),
            call("eth_getBalance", 3, ["0xabc"]),
            call("eth_getBalance", 4, ["0xabc", "0x5"]),
        ]
    )
    plan = rewrite_request(request, rules, random.Random(), head=100)
    assert plan.answers == {0: result(1, hex(97))}
    assert plan.body_for_node is not None
    assert [c["params"] for c in json.loads(plan.body_for_node)] == [
        [hex(97), False],
        ["0xabc", hex(97)],
        ["0xabc", "0x5"],
    ]
    assert plan.fired == ("r1", "r1", "r1")


def test_stale_head_never_goes_below_block_zero_and_needs_a_head() -> None:
    rules = [rule({"kind": "stale_head", "blocks": 10})]
    request = body(call("eth_blockNumber"))
    assert rewrite_request(request, rules, random.Random(), head=4).answers[0]["result"] == "0x0"
    assert rewrite_request(request, rules, random.Random(), head=None).untouched


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("eth_call", [{"to": "0x1"}], [{"to": "0x1"}, "0x5"]),
        ("eth_call", [{"to": "0x1"}, "latest"], [{"to": "0x1"}, "0x5"]),
        ("eth_call", [{"to": "0x1"}, "pending"], None),
        (
            "eth_getLogs",
            [{"address": "0x1"}],
            [{"address": "0x1", "fromBlock": "0x5", "toBlock": "0x5"}],
        ),
        ("eth_getLogs", [{"fromBlock": "0x1"}], [{"fromBlock": "0x1", "toBlock": "0x5"}]),
        ("eth_getLogs", [{"blockHash": "0xh"}], None),
        ("eth_getStorageAt", ["0x1", "0x0"], ["0x1", "0x0", "0x5"]),
        ("eth_chainId", [], None),
        ("eth_call", {"by": "name"}, None),
    ],
)
def test_latest_is_rewritten_where_it_is_read(method: str, params: Any, expected: Any) -> None:
    assert rewrite_latest(method, params, "0x5") == expected


# --- the other kinds ---------------------------------------------------------------------


def test_rate_limit_rpc_32005_answers_calls_over_budget_with_an_error() -> None:
    now = [0]
    buckets = TokenBuckets(lambda: now[0])
    limit = rule({"kind": "rate_limit", "budget_per_s": 2, "style": "rpc-32005"})
    results = []
    for i in range(4):
        plan = rewrite_request(
            body(call("a", i)), [limit], random.Random(), allow=lambda r: buckets.take(r, 1)
        )
        results.append(plan.answers.get(0, {}).get("error", {}).get("code"))
    assert results == [None, None, -32005, -32005]
    now[0] = 500_000_000  # half a second later: one token back
    plan = rewrite_request(
        body(call("a")), [limit], random.Random(), allow=lambda r: buckets.take(r, 1)
    )
    assert plan.untouched


def test_rate_limit_http429_refuses_the_whole_request_without_calling_the_node() -> None:
    limit = rule({"kind": "rate_limit", "budget_per_s": 0, "style": "http429", "methods": "b"})
    request = body([call("a", 1), call("b", 2)])
    plan = rewrite_request(request, [limit], random.Random(), allow=lambda r: False)
    assert plan.body_for_node is None
    answer = rewrite_response(plan, None, None)
    assert answer.status == 429
    assert [a["error"]["code"] for a in json.loads(answer.body)] == [-32005, -32005]


def test_token_buckets_are_per_rule_and_route_with_a_burst_of_one_second() -> None:
    now = [0]
    buckets = TokenBuckets(lambda: now[0])
    limit = rule({"kind": "rate_limit", "budget_per_s": 3})
    assert [buckets.take(limit, 1) for _ in range(4)] == [True, True, True, False]
    assert buckets.take(limit, 2)
    now[0] = 10**10
    assert [buckets.take(limit, 1) for _ in range(4)] == [True, True, True, False]


def test_wrong_id_changes_only_the_matching_answers_id() -> None:
    rules = [rule({"kind": "wrong_id", "methods": "a*"})]
    _, answers = roundtrip(body([call("ab", 5), call("b", 6), call("ac", "x")]), rules)
    assert [a["id"] for a in answers] == [6, 6, "x-wrong"]


def test_malformed_is_a_200_with_a_truncated_body() -> None:
    plan = rewrite_request(body(call("a")), [rule({"kind": "malformed"})], random.Random())
    node = body(result(1, "0x1234"))
    answer = rewrite_response(plan, 500, node)
    assert answer.status == 200
    assert node.startswith(answer.body) and len(answer.body) < len(node)
    with pytest.raises(ValueError):
        json.loads(answer.body)


def test_drop_keeps_the_body_and_says_where_to_cut() -> None:
    plan = rewrite_request(body(call("a")), [rule({"kind": "drop"})], random.Random())
    node = body(result(1, "0x1234"))
    answer = rewrite_response(plan, 200, node)
    assert answer.body == node
    assert answer.drop_after == len(node) // 2


@given(
    st.lists(st.from_regex(r"[a-z]{1,4}_[A-Za-z]{0,6}", fullmatch=True), min_size=1, max_size=4),
    st.sampled_from(["*", "eth_*", "e*_c?ll", "[ed]*", "net_version", "*_get*", "x"]),
)
def test_a_call_is_faulted_exactly_when_its_method_matches_the_glob(
    methods: list[str], glob: str
) -> None:
    rules = [rule({"kind": "null_result", "methods": glob})]
    request = body([call(m, i) for i, m in enumerate(methods)])
    plan = rewrite_request(request, rules, random.Random())
    assert sorted(plan.answers) == [
        i for i, m in enumerate(methods) if fnmatch.fnmatchcase(m, glob)
    ]
