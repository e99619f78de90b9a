"""The stack's monitoring configs render and promtool accepts them; a bad one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.monitor.processes import COMPONENTS, MonitorLayout, commands, render_configs


def _layout(rule_files: tuple[Path, ...] | None = None) -> MonitorLayout:
    extra = {"rule_files": rule_files} if rule_files else {}
    return MonitorLayout(
        host="127.0.0.1",
        ports={name: 20000 + i for i, name in enumerate(COMPONENTS)},
        haproxy_metrics="127.0.0.1:19999",
        nodes=(("node-0", "http://127.0.0.1:18545/"), ("node-1", "http://127.0.0.1:18546/")),
        frontend_url="http://127.0.0.1:18500/",
        **extra,  # type: ignore[arg-type]
    )


def test_rendered_prometheus_config_passes_promtool_and_probes_every_node(tmp_path: Path) -> None:
    render_configs(_layout(), tmp_path)
    text = (tmp_path / "prometheus.yml").read_text()
    assert "scrape_interval: 1s" in text and "evaluation_interval: 1s" in text
    for url in ("http://127.0.0.1:18545/", "http://127.0.0.1:18546/", "http://127.0.0.1:18500/"):
        assert f'"{url}"' in text
    assert "127.0.0.1:19999" in text  # HAProxy's exporter
    assert "eth_blockNumber" in (tmp_path / "blackbox.yml").read_text()


def test_a_rule_file_promtool_rejects_fails_the_config_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up ==\n")
    with pytest.raises(ConfigError, match="promtool rejects it"):
        render_configs(_layout((bad,)), tmp_path / "out")


def test_every_monitoring_process_has_its_own_ports_and_data_dirs(tmp_path: Path) -> None:
    argv = commands(_layout(), tmp_path)
    assert set(argv) == set(COMPONENTS)
    joined = " ".join(" ".join(a) for a in argv.values())
    assert "/var/lib/prometheus" not in joined and "/etc/prometheus" not in joined
    assert f"--storage.tsdb.path={tmp_path / 'prometheus-data'}" in argv["prometheus"]
