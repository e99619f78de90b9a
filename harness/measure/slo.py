"""SLOs and safeguards: declared targets, judged against what a run measured, explained
in one line a person understands at 3 a.m.

SLOs are written the way people say them::

    outage_s <= 5                         recovery metrics: no phase
    availability_pct[fault] >= 99         per-phase metrics: phase in brackets
    p99_ms[baseline:debug_traceCall] <= 500   latency of one method in one phase

The metrics, and how each is measured, are defined in `harness.measure.metrics`.

Safeguards stop a run early: ``error_rate_pct > 90 for 5s`` aborts when the load's error
rate stays above 90% for five consecutive seconds.

A spec file (TOML) holds both::

    slos = ["p99_ms[baseline] <= 50", "outage_s <= 5"]
    abort_if = ["error_rate_pct > 90 for 5s"]
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.measure.metrics import (
    ALERT_METRICS,
    LATENCY_METRICS,
    PER_METHOD_METRICS,
    PHASE_METRICS,
    PHASES,
    RECOVERY_METRICS,
)
from harness.measure.recorder import Second

_SLO = re.compile(r"^\s*(\w+)\s*(?:\[(\w+)(?::([\w.*-]+))?\])?\s*(<=|>=)\s*(\S+)\s*$")
_SAFEGUARD = re.compile(r"^\s*(\w+)\s*>\s*(\S+)\s+for\s+(\S+?)s\s*$")
#: What a safeguard can watch, second by second, in the load's timeline.
SAFEGUARD_METRICS = ("error_rate_pct", "max_ms")


@dataclass(frozen=True)
class SLO:
    """One objective: ``metric[phase:method] op target``."""

    metric: str
    op: str
    target: float
    phase: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        known = RECOVERY_METRICS + PHASE_METRICS + ALERT_METRICS
        if self.metric not in known:
            raise ConfigError("slo metric", self.metric, f"choose one of: {', '.join(known)}")
        if self.op not in ("<=", ">="):
            raise ConfigError("slo operator", self.op, "use <= or >=")
        if not math.isfinite(self.target) or self.target < 0:
            raise ConfigError("slo target", self.target, "must be a finite number >= 0")
        if self.metric in ALERT_METRICS:
            from harness.monitor.rules import require_alert

            if self.phase is None or self.method is not None:
                raise ConfigError(
                    f"slo {self.metric}", self.phase, f"name one alert: {self.metric}[ServiceDown]"
                )
            require_alert(self.phase)
        if self.metric in PHASE_METRICS and self.phase not in PHASES:
            raise ConfigError(
                f"slo {self.metric} phase",
                self.phase,
                f"write {self.metric}[phase], phase one of: {', '.join(PHASES)}",
            )
        if self.metric in RECOVERY_METRICS and self.phase is not None:
            raise ConfigError(
                f"slo {self.metric} phase", self.phase, "recovery metrics have no phase"
            )
        if self.method is not None and self.metric not in PER_METHOD_METRICS:
            raise ConfigError(
                f"slo {self.metric} method",
                self.method,
                "only latency and error rate are per method",
            )
        if self.method is not None:
            from harness.load.workload import KNOWN_METHODS  # heavy (eth_account): on use

            if self.method not in KNOWN_METHODS:
                raise ConfigError(
                    f"slo {self.metric} method",
                    self.method,
                    f"the load sends none; choose one of: {', '.join(KNOWN_METHODS)}",
                )
        if self.metric in ("availability_pct", "error_rate_pct") and self.target > 100:
            raise ConfigError("slo target", self.target, f"{self.metric} is a percentage <= 100")

    @classmethod
    def parse(cls, text: str) -> SLO:
        """``"p99_ms[baseline] <= 50"`` -> SLO; `ConfigError` naming what is wrong."""
        match = _SLO.match(text)
        if not match:
            raise ConfigError(
                "slo", text, "write it as metric[phase] <= number, e.g. 'p99_ms[baseline] <= 50'"
            )
        metric, phase, method, op, target = match.groups()
        try:
            value = float(target)
        except ValueError:
            raise ConfigError("slo target", target, "must be a number") from None
        return cls(metric, op, value, phase, method)

    @property
    def key(self) -> str:
        """The name of the measurement it is judged on: ``metric[phase:method]``."""
        if self.phase is None:
            return self.metric
        return f"{self.metric}[{self.phase}{':' + self.method if self.method else ''}]"

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.target:g}"


@dataclass(frozen=True)
class Safeguard:
    """Abort the run when a metric of the load stays above ``bound`` for ``for_s`` whole
    seconds: ``error_rate_pct`` (failed requests, %) or ``max_ms`` (the slowest request of
    each second, so ``max_ms > 2000 for 5s`` is a stall of five seconds)."""

    bound: float
    for_s: float
    metric: str = "error_rate_pct"

    def __post_init__(self) -> None:
        if self.metric not in SAFEGUARD_METRICS:
            raise ConfigError(
                "abort_if metric", self.metric, f"choose one of: {', '.join(SAFEGUARD_METRICS)}"
            )
        if self.metric == "error_rate_pct" and not 0 <= self.bound < 100:
            raise ConfigError("abort_if error_rate_pct", self.bound, "choose 0 to 100 (exclusive)")
        if self.metric == "max_ms" and not (math.isfinite(self.bound) and self.bound > 0):
            raise ConfigError("abort_if max_ms", self.bound, "choose a number of ms above 0")
        if not 1 <= self.for_s <= 3600:
            raise ConfigError("abort_if for", self.for_s, "choose 1 to 3600 seconds")

    @classmethod
    def parse(cls, text: str) -> Safeguard:
        match = _SAFEGUARD.match(text)
        if not match:
            raise ConfigError(
                "abort_if",
                text,
                "write it as 'error_rate_pct > 90 for 5s' or 'max_ms > 2000 for 5s'",
            )
        metric, bound, for_s = match.groups()
        try:
            return cls(float(bound), float(for_s), metric)
        except ValueError:
            raise ConfigError(
                "abort_if", text, "the bound and the duration must be numbers"
            ) from None

    def _above(self, second: Second) -> bool:
        total = second.ok + second.failed
        if total <= 0:
            return False
        if self.metric == "max_ms":
            return second.max_us / 1000 > self.bound
        return 100.0 * second.failed / total > self.bound

    def breached(self, timeline: list[Second]) -> bool:
        """True if the last ``for_s`` whole seconds of the timeline were all above the bound."""
        window = int(self.for_s)
        recent = timeline[-window - 1 : -1]  # the current second is still filling
        if len(recent) < window or recent[0].second != recent[-1].second - window + 1:
            return False
        return all(self._above(b) for b in recent)

    def __str__(self) -> str:
        return f"{self.metric} > {self.bound:g} for {self.for_s:g}s"


def load_spec_file(path: Path) -> tuple[tuple[SLO, ...], tuple[Safeguard, ...]]:
    """SLOs and safeguards from a TOML file (``slos = [...]``, ``abort_if = [...]``)."""
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError("slo file", str(path), f"cannot read it: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("slo file", str(path), f"not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - {"slos", "abort_if"})
    if unknown:
        raise ConfigError("slo file key", unknown[0], "the file may hold only slos and abort_if")
    for key in ("slos", "abort_if"):
        if not isinstance(doc.get(key, []), list) or not all(
            isinstance(x, str) for x in doc.get(key, [])
        ):
            raise ConfigError(f"slo file {key}", doc.get(key), "must be a list of strings")
    return (
        tuple(SLO.parse(s) for s in doc.get("slos", [])),
        tuple(Safeguard.parse(s) for s in doc.get("abort_if", [])),
    )


@dataclass(frozen=True)
class SLOResult:
    """An SLO with what was measured, whether it held, and a sentence saying so."""

    slo: str
    metric: str
    phase: str | None
    method: str | None
    target: float
    measured: float | None
    passed: bool
    message: str
    #: Why a broken SLO says nothing about the stack (the host stalled), else None.
    inconclusive: str | None = None


def host_explains(slo: SLO, value: float, measured: Mapping[str, float | None]) -> str | None:
    """Why a broken latency SLO is inconclusive: the machine itself stalled in its phase
    for at least the excess (every request in flight then waited that long, whatever the
    stack did); None when it did not."""
    if slo.metric not in LATENCY_METRICS or slo.phase is None or slo.op != "<=":
        return None
    stall = measured.get(f"host_stall_ms[{slo.phase}]")
    excess = value - slo.target
    if not stall or stall < excess:
        return None
    return (
        f"inconclusive: the host itself stalled {stall:.0f} ms in the {slo.phase} phase "
        f"(CPU steal or every core busy), more than the {excess:.4g} ms excess"
    )


def evaluate(slos: tuple[SLO, ...], measured: Mapping[str, float | None]) -> list[SLOResult]:
    """Judge every SLO against ``measured``, keyed like `SLO.key`."""
    results = []
    for slo in slos:
        value = measured.get(slo.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            passed = False
            message = f"{slo} not met: {slo.key} was never measured (did the component recover?)"
        else:
            passed = value <= slo.target if slo.op == "<=" else value >= slo.target
            if passed:
                message = f"{slo} holds: measured {value:.4g}"
            else:
                excess = abs(value - slo.target)
                rel = f" ({100 * excess / slo.target:.0f}% off)" if slo.target else ""
                phase = f" in the {slo.phase} phase" if slo.phase else ""
                message = f"{slo} broken{phase}: measured {value:.4g}, off by {excess:.4g}{rel}"
        inconclusive = None if passed or value is None else host_explains(slo, value, measured)
        if inconclusive:
            message += f" ({inconclusive})"
        results.append(
            SLOResult(
                str(slo),
                slo.metric,
                slo.phase,
                slo.method,
                slo.target,
                value,
                passed,
                message,
                inconclusive,
            )
        )
    return results
