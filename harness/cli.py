"""The ``harness`` command: a thin adapter over the library.

Errors a person can act on print one line and exit 2 (bad input) or 1 (anything else);
``--debug`` shows the traceback too. Only this module draws on the terminal.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import experiment
from harness.errors import HarnessError
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack import daemon
from harness.stack.haproxy import RuntimeApi
from harness.stack.model import HealthCheck, RestartPolicy, StackSpec, StackState
from harness.stack.nodes import ADAPTERS
from harness.stack.state import reap_stale_stacks, running_stack

console = Console(highlight=False, markup=False)
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


def stack_options(fn: F) -> F:
    """The options that describe a stack, shared by `stack up` and `run`."""
    options = [
        click.option("--name", default="default", show_default=True, help="Stack name."),
        click.option("--nodes", type=int, default=2, show_default=True, help="Number of nodes."),
        click.option(
            "--node",
            "node_kind",
            type=click.Choice(sorted(ADAPTERS)),
            default="anvil",
            show_default=True,
            help="Node client.",
        ),
        click.option("--block-time", type=float, default=1.0, show_default=True, help="Seconds."),
        click.option(
            "--node-arg", "node_args", multiple=True, help="Extra flag for every node (repeat)."
        ),
        click.option(
            "--haproxy-config",
            type=click.Path(path_type=Path),
            help="Your own HAProxy Jinja2 template (see fixtures/haproxy.cfg.j2).",
        ),
        click.option("--frontend-port", type=int, help="Frontend port (default: a free one)."),
        click.option("--check-inter-ms", type=int, default=2000, show_default=True),
        click.option("--fall", type=int, default=3, show_default=True),
        click.option("--rise", type=int, default=2, show_default=True),
        click.option(
            "--restart-delay", type=float, default=0.5, show_default=True, help="Seconds."
        ),
        click.option("--restart-backoff", type=float, default=2.0, show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def spec_from_options(opts: dict[str, Any]) -> StackSpec:
    return StackSpec(
        name=opts["name"],
        nodes=opts["nodes"],
        node_kind=opts["node_kind"],
        block_time_s=opts["block_time"],
        node_args=tuple(opts["node_args"]),
        haproxy_template=opts["haproxy_config"],
        frontend_port=opts["frontend_port"],
        health_check=HealthCheck(opts["check_inter_ms"], opts["fall"], opts["rise"]),
        restart=RestartPolicy(delay_s=opts["restart_delay"], backoff=opts["restart_backoff"]),
    )


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Chaos and reliability harness for Ethereum JSON-RPC stacks."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.group()
def stack() -> None:
    """Stand a local stack up, look at it, take it down."""


@stack.command("up")
@stack_options
@click.option("--json", "as_json", is_flag=True, help="Print the stack's state as JSON.")
@handles_errors
def stack_up(as_json: bool, **opts: Any) -> None:
    """Start a stack in the background; returns when it is ready."""
    spec = spec_from_options(opts)
    state, ready_s, reaped = daemon.start_detached(spec)
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
            c["health"],
            str(c["head"]),
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
    for line in reap_stale_stacks():
        console.print(f"removed leftover: {line}")


@main.command()
@handles_errors
def cleanup() -> None:
    """Remove whatever a killed run left behind: processes, state dirs."""
    removed = reap_stale_stacks()
    for line in removed:
        console.print(f"removed: {line}")
    console.print(f"cleanup: {len(removed)} leftover(s) removed")


@main.command("run")
@stack_options
@click.option(
    "--reports-dir",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@handles_errors
def run_cmd(reports_dir: Path, **opts: Any) -> None:
    """Run the main experiment and write reports/<run-id>/result.json and summary.txt."""
    spec = experiment.ExperimentSpec(stack=spec_from_options(opts))
    result = experiment.run(spec, reports_dir)
    console.print(experiment.summarize(result))
    sys.exit(0 if result.passed else 1)
