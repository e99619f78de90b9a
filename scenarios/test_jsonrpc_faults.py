"""Scenarios: faults a node makes at the JSON-RPC level, through the harness's fault proxy.

Steady state: both nodes answer and agree, both UP in HAProxy.
Stack: the fault proxy between HAProxy and each node (``fault_proxy=True``).
Load: the searcher mix, open model, 150 req/s through the frontend.
Each answer is an HTTP 200 (or a 429) that HAProxy passes through: a balancer that checks
liveness cannot hide it, so clients see the fault exactly as the node makes it, and the
harness must count it (a JSON-RPC error inside a 200 is a failure).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness import SLO, ChaosRun, ExperimentSpec, LoadSpec, StackSpec


def _spec(stack: StackSpec, load: LoadSpec, fault: str, params: dict[str, object],
          slos: tuple[SLO, ...]) -> ExperimentSpec:  # fmt: skip
    return ExperimentSpec(
        stack=replace(stack, fault_proxy=True),
        fault=fault,
        target="primary",
        fault_params=params,
        hold_s=5.0,
        load=load,
        baseline_s=2.0,
        settle_s=1.0,
        slos=slos,
    )


@pytest.mark.quick
@pytest.mark.chaos
def test_header_not_found_on_a_fifth_of_eth_calls_is_counted_as_clients_see_it(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    result = chaos_run(
        _spec(
            stack_spec,
            scenario_load,
            "rpc_error",
            {
                "methods": "eth_call",
                "probability": 0.2,
                "code": -32000,
                "message": "header not found",
            },
            (
                SLO.parse("error_rate_pct[fault:eth_call] >= 12"),
                SLO.parse("error_rate_pct[fault:eth_call] <= 28"),
                SLO.parse("error_rate_pct[fault:eth_blockNumber] <= 1"),
                SLO.parse("error_rate_pct[recovery] <= 1"),
            ),
        )
    )
    result.assert_passed()
    assert set(result.episode.load[1].errors) == {"rpc_header_not_found"}


@pytest.mark.quick
@pytest.mark.chaos
def test_http_429_rate_limiting_of_the_primary_reaches_clients_over_its_budget(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    # 150 req/s of load and 50 of probes offered, 50 a second allowed: most are refused.
    result = chaos_run(
        _spec(
            stack_spec,
            scenario_load,
            "rate_limit",
            {"budget_per_s": 50, "style": "http429"},
            (
                SLO.parse("error_rate_pct[fault] >= 40"),
                SLO.parse("error_rate_pct[fault] <= 95"),
                SLO.parse("error_rate_pct[recovery] <= 1"),
            ),
        )
    )
    result.assert_passed()
    assert set(result.episode.load[1].errors) == {"http_429"}


@pytest.mark.quick
@pytest.mark.chaos
def test_one_slow_method_breaks_its_own_slo_and_leaves_the_others_fast(
    stack_spec: StackSpec, chaos_run: ChaosRun, scenario_load: LoadSpec
) -> None:
    # Each user holds one keep-alive connection, as a bot's pool does: a user waiting 300 ms
    # for eth_getLogs sends its next call late, and that call's latency counts the wait
    # (from its intended send time). Enough users that none is still waiting when its next
    # call is due (one call each 640 ms) keep the other methods' latency their own.
    load = replace(scenario_load, users=96)
    result = chaos_run(
        _spec(
            stack_spec,
            load,
            "rpc_delay",
            {"methods": "eth_getLogs", "delay_ms": 300},
            (
                SLO.parse("p50_ms[fault:eth_getLogs] >= 300"),
                SLO.parse("p99_ms[fault:eth_call] <= 50"),
                SLO.parse("p99_ms[fault:eth_blockNumber] <= 50"),
                SLO.parse("p99_ms[recovery:eth_getLogs] <= 50"),
            ),
        )
    )
    result.assert_passed()
