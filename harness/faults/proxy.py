"""Faults in a proxy before the node: JSON-RPC faults in the harness's own fault proxy,
transport faults (Toxiproxy's toxics) in a real Toxiproxy or in the fault proxy.

The failures that cost an MEV operator money are often semantic: a node that answers
with a stale head, ``header not found`` for recent blocks, rate limiting, one slow method.
These faults put a rule in the fault proxy that sits between HAProxy and a node (start
the stack with ``fault_proxy=True`` / ``--fault-proxy``), ledgered first like every
fault: the undo is "remove the rule that matches this one", which needs no id, so it can
be written before the rule exists and replayed by another process.

Transport faults choose their mechanism per run (`transport_mechanism`): a toxic on the
target's Toxiproxy proxy when the stack was started with ``--toxiproxy URL`` (undo:
`toxiproxy_remove_toxic`, by the toxic's name, chosen before it is added), else a rule in
the fault proxy. ``Fault.mechanism`` and the record say which ran.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import ConfigError, HarnessError
from harness.faults.fault import Fault, FaultIneffective
from harness.faults.registry import FAULTS, register
from harness.faults.undo import UndoOp, undo_op
from harness.load.workload import KNOWN_METHODS
from harness.proxy.client import ProxyControl
from harness.proxy.rules import TRANSPORT_KINDS, parse_rule
from harness.proxy.toxiproxy import ToxiproxyDriver, ToxiproxyUnreachable
from harness.stack.model import ComponentState, StackState

log = logging.getLogger(__name__)

# JSON-RPC methods the workload sends ("eth_getBlockByNumber_full" is a label, not a method).
WORKLOAD_METHODS = frozenset(m.removesuffix("_full") for m in KNOWN_METHODS if m != "batch")


class FaultMayNeverFire(UserWarning):
    """A per-method fault whose glob matches nothing the load sends (a warning, not an
    error: the fault may be meant for other clients of the stack)."""


@undo_op("proxy_remove_matching")
def _remove_matching(op: UndoOp) -> str | None:
    """Remove every proxy rule whose fields include all of ``op["rule"]``."""
    wanted: dict[str, Any] = op["rule"]
    try:
        control = ProxyControl(op["control"])
        rules = control.rules()
    except (OSError, HarnessError):
        return None  # the proxy is gone, and its rules with it
    removed = [
        r["id"]
        for r in rules
        if all(r.get(k) == v for k, v in wanted.items()) and control.remove(r["id"])
    ]
    if not removed:
        return None
    return f"removed fault proxy rule {wanted['kind']} on port {wanted['route']}"


@undo_op("toxiproxy_remove_toxic")
def _remove_toxic(op: UndoOp) -> str | None:
    """Remove toxic ``op["toxic"]`` from Toxiproxy proxy ``op["proxy"]`` at ``op["url"]``."""
    try:
        removed = ToxiproxyDriver(op["url"]).remove_toxic(op["proxy"], op["toxic"])
    except ToxiproxyUnreachable:
        return None  # the server is gone, and its toxics with it
    if not removed:
        return None
    return f"removed Toxiproxy toxic {op['toxic']} from proxy {op['proxy']}"


FAULT_PROXY = "fault proxy"
TOXIPROXY = "toxiproxy"


def transport_mechanism(kind: str, state: StackState, targets: tuple[ComponentState, ...]) -> str:
    """Where a transport fault runs on this stack: Toxiproxy if every target has a proxy
    there, else the fault proxy; `ConfigError` saying how to start the stack if neither."""
    if state.toxiproxy_url and targets and all(t.toxiproxy_proxy for t in targets):
        return TOXIPROXY
    if state.proxy_control_url and all(t.proxy_port is not None for t in targets):
        return FAULT_PROXY
    raise ConfigError(
        "stack",
        state.name,
        f"{kind} needs a proxy before the node: start the stack with --fault-proxy "
        "(fault_proxy=True) or --toxiproxy URL (toxiproxy='http://127.0.0.1:8474')",
    )


@dataclass(frozen=True)
class Toxic:
    """A Toxiproxy toxic as the server takes it: integer attributes in Toxiproxy's units."""

    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int]


# Toxiproxy's unit for each of our parameters (its attributes are Go integers).
_UNITS = {"ms": "milliseconds", "us": "microseconds", "kb_s": "KB/s"}


