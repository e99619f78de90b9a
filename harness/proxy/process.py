"""`ProxyProcess`: one fault proxy process, started and stopped as a context manager.

The stack uses it to put a proxy in front of its nodes; tests use it directly. It starts
``python -m harness.proxy`` with an argument list, waits for the ready line, and on exit
sends SIGTERM (SIGKILL after a timeout) and reaps the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError
from harness.helper_process import harness_env, read_ready_line
from harness.proxy.client import ProxyControl

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def proxy_command(
    routes: Sequence[tuple[int, str, int]],
    *,
    control_port: int,
    listen_host: str = "127.0.0.1",
    log_level: str = "WARNING",
    python: str = sys.executable,
) -> list[str]:
    """The argument list of a fault proxy: ``routes`` are (listen port, upstream host,
    upstream port), listening on ``listen_host``; the control API on 127.0.0.1."""
    argv = [python, "-m", "harness.proxy", "--control", f"127.0.0.1:{control_port}"]
    if listen_host != "127.0.0.1":
        argv += ["--listen", listen_host]
    for listen, host, port in routes:
        argv += ["--route", f"{listen}={host}:{port}"]
    return [*argv, "--log-level", log_level]


def wait_healthy(control_port: int, deadline: float, gone: Callable[[], bool]) -> bool:
    """Whether the proxy whose control API is on ``control_port`` answered ``/health``
    before ``deadline`` (monotonic); False at once when ``gone()`` says it exited."""
    url = f"http://127.0.0.1:{control_port}/health"
    while time.monotonic() < deadline and not gone():
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.01)
    return False


class ProxyProcess:
    """``routes`` are (listen port, upstream host, upstream port); ``control_port`` 0 lets
    the system pick one (the ready line says which)."""

    def __init__(
        self,
        routes: Sequence[tuple[int, str, int]],
        *,
        control_port: int = 0,
        log_path: Path | None = None,
        log_level: str = "WARNING",
        python: str = sys.executable,
    ) -> None:
        self.routes = list(routes)
        self.control_port = control_port
        self.log_path = log_path
        self.log_level = log_level
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: IO[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        return proxy_command(
            self.routes,
            control_port=self.control_port,
            log_level=self.log_level,
            python=self.python,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def control(self) -> ProxyControl:
        if not self.url:
            raise HarnessError("the fault proxy is not running")
        return ProxyControl(self.url)

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Start and wait for the ready line; the control URL. HarnessError with the
        proxy's stderr when it exits or stays silent."""
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=harness_env(),
        )
        assert self.process is not None
        line = read_ready_line(self.process, timeout_s)
        try:
            ready: Any = json.loads(line)
            self.url = str(ready["control"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise HarnessError(
                f"fault proxy {self.argv} did not get ready within {timeout_s:g}s: "
                f"stdout {line!r}; stderr: {self._stderr()}"
            ) from None
        return self.url

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace").strip()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        process = self.process
        code = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout_s)
            code = process.returncode
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.url = ""
        return code

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
