"""Scenarios: alerts as SLOs for a node that falls behind, and for a run where nothing is
wrong, with the stack's own Prometheus, Alertmanager and exporters (--prometheus, 1 s
intervals, fixtures/alerts.yml beside the roadmap's rules, fixtures/alerts-roadmap.yml).

Sync stall: the primary's head stops while it answers every call (see test_sync_stall.py).
The head-lag alert must be delivered once the primary is more than 3 blocks behind and its
`for: 5s` has passed; the head-stalled one once its head is 30 s old and its `for: 5s`; and
the roadmap's three rules never so much as go pending (Prometheus's own ALERTS series, not
only the notifications: their `for:` of 1-10 minutes would keep them from firing in a
short run whatever their condition did). Quiet: 40 s of healthy load, longer than every
`for:` of the rules but the memory and disk ones: nothing fires or even goes pending; then
the backup stalled for less than the head-lag rule's `for:`: it may go pending (the lag is
real), it must not fire.

Bounds are the rule's `for:` plus the condition's own build-up (blocks at the stack's block
time) plus the monitoring's pipeline (a scrape, an evaluation, a notification: 1 s each)
and 1 s of slack for the heads poller and a busy host. Not quick: the monitoring's start-up
and the 40 s holds.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness import (
    ALERT_RULES,
    ROADMAP_RULES,
    SLO,
    ChaosRun,
    ExperimentSpec,
    LoadSpec,
    MonitorProfile,
    StackSpec,
)

FOR_S = 5.0  # NodeHeadLagging's and NodeHeadStalled's `for:`
LAG_BLOCKS = 3  # NodeHeadLagging: more than this many blocks behind
STALLED_S = 30.0  # NodeHeadStalled: a head this old
SLACK_S = 1.0
GRID_S = 0.3  # the ALERTS query's 0.25 s step, and the clocks' conversion
ROADMAP = ("RoadmapHighMemoryUsage", "RoadmapServiceDown", "RoadmapLowDiskSpace")


@pytest.mark.chaos
@pytest.mark.slo
def test_a_stalled_primary_raises_the_head_alerts_while_the_roadmaps_rules_stay_silent(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    stack = replace(stack_spec, prometheus=True, alert_rules=(str(ALERT_RULES), str(ROADMAP_RULES)))
    pipeline_s = MonitorProfile().pipeline_s
    block_s = stack.block_time_s
    lag_bound_s = (LAG_BLOCKS + 1) * block_s + FOR_S + pipeline_s + SLACK_S
    stall_bound_s = STALLED_S + FOR_S + pipeline_s + SLACK_S
    spec = ExperimentSpec(
        stack=stack,
        fault="stall",
        target="primary",
        load=scenario_load,
        baseline_s=3.0,
        hold_s=stall_bound_s + 2,
        settle_s=pipeline_s + 2,
        slos=(
            SLO.parse(f"alert_fired_s[NodeHeadLagging] <= {lag_bound_s:g}"),
            SLO.parse(f"alert_fired_s[NodeHeadStalled] <= {stall_bound_s:g}"),
            SLO.parse("false_alerts <= 0"),
        ),
    )
    result = chaos_run(spec)
    result.assert_passed()
    episode = result.episodes[0]
    measured = episode.measured
    # Not before the condition could have held for the rule's `for:`, counted from the
    # fault's request (the figures count from its effect, which the stall's check of a
    # head that no longer moves puts ~2 s later); a head may be a block old at the request.
    apply_s = episode.fault.apply_us / 1e6
    lag = measured["alert_fired_s[NodeHeadLagging]"]
    stalled = measured["alert_fired_s[NodeHeadStalled]"]
    assert lag is not None and lag + apply_s >= FOR_S, (lag, apply_s)
    assert stalled is not None and stalled + apply_s >= STALLED_S - block_s + FOR_S, (
        stalled,
        apply_s,
    )
    # From the condition holding (ALERTS, to its 0.25 s grid) to the notification: the
    # `for:`, never less, at most the `for:` and the pipeline.
    for name in ("NodeHeadLagging", "NodeHeadStalled"):
        held, fired = measured[f"alert_pending_s[{name}]"], measured[f"alert_fired_s[{name}]"]
        assert held is not None and fired is not None, measured
        assert FOR_S - GRID_S <= fired - held <= FOR_S + pipeline_s, (name, held, fired)
    for name in ROADMAP:
        assert f"alert_pending_s[{name}]" not in measured, measured
        assert f"alert_fired_s[{name}]" not in measured, measured


@pytest.mark.chaos
@pytest.mark.slo
def test_a_healthy_run_raises_no_alert_and_a_lag_shorter_than_its_for_none_either(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    # The backup stalled 2 blocks (and the ~2 s the stall takes to be sure of): it may fall
    # more than 3 blocks behind, for less than NodeHeadLagging's 5 s: pending, not fired.
    result = chaos_run(
        ExperimentSpec(
            stack=replace(stack_spec, prometheus=True),
            fault="stall",
            target="backup",
            load=scenario_load,
            baseline_s=40.0,
            hold_s=2.0 * stack_spec.block_time_s,
            settle_s=MonitorProfile().pipeline_s + FOR_S,
            slos=(SLO.parse("false_alerts <= 0"),),
        )
    )
    result.assert_passed()
    measured = result.episodes[0].measured
    fired = sorted(k for k in measured if k.startswith("alert_fired_s"))
    assert fired == [], measured
    pending = {k: v for k, v in measured.items() if k.startswith("alert_pending_s")}
    # Nothing even pending in the healthy 40 s (a negative time is before the fault) ...
    assert all(v is not None and v >= 0 for v in pending.values()), pending
    # ... and after it, only the lag the stall made.
    assert set(pending) <= {"alert_pending_s[NodeHeadLagging]"}, pending
