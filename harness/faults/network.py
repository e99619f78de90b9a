"""Network faults: netem, tbf and nftables on one node's link, inside its own namespace.

They need a stack started with ``isolation="netns"``: each node then has a namespace of
its own and a veth end (``ifname``, "eth0") in it, so a qdisc or an nft table there hits
that node and nothing else on the host. A target without a namespace is refused before
anything is applied.

Directions are the node's: *egress* is what the node sends (its JSON-RPC responses and
its answers to HAProxy's health checks), *ingress* what reaches it (requests, checks).
A root qdisc (netem, tbf) shapes egress only; nftables can drop either way.

Mechanisms, reported in ``Fault.mechanism``:

- ``netem`` (via pyroute2): latency, loss, corrupt, duplicate, reorder. Many kernels
  (this project's CI host among them) have no ``sch_netem``; `netem_available` really
  tries it and says so, and those faults are then unavailable, except loss, which falls
  back to nftables.
- ``tbf`` (via pyroute2): bandwidth.

pyroute2 runs in a short-lived thread that has entered the node's namespace (see
`_in_netns`), never through its fork-based ``NetNS``.
- ``nftables`` (``ip netns exec NS nft -f -``): partition and loss, in a table of the
  fault's own (``harness_<fault id>``), so undoing it is deleting that table.

Every undo operation (`tc_delete_qdisc`, `nft_delete_table`) is plain data in the ledger
and is idempotent, so a later process can replay it after the harness was SIGKILLed.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import TC_H_ROOT

from harness.errors import ConfigError, HarnessError
from harness.faults.fault import Fault, FaultIneffective, FaultUnavailable
from harness.faults.registry import make_fault, register
from harness.faults.undo import UndoOp, undo_op
from harness.stack.isolation import NETNS_PREFIX
from harness.stack.model import ComponentState, StackState

__all__ = [
    "Bandwidth",
    "Corrupt",
    "Duplicate",
    "Latency",
    "Loss",
    "Partition",
    "Reorder",
    "capabilities",
    "netem_available",
    "nft_ruleset",
]

log = logging.getLogger(__name__)

# Root qdiscs the harness adds carry this handle ("4858:", "HX"): an undo deletes a root
# qdisc only if it is still ours. A kernel default root qdisc has handle 0.
QDISC_HANDLE = 0x4858_0000
NFT_FAMILY = "inet"
TABLE_PREFIX = "harness_"
DIRECTIONS = ("both", "ingress", "egress")
NFT_PRIORITY = -300  # ahead of conntrack (-200) and of any filter the node might have
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_TABLE = re.compile(r"^harness_[a-z0-9_]{1,48}$")
_COMMAND_TIMEOUT_S = 10.0

NETEM_FALLBACK = {
    "latency": "start the stack with --fault-proxy or --toxiproxy URL: latency then comes "
    "from the fault proxy or Toxiproxy",
    "corrupt": "there is no fallback for corruption",
    "duplicate": "there is no fallback for duplication",
    "reorder": "there is no fallback for reordering",
}


# -- running commands inside a node's namespace ------------------------------------------


def _run(
    argv: list[str], stdin: str | None = None, timeout_s: float = _COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def _check_ours(netns: str, ifname: str | None = None, table: str | None = None) -> None:
    """Refuse (from the ledger, too) anything but a namespace and objects the harness made."""
    if not netns.startswith(NETNS_PREFIX) or "/" in netns:
        raise HarnessError(
            f"refusing to touch network namespace {netns!r}: not made by the harness"
        )
    if ifname is not None and not _IFNAME.match(ifname):
        raise HarnessError(f"refusing interface name {ifname!r} in {netns}: not a valid name")
    if table is not None and not _TABLE.match(table):
        raise HarnessError(f"refusing to touch nft table {table!r}: not made by the harness")


def _nft(netns: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``nft ARGS`` inside ``netns`` (argument list; a ruleset goes on stdin)."""
    return _run(["ip", "netns", "exec", netns, "nft", *args], stdin=stdin)


