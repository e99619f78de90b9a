"""Listener ports are picked below the kernel's ephemeral range, where no outgoing
connection's source port can take them between the pick and the listener's bind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.stack import ports
from harness.stack.ports import free_port, listener_range, require_free_port


def test_ports_come_from_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    picked = [free_port() for _ in range(50)]
    assert all(ports.LOWEST <= port < low for port in picked)


def test_no_port_is_handed_out_twice_before_it_is_bound() -> None:
    picked = [free_port() for _ in range(500)]
    assert len(set(picked)) == len(picked)


def test_a_port_someone_listens_on_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        # A range of one taken port and one free one: only the free one can come back.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        monkeypatch.setattr(ports, "listener_range", lambda: [taken, free])
        ports._handed_out.clear()
        assert free_port() == free
        # Both now out (one listened on, one handed out): the kernel picks, from elsewhere.
        assert free_port() not in (taken, free)


def test_an_ephemeral_range_that_starts_low_falls_back_to_the_kernels_pick(
    tmp_path: Path,
) -> None:
    low = tmp_path / "range"
    low.write_text("1024\t65535\n")
    assert len(listener_range(low)) == 0
    usual = tmp_path / "usual"
    usual.write_text("32768\t60999\n")
    assert listener_range(usual) == range(ports.LOWEST, 32768)


def test_a_fixed_port_that_is_taken_names_the_field_and_the_fix() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"frontend_port={port}.*already in use.*omit it"):
            require_free_port(port, "frontend_port")
