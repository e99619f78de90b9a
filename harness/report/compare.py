"""Compare: one recorded run's figures against another's (the run before it, or the
scenario's baseline), metric by metric, flagging what got worse beyond a tolerance.

Place in the flow: reads two `harness.report.history.RunRecord`s, nothing live. What each
metric means, its unit and which way is better come from `harness.measure.metrics`.

Only gated metrics can regress: by default the recovery times (MTTR, outage) and every
p99 latency; ``--tolerance`` rules gate more (``availability_pct=0.5``) or loosen these.
A gated metric regresses when it got worse by more than its relative tolerance AND by
more than its absolute floor, or when a recovery figure was measured before and is not
now (an MTTR that is None is a component that never came back; a per-phase figure with no
sample is only "missing"). The comparison also says whether the
stack's or the HAProxy template's fingerprint changed: "I changed haproxy.cfg; did MTTR
regress?" is the question it answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from harness.errors import ConfigError
from harness.measure.metrics import METRICS, Better, metric_of
from harness.report.history import Run, RunRecord


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: regressed when worse by more than ``relative_pct``
    of its earlier value and by more than ``absolute`` (in the metric's unit)."""

    relative_pct: float
    absolute: float


# Defaults for noisy machines (2-core CI runners, a laptop running other things): runs of
# the same stack differ by a probe interval or two in recovery times and by a scheduler
# hiccup in a p99, so 20% alone would flag 0.10 s -> 0.13 s. Both must be exceeded: the
# floor keeps small values from tripping on jitter (1.0 -> 1.1 s outage is noise, 1 -> 3 s
# is not), the percentage keeps large ones from tripping on a fixed step.
_TIME_S = Tolerance(relative_pct=20.0, absolute=0.25)
_P99_MS = Tolerance(relative_pct=20.0, absolute=2.0)
DEFAULT_TOLERANCES: Mapping[str, Tolerance] = {
    "outage_s": _TIME_S,
    "mttr_service_s": _TIME_S,
    "mttr_component_s": _TIME_S,
    "p99_ms": _P99_MS,
}

_AMOUNT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*(?:%|s|ms|us)?"
_TOLERANCE = re.compile(rf"^\s*([A-Za-z0-9_*?]+)\s*=\s*({_AMOUNT})(?:\s*,\s*({_AMOUNT}))?\s*$")
_SPLIT = re.compile(r"^([\d.eE+-]+)\s*(%|s|ms|us)?$")
_PER_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
FORMS = (
    "METRIC=N% (relative), METRIC=N (absolute, in the metric's unit; s, ms or us may follow "
    "a time) or METRIC=N%,N (both); METRIC is a metric name or a glob over them "
    "(e.g. p99_ms=25%, outage_s=0.5s, mttr_*=30%)"
)


@dataclass(frozen=True)
class ToleranceRule:
    """One parsed ``--tolerance``: the metrics it names and the parts it sets (None: kept)."""

    text: str
    metrics: tuple[str, ...]
    relative_pct: float | None
    absolute: Mapping[str, float] = field(default_factory=dict)  # per metric, in its unit

    def apply(self, base: Mapping[str, Tolerance]) -> dict[str, Tolerance]:
        """``base`` with this rule's parts set on each metric it names (which gates it)."""
        out = dict(base)
        for name in self.metrics:
            known = out.get(name, Tolerance(0.0, 0.0))
            if self.relative_pct is not None:
                known = replace(known, relative_pct=self.relative_pct)
            if name in self.absolute:
                known = replace(known, absolute=self.absolute[name])
            out[name] = known
        return out