def _in_netns(netns: str, work: Callable[[IPRoute], _T]) -> _T:
    """Run ``work`` with a pyroute2 IPRoute inside ``netns``, in a thread that entered it.

    setns(2) moves only the calling thread, so a short-lived thread enters the namespace,
    opens its netlink socket there and does the work: the harness never changes namespace,
    and the thread has no asyncio loop of its own for pyroute2's to collide with (a fault
    entered from async code works). pyroute2's own ``NetNS`` is not used: it forks the
    threaded harness, and a forked child that deadlocks is SIGTERMed into running a second
    copy of the caller (pytest's handlers included). `FileNotFoundError` if the namespace
    is gone; it is never created.
    """
    result: list[Any] = []

    def enter_and_work() -> None:
        try:
            fd = os.open(Path("/run/netns", netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, _CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns into {netns}: {os.strerror(code)}")
            finally:
                os.close(fd)
            with IPRoute() as ipr:
                result.append(work(ipr))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=enter_and_work, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    (outcome,) = result
    if isinstance(outcome, BaseException):
        raise outcome
    return cast(_T, outcome)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _root_qdisc(netns: str, ifname: str) -> tuple[str, int, dict[str, Any]] | None:
    """(kind, handle, options) of ``ifname``'s root qdisc in ``netns``; None if the link is gone."""

    def read(ipr: IPRoute) -> tuple[str, int, dict[str, Any]] | None:
        index = ipr.link_lookup(ifname=ifname)
        if not index:
            return None
        for qdisc in ipr.get_qdiscs(index=index[0]):
            if qdisc["parent"] == TC_H_ROOT:
                options = qdisc.get_attr("TCA_OPTIONS")
                attrs = dict(options.get("attrs", [])) if options else {}
                return str(qdisc.get_attr("TCA_KIND")), int(qdisc["handle"]), attrs
        return "", 0, {}  # a link that is down may have no qdisc at all: nothing of ours

    try:
        return _in_netns(netns, read)
    except FileNotFoundError:
        return None


def _is_ours(root: tuple[str, int, dict[str, Any]] | None, kind: str) -> bool:
    return root is not None and root[:2] == (kind, QDISC_HANDLE)


def _nft_table(netns: str, table: str) -> list[dict[str, Any]] | None:
    """The objects of ``table`` (``nft -j list table``) in ``netns``; None if it is not there."""
    if not _netns_exists(netns):
        return None
    proc = _nft(netns, ["-j", "list", "table", NFT_FAMILY, table])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return None
        raise HarnessError(f"`nft list table` in {netns} failed: {proc.stderr.strip()}")
    objects: list[dict[str, Any]] = json.loads(proc.stdout)["nftables"]
    return objects


# -- undo operations (replayed from the ledger by any process) ---------------------------


@undo_op("tc_delete_qdisc")
def tc_delete_qdisc(op: UndoOp) -> str | None:
    """Delete the root qdisc {netns, ifname, kind, handle} if it is still the one we added."""
    netns, ifname, kind, handle = op["netns"], op["ifname"], op["kind"], int(op["handle"])
    _check_ours(netns, ifname)
    if not _netns_exists(netns):
        return None  # the namespace is gone, and the qdisc with it

    def delete(ipr: IPRoute) -> bool:  # one session: check it is ours, then delete it
        index = ipr.link_lookup(ifname=ifname)
        if not index:
            return False
        roots = [q for q in ipr.get_qdiscs(index=index[0]) if q["parent"] == TC_H_ROOT]
        if not any((q.get_attr("TCA_KIND"), q["handle"]) == (kind, handle) for q in roots):
            return False  # gone (or replaced by a qdisc that is not ours)
        ipr.tc("del", index=index[0], parent=TC_H_ROOT)
        return True

    try:
        if not _in_netns(netns, delete):
            return None
    except FileNotFoundError:
        return None  # deleted meanwhile
    except NetlinkError as exc:
        if exc.code in (errno.ENOENT, errno.ENODEV):  # gone meanwhile
            return None
        raise
    return f"removed {kind} qdisc from {ifname} in {netns}"


@undo_op("nft_delete_table")
def nft_delete_table(op: UndoOp) -> str | None:
    """Delete the nft table {netns, family, table}; None if it (or the namespace) is gone."""
    netns, family, table = op["netns"], op["family"], op["table"]
    _check_ours(netns, table=table)
    if family not in ("inet", "ip", "ip6"):
        raise HarnessError(f"refusing nft family {family!r}")
    if not _netns_exists(netns):
        return None
    proc = _nft(netns, ["delete", "table", family, table])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return None
        raise HarnessError(
            f"`nft delete table {family} {table}` in {netns} failed: {proc.stderr.strip()}"
        )
    return f"deleted nft table {family} {table} in {netns}"


# -- what this host can do ---------------------------------------------------------------


def _probe(argv: list[str], what: str) -> tuple[bool, str]:
    """Run ``argv`` in a throwaway network namespace (``unshare --net``): nothing outlives it."""
    if os.geteuid() != 0:
        return False, f"{what} needs root (CAP_NET_ADMIN); run as root"
    missing = [b for b in ("unshare", argv[0]) if shutil.which(b) is None]
    if missing:
        return False, f"{', '.join(missing)} not found on PATH (install util-linux / iproute2)"
    try:
        proc = _run(["unshare", "--net", "--", *argv], stdin="")
    except subprocess.TimeoutExpired:
        return False, f"probing {what} timed out"
    if proc.returncode != 0:
        return False, proc.stderr.strip() or f"exit status {proc.returncode}"
    return True, ""


@functools.cache
def netem_available() -> tuple[bool, str]:
    """Whether a netem qdisc can be added here: really adds one in a scratch namespace."""
    ok, why = _probe(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"], "netem")
    if ok:
        return True, ""
    if "unknown" in why.lower() or "no such file" in why.lower():
        return False, f"the kernel has no sch_netem (adding a netem qdisc fails: {why})"
    return False, why


@functools.cache
def tbf_available() -> tuple[bool, str]:
    """Whether a tbf qdisc can be added here (really tried in a scratch namespace)."""
    ok, why = _probe(
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "32kb",
            "latency",
            "50ms",
        ],
        "tbf",
    )
    return (True, "") if ok else (False, f"the kernel has no working sch_tbf: {why}")


@functools.cache
def nftables_available() -> tuple[bool, str]:
    """Whether nftables works here: adds a table in a scratch namespace."""
    ok, why = _probe(["nft", "add", "table", NFT_FAMILY, "harness_probe"], "nftables")
    return (True, "") if ok else (False, f"nftables does not work here: {why}")


def capabilities() -> dict[str, tuple[bool, str]]:
    """{kind: (available, why not)} for every network fault (for `harness doctor`)."""
    return {cls.kind: cls.available() for cls in NETWORK_FAULTS}


# -- the nft ruleset (pure) --------------------------------------------------------------


def table_name(fault_id: str) -> str:
    """The nft table of one fault: ``loss-1a2b`` becomes ``harness_loss_1a2b``."""
    name = TABLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", fault_id.lower())
    return name[:56]


def nft_ruleset(table: str, ifname: str, direction: str, percent: float | None = None) -> str:
    """The nft script for one node: drop every packet (``percent`` None) or a random share.

    ``direction``: ingress (hook input, ``iifname``), egress (hook output, ``oifname``) or
    both. ``percent`` has a resolution of 0.01% (``numgen random mod 10000``). Only
    ``ifname`` is matched, never ``lo``.
    """
    if direction not in DIRECTIONS:
        raise ConfigError("direction", direction, f"choose one of: {', '.join(DIRECTIONS)}")
    if not _IFNAME.match(ifname):
        raise ConfigError("ifname", ifname, "not a valid interface name")
    if not _TABLE.match(table):
        raise ConfigError("table", table, "must be harness_ followed by [a-z0-9_]")
    if percent is None:
        verdict = "drop"
    else:
        basis_points = round(percent * 100)
        if not 1 <= basis_points <= 10_000:
            raise ConfigError("percent", percent, "choose 0.01 to 100")
        # numgen's range is 0-9999: "< 10000" does not parse, and 100% is every packet.
        verdict = (
            f"numgen random mod 10000 < {basis_points} drop" if basis_points < 10_000 else "drop"
        )
    chains = []
    if direction in ("both", "ingress"):
        chains.append(("inbound", "input", f'iifname "{ifname}" {verdict}'))
    if direction in ("both", "egress"):
        chains.append(("outbound", "output", f'oifname "{ifname}" {verdict}'))
    lines = [f"table {NFT_FAMILY} {table} {{"]
    for chain, hook, rule in chains:
        lines += [
            f"\tchain {chain} {{",
            f"\t\ttype filter hook {hook} priority {NFT_PRIORITY}; policy accept;",
            f"\t\t{rule}",
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chains(direction: str) -> set[str]:
    return {"both": {"inbound", "outbound"}, "ingress": {"inbound"}, "egress": {"outbound"}}[
        direction
    ]


# -- targets and parameter checks --------------------------------------------------------


def _link(target: ComponentState) -> tuple[str, str]:
    """(netns, ifname) of a node; `ConfigError` unless it has a namespace of its own."""
    if not target.netns or not target.ifname:
        raise ConfigError(
            "isolation",
            "loopback",
            "network faults need each node in its own namespace: start the stack with "
            "isolation=netns (--isolation netns)",
        )
    _check_ours(target.netns, target.ifname)
    return target.netns, target.ifname


def _in_range(
    name: str, value: float, low: float, high: float, fix: str, *, low_open: bool = False
) -> None:
    ok = (low < value <= high) if low_open else (low <= value <= high)
    if isinstance(value, bool) or not ok:  # NaN fails both comparisons
        raise ConfigError(name, value, fix)


def _check_percent(value: float, name: str = "percent") -> None:
    _in_range(
        name,
        value,
        0,
        100,
        "choose more than 0 and at most 100 (0 would inject nothing: leave the fault out)",
        low_open=True,
    )


def _check_correlation(value: float) -> None:
    _in_range("correlation_pct", value, 0, 100, "choose 0 to 100")


def _check_direction(value: str) -> None:
    if value not in DIRECTIONS:
        raise ConfigError("direction", value, f"choose one of: {', '.join(DIRECTIONS)}")


# -- qdisc faults ------------------------------------------------------------------------


def _plan_qdisc(targets: tuple[ComponentState, ...], kind: str) -> list[UndoOp]:
    ops: list[UndoOp] = []
    for target in targets:
        netns, ifname = _link(target)
        current = _root_qdisc(netns, ifname)
        if current is None:
            raise FaultIneffective(
                f"fault ineffective: {target.name} has no link {ifname} in {netns}"
            )
        if current[1] != 0:  # not the kernel's default root qdisc
            raise ConfigError(
                "target",
                target.name,
                f"{ifname} in {netns} already has a {current[0]} qdisc (another network "
                "fault holds it); end that fault first",
            )
        ops.append(
            {
                "op": "tc_delete_qdisc",
                "netns": netns,
                "ifname": ifname,
                "kind": kind,
                "handle": QDISC_HANDLE,
            }
        )
    return ops


def _apply_qdisc(targets: tuple[ComponentState, ...], kind: str, options: dict[str, Any]) -> None:
    for target in targets:
        netns, ifname = _link(target)

        def add(ipr: IPRoute, ifname: str = ifname) -> None:
            (index,) = ipr.link_lookup(ifname=ifname)
            ipr.tc("add", kind, index=index, handle=QDISC_HANDLE, **options)

        try:
            _in_netns(netns, add)
        except (NetlinkError, FileNotFoundError, ValueError) as exc:
            raise FaultIneffective(
                f"fault ineffective: could not add a {kind} qdisc to {ifname} in {netns}: {exc}"
            ) from exc


def _verify_qdisc(targets: tuple[ComponentState, ...], kind: str, present: bool) -> None:
    for target in targets:
        netns, ifname = _link(target)
        if _is_ours(_root_qdisc(netns, ifname), kind) != present:
            state = "missing" if present else "still present"
            raise FaultIneffective(
                f"fault ineffective: the {kind} qdisc on {ifname} in {netns} is {state}"
            )


@dataclass
class _LinkFault(Fault):
    """A fault on the node's own link: it needs the node in a namespace of its own."""

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        targets = super().preflight(state)
        for target in targets:
            _link(target)
        return targets


@dataclass
class _Netem(_LinkFault):
    """A netem qdisc on the node's egress (what it sends): every kind but loss has no fallback."""

    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "netem"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, why = netem_available()
        if ok:
            return True, ""
        return False, f"{why}; {NETEM_FALLBACK.get(cls.kind, 'there is no fallback')}"

    def netem_options(self) -> dict[str, Any]:
        """The netem options for pyroute2 (times in microseconds, shares in percent)."""
        raise NotImplementedError

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return _plan_qdisc(targets, "netem")

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        _apply_qdisc(targets, "netem", self.netem_options())

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        _verify_qdisc(targets, "netem", present=True)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        _verify_qdisc(targets, "netem", present=False)


def _has_proxy(state: StackState) -> bool:
    return bool(state.proxy_control_url or state.toxiproxy_url)


@register
@dataclass
class Latency(_Netem):
    """Delay every packet the node sends by ``delay_ms`` (+- ``jitter_ms``), via netem."""

    kind: ClassVar[str] = "latency"
    delay_ms: float = 100.0
    jitter_ms: float = 0.0
    correlation_pct: float = 0.0

    # Without sch_netem, a stack with a proxy before its nodes (Toxiproxy or the fault
    # proxy) gets the delay from a latency toxic instead (on what the node sends back, as
    # netem would), and the record says which. Each hook below goes to that fault when it
    # is in use.
    def _via_proxy(self) -> Fault | None:
        if netem_available()[0] or not _has_proxy(self.stack.state()):
            return None
        if getattr(self, "_proxy_fault", None) is None:
            self._proxy_fault = make_fault(
                "proxy_latency", self.stack, self.target, self.seed,
                latency_ms=self.delay_ms, jitter_ms=self.jitter_ms,
            )  # fmt: skip
        return self._proxy_fault

    def usable(self) -> tuple[bool, str]:
        ok, why = self.available()
        if ok or _has_proxy(self.stack.state()):
            return True, ""
        return False, why

    def preflight(self, state: StackState) -> tuple[ComponentState, ...]:
        via = self._via_proxy()
        return via.preflight(state) if via else super().preflight(state)

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        via = self._via_proxy()
        if via is None:
            return super().plan(targets)
        undo = via.plan(targets)  # chooses Toxiproxy or the fault proxy
        self.mechanism = f"{via.mechanism} (the kernel has no sch_netem)"
        return undo

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        via = self._via_proxy()
        return via.apply(targets) if via else super().apply(targets)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        via = self._via_proxy()
        return via.verify_applied(targets) if via else super().verify_applied(targets)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        via = self._via_proxy()
        return via.verify_reverted(targets) if via else super().verify_reverted(targets)

    def validate(self) -> None:
        _in_range(
            "delay_ms",
            self.delay_ms,
            0,
            60_000,
            "choose more than 0 and at most 60000 ms",
            low_open=True,
        )
        _in_range(
            "jitter_ms",
            self.jitter_ms,
            0,
            self.delay_ms,
            f"choose 0 to delay_ms ({self.delay_ms:g}): a packet cannot leave early",
        )
        _check_correlation(self.correlation_pct)
        if self.correlation_pct and not self.jitter_ms:
            raise ConfigError("correlation_pct", self.correlation_pct, "needs jitter_ms > 0")

    def params(self) -> dict[str, Any]:
        return {
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "correlation_pct": self.correlation_pct,
        }

    def netem_options(self) -> dict[str, Any]:
        return {
            "delay": round(self.delay_ms * 1000),
            "jitter": round(self.jitter_ms * 1000),
            "delay_corr": self.correlation_pct,
        }


@dataclass
class _PercentNetem(_Netem):
    """A netem fault with one knob: the share of packets it affects."""

    netem_key: ClassVar[str]
    percent: float = 1.0

    def validate(self) -> None:
        _check_percent(self.percent)

    def params(self) -> dict[str, Any]:
        return {"percent": self.percent}

    def netem_options(self) -> dict[str, Any]:
        return {self.netem_key: self.percent}


@register
@dataclass
class Corrupt(_PercentNetem):
    """Flip a random bit in ``percent`` of the packets the node sends, via netem."""

    kind: ClassVar[str] = "corrupt"
    netem_key: ClassVar[str] = "prob_corrupt"


@register
@dataclass
class Duplicate(_PercentNetem):
    """Send ``percent`` of the node's packets twice, via netem."""

    kind: ClassVar[str] = "duplicate"
    netem_key: ClassVar[str] = "duplicate"


@register
@dataclass
class Reorder(_Netem):
    """Send ``percent`` of the node's packets at once and delay the rest by ``delay_ms``."""

    kind: ClassVar[str] = "reorder"
    percent: float = 25.0
    delay_ms: float = 10.0

    def validate(self) -> None:
        _check_percent(self.percent)
        _in_range(
            "delay_ms",
            self.delay_ms,
            0,
            60_000,
            "choose more than 0 and at most 60000 ms (reordering needs a delay)",
            low_open=True,
        )

    def params(self) -> dict[str, Any]:
        return {"percent": self.percent, "delay_ms": self.delay_ms}

    def netem_options(self) -> dict[str, Any]:
        return {"delay": round(self.delay_ms * 1000), "prob_reorder": self.percent}


@register
@dataclass
class Bandwidth(_LinkFault):
    """Cap what the node sends at ``rate_kbit`` (1000 bit/s) with a token bucket (tbf).

    ``burst_kb`` (KiB) is the bucket; packets that would wait longer than ``latency_ms``
    in the queue are dropped.
    """

    kind: ClassVar[str] = "bandwidth"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    rate_kbit: int = 1000
    burst_kb: int = 32
    latency_ms: float = 50.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "tbf"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return tbf_available()

    def validate(self) -> None:
        _in_range("rate_kbit", self.rate_kbit, 8, 10_000_000, "choose 8 to 10000000 kbit/s")
        _in_range(
            "burst_kb",
            self.burst_kb,
            2,
            65_536,
            "choose 2 to 65536 KiB (at least one full-size packet)",
        )
        _in_range("latency_ms", self.latency_ms, 1, 60_000, "choose 1 to 60000 ms")

    def params(self) -> dict[str, Any]:
        return {
            "rate_kbit": self.rate_kbit,
            "burst_kb": self.burst_kb,
            "latency_ms": self.latency_ms,
        }

    def tbf_options(self) -> dict[str, Any]:
        """The tbf options for pyroute2: rate in bytes/s, burst in bytes, latency in us."""
        return {
            "rate": self.rate_kbit * 125,
            "burst": self.burst_kb * 1024,
            "latency": round(self.latency_ms * 1000),
        }

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return _plan_qdisc(targets, "tbf")

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        _apply_qdisc(targets, "tbf", self.tbf_options())

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        for target in targets:
            netns, ifname = _link(target)
            root = _root_qdisc(netns, ifname)
            if not _is_ours(root, "tbf"):
                raise FaultIneffective(
                    f"fault ineffective: the tbf qdisc on {ifname} in {netns} is missing"
                )
            assert root is not None
            rate = root[2].get("TCA_TBF_PARMS", {}).get("rate")
            if rate != self.rate_kbit * 125:
                raise FaultIneffective(
                    f"fault ineffective: tbf on {ifname} in {netns} has rate {rate} B/s, "
                    f"not {self.rate_kbit * 125} B/s"
                )

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        _verify_qdisc(targets, "tbf", present=False)


# -- nftables faults ---------------------------------------------------------------------


def _plan_nft(targets: tuple[ComponentState, ...], table: str) -> list[UndoOp]:
    ops: list[UndoOp] = []
    for target in targets:
        netns, _ = _link(target)
        ops.append({"op": "nft_delete_table", "netns": netns, "family": NFT_FAMILY, "table": table})
    return ops


def _apply_nft(
    targets: tuple[ComponentState, ...], table: str, direction: str, percent: float | None
) -> None:
    for target in targets:
        netns, ifname = _link(target)
        ruleset = nft_ruleset(table, ifname, direction, percent)
        log.debug("nft ruleset for %s:\n%s", netns, ruleset)
        proc = _nft(netns, ["-f", "-"], stdin=ruleset)
        if proc.returncode != 0:
            raise FaultIneffective(
                f"fault ineffective: nft refused the ruleset in {netns}: {proc.stderr.strip()}"
            )


def _verify_nft(targets: tuple[ComponentState, ...], table: str, direction: str | None) -> None:
    """``direction`` None: verify the table is gone; otherwise that its chains and rules are in."""
    for target in targets:
        netns, _ = _link(target)
        objects = _nft_table(netns, table)
        if direction is None:
            if objects is not None:
                raise FaultIneffective(
                    f"fault ineffective: nft table {table} is still present in {netns}"
                )
            continue
        if objects is None:
            raise FaultIneffective(f"fault ineffective: nft table {table} is missing in {netns}")
        chains = {o["chain"]["name"] for o in objects if "chain" in o}
        ruled = {o["rule"]["chain"] for o in objects if "rule" in o}
        wanted = _chains(direction)
        if chains != wanted or ruled != wanted:
            raise FaultIneffective(
                f"fault ineffective: nft table {table} in {netns} has chains {sorted(chains)} "
                f"with rules in {sorted(ruled)}, expected {sorted(wanted)}"
            )


@register
@dataclass
class Partition(_LinkFault):
    """Cut the node off: an nft table in its namespace drops everything on its link.

    HAProxy's health checks fail (the node goes DOWN) and clients' connects time out;
    ``lo`` inside the namespace is untouched. ``direction`` may make it one-way.
    """

    kind: ClassVar[str] = "partition"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    direction: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mechanism = "nftables"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return nftables_available()

    def validate(self) -> None:
        _check_direction(self.direction)

    def params(self) -> dict[str, Any]:
        return {"direction": self.direction}

    @property
    def table(self) -> str:
        return table_name(self._id)

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        return _plan_nft(targets, self.table)

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        _apply_nft(targets, self.table, self.direction, None)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        _verify_nft(targets, self.table, self.direction)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        _verify_nft(targets, self.table, None)


@register
@dataclass
class Loss(_LinkFault):
    """Drop ``percent`` of the node's packets.

    With netem (egress only, and the only way to honour ``correlation_pct``) when the
    kernel has it and ``direction`` is egress; otherwise with nftables (``numgen random``,
    independent drops, either direction). ``mechanism`` says which ran.
    """

    kind: ClassVar[str] = "loss"
    roles: ClassVar[tuple[str, ...]] = ("primary", "backup")
    percent: float = 10.0
    correlation_pct: float = 0.0
    direction: str = "both"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        netem, why_not_netem = netem_available()
        nft, why_not_nft = nftables_available()
        if netem or nft:
            return True, ""
        return False, f"{why_not_netem}; and the nftables fallback fails: {why_not_nft}"

    def validate(self) -> None:
        _check_percent(self.percent)
        _check_correlation(self.correlation_pct)
        _check_direction(self.direction)

    def params(self) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "correlation_pct": self.correlation_pct,
            "direction": self.direction,
        }

    @property
    def table(self) -> str:
        return table_name(self._id)

    def plan(self, targets: tuple[ComponentState, ...]) -> list[UndoOp]:
        netem, why = netem_available()
        if netem and self.direction == "egress":
            self.mechanism = "netem"
            return _plan_qdisc(targets, "netem")
        if self.correlation_pct:
            reason = why if not netem else f"netem shapes egress only, not {self.direction}"
            raise FaultUnavailable(
                f"loss cannot run with correlation_pct={self.correlation_pct:g} here: it needs "
                f"netem ({reason}); nftables drops independently: use correlation_pct=0"
            )
        self.mechanism = "nftables"
        return _plan_nft(targets, self.table)

    def apply(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == "netem":
            options = {"loss": self.percent, "loss_corr": self.correlation_pct}
            _apply_qdisc(targets, "netem", options)
        else:
            _apply_nft(targets, self.table, self.direction, self.percent)

    def verify_applied(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == "netem":
            _verify_qdisc(targets, "netem", present=True)
        else:
            _verify_nft(targets, self.table, self.direction)

    def verify_reverted(self, targets: tuple[ComponentState, ...]) -> None:
        if self.mechanism == "netem":
            _verify_qdisc(targets, "netem", present=False)
        else:
            _verify_nft(targets, self.table, None)


NETWORK_FAULTS: tuple[type[Fault], ...] = (
    Latency,
    Loss,
    Corrupt,
    Duplicate,
    Reorder,
    Bandwidth,
    Partition,
)
