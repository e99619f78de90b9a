"""Starting one of the harness's own helper processes (``python -m harness.<tool>``):
the environment in which ``-m`` finds this harness, and its ready line. Standard library
only, so a helper that imports this starts as fast as before."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path


def harness_env() -> dict[str, str]:
    """This environment, with this harness first on PYTHONPATH."""
    root = str(Path(__file__).resolve().parents[1])
    path = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def read_ready_line(process: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    """The first line ``process`` writes to its stdout (a pipe), without its newline; what
    it wrote so far if it exits, closes stdout or stays silent for ``timeout_s``."""
    assert process.stdout is not None
    stdout = process.stdout
    deadline = time.monotonic() + timeout_s
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0]
