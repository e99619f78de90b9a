"""The pytest plugin as a CI uses it: a scenario run under both HAProxy policies, its JUnit
properties, and the policies side by side in the terminal summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

SCENARIO = """
from harness import SLO, ChaosRun, ExperimentSpec, StackSpec, with_policy
from dataclasses import replace


def test_kill(stack_spec: StackSpec, haproxy_policy: str, chaos_run: ChaosRun) -> None:
    spec = ExperimentSpec(
        stack=with_policy(replace(stack_spec, block_time_s=0.5), haproxy_policy),
        load=None,
        baseline_s=0.5,
        settle_s=0.2,
        slos=(SLO.parse("outage_s <= 10"), SLO.parse("mttr_component_s <= 30")),
    )
    chaos_run(spec).assert_passed()
"""


def test_a_scenario_runs_under_both_policies_with_its_figures_in_junit_and_side_by_side(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_scenario=SCENARIO)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        f"--junitxml={junit}", "--reports-dir", str(pytester.path / "reports"), timeout=240
    )
    result.assert_outcomes(passed=2)
    cases = ET.parse(junit).getroot().iter("testcase")
    by_name = {c.get("name"): c for c in cases}
    assert set(by_name) == {"test_kill[roadmap]", "test_kill[hardened]"}
    for case in by_name.values():
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["harness_passed"] == "true"
        assert props["harness_report"].endswith("/report.html")
        assert props["harness_run_id"] in props["harness_report"]
        measured = props["slo outage_s <= 10"]
        assert measured.endswith("(pass)") and float(measured.split()[0]) >= 0
    out = result.stdout.str()
    assert "HAProxy policies side by side" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "policies side by side" in line)
    assert lines[header + 1].split() == ["scenario", "roadmap", "hardened"]
    row = lines[header + 2]
    assert row.split()[0] == "test_scenario.py::test_kill"
    assert row.count("/") == 6, row  # two policies' four figures
    # And one page for the session, each run linked to its own report.
    (suite,) = (pytester.path / "reports").glob("suite-*.html")
    page = suite.read_text()
    assert "HAProxy policies side by side" in page
    assert page.count("<td>PASSED</td>") == 4  # twice in the runs, twice side by side
    links = re.findall(r"href='([^']+)'", page)
    assert len(links) == 2 and all((suite.parent / link).is_file() for link in links)
