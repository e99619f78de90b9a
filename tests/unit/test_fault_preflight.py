"""A fault checked against the stack it will run on, before that stack starts.

`PlannedStack` is the layout a `StackSpec` gives (names, roles, proxies, namespaces),
with no process and no port: what `harness run` checks a fault against so that bad
input costs no stack, no load and no baseline.
"""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.faults import make_fault
from harness.faults.proxy import FaultMayNeverFire
from harness.load.workload import load_profile, methods_sent
from harness.stack import StackSpec
from harness.stack.local import PlannedStack


def planned(**spec: object) -> PlannedStack:
    return PlannedStack(StackSpec(name="plan", **spec))  # type: ignore[arg-type]


def test_the_planned_stack_has_the_layout_the_spec_gives() -> None:
    state = planned(nodes=3, fault_proxy=True, isolation="netns").state()
    assert [(c.name, c.role) for c in state.components] == [
        ("node-0", "primary"),
        ("node-1", "backup"),
        ("node-2", "backup"),
        ("fault-proxy", "proxy"),
        ("haproxy", "balancer"),
    ]
    assert all(n.netns and n.proxy_port is not None for n in state.nodes)
    assert state.proxy_control_url is not None
    assert all(c.pid is None for c in state.components)


def test_a_json_rpc_fault_on_a_stack_without_the_fault_proxy_is_refused() -> None:
    stack = planned()
    with pytest.raises(ConfigError) as caught:
        make_fault("rpc_error", stack, "primary").preflight(stack.state())
    assert caught.value.field == "fault_proxy"
    assert "--fault-proxy" in caught.value.fix


def test_a_json_rpc_fault_on_a_stack_with_the_fault_proxy_targets_its_nodes() -> None:
    stack = planned(fault_proxy=True)
    targets = make_fault("rpc_error", stack, "all").preflight(stack.state())
    assert [t.name for t in targets] == ["node-0", "node-1"]


def test_a_link_fault_on_nodes_without_namespaces_is_refused() -> None:
    stack = planned()
    with pytest.raises(ConfigError) as caught:
        make_fault("partition", stack, "primary").preflight(stack.state())
    assert caught.value.field == "isolation"


def test_a_link_fault_on_nodes_in_namespaces_passes() -> None:
    stack = planned(isolation="netns")
    targets = make_fault("partition", stack, "backup").preflight(stack.state())
    assert [t.netns for t in targets] == [stack.state().nodes[1].netns]


def test_a_target_the_stack_does_not_have_is_refused_as_the_target() -> None:
    stack = planned(nodes=2)
    with pytest.raises(ConfigError) as caught:
        make_fault("kill", stack, "node-5").preflight(stack.state())
    assert caught.value.field == "target"
    assert "node-0, node-1" in caught.value.fix


def test_a_method_glob_the_runs_profile_never_sends_warns() -> None:
    stack = planned(fault_proxy=True)
    fault = make_fault("rpc_delay", stack, "primary", methods="eth_getLogs")
    with pytest.warns(FaultMayNeverFire, match="this run's profile sends"):
        fault.check_workload(methods_sent(load_profile("light")))


def test_a_method_glob_the_runs_profile_sends_is_silent() -> None:
    stack = planned(fault_proxy=True)
    fault = make_fault("rpc_delay", stack, "primary", methods="eth_get*")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FaultMayNeverFire)
        fault.check_workload(methods_sent(load_profile("light")))


def test_the_methods_a_profile_sends_expand_batches_and_labels() -> None:
    sent = methods_sent(load_profile("searcher"))
    assert "eth_getBlockByNumber" in sent and "eth_getBlockByNumber_full" not in sent
    assert "batch" not in sent and {"eth_call", "eth_getStorageAt"} <= sent


def test_a_transport_fault_takes_toxiproxys_own_knob_names_too() -> None:
    stack = planned(fault_proxy=True)
    fault = make_fault("proxy_latency", stack, "primary", toxicity="0.5", latency="100")
    assert fault.params()["probability"] == 0.5
    assert fault.params()["latency_ms"] == 100.0


def test_a_knob_given_under_both_names_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        make_fault("slow_close", planned(fault_proxy=True), "primary", delay="5", delay_ms="5")
    assert caught.value.value == "delay"
    assert "not both" in caught.value.fix


def test_a_disk_fill_on_nodes_without_a_filesystem_of_their_own_is_refused_at_once() -> None:
    stack = planned()
    with pytest.raises(ConfigError) as caught:
        make_fault("disk", stack, "primary").preflight(stack.state())
    assert caught.value.field == "data_dir_size_mb"
    assert "--data-dir-size-mb" in caught.value.fix


def test_a_disk_fill_on_nodes_with_a_sized_data_dir_passes_the_preflight() -> None:
    stack = planned(data_dir_size_mb=64)
    targets = make_fault("disk", stack, "primary", percent=100).preflight(stack.state())
    assert [t.data_dir_size_mb for t in targets] == [64]


@pytest.mark.parametrize("kind", ["proxy_latency", "reset_peer", "proxy_timeout"])
def test_a_transport_fault_on_a_planned_stack_with_the_fault_proxy_passes(kind: str) -> None:
    # A planned stack's ports are all 0: a port given is not a port missing.
    stack = planned(fault_proxy=True)
    targets = make_fault(kind, stack, "primary").preflight(stack.state())
    assert [t.name for t in targets] == ["node-0"]
