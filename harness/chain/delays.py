"""How long a follower waits before it replays a block: a fixed part and a uniform jitter.

Production nodes see a block at different moments ("node A has block N+1, node B not
yet"); a follower's delay makes that happen on the local stack. Written in three forms on
the command line and in the control API: ``50ms`` (fixed), ``50-300ms`` (uniform between
the two), ``50,250`` (fixed, jitter).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from harness.errors import ConfigError

#: The longest delay anyone means: ten minutes.
MAX_DELAY_MS = 600_000.0
FORMS = "write FIXEDms, LOW-HIGHms or FIXED,JITTER in milliseconds, e.g. 50ms, 50-300ms, 50,250"

_NUMBER = r"(\d+(?:\.\d+)?)"
_FIXED = re.compile(rf"{_NUMBER}\s*(?:ms)?")
_RANGE = re.compile(rf"{_NUMBER}\s*(?:ms)?\s*-\s*{_NUMBER}\s*(?:ms)?")
_PAIR = re.compile(rf"{_NUMBER}\s*(?:ms)?\s*,\s*{_NUMBER}\s*(?:ms)?")


@dataclass(frozen=True)
class Delay:
    """``fixed_ms`` plus a uniform draw from ``[0, jitter_ms]`` per block."""

    fixed_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        for field, value in (("fixed_ms", self.fixed_ms), ("jitter_ms", self.jitter_ms)):
            if not (math.isfinite(value) and 0 <= value <= MAX_DELAY_MS):
                raise ConfigError(
                    f"delay {field}", value, f"choose 0 to {MAX_DELAY_MS:g} milliseconds"
                )
        if self.fixed_ms + self.jitter_ms > MAX_DELAY_MS:
            raise ConfigError(
                "delay", self.text, f"fixed plus jitter must stay within {MAX_DELAY_MS:g} ms"
            )

    def draw_ns(self, rng: random.Random) -> int:
        """One block's delay in nanoseconds."""
        jitter = rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return round((self.fixed_ms + jitter) * 1e6)

    @property
    def text(self) -> str:
        """The ``FIXED,JITTER`` form, which `parse_delay` reads back to an equal `Delay`."""
        return f"{_ms(self.fixed_ms)},{_ms(self.jitter_ms)}"

    def as_list(self) -> list[float]:
        """``[fixed, jitter]`` as the control API shows it."""
        return [self.fixed_ms, self.jitter_ms]


NO_DELAY = Delay()


def _ms(value: float) -> str:
    """``value`` exactly, without an exponent (the forms have none)."""
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0").rstrip(".")


def parse_delay(text: str, field: str = "delay_ms") -> Delay:
    """The `Delay` that ``text`` writes; a `ConfigError` naming ``field``, the text and the
    forms otherwise. A range ``LOW-HIGH`` needs LOW <= HIGH."""
    stripped = text.strip().lower() if isinstance(text, str) else ""
    try:
        if match := _FIXED.fullmatch(stripped):
            return Delay(float(match[1]))
        if match := _RANGE.fullmatch(stripped):
            low, high = float(match[1]), float(match[2])
            if high < low:
                raise ConfigError(field, text, f"the range's high end is below its low; {FORMS}")
            return Delay(low, high - low)
        if match := _PAIR.fullmatch(stripped):
            return Delay(float(match[1]), float(match[2]))
    except ConfigError as exc:
        if exc.field == field:
            raise
        raise ConfigError(field, text, exc.fix) from None
    raise ConfigError(field, text, FORMS)
