"""JSON-RPC faults: what the node is asked and what the client is answered.

Pure functions, no I/O: `rewrite_request` decides, call by call (element-wise in a batch),
which rules fire and returns a `RequestPlan` (the body for the node, or None when the node
is not called, plus the answers the proxy makes up); `rewrite_response` merges the node's
answer with the plan into the `Answer` the client gets. The server supplies the random
source, the node's head (for ``stale_head``) and the token buckets (for ``rate_limit``).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from harness.proxy.rules import RPC_KINDS, Rule

RATE_LIMIT_CODE = -32005
RATE_LIMIT_MESSAGE = "rate limit exceeded"
_NO_ID = object()  # a notification: no "id" member, so no answer
_NO_ANSWERS: Mapping[int, dict[str, Any]] = MappingProxyType({})

# Position of the block tag in params, for methods whose tag may be omitted ("latest").
BLOCK_TAG_INDEX = {
    "eth_getBalance": 1,
    "eth_getCode": 1,
    "eth_getTransactionCount": 1,
    "eth_getStorageAt": 2,
    "eth_call": 1,
    "eth_estimateGas": 1,
    "eth_getProof": 2,
    "eth_getBlockByNumber": 0,
    "eth_getBlockTransactionCountByNumber": 0,
    "eth_getUncleCountByNumber": 0,
    "eth_getBlockReceipts": 0,
    "eth_getTransactionByBlockNumberAndIndex": 0,
    "eth_getUncleByBlockNumberAndIndex": 0,
    "eth_feeHistory": 1,
}
_FILTER_METHODS = frozenset({"eth_getLogs", "eth_newFilter"})


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def error_answer(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class RequestPlan(NamedTuple):
    """What to do with one HTTP request, decided before the node is called.

    (A named tuple, not a frozen dataclass: one is made per request, at a fifth of the cost.)
    """

    body_for_node: bytes | None  # None: the node is not called
    answers: Mapping[int, dict[str, Any]] = _NO_ANSWERS  # by element index
    batch: bool = False
    ids: tuple[Any, ...] = ()  # per element; _NO_ID for notifications
    status: int = 200  # 429 when the whole request is refused
    delay_s: float = 0.0
    drop: bool = False
    malformed: bool = False
    wrong_id: frozenset[int] = frozenset()
    fired: tuple[str, ...] = ()  # ids of the rules that took effect, once per call

    @property
    def untouched(self) -> bool:
        """No rule fired: the exchange is a pass-through."""
        return not self.fired


class Answer(NamedTuple):
    """What the client gets: status, body, and where to cut the connection (``drop``)."""

    status: int
    body: bytes
    drop_after: int | None = None  # bytes of the body sent before the connection closes


def _jitter(rng: random.Random, base_ms: float, jitter_ms: float) -> float:
    """Toxiproxy's jitter: ``base ± jitter`` uniformly, never negative; in seconds."""
    if jitter_ms > 0:
        base_ms += rng.uniform(-jitter_ms, jitter_ms)
    return max(base_ms, 0.0) / 1000.0


def _fires(rule: Rule, rng: random.Random) -> bool:
    p = rule.probability
    return p >= 1.0 or (p > 0.0 and rng.random() < p)


def rewrite_latest(method: str, params: Any, block: str) -> Any | None:
    """``params`` with the "latest" block tag (explicit or omitted) replaced by ``block``,
    or None when the call does not read "latest"."""
    if isinstance(params, dict):  # by-name params are left alone
        return None
    params = list(params) if isinstance(params, list) else []
    changed = False
    if method in _FILTER_METHODS and params and isinstance(params[0], dict):
        query = dict(params[0])
        if "blockHash" not in query:
            for key in ("fromBlock", "toBlock"):
                if query.get(key, "latest") == "latest":
                    query[key] = block
                    changed = True
        params[0] = query
    index = BLOCK_TAG_INDEX.get(method)
    if index is not None and len(params) == index:
        params.append(block)
        changed = True
    for i, value in enumerate(params):
        if value == "latest":
            params[i] = block
            changed = True
    return params if changed else None