def toxic_for(kind: str, params: Mapping[str, Any]) -> Toxic:
    """The Toxiproxy toxic for transport fault ``kind`` with ``params`` (our names and
    units): ``latency_ms`` -> ``latency``, ``probability`` -> toxicity, ... A value
    Toxiproxy would have to truncate (``latency_ms=0.5``) is a `ConfigError` naming it:
    the fault would not be the one asked for."""
    cls = FAULTS.get(kind)
    if cls is None or not issubclass(cls, ProxyFault) or cls.rule_kind not in TRANSPORT_KINDS:
        transport = sorted(
            k for k, c in FAULTS.items()
            if issubclass(c, ProxyFault) and c.rule_kind in TRANSPORT_KINDS
        )  # fmt: skip
        raise ConfigError(
            "fault", kind, f"not a transport fault; choose one of: {', '.join(transport)}"
        )
    attributes: dict[str, int] = {}
    for name, value in params.items():
        if name in ("stream", "probability", "methods"):
            continue
        whole = round(float(value))
        if abs(float(value) - whole) > 1e-6:  # float noise (0.1 * 3 * 1000) is no fraction
            suffix = name.split("_", 1)[1] if "_" in name else ""
            unit = _UNITS.get(suffix, "units")
            raise ConfigError(
                f"{kind}.{name}",
                value,
                f"Toxiproxy takes whole {unit}: use {math.floor(value)} or {math.ceil(value)}, "
                "or run the fault through the fault proxy (a stack without --toxiproxy)",
            )
        attributes[cls.renames.get(name, name)] = whole
    return Toxic(
        cls.rule_kind,
        str(params.get("stream", "downstream")),
        float(params.get("probability", 1.0)),
        attributes,
    )


