"""Results as metrics: a run's document in Prometheus's text format, checked by promtool
and read back by a parser, with the names, labels and values the dashboards rely on.

The two documents are real runs' result.json (tests/fixtures/), their bulky timelines cut:
a 7-episode game day and a failing one-chain run whose clients saw head regressions."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import ConfigError
from harness.monitor.promtool import binary
from harness.report import metrics
from harness.report.metrics import METRICS, RUN_LABELS, exposition, write_textfile
from harness.report.pushgateway import check_url, group_url

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


GAMEDAY = load("result-gameday.json")
ANOMALIES = load("result-anomalies.json")


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary("promtool")), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def samples(doc: dict[str, Any]) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(exposition(doc))
        for s in family.samples
    ]


def value(doc: dict[str, Any], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(doc) if n == name and labels.items() <= lab.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.mark.parametrize("doc", [GAMEDAY, ANOMALIES], ids=["gameday", "anomalies"])
def test_a_real_runs_exposition_passes_promtool_check_metrics(doc: dict[str, Any]) -> None:
    proc = promtool_check(exposition(doc))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""  # no lint complaint either


def test_every_declared_metric_is_written_by_a_real_run_and_no_other() -> None:
    written = {n for doc in (GAMEDAY, ANOMALIES) for n, _, _ in samples(doc)}
    assert written == set(METRICS)


@pytest.mark.parametrize("doc", [GAMEDAY, ANOMALIES], ids=["gameday", "anomalies"])
def test_every_series_carries_the_runs_labels_and_its_own(doc: dict[str, Any]) -> None:
    run = metrics.run_labels(doc)
    for name, labels, _ in samples(doc):
        extra = METRICS[name][0]
        assert set(labels) == {*RUN_LABELS, *extra}, name
        assert {k: labels[k] for k in RUN_LABELS} == run


def test_the_run_labels_say_name_id_kind_policy_and_chain() -> None:
    assert metrics.run_labels(GAMEDAY) == {
        "run": "gameday",
        "run_id": "20261202-032616-939dcd",
        "kind": "gameday",
        "policy": "roadmap",
        "chain": "independent",
    }
    labels = metrics.run_labels(ANOMALIES)
    assert labels["run"].startswith("scenarios/test_one_chain.py::")
    assert (labels["kind"], labels["policy"], labels["chain"]) == ("experiment", "hardened", "one")


def test_a_failed_run_is_0_and_its_broken_slo_is_0_with_a_negative_margin() -> None:
    assert value(ANOMALIES, "harness_run_passed") == 0
    at = {"episode": "1", "slo": "head_regressions[recovery] <= 0"}
    assert value(ANOMALIES, "harness_slo_ok", **at) == 0
    measured = value(ANOMALIES, "harness_slo_measured", **at)
    assert measured > 0
    assert value(ANOMALIES, "harness_slo_margin", **at) == -measured
    assert value(ANOMALIES, "harness_slo_ok", episode="1", slo="hash_mismatch[recovery] <= 0") == 1


def test_a_greater_or_equal_slo_has_measured_minus_target_as_its_margin() -> None:
    at = {"episode": "1", "slo": "availability_pct[baseline] >= 99.9"}
    assert value(GAMEDAY, "harness_slo_measured", **at) == 100.0
    assert value(GAMEDAY, "harness_slo_margin", **at) == pytest.approx(0.1)


def test_each_episode_has_its_fault_target_outage_and_both_mttrs() -> None:
    memory = GAMEDAY["episodes"][6]["recovery"]
    at = {"episode": "7", "fault": "memory", "target": "one"}
    assert value(GAMEDAY, "harness_episode_outage_seconds", **at) == memory["outage_s"]
    assert value(GAMEDAY, "harness_episode_mttr_seconds", **at, of="service") == pytest.approx(
        memory["mttr_service_s"]
    )
    assert value(GAMEDAY, "harness_episode_mttr_seconds", **at, of="component") == pytest.approx(
        memory["mttr_component_s"]
    )
    episodes = {lab["episode"] for n, lab, _ in samples(GAMEDAY) if n == "harness_episode_passed"}
    assert episodes == {str(i) for i in range(1, 8)}


def test_an_unmeasured_ttd_is_left_out_not_written_as_nan() -> None:
    assert all(e["recovery"]["ttd_s"] is None for e in GAMEDAY["episodes"])
    assert not [n for n, _, _ in samples(GAMEDAY) if n == "harness_episode_ttd_seconds"]
    assert value(ANOMALIES, "harness_episode_ttd_seconds") == pytest.approx(0.035473058)


def test_client_anomalies_are_counted_per_run_and_per_episode_phase() -> None:
    assert value(ANOMALIES, "harness_client_anomalies", anomaly="head_regressions") == 52
    assert value(ANOMALIES, "harness_client_anomalies", anomaly="unknown_advertised_block") == 8
    measured = ANOMALIES["episodes"][0]["measured"]
    for phase in ("baseline", "fault", "recovery"):
        assert (
            value(
                ANOMALIES,
                "harness_episode_client_anomalies",
                anomaly="head_regressions",
                phase=phase,
            )
            == measured[f"head_regressions[{phase}]"]
        )


def test_the_error_budget_is_a_ratio_of_a_month() -> None:
    assert value(GAMEDAY, "harness_error_budget_target_ratio") == 0.9999
    used = GAMEDAY["budget"]["month_budget_used_pct"] / 100
    assert value(GAMEDAY, "harness_error_budget_used_ratio") == pytest.approx(used)


def test_an_slo_given_twice_is_one_series() -> None:
    doc = copy.deepcopy(ANOMALIES)
    doc["slos"].append(dict(doc["slos"][0]))
    assert promtool_check(exposition(doc)).returncode == 0
    assert len([n for n, _, _ in samples(doc) if n == "harness_slo_ok"]) == 3


def test_an_older_document_without_clients_policy_or_chain_still_exports() -> None:
    doc = copy.deepcopy(GAMEDAY)
    doc.pop("clients")
    doc.pop("kind")
    for key in ("policy", "chain"):
        doc["spec"]["stack"].pop(key)
    names = {n for n, _, _ in samples(doc)}
    assert "harness_client_anomalies" not in names
    assert metrics.run_labels(doc)["kind"] == "experiment"
    assert promtool_check(exposition(doc)).returncode == 0


NASTY = 'scenarios/a "quoted" \\ back\\slash\nnew line [x]::y'


def test_quotes_backslashes_and_newlines_in_labels_pass_promtool() -> None:
    doc = copy.deepcopy(ANOMALIES)
    doc["name"] = NASTY
    doc["slos"][0]["slo"] = 'alert_fired_s["x"\\n] <= 3'
    text = exposition(doc)
    assert '\\"quoted\\"' in text and "\\\\ back" in text and "\\nnew line" in text
    assert promtool_check(text).returncode == 0
    assert metrics.run_labels(doc)["run"] == NASTY


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=40), slo=st.text(min_size=1, max_size=30))
def test_any_run_name_and_slo_text_read_back_exactly(name: str, slo: str) -> None:
    doc = copy.deepcopy(ANOMALIES)
    doc["name"] = name
    doc["slos"] = [{**doc["slos"][0], "slo": slo}]
    read = {(n, lab["run"], lab.get("slo")) for n, lab, _ in samples(doc)}
    assert ("harness_run_passed", name, None) in read
    assert ("harness_slo_ok", name, slo) in read


def test_the_textfile_replaces_the_old_one_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "harness.prom").write_text("old\n")
    path = write_textfile(GAMEDAY, tmp_path)
    assert path == tmp_path / "harness.prom"
    assert path.read_text() == exposition(GAMEDAY)
    assert os.listdir(tmp_path) == ["harness.prom"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_textfile_that_cannot_be_moved_in_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "harness.prom").write_text("old\n")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics.os, "replace", refuse)
    with pytest.raises(ConfigError, match="No space left"):
        write_textfile(GAMEDAY, tmp_path)
    assert os.listdir(tmp_path) == ["harness.prom"]
    assert (tmp_path / "harness.prom").read_text() == "old\n"


def test_a_textfile_directory_that_does_not_exist_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--textfile.*existing, writable directory"):
        write_textfile(GAMEDAY, tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("localhost:9091", "with its scheme"),
        ("ftp://127.0.0.1:9091", "with its scheme"),
        ("http://", "with its scheme"),
        ("http://127.0.0.1:port", "not a URL"),
        ("http://127.0.0.1:9091/?x=1", "without"),
    ],
)
def test_a_malformed_pushgateway_url_names_the_option_and_the_fix(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match="--pushgateway") as caught:
        check_url(url)
    assert why in caught.value.fix


def test_a_run_name_with_slashes_is_pushed_to_its_base64_group() -> None:
    base = check_url("http://127.0.0.1:9091/")
    assert base == "http://127.0.0.1:9091"
    url = group_url(base, "scenarios/test_x.py::test_y[a]")
    assert url == (
        "http://127.0.0.1:9091/metrics/job/harness/run@base64/"
        "c2NlbmFyaW9zL3Rlc3RfeC5weTo6dGVzdF95W2Fd"
    )
    assert group_url(base, "").endswith("/run@base64/=")


def test_a_push_failing_after_the_run_keeps_its_reports_and_says_how_to_send_them(
    tmp_path: Path,
) -> None:
    from harness.report.delivery import deliver
    from harness.stack.ports import free_port

    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "result.json").write_text(json.dumps(GAMEDAY))
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as caught:
        deliver(directory, tmp_path, url)
    assert caught.value.field == "--pushgateway"
    assert caught.value.fix.endswith(
        f"the run's reports are kept: `harness export {directory} --textfile {tmp_path} "
        f"--pushgateway {url}` sends them"
    )
    assert (tmp_path / "harness.prom").is_file()  # the textfile went out before the push
    assert (directory / "result.json").is_file()
