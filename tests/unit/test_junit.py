"""JUnit XML: a run's verdicts as test cases CI understands, in the shape the common JUnit
schemas (Jenkins' junit-10.xsd, Ant's junit-4.xsd) share, for passing, failing and aborted
runs, and written atomically."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.report.junit import junit_xml, write_junit

NAME = "scenarios/test_kill_primary.py::test_service_recovers_when_the_primary_is_killed"


def steady(ok: bool = True) -> dict[str, Any]:
    return {
        "ok": ok,
        "heads": {"node-0": 2},
        "duration_s": 0.8,
        "checks": [
            {"name": "node-0 answers", "ok": True, "detail": "head 1"},
            {"name": "haproxy sees every server UP", "ok": ok, "detail": "node-1 DOWN"},
        ],
    }


def verdict(
    slo: str, target: float, measured: float | None, passed: bool, episode: int = 0
) -> dict[str, Any]:
    word = "holds" if passed else "broken"
    return {
        "episode": episode,
        "slo": slo,
        "metric": slo.split("[")[0].split(" ")[0],
        "phase": None,
        "method": None,
        "target": target,
        "measured": measured,
        "passed": passed,
        "message": f"{slo} {word}: measured {measured:g}" if measured is not None else slo,
    }


def doc(**changes: Any) -> dict[str, Any]:
    """A passing run's document, cut to what the JUnit report reads."""
    base = {
        "schema": "harness.result/2",
        "run_id": "20261201-233142-86c589",
        "run_dir": "reports/20261201-233142-86c589",
        "name": NAME,
        "passed": True,
        "aborted": None,
        "started_at": "2026-12-01T23:31:42Z",
        "duration_s": 10.578,
        "fingerprints": {"stack": "558d74aa", "template": "3d57d414"},
        "episodes": [{"index": 0, "steady_state_after": steady()}],
        "steady_state_before": steady(),
        "steady_state_after": steady(),
        "slos": [
            verdict("p99_ms[baseline] <= 50", 50.0, 1.731, True),
            verdict("outage_s <= 10", 10.0, 1.0056, True),
        ],
    }
    return base | changes


def failing() -> dict[str, Any]:
    d = doc(passed=False)
    d["slos"] = [
        verdict("p99_ms[baseline] <= 50", 50.0, 73.2, False),
        verdict("outage_s <= 10", 10.0, 1.0056, True),
    ]
    return d


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert_junit_shape(root)
    return root


def assert_junit_shape(suite: ET.Element) -> None:
    """What junit-10.xsd and Ant's junit-4.xsd both require of a single testsuite."""
    assert suite.tag == "testsuite"
    for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
        assert suite.get(attr), attr
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))
    float(suite.get("time", ""))
    tags = [child.tag for child in suite]
    assert tags[0] == "properties" and tags[-2:] == ["system-out", "system-err"]
    assert set(tags[1:-2]) <= {"testcase"}
    props = suite.find("properties")
    assert props is not None
    for prop in props:
        assert prop.tag == "property" and prop.get("name") and prop.get("value") is not None
    cases = suite.findall("testcase")
    for case in cases:
        assert case.get("name") and case.get("classname")
        float(case.get("time", ""))
        for result in case:
            assert result.tag == "failure"
            assert result.get("type") and result.get("message") is not None
    assert int(suite.get("tests", "")) == len(cases)
    assert int(suite.get("failures", "")) == sum(c.find("failure") is not None for c in cases)


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name", ""): c for c in root.findall("testcase")}


def properties(root: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in root.iter("property")}


def test_a_passing_run_is_one_suite_of_passing_cases_one_per_slo_and_check() -> None:
    root = parse(junit_xml(doc()))
    assert root.get("name") == "harness"
    assert list(cases(root)) == [
        "p99_ms[baseline] <= 50",
        "outage_s <= 10",
        "steady state before",
        "steady state after",
        "run completed without abort",
    ]
    assert all(c.get("classname") == NAME for c in root.findall("testcase"))
    assert root.get("failures") == "0"
    assert root.findall(".//failure") == []
    assert root.get("timestamp") == "2026-12-01T23:31:42"


