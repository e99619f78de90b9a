"""The ``harness`` command: a thin adapter over the library.

Errors a person can act on print one line and exit 2 (bad input) or 1 (anything else);
``--debug`` shows the traceback too. Only this module draws on the terminal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness import experiment
from harness.cleanup import cleanup_leftovers
from harness.errors import ConfigError, HarnessError
from harness.experiment.live import Progress, StopRequest
from harness.faults import FAULTS, make_fault, parameters
from harness.faults.proxy import FaultMayNeverFire
from harness.faults.registry import fault_class
from harness.gameday import GamedaySpec, Schedule, Window, load_gameday_spec, make_schedule
from harness.gameday.day import DayPlan, read_schedule, run_day, window_deadline_s
from harness.jsonrpc import RpcClient, RpcFailure
from harness.load.runner import LoadSpec
from harness.measure import SLO, Safeguard, load_spec_file
from harness.measure.budget import ErrorBudget
from harness.proxy.toxiproxy import URL_ENV, ToxiproxyDriver, toxiproxy_url_from_env
from harness.report import RESULT_FILE, SUMMARY_FILE, read_document, summarize, write_html
from harness.report.compare import compare, tolerances
from harness.report.delivery import EXPORT_OPTIONS, check_destinations, deliver
from harness.report.history import History
from harness.report.junit import write_junit
from harness.report.metrics import exposition, write_textfile
from harness.report.pushgateway import check_reachable, push
from harness.report.summary import verdict_word
from harness.stack import daemon
from harness.stack.backends import plan_stack
from harness.stack.haproxy import RuntimeApi
from harness.stack.model import ComponentState, StackState
from harness.stack.options import STACK_OPTIONS, StackOption, stack_spec_from_options
from harness.stack.state import AttachedStack, running_stack
from harness.units import parse_duration_s

# Piped output (a CI log, a file) is not cut to 80 columns: tables stay whole.
console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: HarnessError, debug: bool) -> None:
    if debug:
        err_console.print_exception()
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    sys.exit(exc.exit_code)


def handles_errors(fn: F) -> F:
    """Turn a `HarnessError` into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            _fail(exc, click.get_current_context().find_root().params.get("debug", False))

    return wrapper  # type: ignore[return-value]


def _click_option(o: StackOption) -> Callable[[F], F]:
    """The click adapter of one row of the stack's option table."""
    if o.is_flag:
        return click.option(o.flag, o.dest, is_flag=True, help=o.help)  # type: ignore[no-any-return]
    kind: Any = o.kind
    if o.choices:
        kind = click.Choice(o.choices)
    elif o.kind is Path:
        kind = click.Path(path_type=Path)
    return click.option(  # type: ignore[no-any-return]
        o.flag,
        o.dest,
        type=kind,
        default=o.default,
        multiple=o.multiple,
        show_default=o.default not in (None, ()),
        metavar=o.metavar,
        help=o.help,
    )


def export_options(fn: F) -> F:
    """Where a run's figures go as Prometheus metrics (`EXPORT_OPTIONS`): shared by
    `export`, `run` and `gameday`."""
    for o in reversed(EXPORT_OPTIONS):
        fn = click.option(
            o.flag,
            o.dest,
            type=click.Path(path_type=Path) if o.is_path else str,
            metavar=o.metavar,
            help=o.help,
        )(fn)
    return fn


def stack_options(fn: F) -> F:
    """The options that describe a stack, shared by `stack up` and `run` (and, through the
    same table, the pytest plugin)."""
    for option in reversed(STACK_OPTIONS):
        fn = _click_option(option)(fn)
    return fn


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Chaos and reliability harness for Ethereum JSON-RPC stacks."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Said once, by the log line; the warning is for pytest's summary.
    warnings.simplefilter("ignore", FaultMayNeverFire)


@main.group()
def stack() -> None:
    """Stand a local stack up, look at it, take it down."""


@stack.command("up")
@stack_options
@click.option("--json", "as_json", is_flag=True, help="Print the stack's state as JSON.")
@handles_errors
def stack_up(as_json: bool, **opts: Any) -> None:
    """Start a stack in the background; returns when it is ready."""
    spec = stack_spec_from_options(opts)
    reaped = cleanup_leftovers()
    state, ready_s, _ = daemon.start_detached(spec)
    if as_json:
        click.echo(json.dumps({"ready_s": ready_s, "reaped": reaped, **state.to_dict()}, indent=2))
        return
    for line in reaped:
        err_console.print(f"removed leftover: {line}")
    console.print(f"stack {state.name} ready in {ready_s:.2f}s: {state.frontend_url}")
    _print_status(state)


