"""Scenario: the primary is paused (SIGSTOP) beyond HAProxy's health-check window.

Steady state: both nodes answer and agree, both UP in HAProxy.
Fault: SIGSTOP of the primary for 10 s (quick) or 20 s, then SIGCONT. A stopped process
keeps its sockets: connections are accepted by the kernel and never answered, so neither
clients nor HAProxy's checks get a refusal, only silence.
Load: the searcher mix, open model, 150 req/s through the frontend.

Measured by hand on the roadmap policy (check inter 2 s, fall 3): a 10 s pause is not
marked DOWN while it lasts (sometimes just after) and clients see a 10 s outage; a 20 s
one is marked DOWN only after ~11 s, not the 6 s that inter x fall suggests, since each
check waits for its own timeout. The roadmap variants assert exactly that (TTD beyond
inter x fall); the hardened policy must take the paused node out fast. Afterwards the
paused node must catch up (the replicator on one chain, peer sync on independent ones) and
the steady state return, or every later scenario on the stack would start broken.
"""

from __future__ import annotations

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec, with_policy

# What each policy must achieve: the roadmap's numbers are what it does, bounded so a
# change for the worse fails; the hardened policy's are the targets it exists for.
OUTAGE_S = {"roadmap": 25.0, "hardened": 3.0, "custom": 25.0}


def _spec(stack: StackSpec, policy: str, hold_s: float, load: LoadSpec) -> ExperimentSpec:
    slos = [
        SLO.parse("error_rate_pct[baseline] <= 1"),
        SLO.parse(f"outage_s <= {OUTAGE_S[policy]:g}"),
        SLO.parse("mttr_component_s <= 40"),
    ]
    if policy == "hardened":
        # The lag agent keeps the resumed node out until it has caught up. The roadmap's
        # check puts it straight back: for the moment before peer sync has mined the
        # missing blocks, clients are told its stale head (measured: up to 10 blocks
        # behind after a 10 s pause, in some runs; 0 in others).
        slos.append(SLO.parse("frontend_head_lag_blocks[recovery] <= 3"))
    return ExperimentSpec(
        stack=with_policy(stack, policy),
        fault="pause",
        target="primary",
        hold_s=hold_s,
        load=load,
        baseline_s=2.0,
        settle_s=1.0,
        recovery_timeout_s=20,
        slos=tuple(slos),
    )


@pytest.mark.quick
@pytest.mark.chaos
def test_a_10s_pause_of_the_primary_is_ridden_out_or_routed_around(
    stack_spec: StackSpec, haproxy_policy: str, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(_spec(stack_spec, haproxy_policy, 10.0, scenario_load))
    result.assert_passed()
    if haproxy_policy == "roadmap":
        # Not marked DOWN while paused: the pause ends before three checks have timed out.
        # The checks sent during it may still time out after it, so a DOWN can come just
        # after the resume (measured: 0.1-0.4 s after, in two runs of five), never before.
        ttd = result.recovery.ttd_s
        assert ttd is None or ttd >= 10.0, result.recovery
        assert result.recovery.outage_s >= 9, result.recovery


@pytest.mark.chaos
def test_a_20s_pause_of_the_primary_is_detected_later_than_inter_times_fall_says(
    stack_spec: StackSpec, haproxy_policy: str, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(_spec(stack_spec, haproxy_policy, 20.0, scenario_load))
    result.assert_passed()
    if haproxy_policy == "roadmap":
        implied = result.stack.health_check.implied_detection_s
        ttd = result.recovery.ttd_s
        assert ttd is not None and implied < ttd < 15, (ttd, implied)
