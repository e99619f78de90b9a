"""fixtures/grafana-dashboard.json reads only series that exist: each metric name in its
PromQL is one the exporter writes (harness.report.metrics.METRICS) or one the alert rules
read (fixtures/alerts.yml), so renaming either breaks this test, not a team's dashboard.
Grafana itself is not in the registries here: the model's shape is checked as Grafana
imports it, and every query is parsed by Prometheus's own parser (promtool)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.monitor.promtool import check_rules
from harness.monitor.rules import ALERT_RULES, FIXTURES, alert_names
from harness.report.metrics import METRICS

DASHBOARD = FIXTURES / "grafana-dashboard.json"
#: Series neither the exporter nor the rules' sources write, each named here on purpose:
#: the rules' own output (Prometheus's ALERTS) and the Pushgateway's record of a push.
OTHERS = {"ALERTS": "Prometheus, from the rules", "push_time_seconds": "the Pushgateway"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless"}
# Grafana's variables, as Prometheus would see them once Grafana substitutes them.
_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$run": ".*", "$policy": ".*"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords or labels)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.group(0) in _KEYWORDS or e[m.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function called
        names.add(m.group(0))
    return names


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    out = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    found = [
        (f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"])
        for p in panels(doc)
        for t in p.get("targets") or []
    ]
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert inner, f"variable {v['name']}: {query}"
            found.append((f"variable {v['name']}", inner.group(1)))
    return found


def alert_sources() -> set[str]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    return {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in metric_names(str(rule["expr"]))
    }


def test_metric_names_are_read_from_promql_and_not_its_functions_or_labels() -> None:
    expr = (
        "max without (node) (eth_head_block) - ignoring (node) group_right eth_head_block > 3 "
        'and on (instance) rate(x_total{code="5xx", a=~"$run"}[$__rate_interval]) > 1e3 '
        "or quantile by (fault) (0.5, harness_episode_ttd_seconds offset 5m) or vector(0)"
    )
    assert metric_names(expr) == {"eth_head_block", "x_total", "harness_episode_ttd_seconds"}


def test_the_alert_rules_sources_are_found_in_the_rule_file() -> None:
    sources = alert_sources()
    assert {"probe_success", "haproxy_server_status", "node_memory_MemTotal_bytes"} <= sources
    assert not sources & {"by", "rate", "proxy", "sum", "quantile_over_time"}


def test_every_metric_the_dashboard_reads_is_exported_or_read_by_an_alert_rule() -> None:
    known = set(METRICS) | alert_sources() | set(OTHERS)
    unknown = {
        (where, name)
        for where, expr in queries(dashboard())
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, sorted(unknown)


def test_the_dashboard_shows_verdicts_recovery_slo_margins_anomalies_and_the_rules() -> None:
    read = {name for _, expr in queries(dashboard()) for name in metric_names(expr)}
    assert {
        "harness_run_passed",
        "harness_episode_mttr_seconds",
        "harness_episode_outage_seconds",
        "harness_slo_margin",
        "harness_client_anomalies",
        "harness_error_budget_used_ratio",
    } <= read
    assert len(read & alert_sources()) >= 5


def test_every_alert_the_dashboard_names_is_a_rule() -> None:
    named = {
        m.group(1)
        for _, expr in queries(dashboard())
        for m in re.finditer(r'alertname="([^"]+)"', expr)
    }
    titled = {
        m.group(1) for p in panels(dashboard()) for m in re.finditer(r"\((\w+)\)$", p["title"])
    }
    assert (named | titled) <= set(alert_names())
    assert titled  # the rules' panels say which rule each one shows


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    rules = []
    for i, (_, expr) in enumerate(queries(dashboard())):
        for variable, value in _VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert "SUCCESS" in check_rules(path)


def test_the_model_is_one_grafana_imports() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"] and isinstance(doc["schemaVersion"], int)
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "run", "policy"} <= variables
    for p in panels(doc):
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"][
            "w"
        ] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for variable in re.findall(r"\$\w+", json.dumps(p["targets"])):
            assert variable in _VARIABLES, (p["title"], variable)


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_each_series_from_elsewhere_is_used(name: str) -> None:
    read = {n for _, expr in queries(dashboard()) for n in metric_names(expr)}
    assert name in read, f"{name} ({OTHERS[name]}) is allowed but no panel reads it"