@stack.command("status")
@click.option("--name", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def stack_status(name: str, as_json: bool) -> None:
    """Each component: kind, pid, address, health, head, HAProxy's view."""
    state = running_stack(name)
    if as_json:
        click.echo(json.dumps(status_doc(state), indent=2))
    else:
        _print_status(state)


def status_doc(state: StackState) -> dict[str, Any]:
    """The stack's state plus live health: what `stack status --json` prints."""
    try:
        servers = {s.server: s for s in RuntimeApi(state.stats_socket).servers()}
    except OSError:
        servers = {}
    components = []
    for c in state.components:
        doc: dict[str, Any] = dict(c.__dict__, url=c.url)
        if c.role in ("proxy", "agent", "replicator", "monitor"):  # no JSON-RPC: own health
            doc["head"] = None
            doc["health"] = _agent_health(c) if c.role == "agent" else _http_health(c)
            components.append(doc)
            continue
        target = state.frontend_url if c.role == "balancer" else c.url
        try:
            with RpcClient(target, timeout_s=1.0) as client:
                doc["head"] = client.block_number()
                doc["health"] = "answering"
        except RpcFailure as exc:
            doc["head"] = None
            doc["health"] = str(exc)
        if c.name in servers:
            s = servers[c.name]
            doc["haproxy"] = {
                "status": s.status,
                "check_status": s.check_status,
                "check_duration_ms": s.check_duration_ms,
                "last_change_s": s.last_change_s,
            }
        components.append(doc)
    return {**state.to_dict(), "components": components}


def _http_health(c: ComponentState) -> str:
    """A component's own answer on its health URL: the fault proxy's and the replicator's
    control API (/health), a monitoring process's (`harness.monitor.HEALTH_PATHS`)."""
    if c.role == "monitor":
        from harness.monitor.processes import HEALTH_PATHS

        url = c.url + HEALTH_PATHS.get(c.name, "")
    else:
        url = c.url + "health"
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return "answering" if answer.status == 200 else f"HTTP {answer.status}"
    except OSError as exc:
        return f"health {url}: {exc}"


def _agent_health(agent: ComponentState) -> str:
    """The lag agent's verdicts, from the one JSON line its own port answers."""
    try:
        with socket.create_connection((agent.host, agent.port), timeout=1.0) as sock:
            verdicts = json.loads(sock.makefile("rb").readline())
    except (OSError, ValueError) as exc:
        return f"status port: {exc}"
    if not isinstance(verdicts, dict):
        return "answering"
    # {"node-0": "up #head 12, best 12", ...}: the word of each, which HAProxy acts on.
    return ", ".join(
        f"{name} {str(reply).split(' ', 1)[0]}" for name, reply in sorted(verdicts.items())
    )


def _print_status(state: StackState) -> None:
    doc = status_doc(state)
    table = Table(title=f"stack {state.name} ({state.backend})  frontend {state.frontend_url}")
    for column in ("name", "kind", "role", "pid", "address", "health", "head", "haproxy"):
        table.add_column(column)
    for c in doc["components"]:
        hap = c.get("haproxy")
        table.add_row(
            c["name"],
            c["kind"],
            c["role"],
            str(c["pid"]),
            f"{c['host']}:{c['port']}",
            c.get("health", ""),
            "" if c.get("head") is None else str(c["head"]),
            f"{hap['status']} ({hap['check_status']})" if hap else "",
        )
    console.print(table)
    console.print(f"stats page: {state.stats_url}  runtime API: {state.stats_socket}")


@stack.command("down")
@click.option("--name", default="default", show_default=True)
@handles_errors
def stack_down(name: str) -> None:
    """Stop the stack and everything it started."""
    if daemon.stop_detached(name):
        console.print(f"stack {name} stopped")
    else:
        console.print(f"no stack named {name!r} is running")
    for line in cleanup_leftovers():
        console.print(f"removed leftover: {line}")


@main.command()
@handles_errors
def cleanup() -> None:
    """Undo and remove whatever a killed run left behind: faults, processes, state, and the
    docker backend's containers, networks and volumes (of every state root)."""
    removed = cleanup_leftovers(everywhere=True)
    for line in removed:
        console.print(f"removed: {line}")
    console.print(f"cleanup: {len(removed)} leftover(s) removed")


@main.group()
def images() -> None:
    """Images for the docker backend, baked offline from this machine's binaries."""


@images.command("bake")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even when an image of the same inputs exists.")
@click.option(
    "--binary",
    "binaries",
    multiple=True,
    metavar="NAME=PATH",
    help="Bake NAME from this binary (erigon and toxiproxy need one; repeat).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handles_errors
def images_bake(
    names: tuple[str, ...], force: bool, binaries: tuple[str, ...], as_json: bool
) -> None:
    """Build NAMES (default: anvil haproxy) as harness/NAME:VERSION; skips one already there."""
    from harness.images import bake_all
    from harness.images.recipes import DEFAULT_RECIPES

    given: dict[str, Path] = {}
    for item in binaries:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(
                "--binary", item, "write NAME=PATH, e.g. erigon=/usr/local/bin/erigon"
            )
        given[name] = Path(path)
    chosen = names or tuple(dict.fromkeys([*DEFAULT_RECIPES, *given]))
    results = bake_all(chosen, binaries=given, force=force)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
        return
    for r in results:
        size = f", {r.size_bytes / 1e6:.1f} MB" if r.size_bytes else ""
        console.print(f"{r.tag}: {r.action} in {r.took_s:.2f}s{size}")


@main.command("run", context_settings={"show_default": True})
@stack_options
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--fault", "fault_kind", default="kill", help="Fault type (see `harness doctor`).")
@click.option("--target", default="primary", help="Fault target (primary, backup, node-N, ...).")
@click.option("-p", "--param", "pairs", multiple=True, help="A fault parameter key=value.")
@click.option("--baseline", default="3s", help="Probing before the fault.")
@click.option("--hold", default="0s", help="How long the fault holds (0 for a kill).")
@click.option("--settle", default="2s", help="Probing after recovery.")
@click.option(
    "--recovery-timeout", default="30s", help="How long recovery may take before it is judged."
)
@click.option(
    "--restore-timeout",
    default="15s",
    help="After the run: how long the stack may take to be steady again.",
)
@click.option("--probe-interval-ms", type=float, default=20.0)
@click.option("--slo", "slos", multiple=True, help="An SLO, e.g. 'outage_s <= 5' (repeat).")
@click.option(
    "--slo-file",
    type=click.Path(path_type=Path),
    help="A TOML file with slos = [...] and abort_if = [...].",
)
@click.option("--abort-if", "guards", multiple=True, help="e.g. 'error_rate_pct > 90 for 5s'.")
@click.option("--seed", type=int, default=0)
@click.option(
    "--run-name",
    default="",
    help="What the run is called in the history (runs of one name are compared); "
    "default: what it does, e.g. 'kill primary'.",
)
@click.option(
    "--availability-target",
    type=float,
    default=99.99,
    help="Error budget: the availability target (%) the outage is measured against.",
)
@click.option(
    "--cost-per-minute",
    type=float,
    default=0.0,
    help="Error budget: what a minute of downtime costs (0: not priced).",
)
@click.option("--currency", default="USD", help="Error budget: the cost's currency.")
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path),
    help="Also write the verdicts as JUnit XML here (a test case per SLO).",
)
@export_options
@click.option("--no-load", is_flag=True, help="Probes only, no Locust load.")
@click.option(
    "--load-at", default="frontend", help="Where the load goes: frontend, primary or node-N."
)
@click.option("--load-profile", default="searcher", help="searcher, light, heavy, or a TOML file.")
@click.option("--load-model", type=click.Choice(["open", "closed"]), default="open")
@click.option("--rate", type=float, default=200.0, help="Open model: requests per second.")
@click.option("--users", type=int, default=32, help="Locust users (open model: concurrency cap).")
@click.option(
    "--workers",
    type=int,
    default=0,
    help="Local Locust worker processes (default 0: one per core, at most one per user).",
)
@click.option("--wait-ms", type=float, default=0.0, help="Closed model: think time per user.")
@click.option(
    "--remote-workers",
    type=int,
    default=0,
    help="Locust workers on other machines; the run writes the script that starts one.",
)
@click.option(
    "--master-bind",
    default="127.0.0.1",
    help="With --remote-workers: the address the Locust master listens on (e.g. 0.0.0.0).",
)
@click.option(
    "--master-port", type=int, default=0, help="With --remote-workers: its port (0: a free one)."
)
@click.option(
    "--load-url-for-remote",
    default="",
    help="With --remote-workers: the load target as the worker machines reach it.",
)
@click.option(
    "--load-start-timeout",
    default="60s",
    help="How long to wait for the load's first request (and for the remote workers).",
)
@click.option(
    "--load-warmup",
    default="1s",
    help="How long the load runs before the baseline begins (not judged).",
)
@handles_errors
def run_cmd(
    reports_dir: Path,
    fault_kind: str,
    target: str,
    pairs: tuple[str, ...],
    baseline: str,
    hold: str,
    settle: str,
    recovery_timeout: str,
    restore_timeout: str,
    probe_interval_ms: float,
    slos: tuple[str, ...],
    slo_file: Path | None,
    guards: tuple[str, ...],
    seed: int,
    run_name: str,
    availability_target: float,
    cost_per_minute: float,
    currency: str,
    junit_path: Path | None,
    textfile_dir: Path | None,
    pushgateway_url: str | None,
    no_load: bool,
    load_at: str,
    load_profile: str,
    load_model: str,
    rate: float,
    users: int,
    workers: int,
    wait_ms: float,
    remote_workers: int,
    master_bind: str,
    master_port: int,
    load_url_for_remote: str,
    load_start_timeout: str,
    load_warmup: str,
    **opts: Any,
) -> None:
    """Run the main chaos experiment: stack up, probes, baseline, fault, recovery, verdict.

    Writes reports/<run-id>/result.json, summary.txt and probes.jsonl. Exit 0 if every
    SLO held and the steady state held before and after, 1 if not, 2 on bad input.
    """
    file_slos, file_guards = load_spec_file(slo_file) if slo_file else ((), ())
    # Built even with --no-load: the options are unused then, but a bad one is still bad input.
    load = LoadSpec(
        profile=load_profile,
        model=load_model,
        rate_per_s=rate,
        users=users,
        workers=workers,
        wait_ms=wait_ms,
        seed=seed,
        remote_workers=remote_workers,
        master_bind=master_bind,
        master_port=master_port,
        remote_target_url=load_url_for_remote,
        start_timeout_s=parse_duration_s(load_start_timeout, "--load-start-timeout"),
        warmup_s=_duration_or_zero(load_warmup, "--load-warmup"),
    )
    spec = experiment.ExperimentSpec(
        stack=stack_spec_from_options(opts),
        fault=fault_kind,
        target=target,
        fault_params=_parse_params(pairs),
        seed=seed,
        baseline_s=_duration_or_zero(baseline, "--baseline"),
        hold_s=_duration_or_zero(hold, "--hold"),
        settle_s=_duration_or_zero(settle, "--settle"),
        recovery_timeout_s=parse_duration_s(recovery_timeout, "--recovery-timeout"),
        restore_timeout_s=parse_duration_s(restore_timeout, "--restore-timeout"),
        probe_interval_s=probe_interval_ms / 1000,
        slos=file_slos + tuple(SLO.parse(s) for s in slos) or experiment.DEFAULT_SLOS,
        safeguards=file_guards + tuple(Safeguard.parse(g) for g in guards),
        load_at=load_at,
        load=None if no_load else load,
        name=run_name,
        budget=ErrorBudget(availability_target, cost_per_minute, currency),
    )
    fault_class(fault_kind)  # an unknown type fails before the stack starts
    if junit_path is not None:
        _writable(junit_path, "--junit")
    check_destinations(textfile_dir, pushgateway_url)
    result = experiment.run(spec, reports_dir)
    if junit_path is not None:
        write_junit(read_document(Path(result.run_dir) / RESULT_FILE), junit_path)
    click.echo((Path(result.run_dir) / SUMMARY_FILE).read_text(), nl=False)
    deliver(Path(result.run_dir), textfile_dir, pushgateway_url)
    sys.exit(0 if result.passed else 1)


