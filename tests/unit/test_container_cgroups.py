"""Where a docker node's load is accounted (its container's cgroups), and what the cpu,
memory and disk faults refuse on a docker stack before it starts: pure, no daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.faults import make_fault
from harness.faults.cgroups import (
    JOIN,
    joined_argv,
    parse_mounts,
    parse_proc_cgroup,
    procs_files,
)
from harness.stack.docker.stack import PlannedDockerStack
from harness.stack.model import StackSpec

MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
CID = "0f" * 32


def test_each_v1_controller_is_found_at_its_own_mount_point() -> None:
    assert parse_mounts(MOUNTS) == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "cpuacct": Path("/sys/fs/cgroup/cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
    }


def test_co_mounted_controllers_share_one_hierarchy_and_one_procs_file() -> None:
    mounts = parse_mounts("cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n")
    assert mounts == {"cpu": Path("/sys/fs/cgroup/cpu,cpuacct")} | {
        "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct")
    }
    groups = {c: p / "docker" / CID for c, p in mounts.items()}
    groups["memory"] = Path("/sys/fs/cgroup/memory/docker") / CID
    assert procs_files(groups) == [
        f"/sys/fs/cgroup/cpu,cpuacct/docker/{CID}/cgroup.procs",
        f"/sys/fs/cgroup/memory/docker/{CID}/cgroup.procs",
    ]


def test_a_containers_cgroups_are_read_from_its_workloads_proc_cgroup() -> None:
    text = (
        f"12:pids:/docker/{CID}\n5:memory:/docker/{CID}\n4:cpuacct:/docker/{CID}\n"
        f"3:cpu:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/docker/{CID}\n"
    )
    assert parse_proc_cgroup(text) == {c: f"/docker/{CID}" for c in ("memory", "cpuacct", "cpu")}


def test_a_cgroup_v2_host_names_no_v1_controller() -> None:
    assert parse_proc_cgroup("0::/system.slice/docker-abc.scope\n") == {}
    assert parse_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n") == {}


def test_the_launcher_joins_every_cgroup_then_becomes_the_helper_with_its_pid(
    tmp_path: Path,
) -> None:
    procs = {c: tmp_path / c for c in ("cpu", "memory")}
    for path in procs.values():
        path.mkdir()
    argv = joined_argv([sys.executable, "-c", "import os; print(os.getpid())"], procs)
    assert argv[:5] == [sys.executable, "-I", "-S", "-c", JOIN]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    pid = proc.stdout.strip()
    assert [(p / "cgroup.procs").read_text() for p in procs.values()] == [pid, pid]


def _docker(**spec: object) -> PlannedDockerStack:
    return PlannedDockerStack(StackSpec(name="plan", backend="docker", **spec))  # type: ignore[arg-type]


def test_memory_bigger_than_the_container_limit_less_headroom_is_refused_naming_the_most() -> None:
    stack = _docker(container_memory_mb=256)
    with pytest.raises(ConfigError) as caught:
        make_fault("memory", stack, "primary", mb=200, headroom_mb=64).preflight(stack.state())
    assert caught.value.field == "mb"
    assert "limited to 256 MiB" in caught.value.fix and "at most 192 MiB" in caught.value.fix
    assert "--container-memory-mb" in caught.value.fix


def test_memory_in_a_cgroup_on_a_container_with_no_limit_is_refused_naming_the_flag() -> None:
    stack = _docker()
    with pytest.raises(ConfigError) as caught:
        make_fault("memory", stack, "primary", mb=64, scope="cgroup").preflight(stack.state())
    assert caught.value.field == "scope"
    assert "--container-memory-mb" in caught.value.fix


def test_disk_fill_on_a_docker_node_without_a_sized_data_dir_is_refused_naming_the_flag() -> None:
    stack = _docker()
    with pytest.raises(ConfigError) as caught:
        make_fault("disk", stack, "primary", percent=50).preflight(stack.state())
    assert caught.value.field == "data_dir_size_mb"
    assert "--data-dir-size-mb" in caught.value.fix