def parse_tolerance(text: str) -> ToleranceRule:
    """``"p99_ms=25%"``, ``"outage_s=0.5s"``, ``"mttr_*=30%"``, ``"p99_ms=25%,5ms"`` ->
    a rule; `ConfigError` naming the text and the accepted forms if it does not parse."""
    match = _TOLERANCE.match(text)
    if not match:
        raise ConfigError("tolerance", text, f"write {FORMS}")
    pattern, *amounts = match.groups()
    metrics = tuple(m for m in METRICS if fnmatchcase(m, pattern))
    if not metrics:
        raise ConfigError(
            "tolerance", text, f"{pattern!r} names no metric; metrics: {', '.join(METRICS)}"
        )
    relative: float | None = None
    absolute: float | None = None
    unit = ""
    for amount in (a for a in amounts if a is not None):
        number, suffix = _number(text, amount)
        if suffix == "%":
            if relative is not None:
                raise ConfigError("tolerance", text, f"give one percentage at most; {FORMS}")
            relative = number
        else:
            if absolute is not None:
                raise ConfigError("tolerance", text, f"give one absolute amount at most; {FORMS}")
            absolute, unit = number, suffix
    per_metric: dict[str, float] = {}
    if absolute is not None:
        for name in metrics:
            per_metric[name] = _in_unit_of(text, name, absolute, unit)
    return ToleranceRule(text, metrics, relative, per_metric)


def tolerances(
    texts: Iterable[str] = (), base: Mapping[str, Tolerance] = DEFAULT_TOLERANCES
) -> dict[str, Tolerance]:
    """The defaults with each ``--tolerance`` applied in order (a later rule wins)."""
    out = dict(base)
    for text in texts:
        out = parse_tolerance(text).apply(out)
    return out


def _number(text: str, amount: str) -> tuple[float, str]:
    found = _SPLIT.match(amount.replace(" ", ""))
    if found is None:  # the outer pattern admits only what this one splits
        raise ConfigError("tolerance", text, f"write {FORMS}")
    value = float(found.group(1))
    if not math.isfinite(value):
        raise ConfigError("tolerance", text, f"{amount!r} is not a finite number; {FORMS}")
    return value, found.group(2) or ""


def _in_unit_of(text: str, name: str, amount: float, unit: str) -> float:
    metric_unit = METRICS[name].unit
    if not unit:
        return amount
    if metric_unit not in _PER_S:
        raise ConfigError(
            "tolerance",
            text,
            f"{unit} is a time but {name} is in {metric_unit}: give a bare number "
            f"(in {metric_unit}) or narrow the glob",
        )
    return amount * _PER_S[unit] / _PER_S[metric_unit]


Status = Literal["regressed", "missing", "worse", "better", "same", "new", "unmeasured"]


@dataclass(frozen=True)
class Change:
    """One metric key before and after: the change, and whether it is a regression."""

    key: str
    unit: str
    better: Better
    before: float | None
    after: float | None
    tolerance: Tolerance | None  # None: not gated, shown only

    @property
    def change(self) -> float | None:
        """after - before, in the metric's unit; None unless both were measured."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def change_pct(self) -> float | None:
        """The change as a percentage of before; None when before is 0 or unmeasured."""
        change = self.change
        if change is None or self.before == 0:
            return None
        assert self.before is not None
        return 100.0 * change / abs(self.before)

    @property
    def worse_by(self) -> float | None:
        """How much worse, in the metric's unit (negative: better)."""
        change = self.change
        if change is None:
            return None
        return change if self.better == "lower" else -change

    @property
    def regression(self) -> bool:
        if self.tolerance is None:
            return False
        if self.before is not None and self.after is None:
            # An MTTR gone is a component that never came back; a phase's latency gone is
            # a phase that got no request (a kill's fault phase lasts milliseconds).
            return not metric_of(self.key).per_phase
        worse = self.worse_by
        if worse is None or worse <= self.tolerance.absolute:
            return False
        assert self.before is not None
        if self.before == 0:
            return True  # from nothing to more than the floor: no percentage can excuse it
        return 100.0 * worse / abs(self.before) > self.tolerance.relative_pct

    @property
    def status(self) -> Status:
        if self.regression:
            return "missing" if self.after is None else "regressed"
        if self.before is None and self.after is None:
            return "unmeasured"
        if self.after is None:
            return "missing"
        if self.before is None:
            return "new"
        worse = self.worse_by
        assert worse is not None
        return "worse" if worse > 0 else "better" if worse < 0 else "same"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "unit": self.unit,
            "better": self.better,
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "change_pct": self.change_pct,
            "gated": self.tolerance is not None,
            "tolerance": None
            if self.tolerance is None
            else {"relative_pct": self.tolerance.relative_pct, "absolute": self.tolerance.absolute},
            "regression": self.regression,
            "status": self.status,
        }


