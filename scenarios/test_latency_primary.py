"""Scenario: 100 ms of latency with 30 ms of jitter on every answer of the primary.

Steady state: both nodes answer and agree, both UP in HAProxy.
Fault: delay on the primary's link for 5 s: netem where the kernel has ``sch_netem``, else
the harness's fault proxy in front of the node (the result's mechanism says which ran).
Load: the searcher mix, open model, 150 req/s through the frontend.
SLOs: p99 per phase. A slow node is not a dead one: no HAProxy policy here takes it out,
so clients feel the whole delay while it lasts, and nothing once it is gone.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec


@pytest.mark.quick
@pytest.mark.chaos
def test_latency_on_the_primary_shows_in_the_fault_phase_p99_and_only_there(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(
        ExperimentSpec(
            stack=replace(stack_spec, fault_proxy=True),
            fault="latency",
            target="primary",
            fault_params={"delay_ms": 100, "jitter_ms": 30},
            hold_s=5.0,
            load=scenario_load,
            baseline_s=2.0,
            settle_s=2.0,
            slos=(
                SLO.parse("p99_ms[baseline] <= 50"),
                # The fault took effect, as clients see it: most answers carry the delay.
                SLO.parse("p50_ms[fault] >= 70"),
                SLO.parse("p99_ms[fault] <= 250"),
                SLO.parse("error_rate_pct[fault] <= 1"),
                SLO.parse("p99_ms[recovery] <= 50"),
            ),
        )
    )
    result.assert_passed()