@dataclass
class ProxyFault(Fault):
    """A rule in the fault proxy on each target node's route; for a transport kind on a
    stack with Toxiproxy, a toxic on each target's Toxiproxy proxy instead."""

    rule_kind: ClassVar[str]
    # (fault parameter, rule field) where the names differ: units in our names.
    renames: ClassVar[dict[str, str]] = {}
    param_aliases: ClassVar[dict[str, str]] = {}  # Toxiproxy's knob name -> ours
    per_method: ClassVar[bool] = True

    probability: float = 1.0

    def __post_init__(self) -> None:
        self.mechanism = FAULT_PROXY  # until `plan` chooses, for a transport fault
        self._ids: list[tuple[str, str]] = []
        self._toxic = ""  # the toxic's name on each target's Toxiproxy proxy
        self._toxiproxy_url = ""
        super().__post_init__()

    @property
    def transport(self) -> bool:
        return self.rule_kind in TRANSPORT_KINDS

    def params(self) -> dict[str, Any]:
        base = {f.name for f in dataclasses.fields(Fault)}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in base and f.init
        }

    def _rule(self, node: ComponentState) -> dict[str, Any]:
        doc: dict[str, Any] = {"route": node.proxy_port, "kind": self.rule_kind}
        for name, value in self.params().items():
            doc[self.renames.get(name, name)] = value
        return doc

    def validate(self) -> None:
        parse_rule(self._rule(ComponentState("check", "", "primary", None, "", 0, proxy_port=1)))
        if self.transport and self._stack_has_toxiproxy():
            toxic_for(self.kind, self.params())  # whole units, refused before the run starts
        self._warn_unless_matched(WORKLOAD_METHODS, "the workload sends")

    def check_workload(self, methods: frozenset[str]) -> None:
        # A glob no workload method matches was warned of at construction.
        if self._matches(WORKLOAD_METHODS):
            self._warn_unless_matched(methods, "this run's profile sends")

    def _matches(self, methods: frozenset[str]) -> bool:
        glob = getattr(self, "methods", "*")
        return not self.per_method or any(fnmatch.fnmatchcase(m, glob) for m in methods)

    def _warn_unless_matched(self, methods: frozenset[str], whose: str) -> None:
        if not self._matches(methods):
            message = (
                f"{self.kind}: methods={getattr(self, 'methods', '*')!r} matches no method "
                f"{whose} ({', '.join(sorted(methods))}); the fault may never fire"
            )
            log.warning(message)
            warnings.warn(message, FaultMayNeverFire, stacklevel=4)

    def _control(self) -> ProxyControl:
        return ProxyControl(self._control_url(self.stack.state()))

    def _control_url(self, state: StackState) -> str:
        if state.proxy_control_url is None:
            raise ConfigError(
                "fault_proxy",
                False,
                f"{self.kind} needs the fault proxy: start the stack with --fault-proxy "
                "(fault_proxy=True)",
            )
        return state.proxy_control_url

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        targets = super().preflight(state)
        if not self.transport:
            self._control_url(state)
        elif transport_mechanism(self.kind, state, targets) == TOXIPROXY:
            toxic_for(self.kind, self.params())  # whole units, or a ConfigError naming one
        return targets

    def _stack_has_toxiproxy(self) -> bool:
        try:
            return self.stack.state().toxiproxy_url is not None
        except HarnessError:
            return False  # not started yet: `plan` checks again

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        state = self.stack.state()
        self.mechanism = (
            transport_mechanism(self.kind, state, targets) if self.transport else FAULT_PROXY
        )
        if self.mechanism == TOXIPROXY:
            assert state.toxiproxy_url is not None
            toxic_for(self.kind, self.params())
            self._toxiproxy_url = state.toxiproxy_url
            # The fault's own id when it runs as itself (``hx-proxy_latency-1a2b3c4d``).
            fault_id = getattr(self, "_id", None) or f"{self.kind}-{secrets.token_hex(4)}"
            self._toxic = f"hx-{fault_id}"
            return [
                {
                    "op": "toxiproxy_remove_toxic",
                    "url": state.toxiproxy_url,
                    "proxy": t.toxiproxy_proxy,
                    "toxic": self._toxic,
                }
                for t in targets
            ]
        control = self._control()
        return [
            {"op": "proxy_remove_matching", "control": control.url, "rule": self._rule(t)}
            for t in targets
        ]

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == TOXIPROXY:
            toxic = toxic_for(self.kind, self.params())
            driver = ToxiproxyDriver(self._toxiproxy_url)
            for t in targets:
                assert t.toxiproxy_proxy is not None
                driver.add_toxic(
                    t.toxiproxy_proxy, self._toxic, toxic.type, toxic.stream, toxic.toxicity,
                    toxic.attributes,
                )  # fmt: skip
            return
        control = self._control()
        self._ids = [(t.name, control.add(self._rule(t))) for t in targets]

    def _active(self) -> set[str]:
        return {r["id"] for r in self._control().rules()}

    def _with_toxic(self, targets: tuple[ComponentState, ...]) -> list[str]:
        """The targets whose Toxiproxy proxy carries this fault's toxic."""
        driver = ToxiproxyDriver(self._toxiproxy_url)
        return [
            t.name
            for t in targets
            if t.toxiproxy_proxy and self._toxic in driver.toxic_names(t.toxiproxy_proxy)
        ]

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == TOXIPROXY:
            have = self._with_toxic(targets)
            missing = [t.name for t in targets if t.name not in have]
            where = "Toxiproxy toxic"
        else:
            missing = [name for name, rule_id in self._ids if rule_id not in self._active()]
            where = "proxy rule"
        if missing:
            raise FaultIneffective(f"fault ineffective: no {where} on {', '.join(missing)}")

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == TOXIPROXY:
            left = self._with_toxic(targets)
            where = f"Toxiproxy toxic {self._toxic}"
        else:
            left = [name for name, rule_id in self._ids if rule_id in self._active()]
            where = "proxy rule"
        if left:
            raise FaultIneffective(f"{where} still active on {', '.join(left)} after revert")


