"""Latency fidelity: the harness's p50 and p99 at a fixed open rate well below saturation,
against the wire's account of the very same requests, and against an independent open-loop
measurer of the same target taken alternately (ABBA).

Target: a 1-node stack's HAProxy frontend, the harness's usual path. The harness runs as an
experiment runs it (`LoadRun`, open model, ``light`` profile, LoadSpec's default users, one
worker); its figures are its samples through a `Recorder`.

The references:
- The wire (`wire.WireCapture`): every packet to and from the frontend port on ``lo``, read
  through an AF_PACKET socket with kernel timestamps; an exchange lasts from its request's
  first packet to its answer's last. It times the harness's own requests (the chain
  sampler is paused so nothing else crosses the frontend in the harness's window), with
  none of the code under test. This is the target's reference.
- The independent measurer: a few threads in this process with raw sockets and a fixed
  schedule (wrk2's idea): request k is due at t0 + k/rate, bodies are the same mix (the
  harness's `RequestFactory`), the answer's time is the kernel's receive time. Its latency
  is measured from the due time when the target made it late (the connection's previous
  answer came after the due time) and from the send otherwise, so neither a stall of the
  target nor the measurer's own wake-up lateness is lost or charged. Its latency from the
  due time throughout is printed beside.

Also printed: the harness's resolution (the smallest step between distinct latencies in its
samples, and the recorder's HDR bucket at p50), Locust's own p50/p99 of the same requests
(rounded to 1 ms), how late a ``gevent.sleep`` wakes on this host (the Locust worker's
timer), and the requests HAProxy counted at the frontend per request measured. Needs root
for the capture.

    .venv/bin/python bench/latency_fidelity.py [--rate 200] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
_STATE = tempfile.TemporaryDirectory(prefix="bench-fidelity-")
os.environ["HARNESS_STATE_DIR"] = _STATE.name
# The harness's chain sampler re-reads the chain through the frontend every second; paused
# here so that every exchange the wire sees in the harness's window is a measured request.
os.environ["HARNESS_LOAD_REFRESH_S"] = "3600"

from bare_locust import locust_figures, locust_json_for_harness, write_bodies  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402
from wire import WireCapture  # noqa: E402

from harness.load import LoadRun, LoadSpec, Sample, prepare_chain  # noqa: E402
from harness.load.runner import accounts_needed  # noqa: E402
from harness.measure.recorder import MAX_US, Recorder  # noqa: E402
from harness.stack import LocalStack, StackSpec  # noqa: E402

PROFILE = "light"
WARMUP_S = 1.5  # every user spawned and on its schedule
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
CONNECTIONS = 4  # the independent measurer's threads, one keep-alive connection each

_TIMER_LATENESS = """
import json, time
import gevent
def overshoot_us(sleep, n=400):
    out = []
    for i in range(n):
        d = 0.002 + (i % 11) * 0.00037
        t = time.perf_counter_ns()
        sleep(d)
        out.append((time.perf_counter_ns() - t) / 1e3 - d * 1e6)
    return sorted(out)
print(json.dumps({"gevent": overshoot_us(gevent.sleep), "time": overshoot_us(time.sleep)}))
"""


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of values at or below it (as HDR)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- the independent measurer ----------------------------------------------------------


def _recv(sock: socket.socket) -> tuple[bytes, int]:
    """Some bytes, and the kernel's CLOCK_REALTIME receive time of the last of them."""
    chunk, ancillary, _flags, _address = sock.recvmsg(65536, 64)
    stamp = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack_from("qq", payload)
            stamp = seconds * 1_000_000_000 + nanoseconds
    if not chunk:
        raise ConnectionError("the target closed the connection")
    return chunk, stamp


def _read_response(sock: socket.socket, buf: bytes) -> tuple[int, bytes, int]:
    """One HTTP/1.1 response with a Content-Length: (status, bytes left over, arrival as
    CLOCK_REALTIME ns by the kernel)."""
    stamp = 0
    while b"\r\n\r\n" not in buf:
        chunk, stamp = _recv(sock)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in lines[1:]
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk, stamp = _recv(sock)
        rest += chunk
    return status, rest[length:], stamp


@dataclass
class Independent:
    """Per request: due, sent, done (perf_counter_ns), and the connection's previous done."""

    rows: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def truth_us(self) -> list[float]:
        return [
            (done - (due if prev_done > due else sent)) / 1000
            for due, sent, done, prev_done, _ in self.rows
        ]

    def from_due_us(self) -> list[float]:
        return [(done - due) / 1000 for due, _, done, _, _ in self.rows]

    def lateness_us(self) -> list[float]:
        return [(sent - due) / 1000 for due, sent, _, prev, _ in self.rows if prev <= due]

    def failed(self) -> int:
        return sum(1 for *_, status in self.rows if status != 200)


