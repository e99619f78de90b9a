"""Bare Locust, the reference the load benchmarks hold the harness to: a plain FastHttpUser
that posts pre-built JSON-RPC bodies and does nothing else (no sample file, no
classification, no refresh of chain parameters). Run by `bench/bare_locust.py`.

``BENCH_BODIES`` is a file of ``[label, body]`` JSON lines (the harness's own request mix,
written by the benchmark); ``BENCH_PACING_S`` > 0 paces each user to one request per that
many seconds (Locust's ``constant_pacing``), 0 sends again as soon as an answer is in.
"""

from __future__ import annotations

import itertools
import json
import os

from locust import FastHttpUser, constant, constant_pacing, task

with open(os.environ["BENCH_BODIES"]) as _lines:
    BODIES = [(label, body.encode()) for label, body in map(json.loads, _lines)]
PACING_S = float(os.environ.get("BENCH_PACING_S", "0"))
HEADERS = {"Content-Type": "application/json"}
_next_body = itertools.cycle(BODIES).__next__


class BareUser(FastHttpUser):
    """Posts the next body, named by its method label as the harness names it."""

    wait_time = constant_pacing(PACING_S) if PACING_S > 0 else constant(0)

    @task
    def call(self) -> None:
        label, body = _next_body()
        self.client.post("/", data=body, headers=HEADERS, name=label)
