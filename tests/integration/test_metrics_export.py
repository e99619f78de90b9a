"""Results as metrics, delivered to real receivers: Debian's prometheus-pushgateway (its
persistence off) and prometheus-node-exporter's textfile collector (its other collectors
off), each on a free loopback port, read back from their own /metrics.

The runs are real runs' result.json (tests/fixtures/) and, once, a short `harness run`."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.monitor.promtool import binary
from harness.stack.ports import free_port
from tests.conftest import VENV_BIN

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def harness(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "harness"), *args], capture_output=True, text=True, timeout=timeout_s
    )


def run_dir(tmp_path: Path, fixture: str, **changes: Any) -> Path:
    """A run directory holding a real run's result.json (with ``changes`` applied)."""
    doc = json.loads((FIXTURES / fixture).read_text())
    doc.update(changes)
    directory = tmp_path / doc["run_id"]
    directory.mkdir(parents=True)
    (directory / "result.json").write_text(json.dumps(doc))
    return directory


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def started(argv: list[str], url: str, cwd: Path) -> subprocess.Popen[bytes]:
    """``argv`` running, once ``url`` answers (within 10 s); its stderr in the error if not."""
    log = cwd / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=5)
    raise AssertionError(f"{argv[0]} did not answer at {url}: {log.read_text()[-2000:]}")


def stopped(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path / "pushgateway"
    home.mkdir()
    proc = started(
        [
            str(binary("prometheus-pushgateway")),
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",  # nothing kept between tests, nothing written outside
        ],
        url + "/-/ready",
        home,
    )
    try:
        yield url
    finally:
        stopped(proc)


def test_a_pushed_game_day_is_served_by_the_pushgateway_in_its_runs_group(
    tmp_path: Path, pushgateway: str
) -> None:
    directory = run_dir(tmp_path, "result-gameday.json")
    begin = time.perf_counter()
    pushed = harness("export", str(directory), "--pushgateway", pushgateway)
    took_s = time.perf_counter() - begin
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed to" in pushed.stdout
    served = scrape(pushgateway)
    passed = [lab for n, lab, v in served if n == "harness_run_passed"]
    assert passed == [
        {
            "job": "harness",
            "instance": "",
            "run": "gameday",
            "run_id": "20261202-032616-939dcd",
            "kind": "gameday",
            "policy": "roadmap",
            "chain": "independent",
        }
    ]
    mttrs = [
        (lab["episode"], lab["fault"], v)
        for n, lab, v in served
        if n == "harness_episode_mttr_seconds" and lab["of"] == "service"
    ]
    assert len(mttrs) == 7
    assert ("7", "memory", pytest.approx(24.952915123)) in mttrs
    # The Pushgateway's own record of the push, which a dashboard can alert on when stale.
    assert any(n == "push_time_seconds" and lab["run"] == "gameday" for n, lab, _ in served)
    assert took_s < 5


def test_a_later_run_of_the_same_name_replaces_its_groups_series_whole(
    tmp_path: Path, pushgateway: str
) -> None:
    name = 'scenarios/test_x.py::test_y["quoted"]'
    first = run_dir(tmp_path / "a", "result-anomalies.json", name=name)
    second = run_dir(tmp_path / "b", "result-gameday.json", name=name)
    other = run_dir(tmp_path / "c", "result-gameday.json", run_id="another")
    for directory in (first, second, other):
        done = harness("export", str(directory), "--pushgateway", pushgateway)
        assert done.returncode == 0, done.stderr
    served = scrape(pushgateway)
    runs = {(lab["run"], lab["run_id"]) for n, lab, _ in served if n == "harness_run_passed"}
    assert runs == {(name, "20261202-032616-939dcd"), ("gameday", "another")}
    # The first run's anomaly series are gone with it, not left beside the second's.
    assert not [lab for n, lab, _ in served if lab.get("run_id") == "20261202-032411-f52f4d"]


def test_a_pushgateway_with_nothing_listening_is_one_line_and_exit_2(tmp_path: Path) -> None:
    directory = run_dir(tmp_path, "result-gameday.json")
    url = f"http://127.0.0.1:{free_port()}"
    failed = harness("export", str(directory), "--pushgateway", url)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"error: --pushgateway='{url}': no Pushgateway answers there ([Errno 111] "
        "Connection refused): start one, or fix the URL"
    ]


def test_node_exporters_textfile_collector_serves_the_exported_run(tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    directory = run_dir(tmp_path, "result-anomalies.json")
    written = harness("export", str(directory), "--textfile", str(textfiles))
    assert written.returncode == 0, written.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = started(
        [
            str(binary("prometheus-node-exporter")),
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfiles}",
        ],
        url + "/metrics",
        tmp_path,
    )
    try:
        served = scrape(url)
    finally:
        stopped(proc)
    errors = [v for n, _, v in served if n == "node_textfile_scrape_error"]
    assert errors == [0.0]
    regressions = {
        lab["phase"]: v
        for n, lab, v in served
        if n == "harness_episode_client_anomalies" and lab["anomaly"] == "head_regressions"
    }
    assert regressions["recovery"] > 0
    passed = [(lab["run"], v) for n, lab, v in served if n == "harness_run_passed"]
    assert passed == [
        (
            "scenarios/test_one_chain.py::test_failing_over_to_a_backup_three_blocks_behind"
            "_never_moves_a_clients_head_back[hardened]",
            0.0,
        )
    ]


def test_harness_run_writes_the_textfile_and_pushes_after_its_verdict(
    tmp_path: Path, pushgateway: str
) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    ran = harness(
        "run", "--reports-dir", str(tmp_path / "reports"), "--no-load", "--block-time", "0.5",
        "--baseline", "0.5s", "--settle", "0.2s", "--run-name", "export-check",
        "--slo", "outage_s <= 10", "--textfile", str(textfiles), "--pushgateway", pushgateway,
        timeout_s=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr + ran.stdout
    from_file = [
        s.labels["run_id"]
        for f in text_string_to_metric_families((textfiles / "harness.prom").read_text())
        for s in f.samples
        if s.name == "harness_run_passed"
    ]
    pushed = [lab["run_id"] for n, lab, _ in scrape(pushgateway) if n == "harness_run_passed"]
    assert from_file == pushed and len(pushed) == 1
    assert (tmp_path / "reports" / pushed[0] / "result.json").is_file()


def test_harness_run_with_an_unreachable_pushgateway_starts_nothing(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    url = f"http://127.0.0.1:{free_port()}"
    failed = harness("run", "--reports-dir", str(reports), "--no-load", "--pushgateway", url)
    assert failed.returncode == 2
    assert "no Pushgateway answers there" in failed.stderr
    assert not reports.exists() or not any(reports.iterdir())
