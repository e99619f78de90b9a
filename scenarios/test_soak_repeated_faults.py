"""Soak: the same stack and load through a dozen faults in a row, for about four minutes.

Steady state: both nodes answer and agree, both UP in HAProxy; checked again between
episodes, so each fault starts from a healthy stack.
Faults: in turn, SIGKILL of the primary, a 3 s pause of the backup, SIGKILL of HAProxy, a
5 s sync stall of the primary; four rounds.
Load: the searcher mix, open model, 150 req/s through the frontend, the whole time.
What it shows that one episode cannot: recovery that holds up when faults repeat (restart
backoff, a node that is still catching up, connections that never come back).
Long: runs only when asked for (``-m soak``).
"""

from __future__ import annotations

import pytest

from harness import SLO, ChaosRun, EpisodeSpec, ExperimentSpec, LoadSpec, StackSpec

ROUND = (
    EpisodeSpec("kill", "primary", baseline_s=5, settle_s=3),
    EpisodeSpec("pause", "backup", hold_s=3, baseline_s=5, settle_s=3),
    EpisodeSpec("kill", "haproxy", baseline_s=5, settle_s=3),
    EpisodeSpec("stall", "primary", hold_s=5, baseline_s=5, settle_s=3),
)


@pytest.mark.soak
@pytest.mark.chaos
def test_recovery_holds_up_through_a_dozen_faults_in_a_row(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(
        ExperimentSpec(
            stack=stack_spec,
            episodes=ROUND * 4,
            load=scenario_load,
            slos=(
                SLO.parse("p99_ms[baseline] <= 50"),
                SLO.parse("outage_s <= 10"),
                SLO.parse("mttr_component_s <= 30"),
            ),
        )
    )
    result.assert_passed()
    assert len(result.episodes) == 16
