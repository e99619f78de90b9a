"""Parsing of the quantities people type: durations ("30s", "500ms", "2m")."""

from __future__ import annotations

import math
import re

from harness.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|m|h)?\s*$")
_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION_S = 24 * 3600.0


def parse_duration_s(text: str, field: str = "duration") -> float:
    """Seconds in ``text`` ("30s", "500ms", "2m", "1.5"); `ConfigError` if absurd or malformed."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(field, text, "write a positive duration such as 30s, 500ms or 2m")
    seconds = float(match.group(1)) * _SCALE[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION_S:
        raise ConfigError(field, text, "must be more than 0 and at most 24h")
    return seconds
