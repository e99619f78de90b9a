"""Resource fault parameters, the pure decisions behind them, and their undo operations'
refusals: no stack, no helper process, nothing applied.

Validation happens on construction, before a stack is asked anything, so a stand-in
stack that refuses every call proves nothing was looked at, let alone applied.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.faults import FAULTS, make_fault, parameters
from harness.faults.resources import (
    ALLOCATOR,
    MIB,
    CpuStress,
    DiskFill,
    MemoryPressure,
    SyncStall,
    fill_bytes,
    memory_floor_refusal,
)
from harness.faults.undo import run_undo
from harness.stack.model import StackState


class UntouchableStack:
    """A stack that must never be asked anything by a fault's constructor."""

    def state(self) -> StackState:
        raise AssertionError("validation must not look at the stack")


STACK = UntouchableStack()
ALL = (CpuStress, MemoryPressure, DiskFill, SyncStall)
CPUS = os.cpu_count() or 1


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.kind)
def test_every_resource_fault_is_registered_and_its_defaults_are_valid(cls: Any) -> None:
    fault = cls(STACK, "primary")
    assert FAULTS[cls.kind] is cls
    assert set(fault.params()) == set(parameters(cls.kind))
    assert cls.roles == ("primary", "backup")
    assert fault.mechanism


