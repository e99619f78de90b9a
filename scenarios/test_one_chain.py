"""Scenarios on one chain (``--chain one``): nodes that follow one chain source, each at its
own moment, and what clients see of that chain through the balancer.

Every answer the load and the probes got is checked against the chain source's log of
every branch (`harness.measure.checker`): ``head_regressions``, ``unknown_advertised_block``,
``hash_mismatch``, ``vanished_receipts``, ``missing_logs``, each per phase, as SLOs.
Load: the searcher mix, open model, 150 req/s through the frontend.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec, with_policy
from harness.stack.steady import SteadyStateSpec

ROUNDROBIN = Path(__file__).parents[1] / "fixtures" / "haproxy-roundrobin.cfg.j2"
CLIENT_ANOMALIES = ("head_regressions", "unknown_advertised_block", "missing_logs")


def one_chain(spec: StackSpec, **changes: object) -> StackSpec:
    return replace(spec, chain="one", node_kind="anvil", **changes)  # type: ignore[arg-type]


@pytest.mark.chaos  # the full suite (`pytest scenarios`): the CI set is kept short
def test_failing_over_to_a_lagging_backup_never_moves_a_clients_head_back(
    request: pytest.FixtureRequest,
    stack_spec: StackSpec,
    haproxy_policy: str,
    chaos_run: ChaosRun,
    scenario_load: LoadSpec,
) -> None:
    """The backup is held 8 blocks behind the source; the primary is stopped for 8 s (a
    kill alone is over before the roadmap's HAProxy marks the primary DOWN, so it never
    fails over: the stop makes it).

    Measured: on the roadmap policy, with the backup 3 blocks behind (the issue's figure),
    clients saw no head regression: they got 5.6 s of errors before HAProxy failed over,
    and by then the backup's head had passed the last one they were told (it served a head
    3 blocks stale instead, `frontend_head_lag_blocks[recovery]` 3). A backup further
    behind than the failover takes moves clients back, hence 8 blocks. The hardened
    policy fails over in 0.02 s; its lag agent keeps the lagging backup out while the
    primary serves, but never takes out the last fit node: with the primary down the
    backup is the best left, it is let in, and clients are moved back all the same. Both
    are expected to breach (strict xfail): the day a policy holds, revisit the expectation.
    """
    reason = {
        "roadmap": "the roadmap's policy fails over to the lagging backup: clients are told "
        "a head below one they had already been told",
        "hardened": "the lag agent lets the lagging backup in once the primary is dead (it "
        "never takes out the last fit node): clients are moved back",
    }.get(haproxy_policy)
    if reason:
        # Only a broken SLO is the expected failure; any other error fails the test.
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason, raises=AssertionError))
    spec = ExperimentSpec(
        stack=with_policy(one_chain(stack_spec, node_lag_blocks=(("node-1", 8),)), haproxy_policy),
        fault="stop",
        target="primary",
        hold_s=8.0,
        load=scenario_load,
        baseline_s=2.0,
        settle_s=2.0,
        steady_state=SteadyStateSpec(
            max_head_lag_blocks=10,  # the backup is 8 behind on purpose
            # The lag agent takes the lagging backup out on purpose (hardened).
            out_of_rotation=("node-1",) if haproxy_policy == "hardened" else (),
        ),
        slos=(
            SLO.parse("head_regressions[fault] <= 0"),
            SLO.parse("head_regressions[recovery] <= 0"),
            SLO.parse("hash_mismatch[recovery] <= 0"),
        ),
    )
    chaos_run(spec).assert_passed()


@pytest.mark.chaos  # the full suite (`pytest scenarios`): the CI set is kept short
def test_propagation_skew_between_two_active_nodes_is_seen_by_clients_and_counted(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    """Roundrobin over both nodes (no backup); blocks reach node-0 50-300 ms late.

    Each client's requests alternate between a node that has block N+1 and one that has
    not yet: heads that go back, blocks advertised but unknown to the next node asked.
    Nothing fails and nothing is slow; only the checker sees it. The scenario asserts
    that it does: anomalies are counted in the fault phase, none in the baseline.
    """
    result = chaos_run(
        ExperimentSpec(
            stack=one_chain(stack_spec, haproxy_template=ROUNDROBIN),
            fault="propagation",
            target="primary",
            fault_params={"delay": "50-300ms"},
            hold_s=8.0,
            load=scenario_load,
            baseline_s=2.0,
            settle_s=1.0,
            slos=(
                SLO.parse("error_rate_pct[fault] <= 1"),
                SLO.parse("hash_mismatch[fault] <= 0"),
            ),
        )
    )
    result.assert_passed()
    seen = {k: result.measured.get(f"{k}[fault]") for k in CLIENT_ANOMALIES}
    assert sum(v or 0 for v in seen.values()) > 0, seen
    assert result.measured.get("head_regressions[baseline]") == 0


@pytest.mark.chaos  # the full suite (`pytest scenarios`): the CI set is kept short
def test_a_reorg_of_depth_2_under_load_is_followed_by_every_node_and_no_answer_is_off_chain(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    """The source replaces its last two blocks; each node finds the common ancestor, rolls
    back and replays. Clients may meet both branches; every block and receipt they were
    shown is on one of them (a reorged-out branch is a branch)."""
    result = chaos_run(
        ExperimentSpec(
            stack=one_chain(stack_spec),
            fault="reorg",
            fault_params={"depth": 2},
            load=scenario_load,
            baseline_s=3.0,
            settle_s=2.0,
            slos=(
                SLO.parse("availability_pct[recovery] >= 99"),
                SLO.parse("hash_mismatch[fault] <= 0"),
                SLO.parse("hash_mismatch[recovery] <= 0"),
                SLO.parse("max_head_lag_blocks <= 3"),
            ),
        )
    )
    result.assert_passed()


@pytest.mark.quick
@pytest.mark.chaos
def test_a_primary_cut_off_from_the_chain_is_not_left_serving_an_ever_older_head(
    request: pytest.FixtureRequest,
    stack_spec: StackSpec,
    haproxy_policy: str,
    chaos_run: ChaosRun,
    scenario_load: LoadSpec,
) -> None:
    """The primary loses its peers for 10 s: it answers everything, from a head that stops.

    The roadmap's eth_syncing check never notices (availability 100%, a head 10 blocks
    stale served through the frontend); the hardened policy's lag agent takes the primary
    out once it is more than 2 blocks behind."""
    if haproxy_policy == "roadmap":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="the roadmap's eth_syncing check cannot see a node cut off from its "
                "peers: clients are served its ever older head with no error",
                raises=AssertionError,
            )
        )
    result = chaos_run(
        ExperimentSpec(
            stack=with_policy(one_chain(stack_spec), haproxy_policy),
            fault="peer_partition",
            target="primary",
            hold_s=10.0,
            load=scenario_load,
            baseline_s=2.0,
            settle_s=2.0,
            slos=(
                SLO.parse("availability_pct[fault] >= 99"),
                SLO.parse("frontend_head_lag_blocks[fault] <= 3"),
                SLO.parse("head_regressions[recovery] <= 0"),
            ),
        )
    )
    stale = result.measured["max_head_lag_blocks"]
    assert stale is not None and stale >= 8, stale  # the partition is seen between nodes
    result.assert_passed()
