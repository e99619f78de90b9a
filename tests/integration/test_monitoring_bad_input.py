"""Bad monitoring input, through the command line and pytest as a user meets it: a rule
file promtool rejects, an SLO naming an alert the run's rules do not have, an unreachable
Pushgateway, a Prometheus config that does not render. Each is one line naming what is
wrong, exit 2 (pytest: its usage error, 4), and nothing left running. Plus pytest's
``--pushgateway``: each scenario's run is pushed to a real Pushgateway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.monitor.rules import FIXTURES, ROADMAP_RULES
from harness.stack.ports import free_port
from tests.conftest import VENV_BIN, processes_under
from tests.integration.test_metrics_export import pushgateway, scrape

__all__ = ["pushgateway"]  # the fixture, used below by name

NO_STACK = ("--no-load", "--baseline", "0.5s", "--settle", "0.2s", "--block-time", "0.5")


@pytest.fixture
def state() -> Iterator[Path]:
    """A state dir of the runs' own, short: HAProxy's socket path has at most 97 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="hm-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _env(state_dir: Path) -> dict[str, str]:
    return {**os.environ, "HARNESS_STATE_DIR": str(state_dir)}


def harness(state_dir: Path, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "harness"), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=_env(state_dir),
        check=False,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _nothing_left(state_dir: Path, reports: Path) -> None:
    assert processes_under(state_dir) == []
    stacks = [p for p in state_dir.rglob("state.json")] if state_dir.exists() else []
    assert stacks == [], stacks
    assert not reports.exists() or not any(p.is_dir() for p in reports.iterdir())


def test_a_rule_file_promtool_rejects_is_one_line_exit_2_and_starts_nothing(
    tmp_path: Path, state: Path
) -> None:
    bad = tmp_path / "rules.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up ==\n")
    reports = tmp_path / "reports"
    ran = harness(
        state, "run", "--reports-dir", str(reports), *NO_STACK, "--prometheus",
        "--alert-rules", str(bad),
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr + ran.stdout
    (line,) = _error_lines(ran.stderr)
    assert f"rule file='{bad}': promtool rejects it" in line
    assert "Traceback" not in ran.stderr
    _nothing_left(state, reports)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ((), "alert='ServiceDwn': no such alert in alerts.yml, alerts-roadmap.yml"),
        # A shipped alert, but not in the rules this run loads.
        (("--alert-rules", str(ROADMAP_RULES)), "alert='ServiceDown': no such alert in "),
    ],
    ids=["unknown-anywhere", "not-in-this-runs-rules"],
)
def test_an_slo_naming_an_alert_not_in_the_rules_is_one_line_exit_2(
    tmp_path: Path, state: Path, extra: tuple[str, ...], said: str
) -> None:
    name = "ServiceDwn" if not extra else "ServiceDown"
    reports = tmp_path / "reports"
    ran = harness(
        state, "run", "--reports-dir", str(reports), *NO_STACK, "--prometheus", *extra,
        "--slo", f"alert_fired_s[{name}] <= 90",
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr + ran.stdout
    (line,) = _error_lines(ran.stderr)
    assert said in line
    assert "the rules are: " in line
    _nothing_left(state, reports)


#: The command line, with the monitoring's templates read from another directory.
WITH_FIXTURES = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import harness.monitor.processes as processes
    processes.FIXTURES = Path(sys.argv[1])
    from harness.cli import main
    main(sys.argv[2:], prog_name="harness")
    """
)


def test_a_prometheus_config_that_does_not_render_is_one_line_exit_2_and_nothing_runs(
    tmp_path: Path, state: Path
) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    template = fixtures / "prometheus.yml.j2"
    template.write_text(template.read_text() + "\n  - job_name: {{ no_such_variable }}\n")
    reports = tmp_path / "reports"
    ran = subprocess.run(
        [sys.executable, "-c", WITH_FIXTURES, str(fixtures), "run", "--reports-dir",
         str(reports), *NO_STACK, "--prometheus"],
        capture_output=True, text=True, timeout=120, env=_env(state), check=False,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr + ran.stdout
    (line,) = _error_lines(ran.stderr)
    assert "prometheus.yml.j2" in line and "does not render" in line
    assert "no_such_variable" in line
    _nothing_left(state, reports)


def test_pytest_with_an_unreachable_pushgateway_is_a_usage_error_before_any_stack(
    tmp_path: Path, state: Path
) -> None:
    scenario = tmp_path / "test_scenario.py"
    scenario.write_text("def test_nothing(stack):\n    pass\n")
    url = f"http://127.0.0.1:{free_port()}"
    ran = subprocess.run(
        [str(VENV_BIN / "pytest"), "-q", "-p", "no:cacheprovider", str(scenario),
         "--pushgateway", url, "--reports-dir", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=60, env=_env(state), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert ran.returncode == 4, ran.stderr + ran.stdout  # pytest's usage error
    assert f"--pushgateway='{url}': no Pushgateway answers there" in ran.stderr
    assert processes_under(state) == []


PUSHED_SCENARIO = textwrap.dedent(
    """
    from harness import SLO, ChaosRun, ExperimentSpec, StackSpec

    def test_pushed(stack_spec: StackSpec, chaos_run: ChaosRun) -> None:
        chaos_run(
            ExperimentSpec(
                stack=stack_spec, fault="kill", target="primary", load=None,
                baseline_s=0.5, settle_s=0.2, slos=(SLO.parse("outage_s <= 10"),),
            )
        ).assert_passed()
    """
)


@pytest.mark.chaos
def test_pytest_pushes_each_scenarios_run_to_the_pushgateway(
    tmp_path: Path, state: Path, pushgateway: str
) -> None:
    scenario = tmp_path / "test_scenario.py"
    scenario.write_text(PUSHED_SCENARIO)
    ran = subprocess.run(
        [str(VENV_BIN / "pytest"), "-q", "-p", "no:cacheprovider", str(scenario),
         "--pushgateway", pushgateway, "--reports-dir", str(tmp_path / "reports"),
         "--block-time", "0.5"],
        capture_output=True, text=True, timeout=180, env=_env(state), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    served = scrape(pushgateway)
    passed = [(labels, v) for n, labels, v in served if n == "harness_run_passed"]
    assert len(passed) == 1, passed
    labels, value = passed[0]
    assert labels["run"] == "test_scenario.py::test_pushed" and value == 1.0
    assert processes_under(state) == []
