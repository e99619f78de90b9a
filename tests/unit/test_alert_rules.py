"""The shipped alert rules are valid and their promtool unit tests pass (fixtures/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.monitor.promtool import check_rules, run_rule_tests
from harness.monitor.rules import ALERT_RULES, ALERT_TESTS, alert_names, require_alert


@pytest.fixture(autouse=True)
def _promtool() -> None:
    # CI installs it through scripts/setup.sh: its absence is a broken setup, not a skip.
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `apt-get install prometheus` (or `make setup` as root)")


def test_shipped_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in check_rules(ALERT_RULES)


def test_every_rule_fires_and_stays_silent_as_its_promtool_unit_tests_say() -> None:
    assert "SUCCESS" in run_rule_tests(ALERT_TESTS)


def test_every_alert_has_a_unit_test() -> None:
    tested = set()
    for line in ALERT_TESTS.read_text().splitlines():
        if line.strip().startswith("alertname:"):
            tested.add(line.split(":", 1)[1].strip())
    assert set(alert_names()) == tested


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
