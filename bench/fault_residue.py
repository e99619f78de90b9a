"""Fault residue: what is left on the host after a harness is SIGKILLed in the middle of a
fault and ``harness cleanup`` has run. The target is nothing at all.

Each run picks (seeded) an available fault kind and a target among primary and backup,
starts a child process with a state dir of its own that stands a small stack up and
enters the fault, waits for it to say the fault is in effect, waits a random 0-300 ms,
SIGKILLs it, and runs the real CLI, ``harness cleanup``, with the same state dir. Then it
looks for leftovers: stopped processes, the stack's processes (anvil, HAProxy) or a fault's
(stress-ng, the memory allocator), netem/tbf/htb qdiscs on any interface of the host or of
any namespace, ``hx-`` namespaces, ``harness_*`` nft tables, ``harness-fill-*`` files,
cgroups under ``/sys/fs/cgroup/memory/harness``, ``harness-data`` tmpfs mounts, and the
run's own stack dirs and ledger files. Only what appeared since just before the run counts
(others may share this host); what was there at the start is listed, not counted.

    .venv/bin/python bench/fault_residue.py [--runs 50] [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from fault_kinds import IS_ROOT, why_not_runnable

from harness.faults import FAULTS
from harness.stack import HealthCheck, RestartPolicy, StackSpec
from harness.stack.isolation import NodeNetwork

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

HARNESS_CLI = str(Path(sys.executable).parent / "harness")
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
MAX_KILL_DELAY_S = 0.3
QDISC_KINDS = ("netem", "tbf", "htb")
# Command-line words of a fault's helper processes that must not outlive a cleanup.
HELPER_MARKERS = ("stress-ng", "harness memory allocator")
FILL_PREFIX = "harness-fill-"
CGROUP_ROOT = Path("/sys/fs/cgroup/memory/harness")
NETNS_PREFIX = "hx-"

# The child: a stack, one fault entered, a line on stdout, then it holds until SIGKILLed.
CHILD = """
import json, sys, time
from harness.faults import make_fault
from harness.stack import LocalStack, StackSpec

spec = StackSpec.from_dict(json.loads(sys.argv[1]))
kind, target, seed, params = sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
with LocalStack(spec) as stack, make_fault(kind, stack, target, seed=seed, **params) as fault:
    print("in effect", fault.record.id, flush=True)
    time.sleep(3600)
"""


# Parameter sets drawn from per kind (default: the kind's defaults), so that every kind of
# leftover in the list above can occur: only a cgroup-scoped memory fault makes a cgroup.
VARIANTS: dict[str, list[dict[str, Any]]] = {"memory": [{}, {"scope": "cgroup"}]}


def why_skipped(kind: str) -> str | None:
    """Why ``kind`` cannot run in this benchmark's stacks, or None if it can."""
    reason = why_not_runnable(kind)
    if reason:
        return reason
    if not {"primary", "backup"} & set(FAULTS[kind].roles):
        return f"targets only {', '.join(FAULTS[kind].roles)}"
    return None


# -- looking for leftovers ---------------------------------------------------------------


def _run(argv: list[str]) -> str:
    """stdout of ``argv`` ("" if it fails: a namespace may vanish while we look)."""
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def mentions(text: str, name: str) -> bool:
    """Whether ``name`` is in ``text`` as a whole name (``run-1`` is not in ``run-10/x``)."""
    return re.search(re.escape(name) + r"(?![\w.-])", text) is not None


def namespaces() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line]


def _processes(state_dir: Path) -> set[tuple[str, str]]:
    """Stopped processes, the run's processes and fault helpers (stress-ng, the allocator).

    A process is the run's if the run's state dir is in its command line or environment,
    or in an ancestor's (stress-ng's workers rewrite both, but their parent is the run's).
    """
    seen: dict[int, tuple[int, str, str, bool]] = {}  # pid: (ppid, status, label, direct)
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            with proc.oneshot():
                ppid, status, name = proc.ppid(), str(proc.status()), proc.name()
                cmdline = " ".join(" ".join(proc.cmdline()).split())
            try:
                direct = proc.environ().get("HARNESS_STATE_DIR") == str(state_dir)
            except psutil.AccessDenied:
                direct = False
        except psutil.Error:
            continue  # gone while we looked
        direct = direct or mentions(cmdline, str(state_dir))
        seen[proc.pid] = (ppid, status, f"pid {proc.pid} {name}: {cmdline[:120]}", direct)

    def ours(pid: int) -> bool:
        for _ in range(64):  # up the ancestry; a cycle or a deep tree ends the walk
            if pid not in seen:
                return False
            ppid, _, _, direct = seen[pid]
            if direct:
                return True
            pid = ppid
        return False

    found = set()
    for pid, (_, status, what, _) in seen.items():
        of_run = ours(pid)
        label = f"{what} [HARNESS_STATE_DIR={state_dir}]" if of_run else what
        if of_run:
            found.add(("process of the run", label))
        elif any(marker in label for marker in HELPER_MARKERS):
            found.add(("fault helper process", label))
        if status == psutil.STATUS_STOPPED:
            found.add(("stopped process", label))
    return found


