"""The main job end to end: a real kill of the primary, measured and judged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness import (
    EpisodeSpec,
    ExperimentSpec,
    LoadSpec,
    RunResult,
    Safeguard,
    StackSpec,
    run_experiment,
)
from harness.errors import ConfigError
from harness.measure import SLO
from harness.stack import HealthCheck, RestartPolicy
from harness.stack.state import stacks_dir


def held_s(result: RunResult) -> float:
    return (result.fault.reverted_ns - result.fault.effective_ns) / 1e9


def test_killing_the_primary_is_measured_and_judged(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.3)),
        baseline_s=1.0,
        settle_s=0.5,
    )
    result = run_experiment(spec, tmp_path)
    doc = json.loads((Path(result.run_dir) / "result.json").read_text())
    (episode,) = doc["episodes"]
    assert episode["fault"]["kind"] == "kill" and episode["fault"]["targets"] == ["node-0"]
    deaths = [e for e in doc["process_events"] if e["kind"] == "exited"]
    assert [(e["component"], e["detail"]) for e in deaths] == [("node-0", "killed by SIGKILL")]
    # The node was dead for at least the restart delay, so its own probes saw it.
    assert episode["recovery"]["mttr_component_s"] >= 0.3
    assert [p["name"] for p in episode["phases"]] == ["baseline", "fault", "recovery"]
    assert {s["slo"] for s in doc["slos"]} == {str(s) for s in spec.slos}
    assert (Path(result.run_dir) / "probes.jsonl").stat().st_size > 0
    # Head lag per node, over the run; the SLO metric is the largest of them.
    nodes = doc["head_lag"]["nodes"]
    assert set(nodes) == {"node-0", "node-1"}
    assert all(n["timeline"] and n["max_blocks"] is not None for n in nodes.values())
    assert doc["measured"]["max_head_lag_blocks"] == max(n["max_blocks"] for n in nodes.values())
    # What clients were told through the frontend, per phase, against the best node.
    assert doc["head_lag"]["frontend"]["timeline"]
    assert set(episode["frontend_head_lag_blocks"]) == {"baseline", "fault", "recovery"}
    summary = (Path(result.run_dir) / "summary.txt").read_text()
    assert summary.startswith("PASS" if result.passed else "FAIL")
    # What ran, with versions, as the binaries say (anvil 1.7.1 from npm here).
    ran = doc["stack"]["software"]
    assert re.match(r"anvil \d+\.\d+\.\d+", ran["node"]), ran
    assert re.match(r"HAProxy \d+\.\d+", ran["balancer"]), ran
    assert ran["proxy"] == "none"
    assert f"ran: {ran['node']}" in summary


def test_killing_haproxy_is_judged_by_the_frontend_it_serves(tmp_path: Path) -> None:
    # HAProxy has no port of its own to probe: it is back when the frontend answers again.
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.3)),
        target="haproxy",
        baseline_s=1.0,
        settle_s=0.5,
        load=None,
        slos=(SLO.parse("mttr_component_s <= 30"),),
    )
    result = run_experiment(spec, tmp_path)
    assert result.fault.targets == ("haproxy",)
    assert result.recovery.mttr_component_s is not None
    assert 0.3 <= result.recovery.mttr_component_s < 5
    assert result.passed, result.failures()


def test_bad_fault_input_fails_before_a_stack_or_a_report_exists(tmp_path: Path) -> None:
    # rpc_error needs the fault proxy, which this stack does not have.
    with pytest.raises(ConfigError) as caught:
        run_experiment(ExperimentSpec(fault="rpc_error", load=None), tmp_path / "reports")
    assert caught.value.field == "fault_proxy"
    assert not (tmp_path / "reports").exists()
    assert not list(stacks_dir().glob("*"))


def test_a_breached_slo_fails_the_run_and_says_which(tmp_path: Path) -> None:
    # Restarts off and a fast check: HAProxy must take the dead primary out of rotation.
    spec = ExperimentSpec(
        stack=StackSpec(
            block_time_s=0.5,
            restart=RestartPolicy(enabled=False),
            health_check=HealthCheck(inter_ms=100, fall=2, rise=1),
        ),
        baseline_s=0.5,
        settle_s=0.2,
        recovery_timeout_s=3,
        restore_timeout_s=1,  # the primary never comes back: no use waiting for it
        slos=(SLO.parse("ttd_s <= 5"), SLO.parse("mttr_component_s <= 30")),
    )
    result = run_experiment(spec, tmp_path)
    by_slo = {s.slo: s for s in result.slos}
    assert by_slo["ttd_s <= 5"].passed, by_slo["ttd_s <= 5"].message
    assert (by_slo["ttd_s <= 5"].measured or 99) < 1.0
    assert not by_slo["mttr_component_s <= 30"].passed
    assert "never measured" in by_slo["mttr_component_s <= 30"].message
    assert not result.passed


def test_a_safeguard_aborts_the_run_and_the_fault_is_still_undone(tmp_path: Path) -> None:
    # Every node killed and never restarted: HAProxy answers 503 to all of the load.
    spec = ExperimentSpec(
        stack=StackSpec(
            block_time_s=0.5,
            restart=RestartPolicy(enabled=False),
            health_check=HealthCheck(inter_ms=500, fall=2, rise=1),
        ),
        fault="kill",
        target="all",
        hold_s=30,
        baseline_s=1.0,
        settle_s=0.0,
        recovery_timeout_s=5,
        restore_timeout_s=1,
        load=LoadSpec(profile="light", rate_per_s=100, users=8, workers=1),
        safeguards=(Safeguard.parse("error_rate_pct > 50 for 2s"),),
    )
    result = run_experiment(spec, tmp_path)
    assert result.aborted == "safeguard tripped: error_rate_pct > 50 for 2s"
    assert not result.passed
    assert held_s(result) < 10, "the hold was cut short"
    assert result.episode.load[1].errors
    with pytest.raises(AssertionError, match=r"^.*run aborted: safeguard tripped"):
        result.assert_passed()
    assert "ABORTED" in (Path(result.run_dir) / "summary.txt").read_text().splitlines()[0]


def test_a_latency_safeguard_aborts_a_run_whose_every_call_is_slow(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, fault_proxy=True),
        fault="rpc_delay",
        target="all",
        fault_params={"delay_ms": 1500},
        hold_s=30,
        baseline_s=1.0,
        settle_s=0.0,
        recovery_timeout_s=5,
        load=LoadSpec(profile="light", rate_per_s=50, users=8, workers=1),
        safeguards=(Safeguard.parse("max_ms > 1000 for 2s"),),
    )
    result = run_experiment(spec, tmp_path)
    assert result.aborted == "safeguard tripped: max_ms > 1000 for 2s"
    assert held_s(result) < 15, "the hold was cut short"


def test_a_broken_slo_fails_a_scenario_with_one_line_saying_which(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.3)),
        baseline_s=0.5,
        settle_s=0.2,
        load=None,
        slos=(SLO.parse("outage_s <= 0"), SLO.parse("mttr_component_s <= 30")),
    )
    result = run_experiment(spec, tmp_path)
    with pytest.raises(AssertionError) as failure:
        result.assert_passed()
    message = str(failure.value)
    assert message.startswith("outage_s <= 0 broken: measured ")
    assert "mttr_component_s" not in message


def test_a_run_of_several_episodes_judges_each_on_one_stack_and_one_load(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.3)),
        episodes=(
            EpisodeSpec("pause", "backup", hold_s=0.5, baseline_s=0.5, settle_s=0.3),
            EpisodeSpec("kill", "primary", baseline_s=0.5, settle_s=0.3),
        ),
        load=LoadSpec(profile="light", rate_per_s=50, users=4, workers=1),
        slos=(SLO.parse("outage_s <= 10"), SLO.parse("mttr_component_s <= 30")),
    )
    result = run_experiment(spec, tmp_path)
    assert [e.fault.kind for e in result.episodes] == ["pause", "kill"]
    first, second = result.episodes
    assert first.end_ns <= second.start_ns, "episodes follow each other"
    # Each episode's load phases are its own, named as a scenario's are.
    assert [p.phase for p in second.load] == ["baseline", "fault", "recovery"]
    assert sum(p.requests for e in result.episodes for p in e.load) > 50
    # Between episodes the stack is back in its steady state.
    assert first.steady_after is not None and first.steady_after.ok
    # The run's figure is the worst episode's.
    worst = max(e.measured["mttr_component_s"] or 0 for e in result.episodes)
    assert result.measured["mttr_component_s"] == worst
    doc = json.loads((Path(result.run_dir) / "result.json").read_text())
    assert [e["label"] for e in doc["episodes"]] == ["pause backup", "kill primary"]
    assert [v["episode"] for v in doc["slos"]] == [0, 0, 1, 1]
    assert result.passed, result.failures()
    assert set(doc["by_fault_kind"]) == {"pause", "kill"}
    assert doc["episodes"][1]["command"].startswith("harness run --fault kill --target primary")
    page = (Path(result.run_dir) / "report.html").read_text()
    assert "By fault kind" in page and "Run it again" in page


def test_an_episodes_outage_ends_with_the_episode_not_with_a_later_ones_failures(
    tmp_path: Path,
) -> None:
    # A harmless episode, then a kill: the kill's failed probes belong to the kill only.
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.5)),
        episodes=(
            EpisodeSpec("pause", "backup", hold_s=0.3, baseline_s=0.5, settle_s=0.3),
            EpisodeSpec("kill", "primary", baseline_s=0.5, settle_s=0.3),
        ),
        load=None,
        slos=(SLO.parse("outage_s <= 10"),),
    )
    first, second = run_experiment(spec, tmp_path).episodes
    assert second.recovery.outage_s > 0, "the kill was seen"
    assert first.recovery.outage_s == 0, first.recovery
