"""The pytest plugin: stack fixtures, the ``chaos_run`` fixture, options, markers, JUnit
properties, and a summary line per stack and per run.

Registered through the ``pytest11`` entry point, so any test in a project with the harness
installed can ask for ``stack`` (one per session), ``fresh_stack`` (one per test),
``steady_stack`` (the session stack, verified steady before the test), ``stack_spec`` (the
stack the command line describes) and ``chaos_run`` (run an experiment, record it).

The stack options are the CLI's own table (`harness.stack.options`), so ``--nodes 3`` means
the same here as in ``harness run``. Session state lives in ``config.stash``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import pytest

from harness.cleanup import cleanup_leftovers
from harness.errors import BackendUnsupported, ConfigError, HarnessError
from harness.experiment import ExperimentSpec, RunResult
from harness.experiment import run as run_experiment
from harness.faults import Fault, FaultUnavailable, make_fault
from harness.report import RESULT_FILE, read_document
from harness.report.delivery import EXPORT_OPTIONS, check_destinations, deliver
from harness.report.suite import SuiteEntry, write_suite
from harness.stack.backends import open_stack
from harness.stack.model import POLICY_NAMES, StackLifecycle, StackSpec
from harness.stack.options import STACK_OPTIONS, stack_spec_from_options
from harness.stack.steady import SteadyState, SteadyStateSpec, wait_for_steady_state

MARKERS = {
    "chaos": "the test injects faults into a stack",
    "slo": "the test asserts service level objectives",
    "quick": "a scenario of the CI set: all of them together run in a few minutes",
    "soak": "a long scenario (minutes or more): for scheduled runs, not every merge",
}


class MetricsNotDeliveredWarning(UserWarning):
    """A run's metrics could not be written or pushed (--textfile, --pushgateway)."""


class HostStalledWarning(UserWarning):
    """A scenario's run was inconclusive (the machine stalled) and was run again."""


@dataclass(frozen=True)
class SessionRun:
    """One run a test made: which test, under which HAProxy policy, and what it found."""

    nodeid: str
    scenario: str  # the node id without the policy parameter: runs to put side by side
    policy: str | None
    result: RunResult


def _scenario_and_policy(item: pytest.Item) -> tuple[str, str | None]:
    callspec = getattr(item, "callspec", None)
    policy = callspec.params.get("haproxy_policy") if callspec is not None else None
    if policy is None:
        return item.nodeid, None
    base, _, ids = item.nodeid.partition("[")
    rest = [part for part in ids.rstrip("]").split("-") if part != policy]
    return base + (f"[{'-'.join(rest)}]" if rest else ""), str(policy)


@dataclass
class _Session:
    """What the plugin keeps for one pytest session (in ``config.stash``)."""

    spec: StackSpec
    reports_dir: Path
    live: list[StackLifecycle] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    runs: list[SessionRun] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # nodeid -> pytest's outcome
    names: Iterator[int] = field(default_factory=itertools.count)
    # Where each run's metrics go besides its reports (--textfile, --pushgateway).
    textfile_dir: Path | None = None
    pushgateway_url: str | None = None


