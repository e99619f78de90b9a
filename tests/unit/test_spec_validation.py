"""Validation at the edges: a stack spec, a node kind, a missing binary, steady-state thresholds.

Each rejection is a `ConfigError` that names the field and says how to fix it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError, MissingBinaryError
from harness.experiment.spec import ExperimentSpec
from harness.load.runner import LoadRun, LoadSpec
from harness.measure import SLO, Safeguard
from harness.stack.haproxy import DEFAULT_TEMPLATE
from harness.stack.model import HealthCheck, RestartPolicy, StackSpec
from harness.stack.nodes import ADAPTERS, adapter
from harness.stack.steady import SteadyStateSpec


def rejection(**fields: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        StackSpec(**fields)
    return caught.value


# --- StackSpec ---------------------------------------------------------------------------


def test_the_default_spec_is_valid() -> None:
    spec = StackSpec()
    assert (spec.nodes, spec.node_kind, spec.frontend_port) == (2, "anvil", None)


@pytest.mark.parametrize("nodes", [0, -1, 17, 100])
def test_a_node_count_outside_1_to_16_is_rejected(nodes: int) -> None:
    error = rejection(nodes=nodes)
    assert (error.field, error.value) == ("nodes", nodes)
    assert "between 1 and 16" in error.fix


@pytest.mark.parametrize("nodes", [1, 16])
def test_node_counts_at_the_bounds_are_accepted(nodes: int) -> None:
    assert StackSpec(nodes=nodes).nodes == nodes


@pytest.mark.parametrize("block_time_s", [0.0, 0.049, -1.0, 61.0, math.nan, math.inf, -math.inf])
def test_a_block_time_outside_0_05_to_60_seconds_is_rejected(block_time_s: float) -> None:
    error = rejection(block_time_s=block_time_s)
    assert error.field == "block_time_s"
    assert "0.05 to 60 seconds" in error.fix


@pytest.mark.parametrize("block_time_s", [0.05, 60.0])
def test_block_times_at_the_bounds_are_accepted(block_time_s: float) -> None:
    assert StackSpec(block_time_s=block_time_s).block_time_s == block_time_s


@pytest.mark.parametrize("port", [0, 80, 1023, 65536, 70000])
def test_a_frontend_port_outside_1024_to_65535_is_rejected(port: int) -> None:
    error = rejection(frontend_port=port)
    assert (error.field, error.value) == ("frontend_port", port)
    assert "1024-65535" in error.fix and "omit it" in error.fix


@pytest.mark.parametrize("port", [1024, 65535])
def test_frontend_ports_at_the_bounds_are_accepted(port: int) -> None:
    assert StackSpec(frontend_port=port).frontend_port == port


@pytest.mark.parametrize(
    "health_check",
    [
        HealthCheck(inter_ms=99),
        HealthCheck(inter_ms=60_001),
        HealthCheck(fall=0),
        HealthCheck(fall=101),
        HealthCheck(rise=0),
        HealthCheck(rise=101),
    ],
)
def test_a_health_check_out_of_range_is_rejected(health_check: HealthCheck) -> None:
    error = rejection(health_check=health_check)
    assert (error.field, error.value) == ("health_check", health_check)
    assert "inter_ms must be 100-60000" in error.fix and "fall and rise 1-100" in error.fix


@pytest.mark.parametrize(
    "restart",
    [
        RestartPolicy(delay_s=-0.1),
        RestartPolicy(max_delay_s=-1.0),
        RestartPolicy(backoff=0.5),
        RestartPolicy(backoff=0.0),
    ],
)
def test_a_negative_restart_delay_or_a_backoff_below_1_is_rejected(restart: RestartPolicy) -> None:
    error = rejection(restart=restart)
    assert (error.field, error.value) == ("restart", restart)
    assert "backoff >= 1" in error.fix


@pytest.mark.parametrize("field", ["delay_s", "backoff", "max_delay_s"])
def test_a_nan_restart_value_is_rejected(field: str) -> None:
    error = rejection(restart=replace(RestartPolicy(), **{field: math.nan}))
    assert error.field == "restart"


def test_a_restart_policy_without_delay_or_backoff_is_accepted() -> None:
    restart = RestartPolicy(delay_s=0.0, backoff=1.0, max_delay_s=0.0)
    assert StackSpec(restart=restart).restart == restart


def test_a_negative_head_lag_is_rejected() -> None:
    error = rejection(max_head_lag_blocks=-1)
    assert (error.field, error.fix) == ("max_head_lag_blocks", "must be >= 0")


def test_a_missing_haproxy_template_is_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cfg.j2"
    error = rejection(haproxy_template=missing)
    assert (error.field, error.value) == ("haproxy_template", str(missing))
    assert "give a readable path" in error.fix


def test_a_directory_is_not_a_haproxy_template(tmp_path: Path) -> None:
    assert rejection(haproxy_template=tmp_path).field == "haproxy_template"


def test_an_existing_haproxy_template_is_accepted(tmp_path: Path) -> None:
    template = tmp_path / "mine.cfg.j2"
    template.write_text("global\n")
    assert StackSpec(haproxy_template=template).haproxy_template == template


@pytest.mark.parametrize("name", ["my stack", "", "a/b", "../up", "x;rm", "tab\there", "-", "_"])
def test_a_stack_name_with_other_characters_is_rejected(name: str) -> None:
    error = rejection(name=name)
    assert (error.field, error.value) == ("stack name", name)
    assert "letters, digits, '-' and '_'" in error.fix


@pytest.mark.parametrize("name", ["default", "node-7", "my_stack", "A1-b_2"])
def test_a_stack_name_of_letters_digits_dashes_and_underscores_is_accepted(name: str) -> None:
    assert StackSpec(name=name).name == name


def test_the_message_names_the_field_the_value_and_the_fix() -> None:
    assert str(rejection(nodes=17)) == "nodes=17: choose between 1 and 16 nodes"


def test_a_config_error_is_a_harness_error_that_exits_2() -> None:
    error = rejection(nodes=0)
    assert isinstance(error, HarnessError)
    assert error.exit_code == 2


valid_specs = st.builds(
    StackSpec,
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True),
    nodes=st.integers(min_value=1, max_value=16),
    node_kind=st.sampled_from(sorted(ADAPTERS)),
    block_time_s=st.floats(min_value=0.05, max_value=60),
    node_args=st.lists(st.text(max_size=12), max_size=4).map(tuple),
    haproxy_template=st.sampled_from([None, DEFAULT_TEMPLATE]),
    frontend_port=st.none() | st.integers(min_value=1024, max_value=65535),
    health_check=st.builds(
        HealthCheck,
        inter_ms=st.integers(min_value=100, max_value=60_000),
        fall=st.integers(min_value=1, max_value=100),
        rise=st.integers(min_value=1, max_value=100),
    ),
    restart=st.builds(
        RestartPolicy,
        delay_s=st.floats(min_value=0, max_value=60),
        backoff=st.floats(min_value=1, max_value=10),
        max_delay_s=st.floats(min_value=0, max_value=600),
        reset_after_s=st.floats(min_value=0, max_value=600),
        enabled=st.booleans(),
    ),
    ready_timeout_s=st.floats(min_value=1, max_value=600),
    max_head_lag_blocks=st.integers(min_value=0, max_value=1000),
)


@given(valid_specs)
def test_to_dict_and_from_dict_round_trip_any_valid_spec(spec: StackSpec) -> None:
    assert StackSpec.from_dict(spec.to_dict()) == spec


@given(valid_specs)
def test_a_spec_survives_a_trip_through_json(spec: StackSpec) -> None:
    assert StackSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_from_dict_fills_what_a_partial_document_leaves_out() -> None:
    spec = StackSpec.from_dict({"nodes": 3, "restart": {"delay_s": 0.1}})
    assert spec == StackSpec(nodes=3, restart=RestartPolicy(delay_s=0.1))


def test_from_dict_validates_like_the_constructor() -> None:
    with pytest.raises(ConfigError) as caught:
        StackSpec.from_dict({"health_check": {"fall": 0}})
    assert caught.value.field == "health_check"


# --- node adapters -----------------------------------------------------------------------


def test_an_unknown_node_kind_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        adapter("nope")
    assert (caught.value.field, caught.value.value) == ("node", "nope")
    assert "choose one of: anvil, geth, erigon, reth" in caught.value.fix


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_every_known_kind_has_its_adapter(kind: str) -> None:
    assert adapter(kind).kind == kind


def test_a_missing_node_binary_says_how_to_get_it() -> None:
    if shutil.which("geth"):
        pytest.skip("geth is installed here")
    with pytest.raises(MissingBinaryError) as caught:
        adapter("geth").binary()
    error = caught.value
    assert isinstance(error, ConfigError)
    assert (error.field, error.value) == ("binary", "geth")
    assert "not found on PATH" in error.fix
    assert "geth.ethereum.org/downloads" in error.fix


def test_the_anvil_binary_is_found_beside_the_projects_python() -> None:
    path = adapter("anvil").binary()
    assert path.name == "anvil"
    assert path.is_file()


# --- SteadyStateSpec ---------------------------------------------------------------------


def test_the_default_steady_state_spec_is_valid() -> None:
    assert SteadyStateSpec().max_head_lag_blocks == 5


def test_a_negative_steady_state_head_lag_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        SteadyStateSpec(max_head_lag_blocks=-1)
    assert (caught.value.field, caught.value.value) == ("max_head_lag_blocks", -1)
    assert "must be >= 0" in caught.value.fix


@pytest.mark.parametrize("field", ["min_available_memory_pct", "min_free_disk_pct"])
@given(pct=st.floats(max_value=0, exclude_max=True) | st.floats(min_value=100) | st.just(math.nan))
def test_a_percentage_outside_0_to_100_is_rejected(field: str, pct: float) -> None:
    with pytest.raises(ConfigError) as caught:
        SteadyStateSpec(**{field: pct})
    assert caught.value.field == field
    assert "percentage in [0, 100)" in caught.value.fix


@pytest.mark.parametrize("field", ["min_available_memory_pct", "min_free_disk_pct"])
@given(pct=st.floats(min_value=0, max_value=100, exclude_max=True))
def test_a_percentage_in_0_to_100_is_accepted(field: str, pct: float) -> None:
    assert getattr(SteadyStateSpec(**{field: pct}), field) == pct


# -- where an experiment's load goes --------------------------------------------------------


@pytest.mark.parametrize("load_at", ["frontend", "primary", "node-0", "node-2"])
def test_load_goes_to_the_frontend_the_primary_or_a_node_of_the_stack(load_at: str) -> None:
    assert ExperimentSpec(stack=StackSpec(nodes=3), load_at=load_at).load_at == load_at


@pytest.mark.parametrize("load_at", ["node-3", "haproxy", "backup", "", "http://x/"])
def test_load_at_anything_else_is_rejected_with_the_choices(load_at: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ExperimentSpec(stack=StackSpec(nodes=3), load_at=load_at)
    assert caught.value.field == "load_at"
    assert "frontend, primary or one of node-0, node-1, node-2" in caught.value.fix


def test_an_slo_on_a_method_the_profile_never_sends_is_rejected_naming_what_it_sends() -> None:
    with pytest.raises(ConfigError) as caught:
        ExperimentSpec(
            load=LoadSpec(profile="light", workers=1),
            slos=(SLO.parse("p99_ms[baseline:debug_traceCall] <= 500"),),
        )
    assert caught.value.field == "slo"
    assert "never sends debug_traceCall" in caught.value.fix
    assert "eth_blockNumber" in caught.value.fix


def test_an_slo_on_a_method_the_profile_sends_is_accepted() -> None:
    slo = SLO.parse("p99_ms[baseline:debug_traceCall] <= 500")
    assert ExperimentSpec(load=LoadSpec(profile="searcher", workers=1), slos=(slo,)).slos == (slo,)


@pytest.mark.parametrize("model", ["open", "closed"])
def test_a_rate_at_or_below_zero_is_rejected_whatever_the_model(model: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LoadSpec(model=model, rate_per_s=-5, workers=1)
    assert caught.value.field == "rate_per_s"


def test_a_safeguard_on_a_run_without_load_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        ExperimentSpec(load=None, safeguards=(Safeguard.parse("error_rate_pct > 50 for 2s"),))
    assert caught.value.field == "abort_if"
    assert "--no-load" in caught.value.fix


# --- LoadSpec: workers and distributed mode -----------------------------------------------


def test_workers_default_to_one_per_core_but_never_more_than_the_users() -> None:
    cores = os.cpu_count() or 1
    assert LoadSpec(users=32).workers == min(cores, 32)
    assert LoadSpec(users=1).workers == 1
    assert LoadSpec(users=3, remote_workers=2).workers == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"remote_workers": -1}, "remote_workers"),
        ({"remote_workers": 257}, "remote_workers"),
        ({"users": 4, "workers": 2, "remote_workers": 3}, "users"),
        ({"master_bind": "not a host!"}, "master_bind"),
        ({"master_bind": "203.0.113.254"}, "master_bind"),  # TEST-NET-3: documentation only
        ({"master_port": -1}, "master_port"),
        ({"master_port": 65536}, "master_port"),
        ({"start_timeout_s": 0}, "start_timeout_s"),
        ({"start_timeout_s": math.nan}, "start_timeout_s"),
        ({"warmup_s": -1}, "warmup_s"),
        ({"warmup_s": math.inf}, "warmup_s"),
        ({"remote_target_url": "10.0.0.5:8545"}, "remote_target_url"),
    ],
)
def test_bad_distributed_load_input_is_rejected_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        LoadSpec(**fields)
    assert caught.value.field == field


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost"])
def test_the_master_may_bind_loopback_or_every_interface(bind: str) -> None:
    assert LoadSpec(remote_workers=1, master_bind=bind).master_bind == bind


@pytest.mark.parametrize("url", ["https://127.0.0.1:8545/", "ws://127.0.0.1:8546/", "127.0.0.1"])
def test_the_load_targets_plain_http_only(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        LoadRun(LoadSpec(workers=1), url, tmp_path, contract="")
    assert caught.value.field == "target_url"
    with pytest.raises(ConfigError) as caught:
        LoadSpec(workers=1, remote_workers=1, users=4, remote_target_url=url)
    assert caught.value.field == "remote_target_url"
