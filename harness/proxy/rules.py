"""Fault rules of the proxy: what a rule is and how one is read from JSON.

A rule arrives at the control API as a JSON object, is validated here into a frozen `Rule`
(or refused with a `ConfigError` naming the field), and is then only read: by the transport
toxics (`harness.proxy.toxics`) and by the JSON-RPC rewriting (`harness.proxy.rpc`).
Transport kinds keep Toxiproxy's names and knobs; ``probability`` is Toxiproxy's toxicity.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from harness.errors import ConfigError

Scalar = int | float | str
Stream = Literal["upstream", "downstream"]

# name -> (type, required, default); "ms"/"us"/"bytes"/... only document the unit.
_NUM = "number"
_INT = "integer"
_STR = "string"


@dataclass(frozen=True)
class _Param:
    type: str
    required: bool
    default: Scalar | None = None
    minimum: float = 0.0
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""


_TRANSPORT_PARAMS: dict[str, dict[str, _Param]] = {
    "latency": {
        "latency": _Param(_NUM, True, unit="ms"),
        "jitter": _Param(_NUM, False, 0, unit="ms"),
    },
    "bandwidth": {"rate": _Param(_NUM, True, minimum=0, exclusive_minimum=True, unit="KB/s")},
    "slow_close": {"delay": _Param(_NUM, True, unit="ms")},
    "timeout": {"timeout": _Param(_NUM, True, unit="ms")},
    "reset_peer": {"timeout": _Param(_NUM, False, 0, unit="ms")},
    "slicer": {
        "average_size": _Param(_INT, True, minimum=1, unit="bytes"),
        "size_variation": _Param(_INT, False, 0, unit="bytes"),
        "delay": _Param(_NUM, False, 0, unit="us"),
    },
    "limit_data": {"bytes": _Param(_INT, True, unit="bytes")},
}

_RPC_PARAMS: dict[str, dict[str, _Param]] = {
    "rpc_error": {
        "code": _Param(_INT, True, minimum=-math.inf),
        "message": _Param(_STR, False, "injected by the harness fault proxy"),
    },
    "rpc_delay": {
        "delay_ms": _Param(_NUM, True, unit="ms"),
        "jitter_ms": _Param(_NUM, False, 0, unit="ms"),
    },
    "stale_head": {"blocks": _Param(_INT, True, unit="blocks")},
    "null_result": {},
    "rate_limit": {
        "budget_per_s": _Param(_NUM, True, unit="calls/s"),
        "style": _Param(_STR, False, "http429", choices=("http429", "rpc-32005")),
    },
    "drop": {},
    "malformed": {},
    "wrong_id": {},
}

TRANSPORT_KINDS: frozenset[str] = frozenset(_TRANSPORT_PARAMS)
RPC_KINDS: frozenset[str] = frozenset(_RPC_PARAMS)
KINDS: frozenset[str] = TRANSPORT_KINDS | RPC_KINDS
_PARAMS = {**_TRANSPORT_PARAMS, **_RPC_PARAMS}
_COMMON = ("route", "kind", "probability", "methods", "stream")
MAX_PORT = 65535


@dataclass(frozen=True)
class Rule:
    """One validated fault rule; ``route`` None means every route ("*")."""

    kind: str
    route: int | None = None
    probability: float = 1.0
    methods: str = "*"
    stream: Stream = "downstream"
    params: Mapping[str, Scalar] = field(default_factory=lambda: MappingProxyType({}))
    id: str = ""

    @property
    def is_transport(self) -> bool:
        return self.kind in TRANSPORT_KINDS

    def num(self, name: str) -> float:
        """A numeric parameter (its unit is in the kind's table: ms, us, bytes, KB/s)."""
        value = self.params[name]
        assert not isinstance(value, str)
        return float(value)

    def text(self, name: str) -> str:
        return str(self.params[name])

    def applies_to(self, route: int) -> bool:
        return self.route is None or self.route == route

    def matches_method(self, method: str) -> bool:
        return method_pattern(self.methods).match(method) is not None

    def to_doc(self) -> dict[str, Any]:
        """The JSON form, defaults filled in, as ``GET /rules`` shows it."""
        doc: dict[str, Any] = {"id": self.id} if self.id else {}
        doc.update(
            route="*" if self.route is None else self.route,
            kind=self.kind,
            probability=self.probability,
            methods=self.methods,
            stream=self.stream,
        )
        doc.update(self.params)
        return doc


@functools.lru_cache(maxsize=256)
def method_pattern(glob: str) -> re.Pattern[str]:
    """The compiled, case-sensitive form of a method glob (fnmatch syntax)."""
    return re.compile(fnmatch.translate(glob))


def parse_rule(doc: object) -> Rule:
    """A `Rule` from its JSON object; `ConfigError` naming the first bad field."""
    if not isinstance(doc, dict):
        raise ConfigError("rule", doc, "send one JSON object such as {'kind': 'latency', ...}")
    kind = doc.get("kind")
    if kind is None:
        raise ConfigError("kind", None, f"is required; one of {', '.join(sorted(KINDS))}")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError("kind", kind, f"unknown kind; use one of {', '.join(sorted(KINDS))}")
    spec = _PARAMS[kind]
    for name in doc:
        if name not in _COMMON and name not in spec:
            known = ", ".join([*_COMMON, *spec])
            raise ConfigError(name, doc[name], f"is not a field of kind {kind}; fields: {known}")
    params: dict[str, Scalar] = {}
    for name, param in spec.items():
        if name in doc:
            params[name] = _parse_param(name, doc[name], param)
        elif param.required:
            raise ConfigError(name, None, f"is required for kind {kind}{_unit(param)}")
        else:
            assert param.default is not None
            params[name] = param.default
    return Rule(
        kind=kind,
        route=_parse_route(doc.get("route", "*")),
        probability=_parse_probability(doc.get("probability", 1.0)),
        methods=_parse_methods(doc.get("methods", "*")),
        stream=_parse_stream(doc.get("stream", "downstream")),
        params=MappingProxyType(params),
    )


def _unit(param: _Param) -> str:
    return f" (in {param.unit})" if param.unit else ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_param(name: str, value: object, param: _Param) -> Scalar:
    if param.type == _STR:
        if not isinstance(value, str):
            raise ConfigError(name, value, "must be a string")
        if param.choices and value not in param.choices:
            raise ConfigError(name, value, f"use one of {', '.join(param.choices)}")
        return value
    if param.type == _INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(name, value, f"must be a whole number{_unit(param)}")
    elif not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ConfigError(name, value, f"must be a finite number{_unit(param)}")
    assert isinstance(value, int | float)
    too_small = value <= param.minimum if param.exclusive_minimum else value < param.minimum
    if too_small:
        bound = "more than" if param.exclusive_minimum else "at least"
        raise ConfigError(name, value, f"must be {bound} {param.minimum:g}{_unit(param)}")
    return value


def _parse_route(value: object) -> int | None:
    if value == "*":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PORT:
        raise ConfigError("route", value, "use a listen port of this proxy (1..65535) or '*'")
    return value


def _parse_probability(value: object) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
        raise ConfigError("probability", value, "must be a number from 0 to 1")
    return float(value)  # type: ignore[arg-type]


def _parse_methods(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("methods", value, "use a method glob such as 'eth_*' or '*'")
    return value


def _parse_stream(value: object) -> Stream:
    if value == "upstream":
        return "upstream"
    if value == "downstream":
        return "downstream"
    raise ConfigError("stream", value, "use 'upstream' (towards the node) or 'downstream'")
