"""Alerts as SLOs: fired/resolved times from the webhook's notifications, false alerts, and
an SLO naming an alert the rules do not have."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.measure import SLO
from harness.monitor.alerts import alert_figures
from harness.monitor.webhook import Notification

S = 1_000_000_000


def _n(t_s: float, name: str, status: str = "firing") -> Notification:
    return Notification(int(t_s * S), name, status, {"alertname": name})


def test_fired_and_resolved_count_from_the_fault_start() -> None:
    seen = [
        _n(13.5, "HAProxyBackendServerDown"),
        _n(14.5, "HAProxyBackendServerDown"),  # a repeat does not move the firing time
        _n(22.0, "HAProxyBackendServerDown", "resolved"),
    ]
    got = alert_figures(seen, baseline_start_ns=0, fault_ns=10 * S, end_ns=30 * S)
    assert got["alert_fired_s[HAProxyBackendServerDown]"] == pytest.approx(3.5)
    assert got["alert_resolved_s[HAProxyBackendServerDown]"] == pytest.approx(12.0)
    assert got["false_alerts"] == 0


def test_an_alert_firing_in_the_baseline_is_false_and_one_never_resolved_is_unmeasured() -> None:
    seen = [_n(5, "FrontendLatencyP99"), _n(6, "FrontendLatencyP99"), _n(12, "ServiceDown")]
    got = alert_figures(seen, baseline_start_ns=0, fault_ns=10 * S, end_ns=30 * S)
    assert got["false_alerts"] == 1
    assert got["alert_resolved_s[ServiceDown]"] is None
    assert "alert_fired_s[FrontendLatencyP99]" not in got


def test_notifications_outside_the_episode_are_not_its_own() -> None:
    seen = [_n(31, "ServiceDown"), _n(-1, "HAProxyNoServerUp")]
    got = alert_figures(seen, baseline_start_ns=0, fault_ns=10 * S, end_ns=30 * S)
    assert got == {"false_alerts": 0}


def test_an_alert_slo_is_judged_on_its_alerts_key() -> None:
    assert SLO.parse("alert_fired_s[ServiceDown] <= 90").key == "alert_fired_s[ServiceDown]"
    assert SLO.parse("false_alerts <= 0").key == "false_alerts"


def test_an_slo_naming_an_alert_not_in_the_rules_names_the_rules_there_are() -> None:
    with pytest.raises(ConfigError, match=r"ServiceDwn.*the rules are: HighMemoryUsage, "):
        SLO.parse("alert_fired_s[ServiceDwn] <= 90")
