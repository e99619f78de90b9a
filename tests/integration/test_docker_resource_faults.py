"""cpu, memory and disk faults on the docker backend against a real daemon: the load runs
inside the container's own cgroups and limits, the fill in its own /data, each is in effect
while it holds and gone after, also when the harness holding it is SIGKILLed.

Skipped, with the fix in the reason, where no daemon answers (`scripts/dockerd.sh start`),
without root, or without stress-ng.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.engine import LABEL_RUN
from harness.errors import ConfigError
from harness.faults import cgroups as cg
from harness.faults import replay_open_records
from harness.faults.resources import MIB, CpuStress, DiskFill, MemoryPressure
from harness.jsonrpc import RpcClient, RpcFailure
from harness.stack.docker.stack import DockerStack
from harness.stack.model import ComponentState, StackSpec
from tests.conftest import VENV_BIN

HARNESS = [str(VENV_BIN / "harness")]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="joining a container's cgroups needs root"),
    pytest.mark.skipif(not cg.available()[0], reason=cg.available()[1]),
    pytest.mark.skipif(not CpuStress.available()[0], reason="stress-ng is not installed"),
]


def _spec(name: str, **kw: Any) -> StackSpec:
    return StackSpec(
        name=name, backend="docker", nodes=1, chain="independent", block_time_s=0.5, **kw
    )


def _node(stack: DockerStack) -> ComponentState:
    node = stack.state().component("node-0")
    assert node.pid is not None
    return node


def _helpers_in(groups: dict[str, Path], word: str) -> list[int]:
    """Processes in the container's memory cgroup whose command line mentions ``word``."""
    found = []
    for pid in (groups["memory"] / "cgroup.procs").read_text().split():
        try:
            if any(word in part for part in psutil.Process(int(pid)).cmdline()):
                found.append(int(pid))
        except psutil.Error:
            continue
    return found


def _used_pct(path: Path) -> float:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return 100 * used / (used + st.f_bavail * st.f_frsize)


