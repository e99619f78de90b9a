"""The alert rules a stack's Prometheus loads: fixtures/alerts.yml (the corrected and added
rules) and, beside them when a run asks, fixtures/alerts-roadmap.yml (the roadmap's three
as written). Their names, for SLOs such as ``alert_fired_s[ServiceDown] <= 90`` to be
checked against before a run starts; their ``for:``, for the slack an alert is given; and
`tune_rules`, a copy with a rule's threshold or ``for:`` set for one test (a test profile,
as the 1 s intervals are).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ALERT_RULES = FIXTURES / "alerts.yml"
ROADMAP_RULES = FIXTURES / "alerts-roadmap.yml"
ALERT_TESTS = FIXTURES / "alerts_test.yml"
#: Every rule file the harness ships: an SLO may name an alert of any of them.
SHIPPED_RULES = (ALERT_RULES, ROADMAP_RULES)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_s(text: str) -> float:
    """A Prometheus duration (``5m``, ``1m30s``, ``500ms``) in s; `ConfigError` if not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError("duration", text, "not a Prometheus duration (e.g. 30s, 5m, 1m30s)")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("rule file", str(path), f"cannot read it: {exc}") from exc
    return doc or {}


def alert_names(paths: Path | Sequence[Path] = SHIPPED_RULES) -> tuple[str, ...]:
    """Every alert the rule files define, in file order; `ConfigError` if one cannot be read."""
    files = (paths,) if isinstance(paths, Path) else tuple(paths)
    names = [
        str(rule["alert"])
        for path in files
        for group in _load(path).get("groups", ())
        for rule in group.get("rules", ())
        if "alert" in rule
    ]
    return tuple(dict.fromkeys(names))


def alert_delays_s(paths: Sequence[Path]) -> dict[str, float]:
    """Each alert's own delay before it fires, in s: its ``for:`` plus its group's
    ``interval:`` when the group has one (else the server's evaluation interval applies,
    which the caller counts)."""
    delays: dict[str, float] = {}
    for path in paths:
        for group in _load(path).get("groups", ()):
            tick = duration_s(str(group["interval"])) if "interval" in group else 0.0
            for rule in group.get("rules", ()):
                if "alert" in rule:
                    delays[str(rule["alert"])] = duration_s(str(rule.get("for", "0s"))) + tick
    return delays


def require_alert(name: str, paths: Path | Sequence[Path] = SHIPPED_RULES) -> None:
    """`ConfigError` naming the rules there are, unless ``name`` is an alert of ``paths``."""
    names = alert_names(paths)
    if name not in names:
        files = [paths] if isinstance(paths, Path) else list(paths)
        raise ConfigError(
            "alert",
            name,
            f"no such alert in {', '.join(p.name for p in files)}; "
            f"the rules are: {', '.join(names)}",
        )


@dataclass(frozen=True)
class RuleTuning:
    """What to change in one alert rule: the number its expression compares against (the
    last ``< N`` or ``> N``) and its ``for:`` (s); None keeps the rule's own."""

    threshold: float | None = None
    for_s: float | None = None


_COMPARISON = re.compile(r"([<>]=?)\s*(\d+(?:\.\d+)?(?:e-?\d+)?)")


def tune_rules(source: Path, out: Path, tunings: Mapping[str, RuleTuning]) -> Path:
    """Write to ``out`` the rules of ``source`` with each named alert's threshold and
    ``for:`` set as ``tunings`` says (comments are not kept); `ConfigError` for an alert
    not in ``source`` or a rule with no comparison to set. Check the result with promtool."""
    doc = _load(source)
    left = dict(tunings)
    for group in doc.get("groups", ()):
        for rule in group.get("rules", ()):
            tuning = left.pop(str(rule.get("alert")), None)
            if tuning is None:
                continue
            if tuning.threshold is not None:
                expr = str(rule["expr"])
                found = list(_COMPARISON.finditer(expr))
                if not found:
                    raise ConfigError(
                        "threshold", rule["alert"], "its expression compares against no number"
                    )
                last = found[-1]
                rule["expr"] = (
                    f"{expr[: last.start()]}{last.group(1)} {tuning.threshold:g}"
                    f"{expr[last.end() :]}"
                )
            if tuning.for_s is not None:
                rule["for"] = f"{int(tuning.for_s * 1000)}ms"
    if left:
        require_alert(next(iter(left)), source)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return out
