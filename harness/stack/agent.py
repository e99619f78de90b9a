"""The lag agent: tells HAProxy, through its ``agent-check``, which nodes are fit to serve.

HAProxy's own health check asks each node one question on its own (does ``eth_syncing``
answer 200?). A node whose head froze still answers it, so the roadmap's policy keeps
sending it every request; a paused node is found only after check timeouts pile up. The
agent, which the hardened policy runs under the stack's supervisor, polls every node's
``eth_blockNumber`` a few times a second and compares the nodes with each other. On each
node's own loopback port it answers HAProxy one line, then closes:

- ``up #head H, best B``: the node answered within ``max_silence_ms`` and its head is
  within ``max_lag_blocks`` of the best head of every node that answered;
- ``down #no answer for Nms`` or ``down #N blocks behind best head M`` otherwise.

It only takes a node out when another node is fit to take its traffic: with every node
silent (or a single node) it says ``up`` and leaves the verdict to HAProxy's own check,
so an agent starved of CPU cannot take the whole stack down. In HAProxy 2.6 an agent's
``up`` does not override a failing health check (the server stays DOWN until its checks
pass; ``tests/integration/test_hardened_policy.py`` holds HAProxy to that), and a
``down`` holds the server DOWN until the agent says ``up`` again. An agent that is not
there (killed, restarting) is not an error to HAProxy: each server keeps the state it had.

The agent polls each node where HAProxy reaches it (its Toxiproxy proxy, its fault proxy
route, or the node itself), so it judges what the traffic gets: a stale head served by the
fault proxy (the ``stale_head`` fault) or a path that times out counts against the node,
as it does for a client. The price: the polls pass through those faults too, so a
``rate_limit`` budget counts them (1000 / poll_interval_ms a second per node), as it
counts HAProxy's own checks.

Its own port (the component's ``port``) answers one JSON line with every node's reply,
for a person with ``nc`` and for the stack's readiness check.

    python -m harness.stack.agent_main --status-port PORT --node NAME URL PORT [--node ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.jsonrpc import RpcClient, RpcFailure

log = logging.getLogger("harness.stack.agent")

LOOPBACK = "127.0.0.1"

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class AgentPolicy:
    """When the agent calls a node unfit. Validated on construction."""

    max_lag_blocks: int = 2
    # A node silent this long is out (if another answers): ~2 missed polls, so that a
    # paused node is out well within a second, and one slow answer is not enough.
    max_silence_ms: int = 500
    poll_interval_ms: int = 200
    poll_timeout_ms: int = 200

    def __post_init__(self) -> None:
        if self.max_lag_blocks < 0:
            raise ConfigError("max_lag_blocks", self.max_lag_blocks, "must be >= 0")
        if not 50 <= self.poll_interval_ms <= 10_000:
            raise ConfigError("poll_interval_ms", self.poll_interval_ms, "choose 50 to 10000")
        if not 10 <= self.poll_timeout_ms <= 10_000:
            raise ConfigError("poll_timeout_ms", self.poll_timeout_ms, "choose 10 to 10000")
        if self.max_silence_ms < self.poll_interval_ms + self.poll_timeout_ms:
            raise ConfigError(
                "max_silence_ms",
                self.max_silence_ms,
                f"must be at least poll_interval_ms + poll_timeout_ms "
                f"({self.poll_interval_ms + self.poll_timeout_ms}), or one slow poll "
                "takes a node out",
            )


@dataclass(frozen=True)
class Sighting:
    """What the agent last learned of one node: its head and when it said so."""

    head: int | None = None  # None: it has not answered since the agent started
    answered_ns: int | None = None  # time.monotonic_ns() of that answer


@dataclass(frozen=True)
class Verdict:
    """Whether one node is fit to serve, and why: the agent's answer to HAProxy."""

    fit: bool
    reason: str

    @property
    def reply(self) -> str:
        """The line HAProxy reads (without its newline): ``up #...`` or ``down #...``."""
        return f"{'up' if self.fit else 'down'} #{self.reason}"


