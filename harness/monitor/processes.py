"""The stack's monitoring as processes: Prometheus, Alertmanager, the node and blackbox
exporters, the heads exporter and the alert webhook, with the configs they run on.

`plan_monitor` (through `render_configs`) writes every config under the stack's state dir
and checks Prometheus's with ``promtool check config`` (and its rule files) before anything
starts; `launch` hands each program to the stack's supervisor, which restarts it if it dies
and stops it with the stack, and returns once every one of them answers. Both backends run
them on the host: on docker they watch the containers' published ports.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from harness.errors import ConfigError, StackError
from harness.monitor.promtool import binary, check_config, check_rules
from harness.monitor.rules import ALERT_RULES, FIXTURES

if TYPE_CHECKING:
    from harness.stack.model import ComponentState, RestartPolicy, StackState
    from harness.stack.supervisor import Supervisor

log = logging.getLogger(__name__)

PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
NODE_EXPORTER = "node-exporter"
BLACKBOX = "blackbox-exporter"
HEADS = "heads-exporter"
WEBHOOK = "alert-webhook"
#: The stack's monitoring components, in start order (the receivers before their senders).
COMPONENTS = (WEBHOOK, ALERTMANAGER, NODE_EXPORTER, BLACKBOX, HEADS, PROMETHEUS)
NOTIFICATIONS = "notifications.jsonl"


@dataclass(frozen=True)
class MonitorProfile:
    """How often Prometheus scrapes and evaluates, and how soon Alertmanager notifies.
    The default is the test profile: 1 s, so an alert's timing is its `for:` plus ~1 s."""

    scrape_interval_s: float = 1.0
    evaluation_interval_s: float = 1.0
    group_wait_s: float = 0.0
    group_interval_s: float = 1.0
    probe_timeout_s: float = 0.9

    @property
    def pipeline_s(self) -> float:
        """The longest an alert takes from its condition holding (and its ``for:`` passed)
        to its notification: a scrape, an evaluation, Alertmanager's group wait/interval."""
        return (
            self.scrape_interval_s
            + self.evaluation_interval_s
            + max(self.group_wait_s, self.group_interval_s)
        )


@dataclass(frozen=True)
class MonitorLayout:
    """Where each monitoring process listens, and what it watches."""

    host: str
    ports: dict[str, int]  # component name -> port
    haproxy_metrics: str | None  # host:port of HAProxy's exporter; None: its template has none
    nodes: tuple[tuple[str, str], ...]  # (name, JSON-RPC url), as the heads poller reaches them
    frontend_url: str
    rule_files: tuple[Path, ...] = (ALERT_RULES,)
    profile: MonitorProfile = MonitorProfile()

    def address(self, name: str) -> str:
        return f"{self.host}:{self.ports[name]}"

    def url(self, name: str) -> str:
        return f"http://{self.address(name)}/"


def rule_files(paths: tuple[str, ...]) -> tuple[Path, ...]:
    """The rule files a stack's Prometheus loads: ``paths`` (StackSpec.alert_rules), or
    fixtures/alerts.yml when none are given."""
    return tuple(Path(p).resolve() for p in paths) or (ALERT_RULES,)


def _render(template: str, **values: object) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    path = FIXTURES / template
    try:
        return env.from_string(path.read_text()).render(**values)
    except jinja2.TemplateError as exc:
        raise ConfigError(template, str(path), f"the template does not render: {exc}") from exc


def _seconds(value: float) -> str:
    return f"{value:g}"


def render_configs(layout: MonitorLayout, directory: Path) -> None:
    """Write prometheus.yml, alertmanager.yml and blackbox.yml into ``directory`` and
    check Prometheus's (with its rules) with promtool: `ConfigError` if it rejects it."""
    directory.mkdir(parents=True, exist_ok=True)
    p = layout.profile
    (directory / "prometheus.yml").write_text(
        _render(
            "prometheus.yml.j2",
            scrape_interval_s=_seconds(p.scrape_interval_s),
            evaluation_interval_s=_seconds(p.evaluation_interval_s),
            rule_files=[str(f) for f in layout.rule_files],
            alertmanager=layout.address(ALERTMANAGER),
            haproxy_metrics=layout.haproxy_metrics,
            node_exporter=layout.address(NODE_EXPORTER),
            blackbox=layout.address(BLACKBOX),
            heads=layout.address(HEADS),
            nodes=[{"name": n, "url": u} for n, u in layout.nodes],
            frontend_url=layout.frontend_url,
        )
    )
    (directory / "alertmanager.yml").write_text(
        _render(
            "alertmanager.yml.j2",
            webhook_url=layout.url(WEBHOOK) + "alerts",
            group_wait_s=_seconds(p.group_wait_s),
            group_interval_s=_seconds(p.group_interval_s),
            repeat_interval="4h",
        )
    )
    (directory / "blackbox.yml").write_text(
        _render("blackbox.yml.j2", timeout_s=_seconds(p.probe_timeout_s))
    )
    check_config(directory / "prometheus.yml")


