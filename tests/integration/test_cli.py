"""The `harness` command as a user types it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.stack.state import stacks_dir
from tests.conftest import VENV_BIN


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "harness"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def run_dirs(reports: Path) -> list[Path]:
    """The run directories in a reports dir (beside them: the history's files)."""
    return [p for p in reports.iterdir() if p.is_dir()]


def no_stack_left() -> bool:
    return not stacks_dir().exists() or not any(stacks_dir().iterdir())


def test_stack_up_status_down_round_trip_with_json() -> None:
    up = harness("stack", "up", "--json", "--block-time", "0.5")
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    assert state["ready_s"] > 0
    pids = [c["pid"] for c in state["components"]]
    try:
        status = harness("stack", "status", "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        by_name = {c["name"]: c for c in doc["components"]}
        assert by_name["node-0"]["haproxy"]["status"] == "UP"
        assert by_name["node-1"]["role"] == "backup"
        assert by_name["haproxy"]["health"] == "answering"
        assert isinstance(by_name["node-0"]["head"], int)
        human = harness("stack", "status")
        assert "node-0" in human.stdout and "UP" in human.stdout
    finally:
        down = harness("stack", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    assert no_stack_left()


def test_a_stack_with_the_fault_proxy_shows_its_status_table_with_the_proxys_health() -> None:
    up = harness("stack", "up", "--fault-proxy", "--block-time", "0.5")
    try:
        assert up.returncode == 0, up.stderr
        assert "fault-proxy" in up.stdout and "answering" in up.stdout
        status = harness("stack", "status")
        assert status.returncode == 0, status.stderr
        (proxy_row,) = [line for line in status.stdout.splitlines() if "fault-proxy" in line]
        assert "answering" in proxy_row
    finally:
        down = harness("stack", "down")
    assert down.returncode == 0, down.stderr
    assert no_stack_left()


def test_a_hardened_stack_shows_the_lag_agents_verdict_per_node() -> None:
    up = harness("stack", "up", "--haproxy-policy", "hardened", "--block-time", "0.5")
    try:
        assert up.returncode == 0, up.stderr
        status = harness("stack", "status")
        (agent_row,) = [line for line in status.stdout.splitlines() if "lag-agent" in line]
        assert "node-0 up, node-1 up" in agent_row
    finally:
        down = harness("stack", "down")
    assert down.returncode == 0, down.stderr
    assert no_stack_left()


def test_status_of_a_stack_that_is_not_running_says_how_to_start_one() -> None:
    result = harness("stack", "status")
    assert result.returncode == 1
    assert "harness stack up" in result.stderr


def test_unknown_node_kind_is_exit_2_and_names_the_choices() -> None:
    result = harness("stack", "up", "--node", "parity")
    assert result.returncode == 2
    assert "parity" in result.stderr and "anvil" in result.stderr


def test_missing_node_binary_is_exit_2_with_how_to_get_it() -> None:
    env = dict(os.environ, PATH="/usr/bin:/bin")
    result = harness("stack", "up", "--node", "geth", env=env)
    assert result.returncode == 2
    assert "geth" in result.stderr and "put `geth` on PATH" in result.stderr
    assert no_stack_left()


def test_taken_port_is_exit_2_and_leaves_nothing_running() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = harness("stack", "up", "--frontend-port", str(port))
    assert result.returncode == 2
    assert f"frontend_port={port}" in result.stderr and "already in use" in result.stderr
    assert no_stack_left()


def test_a_template_that_leaves_a_node_out_of_the_backend_is_refused_before_any_wait(
    tmp_path: Path,
) -> None:
    roadmap = (Path(__file__).parents[2] / "fixtures" / "haproxy.cfg.j2").read_text()
    only_primary = roadmap.replace("{% for s in servers %}", "{% for s in servers[:1] %}")
    assert only_primary != roadmap
    template = tmp_path / "one-server.cfg.j2"
    template.write_text(only_primary)
    started = time.monotonic()
    result = harness("stack", "up", "--haproxy-config", str(template))
    assert result.returncode == 2, result.stderr
    assert "no `server` line for node-1" in result.stderr
    assert time.monotonic() - started < 10, "refused from the rendered config, not a timeout"
    assert no_stack_left()


def test_template_haproxy_rejects_is_exit_2_with_haproxys_message(tmp_path: Path) -> None:
    template = tmp_path / "broken.cfg.j2"
    template.write_text("frontend x\n    bind 127.0.0.1:{{ frontend_port }}\n    frobnicate\n")
    result = harness("stack", "up", "--haproxy-config", str(template))
    assert result.returncode == 2
    assert "frobnicate" in result.stderr
    assert no_stack_left()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--nodes", "0"], "nodes"),
        (["--block-time", "-1"], "block_time_s"),
        (["--fall", "0"], "health_check"),
        (["--haproxy-config", "/no/such/template"], "haproxy_template"),
    ],
)
def test_bad_stack_options_are_exit_2_naming_the_field(args: list[str], field: str) -> None:
    result = harness("stack", "up", *args)
    assert result.returncode == 2
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert no_stack_left()


def test_unwritable_reports_dir_is_exit_2_before_anything_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = harness("run", "--reports-dir", str(blocker / "reports"))
    assert result.returncode == 2
    assert "reports_dir" in result.stderr and "--reports-dir" in result.stderr
    assert no_stack_left()


def test_run_writes_a_result_and_a_summary(tmp_path: Path) -> None:
    # What is tested is the report, not this machine's speed: SLOs any healthy run meets.
    result = harness(
        "run", "--reports-dir", str(tmp_path), "--block-time", "0.5",
        "--slo", "outage_s <= 10", "--slo", "mttr_component_s <= 30",
        "--cost-per-minute", "120", "--currency", "EUR",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    (run_dir,) = run_dirs(tmp_path)
    # Strict JSON, as any other language reads it: no NaN, no Infinity.
    doc = json.loads((run_dir / "result.json").read_text(), parse_constant=pytest.fail)
    assert doc["run_id"] == run_dir.name
    assert doc["passed"] is True
    assert doc["steady_state_before"]["ok"] is True
    assert doc["steady_state_after"]["ok"] is True
    (episode,) = doc["episodes"]
    assert episode["fault"]["kind"] == "kill"
    assert episode["recovery"]["mttr_component_s"] is not None
    summary = (run_dir / "summary.txt").read_text()
    assert summary.startswith("PASS")
    # A kill's fault phase lasts milliseconds: its length is shown, not a rate over it.
    (fault_line,) = [line for line in summary.splitlines() if line.startswith("  load fault")]
    assert "req/s" not in fault_line and " ms, errors" in fault_line
    # The outage, priced: 120 EUR a minute.
    assert doc["budget"]["cost"] == pytest.approx(doc["measured"]["outage_s"] * 2, rel=1e-6)
    assert " EUR" in summary
    assert no_stack_left()
    # Every run writes its report; `harness report` renders it again from result.json.
    page = run_dir / "report.html"
    assert page.stat().st_size > 10_000
    page.unlink()
    again = harness("report", run_dir.name, "--reports-dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert page.is_file() and "PASS" in again.stdout


def test_report_of_a_run_that_does_not_exist_or_is_corrupt_is_exit_2(tmp_path: Path) -> None:
    missing = harness("report", "20990101-000000-abcdef", "--reports-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "harness history" in missing.stderr and "Traceback" not in missing.stderr
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "result.json").write_text('{"schema": "harness.result/2", "run_id": ')
    corrupt = harness("report", str(broken))
    assert corrupt.returncode == 2
    assert "not valid JSON" in corrupt.stderr
    assert not (broken / "report.html").exists()


def test_load_at_a_backup_node_sees_no_error_while_the_frontend_loses_the_killed_primary(
    tmp_path: Path,
) -> None:
    result = harness(
        "run", "--reports-dir", str(tmp_path), "--load-at", "node-1", "--rate", "100",
        "--baseline", "1s", "--settle", "1s", "--slo", "outage_s <= 10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    (run_dir,) = run_dirs(tmp_path)
    doc = json.loads((run_dir / "result.json").read_text())
    node_1 = next(c for c in doc["stack"]["components"] if c["name"] == "node-1")
    assert (doc["load"]["at"], doc["load"]["url"]) == (
        "node-1",
        f"http://127.0.0.1:{node_1['port']}/",
    )
    assert doc["load"]["samples"] > 100
    (episode,) = doc["episodes"]
    assert all(p["error_rate_pct"] == 0 for p in episode["load_phases"])
    assert episode["recovery"]["outage_s"] > 0  # the probes through HAProxy saw the kill
    assert "load at node-1 directly:" in (run_dir / "summary.txt").read_text()
    assert no_stack_left()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--load-profile", "whales"], "profile"),
        (["--rate", "-5"], "rate_per_s"),
        (["--slo", "p150_ms[baseline] <= 5"], "slo metric"),
        (["--slo", "p99_ms <= 5"], "slo p99_ms phase"),
        (["--abort-if", "errors > lots"], "abort_if"),
        (["--fault", "meteor"], "fault"),
        (["--baseline", "-1s"], "--baseline"),
        (["--load-at", "node-7"], "load_at"),
        (["--no-load", "--rate", "-5"], "rate_per_s"),
        (["--slo", "p99_ms[baseline:eth_nosuch] <= 5"], "slo p99_ms method"),
        (["--load-profile", "light", "--slo", "p99_ms[fault:debug_traceCall] <= 5"], "slo"),
        # Known only once the fault meets the stack's spec: still before anything starts.
        (["--fault", "rpc_error"], "fault_proxy"),
        (["--fault", "partition"], "isolation"),
        (["--fault", "kill", "-p", "grace_s=1"], "grace_s"),
        (["--fault", "proxy_latency", "--fault-proxy", "-p", "probability=2"], "probability"),
        (["--fault", "kill", "--target", "node-9"], "target"),
    ],
)
def test_bad_run_input_is_exit_2_naming_the_field_before_anything_starts(
    args: list[str], field: str, tmp_path: Path
) -> None:
    result = harness("run", "--reports-dir", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dirs(tmp_path), "a run directory was made for bad input"
    assert no_stack_left()


def test_a_profile_file_with_an_unknown_method_is_exit_2(tmp_path: Path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text('name = "mine"\n[weights]\neth_call = 1\neth_mineGold = 2\n')
    result = harness("run", "--reports-dir", str(tmp_path), "--load-profile", str(profile))
    assert result.returncode == 2
    assert "eth_mineGold" in result.stderr