def _writable(path: Path, field: str) -> None:
    """`ConfigError` now, rather than after the run, if ``path`` cannot be written."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not directory.is_dir() or not os.access(directory, os.W_OK):
        raise ConfigError(field, str(path), "give a file path in a writable, existing directory")


class LiveView:
    """A run's progress on the terminal: a live table on a TTY (redrawn each second), plain
    lines elsewhere (CI logs): one at each phase, and one every 30 s between."""

    def __init__(self, total_s: float | None) -> None:
        self.total_s = total_s
        self.tty = sys.stdout.isatty()
        self._live: Live | None = None
        self._last: tuple[int | None, str] | None = None
        self._last_line_s = -1e9

    def __enter__(self) -> LiveView:
        if self.tty:
            self._live = Live(console=console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __call__(self, p: Progress) -> None:
        left = f", {max(self.total_s - p.elapsed_s, 0):.0f}s left" if self.total_s else ""
        where = (
            f"episode {p.episode + 1}/{p.episodes} {p.phase}: {p.fault}"
            if p.episode is not None
            else p.phase
        )
        load = ""
        if p.recent is not None and p.recent.requests:
            r = p.recent
            p50 = f"{r.p50_us / 1000:.1f}" if r.p50_us is not None else "-"
            p99 = f"{r.p99_us / 1000:.1f}" if r.p99_us is not None else "-"
            errors = r.error_rate_pct or 0.0
            load = f"; last {r.seconds}s: p50 {p50} ms, p99 {p99} ms, errors {errors:.1f}%"
        line = f"t={p.elapsed_s:.0f}s{left}; {where}; {p.done} done, {p.failed} failed{load}" + (
            f"; ENDING: {p.aborted}" if p.aborted else ""
        )
        if self._live is not None:
            self._live.update(Text(line))
            return
        if (p.episode, p.phase) != self._last or p.elapsed_s - self._last_line_s >= 30:
            self._last, self._last_line_s = (p.episode, p.phase), p.elapsed_s
            click.echo(line)


def _duration_or_zero(text: str, field: str) -> float:
    return 0.0 if text.strip() in ("0", "0s") else parse_duration_s(text, field)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("-p", pair, "write parameters as key=value, e.g. -p percent=30")
        params[key.strip()] = value.strip()
    return params


def _hms(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def print_schedule(schedule: Schedule, spec: GamedaySpec, window_note: str) -> None:
    """The whole day, before anything runs: what `--dry-run` shows."""
    console.print(
        f"game day: seed {schedule.seed}, {len(schedule.episodes)} episodes over "
        f"{_hms(schedule.planned_s)} of {_hms(schedule.duration_s)}; {window_note}"
    )
    guards = ", ".join(str(g) for g in spec.abort_if) or "none"
    load = spec.load
    console.print(
        "load: "
        + (f"{load.profile}, {load.model} model, {load.rate_per_s:g} req/s" if load else "none")
        + f"; abort if: {guards}; SLOs per episode: {', '.join(str(s) for s in spec.slos)}"
    )
    table = Table(title="schedule (start: planned, after the first episode's start)")
    for column in ("#", "start", "gap", "fault", "target", "hold", "parameters"):
        table.add_column(column)
    for s in schedule.episodes:
        e = s.episode
        params = " ".join(f"{k}={v}" for k, v in sorted(e.params.items()))
        table.add_row(
            str(s.index + 1), f"+{_hms(s.planned_start_s)}", f"{e.baseline_s:g}s", e.fault,
            e.target, f"{e.hold_s:g}s" if e.hold_s else "-", params,
        )  # fmt: skip
    console.print(table)
    for kind, why in schedule.left_out:
        console.print(f"left out: {kind}: {why}")


@main.command("gameday", context_settings={"show_default": True})
@stack_options
@click.option("--spec", "spec_file", type=click.Path(path_type=Path), help="A game-day TOML.")
@click.option("--duration", help="How long the day lasts (1h, 10m); default: the spec's, 1h.")
@click.option("--window", "window_text", help="When it may run: 'Mon-Fri 09:00-17:00 UTC'.")
@click.option("--now", "ignore_window", is_flag=True, help="Run now, whatever the window.")
@click.option("--seed", type=int, help="The schedule's seed (default: a new one, printed).")
@click.option("--gap", help="Range of the gap before each fault: '30s-2m'.")
@click.option("--max-nodes-at-once", type=int, help="Blast radius (default: half, at least 1).")
@click.option("--allow-total-outage", is_flag=True, help="Allow all nodes or HAProxy at once.")
@click.option("--slo", "slos", multiple=True, help="An SLO every episode is judged by (repeat).")
@click.option("--abort-if", "guards", multiple=True, help="A safeguard that ends the day.")
@click.option("--no-load", is_flag=True, help="Probes only, no Locust load.")
@click.option("--rate", type=float, help="The load's rate (open model), req/s.")
@click.option("--dry-run", is_flag=True, help="Print the schedule and touch nothing.")
@click.option(
    "--replay",
    "replay_dir",
    type=click.Path(path_type=Path),
    help="Run a previous day's exact schedule (its run directory).",
)
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="JUnit XML here.")
@export_options
@handles_errors
def gameday_cmd(
    spec_file: Path | None,
    duration: str | None,
    window_text: str | None,
    ignore_window: bool,
    seed: int | None,
    gap: str | None,
    max_nodes_at_once: int | None,
    allow_total_outage: bool,
    slos: tuple[str, ...],
    guards: tuple[str, ...],
    no_load: bool,
    rate: float | None,
    dry_run: bool,
    replay_dir: Path | None,
    reports_dir: Path,
    junit_path: Path | None,
    textfile_dir: Path | None,
    pushgateway_url: str | None,
    **opts: Any,
) -> None:
    """A game day: continuous load and a seeded schedule of faults inside a time window.

    Each episode is a scenario's (baseline, fault, recovery), drawn from the fault mix
    this stack can run, never hitting more than the blast radius allows, each starting
    from the steady state. Exit 0 if every episode held its SLOs, 1 if not, 2 on bad input.
    """
    spec = load_gameday_spec(spec_file) if spec_file else GamedaySpec()
    changes: dict[str, Any] = {}
    if duration is not None:
        changes["duration_s"] = parse_duration_s(duration, "--duration")
    if window_text is not None:
        changes["window"] = Window.parse(window_text)
    if seed is not None or spec_file is None:
        changes["seed"] = seed if seed is not None else secrets.randbelow(2**31)
    if gap is not None:
        low, sep, high = gap.partition("-")
        if not sep:
            raise ConfigError("--gap", gap, "give a range such as 30s-2m")
        changes["gap_s"] = (parse_duration_s(low, "--gap"), parse_duration_s(high, "--gap"))
    if max_nodes_at_once is not None:
        changes["max_nodes_at_once"] = max_nodes_at_once
    if allow_total_outage:
        changes["allow_total_outage"] = True
    if slos:
        changes["slos"] = tuple(SLO.parse(s) for s in slos)
    if guards:
        changes["abort_if"] = tuple(Safeguard.parse(g) for g in guards)
    if no_load:
        changes["load"], changes["abort_if"] = None, ()
    elif rate is not None and spec.load is not None:
        changes["load"] = dataclasses.replace(spec.load, rate_per_s=rate)
    spec = dataclasses.replace(spec, **changes)
    stack_spec = stack_spec_from_options(opts)
    if replay_dir is not None:
        schedule = read_schedule(replay_dir)
    else:
        schedule = make_schedule(spec, plan_stack(stack_spec).state())
    now = dt.datetime.now(dt.UTC)
    if dry_run:
        try:
            left = window_deadline_s(spec.window, now, ignore_window)
            note = f"window {spec.window}: open now" + (
                f", {_hms(left)} left" if left is not None else ""
            )
        except ConfigError as closed:
            note = f"window {closed.value} {closed.fix}"
        print_schedule(schedule, spec, note)
        return
    deadline = window_deadline_s(spec.window, now, ignore_window)
    if junit_path is not None:
        _writable(junit_path, "--junit")
    check_destinations(textfile_dir, pushgateway_url)
    stop = StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(
            sig, lambda signum, frame: stop.ask(f"stopped by {signal.Signals(signum).name}")
        )
    with LiveView(schedule.duration_s) as view:
        result = run_day(spec, stack_spec, DayPlan(schedule, deadline), reports_dir,
                         progress=view, stop=stop)  # fmt: skip
    if junit_path is not None:
        write_junit(read_document(Path(result.run_dir) / RESULT_FILE), junit_path)
    click.echo((Path(result.run_dir) / SUMMARY_FILE).read_text(), nl=False)
    deliver(Path(result.run_dir), textfile_dir, pushgateway_url)
    sys.exit(0 if result.passed else 1)


def run_dir_of(run: str, reports_dir: Path) -> Path:
    """A run named by its directory or by its id under ``reports_dir``; `ConfigError` if
    neither holds a result.json."""
    for candidate in (Path(run), reports_dir / run):
        if (candidate / RESULT_FILE).is_file():
            return candidate
    raise ConfigError(
        "run",
        run,
        f"no result.json there nor in {reports_dir / run}: give a run's directory or its id "
        "(`harness history` lists them)",
    )


@main.command("report", context_settings={"show_default": True})
@click.argument("run")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@handles_errors
def report_cmd(run: str, reports_dir: Path) -> None:
    """Render a run's report.html and summary.txt again from its result.json.

    RUN: the run's directory, or its id under --reports-dir.
    """
    directory = run_dir_of(run, reports_dir)
    doc = read_document(directory / RESULT_FILE)
    (directory / SUMMARY_FILE).write_text(summarize(doc) + "\n")
    path = write_html(directory)
    console.print(f"{verdict_word(doc)} {doc['name']}: {path}")


@main.command("export", context_settings={"show_default": True})
@click.argument("run")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@export_options
@handles_errors
def export_cmd(
    run: str, reports_dir: Path, textfile_dir: Path | None, pushgateway_url: str | None
) -> None:
    """A run's verdicts and figures as Prometheus metrics: to node exporter's textfile
    collector (--textfile), a Pushgateway (--pushgateway), or, with neither, stdout.

    RUN: the run's directory, or its id under --reports-dir.
    """
    directory = run_dir_of(run, reports_dir)
    doc = read_document(directory / RESULT_FILE)
    if textfile_dir is None and pushgateway_url is None:
        click.echo(exposition(doc), nl=False)
        return
    if pushgateway_url is not None:
        check_reachable(pushgateway_url)
    if textfile_dir is not None:
        path = write_textfile(doc, textfile_dir)
        console.print(f"{doc['name']} ({doc['run_id']}): {path}")
    if pushgateway_url is not None:
        group = push(doc, pushgateway_url)
        console.print(f"{doc['name']} ({doc['run_id']}): pushed to {group}")


@main.command("history", context_settings={"show_default": True})
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--name", "run_name", help="Only runs of this name (a scenario's, say).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20)
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def history_cmd(reports_dir: Path, run_name: str | None, limit: int, as_json: bool) -> None:
    """The runs recorded in <reports-dir>/history.sqlite, newest first."""
    with History.in_reports(reports_dir, create=False) as history:
        runs = history.runs(run_name, limit)
        baselines = {r.name: history.baseline(r.name) for r in runs}
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
        return
    table = Table(title=f"runs in {reports_dir / 'history.sqlite'}")
    for column in ("run", "started", "name", "verdict", "s", "template", "baseline"):
        table.add_column(column)
    for r in runs:
        pinned = baselines.get(r.name)
        table.add_row(
            r.run_id,
            r.started_at,
            r.name,
            "PASS" if r.passed else ("ABORTED" if r.aborted else "FAIL"),
            f"{r.duration_s:.1f}" if r.duration_s is not None else "",
            r.template_fingerprint or "",
            "yes" if pinned is not None and pinned.run.run_id == r.run_id else "",
        )
    console.print(table)


@main.command("compare", context_settings={"show_default": True})
@click.argument("run", default="latest")
@click.option(
    "--against",
    default="previous",
    help="previous (the last earlier run of the same name), baseline, or a run id.",
)
@click.option(
    "--tolerance",
    "tolerance_texts",
    multiple=True,
    help="How much worse a metric may get: 'p99_ms=25%', 'outage_s=0.5s', 'mttr_*=30%,1s'.",
)
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--all", "every", is_flag=True, help="Show every metric, not only the gated ones.")
@click.option(
    "--every-name",
    is_flag=True,
    help="Compare the latest run of every name (each scenario of a suite), not one run.",
)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="A run with nothing to compare against (the first of its name, no baseline) is "
    "no failure: a fresh CI runner's first pipeline.",
)
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def compare_cmd(
    run: str,
    against: str,
    tolerance_texts: tuple[str, ...],
    reports_dir: Path,
    every: bool,
    every_name: bool,
    missing_ok: bool,
    as_json: bool,
) -> None:
    """Compare RUN (default: the latest) with an earlier run; exit 1 on a regression.

    Regressions are flagged for the outage, both MTTRs and every p99 beyond a tolerance
    (by default 20% and at least 0.25 s or 2 ms): a CI gate after a scenario run.
    """
    gates = tolerances(tolerance_texts)  # bad input fails before the history is opened
    if missing_ok and not (reports_dir / "history.sqlite").exists():
        console.print(f"no history in {reports_dir} yet: nothing to compare (--missing-ok)")
        return
    comparisons, missing = [], []
    with History.in_reports(reports_dir, create=False) as history:
        if every_name:
            newest: dict[str, str] = {}
            for r in history.runs(limit=None):
                newest.setdefault(r.name, r.run_id)
            currents = [history.run(run_id) for run_id in newest.values()]
        else:
            currents = [history.latest() if run == "latest" else history.run(run)]
        for current in currents:
            try:
                reference = history.reference(current.run.run_id, against)
            except ConfigError as exc:
                if not missing_ok:
                    raise
                missing.append(f"{current.run.name}: {exc.fix}")
                continue
            comparisons.append(compare(current, reference, gates))
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in comparisons], indent=2))
    else:
        for comparison in comparisons:
            for line in comparison.lines(every=every):
                console.print(line)
        for line in missing:
            console.print(f"nothing to compare (--missing-ok): {line}")
    sys.exit(1 if any(c.regressed for c in comparisons) else 0)


@main.group()
def baseline() -> None:
    """Pin the run later runs of the same name are compared with."""


@baseline.command("set", context_settings={"show_default": True})
@click.argument("run")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"))
@handles_errors
def baseline_set(run: str, reports_dir: Path) -> None:
    """Make RUN the baseline of its name (`harness compare --against baseline`)."""
    with History.in_reports(reports_dir, create=False) as history:
        pinned = history.set_baseline(run)
    console.print(f"baseline of {pinned.name!r}: {pinned.run_id} ({pinned.started_at})")


@main.command("fault", context_settings={"show_default": True})
@click.argument("kind", metavar="TYPE")
@click.argument("target")
@click.option("--for", "duration", default="30s", help="How long the fault holds (30s, 500ms).")
@click.option("-p", "--param", "pairs", multiple=True, help="A fault parameter key=value.")
@click.option("--seed", type=int, default=0, help="Seed for random targets.")
@click.option("--name", default="default", help="The running stack to hit.")
@handles_errors
def fault_cmd(
    kind: str, target: str, duration: str, pairs: tuple[str, ...], seed: int, name: str
) -> None:
    """Inject a fault of TYPE into TARGET of a running stack, hold it, undo it.

    TARGET: primary, backup, haproxy, node-N, random, one, all, minority or a fraction.
    `harness doctor` lists the types and which this host can run.
    """
    hold_s = parse_duration_s(duration, "--for")
    stack = AttachedStack(name)
    stack.state()  # fails now, with how to start one, if no such stack runs
    fault = make_fault(kind, stack, target, seed, **_parse_params(pairs))
    cleanup_leftovers()
    # SIGTERM and Ctrl-C end the hold early; the fault is undone either way. The handler
    # only sets an event: an exception raised from it could land inside the revert.
    stopped = threading.Event()
    stopped_by: list[str] = []

    def stop(signum: int, frame: object) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with fault:
        assert fault.record is not None
        console.print(
            f"{kind} on {', '.join(fault.record.targets)} in effect after "
            f"{fault.record.apply_us:.0f} us ({fault.mechanism}); holding {hold_s:g}s"
        )
        stopped.wait(hold_s)
    assert fault.record is not None
    ended = f" (ended early by {stopped_by[0]})" if stopped_by else ""
    console.print(f"{kind} reverted in {fault.record.revert_us:.0f} us{ended}")
    click.echo(json.dumps(fault.record.to_dict()))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Which fault types this host can run, and why not."""
    rows: list[dict[str, Any]] = []
    for kind in sorted(FAULTS):
        ok, why = FAULTS[kind].available()
        rows.append(
            {"fault": kind, "available": ok, "why_not": why, "params": sorted(parameters(kind))}
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="fault capabilities of this host")
    for column in ("fault", "available", "parameters", "why not"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["fault"],
            "yes" if row["available"] else "NO",
            ", ".join(row["params"]),
            row["why_not"],
        )
    console.print(table)
    console.print(toxiproxy_status())
    console.print(docker_status())


