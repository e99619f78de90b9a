"""Faults at the JSON-RPC level, through the harness's own fault proxy.

The failures that cost an MEV operator money are often semantic: a node that answers
with a stale head, ``header not found`` for recent blocks, rate limiting, one slow method.
These faults put a rule in the fault proxy that sits between HAProxy and a node (start
the stack with ``fault_proxy=True`` / ``--fault-proxy``), ledgered first like every
fault: the undo is "remove the rule that matches this one", which needs no id, so it can
be written before the rule exists and replayed by another process.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import ConfigError, HarnessError
from harness.faults.fault import Fault, FaultIneffective
from harness.faults.registry import register
from harness.faults.undo import UndoOp, undo_op
from harness.load.workload import KNOWN_METHODS
from harness.proxy.client import ProxyControl
from harness.proxy.rules import parse_rule
from harness.stack.model import ComponentState

log = logging.getLogger(__name__)

# JSON-RPC methods the workload sends ("eth_getBlockByNumber_full" is a label, not a method).
WORKLOAD_METHODS = frozenset(m.removesuffix("_full") for m in KNOWN_METHODS if m != "batch")


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


@dataclass
class ProxyFault(Fault):
    """A rule in the fault proxy, on the route of each target node."""

    rule_kind: ClassVar[str]
    # (fault parameter, rule field) where the names differ: units in our names.
    renames: ClassVar[dict[str, str]] = {}
    per_method: ClassVar[bool] = True

    probability: float = 1.0

    def __post_init__(self) -> None:
        self.mechanism = "fault proxy"
        self._ids: list[tuple[str, str]] = []
        super().__post_init__()

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
        methods = getattr(self, "methods", "*")
        if self.per_method and not any(fnmatch.fnmatchcase(m, methods) for m in WORKLOAD_METHODS):
            message = (
                f"{self.kind}: methods={methods!r} matches no method the workload sends "
                f"({', '.join(sorted(WORKLOAD_METHODS))}); the fault may never fire"
            )
            log.warning(message)
            warnings.warn(message, stacklevel=3)

    def _control(self) -> ProxyControl:
        url = self.stack.state().proxy_control_url
        if url is None:
            raise ConfigError(
                "fault_proxy",
                False,
                f"{self.kind} needs the fault proxy: start the stack with --fault-proxy "
                "(fault_proxy=True)",
            )
        return ProxyControl(url)

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        control = self._control()
        return [
            {"op": "proxy_remove_matching", "control": control.url, "rule": self._rule(t)}
            for t in targets
        ]

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        control = self._control()
        self._ids = [(t.name, control.add(self._rule(t))) for t in targets]

    def _active(self) -> set[str]:
        return {r["id"] for r in self._control().rules()}

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        missing = [name for name, rule_id in self._ids if rule_id not in self._active()]
        if missing:
            raise FaultIneffective(f"fault ineffective: no proxy rule on {', '.join(missing)}")

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        left = [name for name, rule_id in self._ids if rule_id in self._active()]
        if left:
            raise FaultIneffective(f"proxy rule still active on {', '.join(left)} after revert")


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
