"""What a run does: one stack, one load, and a sequence of episodes over them, judged by SLOs.

An episode is baseline -> fault -> recovery. A scenario runs one (the fields of
`ExperimentSpec` describe it); a game day runs many from a schedule (``episodes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness.load.runner import LoadSpec
from harness.load.workload import load_profile
from harness.measure import SLO, Safeguard
from harness.measure.budget import ErrorBudget
from harness.stack.model import StackSpec
from harness.stack.steady import SteadyStateSpec

DEFAULT_SLOS = (
    SLO.parse("availability_pct[baseline] >= 99.9"),
    SLO.parse("error_rate_pct[baseline] <= 1"),
    SLO.parse("p99_ms[baseline] <= 50"),
    SLO.parse("outage_s <= 10"),
    SLO.parse("mttr_component_s <= 30"),
)
# The main job's load: an open model (a fixed arrival rate, so a stall is counted in full)
# at a rate this 2-core machine carries beside two nodes and HAProxy, from one Locust
# worker per core (LoadSpec's default).
DEFAULT_LOAD = LoadSpec(model="open", rate_per_s=200.0, users=32)


def _seconds(name: str, value: float, low: float = 0, high: float = 3600) -> None:
    if not low <= value <= high:
        raise ConfigError(name, value, f"choose {low:g} to {high:g} seconds")


@dataclass(frozen=True)
class EpisodeSpec:
    """One fault and the phases around it: ``baseline_s`` of steady load, the fault held
    for ``hold_s`` (0 for a kill), then recovery until the service and the faulted
    component are back (at most ``recovery_timeout_s``) and ``settle_s`` more."""

    fault: str = "kill"
    target: str = "primary"
    params: dict[str, Any] = field(default_factory=dict)
    baseline_s: float = 3.0
    hold_s: float = 0.0
    recovery_timeout_s: float = 30.0
    settle_s: float = 2.0
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        for name in ("baseline_s", "hold_s", "settle_s"):
            _seconds(name, getattr(self, name))
        _seconds("recovery_timeout_s", self.recovery_timeout_s, 1)

    @property
    def label(self) -> str:
        """``name``, or what the episode does: ``kill primary``."""
        return self.name or f"{self.fault} {self.target}"


@dataclass(frozen=True)
class ExperimentSpec:
    """What to run: the stack, the load, the episodes, the SLOs and the safeguards.

    The fields ``fault`` to ``settle_s`` describe a single episode; give ``episodes``
    instead to run several over the same stack and load (a game day)."""

    stack: StackSpec = field(default_factory=StackSpec)
    steady_state: SteadyStateSpec = field(default_factory=SteadyStateSpec)
    fault: str = "kill"
    target: str = "primary"
    fault_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    load: LoadSpec | None = DEFAULT_LOAD
    # Where the load goes: through HAProxy ("frontend"), or straight at one node
    # ("primary" or "node-N"), to see a node's own behaviour without the balancer.
    load_at: str = "frontend"
    baseline_s: float = 3.0
    hold_s: float = 0.0
    recovery_timeout_s: float = 30.0
    settle_s: float = 2.0
    probe_interval_s: float = 0.02
    # After the last episode: how long the stack may take to be steady again before the
    # run says it was not restored (a stack left broken on purpose need not wait long).
    restore_timeout_s: float = 15.0
    slos: tuple[SLO, ...] = DEFAULT_SLOS
    safeguards: tuple[Safeguard, ...] = ()
    episodes: tuple[EpisodeSpec, ...] = ()
    # What the run is, for people and for the history: a scenario's name, say. Runs of the
    # same name are compared with each other.
    name: str = ""
    budget: ErrorBudget = field(default_factory=ErrorBudget)
    # "experiment" (a scenario, `harness run`) or "gameday" (a schedule of episodes, which
    # `harness gameday --replay RUN_DIR` runs again).
    kind: str = "experiment"

    def __post_init__(self) -> None:
        if not self.episodes:
            object.__setattr__(
                self,
                "episodes",
                (
                    EpisodeSpec(
                        fault=self.fault,
                        target=self.target,
                        params=dict(self.fault_params),
                        baseline_s=self.baseline_s,
                        hold_s=self.hold_s,
                        recovery_timeout_s=self.recovery_timeout_s,
                        settle_s=self.settle_s,
                        seed=self.seed,
                    ),
                ),
            )
        if self.kind not in ("experiment", "gameday"):
            raise ConfigError("kind", self.kind, "choose experiment or gameday")
        if not 0.5 <= self.restore_timeout_s <= 3600:
            raise ConfigError("restore_timeout_s", self.restore_timeout_s, "choose 0.5 to 3600 s")
        if not 0.001 <= self.probe_interval_s <= 1:
            raise ConfigError("probe_interval_s", self.probe_interval_s, "choose 0.001 to 1 s")
        if self.safeguards and self.load is None:
            raise ConfigError(
                "abort_if",
                str(self.safeguards[0]),
                "safeguards watch the load, and this run has none: drop --no-load or the safeguard",
            )
        if self.load is not None:
            profile = load_profile(self.load.profile)
            for slo in self.slos:
                if slo.method is not None and not profile.weights.get(slo.method):
                    raise ConfigError(
                        "slo",
                        str(slo),
                        f"profile {profile.name!r} never sends {slo.method}: it would never "
                        f"be measured; it sends {', '.join(sorted(profile.weights))}",
                    )
        nodes = [f"node-{i}" for i in range(self.stack.nodes)]
        if self.load_at not in ("frontend", "primary", *nodes):
            raise ConfigError(
                "load_at", self.load_at, f"choose frontend, primary or one of {', '.join(nodes)}"
            )

    @property
    def label(self) -> str:
        """``name``, or what the run does: the first episode's label."""
        if self.name:
            return self.name
        first = self.episodes[0].label
        return first if len(self.episodes) == 1 else f"{first} and {len(self.episodes) - 1} more"
