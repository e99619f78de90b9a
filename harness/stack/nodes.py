"""Node adapters: how each Ethereum client is started, where it keeps data, how it is checked.

An adapter knows one client's command line, data dir, health endpoint (as HAProxy checks
it) and where to get the binary. anvil is the embedded default; erigon, geth and reth
are there for users who have those binaries.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, MissingBinaryError

ETH_SYNCING_BODY = '{"jsonrpc":"2.0","method":"eth_syncing","params":[],"id":1}'


@dataclass(frozen=True)
class HttpCheck:
    """One HAProxy ``http-check`` exchange: what to send and which status means healthy."""

    method: str = "POST"
    uri: str = "/"
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: str | None = ETH_SYNCING_BODY
    expect_status: int = 200


@dataclass(frozen=True)
class NodeAdapter:
    """How to run one kind of node. Ports are assigned by the stack, never guessed."""

    kind: str
    binary_name: str
    how_to_get: str
    health_check: HttpCheck
    # Extra ports (p2p, auth RPC, metrics...) the client opens and that must not collide.
    extra_ports: int = 0

    def binary(self) -> Path:
        """The client's executable: PATH first, then beside this Python (the project's venv)."""
        found = shutil.which(self.binary_name) or shutil.which(
            self.binary_name, path=str(Path(sys.executable).parent)
        )
        if found is None:
            raise MissingBinaryError(self.binary_name, self.how_to_get)
        return Path(found)

    def command(
        self,
        *,
        port: int,
        data_dir: Path,
        host: str = "127.0.0.1",
        block_time_s: float,
        extra_ports: tuple[int, ...],
        extra_args: tuple[str, ...],
    ) -> list[str]:
        """The argument list that starts this node listening on ``host``:``port``."""
        exe = str(self.binary())
        if self.kind == "anvil":
            args = [
                exe, "--host", host, "--port", str(port),
                "--block-time", _seconds(block_time_s),
                "--chain-id", "31337", "--accounts", "10",
                # The state file makes a restarted node resume near its old head, as a real
                # node restarts from its data dir instead of from genesis.
                "--state", str(data_dir / "state.json"), "--state-interval", "1",
                "--quiet",
            ]  # fmt: skip
        elif self.kind == "geth":
            (auth,) = extra_ports
            # --dev turns P2P off entirely; IPC would collide between instances.
            args = [
                exe, "--dev", "--dev.period", str(max(1, round(block_time_s))),
                "--datadir", str(data_dir), "--http", "--http.addr", host,
                "--http.port", str(port), "--http.api", "eth,net,web3,debug,txpool",
                "--authrpc.port", str(auth), "--ipcdisable",
            ]  # fmt: skip
        elif self.kind == "erigon":
            p2p, auth, private_api, torrent = extra_ports
            # HTTP is on by default; every other listener is moved to a port of our own.
            args = [
                exe, "--chain=dev", "--dev.period", str(max(1, round(block_time_s))),
                "--datadir", str(data_dir), "--http.addr", host,
                "--http.port", str(port), "--http.api", "eth,erigon,net,web3,debug,txpool",
                "--authrpc.port", str(auth), "--port", str(p2p), "--nodiscover",
                "--private.api.addr", f"{host}:{private_api}",
                "--torrent.port", str(torrent), "--maxpeers", "0",
            ]  # fmt: skip
        elif self.kind == "reth":
            p2p, auth = extra_ports
            # reth binds its P2P listener even in --dev, so it gets a port of its own.
            args = [
                exe, "node", "--dev", "--dev.block-time", f"{max(1, round(block_time_s))}s",
                "--datadir", str(data_dir), "--http", "--http.addr", host,
                "--http.port", str(port), "--http.api", "eth,net,web3,debug,txpool",
                "--authrpc.port", str(auth), "--port", str(p2p),
                "--discovery.port", str(p2p), "--disable-discovery", "--ipcdisable",
            ]  # fmt: skip
        else:  # pragma: no cover - adapters are only built from ADAPTERS
            raise ConfigError("node", self.kind, f"choose one of: {', '.join(ADAPTERS)}")
        return args + list(extra_args)


def _seconds(value: float) -> str:
    return f"{value:g}"


ADAPTERS: dict[str, NodeAdapter] = {
    "anvil": NodeAdapter(
        kind="anvil",
        binary_name="anvil",
        how_to_get=(
            "install it with `npm install @foundry-rs/anvil-linux-amd64@1.7.1` and put its "
            "bin/anvil on PATH (the project's `make setup` does this)"
        ),
        health_check=HttpCheck(),
    ),
    "geth": NodeAdapter(
        kind="geth",
        binary_name="geth",
        how_to_get="download a release from geth.ethereum.org/downloads or use the "
        "ethereum/client-go image, and put `geth` on PATH",
        health_check=HttpCheck(),
        extra_ports=1,
    ),
    "erigon": NodeAdapter(
        kind="erigon",
        binary_name="erigon",
        how_to_get="download a release from github.com/erigontech/erigon/releases or use the "
        "erigontech/erigon image, and put `erigon` on PATH",
        # Erigon's own /health (always served on the HTTP port; 200 healthy, 500 not) knows
        # about sync; eth_syncing answers 200 while syncing. No min_peer_count: dev has none.
        health_check=HttpCheck(
            method="GET",
            uri="/health",
            headers=(("X-ERIGON-HEALTHCHECK", "synced"),),
            body=None,
        ),
        extra_ports=4,
    ),
    "reth": NodeAdapter(
        kind="reth",
        binary_name="reth",
        how_to_get="download a release from github.com/paradigmxyz/reth/releases or use the "
        "ghcr.io/paradigmxyz/reth image, and put `reth` on PATH",
        health_check=HttpCheck(),
        extra_ports=2,
    ),
}


def adapter(kind: str) -> NodeAdapter:
    """The adapter for ``kind``; a `ConfigError` naming the known kinds otherwise."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ConfigError(
            "node", kind, f"unknown node kind; choose one of: {', '.join(ADAPTERS)}"
        ) from None
