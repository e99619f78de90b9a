"""Starting one of the harness's own helper processes (``python -m harness.<tool>``):
the environment in which ``-m`` finds this harness, and its ready line. Standard library
only, so a helper that imports this starts as fast as before."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import HarnessError


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


def call_control_api(
    url: str,
    method: str,
    path: str,
    payload: Any,
    timeout_s: float,
    *,
    error: type[HarnessError],
    name: str,
    hint: str = "",
) -> tuple[int, Any]:
    """One request to a helper's JSON control API at ``url``: (HTTP status, decoded body;
    {} when empty). ``error`` (saying ``name`` and ``hint``) when it does not answer or
    answers something that is not JSON."""
    parts = urlsplit(url)
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        raw = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise error(f"{name} {url} did not answer {method} {path}: {exc}{hint}") from exc
    finally:
        conn.close()
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        raise error(f"{name} {url} answered {status} with non-JSON {raw[:80]!r}") from None