def _qdiscs(netns: list[str]) -> set[tuple[str, str]]:
    found = set()
    pattern = re.compile(r"^qdisc (\S+) (\S+) dev (\S+)")
    listings = [
        ("host", _run(["tc", "qdisc", "show", "dev", dev]))
        for dev in sorted(os.listdir("/sys/class/net"))
    ]
    listings += [(ns, _run(["ip", "netns", "exec", ns, "tc", "qdisc", "show"])) for ns in netns]
    for where, listing in listings:
        for line in listing.splitlines():
            match = pattern.match(line)
            if match and match[1] in QDISC_KINDS:
                found.add(("qdisc", f"{match[1]} {match[2]} on {match[3]} in {where}"))
    return found


def _nft_tables(netns: list[str]) -> set[tuple[str, str]]:
    found = set()
    listings = [("host", _run(["nft", "list", "tables"]))]
    listings += [(ns, _run(["ip", "netns", "exec", ns, "nft", "list", "tables"])) for ns in netns]
    for where, listing in listings:
        for line in listing.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and words[2].startswith("harness_"):
                found.add(("nft table", f"{words[1]} {words[2]} in {where}"))
    return found


def _fill_files(state_dir: Path) -> set[tuple[str, str]]:
    found = set()
    for directory, _, files in os.walk(state_dir):
        fills = [f for f in files if f.startswith(FILL_PREFIX)]
        found |= {("fill file", os.path.join(directory, f)) for f in fills}
    for directory in (tempfile.gettempdir(), "/var/tmp", "/dev/shm"):
        with contextlib.suppress(OSError):
            found |= {
                ("fill file", os.path.join(directory, f))
                for f in os.listdir(directory)
                if f.startswith(FILL_PREFIX)
            }
    return found


def _cgroups() -> set[tuple[str, str]]:
    if not CGROUP_ROOT.is_dir():
        return set()
    return {("cgroup", str(p)) for p in CGROUP_ROOT.rglob("*") if p.is_dir()}


def _mounts() -> set[tuple[str, str]]:
    found = set()
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            source, point, fstype = line.split()[:3]
            if fstype == "tmpfs" and source == "harness-data":
                found.add(("tmpfs mount", point.replace("\\040", " ")))
    return found


def _state_left(state_dir: Path) -> set[tuple[str, str]]:
    found = set()
    stacks = state_dir / "stacks"
    if stacks.is_dir():
        found |= {("stack dir", str(p)) for p in stacks.iterdir()}
    ledger = state_dir / "ledger"
    if ledger.is_dir():
        found |= {("ledger file", str(p)) for p in ledger.glob("*.jsonl")}
    return found


def leftovers(state_dir: Path) -> set[tuple[str, str]]:
    """Everything a fault or a stack could leave on this host, as (category, detail)."""
    netns = namespaces()
    found = {("netns", ns) for ns in netns if ns.startswith(NETNS_PREFIX)}
    found |= _processes(state_dir)
    found |= _qdiscs(netns)
    found |= _nft_tables(netns)
    found |= _fill_files(state_dir)
    found |= _cgroups()
    found |= _mounts()
    found |= _state_left(state_dir)
    return found


# -- one run -----------------------------------------------------------------------------


@dataclass
class Run:
    index: int
    kind: str
    target: str
    kill_delay_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    fault_id: str = ""
    error: str | None = None
    residue: set[tuple[str, str]] = field(default_factory=set)
    foreign: set[tuple[str, str]] = field(default_factory=set)
    cleanup_output: str = ""

    @property
    def label(self) -> str:
        """The kind, with any parameters that are not its defaults (scope=cgroup)."""
        return " ".join([self.kind, *(f"{k}={v}" for k, v in sorted(self.params.items()))])


def wait_for_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout_s: float) -> str | None:
    """The first line ``proc`` prints that starts with ``prefix``; None if it exits or
    ``timeout_s`` passes first."""
    assert proc.stdout is not None
    buffer = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None  # stdout closed: the child exited
            buffer += chunk
            for line in buffer.splitlines(keepends=True):
                if line.startswith(prefix) and line.endswith(b"\n"):
                    return line.decode().strip()
    return None


def spec_for(run: Run) -> StackSpec:
    return StackSpec(
        name=f"res-{os.getpid()}-{run.index}",
        nodes=2,
        # "stall" restores anvil's interval mining in whole seconds only.
        block_time_s=1.0 if run.kind == "stall" else 0.5,
        health_check=HealthCheck(inter_ms=200, fall=2, rise=1),
        restart=RestartPolicy(delay_s=0.05),
        ready_timeout_s=20.0,
        isolation="netns" if IS_ROOT else "loopback",
        data_dir_size_mb=256 if IS_ROOT else None,
    )


