"""Scenario: HAProxy itself is SIGKILLed; the supervisor restarts it.

Steady state: both nodes answer and agree, both UP in HAProxy.
Fault: SIGKILL of the balancer. Until it is back every client connection is refused: no
policy in its own config can help; only how fast it restarts (and is ready) does.
Load: the searcher mix, open model, 150 req/s through the frontend.
"""

from __future__ import annotations

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec


@pytest.mark.quick
@pytest.mark.chaos
def test_a_killed_haproxy_is_back_within_seconds(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(
        ExperimentSpec(
            stack=stack_spec,
            fault="kill",
            target="haproxy",
            load=scenario_load,
            baseline_s=2.0,
            settle_s=1.0,
            slos=(
                SLO.parse("p99_ms[baseline] <= 50"),
                # The supervisor's 0.5 s restart delay, and HAProxy's start.
                SLO.parse("outage_s <= 2"),
                SLO.parse("mttr_component_s <= 2"),
            ),
        )
    )
    result.assert_passed()
    assert result.episode.load[2].errors.get("connect_refused", 0) > 0
