"""Transport faults (Toxiproxy's toxics) as a plan for delivering one flow of bytes.

A flow is one request on its way to the node ("upstream") or one response on its way to
the client ("downstream"). `plan_delivery` turns the rules that fire into a `Delivery`:
a delay, the pieces to write and the pause before each, where to cut, and whether the
flow is held (timeout) or reset (reset_peer). The server carries the plan out; this module
does no I/O. Toxicity is rolled per flow, except limit_data, which like Toxiproxy counts
bytes per client connection and rolls once per connection.
"""

from __future__ import annotations

import random
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from harness.proxy.rules import Rule

BANDWIDTH_TICK_S = 0.1  # Toxiproxy's bandwidth toxic sends every 100 ms


@dataclass(frozen=True)
class Delivery:
    """How one flow of ``size`` bytes is delivered."""

    delay_s: float = 0.0  # before the first byte (latency)
    pieces: tuple[tuple[int, float], ...] = ()  # (end offset, pause before it in s); () = one
    limit: int | None = None  # bytes passed before the connection is closed (limit_data)
    hold: Rule | None = None  # timeout: nothing passes until it expires or the rule goes
    reset: Rule | None = None  # reset_peer: nothing passes; RST after its timeout
    fired: tuple[str, ...] = ()

    @property
    def plain(self) -> bool:
        return not self.fired


PLAIN = Delivery()


def _fires(rule: Rule, rng: random.Random) -> bool:
    p = rule.probability
    return p >= 1.0 or (p > 0.0 and rng.random() < p)


def roll(
    rules: Sequence[Rule], rng: random.Random, sticky: MutableMapping[str, bool]
) -> tuple[Rule, ...]:
    """The rules whose toxicity roll fires for one flow (limit_data: once per connection,
    kept in ``sticky``), so that a flow no rule touches can be passed through unbuffered."""
    fired = []
    for rule in rules:
        if rule.kind == "limit_data":
            if rule.id not in sticky:
                sticky[rule.id] = _fires(rule, rng)
            if sticky[rule.id]:
                fired.append(rule)
        elif _fires(rule, rng):
            fired.append(rule)
    return tuple(fired)


def plan_delivery(
    size: int,
    rules: Sequence[Rule],
    rng: random.Random,
    *,
    sent: MutableMapping[str, int] | None = None,
    sticky: MutableMapping[str, bool] | None = None,
    rolled: bool = False,
) -> Delivery:
    """The delivery of ``size`` bytes under ``rules`` (transport rules of this flow's stream).

    ``sent`` counts the bytes each limit_data rule has let through on this connection and
    ``sticky`` keeps its once-per-connection toxicity roll; both belong to the connection.
    ``rolled``: the rules come from `roll` and all fire.
    """
    if not rules:
        return PLAIN
    sent = {} if sent is None else sent
    sticky = {} if sticky is None else sticky
    if not rolled:
        rules = roll(rules, rng, sticky)
    fired: list[str] = []
    delay_s = 0.0
    limit: int | None = None
    hold: Rule | None = None
    reset: Rule | None = None
    slicer: Rule | None = None
    rate_kb_s = 0.0
    for rule in rules:
        kind = rule.kind
        if kind == "limit_data":
            left = max(int(rule.num("bytes")) - sent.get(rule.id, 0), 0)
            if left > size:  # fits: counted, not (yet) cut
                sent[rule.id] = sent.get(rule.id, 0) + size
                continue
            limit = left if limit is None else min(limit, left)
            sent[rule.id] = int(rule.num("bytes"))
        elif kind == "slow_close":
            continue
        elif kind == "timeout":
            hold = hold or rule
        elif kind == "reset_peer":
            reset = reset or rule
        elif kind == "latency":
            jitter = rule.num("jitter")
            latency = rule.num("latency")
            if jitter > 0:
                latency += rng.uniform(-jitter, jitter)
            delay_s += max(latency, 0.0) / 1000.0
        elif kind == "slicer":
            slicer = slicer or rule
        elif kind == "bandwidth":
            rate_kb_s = min(rate_kb_s, rule.num("rate")) if rate_kb_s else rule.num("rate")
        fired.append(rule.id)
    if not fired:
        return PLAIN
    end = size if limit is None else min(limit, size)
    pieces = _pieces(end, slicer, rate_kb_s, rng)
    return Delivery(delay_s, pieces, limit, hold, reset, tuple(fired))


def _pieces(
    size: int, slicer: Rule | None, rate_kb_s: float, rng: random.Random
) -> tuple[tuple[int, float], ...]:
    """(end offset, pause before) for each write; () when the flow goes in one write."""
    if slicer is None and not rate_kb_s:
        return ()
    ends: list[tuple[int, float]] = []
    if slicer is not None:
        average = int(slicer.num("average_size"))
        variation = min(int(slicer.num("size_variation")), average - 1)
        pause_s = slicer.num("delay") / 1e6
        pos = 0
        while pos < size:
            piece = average + (rng.randint(-variation, variation) if variation > 0 else 0)
            pos = min(pos + piece, size)
            ends.append((pos, pause_s if ends else 0.0))
    else:
        ends.append((size, 0.0))
    if not rate_kb_s:
        return tuple(ends)
    # Bandwidth: no write carries more than a tick's worth, each waits for its bytes' time.
    bytes_per_s = rate_kb_s * 1000.0
    tick = max(int(bytes_per_s * BANDWIDTH_TICK_S), 1)
    paced: list[tuple[int, float]] = []
    start = 0
    for end, pause_s in ends:
        while start < end:
            stop = min(start + tick, end)
            paced.append((stop, pause_s + (stop - start) / bytes_per_s))
            pause_s = 0.0
            start = stop
    return tuple(paced)
