"""The monitoring programs from Debian's packages, found on PATH, and promtool's checks.

Every rule file and rendered Prometheus config is checked by promtool itself before
anything runs on it: a `ConfigError` carries promtool's own words.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.errors import ConfigError, MissingBinaryError

#: Each program the monitoring needs, and the Debian package that installs it.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "prometheus-pushgateway": "prometheus-pushgateway",
}
TIMEOUT_S = 30


def binary(name: str) -> Path:
    """The program ``name`` (a key of `PACKAGES`); `MissingBinaryError` saying how to get it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin:/usr/local/bin")
    if found is None:
        raise MissingBinaryError(
            name,
            f"install it with `apt-get install {PACKAGES[name]}` (or run `make setup` as root)",
        )
    return Path(found)


def _promtool(field: str, path: Path, *args: str) -> str:
    """Run promtool; its output, or a `ConfigError` naming ``field``, ``path`` and its words."""
    proc = subprocess.run(
        [str(binary("promtool")), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        words = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise ConfigError(
            field,
            str(path),
            f"promtool rejects it (`promtool {args[0]} {args[1]}`): " + " | ".join(words[-6:]),
        )
    return proc.stdout


def check_rules(path: Path) -> str:
    """``promtool check rules``: `ConfigError` if the rule file is not valid."""
    return _promtool("rule file", path, "check", "rules", str(path))


def run_rule_tests(path: Path) -> str:
    """``promtool test rules``: `ConfigError` if a rule unit test fails."""
    return _promtool("rule tests", path, "test", "rules", str(path))


def check_config(path: Path) -> str:
    """``promtool check config`` (and the rule files it names): `ConfigError` if invalid."""
    return _promtool("prometheus config", path, "check", "config", str(path))
