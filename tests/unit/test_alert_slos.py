"""Alerts as SLOs: fired/resolved times from the webhook's notifications, false alerts, and
an SLO naming an alert the rules do not have."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.measure import SLO
from harness.monitor.alerts import AlertTiming, FaultWindow, alert_figures, explains, firings
from harness.monitor.query import AlertState, spells
from harness.monitor.webhook import Notification

S = 1_000_000_000
PRIMARY = frozenset({"node-0", "http://127.0.0.1:8545/", "/tmp/s/nodes/node-0/data"})
TIMING = AlertTiming({"HAProxyBackendServerDown": 5.0, "ServiceDown": 60.0}, pipeline_s=3.0)


def _n(t_s: float, name: str, status: str = "firing", **labels: str) -> Notification:
    return Notification(int(t_s * S), name, status, {"alertname": name, **labels})


def _stop(start_s: float = 10, end_s: float = 30, kind: str = "stop") -> FaultWindow:
    return FaultWindow(kind, "primary", PRIMARY, int(start_s * S), int(end_s * S))


def test_fired_and_resolved_count_from_the_fault_start() -> None:
    seen = [
        _n(13.5, "HAProxyBackendServerDown", server="node-0"),
        _n(14.5, "HAProxyBackendServerDown", server="node-0"),  # a repeat moves nothing
        _n(22.0, "HAProxyBackendServerDown", "resolved", server="node-0"),
    ]
    got = alert_figures(seen, 0, 10 * S, 30 * S, [_stop()], TIMING)
    assert got["alert_fired_s[HAProxyBackendServerDown]"] == pytest.approx(3.5)
    assert got["alert_resolved_s[HAProxyBackendServerDown]"] == pytest.approx(12.0)
    assert got["false_alerts"] == 0


def test_an_alert_firing_in_the_baseline_is_false_and_one_never_resolved_is_unmeasured() -> None:
    seen = [
        _n(5, "FrontendLatencyP99"),
        _n(6, "FrontendLatencyP99"),
        _n(12, "ServiceDown", instance="http://127.0.0.1:8545/"),
    ]
    got = alert_figures(seen, 0, 10 * S, 30 * S, [_stop()], TIMING)
    assert got["false_alerts"] == 1
    assert got["alert_resolved_s[ServiceDown]"] is None
    assert "alert_fired_s[FrontendLatencyP99]" not in got


def test_notifications_outside_the_episode_are_not_its_own() -> None:
    seen = [_n(31, "ServiceDown"), _n(-1, "HAProxyNoServerUp")]
    got = alert_figures(seen, 0, 10 * S, 30 * S, [_stop()], TIMING)
    assert got == {"false_alerts": 0}


def test_an_alert_slo_is_judged_on_its_alerts_key() -> None:
    assert SLO.parse("alert_fired_s[ServiceDown] <= 90").key == "alert_fired_s[ServiceDown]"
    assert SLO.parse("false_alerts <= 0").key == "false_alerts"


def test_an_slo_naming_an_alert_not_in_the_rules_names_the_rules_there_are() -> None:
    with pytest.raises(ConfigError, match=r"ServiceDwn.*the rules are: HighMemoryUsage, "):
        SLO.parse("alert_fired_s[ServiceDwn] <= 90")


def test_a_healthy_run_with_no_fault_counts_every_alert_as_false() -> None:
    seen = [_n(3, "NodeHeadStalled", node="node-1"), _n(4, "HAProxyNoServerUp")]
    got = alert_figures(seen, 0, 10 * S, 30 * S, faults=(), timing=TIMING)
    assert got["false_alerts"] == 2


def test_an_alert_the_fault_kind_does_not_raise_is_false() -> None:
    # A stopped node does not fill a disk.
    seen = [_n(15, "LowDiskSpace", mountpoint="/tmp/s/nodes/node-0/data")]
    assert alert_figures(seen, 0, 10 * S, 30 * S, [_stop()], TIMING)["false_alerts"] == 1


def test_an_alert_about_a_node_the_fault_did_not_hit_is_false() -> None:
    seen = [
        _n(15, "HAProxyBackendServerDown", server="node-1"),
        _n(15, "ServiceDown", instance="http://127.0.0.1:8546/"),
        _n(16, "ServiceDown", instance="http://127.0.0.1:8545"),  # the target, no slash
    ]
    assert alert_figures(seen, 0, 10 * S, 30 * S, [_stop()], TIMING)["false_alerts"] == 2


def test_an_alert_firing_after_the_fault_within_its_for_and_pipeline_is_explained() -> None:
    stop = _stop(10, 30)
    just_in = _n(30 + 5 + 3, "HAProxyBackendServerDown", server="node-0")
    too_late = _n(30 + 5 + 3.5, "HAProxyBackendServerDown", server="node-0")
    (f_in,), (f_late,) = firings([just_in]), firings([too_late])
    assert explains(stop, f_in, TIMING)
    assert not explains(stop, f_late, TIMING)


def test_an_alert_firing_before_the_fault_was_asked_for_is_not_explained_by_it() -> None:
    (early,) = firings([_n(9.9, "HAProxyBackendServerDown", server="node-0")])
    assert not explains(_stop(10, 30), early, TIMING)


def test_a_later_episodes_baseline_alert_is_explained_by_the_earlier_fault() -> None:
    seen = [_n(31, "HAProxyBackendServerDown", server="node-0")]  # episode 2 starts at 30
    got = alert_figures(seen, 30 * S, 40 * S, 60 * S, [_stop(10, 30)], TIMING)
    assert got["false_alerts"] == 0


def test_host_alerts_are_explained_by_any_fault_of_their_kind() -> None:
    memory = FaultWindow("memory", "primary", PRIMARY, 10 * S, 30 * S)
    (high,) = firings([_n(20, "HighMemoryUsage", instance="127.0.0.1:9100")])
    assert explains(memory, high, TIMING)


def test_a_stall_explains_the_head_alerts_of_the_stalled_node_only() -> None:
    stall = _stop(kind="stall")
    (mine,) = firings([_n(20, "NodeHeadStalled", node="node-0")])
    (other,) = firings([_n(20, "NodeHeadLagging", node="node-1")])
    (down,) = firings([_n(20, "ServiceDown", instance="http://127.0.0.1:8545/")])
    assert explains(stall, mine, TIMING)
    assert not explains(stall, other, TIMING)
    assert not explains(stall, down, TIMING)


def test_each_firing_spell_of_an_alert_is_one_firing() -> None:
    seen = [
        _n(1, "ServiceDown", instance="a"),
        _n(2, "ServiceDown", "resolved", instance="a"),
        _n(3, "ServiceDown", instance="a"),
        _n(3, "ServiceDown", instance="b"),
    ]
    got = firings(seen)
    assert [(f.fired_ns // S, f.resolved_ns) for f in got] == [(1, 2 * S), (3, None), (3, None)]


def test_prometheus_alerts_series_become_spells_on_the_monotonic_clock() -> None:
    series = [
        {
            "metric": {"__name__": "ALERTS", "alertname": "NodeHeadLagging",
                       "alertstate": "pending", "node": "node-0"},
            "values": [[100.0, "1"], [101.0, "1"], [102.0, "1"], [110.0, "1"]],
        }
    ]  # fmt: skip
    got = spells(series, step_s=1.0, offset_ns=90 * S)
    assert [(a.first_ns // S, a.last_ns // S) for a in got] == [(10, 12), (20, 20)]
    assert got[0].labels == (("node", "node-0"),) and got[0].state == "pending"


def test_a_rule_pending_after_the_fault_gives_its_pending_time() -> None:
    states = [
        AlertState("NodeHeadLagging", "pending", (("node", "node-0"),), 14 * S, 18 * S),
        AlertState("NodeHeadLagging", "firing", (("node", "node-0"),), 19 * S, 25 * S),
        AlertState("ServiceDown", "pending", (), 5 * S, 6 * S),  # in the baseline
        AlertState("HighMemoryUsage", "pending", (), 31 * S, 32 * S),  # the next episode's
    ]
    got = alert_figures([], 0, 10 * S, 30 * S, [_stop()], TIMING, states)
    assert got["alert_pending_s[NodeHeadLagging]"] == pytest.approx(4.0)
    assert got["alert_pending_s[ServiceDown]"] == pytest.approx(-5.0)
    assert "alert_pending_s[HighMemoryUsage]" not in got
    # Each alert there is given its rule's bound: for: + pipeline.
    assert got["alert_expected_s[NodeHeadLagging]"] == pytest.approx(3.0)
    assert got["alert_expected_s[ServiceDown]"] == pytest.approx(63.0)


def test_every_fault_kind_says_which_alerts_it_explains_and_they_are_real_alerts() -> None:
    from harness.faults.registry import FAULTS
    from harness.monitor.alerts import EXPLAINS
    from harness.monitor.rules import alert_names

    assert set(FAULTS) <= set(EXPLAINS)
    assert {k.split("@")[0] for k in EXPLAINS} <= set(FAULTS)
    assert {a for alerts in EXPLAINS.values() for a in alerts} <= set(alert_names())
