"""HAProxy for the local stack: render its config from a template, validate it with
``haproxy -c``, and read its own view of the servers through the runtime API.

HAProxy's runtime API is the authority on what the balancer believes: the probes read it
to timestamp detection (a server going DOWN), the steady-state check to see every server UP.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness.errors import ConfigError, MissingBinaryError
from harness.stack.model import HealthCheck
from harness.stack.nodes import HttpCheck

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEFAULT_TEMPLATE = FIXTURES / "haproxy.cfg.j2"
HARDENED_TEMPLATE = FIXTURES / "haproxy-hardened.cfg.j2"
#: The template of each of `harness.stack.model.POLICY_NAMES`.
POLICY_TEMPLATES = {"roadmap": DEFAULT_TEMPLATE, "hardened": HARDENED_TEMPLATE}
# Above ~9,000 HAProxy fails on this machine's file-descriptor limit.
DEFAULT_MAXCONN = 4096


@dataclass(frozen=True)
class ServerEntry:
    name: str
    host: str
    port: int
    backup: bool
    agent_port: int | None = None  # where the lag agent answers for this server, if it runs
    agent_host: str | None = None  # ... on this address (None: loopback)


def template_for(policy: str, template: Path | None = None) -> Path:
    """The template that renders ``policy``'s config; a user's own ``template`` wins."""
    return template or POLICY_TEMPLATES[policy]


def haproxy_binary() -> Path:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise MissingBinaryError("haproxy", "install it with `apt-get install haproxy`")
    return Path(found)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _haproxy_quote(value: str) -> str:
    """Quote a string as one HAProxy config word: double quotes, with the backslash, the
    quote, ``$`` (HAProxy expands environment variables in double quotes) and line breaks
    escaped, so the bytes HAProxy sends are the bytes given."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def render_config(
    *,
    template: Path | None,
    frontend_host: str,
    frontend_port: int,
    stats_port: int,
    stats_socket: Path,
    servers: list[ServerEntry],
    check: HttpCheck,
    health: HealthCheck,
    maxconn: int = DEFAULT_MAXCONN,
    chain_source: ServerEntry | None = None,
    metrics_port: int | None = None,
) -> str:
    """The config text for these servers, from ``template`` or the project's default.
    ``chain_source``: one chain's source, where a template sends transactions;
    ``metrics_port``: where a template serves HAProxy's Prometheus exporter (None: not)."""
    path = template or DEFAULT_TEMPLATE
    try:
        source = path.read_text()
    except OSError as exc:
        raise ConfigError("haproxy_template", str(path), f"cannot read it: {exc.strerror}") from exc
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["haproxy_quote"] = _haproxy_quote
    try:
        return env.from_string(source).render(
            frontend_host=frontend_host,
            frontend_port=frontend_port,
            stats_port=stats_port,
            stats_socket=str(stats_socket),
            maxconn=maxconn,
            servers=servers,
            chain_source=chain_source,
            metrics_port=metrics_port,
            check={
                "inter_ms": health.inter_ms,
                "fall": health.fall,
                "rise": health.rise,
                "method": check.method,
                "uri": check.uri,
                "headers": check.headers,
                "body": check.body,
                "expect_status": check.expect_status,
            },
        )
    except jinja2.TemplateError as exc:
        raise ConfigError(
            "haproxy_template", str(path), f"the template does not render: {exc}"
        ) from exc


