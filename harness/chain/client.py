"""`ReplicatorClient`: the typed client of a running replicator's control API.

What faults use to pause a follower or hold it behind, and what the stack uses to wait
until every follower is on the source's head. Plain ``http.client``, one short connection
per call. A setting the replicator refuses raises the `ConfigError` it raised; an
unknown node or a replicator that does not answer raises `ReplicatorError`, saying what
to do.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlsplit

from harness.chain.delays import Delay
from harness.chain.status import NodeStatus, ReplicatorStatus
from harness.errors import ConfigError, HarnessError
from harness.helper_process import call_control_api

TIMEOUT_S = 2.0


class ReplicatorError(HarnessError):
    """The chain replicator did not answer, or answered something other than expected."""


class ReplicatorClient:
    """The control API at ``url`` (``http://127.0.0.1:PORT/``, as the ready line says)."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ConfigError("url", url, "use the replicator's control URL, http://HOST:PORT/")
        self.url = url
        self.timeout_s = timeout_s

    def status(self) -> ReplicatorStatus:
        status, doc = self._call("GET", "/status")
        self._expect(status, doc, "GET /status")
        return ReplicatorStatus.from_doc(doc)

    def node(self, name: str) -> NodeStatus:
        status, doc = self._call("GET", f"/nodes/{quote(name, safe='')}")
        self._expect(status, doc, f"GET /nodes/{name}")
        return NodeStatus.from_doc(name, doc)

    def set(
        self,
        name: str,
        *,
        paused: bool | None = None,
        lag_blocks: int | None = None,
        delay_ms: Delay | tuple[float, float] | str | None = None,
    ) -> NodeStatus:
        """Change node ``name``'s settings (None leaves one as it is); its status after.
        `ConfigError` for a value the replicator refuses."""
        body: dict[str, Any] = {}
        if paused is not None:
            body["paused"] = paused
        if lag_blocks is not None:
            body["lag_blocks"] = lag_blocks
        if isinstance(delay_ms, Delay):
            body["delay_ms"] = delay_ms.as_list()
        elif isinstance(delay_ms, tuple):
            body["delay_ms"] = list(delay_ms)
        elif delay_ms is not None:
            body["delay_ms"] = delay_ms
        status, doc = self._call("POST", f"/nodes/{quote(name, safe='')}", body)
        if status == 400 and isinstance(doc, dict) and "field" in doc:
            error = ConfigError(str(doc["field"]), doc.get("value"), str(doc.get("fix", "")))
            error.args = (str(doc.get("error", error)),)
            raise error
        self._expect(status, doc, f"POST /nodes/{name}")
        return NodeStatus.from_doc(name, doc)

    def healthy(self) -> bool:
        try:
            status, _ = self._call("GET", "/health")
        except ReplicatorError:
            return False
        return status == 200

    def wait_synced(self, timeout_s: float, *, poll_s: float = 0.02) -> ReplicatorStatus:
        """The status once every unpaused node is as close to the source's head (as the
        replicator last read it) as its ``lag_blocks`` allows, and on the same block when
        that is 0; `ReplicatorError` naming the laggards after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            laggards = [
                f"{n.name} at {n.head} ({n.last_error or 'no error'})"
                for n in status.nodes.values()
                if not n.paused
                and (
                    n.behind is None
                    or n.behind > n.lag_blocks
                    or (n.lag_blocks == 0 and n.hash != status.source.hash)
                )
            ]
            if status.source.head is not None and not laggards:
                return status
            if time.monotonic() > deadline:
                where = (
                    f"source at {status.source.head}" if status.source.head is not None
                    else f"source not read ({status.source.last_error})"
                )  # fmt: skip
                raise ReplicatorError(
                    f"followers not on the source's head after {timeout_s:g}s: {where}; "
                    f"behind: {', '.join(laggards) or 'none'}; see the replicator's log"
                )
            time.sleep(poll_s)

    def _call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        return call_control_api(
            self.url, method, path, payload, self.timeout_s,
            error=ReplicatorError, name="chain replicator control",
            hint="; is the replicator running (python -m harness.chain)?",
        )  # fmt: skip

    def _expect(self, status: int, doc: Any, what: str) -> None:
        if status != 200:
            message = doc.get("error", doc) if isinstance(doc, dict) else doc
            raise ReplicatorError(f"chain replicator {self.url}: {what}: HTTP {status}: {message}")