def docker_status() -> str:
    """Whether the docker backend can run here: a daemon answering, the baked images."""
    from harness.engine import connect, docker_missing_reason
    from harness.images.recipes import STACK_IMAGES, stack_image

    why = docker_missing_reason()
    if why is not None:
        return f"Docker: the docker backend cannot run: {why}"
    client = connect()
    try:
        missing = []
        for name in STACK_IMAGES:
            try:
                client.images.get(stack_image(name))
            except Exception:
                missing.append(name)
    finally:
        client.close()
    if missing:
        names = " ".join(missing)
        return f"Docker: daemon answers; bake the images with `harness images bake {names}`"
    return "Docker: daemon answers and the images are baked: --backend docker runs"


def toxiproxy_status() -> str:
    """Whether a Toxiproxy server answers at $HARNESS_TOXIPROXY_URL (or the default)."""
    url = toxiproxy_url_from_env()
    try:
        driver = ToxiproxyDriver(url)
        version = driver.version() if driver.reachable() else None
    except HarnessError as exc:
        return f"Toxiproxy: {exc}; transport faults use the harness's own fault proxy"
    if version is None:
        return (
            f"Toxiproxy: no server answers at {url}, so transport faults use the harness's own "
            f"fault proxy (--fault-proxy); start toxiproxy-server, or set {URL_ENV}, and pass "
            "--toxiproxy URL to use one"
        )
    return (
        f"Toxiproxy {version} answers at {url}: transport faults go through it on a stack "
        f"started with --toxiproxy {url}"
    )
