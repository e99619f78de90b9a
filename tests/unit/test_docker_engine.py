"""Finding and reaching the Docker daemon: the socket chosen, and what a failure says."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from harness.engine import client as engine
from harness.engine.labels import owner_label, owner_of
from harness.stack.state import ProcessIdentity


def test_docker_host_wins_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///somewhere/docker.sock")
    assert engine.docker_host() == "unix:///somewhere/docker.sock"


def test_without_docker_host_the_first_socket_that_exists_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    private = tmp_path / "harness-docker.sock"
    private.touch()
    monkeypatch.setattr(engine, "DEFAULT_SOCKETS", (str(tmp_path / "none.sock"), str(private)))
    assert engine.docker_host() == f"unix://{private}"


def test_no_daemon_is_a_config_error_naming_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/gone.sock")
    with pytest.raises(engine.DockerUnavailable) as caught:
        engine.connect()
    assert caught.value.exit_code == 2
    assert "does not exist" in str(caught.value) and "scripts/dockerd.sh start" in str(caught.value)


def test_a_socket_we_may_not_use_says_so_and_names_the_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        monkeypatch.setattr(os, "access", lambda *_: False)  # as a user outside the group
        with pytest.raises(engine.DockerUnavailable, match=r"permission denied.*`docker`"):
            engine.connect()


def test_a_socket_nobody_answers_on_is_a_daemon_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: connections are refused
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        with pytest.raises(engine.DockerUnavailable, match="does not answer"):
            engine.connect(timeout_s=2)


def test_the_owner_label_names_this_very_process_and_reads_back() -> None:
    me = ProcessIdentity.current()
    back = owner_of(owner_label(me))
    assert back is not None and back.pid == me.pid and back.alive()
    assert owner_of("not-ours") is None and owner_of(None) is None