def check_configs(rule_files: tuple[Path, ...]) -> None:
    """Render every monitoring config for a stand-in layout and check Prometheus's (and
    ``rule_files``) with promtool, before a stack or a run directory exists: `ConfigError`
    for a template that does not render or a config or rule file promtool rejects."""
    for path in rule_files:  # first on its own, so the error names the user's file
        check_rules(path)
    ports = {name: 9 for name in COMPONENTS}  # discard: nothing listens, nothing is sent
    layout = MonitorLayout(
        host="127.0.0.1",
        ports=ports,
        haproxy_metrics="127.0.0.1:9",
        nodes=(("node-0", "http://127.0.0.1:9/"),),
        frontend_url="http://127.0.0.1:9/",
        rule_files=rule_files,
    )
    with tempfile.TemporaryDirectory(prefix="harness-monitor-") as directory:
        render_configs(layout, Path(directory))


def commands(layout: MonitorLayout, directory: Path) -> dict[str, list[str]]:
    """The argument list of each monitoring process (`COMPONENTS`), on its own ports and
    data dirs under ``directory``: never the services Debian's packages install."""
    a = layout.address
    return {
        WEBHOOK: [
            sys.executable, "-m", "harness.monitor.webhook",
            "--listen", a(WEBHOOK), "--out", str(directory / NOTIFICATIONS),
        ],
        ALERTMANAGER: [
            str(binary("prometheus-alertmanager")),
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'alertmanager-data'}",
            f"--web.listen-address={a(ALERTMANAGER)}",
            "--cluster.listen-address=",  # one instance: no gossip port
            "--log.level=warn",
        ],
        # Only what the rules read, so a 1 s scrape stays cheap.
        NODE_EXPORTER: [
            str(binary("prometheus-node-exporter")),
            f"--web.listen-address={a(NODE_EXPORTER)}",
            "--collector.disable-defaults",
            "--collector.meminfo",
            "--collector.filesystem",
            "--collector.cpu",
            "--collector.loadavg",
            "--log.level=warn",
        ],
        BLACKBOX: [
            str(binary("prometheus-blackbox-exporter")),
            f"--config.file={directory / 'blackbox.yml'}",
            f"--web.listen-address={a(BLACKBOX)}",
            "--log.level=warn",
        ],
        HEADS: [
            sys.executable, "-m", "harness.monitor.heads", "--listen", a(HEADS),
            *(f"--node={name}={url}" for name, url in layout.nodes),
        ],
        PROMETHEUS: [
            str(binary("prometheus")),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={a(PROMETHEUS)}",
            "--log.level=warn",
        ],
    }  # fmt: skip


def require_binaries() -> None:
    """`MissingBinaryError` (before anything starts) for a monitoring program not installed."""
    for name in (
        "prometheus",
        "promtool",
        "prometheus-alertmanager",
        "prometheus-node-exporter",
        "prometheus-blackbox-exporter",
    ):
        binary(name)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


#: Where each monitoring process says it is up (for readiness and `harness stack status`).
HEALTH_PATHS = {
    WEBHOOK: "",
    ALERTMANAGER: "-/ready",
    NODE_EXPORTER: "metrics",
    BLACKBOX: "metrics",
    HEADS: "metrics",
    PROMETHEUS: "-/ready",
}


