"""Scenario: the primary node is killed under searcher load; the stack must recover.

This is the main job as a pytest scenario. Copy it and edit the spec: another fault,
other SLOs, your own HAProxy template (`--haproxy-config`), another node (`--node`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import SLO, ExperimentSpec, LoadSpec, StackSpec, run_experiment


@pytest.mark.chaos
@pytest.mark.slo
def test_service_recovers_within_slo_when_the_primary_is_killed(
    stack_spec: StackSpec, reports_dir: Path
) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(
            name=f"{stack_spec.name}-kill",
            node_kind=stack_spec.node_kind,
            haproxy_template=stack_spec.haproxy_template,
            block_time_s=stack_spec.block_time_s,
        ),
        fault="kill",
        target="primary",
        load=LoadSpec(profile="searcher", model="open", rate_per_s=150, users=24, workers=1),
        baseline_s=2.0,
        settle_s=1.0,
        slos=(
            SLO.parse("error_rate_pct[baseline] <= 1"),
            # The roadmap's p99 < 50 ms. The load's latencies end at the kernel's receive
            # time, so a starved load generator no longer inflates them: with 4 CPU hogs on
            # these 2 cores the baseline p99 measured 1.4-9.3 ms.
            SLO.parse("p99_ms[baseline] <= 50"),
            SLO.parse("outage_s <= 10"),
            SLO.parse("mttr_component_s <= 30"),
            SLO.parse("max_head_lag_blocks <= 5"),
        ),
    )
    run_experiment(spec, reports_dir).assert_passed()