def _proxy_fault(
    kind: str, rule_kind: str, doc: str, fields: list[tuple[str, type, Any]],
    renames: dict[str, str] | None = None, per_method: bool = True,
) -> type[ProxyFault]:  # fmt: skip
    """Declare one proxy fault kind: its parameters (with defaults) and the rule it sets."""
    if per_method:
        fields = [*fields, ("methods", str, "*")]
    cls = dataclasses.make_dataclass(
        "".join(part.title() for part in kind.split("_")),
        [(name, typ, dataclasses.field(default=default)) for name, typ, default in fields],
        bases=(ProxyFault,),
        namespace={
            "kind": kind,
            "rule_kind": rule_kind,
            "renames": renames or {},
            "per_method": per_method,
            # Toxiproxy's own knob names work too: -p toxicity=0.5 -p latency=100.
            "param_aliases": {
                **({"toxicity": "probability"} if rule_kind in TRANSPORT_KINDS else {}),
                **{theirs: ours for ours, theirs in (renames or {}).items()},
            },
            "__doc__": doc,
        },
    )
    cls.__module__ = __name__
    return register(cls)  # type: ignore[return-value]


# JSON-RPC faults: decided per call (element-wise in a batch), for calls matching `methods`.
RpcError = _proxy_fault(
    "rpc_error", "rpc_error", "Answer matching calls with a JSON-RPC error.",
    [("code", int, -32000), ("message", str, "header not found")],
)  # fmt: skip
RpcDelay = _proxy_fault(
    "rpc_delay", "rpc_delay", "Delay the answers to matching calls only (one slow method).",
    [("delay_ms", float, 200.0), ("jitter_ms", float, 0.0)],
)  # fmt: skip
StaleHead = _proxy_fault(
    "stale_head", "stale_head", "Serve a head N blocks old: eth_blockNumber and 'latest' lag.",
    [("blocks", int, 5)], per_method=False,
)  # fmt: skip
NullResult = _proxy_fault("null_result", "null_result", "Answer matching calls with null.", [])
RateLimit = _proxy_fault(
    "rate_limit", "rate_limit", "Over a budget of calls per second: HTTP 429 or -32005.",
    [("budget_per_s", float, 50.0), ("style", str, "rpc-32005")],
)  # fmt: skip
DropResponse = _proxy_fault(
    "drop_response", "drop", "Close the connection in the middle of the response.", []
)
Malformed = _proxy_fault("malformed", "malformed", "Answer with a truncated JSON body.", [])
WrongId = _proxy_fault("wrong_id", "wrong_id", "Answer with another request's id.", [])

# Transport faults: Toxiproxy's toxics, names and knobs, with units in our parameter names.
_STREAM = ("stream", str, "downstream")
ProxyLatency = _proxy_fault(
    "proxy_latency", "latency", "Toxiproxy's latency toxic: delay data by latency +- jitter.",
    [("latency_ms", float, 100.0), ("jitter_ms", float, 0.0), _STREAM],
    {"latency_ms": "latency", "jitter_ms": "jitter"}, per_method=False,
)  # fmt: skip
ProxyBandwidth = _proxy_fault(
    "proxy_bandwidth", "bandwidth", "Toxiproxy's bandwidth toxic: at most rate KB/s.",
    [("rate_kb_s", float, 100.0), _STREAM], {"rate_kb_s": "rate"}, per_method=False,
)  # fmt: skip
SlowClose = _proxy_fault(
    "slow_close", "slow_close", "Toxiproxy's slow_close: delay the close by delay_ms.",
    [("delay_ms", float, 1000.0), _STREAM], {"delay_ms": "delay"}, per_method=False,
)  # fmt: skip
ProxyTimeout = _proxy_fault(
    "proxy_timeout", "timeout", "Toxiproxy's timeout: stop all data; close after timeout_ms.",
    [("timeout_ms", float, 0.0), _STREAM], {"timeout_ms": "timeout"}, per_method=False,
)  # fmt: skip
ResetPeer = _proxy_fault(
    "reset_peer", "reset_peer", "Toxiproxy's reset_peer: a TCP RST after timeout_ms.",
    [("timeout_ms", float, 0.0), _STREAM], {"timeout_ms": "timeout"}, per_method=False,
)  # fmt: skip
Slicer = _proxy_fault(
    "slicer", "slicer", "Toxiproxy's slicer: cut data into small pieces, delay_us apart.",
    [("average_size", int, 64), ("size_variation", int, 32), ("delay_us", float, 100.0), _STREAM],
    {"delay_us": "delay"}, per_method=False,
)  # fmt: skip
LimitData = _proxy_fault(
    "limit_data", "limit_data", "Toxiproxy's limit_data: close after `bytes` bytes.",
    [("bytes", int, 1024), _STREAM], per_method=False,
)  # fmt: skip