def wait_ready(layout: MonitorLayout, deadline: float, died: Callable[[str], str | None]) -> None:
    """Until every monitoring process answers (Prometheus and Alertmanager on /-/ready,
    the exporters on /metrics); `StackError` naming the one that did not, or that died
    (``died(name)`` says how, or None). Prometheus has not scraped anything yet: see
    `wait_scraped`, which a run calls before its first fault."""
    checks = {name: layout.url(name) + path for name, path in HEALTH_PATHS.items()}
    waiting = dict(checks)
    while waiting and time.monotonic() < deadline:
        for name, url in list(waiting.items()):
            how = died(name)
            if how is not None:
                raise StackError(f"{name} {how} while starting")
            if _answers(url):
                del waiting[name]
        if waiting:
            time.sleep(0.01)
    if waiting:
        raise StackError(f"monitoring not ready: {', '.join(waiting)} did not answer")


def components(port: Callable[[], int]) -> list[ComponentState]:
    """The monitoring's host processes as a stack lists them (either backend), each on a
    port ``port`` picks."""
    from harness.stack.model import ComponentState  # harness.stack imports this module

    return [ComponentState(name, name, "monitor", None, "127.0.0.1", port()) for name in COMPONENTS]


def plan_monitor(
    state: StackState, haproxy_metrics: str | None, alert_rules: tuple[str, ...], directory: Path
) -> tuple[MonitorLayout, dict[str, Any]]:
    """The monitoring of ``state`` (its monitor components name the ports), its configs
    rendered and checked under ``directory``, and the `StackState` fields naming its URLs.
    ``haproxy_metrics``: host:port of HAProxy's exporter, None when the template has none."""
    if haproxy_metrics is None:
        log.warning(
            "the HAProxy template %s serves no Prometheus exporter (`frontend prometheus` "
            "with `http-request use-service prometheus-exporter`, see fixtures/"
            "haproxy.cfg.j2): HAProxy is not scraped and its alerts stay silent",
            state.haproxy_template,
        )
    layout = MonitorLayout(
        host="127.0.0.1",
        ports={name: state.component(name).port for name in COMPONENTS},
        haproxy_metrics=haproxy_metrics,
        nodes=tuple((n.name, n.url) for n in state.nodes),
        frontend_url=state.frontend_url,
        rule_files=rule_files(alert_rules),
    )
    render_configs(layout, directory)
    fields = {
        "prometheus_url": layout.url(PROMETHEUS),
        "alertmanager_url": layout.url(ALERTMANAGER),
        "haproxy_metrics_url": f"http://{haproxy_metrics}/metrics" if haproxy_metrics else None,
        "alert_notifications": str(directory / NOTIFICATIONS),
    }
    return layout, fields


def launch(
    layout: MonitorLayout,
    directory: Path,
    supervisor: Supervisor,
    restart: RestartPolicy,
    deadline: float,
    log_tail: Callable[[str], str],
) -> float:
    """Start every monitoring process under ``supervisor``; how long (s) until all of them
    answered. `StackError` naming one that died (with ``log_tail(name)``) or stayed silent."""
    started_ns = time.monotonic_ns()
    for name, argv in commands(layout, directory).items():
        supervisor.add(name, argv, restart)

    def died(name: str) -> str | None:
        for e in supervisor.events:
            if e.component == name and e.kind == "exited":
                return f"{e.detail}; its log says: {log_tail(name)}"
        return None

    wait_ready(layout, deadline, died)
    return round((time.monotonic_ns() - started_ns) / 1e9, 3)


def expected_targets(nodes: int, haproxy_scraped: bool) -> int:
    """How many targets the stack's Prometheus scrapes: a probe per node and one through
    the frontend; the node, heads and blackbox exporters; HAProxy when it serves metrics."""
    return nodes + 4 + (1 if haproxy_scraped else 0)


def wait_scraped(prometheus_url: str, expected: int, timeout_s: float) -> float | None:
    """Until Prometheus has scraped each of its ``expected`` targets once: how long that
    took (s), or None if it had not within ``timeout_s``. Prometheus 2.42 hands new targets
    to its scrapers in 5 s batches (its discovery manager's fixed update interval, no flag
    to change it): until then no rule sees a sample. A stack is ready without it; a run
    waits here before its first fault, so its baseline absorbs the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _scraped_targets(prometheus_url) >= expected:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _scraped_targets(prometheus_url: str) -> int:
    """How many of Prometheus's targets it has scraped at least once."""
    try:
        with urllib.request.urlopen(prometheus_url + "api/v1/targets", timeout=0.5) as answer:
            doc = json.load(answer)
    except (OSError, ValueError):
        return 0
    targets = doc.get("data", {}).get("activeTargets", ())
    return sum(1 for t in targets if not t.get("lastScrape", "").startswith("0001-"))
