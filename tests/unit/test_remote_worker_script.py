"""The script that starts a remote Locust worker: it carries everything the locustfile reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from harness.load.runner import LOCUSTFILE, remote_worker_script

# Set per process by the runner or Locust, not by the script: where local workers write.
LOCAL_ONLY = {"HARNESS_LOAD_SAMPLES_DIR"}


def read_by_locustfile() -> set[str]:
    return set(re.findall(r'ENV\.get\("(HARNESS_LOAD_[A-Z_]+)"', LOCUSTFILE.read_text()))


def script(env: dict[str, str]) -> str:
    return remote_worker_script(env, "10.1.2.3", 5557)


def test_the_script_exports_every_variable_the_locustfile_reads_but_the_samples_dir() -> None:
    env = {name: "x" for name in read_by_locustfile() - LOCAL_ONLY - {"HARNESS_LOAD_SEND_SAMPLES"}}
    exported = set(re.findall(r"^export (HARNESS_LOAD_[A-Z_]+)=", script(env), re.M))
    assert exported == read_by_locustfile() - LOCAL_ONLY


def test_the_script_starts_a_worker_of_this_master_and_quotes_what_it_exports(
    tmp_path: Path,
) -> None:
    text = script({"HARNESS_LOAD_TARGET": "http://h:1/?a=b c'd"})
    path = tmp_path / "w.sh"
    # Replace the exec with a print of what it would run, then run it.
    path.write_text(text.replace('exec "$HARNESS_DIR/.venv/bin/locust"', "echo locust"))
    out = subprocess.run(
        ["sh", str(path)], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert "--worker --master-host 10.1.2.3 --master-port 5557" in out
    assert f"-f {LOCUSTFILE}" in out
    probe = text.replace(
        'exec "$HARNESS_DIR/.venv/bin/locust"', 'printf %s "$HARNESS_LOAD_TARGET"; exit 0; #'
    )
    path.write_text(probe)
    target = subprocess.run(["sh", str(path)], capture_output=True, text=True, timeout=10).stdout
    assert target == "http://h:1/?a=b c'd"


def test_the_defaults_survive_any_character_and_give_way_to_the_environment(
    tmp_path: Path,
) -> None:
    text = remote_worker_script({}, "10.1.2.3", 5557)
    probe = text.replace(
        'exec "$HARNESS_DIR/.venv/bin/locust"',
        'printf "%s|%s" "$HARNESS_DIR" "$HARNESS_MASTER_HOST"; exit 0; #',
    )
    path = tmp_path / "w.sh"
    path.write_text(probe)
    run = subprocess.run(["sh", str(path)], capture_output=True, text=True, timeout=10)
    assert run.stdout == f"{LOCUSTFILE.parents[2]}|10.1.2.3"
    odd = '/tmp/a "b" $c'
    env = {"HARNESS_DIR": odd, "HARNESS_MASTER_HOST": "10.9.9.9", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(["sh", str(path)], capture_output=True, text=True, timeout=10, env=env)
    assert run.stdout == f"{odd}|10.9.9.9"
