"""Fault kinds by name, and building one from untyped input (CLI options, spec files)."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.errors import ConfigError
from harness.faults.fault import Fault
from harness.stack.model import Stack

FAULTS: dict[str, type[Fault]] = {}
_BASE_FIELDS = {f.name for f in dataclasses.fields(Fault)}


def register(cls: type[Fault]) -> type[Fault]:
    FAULTS[cls.kind] = cls
    return cls


def parameters(kind: str) -> dict[str, dataclasses.Field[Any]]:
    """The parameters a fault kind takes, beyond stack, target and seed."""
    return {
        f.name: f
        for f in dataclasses.fields(fault_class(kind))
        if f.name not in _BASE_FIELDS and f.init
    }


def fault_class(kind: str) -> type[Fault]:
    try:
        return FAULTS[kind]
    except KeyError:
        raise ConfigError(
            "fault", kind, f"unknown fault type; choose one of: {', '.join(sorted(FAULTS))}"
        ) from None


def _convert(kind: str, name: str, field: dataclasses.Field[Any], raw: Any) -> Any:
    wanted = field.type if isinstance(field.type, str) else field.type.__name__
    if not isinstance(raw, str):
        return raw
    try:
        if wanted == "float":
            return float(raw)
        if wanted == "int":
            return int(raw)
        if wanted == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
    except ValueError:
        raise ConfigError(f"{kind}.{name}", raw, f"must be a {wanted}") from None
    return raw


def make_fault(kind: str, stack: Stack, target: str, seed: int = 0, **raw: Any) -> Fault:
    """Build a fault of ``kind``; `ConfigError` for an unknown kind, parameter or value."""
    cls = fault_class(kind)
    known = parameters(kind)
    # Other names a kind answers to (Toxiproxy's knobs for its toxics: toxicity, latency).
    aliases: dict[str, str] = getattr(cls, "param_aliases", {})
    for alias, name in aliases.items():
        if alias in raw:
            if name in raw:
                raise ConfigError(
                    f"{kind} parameter", alias, f"give {name} or {alias} (the same knob), not both"
                )
            raw[name] = raw.pop(alias)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        choices = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"{kind} parameter", unknown[0], f"unknown; {kind} takes: {choices}")
    values = {name: _convert(kind, name, known[name], value) for name, value in raw.items()}
    return cls(stack=stack, target=target, seed=seed, **values)  # type: ignore[call-arg]
