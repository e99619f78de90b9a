"""The docker stack's process events, from ``docker events``: Docker's restart policy plays
the supervisor, and its event stream says when a container died and came back.

Docker stamps each event in wall-clock nanoseconds; they are moved onto the monotonic clock
(what every other timestamp of a run is on) by the offset between the two clocks now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.engine.client import connect
from harness.engine.labels import LABEL_COMPONENT, LABEL_RUN
from harness.stack.model import EventKind, ProcessEvent

log = logging.getLogger(__name__)

#: Docker's container actions, as the stack's event kinds (others are not process events).
KINDS: dict[str, EventKind] = {"start": "started", "die": "exited", "stop": "stopped"}


def to_event(raw: dict[str, Any], offset_ns: int) -> ProcessEvent | None:
    """One decoded ``docker events`` record as a `ProcessEvent`, or None if it is none."""
    kind = KINDS.get(str(raw.get("Action") or raw.get("status") or ""))
    if raw.get("Type") != "container" or kind is None:
        return None
    attrs = (raw.get("Actor") or {}).get("Attributes") or {}
    wall_ns = int(raw.get("timeNano") or int(raw.get("time", 0)) * 1_000_000_000)
    code = attrs.get("exitCode")
    return ProcessEvent(
        t_ns=wall_ns - offset_ns,
        wall_time=wall_ns / 1e9,
        component=attrs.get(LABEL_COMPONENT, attrs.get("name", "?")),
        kind=kind,
        returncode=int(code) if code is not None else None,
        detail=f"exited with status {code}" if code is not None else "",
    )


def clock_offset_ns() -> int:
    """wall - monotonic, in ns: subtract it from a wall-clock stamp to get a monotonic one."""
    return time.time_ns() - time.monotonic_ns()


class EventWatcher:
    """A thread reading the run's container events into ``on_event`` until closed."""

    def __init__(self, run_id: str, on_event: Callable[[ProcessEvent], None]) -> None:
        self.run_id = run_id
        self.on_event = on_event
        self._client = connect()
        self._stream = self._client.events(
            decode=True, filters={"type": "container", "label": f"{LABEL_RUN}={run_id}"}
        )
        self._thread = threading.Thread(
            target=self._loop, name=f"docker-events-{run_id}", daemon=True
        )
        self._closed = False

    def __enter__(self) -> EventWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        try:
            self._stream.close()
        except Exception:  # the stream's socket may already be gone with the daemon
            log.debug("closing the event stream", exc_info=True)
        self._client.close()
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        offset = clock_offset_ns()
        try:
            for raw in self._stream:
                event = to_event(raw, offset)
                if event is not None:
                    self.on_event(event)
        except Exception:
            if not self._closed:
                log.warning("docker events of run %s stopped", self.run_id, exc_info=True)
