"""Resource faults against a real stack: in effect, verified, timed, and gone after the
block, also when the harness holding them is SIGKILLed."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.errors import ConfigError
from harness.faults import replay_open_records
from harness.faults.ledger import ledger_dir
from harness.faults.resources import (
    HARNESS_CGROUP,
    MIB,
    CpuStress,
    DiskFill,
    MemoryPressure,
    SyncStall,
    cgroup_memory_available,
    memory_cgroup_of,
)
from harness.jsonrpc import RpcClient
from harness.stack import LocalStack, StackSpec
from harness.stack.state import reap_stale_stacks

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="data dirs on tmpfs and cgroups need root"),
    pytest.mark.skipif(not CpuStress.available()[0], reason="stress-ng is not installed"),
]


needs_cgroup = pytest.mark.skipif(
    not cgroup_memory_available()[0], reason=cgroup_memory_available()[1]
)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackSpec(name="rf", block_time_s=0.5, data_dir_size_mb=64)) as s:
        yield s


@pytest.fixture
def whole_second_stack() -> Iterator[LocalStack]:
    """anvil restores interval mining in whole seconds only: a stall needs such a stack."""
    with LocalStack(StackSpec(name="rf1", nodes=1, block_time_s=1)) as s:
        yield s


def _group(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes in process group ``pgid``: a stress-ng and its workers."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _workers(pgid: int) -> list[psutil.Process]:
    return [p for p in _group(pgid) if p.name() == "stress-ng-cpu"]


def _allocator_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        mine = any("harness memory allocator" in part for part in proc.cmdline())
        return mine and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _open_ledger_records() -> list[str]:
    opened: dict[str, str] = {}
    for path in ledger_dir().glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "open":
                opened[record["id"]] = record["kind"]
            elif record["event"] == "close":
                opened.pop(record["id"], None)
    return list(opened)


def _head(url: str) -> int:
    with RpcClient(url, timeout_s=1.0) as client:
        return client.block_number()


def _interval_mining(url: str) -> Any:
    with RpcClient(url, timeout_s=1.0) as client:
        return client.call("anvil_getIntervalMining")


def _used_pct(path: str) -> float:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return 100 * used / (used + st.f_bavail * st.f_frsize)


# -- cpu ---------------------------------------------------------------------------------


def test_cpu_stress_runs_busy_workers_for_the_block_and_stops_them_after(
    stack: LocalStack,
) -> None:
    with CpuStress(stack, "primary", cores=2, max_s=30) as fault:
        (pgid,) = fault.helper_pids
        workers = _workers(pgid)
        assert len(workers) == 2
        before = sum(p.cpu_times().user + p.cpu_times().system for p in workers)
        time.sleep(0.3)
        after = sum(p.cpu_times().user + p.cpu_times().system for p in workers)
        assert after - before > 0.03  # busy, though a loaded host shares its cores
    assert _group(pgid) == []
    assert fault.record is not None and fault.record.mechanism == "stress-ng --cpu"
    assert 0 < fault.record.apply_us < 2_000_000
    assert fault.record.reverted_ns > fault.record.revert_requested_ns > fault.record.effective_ns


def test_pinned_cpu_stress_runs_on_the_nodes_cpus_only(stack: LocalStack) -> None:
    pid = stack.state().component("node-1").pid
    assert pid is not None
    psutil.Process(pid).cpu_affinity([0])
    with CpuStress(stack, "backup", pin_to_node=True, max_s=30) as fault:
        (pgid,) = fault.helper_pids
        (worker,) = _workers(pgid)
        assert worker.cpu_affinity() == [0]
    assert fault.mechanism == "stress-ng --cpu --taskset"
    assert _group(pgid) == []


def test_cpu_stress_ends_at_max_s_even_while_the_block_still_holds(stack: LocalStack) -> None:
    with CpuStress(stack, "primary", load_pct=10, max_s=1) as fault:
        (pgid,) = fault.helper_pids
        deadline = time.monotonic() + 3
        while _group(pgid):
            assert time.monotonic() < deadline, "stress-ng outlived its own --timeout"
            time.sleep(0.05)
    assert _group(pgid) == []


# -- memory ------------------------------------------------------------------------------


def test_host_memory_pressure_holds_the_memory_and_frees_it_after(stack: LocalStack) -> None:
    with MemoryPressure(stack, "primary", mb=128, max_s=30) as fault:
        (pid,) = fault.helper_pids
        assert _allocator_alive(pid)
        assert psutil.Process(pid).memory_info().rss >= 0.9 * 128 * MIB
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "1000"
    assert not _allocator_alive(pid)
    assert fault.record is not None and fault.record.mechanism == "allocator (host)"


@needs_cgroup
def test_cgroup_memory_pressure_squeezes_the_node_and_puts_it_back(stack: LocalStack) -> None:
    node = stack.state().component("node-0")
    assert node.pid is not None
    own = memory_cgroup_of(node.pid)
    with MemoryPressure(stack, "primary", mb=64, scope="cgroup", headroom_mb=32) as fault:
        ours = memory_cgroup_of(node.pid)
        assert ours.parent == HARNESS_CGROUP and fault.record is not None
        assert ours.name == f"{fault.record.id}-node-0"
        assert int((ours / "memory.limit_in_bytes").read_text()) == 96 * MIB
        assert int((ours / "memory.usage_in_bytes").read_text()) >= 0.9 * 64 * MIB
        (allocator,) = fault.helper_pids
        assert memory_cgroup_of(allocator) == ours
        assert Path(f"/proc/{node.pid}/oom_score_adj").read_text().strip() == "1000"
        with RpcClient(node.url) as client:
            assert client.block_number() >= 0  # squeezed, not dead
    assert memory_cgroup_of(node.pid) == own
    assert Path(f"/proc/{node.pid}/oom_score_adj").read_text().strip() == "0"
    assert not ours.exists()
    assert not _allocator_alive(allocator)


def test_host_memory_pressure_that_would_cross_the_floor_is_refused(stack: LocalStack) -> None:
    available_mb = psutil.virtual_memory().available // MIB
    with pytest.raises(ConfigError) as error, MemoryPressure(stack, "primary", mb=available_mb):
        pass
    assert error.value.field == "mb"
    assert "refuses to push the host below a free-memory floor" in str(error.value)
    assert _open_ledger_records() == []  # refused before anything was ledgered or started


# -- disk --------------------------------------------------------------------------------


def test_disk_fill_reaches_the_percent_and_is_removed_after(stack: LocalStack) -> None:
    data_dir = stack.state().component("node-0").data_dir
    assert data_dir is not None
    before = _used_pct(data_dir)
    with DiskFill(stack, "primary", percent=60) as fault:
        assert abs(_used_pct(data_dir) - 60) <= 1
        assert fault.record is not None
        fill = Path(data_dir, f"harness-fill-{fault.record.id}")
        assert fill.stat().st_size > 30 * MIB
    assert not fill.exists()
    assert _used_pct(data_dir) <= before + 1
    assert fault.record.mechanism == "fallocate"


def test_disk_fill_to_100_percent_makes_writes_fail_with_enospc(stack: LocalStack) -> None:
    data_dirs = [Path(n.data_dir) for n in stack.state().nodes if n.data_dir]
    assert len(data_dirs) == 2
    with DiskFill(stack, "all", percent=100):
        for data_dir in data_dirs:
            with pytest.raises(OSError) as error:
                (data_dir / "probe").write_bytes(b"x" * 65536)
            assert error.value.errno == errno.ENOSPC
            (data_dir / "probe").unlink(missing_ok=True)
    for data_dir in data_dirs:
        assert not list(data_dir.glob("harness-fill-*"))
        assert _used_pct(str(data_dir)) < 50


def test_disk_fill_without_a_data_dir_of_its_own_is_refused_and_applies_nothing() -> None:
    with LocalStack(StackSpec(name="rfplain", nodes=1, block_time_s=0.5)) as plain:
        data_dir = plain.state().component("node-0").data_dir
        assert data_dir is not None
        with pytest.raises(ConfigError) as error, DiskFill(plain, "primary", percent=10):
            pass
        assert error.value.field == "data_dir_size_mb"
        assert "size-limited filesystem of its own" in str(error.value)
        assert not [p for p in os.listdir(data_dir) if p.startswith("harness-fill-")]
        assert _open_ledger_records() == []


# -- stall -------------------------------------------------------------------------------


def test_sync_stall_freezes_the_head_while_the_node_answers_then_mining_resumes(
    whole_second_stack: LocalStack,
) -> None:
    url = whole_second_stack.state().component("node-0").url
    with SyncStall(whole_second_stack, "primary") as fault:
        frozen = _head(url)
        time.sleep(1.2)
        assert _head(url) == frozen  # it answers, with the same head
    assert _head(url) > frozen
    assert fault.record is not None and fault.record.mechanism == "evm_setIntervalMining(0)"
    assert fault.record.apply_us >= 2_000_000  # two block times of watching the head stand


def test_sync_stall_refuses_a_block_time_it_could_not_restore(stack: LocalStack) -> None:
    url = stack.state().component("node-0").url
    with pytest.raises(ConfigError) as error, SyncStall(stack, "primary"):
        pass
    assert error.value.field == "block_time_s"
    head = _head(url)
    time.sleep(0.6)
    assert _head(url) > head, "a refused stall must leave mining alone"


# -- the harness is SIGKILLed while a fault holds -----------------------------------------

VICTIM = """
import json, sys, time
from harness.faults.resources import CpuStress, DiskFill, MemoryPressure, SyncStall
from harness.stack import LocalStack, StackSpec
stack = LocalStack(StackSpec(name="victim", nodes=1, block_time_s=1, data_dir_size_mb=32))
stack.start()
faults = {
    "cpu": lambda: CpuStress(stack, "primary", max_s=60),
    "memory": lambda: MemoryPressure(stack, "primary", mb=32, scope="cgroup", max_s=60),
    "disk": lambda: DiskFill(stack, "primary", percent=80),
    "stall": lambda: SyncStall(stack, "primary"),
}
with faults[sys.argv[1]]() as fault:
    node = stack.state().component("node-0")
    helpers = getattr(fault, "helper_pids", ())
    print(json.dumps({"id": fault.record.id, "pid": node.pid, "url": node.url,
                      "data_dir": node.data_dir, "helpers": helpers}), flush=True)
    time.sleep(120)
