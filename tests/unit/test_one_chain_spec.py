"""A one-chain stack as it is planned: bad input is refused before anything starts, and the
chain's faults refuse stacks whose nodes do not replicate."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.faults import make_fault
from harness.measure.recovery import recovery
from harness.measure.samples import ProbeSample
from harness.stack.local import REPLICATOR, SOURCE, PlannedStack
from harness.stack.model import StackSpec
from harness.stack.options import stack_flags, stack_spec_from_options


def test_a_one_chain_stack_has_a_hidden_source_and_a_replicator_beside_its_nodes() -> None:
    state = PlannedStack(StackSpec(chain="one")).state()
    roles = {c.name: c.role for c in state.components}
    assert roles[SOURCE] == "source" and roles[REPLICATOR] == "replicator"
    assert [n.name for n in state.nodes] == ["node-0", "node-1"]  # the source is not served
    assert state.chain == "one" and state.replicator_url and state.chain_source_url


def test_an_independent_stack_has_neither() -> None:
    state = PlannedStack(StackSpec()).state()
    assert state.chain == "independent" and state.replicator_url is None
    assert {c.role for c in state.components}.isdisjoint({"source", "replicator"})


@pytest.mark.parametrize(
    ("fields", "field", "fix"),
    [
        ({"chain": "two"}, "chain", "one, independent"),
        ({"chain": "one", "node_kind": "geth"}, "chain", "--chain independent"),
        ({"propagation_delay": "50ms"}, "propagation_delay", "--chain one"),
        ({"chain": "one", "propagation_delay": "soon"}, "propagation_delay", "50-300ms"),
        ({"node_lag_blocks": (("node-1", 3),)}, "node_lag_blocks", "--chain one"),
        ({"chain": "one", "node_lag_blocks": (("node-7", 3),)}, "node_lag_blocks", "node-1"),
        ({"chain": "one", "node_lag_blocks": (("node-1", -1),)}, "node_lag_blocks", "0 to"),
    ],
)
def test_bad_chain_input_is_refused_naming_the_field(
    fields: dict[str, str], field: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        StackSpec(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert fix in str(caught.value)


@pytest.mark.parametrize("kind", ["lag", "peer_partition", "reorg"])
def test_chain_faults_refuse_a_stack_of_independent_chains(kind: str) -> None:
    planned = PlannedStack(StackSpec())
    fault = make_fault(kind, planned, "primary")
    with pytest.raises(ConfigError, match="--chain one"):
        fault.preflight(planned.state())


def test_a_reorg_hits_the_chain_source_whatever_the_selector() -> None:
    planned = PlannedStack(StackSpec(chain="one"))
    (target,) = make_fault("reorg", planned, "backup").preflight(planned.state())
    assert target.name == SOURCE


@pytest.mark.parametrize(("kind", "param", "value"), [("lag", "blocks", 0), ("reorg", "depth", 65)])
def test_chain_fault_parameters_out_of_range_are_refused(kind: str, param: str, value: int) -> None:
    with pytest.raises(ConfigError) as caught:
        make_fault(kind, PlannedStack(StackSpec(chain="one")), "primary", **{param: value})
    assert caught.value.field == param


def _probe(target: str, t_s: float, head: int, outcome: str = "ok") -> ProbeSample:
    return ProbeSample(target, int(t_s * 1e9), 1000.0, outcome, head)


def test_on_one_chain_a_node_is_back_when_it_is_in_sync_not_when_it_answers() -> None:
    # node-0 answers all along but stands at block 10 until t=5, then replays to the head.
    samples = [_probe("node-1", t / 10, 10 + t // 10) for t in range(0, 80)]
    samples += [_probe("node-0", t / 10, 10 if t < 50 else 10 + t // 10) for t in range(0, 80)]
    answering = recovery(samples, [], 0, ["node-0"])
    in_sync = recovery(samples, [], 0, ["node-0"], in_sync=True)
    assert answering.mttr_component_s == 0.0
    assert in_sync.mttr_component_s == pytest.approx(5.0)


def test_a_lagging_node_is_written_as_node_equals_blocks_and_read_back() -> None:
    spec = stack_spec_from_options({"chain": "one", "node_lag": ["node-1=3"]})
    assert spec.node_lag_blocks == (("node-1", 3),)
    assert stack_flags(spec) == ["--node-lag", "node-1=3"]  # one chain is the default
    with pytest.raises(ConfigError, match="NODE=BLOCKS"):
        stack_spec_from_options({"chain": "one", "node_lag": ["node-1:3"]})


def test_the_command_lines_default_is_one_chain_for_anvil_and_their_own_for_others() -> None:
    assert stack_spec_from_options({}).chain == "one"
    assert stack_spec_from_options({"node_kind": "geth"}).chain == "independent"
    assert stack_spec_from_options({"chain": "independent"}).chain == "independent"
    assert stack_flags(stack_spec_from_options({"chain": "independent"})) == [
        "--chain",
        "independent",
    ]
    assert StackSpec().chain == "independent"  # built in code: a chain per node unless told
