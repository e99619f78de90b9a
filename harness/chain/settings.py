"""What may be changed on a follower while it runs, and the validation of a change.

Faults drive these through the control API: ``stall`` and ``peer_partition`` pause a
follower, ``lag`` holds it ``lag_blocks`` behind the source, and a delay makes it see
each block later than the source did (with jitter, so nodes differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.chain.delays import NO_DELAY, Delay, parse_delay
from harness.errors import ConfigError

MAX_LAG_BLOCKS = 1_000_000
FIELDS = ("paused", "lag_blocks", "delay_ms")


@dataclass(frozen=True)
class NodeSettings:
    paused: bool = False
    lag_blocks: int = 0
    delay: Delay = NO_DELAY


@dataclass(frozen=True)
class NodeChange:
    """A partial update: None leaves a setting as it is."""

    paused: bool | None = None
    lag_blocks: int | None = None
    delay: Delay | None = None

    def applied_to(self, settings: NodeSettings) -> NodeSettings:
        return replace(
            settings,
            paused=settings.paused if self.paused is None else self.paused,
            lag_blocks=settings.lag_blocks if self.lag_blocks is None else self.lag_blocks,
            delay=settings.delay if self.delay is None else self.delay,
        )


def parse_lag_blocks(value: object, field: str = "lag_blocks") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, "give a whole number of blocks, 0 or more")
    if not 0 <= value <= MAX_LAG_BLOCKS:
        raise ConfigError(field, value, f"choose 0 to {MAX_LAG_BLOCKS} blocks")
    return value


def parse_delay_value(value: object, field: str = "delay_ms") -> Delay:
    """``[fixed, jitter]`` in milliseconds, or the text forms of `parse_delay`."""
    if isinstance(value, str):
        return parse_delay(value, field)
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    ):
        try:
            return Delay(float(value[0]), float(value[1]))
        except ConfigError as exc:
            raise ConfigError(field, list(value), exc.fix) from None
    raise ConfigError(
        field, value, 'give [fixed, jitter] in milliseconds, e.g. [50, 250], or "50-300ms"'
    )


def parse_change(doc: Any) -> NodeChange:
    """The `NodeChange` a control request's JSON body asks for; `ConfigError` naming the
    first bad field."""
    if not isinstance(doc, dict):
        raise ConfigError("body", doc, f"send a JSON object with any of {', '.join(FIELDS)}")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], doc[unknown[0]], f"unknown; send any of {', '.join(FIELDS)}")
    paused = doc.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise ConfigError("paused", paused, "give true or false")
    lag = doc.get("lag_blocks")
    delay = doc.get("delay_ms")
    return NodeChange(
        paused=paused,
        lag_blocks=None if lag is None else parse_lag_blocks(lag),
        delay=None if delay is None else parse_delay_value(delay),
    )