"""


def _run_victim(kind: str) -> dict[str, Any]:
    victim = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(VICTIM), kind], stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None
    try:
        line = victim.stdout.readline()
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert line, f"the victim died before the {kind} fault held"
    info: dict[str, Any] = json.loads(line)
    return info


@pytest.mark.parametrize(
    "kind", ["cpu", pytest.param("memory", marks=needs_cgroup), "disk", "stall"]
)
def test_a_resource_fault_is_undone_after_the_harness_is_killed(kind: str) -> None:
    own_cgroup = memory_cgroup_of(os.getpid())
    info = _run_victim(kind)
    try:
        fill = Path(info["data_dir"], f"harness-fill-{info['id']}")
        cgroup = HARNESS_CGROUP / f"{info['id']}-node-0"
        helpers = info["helpers"]
        held = {
            "cpu": lambda: len(helpers) == 1 and len(_workers(helpers[0])) == 1,
            "memory": lambda: _allocator_alive(helpers[0]) and cgroup.is_dir(),
            "disk": fill.exists,
            "stall": lambda: _interval_mining(info["url"]) is None,
        }[kind]
        assert held(), f"the {kind} fault did not outlive the harness: nothing to prove"

        undone = replay_open_records()

        expected = {
            "cpu": ["stopped stress-ng"],
            "memory": ["stopped memory allocator", "removed memory cgroup", "oom_score_adj"],
            "disk": [f"removed {fill}"],
            "stall": ["restored interval mining (1 s blocks)"],
        }[kind]
        for words in expected:
            assert any(words in line and line.startswith(f"{kind} on node-0") for line in undone)
        assert replay_open_records() == [], "replay must be idempotent"
        assert not any(_group(pid) or _allocator_alive(pid) for pid in helpers)
        assert not cgroup.exists() and not fill.exists()
        if kind == "memory":
            assert memory_cgroup_of(info["pid"]) == own_cgroup
        if kind == "stall":
            head = _head(info["url"])
            deadline = time.monotonic() + 3
            while _head(info["url"]) <= head:
                assert time.monotonic() < deadline, "mining was not restored"
                time.sleep(0.05)
    finally:
        replay_open_records()
        assert any("victim" in line for line in reap_stale_stacks())