def run_once(run: Run, state_dir: Path, seed: int, cleanup: bool = True) -> None:
    """Start the child, SIGKILL it while its fault is in effect, clean up, look for residue."""
    env = {**os.environ, "HARNESS_STATE_DIR": str(state_dir)}
    before = leftovers(state_dir)
    spec = json.dumps(spec_for(run).to_dict())
    params = json.dumps(run.params)
    argv = [sys.executable, "-c", CHILD, spec, run.kind, run.target, str(seed), params]
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            line = wait_for_line(child, b"in effect", START_TIMEOUT_S)
            if line is not None:
                run.fault_id = line.split()[-1]
                time.sleep(run.kill_delay_s)
            else:
                child.kill()
                child.wait()
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace").strip().splitlines()[-15:]
                run.error = "\n".join(tail) or f"exit status {child.returncode}, no stderr"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
    if cleanup:
        done = subprocess.run(
            [HARNESS_CLI, "cleanup"],
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        run.cleanup_output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            run.residue.add(("cleanup failed", f"exit {done.returncode}: {run.cleanup_output}"))
    for item in leftovers(state_dir) - before:
        (run.residue if is_ours(item, run, state_dir) else run.foreign).add(item)


def is_ours(item: tuple[str, str], run: Run, state_dir: Path) -> bool:
    """Whether a leftover names this run: its state dir, its namespaces or host veth ends,
    or its fault's id (fill file, nft table, cgroup). Others share this host: what they
    leave meanwhile is listed, not counted."""
    spec = spec_for(run)
    names = [str(state_dir)]
    for index in range(spec.nodes):
        network = NodeNetwork.plan(spec.name, index)
        names += [network.netns, network.host_ifname]
    if run.fault_id:
        names += [run.fault_id, run.fault_id.replace("-", "_")]
    return item[0] == "cleanup failed" or any(mentions(item[1], name) for name in names)


# -- the benchmark -----------------------------------------------------------------------


def report(runs: list[Run], skipped: dict[str, str]) -> int:
    labels = sorted({r.label for r in runs})
    print(f"  {'kind':<20} {'runs':>5} {'errors':>7} {'residue items':>14}")
    for label in labels:
        mine = [r for r in runs if r.label == label]
        errors = sum(1 for r in mine if r.error)
        items = sum(len(r.residue) for r in mine)
        print(f"  {label:<20} {len(mine):>5} {errors:>7} {items:>14}")
    for kind, reason in skipped.items():
        print(f"  skipped {kind}: {reason}")
    by_category = Counter(category for r in runs for category, _ in r.residue)
    if by_category:
        print("  residue by category: " + ", ".join(f"{c} {n}" for c, n in by_category.items()))
    for r in runs:
        for category, detail in sorted(r.residue):
            print(
                f"  run {r.index} ({r.label} on {r.target}, SIGKILL after "
                f"{1000 * r.kill_delay_s:.0f} ms): {category}: {detail}"
            )
        if r.residue and r.cleanup_output:
            print(f"    harness cleanup said: {r.cleanup_output.replace(chr(10), ' | ')}")
    for r in runs:
        for category, detail in sorted(r.foreign):
            print(f"  not counted (appeared in run {r.index}, not its own): {category}: {detail}")
    return sum(len(r.residue) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--no-cleanup",
        action="store_true",
        help="Skip `harness cleanup`: a check that the residue search finds leftovers.",
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    kinds, skipped = [], {}
    for kind in FAULTS:
        reason = why_skipped(kind)
        if reason is None:
            kinds.append(kind)
        else:
            skipped[kind] = reason
    root = Path(tempfile.mkdtemp(prefix="hx-residue-"))
    print(f"fault residue: {args.runs} runs, seed {seed}, kinds: {', '.join(kinds)}")
    print(f"  state dirs under {root}")
    present = leftovers(root)
    for category, detail in sorted(present):
        print(f"  already on the host before the first run (not counted): {category}: {detail}")
    started = time.monotonic()
    runs: list[Run] = []
    for index in range(args.runs):
        kind = rng.choice(kinds)
        roles = [r for r in ("primary", "backup") if r in FAULTS[kind].roles]
        run = Run(
            index,
            kind,
            rng.choice(roles),
            rng.uniform(0, MAX_KILL_DELAY_S),
            rng.choice(VARIANTS.get(kind, [{}])),
        )
        run_once(run, root / f"run-{index}", rng.randrange(1 << 16), not args.no_cleanup)
        runs.append(run)
        outcome = (
            "ERROR"
            if run.error
            else (f"{len(run.residue)} residue item(s)" if run.residue else "clean")
        )
        print(
            f"  run {index:>3}: {run.label:<19} {run.target:<8} SIGKILL after "
            f"{1000 * run.kill_delay_s:>3.0f} ms: {outcome}",
            flush=True,
        )
        if run.error:
            print("    the child failed to put its fault in effect; its stderr ends:")
            for line in run.error.splitlines():
                print(f"      {line}")
    elapsed = time.monotonic() - started
    errors = sum(1 for r in runs if r.error)
    print(f"fault residue, {args.runs} runs in {elapsed:.0f}s, seed {seed}:")
    total = report(runs, skipped)
    if total == 0:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"  state dirs kept for inspection under {root}")
    if errors:
        print(f"  {errors} run(s) failed to start their fault (errors, not residue)")
    how = "without cleanup" if args.no_cleanup else "+ harness cleanup"
    print(f"residue after {args.runs} SIGKILLed runs {how}: {total} items")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
