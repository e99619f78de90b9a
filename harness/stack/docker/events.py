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


def _action(raw: dict[str, Any]) -> str:
    return str(raw.get("Action") or raw.get("status") or "")


def _component(raw: dict[str, Any]) -> str:
    attrs = (raw.get("Actor") or {}).get("Attributes") or {}
    return str(attrs.get(LABEL_COMPONENT, attrs.get("name", "?")))


def to_event(raw: dict[str, Any], offset_ns: int, oom_killed: bool = False) -> ProcessEvent | None:
    """One decoded ``docker events`` record as a `ProcessEvent`, or None if it is none.
    ``oom_killed``: Docker said "oom" for the container before it died (its memory cgroup's
    OOM killer), which the exit's detail then says."""
    kind = KINDS.get(_action(raw))
    if raw.get("Type") != "container" or kind is None:
        return None
    attrs = (raw.get("Actor") or {}).get("Attributes") or {}
    wall_ns = int(raw.get("timeNano") or int(raw.get("time", 0)) * 1_000_000_000)
    code = attrs.get("exitCode")
    detail = f"exited with status {code}" if code is not None else ""
    if kind == "exited" and oom_killed:
        detail += " (OOM-killed: over the container's memory limit)"
    return ProcessEvent(
        t_ns=wall_ns - offset_ns,
        wall_time=wall_ns / 1e9,
        component=_component(raw),
        kind=kind,
        returncode=int(code) if code is not None else None,
        detail=detail,
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
        oom: set[str] = set()  # components Docker said "oom" for, until they die
        try:
            for raw in self._stream:
                if _action(raw) == "oom":
                    oom.add(_component(raw))
                    continue
                event = to_event(raw, offset, oom_killed=_component(raw) in oom)
                if event is not None:
                    if event.kind == "exited":
                        oom.discard(event.component)
                    self.on_event(event)
        except Exception:
            if not self._closed:
                log.warning("docker events of run %s stopped", self.run_id, exc_info=True)
