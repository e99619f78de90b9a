"""The fault proxy in pass-through: added latency and throughput against the direct path,
measured in the same run.

    .venv/bin/python bench/proxy_overhead.py [--calls 3000] [--seconds 5]

Targets (issue 7): p50 added latency under 100 us (Toxiproxy's own figure); throughput
through the proxy at least half of the direct path's; and the rate at which one proxy
process saturates a core.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness.jsonrpc import RpcClient
from harness.stack import LocalStack, StackSpec

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
        direct_lat, proxy_lat = [], []
        for _ in range(2):  # alternate, so drift hits both alike
            direct_lat += sequential_us(node.url, args.calls)
            proxy_lat += sequential_us(via, args.calls)
        direct_lat.sort()
        proxy_lat.sort()
        d50, d99, p50, p99 = (
            pct(direct_lat, 50),
            pct(direct_lat, 99),
            pct(proxy_lat, 50),
            pct(proxy_lat, 99),
        )
        direct_rps, _ = wrk_rps(node.url, args.seconds, script)
        proxy_rps, proxy_cpu = wrk_rps(via, args.seconds, script, proxy.pid)
        direct_rps2, _ = wrk_rps(node.url, args.seconds, script)
        direct_rps = statistics.mean([direct_rps, direct_rps2])
    print(f"fault proxy pass-through, {2 * args.calls} sequential eth_blockNumber per path:")
    print(f"  direct to anvil:  p50 {d50:7.1f} us   p99 {d99:7.1f} us")
    print(f"  via the proxy:    p50 {p50:7.1f} us   p99 {p99:7.1f} us")
    print(f"  added: p50 {p50 - d50:+.1f} us (target < 100 us), p99 {p99 - d99:+.1f} us;"
          f" ratio p50 {p50 / d50:.2f}x, p99 {p99 / d99:.2f}x")  # fmt: skip
    print(f"throughput, wrk 2 threads x 16 connections, {args.seconds}s each:")
    print(f"  direct {direct_rps:,.0f} req/s, via the proxy {proxy_rps:,.0f} req/s")
    print(f"  ratio proxy/direct = {proxy_rps / direct_rps:.2f} (target >= 0.5)")
    per_core = proxy_rps * 100 / max(proxy_cpu, 1)
    print(f"  the proxy process used {proxy_cpu:.0f}% CPU (100% = one core) at {proxy_rps:,.0f}"
          f" req/s: it saturates one core at ~{per_core:,.0f} req/s")  # fmt: skip


if __name__ == "__main__":
    main()
