"""What ran: the node client, the balancer and the proxy, with their versions.

A result must say what it measured: "anvil 1.7.1 behind HAProxy 2.6.12, no proxy" on the
local backend, the same plus the images on docker. Versions are asked of the binaries (or
read from the baked images' tags) once, when the stack starts.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness.stack.model import StackSpec

#: The version words each program prints, and how to ask.
NODE_VERSION = (("--version",), r"(\d+\.\d+\.\d+[^\s,]*)")
HAPROXY_VERSION = (("-v",), r"HAProxy version (\S+)")


def version_of(binary: Path, args: Sequence[str], pattern: str) -> str | None:
    """What ``binary args`` prints that matches ``pattern`` (its first group); None when
    it prints nothing that does (or cannot run)."""
    try:
        proc = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else None


def proxy_words(spec: StackSpec, toxiproxy_version: str | None = None) -> str:
    """Which proxies sit between HAProxy and the nodes, in order."""
    parts = []
    if spec.toxiproxy:
        parts.append(f"Toxiproxy {toxiproxy_version or '(version unknown)'}")
    if spec.fault_proxy:
        parts.append("harness fault proxy")
    return " -> ".join(parts) or "none"


def local_software(
    spec: StackSpec, node_binary: Path, haproxy_binary: Path, toxiproxy_version: str | None
) -> dict[str, str]:
    """What a local stack runs: the host binaries' versions."""
    node = version_of(node_binary, *NODE_VERSION)
    balancer = version_of(haproxy_binary, *HAPROXY_VERSION)
    return {
        "node": f"{spec.node_kind} {node or '(version unknown)'} ({node_binary})",
        "balancer": f"HAProxy {balancer or '(version unknown)'} ({haproxy_binary})",
        "proxy": proxy_words(spec, toxiproxy_version),
    }


def docker_software(spec: StackSpec, images: dict[str, str]) -> dict[str, str]:
    """What a docker stack runs: ``images`` maps node and balancer to the tags that ran
    (a baked image's tag is its binary's version)."""

    def version(tag: str) -> str:
        return tag.rpartition(":")[2] if ":" in tag else "(version unknown)"

    return {
        "node": f"{spec.node_kind} {version(images['node'])} (image {images['node']})",
        "balancer": f"HAProxy {version(images['balancer'])} (image {images['balancer']})",
        "proxy": proxy_words(spec),
    }
