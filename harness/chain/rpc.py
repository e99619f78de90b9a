"""JSON-RPC batches over `harness.jsonrpc.RpcClient`'s keep-alive connection.

The replicator reads the source in batches (many blocks, many raw transactions per
request) and sends one block's transactions to a follower in one batch. anvil runs a
batch's entries concurrently, so a batch may hold calls whose order does not matter, or
one block's sends (which anvil admitted in order in every trial), never several blocks.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from typing import Any

from harness.jsonrpc import (
    Outcome,
    RpcClient,
    RpcFailure,
    classify_exception,
    classify_http_status,
    classify_rpc_error,
)

Call = tuple[str, list[Any]]


class BatchClient(RpcClient):
    """An `RpcClient` that also sends batches; not thread-safe (one per thread)."""

    def __enter__(self) -> BatchClient:
        return self

    def batch_results(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's result, or the `RpcFailure` it answered, in call order. A failure of
        the whole request (transport, HTTP status, a body that is no batch) is raised."""
        if not calls:
            return []
        first = self._next_id
        self._next_id += len(calls)
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": first + i, "method": method, "params": params}
                for i, (method, params) in enumerate(calls)
            ]
        ).encode()
        try:
            conn = self._connection()
            conn.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            status = response.status
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RpcFailure(classify_exception(exc), f"{type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise RpcFailure(classify_http_status(status), f"HTTP {status}", status)
        try:
            docs = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise RpcFailure(Outcome.MALFORMED, f"body is not JSON: {payload[:80]!r}") from exc
        if not isinstance(docs, list):
            if isinstance(docs, dict) and docs.get("error") is not None:
                outcome, code = classify_rpc_error(docs["error"])
                raise RpcFailure(outcome, json.dumps(docs["error"])[:200], code)
            raise RpcFailure(Outcome.MALFORMED, f"a batch answered {payload[:80]!r}")
        by_id = {doc.get("id"): doc for doc in docs if isinstance(doc, dict)}
        results: list[Any] = []
        for i, (method, _) in enumerate(calls):
            doc = by_id.get(first + i)
            if doc is None:
                results.append(RpcFailure(Outcome.WRONG_ID, f"no answer to {method} in batch"))
            elif doc.get("error") is not None:
                outcome, code = classify_rpc_error(doc["error"])
                detail = f"{method}: {json.dumps(doc['error'])[:200]}"
                results.append(RpcFailure(outcome, detail, code))
            elif "result" not in doc:
                results.append(RpcFailure(Outcome.MALFORMED, f"{method}: no result nor error"))
            else:
                results.append(doc["result"])
        return results

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's result in call order; the first entry's `RpcFailure` is raised."""
        results = self.batch_results(calls)
        for result in results:
            if isinstance(result, RpcFailure):
                raise result
        return results