def independent_run(
    url: str, bodies: list[bytes], rate_per_s: float, seconds: float, into: Independent
) -> tuple[int, tuple[int, int]]:
    """Open loop at ``rate_per_s`` for WARMUP_S + ``seconds``; keeps requests due after the
    warm-up, returns how many it sent in all and the kept window in CLOCK_REALTIME ns.
    Thread i sends requests i, i+C, i+2C... on a keep-alive connection of its own."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [
        b"POST / HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (host.encode(), port, len(body), body)
        for body in bodies
    ]
    period_ns = int(1e9 / rate_per_s)
    t0 = time.perf_counter_ns() + 50_000_000
    keep_from = t0 + int(WARMUP_S * 1e9)
    end = keep_from + int(seconds * 1e9)

    def worker(index: int) -> None:
        rows = []
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            buf, prev_done, k = b"", 0, index
            while (due := t0 + k * period_ns) < end:
                wait_ns = due - time.perf_counter_ns()
                if wait_ns > 0:
                    time.sleep(wait_ns / 1e9)
                sent = time.perf_counter_ns()
                sock.sendall(requests[k % len(requests)])
                status, buf, arrived = _read_response(sock, buf)
                read = time.perf_counter_ns()
                done = arrived - (time.time_ns() - time.perf_counter_ns())
                if not sent <= done <= read:  # no timestamp, or the clock stepped
                    done = read
                if due >= keep_from:
                    rows.append((due, sent, done, prev_done, status))
                prev_done = done
                k += CONNECTIONS
        with into.lock:
            into.rows.extend(rows)
            sent_total[0] += (k - index) // CONNECTIONS

    sent_total = [0]
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    to_realtime = time.time_ns() - time.perf_counter_ns()
    return sent_total[0], (keep_from + to_realtime, end + to_realtime)


# -- the harness -------------------------------------------------------------------------


def frontend_requests(stack: LocalStack) -> int:
    """Requests HAProxy's frontend has received so far (runtime API, ``show stat``)."""
    text = stack.runtime_api().command("show stat")
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return next(int(r["req_tot"]) for r in rows if r["svname"] == "FRONTEND")


