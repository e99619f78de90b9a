"""Shared test setup: every test runs with its own harness state dir, so tests never see
(or reap) each other's stacks, nor a developer's running stack."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def isolated_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("harness-state")
    old = os.environ.get("HARNESS_STATE_DIR")
    os.environ["HARNESS_STATE_DIR"] = str(state)
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
    try:
        yield state
    finally:
        # A harness process the test started and that was SIGKILLed (pytest itself being
        # interrupted kills its subprocesses so) leaves its stack in this directory, where
        # no later entry point would look: reap it now, as `harness cleanup` would.
        from harness.cleanup import cleanup_leftovers

        cleanup_leftovers()
    if old is None:
        os.environ.pop("HARNESS_STATE_DIR", None)
    else:
        os.environ["HARNESS_STATE_DIR"] = old


def processes_under(directory: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions ``directory`` (a stack's own files)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(directory) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found
