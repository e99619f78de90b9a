"""A run's metrics pushed to a Prometheus Pushgateway, for a team's Prometheus to scrape
(``harness export RUN --pushgateway URL``, and the same option on ``run`` and ``gameday``).

Place in the flow: sends `harness.report.metrics`' exposition of a run's document.

The push is a PUT to ``/metrics/job/harness/run@base64/<name>``: the group is the job
``harness`` and the run's name, so each name keeps its latest run's figures there and a
later run of the name replaces them whole (series the new run lacks do not linger). The
name is always base64url-encoded, the Pushgateway's form for a value holding ``/``, as a
scenario's ``scenarios/test_x.py::test_y`` does.

Errors are `ConfigError` (exit 2) naming ``--pushgateway``, the URL and the gateway's own
words: a malformed URL, nothing answering, or a push the gateway rejects.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request

from harness.errors import ConfigError
from harness.report.document import Doc
from harness.report.metrics import exposition

JOB = "harness"
GROUP_LABEL = "run"
FIELD = "--pushgateway"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIMEOUT_S = 10.0


def check_url(url: str) -> str:
    """The Pushgateway's base URL without a trailing slash; `ConfigError` if malformed."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(FIELD, url, f"not a URL ({exc}): e.g. http://127.0.0.1:9091") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            FIELD,
            url,
            "give the Pushgateway's base URL with its scheme: e.g. http://127.0.0.1:9091",
        )
    if parts.query or parts.fragment:
        raise ConfigError(FIELD, url, "give the base URL alone, without ?query or #fragment")
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def group_url(base: str, name: str) -> str:
    """Where a run of ``name`` is pushed: its group under the job ``harness``."""
    encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii") or "="
    return f"{base}/metrics/job/{JOB}/{GROUP_LABEL}@base64/{encoded}"


def _unreachable(url: str, exc: OSError) -> ConfigError:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return ConfigError(
        FIELD, url, f"no Pushgateway answers there ({reason}): start one, or fix the URL"
    )


def check_reachable(url: str, timeout_s: float = 3.0) -> str:
    """The base URL, once the Pushgateway there says it is ready (``GET /-/ready``); else
    a `ConfigError`, so a run is not started whose figures cannot be delivered."""
    base = check_url(url)
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        raise ConfigError(
            FIELD,
            url,
            f"answers HTTP {exc.code} at /-/ready: is this a Pushgateway's base URL?",
        ) from exc
    except OSError as exc:
        raise _unreachable(url, exc) from exc
    return base


def push(doc: Doc, url: str, timeout_s: float = TIMEOUT_S) -> str:
    """PUT the run's metrics into its group (replacing the group's last push); returns the
    group's URL. `ConfigError` with the gateway's answer if it is unreachable or refuses."""
    target = group_url(check_url(url), str(doc.get("name") or ""))
    request = urllib.request.Request(
        target,
        data=exposition(doc).encode("utf-8"),
        method="PUT",
        headers={"Content-Type": CONTENT_TYPE},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace").strip().replace("\n", " | ")
        raise ConfigError(
            FIELD, url, f"the Pushgateway refused the push (HTTP {exc.code}): {body[:300]}"
        ) from exc
    except OSError as exc:
        raise _unreachable(url, exc) from exc
    return target


__all__ = ["JOB", "check_reachable", "check_url", "group_url", "push"]
