"""Container limits and a sized /data on the docker backend, as the spec and the options
describe them: pure, no daemon."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import BackendUnsupported, ConfigError
from harness.stack.docker.layout import (
    data_volume_options,
    host_config_limits,
    plan_layout,
    planned_components,
    subnets,
)
from harness.stack.docker.stack import PlannedDockerStack, check_docker_spec
from harness.stack.local import PlannedStack
from harness.stack.model import StackSpec
from harness.stack.options import stack_flags, stack_spec_from_options
from harness.units import parse_cpus, parse_size_mb


@given(st.integers(0, 1 << 20), st.sampled_from(["", "m", "M", "mb", "MiB", " m"]))
def test_a_size_in_mib_reads_the_same_with_or_without_its_unit(mib: int, unit: str) -> None:
    assert parse_size_mb(f"{mib}{unit}") == mib


@given(st.integers(0, 1024), st.sampled_from(["g", "G", "gb", "GiB"]))
def test_a_size_in_gib_is_1024_mib_each(gib: int, unit: str) -> None:
    assert parse_size_mb(f"{gib}{unit}") == gib * 1024


@pytest.mark.parametrize("text", ["", "abc", "-5", "1.5g", "512k", "512 mb extra", "0x10"])
def test_a_size_that_does_not_parse_names_the_flag_and_the_form_to_write(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_size_mb(text, "--container-memory-mb")
    assert error.value.field == "--container-memory-mb"
    assert "512m" in error.value.fix


@given(st.floats(0, 1000, allow_nan=False).map(lambda f: round(f, 3)))
def test_cpus_read_as_the_decimal_written(cpus: float) -> None:
    assert parse_cpus(repr(cpus)) == cpus


@pytest.mark.parametrize("text", ["", "half", "-1", "1,5", "50%", "nan", "inf"])
def test_cpus_that_do_not_parse_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_cpus(text, "--container-cpus")
    assert error.value.field == "--container-cpus"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("container_memory_mb", 8),
        ("container_memory_mb", True),
        ("container_memory_mb", 1.5),
        ("container_cpus", 0.001),
        ("container_cpus", float("nan")),
        ("container_cpus", (os.cpu_count() or 1) + 1),
    ],
)
def test_a_limit_out_of_range_is_refused_naming_the_field_and_the_range(
    field: str, value: object
) -> None:
    with pytest.raises(ConfigError) as error:
        StackSpec(name="s", backend="docker", **{field: value})  # type: ignore[arg-type]
    assert error.value.field == field
    assert "choose" in error.value.fix and "leave it off" in error.value.fix


def test_the_options_give_the_limits_to_the_spec_and_the_flags_give_them_back() -> None:
    spec = stack_spec_from_options(
        {"backend": "docker", "container_memory_mb": "1g", "container_cpus": "0.5",
         "data_dir_size_mb": 64},
        name="s",
    )  # fmt: skip
    assert (spec.container_memory_mb, spec.container_cpus) == (1024, 0.5)
    flags = stack_flags(spec)
    assert flags[flags.index("--container-memory-mb") + 1] == "1024"
    assert flags[flags.index("--container-cpus") + 1] == "0.5"
    assert flags[flags.index("--data-dir-size-mb") + 1] == "64"


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"container_memory_mb": 256}, "container_memory_mb", "scope=cgroup"),
        ({"container_cpus": 0.5}, "container_cpus", "pin_to_node=true"),
    ],
)
def test_container_limits_on_the_local_backend_are_refused_naming_the_way_out(
    change: dict[str, object], field: str, hint: str
) -> None:
    spec = StackSpec(name="s", **change)  # type: ignore[arg-type]
    with pytest.raises(BackendUnsupported) as error:
        PlannedStack(spec)
    assert error.value.field == field
    assert "--backend docker" in error.value.fix and hint in error.value.fix


def test_a_sized_data_dir_is_no_longer_refused_on_docker() -> None:
    check_docker_spec(StackSpec(name="s", backend="docker", data_dir_size_mb=64))


def test_served_nodes_get_the_limits_and_a_tmpfs_volume_the_chain_source_and_haproxy_do_not() -> (
    None
):
    spec = StackSpec(
        name="s", backend="docker", chain="one", data_dir_size_mb=64,
        container_memory_mb=256, container_cpus=0.5,
    )  # fmt: skip
    components = planned_components(plan_layout(spec, "s-1", next(subnets("s"))), spec)
    limits = {c.name: (c.data_dir_size_mb, c.memory_limit_mb, c.cpus) for c in components}
    assert limits == {
        "chain-source": (None, None, None),
        "node-0": (64, 256, 0.5),
        "node-1": (64, 256, 0.5),
        "haproxy": (None, None, None),
    }
    assert host_config_limits(spec) == {
        "mem_limit": "256m", "memswap_limit": "256m", "oom_score_adj": 1000,
        "nano_cpus": 500_000_000,
    }  # fmt: skip
    assert data_volume_options(spec) == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}


def test_no_limits_asked_is_no_limits_given() -> None:
    spec = StackSpec(name="s", backend="docker")
    assert host_config_limits(spec) == {} and data_volume_options(spec) == {}
    assert all(
        (c.memory_limit_mb, c.cpus, c.data_dir_size_mb) == (None, None, None)
        for c in PlannedDockerStack(spec).state().components
    )
