"""``python -m harness.monitor.webhook``: Alertmanager's receiver in the stack.

Records every notification Alertmanager delivers, one JSON line each, with the monotonic
time it arrived (``received_ns``, comparable with the run's own clock on this host), so
a scenario can assert that an alert was delivered, not only evaluated. `read_notifications`
reads them back.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Notification:
    """One alert of one notification: its name, status (firing/resolved), labels, when."""

    received_ns: int  # time.monotonic_ns() when the webhook got it
    alertname: str
    status: str
    labels: dict[str, str]


def read_notifications(path: Path) -> tuple[Notification, ...]:
    """Every alert the webhook recorded at ``path`` (none if it never got one)."""
    found: list[Notification] = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return ()
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:  # a line cut short by a kill
            continue
        for alert in doc["payload"].get("alerts", ()):
            labels = dict(alert.get("labels", {}))
            found.append(
                Notification(
                    doc["received_ns"], labels.get("alertname", ""), alert["status"], labels
                )
            )
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.monitor.webhook")
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--out", required=True, type=Path, help="JSON lines file to append to")
    args = parser.parse_args(argv)
    lock = threading.Lock()
    out_path: Path = args.out

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received_ns = time.monotonic_ns()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload: Any = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            line = json.dumps({"received_ns": received_ns, "payload": payload})
            with lock, open(out_path, "a") as out:
                out.write(line + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    host, port = args.listen.rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