def rewrite_request(
    body: bytes,
    rules: Sequence[Rule],
    rng: random.Random,
    *,
    head: int | None = None,
    allow: Callable[[Rule], bool] = lambda rule: True,
) -> RequestPlan:
    """The plan for one request body under ``rules`` (only JSON-RPC kinds are read).

    Every call takes the matching rules in order until one answers it in place of the node
    (rpc_error, null_result, rate_limit over budget, stale_head on eth_blockNumber); delays
    add up. ``head`` is the node's head block for stale_head (no head, no stale_head);
    ``allow(rule)`` takes one token from the rule's budget and says whether there was one.
    """
    rpc_rules = [r for r in rules if r.kind in RPC_KINDS]
    if not rpc_rules or not _may_match(body, rpc_rules):
        return RequestPlan(body)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return RequestPlan(body)
    batch = isinstance(doc, list)
    calls: list[Any] = doc if batch else [doc]
    if not calls:
        return RequestPlan(body)
    answers: dict[int, dict[str, Any]] = {}
    forwarded: list[Any] = []
    fired: list[str] = []
    wrong_id: set[int] = set()
    ids: list[Any] = []
    delay_s = 0.0
    drop = malformed = refused = rewritten = False
    for index, call in enumerate(calls):
        method = call.get("method") if isinstance(call, dict) else None
        request_id = call.get("id", _NO_ID) if isinstance(call, dict) else None
        ids.append(request_id)
        if not isinstance(method, str):
            forwarded.append(call)
            continue
        answer: dict[str, Any] | None = None
        for rule in rpc_rules:
            if not rule.matches_method(method):
                continue
            kind = rule.kind
            if kind == "stale_head":
                if head is None:
                    continue
                block = max(head - int(rule.num("blocks")), 0)
                if method == "eth_blockNumber":
                    if not _fires(rule, rng):
                        continue
                    answer = {"jsonrpc": "2.0", "id": request_id, "result": hex(block)}
                else:
                    params = rewrite_latest(method, call.get("params"), hex(block))
                    if params is None or not _fires(rule, rng):
                        continue
                    call = {**call, "params": params}
                    rewritten = True
                fired.append(rule.id)
                if answer is not None:
                    break
                continue
            if not _fires(rule, rng):
                continue
            if kind == "rate_limit":
                if allow(rule):
                    continue
                answer = error_answer(request_id, RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE)
                refused = refused or rule.text("style") == "http429"
            elif kind == "rpc_error":
                answer = error_answer(request_id, int(rule.num("code")), rule.text("message"))
            elif kind == "null_result":
                answer = {"jsonrpc": "2.0", "id": request_id, "result": None}
            elif kind == "rpc_delay":
                delay_s += _jitter(rng, rule.num("delay_ms"), rule.num("jitter_ms"))
            elif kind == "drop":
                drop = True
            elif kind == "malformed":
                malformed = True
            elif kind == "wrong_id":
                wrong_id.add(index)
            fired.append(rule.id)
            if answer is not None:
                break
        if answer is None:
            forwarded.append(call)
        elif request_id is not _NO_ID:
            answers[index] = answer
    if not fired:
        return RequestPlan(body)
    if refused:  # HTTP 429: the whole request is refused, the node is not called
        answers = {
            i: error_answer(request_id, RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE)
            for i, request_id in enumerate(ids)
            if request_id is not _NO_ID
        }
        forwarded = []
    if not forwarded:
        body_for_node = None
    elif len(forwarded) == len(calls) and not rewritten:
        body_for_node = body
    else:
        body_for_node = dumps(forwarded if batch else forwarded[0])
    return RequestPlan(
        body_for_node,
        answers,
        batch,
        tuple(ids),
        429 if refused else 200,
        delay_s,
        drop and not refused,
        malformed and not refused,
        frozenset(wrong_id),
        tuple(fired),
    )


@functools.lru_cache(maxsize=256)
def _literal_prefix(glob: str) -> bytes:
    """What every method the glob matches starts with (up to its first wildcard)."""
    for i, char in enumerate(glob):
        if char in "*?[":
            return glob[:i].encode()
    return glob.encode()