def _fresh(sighting: Sighting, now_ns: int, policy: AgentPolicy) -> bool:
    return (
        sighting.answered_ns is not None
        and now_ns - sighting.answered_ns <= policy.max_silence_ms * 1_000_000
    )


def judge(
    name: str, sightings: Mapping[str, Sighting], now_ns: int, policy: AgentPolicy
) -> Verdict:
    """The verdict on node ``name`` given what the agent knows of every node at ``now_ns``.

    The best head is the highest among nodes that answered recently, so a silent node's
    last head counts for nothing, and when every head stops (all nodes stalled) no node is
    behind. Pure: the same sightings always give the same verdict."""
    fresh = {n: s for n, s in sightings.items() if _fresh(s, now_ns, policy)}
    mine = sightings.get(name, Sighting())
    if name not in fresh:
        if not any(n != name for n in fresh):
            return Verdict(True, "no node answers: HAProxy's own check decides")
        if mine.answered_ns is None:
            return Verdict(False, "no answer since the agent started")
        silent_ms = (now_ns - mine.answered_ns) // 1_000_000
        return Verdict(False, f"no answer for {silent_ms}ms")
    best = max(s.head for s in fresh.values() if s.head is not None)
    assert mine.head is not None  # a fresh sighting carries its head
    behind = best - mine.head
    if behind > policy.max_lag_blocks:
        return Verdict(False, f"{behind} blocks behind best head {best}")
    return Verdict(True, f"head {mine.head}, best {best}")


@dataclass(frozen=True)
class AgentNode:
    """One node the agent watches: where it answers JSON-RPC, and HAProxy's port for it."""

    name: str
    url: str
    agent_port: int
    # Where HAProxy reaches the agent: loopback, or (the docker backend) the address of the
    # host on the containers' network, where a containerised HAProxy can reach it.
    listen_host: str = LOOPBACK


def command(
    nodes: Sequence[AgentNode], status_port: int, policy: AgentPolicy, python: str = sys.executable
) -> list[str]:
    """The argument list that runs the agent for ``nodes`` (what the supervisor starts)."""
    argv = [python, "-m", "harness.stack.agent_main", "--status-port", str(status_port)]
    argv += ["--max-lag-blocks", str(policy.max_lag_blocks)]
    argv += ["--max-silence-ms", str(policy.max_silence_ms)]
    argv += ["--poll-interval-ms", str(policy.poll_interval_ms)]
    argv += ["--poll-timeout-ms", str(policy.poll_timeout_ms)]
    hosts = {node.listen_host for node in nodes}
    if len(hosts) > 1:
        raise ConfigError("agent listen host", sorted(hosts), "one host for every node")
    if hosts != {LOOPBACK}:
        argv += ["--listen", hosts.pop()]
    for node in nodes:
        argv += ["--node", node.name, node.url, str(node.agent_port)]
    return argv


