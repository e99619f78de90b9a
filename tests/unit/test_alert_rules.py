"""The shipped alert rules are valid and their promtool unit tests pass (fixtures/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.monitor.promtool import check_rules, run_rule_tests
from harness.monitor.rules import (
    ALERT_RULES,
    ALERT_TESTS,
    ROADMAP_RULES,
    RuleTuning,
    alert_delays_s,
    alert_names,
    require_alert,
    tune_rules,
)

ROADMAP_TESTS = ROADMAP_RULES.with_name("alerts-roadmap_test.yml")


@pytest.fixture(autouse=True)
def _promtool() -> None:
    # CI installs it through scripts/setup.sh: its absence is a broken setup, not a skip.
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `apt-get install prometheus` (or `make setup` as root)")


@pytest.mark.parametrize("rules", [ALERT_RULES, ROADMAP_RULES], ids=lambda p: p.name)
def test_shipped_rules_pass_promtool_check(rules: Path) -> None:
    assert "SUCCESS" in check_rules(rules)


@pytest.mark.parametrize("tests", [ALERT_TESTS, ROADMAP_TESTS], ids=lambda p: p.name)
def test_every_rule_fires_and_stays_silent_as_its_promtool_unit_tests_say(tests: Path) -> None:
    assert "SUCCESS" in run_rule_tests(tests)


@pytest.mark.parametrize(
    ("rules", "tests"), [(ALERT_RULES, ALERT_TESTS), (ROADMAP_RULES, ROADMAP_TESTS)]
)
def test_every_alert_has_a_unit_test(rules: Path, tests: Path) -> None:
    tested = set()
    for line in tests.read_text().splitlines():
        if line.strip().startswith("alertname:"):
            tested.add(line.split(":", 1)[1].strip())
    assert set(alert_names(rules)) == tested


def test_an_alerts_delay_is_its_for_plus_its_own_groups_interval() -> None:
    delays = alert_delays_s([ALERT_RULES, ROADMAP_RULES])
    assert delays["HighMemoryUsage"] == 300
    assert delays["HAProxyNoServerUp"] == 0
    assert delays["RoadmapServiceDown"] == 60 + 30


def test_a_tuned_rule_keeps_its_expression_with_the_threshold_and_for_asked(
    tmp_path: Path,
) -> None:
    out = tune_rules(
        ALERT_RULES,
        tmp_path / "alerts.yml",
        {
            "HighMemoryUsage": RuleTuning(threshold=0.85, for_s=12),
            "LowDiskSpace": RuleTuning(for_s=8),
        },
    )
    assert "SUCCESS" in check_rules(out)
    assert alert_delays_s([out])["HighMemoryUsage"] == 12
    assert alert_delays_s([out])["LowDiskSpace"] == 8
    text = out.read_text()
    assert "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.85" in text
    # LowDiskSpace's `readonly == 0` is the last comparison: its threshold was not asked for.
    assert "node_filesystem_size_bytes < 0.1" in text


def test_tuning_an_alert_not_in_the_rules_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HighMemory.*the rules are"):
        tune_rules(ALERT_RULES, tmp_path / "a.yml", {"HighMemory": RuleTuning(for_s=1)})


def test_a_failing_rule_unit_test_is_a_config_error_with_promtools_words(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    # ServiceDown as the roadmap wrote it, against the test that expects probe_success.
    rules.write_text(
        ALERT_RULES.read_text().replace(
            'probe_success{job="blockchain-nodes"} == 0', 'up{job="blockchain-nodes"} == 0'
        )
    )
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(ALERT_TESTS.read_text())
    with pytest.raises(ConfigError, match="ServiceDown"):
        run_rule_tests(tests)


def test_a_rule_file_promtool_rejects_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up ==\n")
    with pytest.raises(ConfigError, match="promtool rejects it"):
        check_rules(bad)


def test_an_alert_not_in_the_rules_is_named_with_the_rules_there_are() -> None:
    with pytest.raises(ConfigError, match="the rules are: HighMemoryUsage, ServiceDown"):
        require_alert("ServiceDwn")
