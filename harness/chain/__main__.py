"""The chain replicator as its own process.

    python -m harness.chain --source URL --node NAME=URL [--node ...]
        --control HOST:PORT --log PATH [--delay-ms NAME=FIXED[,JITTER] ...]
        [--lag-blocks NAME=N ...] [--log-level LEVEL]

Replays every block of the chain source (a hidden anvil that mines) into each follower
(the served anvil nodes, started with `harness.chain.anvil.follower_args`), logs the
source's chain to PATH (JSON lines, read with `harness.chain.read_chain_log`) and serves
its control API on HOST:PORT (port 0 picks one). Prints one line,
``{"ready": true, "control": "http://HOST:PORT/"}``, on stdout once the control API
listens, and nothing else there (logs go to stderr). Exits 0 on SIGTERM or SIGINT; on a
bad argument prints one line naming it on stderr and exits 2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from harness.chain.config import ReplicatorConfig, parse_args
from harness.chain.control import ControlServer
from harness.chain.replicator import Replicator
from harness.errors import ConfigError


def serve(config: ReplicatorConfig) -> None:
    """Run until SIGTERM or SIGINT; prints the ready line once the control API listens."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        replicator = stack.enter_context(
            Replicator(config.source_url, config.nodes, config.log_path)
        )
        control = stack.enter_context(
            ControlServer(replicator, config.control_host, config.control_port)
        )
        sys.stdout.write(json.dumps({"ready": True, "control": control.url}) + "\n")
        sys.stdout.flush()
        logging.getLogger("harness.chain").info(
            "replicating %s into %s", config.source_url,
            ", ".join(f"{n.name}={n.url}" for n in config.nodes),
        )  # fmt: skip
        while not stop.wait(1.0):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        config = parse_args(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s chain %(levelname)s %(name)s %(message)s",
    )
    try:
        serve(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