class LagAgent:
    """Polls every node and answers HAProxy's agent checks; `run` until `stop`."""

    def __init__(self, nodes: Sequence[AgentNode], status_port: int, policy: AgentPolicy):
        self.nodes = tuple(nodes)
        self.status_port = status_port
        self.policy = policy
        self.sightings: dict[str, Sighting] = {n.name: Sighting() for n in self.nodes}
        self._said: dict[str, Verdict] = {}
        self._stop = asyncio.Event()
        # One worker per node: a silent node's poll blocks its worker for poll_timeout_ms,
        # never another node's poll.
        self._pool = ThreadPoolExecutor(max_workers=len(self.nodes), thread_name_prefix="poll")

    def verdict(self, name: str) -> Verdict:
        """The verdict on ``name`` now; a change from the last one said is logged."""
        verdict = judge(name, self.sightings, time.monotonic_ns(), self.policy)
        if self._said.get(name, Verdict(True, "")).fit != verdict.fit:
            log.info("%s: %s", name, verdict.reply)
        self._said[name] = verdict
        return verdict

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Poll once, then listen (so no reply is a guess), then poll until stopped."""
        clients = {
            n.name: RpcClient(n.url, timeout_s=self.policy.poll_timeout_ms / 1000)
            for n in self.nodes
        }
        servers: list[asyncio.Server] = []
        try:
            await asyncio.gather(*(self._poll_once(n.name, clients[n.name]) for n in self.nodes))
            for node in self.nodes:
                servers.append(
                    await asyncio.start_server(
                        self._answerer(node.name), node.listen_host, node.agent_port
                    )
                )
            servers.append(await asyncio.start_server(self._status, LOOPBACK, self.status_port))
            log.info(
                "answering for %s; status on %s:%d",
                ", ".join(f"{n.name} on {n.agent_port}" for n in self.nodes),
                LOOPBACK,
                self.status_port,
            )
            polls = [asyncio.create_task(self._poll(n.name, clients[n.name])) for n in self.nodes]
            await self._stop.wait()
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
        finally:
            for server in servers:
                server.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            for client in clients.values():
                client.close()

    async def _poll(self, name: str, client: RpcClient) -> None:
        interval_s = self.policy.poll_interval_ms / 1000
        while True:
            started = time.monotonic()
            await self._poll_once(name, client)
            await asyncio.sleep(max(0.0, started + interval_s - time.monotonic()))

    async def _poll_once(self, name: str, client: RpcClient) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await loop.run_in_executor(self._pool, client.block_number)
        except RpcFailure:
            return  # silence is what the sighting's age says
        self.sightings[name] = Sighting(head, time.monotonic_ns())

    def _answerer(self, name: str) -> _Handler:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _reply(writer, self.verdict(name).reply)

        return answer

    async def _status(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        now_ns = time.monotonic_ns()
        doc = {n.name: judge(n.name, self.sightings, now_ns, self.policy).reply for n in self.nodes}
        await _reply(writer, json.dumps(doc))


async def _reply(writer: asyncio.StreamWriter, line: str) -> None:
    """Write one line and close; a peer that has gone already is no error."""
    with contextlib.suppress(ConnectionError):
        writer.write(line.encode() + b"\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()


def parse_args(argv: Sequence[str]) -> tuple[list[AgentNode], int, AgentPolicy]:
    parser = argparse.ArgumentParser(prog="python -m harness.stack.agent_main")
    parser.add_argument("--status-port", type=int, required=True)
    parser.add_argument("--listen", default=LOOPBACK, help="where the agent ports listen")
    parser.add_argument(
        "--node", nargs=3, action="append", required=True, metavar=("NAME", "URL", "PORT")
    )
    defaults = AgentPolicy()
    parser.add_argument("--max-lag-blocks", type=int, default=defaults.max_lag_blocks)
    parser.add_argument("--max-silence-ms", type=int, default=defaults.max_silence_ms)
    parser.add_argument("--poll-interval-ms", type=int, default=defaults.poll_interval_ms)
    parser.add_argument("--poll-timeout-ms", type=int, default=defaults.poll_timeout_ms)
    args = parser.parse_args(argv)
    nodes = []
    for name, url, port in args.node:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError("--node", f"{name} {url} {port}", "PORT must be 1-65535")
        nodes.append(AgentNode(name, url, int(port), args.listen))
    policy = AgentPolicy(
        args.max_lag_blocks, args.max_silence_ms, args.poll_interval_ms, args.poll_timeout_ms
    )
    return nodes, args.status_port, policy


async def serve(nodes: Sequence[AgentNode], status_port: int, policy: AgentPolicy) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    agent = LagAgent(nodes, status_port, policy)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    await agent.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Exits 0 when stopped, 2 with one line on stderr for a bad argument."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s lag-agent %(levelname)s %(message)s",
    )
    try:
        nodes, status_port, policy = parse_args(sys.argv[1:] if argv is None else argv)
        asyncio.run(serve(nodes, status_port, policy))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    return 0
