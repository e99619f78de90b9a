"""The docker stack's layout, spec checks and events: pure, no daemon."""

from __future__ import annotations

import ipaddress

import pytest

from harness.errors import ConfigError
from harness.stack.docker.events import to_event
from harness.stack.docker.layout import container_name, plan_layout, planned_components, subnets
from harness.stack.docker.stack import check_docker_spec
from harness.stack.model import StackSpec


def test_every_node_gets_a_fixed_address_so_haproxy_finds_it_after_a_restart() -> None:
    spec = StackSpec(name="s", backend="docker", nodes=3, chain="one")
    layout = plan_layout(spec, "s-abc", ipaddress.ip_network("10.214.7.0/24"))
    assert [(s.name, s.role, s.address) for s in layout.slots] == [
        ("chain-source", "source", "10.214.7.10"),
        ("node-0", "primary", "10.214.7.11"),
        ("node-1", "backup", "10.214.7.12"),
        ("node-2", "backup", "10.214.7.13"),
        ("haproxy", "balancer", "10.214.7.14"),
    ]
    assert layout.gateway == "10.214.7.1"
    assert layout.network == "hx-s-abc"


def test_an_independent_chain_stack_has_no_chain_source() -> None:
    spec = StackSpec(name="s", backend="docker", chain="independent")
    layout = plan_layout(spec, "r", next(subnets("r")))
    assert [s.name for s in layout.slots] == ["node-0", "node-1", "haproxy"]


def test_subnets_cover_the_pool_once_from_a_start_the_run_picks() -> None:
    tried = list(subnets("run-1"))
    assert len(tried) == len(set(tried)) == 256
    assert all(
        n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.214.0.0/16")) for n in tried
    )
    assert list(subnets("run-1")) == tried  # the same run tries the same order


def test_planned_components_name_their_containers_so_faults_act_on_containers() -> None:
    spec = StackSpec(name="p", backend="docker")
    components = planned_components(plan_layout(spec, "p-1", next(subnets("x"))), spec)
    assert all(c.container == container_name("p-1", c.name) for c in components)
    assert {c.name for c in components if c.data_dir} >= {"node-0", "node-1"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"toxiproxy": "http://127.0.0.1:8474"}, "toxiproxy"),
    ],
)
def test_what_the_docker_backend_cannot_run_is_refused_naming_the_option_and_the_way_out(
    change: dict[str, object], field: str
) -> None:
    spec = StackSpec(name="x", backend="docker", **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        check_docker_spec(spec)
    assert caught.value.field == field
    assert "--backend local" in caught.value.fix


def test_a_docker_die_event_is_an_exit_with_its_status_on_the_monotonic_clock() -> None:
    raw = {
        "Type": "container",
        "Action": "die",
        "timeNano": 5_000_000_000,
        "Actor": {"Attributes": {"io.harness.component": "node-0", "exitCode": "137"}},
    }
    event = to_event(raw, offset_ns=1_000_000_000)
    assert event is not None
    assert (event.component, event.kind, event.returncode, event.t_ns) == (
        "node-0", "exited", 137, 4_000_000_000,
    )  # fmt: skip


def test_docker_events_that_are_not_process_events_are_dropped() -> None:
    assert to_event({"Type": "container", "Action": "exec_start"}, 0) is None
    assert to_event({"Type": "network", "Action": "connect"}, 0) is None


def test_netns_isolation_needs_nothing_on_docker_where_every_container_has_a_namespace() -> None:
    check_docker_spec(StackSpec(name="x", backend="docker", isolation="netns"))


def test_a_planned_one_chain_docker_stack_has_what_the_chain_faults_check() -> None:
    from harness.faults import make_fault
    from harness.stack.docker.stack import PlannedDockerStack

    planned = PlannedDockerStack(StackSpec(name="c", backend="docker", chain="one"))
    state = planned.state()
    assert state.replicator_url and state.chain_source_url
    assert [c.name for c in state.components][-2:] == ["replicator", "haproxy"]
    fault = make_fault("peer_partition", planned, "primary")
    assert [t.name for t in fault.preflight(state)] == ["node-0"]


def test_a_die_after_docker_said_oom_says_the_container_was_oom_killed() -> None:
    raw = {
        "Type": "container",
        "Action": "die",
        "timeNano": 5_000_000_000,
        "Actor": {"Attributes": {"io.harness.component": "node-0", "exitCode": "137"}},
    }
    event = to_event(raw, offset_ns=0, oom_killed=True)
    assert event is not None and event.returncode == 137
    assert event.detail == "exited with status 137 (OOM-killed: over the container's memory limit)"
    plain = to_event(raw, offset_ns=0)
    assert plain is not None and "OOM" not in plain.detail
