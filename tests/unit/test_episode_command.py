"""The command a report prints to repeat an episode alone is one ``harness run`` accepts,
and it describes the same stack, fault and phases."""

from __future__ import annotations

import shlex
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.experiment.command import episode_command
from harness.experiment.spec import EpisodeSpec, ExperimentSpec
from harness.load import LoadSpec
from harness.measure import SLO
from harness.stack.model import HealthCheck, RestartPolicy, StackSpec
from harness.stack.options import stack_flags, stack_spec_from_options


def parsed_run_options(argv: list[str]) -> dict[str, object]:
    """The options ``harness run`` would receive for ``argv`` (parsed by click, not run)."""
    run = main.commands["run"]
    assert argv[:2] == ["harness", "run"]
    context = run.make_context("run", argv[2:], resilient_parsing=False)
    return dict(context.params)


stacks = st.builds(
    StackSpec,
    nodes=st.integers(1, 4),
    block_time_s=st.sampled_from([0.5, 1.0, 2.0]),
    policy=st.sampled_from(["roadmap", "hardened"]),
    health_check=st.builds(
        HealthCheck, st.integers(100, 5000), st.integers(1, 5), st.integers(1, 5)
    ),
    restart=st.builds(RestartPolicy, delay_s=st.sampled_from([0.0, 0.5, 1.5])),
    isolation=st.sampled_from(["loopback", "netns"]),
    fault_proxy=st.booleans(),
    node_args=st.lists(
        st.sampled_from(["--prune-history", "--no-storage-caching"]), max_size=2
    ).map(tuple),
)


@settings(max_examples=40, deadline=None)
@given(stacks)
def test_a_stacks_flags_parse_back_to_the_same_stack(spec: StackSpec) -> None:
    argv = ["harness", "run", *stack_flags(spec)]
    options = parsed_run_options(argv)
    assert stack_spec_from_options(options, name=spec.name) == spec


def test_an_episodes_command_repeats_its_fault_phases_load_and_slos(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        stack=StackSpec(nodes=3, fault_proxy=True),
        load=LoadSpec(profile="light", rate_per_s=80, users=8, workers=1),
        slos=(SLO.parse("outage_s <= 2"),),
    )
    episode = EpisodeSpec(
        "rpc_error", "backup", {"probability": 0.2, "methods": "eth_call"},
        baseline_s=4, hold_s=7.3, settle_s=1, seed=42,
    )  # fmt: skip
    options = parsed_run_options(episode_command(spec, episode))
    assert (options["fault_kind"], options["target"]) == ("rpc_error", "backup")
    assert sorted(options["pairs"]) == ["methods=eth_call", "probability=0.2"]  # type: ignore[arg-type]
    assert (options["hold"], options["baseline"], options["seed"]) == ("7.3s", "4s", 42)
    assert (options["load_profile"], options["rate"], options["users"]) == ("light", 80.0, 8)
    assert options["slos"] == ("outage_s <= 2",)
    assert stack_spec_from_options(options).nodes == 3


def test_a_run_without_load_says_so() -> None:
    argv = episode_command(ExperimentSpec(load=None), EpisodeSpec())
    assert "--no-load" in argv and "--slo" not in argv  # the default SLOs need no flag
    assert parsed_run_options(argv)["no_load"] is True


def test_an_episodes_command_is_quoted_safely_when_printed() -> None:
    episode = EpisodeSpec("rpc_error", params={"message": "header not found", "code": -32000})
    argv = episode_command(ExperimentSpec(stack=StackSpec(fault_proxy=True)), episode)
    line = shlex.join(argv)
    assert "'message=header not found'" in line
    assert shlex.split(line) == argv
