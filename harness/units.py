"""Parsing of the quantities people type: durations ("30s", "500ms", "2m"), sizes in MiB
("512m", "2g") and CPUs ("0.5")."""

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


_SIZE = re.compile(r"^\s*(\d+)\s*(m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_CPUS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*$")


def parse_size_mb(text: str | int, field: str = "size") -> int:
    """MiB in ``text`` ("512", "512m", "512MiB", "2g": M and G are binary, as in Docker's
    --memory); `ConfigError` naming ``field`` if it is malformed."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(field, text, "write a size in MiB such as 512, 512m or 2g")
    unit = (match.group(2) or "m").lower()
    return int(match.group(1)) * (1024 if unit.startswith("g") else 1)


def parse_cpus(text: str | float, field: str = "cpus") -> float:
    """CPUs in ``text`` ("0.5", "2", "1.25", as in Docker's --cpus); `ConfigError` naming
    ``field`` if it is malformed."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _CPUS.match(str(text))
    if not match:
        raise ConfigError(field, text, "write a number of CPUs such as 0.5, 1 or 1.5")
    return float(match.group(1))
