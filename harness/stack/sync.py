"""Peer sync for nodes that have no peers: anvil dev chains do not sync from each other,
so a node that was paused, stalled or restarted would stay behind for good, and the stack
would never regain its steady state. This loop plays the peers' part: a node that is
mining again but two or more blocks behind the best head mines the missing blocks at once,
as a real client would sync the blocks it missed.

A node that stopped mining on purpose (the ``stall`` fault: its head stands still and
``anvil_getIntervalMining`` is 0) is left behind: a node that stopped syncing is exactly
what that fault injects. (anvil reports sub-second block times as 0 too, so a node whose
head moved since the last round counts as mining whatever it says.)
Each catch-up is reported as a ``synced`` event beside the supervisor's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.model import ComponentState, ProcessEvent

log = logging.getLogger(__name__)

# Independent dev chains mine at offsets within one block time of each other, so a node one
# block behind is normal jitter; catching that up would race the heads upward.
MIN_GAP_BLOCKS = 2


class PeerSync:
    """Keeps anvil nodes within a block of the best head; a context manager."""

    def __init__(
        self,
        nodes: Callable[[], tuple[ComponentState, ...]],
        block_time_s: float,
        emit: Callable[[ProcessEvent], None],
    ) -> None:
        self._nodes = nodes
        self._interval_s = min(max(block_time_s / 2, 0.1), 1.0)
        self._emit = emit
        self._last: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peer-sync", daemon=True)

    def __enter__(self) -> PeerSync:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.sync_once()
            except Exception:  # the loop must outlive any one node's odd answer
                log.exception("peer sync round failed")

    def sync_once(self) -> dict[str, int]:
        """One round: heads read, laggards that are mining caught up. Returns the blocks
        mined per node."""
        heads: dict[str, int] = {}
        nodes = {n.name: n for n in self._nodes()}
        for name, node in nodes.items():
            try:
                with RpcClient(node.url, timeout_s=0.3) as client:
                    heads[name] = client.block_number()
            except RpcFailure:
                continue  # down or paused: nothing to sync now
        if len(heads) < 2:
            self._last.update(heads)
            return {}
        last, self._last = self._last, dict(heads)
        best = max(heads.values())
        mined: dict[str, int] = {}
        for name, head in heads.items():
            missing = best - head
            if missing < MIN_GAP_BLOCKS:
                continue
            moved = name in last and head > last[name]
            try:
                with RpcClient(nodes[name].url, timeout_s=2.0) as client:
                    if not moved and not client.call("anvil_getIntervalMining", []):
                        continue  # mining stopped on purpose: the node stays stale
                    client.call("anvil_mine", [hex(missing)])
            except RpcFailure as exc:
                log.info("could not sync %s: %s", name, exc)
                continue
            mined[name] = missing
            log.info("%s synced %d blocks to the best head %d", name, missing, best)
            detail = f"mined {missing} blocks to reach the best head {best}"
            self._emit(
                ProcessEvent(time.monotonic_ns(), time.time(), name, "synced", detail=detail)
            )
        return mined