_SESSION = pytest.StashKey[_Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "chaos and reliability harness")
    for o in STACK_OPTIONS:
        if o.cli_only:
            continue
        if o.is_flag:
            group.addoption(o.pytest_name, dest=o.pytest_dest, action="store_true", help=o.help)
            continue
        kind = str if o.kind is Path else o.kind
        # None: not given, so the table's default applies (and `haproxy_policy` can tell
        # "both policies" from an explicit --haproxy-policy roadmap).
        group.addoption(
            o.pytest_name,
            dest=o.pytest_dest,
            type=kind,
            default=None,
            action="append" if o.multiple else "store",
            choices=list(o.choices) or None,
            metavar=o.metavar,
            help=o.help + (f" Default: {o.default}." if o.default not in (None, ()) else ""),
        )
    group.addoption(
        "--reports-dir", default="reports", help="Where runs write reports. Default: reports."
    )
    for e in EXPORT_OPTIONS:
        group.addoption(
            e.flag, dest=f"harness_{e.dest}", default=None, metavar=e.metavar, help=e.help
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that asks for ``haproxy_policy`` runs once per HAProxy policy: both the
    roadmap's and the hardened one, side by side, unless the command line chose one
    (``--haproxy-policy``) or a template of its own (``--haproxy-config``: "custom")."""
    if "haproxy_policy" not in metafunc.fixturenames:
        return
    config = metafunc.config
    chosen = config.getoption("harness_policy")
    if config.getoption("harness_haproxy_config"):
        policies = ["custom"]
    else:
        policies = [chosen] if chosen else list(POLICY_NAMES)
    metafunc.parametrize("haproxy_policy", policies, scope="session")


def with_policy(spec: StackSpec, haproxy_policy: str) -> StackSpec:
    """``spec`` under ``haproxy_policy`` (from the ``haproxy_policy`` parameter); "custom"
    keeps the user's own template."""
    return spec if haproxy_policy == "custom" else replace(spec, policy=haproxy_policy)


def _spec_from(config: pytest.Config) -> StackSpec:
    values = {o.dest: config.getoption(o.pytest_dest) for o in STACK_OPTIONS if not o.cli_only}
    return stack_spec_from_options(values, name=f"pytest-{os.getpid()}")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        spec = _spec_from(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    textfile = config.getoption("harness_textfile_dir")
    textfile_dir = Path(textfile) if textfile else None
    pushgateway_url = config.getoption("harness_pushgateway_url")
    try:  # before any stack starts: a run whose figures cannot be delivered is not begun
        check_destinations(textfile_dir, pushgateway_url)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_SESSION] = _Session(
        spec,
        Path(config.getoption("--reports-dir")),
        textfile_dir=textfile_dir,
        pushgateway_url=pushgateway_url,
    )
    # SIGTERM (a CI runner's timeout) must tear stacks down like Ctrl-C does.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each test's outcome (an xfail is an expected breach) for the suite's page."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    state = item.config.stash.get(_SESSION, None)
    if state is None:
        return
    if hasattr(report, "wasxfail"):
        word = "xpassed" if report.passed else "xfailed"
    else:
        word = "error" if report.when == "setup" else report.outcome
    state.outcomes[item.nodeid] = word


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak scenarios run only when asked for by name (``-m soak``): they take minutes."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a soak scenario (minutes long): run it with -m soak")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash[_SESSION]
    for line in cleanup_leftovers():
        state.lines.append(f"removed leftover of an earlier run: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # The last line of defence: a stack whose fixture teardown never ran.
    state = config.stash.get(_SESSION, None)
    while state is not None and state.live:
        state.live.pop().stop()


def _describe(stack: StackLifecycle) -> str:
    state = stack.state()
    deaths = sum(1 for e in stack.events if e.kind == "exited")
    return (
        f"stack {state.name}: {len(state.nodes)} x {state.nodes[0].kind} behind HAProxy "
        f"({stack.backend}), ready in {stack.ready_s or 0:.2f}s, {deaths} process death(s), "
        f"{sum(c.restarts for c in state.components)} restart(s)"
    )


def _running(session: _Session, spec: StackSpec) -> Iterator[StackLifecycle]:
    stack = open_stack(spec)
    session.live.append(stack)
    try:
        try:
            stack.start()
        except HarnessError as exc:
            pytest.fail(f"the stack did not come up: {exc}", pytrace=False)
        yield stack
        session.lines.append(_describe(stack))
    finally:
        stack.stop()
        if stack in session.live:
            session.live.remove(stack)


@pytest.fixture(scope="session")
def stack_spec(pytestconfig: pytest.Config) -> StackSpec:
    """The stack the command line asked for: scenarios run exactly this one (adding only
    what they need, with `dataclasses.replace`)."""
    return pytestconfig.stash[_SESSION].spec


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config, stack_spec: StackSpec) -> Iterator[StackLifecycle]:
    """One stack for the whole session (fast); tests must leave it healthy."""
    yield from _running(pytestconfig.stash[_SESSION], stack_spec)


@pytest.fixture
def fresh_stack(pytestconfig: pytest.Config, stack_spec: StackSpec) -> Iterator[StackLifecycle]:
    """A stack of the test's own, for tests that break things."""
    session = pytestconfig.stash[_SESSION]
    yield from _running(
        session, replace(stack_spec, name=f"{stack_spec.name}-{next(session.names)}")
    )


@pytest.fixture
def steady_state_spec() -> SteadyStateSpec:
    """Thresholds of the steady state; override the fixture to change them."""
    return SteadyStateSpec()


@pytest.fixture
def steady_stack(stack: StackLifecycle, steady_state_spec: SteadyStateSpec) -> StackLifecycle:
    """The session stack, verified to be in its steady state before the test starts."""
    try:
        wait_for_steady_state(stack, steady_state_spec, timeout_s=30)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    return stack


@pytest.fixture
def steady_state(steady_stack: StackLifecycle, steady_state_spec: SteadyStateSpec) -> SteadyState:
    """The steady-state check's result for the session stack (it holds)."""
    return wait_for_steady_state(steady_stack, steady_state_spec, timeout_s=30)


FaultFactory = Callable[..., Fault]


@pytest.fixture
def inject(stack: StackLifecycle) -> Iterator[FaultFactory]:
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
    return pytestconfig.stash[_SESSION].reports_dir


ChaosRun = Callable[[ExperimentSpec], RunResult]