@dataclass(frozen=True)
class Comparison:
    """Every metric of ``current`` beside ``against``, and what changed in the stack."""

    current: Run
    against: Run
    changes: tuple[Change, ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regression)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def stack_changed(self) -> bool:
        """The stack's fingerprint differs: what shapes its behaviour was changed."""
        return self.current.stack_fingerprint != self.against.stack_fingerprint

    @property
    def template_changed(self) -> bool:
        """The HAProxy template's fingerprint differs: haproxy.cfg was edited."""
        return self.current.template_fingerprint != self.against.template_fingerprint

    def to_dict(self) -> dict[str, Any]:
        """For ``harness compare --json``."""

        def run(r: Run) -> dict[str, Any]:
            return {
                "run_id": r.run_id,
                "name": r.name,
                "started_at": r.started_at,
                "passed": r.passed,
                "fingerprints": {"stack": r.stack_fingerprint, "template": r.template_fingerprint},
                "result_path": r.result_path,
            }

        return {
            "current": run(self.current),
            "against": run(self.against),
            "same_name": self.current.name == self.against.name,
            "stack_changed": self.stack_changed,
            "template_changed": self.template_changed,
            "regressed": self.regressed,
            "regressions": [c.key for c in self.regressions],
            "changes": [c.to_dict() for c in self.changes],
        }

    def lines(self, every: bool = False) -> list[str]:
        """Plain lines for a person: what was compared, what changed in the stack, each
        regression, then the gated metrics (every metric measured in either if ``every``)."""
        cur, ago = self.current, self.against
        out = [f"{cur.run_id} against {ago.run_id} ({ago.started_at})"]
        if cur.name != ago.name:
            out.append(f"  different runs: {cur.name!r} against {ago.name!r}")
        out.append(
            "  stack: "
            + ("changed" if self.stack_changed else "same")
            + "; haproxy template: "
            + ("changed" if self.template_changed else "same")
        )
        shown = [
            c
            for c in self.changes
            if c.status != "unmeasured" and (every or c.tolerance is not None)
        ]
        shown.sort(key=lambda c: (not c.regression, c.tolerance is None))
        for c in shown:
            out.append("  " + _line(c))
        out.append(
            f"REGRESSED: {', '.join(c.key for c in self.regressions)}"
            if self.regressed
            else "no regression beyond tolerance"
        )
        return out


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g} {unit}"


def _line(c: Change) -> str:
    pct = c.change_pct
    change = (
        ""
        if c.change is None
        else f" ({c.change:+.4g} {c.unit}" + ("" if pct is None else f", {pct:+.1f}%") + ")"
    )
    return (
        f"{c.status.upper() if c.regression else c.status:>10}  {c.key}: "
        f"{_fmt(c.before, c.unit)} -> {_fmt(c.after, c.unit)}{change}"
    )


def _order(key: str) -> tuple[int, str]:
    return list(METRICS).index(metric_of(key).name), key


def compare(
    current: RunRecord,
    against: RunRecord,
    tolerances: Mapping[str, Tolerance] = DEFAULT_TOLERANCES,
) -> Comparison:
    """``current``'s figures against ``against``'s, every metric key either measured;
    ``tolerances`` maps metric names (``p99_ms`` covers every ``p99_ms[...]`` key) to the
    change each may show before it is a regression. Keys of no known metric (a retired
    one, in an old record) are left out."""
    keys = {k for k in (*current.measured, *against.measured) if k.split("[", 1)[0] in METRICS}
    changes = []
    for key in sorted(keys, key=_order):
        metric = metric_of(key)
        changes.append(
            Change(
                key=key,
                unit=metric.unit,
                better=metric.better,
                before=against.measured.get(key),
                after=current.measured.get(key),
                tolerance=tolerances.get(metric.name),
            )
        )
    return Comparison(current.run, against.run, tuple(changes))


__all__ = [
    "DEFAULT_TOLERANCES",
    "Change",
    "Comparison",
    "Tolerance",
    "ToleranceRule",
    "compare",
    "parse_tolerance",
    "tolerances",
]
