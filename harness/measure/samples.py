"""What the probes observe, as plain data: a probe's answer, HAProxy changing its mind.

Kept apart from the prober (`harness.measure.probes`, which needs the JSON-RPC client and
HAProxy's runtime API) so that the figures, the reports and `harness compare` read samples
without importing the instruments.
"""

from __future__ import annotations

from dataclasses import dataclass

FRONTEND = "frontend"


@dataclass(frozen=True)
class ProbeSample:
    """One probe: when it was due, how long until it was answered, and how."""

    target: str  # "frontend" or a node name
    intended_ns: int  # time.monotonic_ns() the probe was scheduled for
    latency_us: float  # from intended_ns to the answer (or the failure)
    outcome: str  # an Outcome value
    head: int | None = None


@dataclass(frozen=True)
class ServerTransition:
    """HAProxy changed its mind about a server (seen by polling the runtime API)."""

    t_ns: int
    server: str
    status: str
    check_status: str