def harness_run(
    stack: LocalStack, contract: str, rate_per_s: float, seconds: float, work: Path
) -> tuple[list[Sample], int, Path, tuple[int, int]]:
    """Samples due in the measured window, the frontend's requests in it, Locust's stats,
    and the window in CLOCK_REALTIME ns."""
    spec = LoadSpec(profile=PROFILE, model="open", rate_per_s=rate_per_s, workers=1)
    got: list[Sample] = []
    with (
        locust_json_for_harness(work / "conf", work / "locust") as json_file,
        LoadRun(spec, stack.frontend_url, work / "samples", contract, got.extend),
    ):
        time.sleep(WARMUP_S)
        start, before = time.monotonic_ns(), frontend_requests(stack)
        time.sleep(seconds)
        end, after = time.monotonic_ns(), frontend_requests(stack)
    to_realtime = time.time_ns() - time.monotonic_ns()
    window = (start + to_realtime, end + to_realtime)
    return [s for s in got if start <= s.intended_ns < end], after - before, json_file, window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    samples: list[Sample] = []
    json_files: list[Path] = []
    truth = Independent()
    at_frontend = {"harness": 0, "independent": 0}
    sent_independent = 0
    wire: dict[str, list[float]] = {"harness": [], "independent": []}
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp, _STATE:
        work = Path(tmp)
        with LocalStack(StackSpec(name="bench-fidelity", nodes=1)) as stack:
            spec = LoadSpec(profile=PROFILE, workers=1)
            contract = prepare_chain([stack.state().nodes[0].url], accounts=accounts_needed(spec))
            bodies_file = write_bodies(work / "bodies.jsonl", stack.frontend_url, contract, PROFILE)
            bodies = [json.loads(ln)[1].encode() for ln in bodies_file.read_text().splitlines()]
            frontend_port = urlsplit(stack.frontend_url).port or 80
            for r in range(args.rounds):
                order = ("harness", "independent") if r % 2 == 0 else ("independent", "harness")
                for who in order:
                    capture = WireCapture(frontend_port)
                    if who == "harness":
                        with capture:
                            got, received, json_file, window = harness_run(
                                stack, contract, args.rate, args.seconds, work / f"harness-{r}"
                            )
                        samples += got
                        json_files.append(json_file)
                        at_frontend["harness"] += received
                        mine = [s.latency_us for s in got]
                    else:
                        before, rows_before = frontend_requests(stack), len(truth.rows)
                        with capture:
                            sent, window = independent_run(
                                stack.frontend_url, bodies, args.rate, args.seconds, truth
                            )
                        at_frontend["independent"] += frontend_requests(stack) - before
                        sent_independent += sent
                        mine = truth.truth_us()[rows_before:]
                    seen = [e.latency_us for e in capture.between(*window)]
                    wire[who] += seen
                    print(
                        f"  round {r + 1} {who:11}: {len(mine)} requests, "
                        f"p50 {percentile(mine, 50):7.1f} us, p99 {percentile(mine, 99):7.1f} us; "
                        f"the wire saw {len(seen)}: p50 {percentile(seen, 50):7.1f} us, "
                        f"p99 {percentile(seen, 99):7.1f} us",
                        flush=True,
                    )
        locust = locust_figures(*json_files)  # before the directory goes
    timers = json.loads(
        subprocess.run(
            [sys.executable, "-c", _TIMER_LATENESS], capture_output=True, text=True, check=True
        ).stdout
    )
    recorder = Recorder()
    recorder.begin_phase("measured", 0)
    recorder.add(samples)
    phase = recorder.summary(end_ns=1).phases[0]
    ours_p50, ours_p99 = phase.latency.p50_us, phase.latency.p99_us
    true_us = truth.truth_us()
    true_p50, true_p99 = percentile(true_us, 50), percentile(true_us, 99)
    due_us = truth.from_due_us()
    late_us = truth.lateness_us()
    distinct = sorted({s.latency_us for s in samples})
    step_us = min(b - a for a, b in itertools.pairwise(distinct))
    hdr = HdrHistogram(1, MAX_US, 3)  # the recorder's
    at_p50 = int(ours_p50)
    bucket_us = hdr.get_highest_equivalent_value(at_p50) - hdr.get_lowest_equivalent_value(at_p50)
    failed = sum(1 for s in samples if s.outcome != "ok")
    print(
        f"Latency fidelity, open model at {args.rate:g} req/s, profile {PROFILE}, through HAProxy "
        f"to one anvil node; {args.rounds} x {args.seconds:g} s each side, alternating:"
    )
    print(
        f"  harness (its samples through its Recorder): p50 {ours_p50:7.1f} us  "
        f"p99 {ours_p99:7.1f} us  ({len(samples)} requests, {failed} failed)"
    )
    print(
        f"  independent open loop ({CONNECTIONS} threads, raw sockets, kernel receive times): "
        f"p50 {true_p50:7.1f} us  p99 {true_p99:7.1f} us  ({len(true_us)} requests, "
        f"{truth.failed()} failed)"
    )
    print(
        f"    the same requests timed from their due time throughout: p50 "
        f"{percentile(due_us, 50):.1f} us  p99 {percentile(due_us, 99):.1f} us; its own "
        f"send lateness p50 {percentile(late_us, 50):.1f} us  p99 {percentile(late_us, 99):.1f} us"
    )
    wire_h, wire_i = wire["harness"], wire["independent"]
    print(
        f"  the wire (packets on lo, kernel timestamps), the harness's requests: p50 "
        f"{percentile(wire_h, 50):7.1f} us  p99 {percentile(wire_h, 99):7.1f} us ({len(wire_h)}); "
        f"the independent's: p50 {percentile(wire_i, 50):7.1f} us  "
        f"p99 {percentile(wire_i, 99):7.1f} us ({len(wire_i)})"
    )
    print(
        f"  ratio harness / the wire, same requests: p50 "
        f"{ours_p50 / percentile(wire_h, 50):.2f}  p99 {ours_p99 / percentile(wire_h, 99):.2f} "
        f"(target: both within 0.90-1.10)"
    )
    print(
        f"  ratio harness / independent (ABBA): p50 {ours_p50 / true_p50:.2f}  "
        f"p99 {ours_p99 / true_p99:.2f}; independent / the wire: p50 "
        f"{true_p50 / percentile(wire_i, 50):.2f}  p99 {true_p99 / percentile(wire_i, 99):.2f}"
    )
    print(
        f"  Locust's own stats of the harness's runs (from the send, 1 ms steps): "
        f"p50 {locust.p50_ms:g} ms  p99 {locust.p99_ms:g} ms"
    )
    print(
        f"  resolution: smallest step between distinct latencies in the samples {step_us:.1f} us "
        f"(target < 10 us); recorder's HDR bucket at p50 {bucket_us + 1} us"
    )
    g, t = timers["gevent"], timers["time"]
    print(
        f"  reference, a sleep's overshoot on this host: gevent.sleep (the Locust worker's timer) "
        f"p50 {percentile(g, 50):.0f} us p99 {percentile(g, 99):.0f} us; "
        f"time.sleep p50 {percentile(t, 50):.0f} us p99 {percentile(t, 99):.0f} us"
    )
    per_harness = at_frontend["harness"] / max(1, len(samples))
    per_independent = at_frontend["independent"] / max(1, sent_independent)
    print(
        f"  requests HAProxy's frontend received per request measured: harness "
        f"{per_harness:.2f}, independent {per_independent:.2f} (the same offered load)"
    )


if __name__ == "__main__":
    main()
