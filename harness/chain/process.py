"""The replicator as a process: its argument list, and `ReplicatorProcess`, one replicator
started and stopped as a context manager (for tests and benchmarks; the stack gives the
argument list to its supervisor instead).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from harness.chain.client import ReplicatorClient, ReplicatorError
from harness.chain.config import ReplicatorConfig, command_line
from harness.helper_process import harness_env, read_ready_line

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def replicator_command(config: ReplicatorConfig, python: str = sys.executable) -> list[str]:
    """``python -m harness.chain ...`` for ``config``."""
    return [python, "-m", "harness.chain", *command_line(config)]


class ReplicatorProcess:
    """Starts the replicator, waits for its ready line; on exit SIGTERM (SIGKILL after a
    timeout) and reaps it. Its stderr (the log) goes to ``stderr_path`` or a temp file."""

    def __init__(self, config: ReplicatorConfig, *, stderr_path: Path | None = None) -> None:
        self.config = config
        self.stderr_path = stderr_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._err: IO[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        return replicator_command(self.config)

    @property
    def client(self) -> ReplicatorClient:
        if not self.url:
            raise ReplicatorError("the chain replicator is not running")
        return ReplicatorClient(self.url)

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """The control URL once the replicator listens; `ReplicatorError` with its stderr
        when it exits or stays silent."""
        if self.stderr_path is not None:
            self._err = self.stderr_path.open("ab")
        else:
            self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._err,
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
            raise ReplicatorError(
                f"the chain replicator did not get ready within {timeout_s:g}s: stdout "
                f"{line!r}; stderr: {self.stderr()}"
            ) from None
        return self.url

    def stderr(self) -> str:
        """The tail of what the replicator logged."""
        if self._err is None:
            return ""
        self._err.flush()
        with open(self._err.fileno(), "rb", closefd=False) as err:
            err.seek(0)
            return err.read()[-2000:].decode(errors="replace").strip()

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
        if self._err is not None:
            self._err.close()
            self._err = None
        self.url = ""
        return code

    def __enter__(self) -> ReplicatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
