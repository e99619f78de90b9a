"""Every module imports on its own, first, in a fresh interpreter.

A cycle between packages (harness.stack imports harness.proxy, which must not import
harness.stack at the top) shows only when the cycle's other end is imported first, as a
benchmark or a user's script may do; the test suite's own import order hides it.
"""

from __future__ import annotations

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


def import_alone(module: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    return module, result.stderr.strip().splitlines()[-1] if result.returncode else ""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {m: err for m, err in pool.map(import_alone, modules()) if err}
    assert not failures, failures
    assert len(modules()) > 40  # the walk found the package


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
