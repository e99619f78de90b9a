"""The pytest plugin: stack fixtures, options, markers and a summary line per stack.

Registered through the ``pytest11`` entry point, so any test in a project with the harness
installed can ask for ``stack`` (one per session), ``fresh_stack`` (one per test) or
``steady_stack`` (the session stack, verified steady before the test).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType

import pytest

from harness.cleanup import cleanup_leftovers
from harness.errors import ConfigError, HarnessError
from harness.faults import Fault, make_fault
from harness.stack.local import LocalStack
from harness.stack.model import HealthCheck, StackSpec
from harness.stack.nodes import ADAPTERS
from harness.stack.steady import SteadyState, SteadyStateSpec, wait_for_steady_state

BACKENDS = ("local",)
_live: list[LocalStack] = []
_finished: list[str] = []
_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "chaos and reliability harness")
    group.addoption(
        "--stack-backend",
        default="local",
        help="Where the stack runs: local (processes on loopback). Default: local.",
    )
    group.addoption("--node", default="anvil", help=f"Node client: {', '.join(ADAPTERS)}.")
    group.addoption("--nodes", type=int, default=2, help="Number of nodes. Default: 2.")
    group.addoption("--block-time", type=float, default=1.0, help="Seconds. Default: 1.")
    group.addoption("--haproxy-config", default=None, help="Your own HAProxy template (Jinja2).")
    group.addoption(
        "--check-inter-ms", type=int, default=2000, help="HAProxy check interval. Default: 2000."
    )
    group.addoption("--reports-dir", default="reports", help="Where runs write reports.")
    group.addoption(
        "--isolation", default="loopback", help="loopback, or netns (a namespace per node)."
    )
    group.addoption(
        "--fault-proxy", action="store_true", help="The JSON-RPC fault proxy before every node."
    )
    group.addoption(
        "--toxiproxy",
        default=None,
        metavar="URL",
        help="A Toxiproxy server's API (http://127.0.0.1:8474): a proxy there before every "
        "node; transport faults go through it.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: the test injects faults into a stack")
    config.addinivalue_line("markers", "slo: the test asserts service level objectives")
    backend = config.getoption("--stack-backend")
    if backend not in BACKENDS:
        raise pytest.UsageError(
            f"--stack-backend={backend!r}: choose one of: {', '.join(BACKENDS)} "
            "(the docker backend arrives with its own issue)"
        )
    try:
        _spec_from(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    # SIGTERM (a CI runner's timeout) must tear stacks down like Ctrl-C does.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    for line in cleanup_leftovers():
        _finished.append(f"removed leftover of an earlier run: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # The last line of defence: a stack whose fixture teardown never ran.
    while _live:
        _live.pop().stop()


def _spec_from(config: pytest.Config) -> StackSpec:
    template = config.getoption("--haproxy-config")
    return StackSpec(
        name=f"pytest-{os.getpid()}",
        nodes=config.getoption("--nodes"),
        node_kind=config.getoption("--node"),
        block_time_s=config.getoption("--block-time"),
        haproxy_template=Path(template) if template else None,
        health_check=HealthCheck(inter_ms=config.getoption("--check-inter-ms")),
        isolation=config.getoption("--isolation"),
        fault_proxy=config.getoption("--fault-proxy"),
        toxiproxy=config.getoption("--toxiproxy"),
    )


def _describe(stack: LocalStack) -> str:
    state = stack.state()
    deaths = sum(1 for e in stack.events if e.kind == "exited")
    return (
        f"stack {state.name}: {len(state.nodes)} x {state.nodes[0].kind} behind HAProxy, "
        f"ready in {stack.ready_s or 0:.2f}s, {deaths} process death(s), "
        f"{sum(c.restarts for c in state.components)} restart(s)"
    )


def _running(spec: StackSpec) -> Iterator[LocalStack]:
    stack = LocalStack(spec)
    _live.append(stack)
    try:
        try:
            stack.start()
        except HarnessError as exc:
            pytest.fail(f"the stack did not come up: {exc}", pytrace=False)
        yield stack
        _finished.append(_describe(stack))
    finally:
        stack.stop()
        if stack in _live:
            _live.remove(stack)


@pytest.fixture(scope="session")
def stack_spec(pytestconfig: pytest.Config) -> StackSpec:
    """The stack the command line asked for."""
    return _spec_from(pytestconfig)


@pytest.fixture(scope="session")
def stack(stack_spec: StackSpec) -> Iterator[LocalStack]:
    """One stack for the whole session (fast); tests must leave it healthy."""
    yield from _running(stack_spec)


@pytest.fixture
def fresh_stack(stack_spec: StackSpec) -> Iterator[LocalStack]:
    """A stack of the test's own, for tests that break things."""
    yield from _running(replace(stack_spec, name=f"{stack_spec.name}-{next(_names)}"))


@pytest.fixture
def steady_state_spec() -> SteadyStateSpec:
    """Thresholds of the steady state; override the fixture to change them."""
    return SteadyStateSpec()


@pytest.fixture
def steady_stack(stack: LocalStack, steady_state_spec: SteadyStateSpec) -> LocalStack:
    """The session stack, verified to be in its steady state before the test starts."""
    try:
        wait_for_steady_state(stack, steady_state_spec, timeout_s=30)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    return stack


@pytest.fixture
def steady_state(steady_stack: LocalStack, steady_state_spec: SteadyStateSpec) -> SteadyState:
    """The steady-state check's result for the session stack (it holds)."""
    return wait_for_steady_state(steady_stack, steady_state_spec, timeout_s=30)


FaultFactory = Callable[..., Fault]


@pytest.fixture
def inject(stack: LocalStack) -> Iterator[FaultFactory]:
    """Build faults against the session stack: ``with inject("pause", "primary"): ...``.

    Any fault still in effect when the test ends (a forgotten or failed block) is undone.
    """
    with contextlib.ExitStack() as undo:

        def factory(kind: str, target: str = "primary", seed: int = 0, **params: object) -> Fault:
            fault = make_fault(kind, stack, target, seed, **params)
            undo.callback(_revert_if_active, fault)
            return fault

        yield factory


def _revert_if_active(fault: Fault) -> None:
    if fault.record is not None and fault.record.reverted_ns == 0:
        fault.__exit__(None, None, None)


@pytest.fixture(scope="session")
def reports_dir(pytestconfig: pytest.Config) -> Path:
    return Path(pytestconfig.getoption("--reports-dir"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _finished:
        return
    terminalreporter.section("harness")
    for line in _finished:
        terminalreporter.write_line(line)
