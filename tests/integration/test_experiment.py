"""The main job end to end: a real kill of the primary, measured and judged."""

from __future__ import annotations

import json
from pathlib import Path

from harness import ExperimentSpec, StackSpec, run_experiment
from harness.measure import SLO
from harness.stack import HealthCheck, RestartPolicy


def test_killing_the_primary_is_measured_and_judged(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(block_time_s=0.5, restart=RestartPolicy(delay_s=0.3)),
        baseline_s=1.0,
        settle_s=0.5,
    )
    result = run_experiment(spec, tmp_path)
    doc = json.loads((Path(result.run_dir) / "result.json").read_text())
    assert doc["fault"]["kind"] == "kill" and doc["fault"]["targets"] == ["node-0"]
    deaths = [e for e in doc["process_events"] if e["kind"] == "exited"]
    assert [(e["component"], e["detail"]) for e in deaths] == [("node-0", "killed by SIGKILL")]
    # The node was dead for at least the restart delay, so its own probes saw it.
    assert doc["recovery"]["mttr_component_s"] >= 0.3
    assert [p["name"] for p in doc["phases"]] == ["baseline", "fault", "recovery"]
    assert {s["slo"] for s in doc["slos"]} == {str(s) for s in spec.slos}
    assert (Path(result.run_dir) / "probes.jsonl").stat().st_size > 0
    assert (
        (Path(result.run_dir) / "summary.txt")
        .read_text()
        .startswith("PASS" if result.passed else "FAIL")
    )


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
        slos=(SLO.parse("ttd_s <= 5"), SLO.parse("mttr_component_s <= 30")),
    )
    result = run_experiment(spec, tmp_path)
    by_slo = {s["slo"]: s for s in result.slos}
    assert by_slo["ttd_s <= 5"]["passed"], by_slo["ttd_s <= 5"]["message"]
    assert by_slo["ttd_s <= 5"]["measured"] < 1.0
    assert not by_slo["mttr_component_s <= 30"]["passed"]
    assert "never measured" in by_slo["mttr_component_s <= 30"]["message"]
    assert not result.passed
