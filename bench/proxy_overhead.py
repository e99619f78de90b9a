"""The fault proxy in pass-through: added latency and throughput against the direct path,
measured in the same run.

    .venv/bin/python bench/proxy_overhead.py [--calls 3000] [--seconds 5]

Targets (issue 7): p50 added latency under 100 us (Toxiproxy's own figure); throughput
through the proxy at least half of the direct path's; and the rate at which one proxy
process saturates a core.

The peer: when a Toxiproxy server binary is at hand ($HARNESS_TOXIPROXY_SERVER, or
``toxiproxy-server`` on PATH), the same figures for a Toxiproxy proxy to the same node in
the same run, so "under Toxiproxy's own figure" is checked on this machine rather than
quoted. Without one, its lines say so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from harness.jsonrpc import RpcClient
from harness.proxy.toxiproxy import ToxiproxyDriver
from harness.stack import LocalStack, StackSpec
from harness.stack.local import free_port

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
BODY = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def sequential_us(url: str, calls: int) -> list[float]:
    """Latency of ``calls`` back-to-back eth_blockNumber calls on one keep-alive connection."""
    out = []
    with RpcClient(url, timeout_s=2) as client:
        for _ in range(200):  # warm-up
            client.block_number()
        for _ in range(calls):
            started = time.perf_counter_ns()
            client.block_number()
            out.append((time.perf_counter_ns() - started) / 1000)
    return sorted(out)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def wrk_rps(
    url: str, seconds: int, script: Path, watch_pid: int | None = None
) -> tuple[float, float]:
    """Requests/s wrk achieves (2 threads, 16 connections), and the watched process's CPU %."""
    proc = psutil.Process(watch_pid) if watch_pid else None
    if proc:
        proc.cpu_percent()
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    cpu = proc.cpu_percent() if proc else 0.0
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1)), cpu


@contextlib.contextmanager
def toxiproxy_to(upstream: str) -> Iterator[tuple[str, str, int] | None]:
    """A Toxiproxy server with one proxy to ``upstream`` (host:port): (its URL, the server's
    version, its pid), or None when there is no binary."""
    binary = os.environ.get("HARNESS_TOXIPROXY_SERVER") or shutil.which("toxiproxy-server")
    if not binary:
        yield None
        return
    api = free_port()
    server = subprocess.Popen(
        [binary, "-host", "127.0.0.1", "-port", str(api)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        driver = ToxiproxyDriver(f"http://127.0.0.1:{api}")
        deadline = time.monotonic() + 10
        while not driver.reachable() and time.monotonic() < deadline:
            time.sleep(0.05)
        listen = f"127.0.0.1:{free_port()}"
        driver.create_proxy("bench", listen, upstream)
        yield f"http://{listen}/", driver.version(), server.pid
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    spec = StackSpec(name="bench-proxy", nodes=1, block_time_s=1, fault_proxy=True)
    with LocalStack(spec) as stack, tempfile.TemporaryDirectory() as tmp:
        state = stack.state()
        node = state.nodes[0]
        proxy = state.component("fault-proxy")
        via = f"http://127.0.0.1:{node.proxy_port}/"
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        with toxiproxy_to(f"{node.host}:{node.port}") as toxiproxy:
            latencies: dict[str, list[float]] = {"direct": [], "proxy": [], "toxiproxy": []}
            for _ in range(2):  # alternate, so drift hits every path alike
                latencies["direct"] += sequential_us(node.url, args.calls)
                latencies["proxy"] += sequential_us(via, args.calls)
                if toxiproxy:
                    latencies["toxiproxy"] += sequential_us(toxiproxy[0], args.calls)
            for values in latencies.values():
                values.sort()
            direct_rps, _ = wrk_rps(node.url, args.seconds, script)
            proxy_rps, proxy_cpu = wrk_rps(via, args.seconds, script, proxy.pid)
            if toxiproxy:
                toxi_rps, toxi_cpu = wrk_rps(toxiproxy[0], args.seconds, script, toxiproxy[2])
            direct_rps2, _ = wrk_rps(node.url, args.seconds, script)
            direct_rps = statistics.mean([direct_rps, direct_rps2])
    direct_lat = latencies["direct"]
    d50, d99 = pct(direct_lat, 50), pct(direct_lat, 99)
    print(f"pass-through, {2 * args.calls} sequential eth_blockNumber per path, alternating:")
    print(f"  direct to anvil:    p50 {d50:7.1f} us   p99 {d99:7.1f} us")
    paths = [("the fault proxy", latencies["proxy"])]
    if toxiproxy:
        paths.append((f"Toxiproxy {toxiproxy[1]}", latencies["toxiproxy"]))
    for name, values in paths:
        p50, p99 = pct(values, 50), pct(values, 99)
        print(f"  via {name}: p50 {p50:7.1f} us   p99 {p99:7.1f} us; added p50 {p50 - d50:+.1f} us"
              f" (target < 100 us), p99 {p99 - d99:+.1f} us")  # fmt: skip
    if toxiproxy:
        ours = pct(latencies["proxy"], 50) - d50
        theirs = pct(latencies["toxiproxy"], 50) - d50
        print(f"  added p50, fault proxy / Toxiproxy = {ours / theirs:.2f}")
    else:
        print("  Toxiproxy: no server binary (set HARNESS_TOXIPROXY_SERVER); not measured")
    print(f"throughput, wrk 2 threads x 16 connections, {args.seconds}s each:")
    print(f"  direct {direct_rps:,.0f} req/s, via the fault proxy {proxy_rps:,.0f} req/s")
    print(f"  ratio fault proxy / direct = {proxy_rps / direct_rps:.2f} (target >= 0.5)")
    per_core = proxy_rps * 100 / max(proxy_cpu, 1)
    print(f"  the fault proxy used {proxy_cpu:.0f}% CPU (100% = one core) at {proxy_rps:,.0f}"
          f" req/s: it saturates one core at ~{per_core:,.0f} req/s")  # fmt: skip
    if toxiproxy:
        print(f"  via Toxiproxy {toxi_rps:,.0f} req/s, ratio Toxiproxy / direct = "
              f"{toxi_rps / direct_rps:.2f}, fault proxy / Toxiproxy = {proxy_rps / toxi_rps:.2f};"
              f" Toxiproxy used {toxi_cpu:.0f}% CPU ({toxi_rps * 100 / max(toxi_cpu, 1):,.0f}"
              " req/s per core)")  # fmt: skip


if __name__ == "__main__":
    main()
