"""The alert rules a stack's Prometheus loads (fixtures/alerts.yml): their names, for SLOs
such as ``alert_fired_s[ServiceDown] <= 90`` to be checked against before a run starts.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ALERT_RULES = FIXTURES / "alerts.yml"
ALERT_TESTS = FIXTURES / "alerts_test.yml"


def alert_names(path: Path = ALERT_RULES) -> tuple[str, ...]:
    """Every alert a rule file defines, in file order; `ConfigError` if it cannot be read."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("rule file", str(path), f"cannot read it: {exc}") from exc
    names = [
        str(rule["alert"])
        for group in (doc or {}).get("groups", ())
        for rule in group.get("rules", ())
        if "alert" in rule
    ]
    return tuple(dict.fromkeys(names))


def require_alert(name: str, path: Path = ALERT_RULES) -> None:
    """`ConfigError` naming the rules there are, unless ``name`` is an alert of ``path``."""
    names = alert_names(path)
    if name not in names:
        raise ConfigError(
            "alert", name, f"no such alert in {path.name}; the rules are: {', '.join(names)}"
        )