def test_the_properties_carry_the_run_id_the_report_path_and_each_slos_measured_value() -> None:
    props = properties(parse(junit_xml(doc())))
    assert props["run_id"] == "20261201-233142-86c589"
    assert props["report"] == "reports/20261201-233142-86c589/report.html"
    assert props["p99_ms[baseline] <= 50"] == "1.731"
    assert props["outage_s <= 10"] == "1.0056"
    assert props["template_fingerprint"] == "3d57d414"


def test_a_broken_slo_is_a_failed_case_whose_message_gives_the_measured_value() -> None:
    root = parse(junit_xml(failing()))
    failure = cases(root)["p99_ms[baseline] <= 50"].find("failure")
    assert failure is not None
    assert failure.get("message") == "p99_ms[baseline] <= 50 broken: measured 73.2"
    assert "measured 73.2 against target 50" in (failure.text or "")
    assert cases(root)["outage_s <= 10"].find("failure") is None
    assert root.get("failures") == "1"


def test_an_aborted_run_fails_the_abort_case_with_the_reason() -> None:
    root = parse(junit_xml(doc(passed=False, aborted="error_rate_pct > 90 for 5s")))
    failure = cases(root)["run completed without abort"].find("failure")
    assert failure is not None
    assert failure.get("message") == "run aborted: error_rate_pct > 90 for 5s"
    assert "ABORTED" in (root.findtext("system-out") or "")


def test_a_steady_state_not_reached_fails_its_case_naming_the_failed_check() -> None:
    root = parse(junit_xml(doc(passed=False, steady_state_after=steady(ok=False))))
    failure = cases(root)["steady state after"].find("failure")
    assert failure is not None
    assert "haproxy sees every server UP: node-1 DOWN" in (failure.get("message") or "")
    assert cases(root)["steady state before"].find("failure") is None


def test_a_steady_state_never_checked_is_a_failure_not_a_pass() -> None:
    root = parse(junit_xml(doc(passed=False, steady_state_after=None)))
    assert cases(root)["steady state after"].find("failure") is not None


def test_several_episodes_name_each_verdict_and_the_checks_between_them() -> None:
    d = doc(
        episodes=[
            {"index": 0, "steady_state_after": steady()},
            {"index": 1, "steady_state_after": steady()},
        ],
        slos=[
            verdict("outage_s <= 10", 10.0, 1.0, True, 0),
            verdict("outage_s <= 10", 10.0, 12.0, False, 1),
        ],
    )
    root = parse(junit_xml(d))
    names = list(cases(root))
    assert names[:3] == [
        "episode 1: outage_s <= 10",
        "episode 2: outage_s <= 10",
        "steady state before",
    ]
    assert "steady state after episode 1" in names
    assert properties(root)["outage_s <= 10 (episode 2)"] == "12"


@given(st.text(max_size=60))
def test_any_text_in_a_reason_still_makes_a_document_that_parses(reason: str) -> None:
    d = doc(passed=False, aborted=reason or "x")
    d["slos"] = copy.deepcopy(d["slos"])
    d["slos"][0]["message"] = reason
    d["slos"][0]["passed"] = False
    root = parse(junit_xml(d))
    failure = cases(root)["p99_ms[baseline] <= 50"].find("failure")
    assert failure is not None
    legal = re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", reason)
    assert failure.get("message") == legal


def test_the_report_is_written_atomically_replacing_an_older_one(tmp_path: Path) -> None:
    path = tmp_path / "out" / "junit.xml"
    write_junit(doc(), path)
    write_junit(failing(), path)
    assert parse(path.read_text()).get("failures") == "1"
    assert sorted(p.name for p in path.parent.iterdir()) == ["junit.xml"]


def test_a_path_that_cannot_be_written_is_a_config_error_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "junit.xml"
    target.mkdir()  # a directory where the file should go
    with pytest.raises(ConfigError, match="--junit"):
        write_junit(doc(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]