def validate_config(config_path: Path) -> None:
    """Run ``haproxy -c`` on the file; a `ConfigError` with HAProxy's own words if it fails."""
    proc = subprocess.run(
        [str(haproxy_binary()), "-c", "-f", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).splitlines()
        # "[ALERT]    (5442) : config : parsing [x.cfg:2] : unknown keyword ..." -> the words.
        alerts = [line.split(" : ", 1)[-1] for line in output if "[ALERT]" in line]
        raise ConfigError(
            "haproxy config",
            str(config_path),
            "HAProxy rejects it (`haproxy -c`): " + " | ".join(alerts[:4] or output[-4:]),
        )


def require_every_server(config: str, servers: list[ServerEntry], template: Path | None) -> None:
    """`ConfigError` unless every node appears as a ``server`` line of the rendered config:
    a template that leaves one out would otherwise fail only when the stack never becomes
    ready, 30 s later."""
    declared = {
        words[1]
        for words in (line.split() for line in config.splitlines())
        if len(words) >= 2 and words[0] == "server"
    }
    missing = [s.name for s in servers if s.name not in declared]
    if missing:
        raise ConfigError(
            "haproxy_template",
            str(template or DEFAULT_TEMPLATE),
            f"the rendered config has no `server` line for {', '.join(missing)}: loop over "
            "`servers` (`{% for s in servers %} server {{ s.name }} ...`) so every node is "
            "in the backend",
        )


def serves_metrics(config: str) -> bool:
    """True if a rendered config serves HAProxy's Prometheus exporter (PROMEX): a user's own
    template may not, and then the stack's Prometheus does not scrape HAProxy."""
    return "use-service prometheus-exporter" in config


def command(config_path: Path) -> list[str]:
    """Run HAProxy in the foreground (-db) so the supervisor owns the process."""
    return [str(haproxy_binary()), "-db", "-f", str(config_path)]


@dataclass(frozen=True)
class ServerStatus:
    """HAProxy's own view of one server (a row of ``show stat``)."""

    backend: str
    server: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (going up), MAINT, no check
    check_status: str
    check_duration_ms: int | None
    last_change_s: int | None
    backup: bool
    # The agent check's last result (L7OK: "up", L7STS: "down"; "* " in front while one
    # runs) and its words, "via agent : down (3 blocks behind ...)" (blank while one runs).
    agent_status: str = ""
    last_agent: str = ""

    @property
    def up(self) -> bool:
        return self.status == "UP"

    @property
    def serving(self) -> bool:
        """UP after a passed check: UP alone is HAProxy's optimistic initial state; L7OK
        means a check passed (and, with the lag agent, an agent L7OK that it said "up")."""
        return (
            self.up
            and self.check_status.startswith("L7OK")
            and self.agent_status.lstrip("* ") in ("", "L7OK")
        )

    def describe(self) -> str:
        """``node-0=DOWN/L4CON[/agent ...]``: what a not-ready message shows of it."""
        agent = f"/agent {self.agent_status} {self.last_agent}" if self.agent_status else ""
        return f"{self.server}={self.status}/{self.check_status or 'unchecked'}{agent}"


class RuntimeApi:
    """HAProxy's runtime API over its stats socket (one short connection per command)."""

    def __init__(self, socket_path: str | Path, timeout_s: float = 1.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout_s = timeout_s

    def command(self, line: str) -> str:
        """Send one command and return HAProxy's full answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self, backend: str = "ethereum_backend") -> list[ServerStatus]:
        """Every server of ``backend`` with HAProxy's status for it."""
        return [s for s in parse_show_stat(self.command("show stat")) if s.backend == backend]

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``set server B/S state ready|drain|maint`` (the runtime API's own fault lever)."""
        answer = self.command(f"set server {backend}/{server} state {state}").strip()
        if answer:
            raise ConfigError("server state", state, f"HAProxy refused it: {answer}")


def parse_show_stat(text: str) -> list[ServerStatus]:
    """Parse ``show stat`` CSV into server rows (frontends and BACKEND rows are skipped)."""
    lines = text.lstrip("# ").splitlines()
    rows: list[ServerStatus] = []
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        if row.get("svname") in ("FRONTEND", "BACKEND") or row.get("type") not in ("2",):
            continue
        rows.append(
            ServerStatus(
                backend=row["pxname"],
                server=row["svname"],
                status=row["status"],
                check_status=row.get("check_status", ""),
                check_duration_ms=_int_or_none(row.get("check_duration")),
                last_change_s=_int_or_none(row.get("lastchg")),
                backup=row.get("bck") == "1",
                agent_status=row.get("agent_status") or "",
                last_agent=row.get("last_agt") or "",
            )
        )
    return rows


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
