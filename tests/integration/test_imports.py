"""Every module imports on its own, first, in a fresh interpreter.

A cycle between packages (harness.stack imports harness.proxy, which must not import
harness.stack at the top) shows only when the cycle's other end is imported first, as a
benchmark or a user's script may do; the test suite's own import order hides it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness

ROOT = Path(harness.__file__).parent


def modules() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__main__" or parts[-1] == "locustfile":  # run, not imported
            continue
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


#: A fork server: it imports the third-party packages once (their import is most of the
#: cost), then forks a child per module, which imports that module first among harness's.
#: A cycle between harness packages shows exactly as in a fresh interpreter; what the
#: third-party packages do on import is the same in every child.
FORK_SERVER = r"""
import importlib, json, os, sys
for name in sys.argv[1:]:  # in the order the probe loaded them
    try:
        importlib.import_module(name)
    except Exception:  # a private alias module such as six.moves.*: its package has it
        pass
running = {}  # pid -> (module, the pipe its error comes back on)

def reap_one():
    pid, status = os.wait()
    module, read = running.pop(pid)
    with os.fdopen(read, "rb") as answer:
        error = answer.read().decode()
    if status and not error:
        error = f"the child died: wait status {status}"
    print(json.dumps({"module": module, "error": error}), flush=True)

for module in sys.stdin.read().split():
    if len(running) >= (os.cpu_count() or 1):
        reap_one()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            error = ""
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
        os.write(write, error.encode()[:4096])  # within a pipe's buffer: never blocks
        os._exit(0)
    os.close(write)
    running[pid] = (module, read)
while running:
    reap_one()
"""


def third_party_imports(modules: list[str], env: dict[str, str]) -> list[str]:
    """The non-standard modules harness's modules load, all of them imported at once."""
    probe = (
        "import contextlib, importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    with contextlib.suppress(Exception): importlib.import_module(m)\n"
        "print('\\n'.join(n for n in list(sys.modules) if not n.startswith('harness')\n"
        "      and n.split('.')[0] not in sys.stdlib_module_names))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
        env=env,
    )  # fmt: skip
    return result.stdout.split()


def imports_alone(modules: list[str], path: Path | None = None) -> dict[str, str]:
    """Each module imported first, alone, after only the third-party packages (``path``
    added to the import path): {module: the error} for those that fail."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    server = subprocess.run(
        [sys.executable, "-c", FORK_SERVER, *third_party_imports(modules, env)],
        input="\n".join(modules) + "\n", capture_output=True, text=True, timeout=300,
        check=False, env=env,
    )  # fmt: skip
    assert server.returncode == 0, server.stderr[-2000:]
    answers = [json.loads(line) for line in server.stdout.splitlines()]
    assert sorted(a["module"] for a in answers) == sorted(modules), server.stderr[-2000:]
    return {a["module"]: a["error"] for a in answers if a["error"]}


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    failures = imports_alone(modules())
    assert not failures, failures
    assert len(modules()) > 40  # the walk found the package


def test_the_import_check_sees_a_cycle_between_packages(tmp_path: Path) -> None:
    """The check can fail: two packages importing each other at the top, the second one's
    name used at import time, fail when one of them is imported first."""
    for name, other in (("cyc_a", "cyc_b"), ("cyc_b", "cyc_a")):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"from {other} import VALUE as OTHER\nVALUE = 1\n")
    failures = imports_alone(["cyc_a", "cyc_b"], tmp_path)
    assert set(failures) == {"cyc_a", "cyc_b"}
    assert "ImportError" in failures["cyc_a"]


BENCH = ROOT.parent / "bench"
HELPERS = {"bare_locust.py", "bare_locustfile.py", "fault_kinds.py", "wire.py"}  # imported


def bench_help(script: Path) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True, text=True, timeout=120, cwd=BENCH,
    )  # fmt: skip
    return script.name, result.stderr.strip()[-300:] if result.returncode else ""


def test_every_benchmark_starts_and_explains_itself() -> None:
    """Benchmarks run by hand, not in CI; an import they broke would go unseen."""
    scripts = [p for p in sorted(BENCH.glob("*.py")) if p.name not in HELPERS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {name: err for name, err in pool.map(bench_help, scripts) if err}
    assert not failures, failures
    assert len(scripts) >= 8


def loaded_by(module: str) -> set[str]:
    probe = f"import sys, {module}; print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_reports_and_compare_read_documents_without_loading_the_engine() -> None:
    # `harness compare` in CI, `harness report` on a laptop: no stack, load or fault code.
    for module in ("harness.report.compare", "harness.report.html", "harness.report.history"):
        engine = {
            m for m in loaded_by(module)
            if m.startswith(("harness.experiment", "harness.faults", "harness.load",
                             "harness.stack.local", "harness.proxy", "locust"))
        }  # fmt: skip
        assert not engine, (module, sorted(engine))