@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (DiskFill, {"percent": 101}, "percent"),
        (DiskFill, {"percent": 0}, "percent"),
        (DiskFill, {"percent": 0.5}, "percent"),
        (DiskFill, {"percent": math.nan}, "percent"),
        (DiskFill, {"percent": True}, "percent"),
        (MemoryPressure, {"mb": 0}, "mb"),
        (MemoryPressure, {"mb": -1}, "mb"),
        (MemoryPressure, {"mb": 1.5}, "mb"),
        (MemoryPressure, {"scope": "pod"}, "scope"),
        (MemoryPressure, {"max_s": -1}, "max_s"),
        (MemoryPressure, {"max_s": math.inf}, "max_s"),
        (MemoryPressure, {"floor_mb": -1}, "floor_mb"),
        (MemoryPressure, {"headroom_mb": 0}, "headroom_mb"),
        (CpuStress, {"cores": 0}, "cores"),
        (CpuStress, {"cores": CPUS + 1}, "cores"),
        (CpuStress, {"cores": 1.0}, "cores"),
        (CpuStress, {"load_pct": 0}, "load_pct"),
        (CpuStress, {"load_pct": 101}, "load_pct"),
        (CpuStress, {"max_s": -1}, "max_s"),
        (CpuStress, {"max_s": 0.5}, "max_s"),  # stress-ng's timeout is whole seconds
        (CpuStress, {"max_s": math.nan}, "max_s"),
        (CpuStress, {"pin_to_node": "yes"}, "pin_to_node"),
    ],
)
def test_bad_parameter_is_a_config_error_naming_the_field(
    cls: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        cls(STACK, "primary", **params)
    assert error.value.field == field
    assert error.value.fix


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (DiskFill, {"percent": 1}),
        (DiskFill, {"percent": 100}),
        (MemoryPressure, {"mb": 1, "scope": "cgroup", "headroom_mb": 8}),
        (MemoryPressure, {"floor_mb": 0, "max_s": 0.1}),
        (CpuStress, {"cores": CPUS, "load_pct": 1, "max_s": 1}),
        (CpuStress, {"load_pct": 100, "max_s": 86_400, "pin_to_node": True}),
    ],
)
def test_parameters_at_the_edges_are_accepted(cls: Any, params: dict[str, Any]) -> None:
    cls(STACK, "primary", **params)


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("disk", {"percent": "101"}, "percent"),
        ("memory", {"mb": "0"}, "mb"),
        ("memory", {"scope": "pod"}, "scope"),
        ("cpu", {"cores": "0"}, "cores"),
        ("cpu", {"max_s": "-1"}, "max_s"),
        ("cpu", {"cores": "two"}, "cpu.cores"),
        ("stall", {"seconds": "5"}, "stall parameter"),
    ],
)
def test_string_input_from_the_cli_is_converted_then_validated(
    kind: str, params: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        make_fault(kind, STACK, "primary", **params)  # type: ignore[arg-type]
    assert error.value.field == field


def test_stress_ng_timeout_never_exceeds_max_s_and_pinning_names_the_cpus() -> None:
    argv = CpuStress(STACK, "primary", cores=1, load_pct=40, max_s=2.9).argv([1, 0])
    assert argv[argv.index("--timeout") + 1] == "2s"  # rounded down: a bound, not a target
    assert argv[argv.index("--cpu-load") + 1] == "40"
    assert argv[argv.index("--taskset") + 1] == "0,1"
    assert "--taskset" not in CpuStress(STACK, "primary").argv()


def test_the_allocator_script_compiles() -> None:
    compile(ALLOCATOR, "<allocator>", "exec")


# -- the memory floor ---------------------------------------------------------------------

GIB = 1024 * MIB


@given(
    request_mb=st.integers(0, 64 * 1024),
    available_mb=st.integers(0, 64 * 1024),
    total_gb=st.integers(1, 64),
    floor_mb=st.integers(0, 8192),
)
def test_memory_floor_allows_exactly_what_keeps_the_host_above_it(
    request_mb: int, available_mb: int, total_gb: int, floor_mb: int
) -> None:
    total = total_gb * GIB
    available = min(available_mb * MIB, total)
    refusal = memory_floor_refusal(request_mb * MIB, available, total, floor_mb)
    floor = max(floor_mb * MIB, total / 10)
    assert (refusal is None) == (available - request_mb * MIB >= floor)
    if refusal is not None:
        assert "free-memory floor" in refusal
        allowed_mb = int(refusal.rsplit("at most ", 1)[1].split()[0])
        assert memory_floor_refusal(allowed_mb * MIB, available, total, floor_mb) is None or (
            allowed_mb == 0
        )


def test_memory_floor_is_at_least_a_tenth_of_ram_whatever_floor_mb_says() -> None:
    total, available = 16 * GIB, 4 * GIB
    assert memory_floor_refusal(3 * GIB, available, total, floor_mb=0) is not None
    assert memory_floor_refusal(2 * GIB, available, total, floor_mb=0) is None


# -- how much to fill ---------------------------------------------------------------------


@given(
    used=st.integers(0, 1 << 32),
    avail=st.integers(0, 1 << 32),
    percent=st.floats(1, 100),
    block=st.sampled_from([512, 4096, 65536]),
)
def test_fill_reaches_the_percent_without_asking_for_more_than_is_free(
    used: int, avail: int, percent: float, block: int
) -> None:
    need = fill_bytes(used, avail, percent, block)
    assert 0 <= need <= avail
    capacity = used + avail
    if capacity == 0:
        return
    if need == 0:
        assert used >= capacity * percent / 100 - 1 or avail == 0
    elif need < avail:
        assert need % block == 0
        assert (used + need) / capacity >= percent / 100 - 1e-12
        assert (used + need - block) / capacity < percent / 100


def test_a_full_fill_asks_for_everything_that_is_free() -> None:
    assert fill_bytes(10 * MIB, 54 * MIB, 100, 4096) == 54 * MIB


# -- undo operations refuse what is not theirs and tolerate what is gone -----------------


@pytest.mark.parametrize(
    "op",
    [
        {"op": "cgroup_remove", "path": "/sys/fs/cgroup/memory/process_api"},
        {"op": "cgroup_remove", "path": "/sys/fs/cgroup/memory/harness/../x-12345678-y"},
        {"op": "cgroup_remove", "path": "/tmp/harness/memory-1234abcd-node-0"},
        {
            "op": "cgroup_remove",
            "path": "/sys/fs/cgroup/memory/harness/memory-1234abcd-node-0",
            "return_to": "/sys/fs/cgroup/cpu",
        },
        {
            "op": "cgroup_remove",
            "path": "/sys/fs/cgroup/memory/harness/memory-1234abcd-node-0",
            "return_to": "/sys/fs/cgroup/memory/harness/memory-9999abcd-node-1",
        },
        {
            "op": "cgroup_remove",
            "path": "/sys/fs/cgroup/memory/harness/memory-1234abcd-node-0",
            "return_to": "/sys/fs/cgroup/memory/harness",
        },
        {"op": "kill_process_group", "pid": 1, "create_time": 0.0, "name": "init"},
        {"op": "kill_process_group", "pid": 4242, "create_time": 0.0, "name": ""},
        {"op": "oom_score_adj", "pid": os.getpid(), "create_time": 0.0, "value": -5000},
    ],
)
def test_undo_operations_refuse_what_the_harness_did_not_make(op: dict[str, Any]) -> None:
    with pytest.raises(HarnessError, match="refusing"):
        run_undo(op)


@pytest.mark.parametrize(
    "op",
    [
        {"op": "cgroup_remove", "path": "/sys/fs/cgroup/memory/harness/memory-0badf00d-node-0"},
        {"op": "kill_process_group", "pid": 2**22 + 7, "create_time": 0.0, "name": "stress-ng"},
        {"op": "oom_score_adj", "pid": 2**22 + 7, "create_time": 0.0, "value": 0},
        {
            "op": "rpc_call",
            "url": "http://127.0.0.1:9/",
            "method": "evm_setIntervalMining",
            "params": [1],
            "pid": 2**22 + 7,
            "create_time": 0.0,
        },
        {"op": "rpc_call", "url": "http://127.0.0.1:9/", "method": "evm_setIntervalMining"},
    ],
)
def test_undo_operations_do_nothing_when_nothing_is_left(op: dict[str, Any]) -> None:
    assert run_undo(op) is None


def test_remove_file_is_idempotent(tmp_path: Path) -> None:
    fill = tmp_path / "harness-fill-disk-1234abcd"
    fill.write_bytes(b"\0" * 4096)
    op = {"op": "remove_file", "path": str(fill)}
    assert run_undo(op) == f"removed {fill}"
    assert run_undo(op) is None
