"""Scenario: the primary node is SIGKILLed under load; the supervisor restarts it.

Steady state: both nodes answer, HAProxy sees both UP, heads advance and agree.
Fault: SIGKILL of the primary; the supervisor restarts it after 0.5 s.
Load: the searcher mix, open model, 150 req/s through the frontend.
SLOs: the roadmap's p99 < 50 ms in the baseline, an outage under 10 s, the node back in
rotation within 30 s, nodes within 5 blocks of each other.

This is the main job as a pytest scenario, under both HAProxy policies. Copy it and edit
the spec. The stack is exactly the one the command line describes (``--nodes 3``,
``--check-inter-ms 500``, your own ``--haproxy-config``...): ``stack_spec`` carries it.
"""

from __future__ import annotations

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec, with_policy


@pytest.mark.quick
@pytest.mark.chaos
@pytest.mark.slo
def test_service_recovers_within_slo_when_the_primary_is_killed(
    stack_spec: StackSpec, haproxy_policy: str, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    spec = ExperimentSpec(
        stack=with_policy(stack_spec, haproxy_policy),
        fault="kill",
        target="primary",
        load=scenario_load,
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
    chaos_run(spec).assert_passed()
