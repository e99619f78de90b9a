"""The one exception hierarchy of the harness.

Every error a person can act on is a `HarnessError`; the CLI prints its message on one
line and exits 2 (`ConfigError`) or 1 (anything else). Messages name the problem, the
offending value and the fix.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 1


class ConfigError(HarnessError):
    """A user's input is wrong: names the field, the bad value and how to fix it."""

    exit_code = 2

    def __init__(self, field: str, value: object, fix: str) -> None:
        self.field = field
        self.value = value
        self.fix = fix
        super().__init__(f"{field}={value!r}: {fix}")


class BackendUnsupported(ConfigError):
    """The chosen stack backend cannot run what the spec asks for (a scenario skips)."""


class MissingBinaryError(ConfigError):
    """A program the harness needs is not installed."""

    def __init__(self, binary: str, how_to_get: str) -> None:
        super().__init__("binary", binary, f"not found on PATH; {how_to_get}")


class StackError(HarnessError):
    """The stack could not be started, became unhealthy, or could not be stopped."""


class SteadyStateError(StackError):
    """The stack did not reach (or left) its steady state."""
