"""SLOs: declared targets, evaluated against what a run measured, explained in one line.

An SLO is written the way people say it: ``outage_s <= 5``, ``availability_pct[fault] >= 99``,
``p99_ms[baseline] <= 50``. Recovery metrics (ttd_s, outage_s, mttr_service_s,
mttr_component_s) have no phase; probe metrics (availability_pct, p50_ms, p99_ms, max_ms)
are per phase, measured on the frontend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import ConfigError

RECOVERY_METRICS = ("ttd_s", "outage_s", "mttr_service_s", "mttr_component_s")
PHASE_METRICS = ("availability_pct", "p50_ms", "p99_ms", "max_ms")
PHASES = ("baseline", "fault", "recovery")
_SLO = re.compile(r"^\s*(\w+)\s*(?:\[(\w+)\])?\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class SLO:
    """One objective: ``metric[phase] op target``."""

    metric: str
    op: str
    target: float
    phase: str | None = None

    def __post_init__(self) -> None:
        known = RECOVERY_METRICS + PHASE_METRICS
        if self.metric not in known:
            raise ConfigError("slo metric", self.metric, f"choose one of: {', '.join(known)}")
        if self.op not in ("<=", ">="):
            raise ConfigError("slo operator", self.op, "use <= or >=")
        if not math.isfinite(self.target) or self.target < 0:
            raise ConfigError("slo target", self.target, "must be a finite number >= 0")
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
        if self.metric == "availability_pct" and self.target > 100:
            raise ConfigError("slo target", self.target, "availability is a percentage <= 100")

    @classmethod
    def parse(cls, text: str) -> SLO:
        """``"p99_ms[baseline] <= 50"`` -> SLO; `ConfigError` naming what is wrong."""
        match = _SLO.match(text)
        if not match:
            raise ConfigError(
                "slo", text, "write it as metric[phase] <= number, e.g. 'p99_ms[baseline] <= 50'"
            )
        metric, phase, op, target = match.groups()
        try:
            value = float(target)
        except ValueError:
            raise ConfigError("slo target", target, "must be a number") from None
        return cls(metric, op, value, phase)

    def __str__(self) -> str:
        where = f"[{self.phase}]" if self.phase else ""
        return f"{self.metric}{where} {self.op} {self.target:g}"


@dataclass(frozen=True)
class SLOResult:
    """An SLO with what was measured, whether it held, and a sentence saying so."""

    slo: str
    metric: str
    phase: str | None
    target: float
    measured: float | None
    passed: bool
    message: str


def evaluate(slos: tuple[SLO, ...], measured: Mapping[str, float | None]) -> list[SLOResult]:
    """Judge every SLO; ``measured`` maps ``metric`` or ``metric[phase]`` to a value."""
    results = []
    for slo in slos:
        key = f"{slo.metric}[{slo.phase}]" if slo.phase else slo.metric
        value = measured.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            passed = False
            message = f"{slo} not met: {key} was never measured (did the component recover?)"
        else:
            passed = value <= slo.target if slo.op == "<=" else value >= slo.target
            if passed:
                message = f"{slo} holds: measured {value:.4g}"
            else:
                excess = abs(value - slo.target)
                rel = f" ({100 * excess / slo.target:.0f}% off)" if slo.target else ""
                phase = f" in the {slo.phase} phase" if slo.phase else ""
                message = f"{slo} broken{phase}: measured {value:.4g}, off by {excess:.4g}{rel}"
        results.append(
            SLOResult(str(slo), slo.metric, slo.phase, slo.target, value, passed, message)
        )
    return results