def _may_match(body: bytes, rules: Sequence[Rule]) -> bool:
    """Whether some rule's method glob could match a method in ``body``, without parsing
    it: a body without a rule's literal method prefix cannot hold a method it matches.
    (A client that escapes plain letters in method names, "\\u0065th_call", escapes this.)"""
    return any(not (prefix := _literal_prefix(rule.methods)) or prefix in body for rule in rules)


def _other_id(request_id: Any) -> Any:
    """A different id: off by one for numbers, suffixed for strings."""
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return request_id + 1
    if isinstance(request_id, str):
        return request_id + "-wrong"
    return 1


def rewrite_response(plan: RequestPlan, status: int | None, body: bytes | None) -> Answer:
    """The client's answer: the node's (``status``, ``body``; None when it was not called)
    merged with the plan's own answers, ids and truncation. A node body that is not
    JSON-RPC is passed through as it is: nothing can be merged into it."""
    if body is None or status is None:
        status = plan.status
        out = _with_wrong_ids(plan, [plan.answers[i] for i in sorted(plan.answers)])
    elif not plan.answers and not plan.wrong_id:
        out = body
    else:
        try:
            node_doc = json.loads(body)
        except (ValueError, RecursionError):
            node_doc = None
        if node_doc is None or (plan.batch and not isinstance(node_doc, list)):
            out = body
        else:
            out = _with_wrong_ids(plan, _merge(plan, node_doc if plan.batch else [node_doc]))
    if plan.malformed:  # any proper prefix of a JSON object or array is not JSON
        return Answer(200, out[: len(out) // 2] if len(out) > 1 else b"{")
    if plan.drop:
        return Answer(status, out, len(out) // 2)
    return Answer(status, out)


def _id_key(request_id: Any) -> Any:
    """A hashable key equal for equal JSON ids (1 and 1.0 alike, "1" apart)."""
    if isinstance(request_id, str):
        return ("s", request_id)
    if isinstance(request_id, int | float) and not isinstance(request_id, bool):
        return ("n", request_id)
    return ("j", json.dumps(request_id, sort_keys=True))


def _merge(plan: RequestPlan, node_answers: list[Any]) -> list[Any]:
    """Answers in request order: the plan's own, then the node's matched by id; node
    answers that match no request (e.g. an error with id null) go last."""
    by_id: dict[Any, list[Any]] = {}
    for answer in node_answers:
        key = _id_key(answer.get("id")) if isinstance(answer, dict) else "?"
        by_id.setdefault(key, []).append(answer)
    merged: list[Any] = []
    for index, request_id in enumerate(plan.ids):
        if index in plan.answers:
            merged.append(plan.answers[index])
        elif request_id is not _NO_ID:
            queue = by_id.get(_id_key(request_id))
            if queue:
                merged.append(queue.pop(0))
    merged.extend(answer for queue in by_id.values() for answer in queue)
    return merged


def _with_wrong_ids(plan: RequestPlan, merged: list[Any]) -> bytes:
    if plan.wrong_id:
        wrong = {_id_key(plan.ids[i]) for i in plan.wrong_id if plan.ids[i] is not _NO_ID}
        merged = [
            {**a, "id": _other_id(a.get("id"))}
            if isinstance(a, dict) and _id_key(a.get("id")) in wrong
            else a
            for a in merged
        ]
    if not merged:
        return b""
    return dumps(merged if plan.batch else merged[0])


class TokenBuckets:
    """One token bucket per (rule, route) for ``rate_limit``: ``budget_per_s`` tokens a
    second, a burst of one second's budget (at least one token when the budget is not 0)."""

    def __init__(self, clock_ns: Callable[[], int]) -> None:
        self._clock_ns = clock_ns
        self._buckets: dict[tuple[str, int], tuple[float, int]] = {}

    def take(self, rule: Rule, route: int) -> bool:
        rate = rule.num("budget_per_s")
        capacity = max(rate, 1.0) if rate > 0 else 0.0
        now = self._clock_ns()
        key = (rule.id, route)
        tokens, then = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * rate / 1e9)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def forget(self, rule_id: str) -> None:
        for key in [k for k in self._buckets if k[0] == rule_id]:
            del self._buckets[key]
