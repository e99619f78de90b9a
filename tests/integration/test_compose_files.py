"""compose.test.yml and its baked override: valid for compose itself, loopback only, images
as variables, and HAProxy configs that are what the local stack's template renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.stack.docker.compose import COMPOSE_DIR, CONFIGS, render
from harness.stack.haproxy import validate_config

ROOT = Path(__file__).resolve().parents[2]
BASE, BAKED = ROOT / "compose.test.yml", ROOT / "compose.baked.yml"


def _config(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    argv = [compose]
    for f in files:
        argv += ["-f", str(f)]
    proc = subprocess.run(
        [*argv, "config"], capture_output=True, text=True, timeout=60, check=False,
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = yaml.safe_load(proc.stdout)
    return doc


def _published(doc: dict[str, Any]) -> list[str]:
    return [str(p) for s in doc["services"].values() for p in s.get("ports", [])]


def test_the_compose_file_is_valid_and_publishes_on_loopback_only() -> None:
    doc = _config(BASE)
    assert set(doc["services"]) == {
        "primary", "backup", "toxiproxy-primary", "toxiproxy-backup", "haproxy",
    }  # fmt: skip
    assert _published(doc) and all(p.startswith("127.0.0.1:") for p in _published(doc))
    assert doc["services"]["primary"]["image"] == "erigontech/erigon:v3.0.0"
    assert {"primary-data", "backup-data"} <= set(doc["volumes"])


def test_images_and_tags_are_variables_a_user_can_pin() -> None:
    doc = _config(BASE, env={"NODE_TAG": "v3.1.0", "HAPROXY_TAG": "3.0"})
    assert doc["services"]["backup"]["image"] == "erigontech/erigon:v3.1.0"
    assert doc["services"]["haproxy"]["image"] == "haproxy:3.0"


def test_the_baked_override_runs_the_same_topology_on_local_images() -> None:
    doc = _config(BASE, BAKED)
    images = {name: s["image"] for name, s in doc["services"].items()}
    assert images["primary"] == images["backup"] == "harness/anvil:1.7.1"
    assert images["haproxy"] == "harness/haproxy:2.6"
    # No Toxiproxy image here: those services start only when asked for.
    assert doc["services"]["toxiproxy-primary"]["profiles"] == ["toxiproxy"]
    assert all(p.startswith("127.0.0.1:") for p in _published(doc))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compose_haproxy_configs_are_what_the_template_renders_now(name: str) -> None:
    kind, servers = CONFIGS[name]
    checked_in = (COMPOSE_DIR / name).read_text()
    assert checked_in == render(kind, servers), (
        f"{name} is stale: run `python -m harness.stack.docker.compose` and commit it"
    )
    validate_config(COMPOSE_DIR / name)  # haproxy -c (names resolve only inside compose)