def _answers(url: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    with RpcClient(url, timeout_s=1.0) as client:
        while time.monotonic() < deadline:
            try:
                client.block_number()
                return True
            except RpcFailure:
                time.sleep(0.1)
    return False


# -- limits ------------------------------------------------------------------------------


def test_node_containers_run_with_the_limits_and_sized_data_asked_and_status_shows_them(
    docker: Any,
) -> None:
    spec = _spec("dk-lim", container_memory_mb=256, container_cpus=0.5, data_dir_size_mb=64)
    with DockerStack(spec) as stack:
        node = _node(stack)
        host = docker.api.inspect_container(node.container)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
            256 * MIB, 256 * MIB, 500_000_000,
        )  # fmt: skip
        groups = cg.cgroups_of(node.pid)  # type: ignore[arg-type]
        assert cg.memory_limit_bytes(groups) == 256 * MIB
        assert int((groups["cpu"] / "cpu.cfs_quota_us").read_text()) == 50_000  # of 100 ms
        data = Path(f"/proc/{node.pid}/root/data")
        st = os.statvfs(data)
        assert st.f_blocks * st.f_frsize == 64 * MIB
        volume = next(
            v for v in docker.volumes.list(filters={"label": f"{LABEL_RUN}={stack.run_id}"})
        )
        assert volume.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
        status = subprocess.run(
            [*HARNESS, "stack", "status", "--json", "--name", "dk-lim"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        doc = {c["name"]: c for c in json.loads(status.stdout)["components"]}
        assert (doc["node-0"]["memory_limit_mb"], doc["node-0"]["cpus"]) == (256, 0.5)
        assert doc["node-0"]["data_dir_size_mb"] == 64
        assert doc["haproxy"]["memory_limit_mb"] is None
        run_id = stack.run_id
    assert docker.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"}) == []


def test_container_limits_that_do_not_parse_are_one_line_and_exit_2_with_nothing_started(
    docker: Any,
) -> None:
    before = {c.id for c in docker.containers.list(all=True)}
    for flag, value in (("--container-memory-mb", "lots"), ("--container-cpus", "99")):
        proc = subprocess.run(
            [*HARNESS, "stack", "up", "--backend", "docker", "--name", "dk-bad", flag, value],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert flag.lstrip("-").replace("-", "_") in proc.stderr or flag in proc.stderr
    assert {c.id for c in docker.containers.list(all=True)} == before


# -- cpu ---------------------------------------------------------------------------------


@pytest.mark.chaos
def test_cpu_stress_in_a_container_is_charged_to_it_and_held_to_its_cpu_quota(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-cpu", container_cpus=0.5)) as stack:
        node = _node(stack)
        groups = cg.cgroups_of(node.pid)  # type: ignore[arg-type]
        with CpuStress(stack, "primary", cores=2, max_s=30) as fault:
            (pgid,) = fault.helper_pids
            assert cg.in_cgroups(pgid, groups)
            before, started = cg.cpu_usage_ns(groups), time.monotonic_ns()
            time.sleep(1.0)
            rate = (cg.cpu_usage_ns(groups) - before) / (time.monotonic_ns() - started)
            # Two workers at 100% would take two CPUs; the container's quota is half of one.
            assert 0.3 < rate < 0.65, rate
        assert _helpers_in(groups, "stress-ng") == []
        before, started = cg.cpu_usage_ns(groups), time.monotonic_ns()
        time.sleep(0.5)
        assert (cg.cpu_usage_ns(groups) - before) / (time.monotonic_ns() - started) < 0.1
    assert fault.record is not None
    assert fault.record.mechanism == "stress-ng --cpu in the container's cgroups"
    assert 0 < fault.record.apply_us < 3_000_000


# -- memory ------------------------------------------------------------------------------


@pytest.mark.chaos
def test_memory_pressure_in_a_container_is_charged_to_it_and_freed_after(docker: Any) -> None:
    with DockerStack(_spec("dk-mem", container_memory_mb=256)) as stack:
        node = _node(stack)
        groups = cg.cgroups_of(node.pid)  # type: ignore[arg-type]
        before = cg.memory_usage_bytes(groups)
        host_before = psutil.virtual_memory().used
        with MemoryPressure(stack, "primary", mb=128, headroom_mb=64, max_s=30) as fault:
            (allocator,) = fault.helper_pids
            assert cg.in_cgroups(allocator, groups)
            assert cg.memory_usage_bytes(groups) >= before + 120 * MIB
            assert Path(f"/proc/{allocator}/oom_score_adj").read_text().strip() == "0"
            assert Path(f"/proc/{node.pid}/oom_score_adj").read_text().strip() == "1000"
            assert _answers(node.url, 2.0)  # squeezed, not dead
            assert psutil.virtual_memory().used - host_before < 256 * MIB
        assert not psutil.pid_exists(allocator) or psutil.Process(allocator).status() == "zombie"
        assert cg.memory_usage_bytes(groups) < before + 16 * MIB
        assert _helpers_in(groups, "harness memory allocator") == []
    assert fault.record is not None
    assert fault.record.mechanism == "allocator in the container's memory cgroup"


@pytest.mark.chaos
def test_memory_on_a_container_with_no_limit_takes_host_memory_in_its_cgroup_and_dies_first(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-nolim")) as stack:
        groups = cg.cgroups_of(_node(stack).pid)  # type: ignore[arg-type]
        assert cg.memory_limit_bytes(groups) is None
        with MemoryPressure(stack, "primary", mb=64, max_s=30) as fault:
            (allocator,) = fault.helper_pids
            assert cg.in_cgroups(allocator, groups)
            assert Path(f"/proc/{allocator}/oom_score_adj").read_text().strip() == "1000"
        assert _helpers_in(groups, "harness memory allocator") == []
    assert fault.mechanism == "allocator in the container's memory cgroup (no limit: host memory)"


@pytest.mark.chaos
def test_a_node_needing_more_than_its_headroom_is_oom_killed_not_the_allocator_and_restarts(
    docker: Any,
) -> None:
    with DockerStack(_spec("dk-oom", container_memory_mb=128)) as stack:
        node = _node(stack)
        groups = cg.cgroups_of(node.pid)  # type: ignore[arg-type]
        with MemoryPressure(stack, "primary", mb=112, headroom_mb=16, max_s=30) as fault:
            (allocator,) = fault.helper_pids
            # Idle, anvil fits in 16 MiB (its code pages are reclaimed and read again);
            # mining 5000 blocks at once needs more.
            with RpcClient(node.url, timeout_s=10) as client, pytest.raises(RpcFailure):
                client.call("anvil_mine", [hex(5000)])
            deadline = time.monotonic() + 10
            while not any(e.kind == "exited" for e in stack.events if e.component == "node-0"):
                assert time.monotonic() < deadline, "the node was not OOM-killed"
                time.sleep(0.05)
            assert psutil.Process(allocator).is_running() and cg.in_cgroups(allocator, groups)
            assert cg.memory_usage_bytes(groups) <= 128 * MIB
        died = next(e for e in stack.events if e.component == "node-0" and e.kind == "exited")
        assert died.returncode == 137 and "OOM-killed" in died.detail
        assert _answers(stack.state().component("node-0").url, 30.0), "not back after undo"
        assert stack.state().component("node-0").restarts >= 1


@pytest.mark.chaos
def test_memory_past_the_container_limit_is_refused_and_applies_nothing(docker: Any) -> None:
    with DockerStack(_spec("dk-room", container_memory_mb=128)) as stack:
        groups = cg.cgroups_of(_node(stack).pid)  # type: ignore[arg-type]
        with pytest.raises(ConfigError) as error, MemoryPressure(stack, "primary", mb=100):
            pass
        assert error.value.field == "mb" and "at most 64 MiB" in error.value.fix
        assert _helpers_in(groups, "harness memory allocator") == []


# -- disk --------------------------------------------------------------------------------


@pytest.mark.chaos
def test_disk_fill_fills_the_containers_own_data_and_is_removed_after(docker: Any) -> None:
    with DockerStack(_spec("dk-disk", data_dir_size_mb=64)) as stack:
        data = Path(f"/proc/{_node(stack).pid}/root/data")
        before = _used_pct(data)
        with DiskFill(stack, "primary", percent=100) as fault:
            assert _used_pct(data) > 99
            with pytest.raises(OSError) as error:
                (data / "probe").write_bytes(b"x" * 65536)
            assert error.value.errno == errno.ENOSPC
            (data / "probe").unlink(missing_ok=True)
            assert fault.record is not None
            assert (data / f"harness-fill-{fault.record.id}").exists()
        assert not list(data.glob("harness-fill-*"))
        assert _used_pct(data) <= before + 1


# -- the harness is SIGKILLed while a fault holds -----------------------------------------


@pytest.mark.chaos
@pytest.mark.parametrize(
    ("kind", "params", "word", "undone"),
    [
        ("cpu", ["max_s=60"], "stress-ng", "stopped stress-ng"),
        ("memory", ["mb=64", "max_s=60"], "harness memory allocator", "stopped memory allocator"),
        ("disk", ["percent=50"], "", "removed /proc/"),
    ],
)
def test_a_resource_fault_in_a_container_is_undone_after_the_harness_is_killed(
    docker: Any, kind: str, params: list[str], word: str, undone: str
) -> None:
    spec = _spec(f"dk-k{kind}", container_memory_mb=256, data_dir_size_mb=64)
    with DockerStack(spec) as stack:
        node = _node(stack)
        groups = cg.cgroups_of(node.pid)  # type: ignore[arg-type]
        data = Path(f"/proc/{node.pid}/root/data")
        pairs = [arg for p in params for arg in ("-p", p)]
        holder = subprocess.Popen(
            [*HARNESS, "fault", kind, "primary", *pairs, "--for", "60s", "--name", spec.name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        assert "in effect" in holder.stdout.readline()
        held = _helpers_in(groups, word) if word else list(data.glob("harness-fill-*"))
        assert held, f"the {kind} fault is not in the container"
        holder.kill()
        holder.wait(10)

        lines = replay_open_records()

        assert any(undone in line and line.startswith(f"{kind} on node-0") for line in lines)
        assert replay_open_records() == [], "replay must be idempotent"
        if word:
            assert _helpers_in(groups, word) == []
        else:
            assert not list(data.glob("harness-fill-*"))