@pytest.fixture
def chaos_run(
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
    reports_dir: Path,
) -> ChaosRun:
    """Run an experiment as this test, and record it: the run is named after the test (for
    the history), and its id, report and every SLO's measured value become JUnit
    properties of the test case."""
    session = request.config.stash[_SESSION]

    def run(spec: ExperimentSpec) -> RunResult:
        if not spec.name:
            spec = replace(spec, name=request.node.nodeid)
        if spec.stack.name == session.spec.name:  # the session's stack may be up: its own
            spec = replace(spec, stack=replace(spec.stack, name=f"{spec.stack.name}-run"))
        try:
            result = run_experiment(spec, reports_dir)
        except FaultUnavailable as exc:  # checked before any stack starts
            pytest.skip(f"this host cannot run the scenario's fault: {exc}")
        except BackendUnsupported as exc:  # also before any stack starts
            pytest.skip(f"the {spec.stack.backend} backend cannot run this scenario: {exc}")
        if result.inconclusive:
            # The machine, not the stack, broke the SLOs: measure again, once. A stack
            # that breaks them by itself breaks them again; the first run stays on record.
            record_property("harness_inconclusive_run", f"{result.run_id}: {result.inconclusive}")
            warnings.warn(
                f"run {result.run_id} inconclusive, run again: {result.inconclusive}",
                HostStalledWarning,
                stacklevel=1,
            )
            result = run_experiment(spec, reports_dir)
        try:
            deliver(Path(result.run_dir), session.textfile_dir, session.pushgateway_url)
        except ConfigError as exc:  # the run and its reports stand; say how to resend
            session.lines.append(f"metrics not delivered: {exc}")
            warnings.warn(f"metrics not delivered: {exc}", MetricsNotDeliveredWarning, 1)
        scenario, policy = _scenario_and_policy(request.node)
        session.runs.append(SessionRun(request.node.nodeid, scenario, policy, result))
        for name, value in junit_properties(result):
            record_property(name, value)
        return result

    return run


def junit_properties(result: RunResult) -> list[tuple[str, str]]:
    """What a CI's test report shows of a run: its id, verdict, report, SLO figures."""
    props = [
        ("harness_run_id", result.run_id),
        ("harness_passed", str(result.passed).lower()),
        ("harness_report", str(Path(result.run_dir) / "report.html")),
    ]
    for v in result.slos:
        measured = "never measured" if v.measured is None else f"{v.measured:.6g}"
        props.append((f"slo {v.slo}", f"{measured} ({'pass' if v.passed else 'FAIL'})"))
    return props


def _figures(result: RunResult) -> str:
    r = result.recovery

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return f"{s(r.ttd_s)} / {s(r.outage_s)} / {s(r.mttr_service_s)} / {s(r.mttr_component_s)}"


def side_by_side(runs: list[SessionRun]) -> list[str]:
    """Lines comparing the policies each scenario ran under (TTD / outage / MTTR)."""
    seen = {r.policy for r in runs if r.policy is not None}
    policies = [p for p in (*POLICY_NAMES, "custom") if p in seen]
    by_scenario: dict[str, dict[str, RunResult]] = {}
    for r in runs:
        if r.policy is not None:
            by_scenario.setdefault(r.scenario, {})[r.policy] = r.result
    compared = {k: v for k, v in by_scenario.items() if len(v) > 1}
    if not compared:
        return []
    width = max(len(k) for k in compared)
    lines = [
        "HAProxy policies side by side: TTD / outage / MTTR service / MTTR component (s)",
        f"  {'scenario':<{width}}  " + "  ".join(f"{p:<27}" for p in policies),
    ]
    for scenario, results in compared.items():
        cells = [
            (_figures(results[p]) + ("" if results[p].passed else " FAIL")) if p in results else "-"
            for p in policies
        ]
        lines.append(f"  {scenario:<{width}}  " + "  ".join(f"{c:<27}" for c in cells))
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash.get(_SESSION, None)
    if state is None or not (state.lines or state.runs):
        return
    terminalreporter.section("harness")
    for line in state.lines:
        terminalreporter.write_line(line)
    for run in state.runs:
        terminalreporter.write_line(
            f"{'PASS' if run.result.passed else 'FAIL'} {run.nodeid}: TTD / outage / MTTR "
            f"service / component {_figures(run.result)} s  {run.result.run_dir}/report.html"
        )
    for line in side_by_side(state.runs):
        terminalreporter.write_line(line)
    if state.runs:
        entries = [
            SuiteEntry(
                r.nodeid,
                r.scenario,
                r.policy,
                state.outcomes.get(r.nodeid, "unknown"),
                read_document(Path(r.result.run_dir) / RESULT_FILE),
            )
            for r in state.runs
        ]
        terminalreporter.write_line(f"suite report: {write_suite(entries, state.reports_dir)}")
