"""Scenarios: memory pressure on a node and on the host, and the primary's disk full.

Steady state: both nodes answer and agree, both UP in HAProxy, the host has memory and
disk to spare.
Load: the searcher mix, open model, 150 req/s through the frontend.
What an operator learns: whether pressure that never kills a process still hurts the tail,
and that every resource taken is given back (the steady state holds again after).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec

QUIET = (
    SLO.parse("p99_ms[baseline] <= 50"),
    SLO.parse("availability_pct[fault] >= 99"),
    SLO.parse("error_rate_pct[fault] <= 1"),
    SLO.parse("outage_s <= 10"),
    SLO.parse("mttr_component_s <= 30"),
)


@pytest.mark.quick
@pytest.mark.chaos
@pytest.mark.parametrize(
    ("scope", "mb"),
    [("cgroup", 256), ("host", 2048)],
    ids=["in-the-nodes-cgroup", "on-the-host"],
)
def test_memory_pressure_leaves_the_service_answering(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec, scope: str, mb: int
) -> None:
    stack = stack_spec
    if scope == "cgroup" and stack_spec.backend == "docker":  # the container's own cgroup:
        stack = replace(stack_spec, container_memory_mb=mb + 128)  # the node keeps 128 MiB
    result = chaos_run(
        ExperimentSpec(
            stack=stack,
            fault="memory",
            target="primary",
            fault_params={"scope": scope, "mb": mb},
            hold_s=5.0,
            load=scenario_load,
            baseline_s=2.0,
            settle_s=1.0,
            slos=QUIET,
        )
    )
    result.assert_passed()


@pytest.mark.quick
@pytest.mark.chaos
def test_the_primarys_data_dir_filled_to_enospc_is_given_back(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    # anvil keeps its chain in memory, so a full disk does not stop it; a client that
    # writes (erigon, geth) would fail here, and the same scenario shows it.
    result = chaos_run(
        ExperimentSpec(
            stack=replace(stack_spec, data_dir_size_mb=64),
            fault="disk",
            target="primary",
            fault_params={"percent": 100},
            hold_s=5.0,
            load=scenario_load,
            baseline_s=2.0,
            settle_s=1.0,
            slos=QUIET,
        )
    )
    result.assert_passed()
