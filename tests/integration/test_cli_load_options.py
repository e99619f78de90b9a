"""`harness run`'s distributed-load options: bad input is exit 2 naming the field."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--remote-workers", "-1"], "remote_workers"),
        (["--remote-workers", "257"], "remote_workers"),
        (["--remote-workers", "1", "--master-bind", "203.0.113.254"], "master_bind"),
        (["--remote-workers", "1", "--master-port", "70000"], "master_port"),
        (["--remote-workers", "1", "--load-url-for-remote", "nohost"], "remote_target_url"),
        (["--load-start-timeout", "soon"], "--load-start-timeout"),
        (["--workers", "-1"], "workers"),
        (["--no-load", "--remote-workers", "-1"], "remote_workers"),
    ],
)
def test_bad_distributed_load_options_are_exit_2_naming_the_field(
    args: list[str], field: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "harness"), "run", "--reports-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()], "a run directory was made"
