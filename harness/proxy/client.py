"""`ProxyControl`: the synchronous client of a running fault proxy's control API.

What the fault library and tests use to add and remove rules and read counters. Plain
``http.client``, one short connection per call, 2 s timeout. A rule the proxy refuses
raises `ConfigError` (field, value and fix as the proxy gave them); anything else that
goes wrong raises `HarnessError` with the proxy's message.
"""

from __future__ import annotations

import ast
from typing import Any
from urllib.parse import quote, urlsplit

from harness.errors import ConfigError, HarnessError
from harness.helper_process import call_control_api

TIMEOUT_S = 2.0


class ProxyControl:
    """The control API at ``url`` (``http://127.0.0.1:PORT/``, as the ready line says)."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ConfigError("url", url, "use the proxy's control URL, http://HOST:PORT/")
        self.url = url
        self.timeout_s = timeout_s

    def add(self, rule: dict[str, Any]) -> str:
        """Activate ``rule``; its id. ConfigError when the proxy refuses it."""
        status, doc = self._call("POST", "/rules", rule)
        if status == 400:
            raise _config_error(str(doc.get("error", doc)))
        self._expect(status, doc, 201)
        return str(doc["id"])

    def remove(self, rule_id: str) -> bool:
        """Deactivate a rule; False when it was already gone."""
        status, doc = self._call("DELETE", f"/rules/{quote(rule_id, safe='')}")
        if status == 404:
            return False
        self._expect(status, doc, 200)
        return True

    def rules(self) -> list[dict[str, Any]]:
        status, doc = self._call("GET", "/rules")
        self._expect(status, doc, 200)
        return list(doc["rules"])

    def clear(self) -> None:
        status, doc = self._call("DELETE", "/rules")
        self._expect(status, doc, 200)

    def stats(self) -> dict[str, Any]:
        """Counters per route: ``{"routes": {"<listen port>": {...}}}``."""
        status, doc = self._call("GET", "/stats")
        self._expect(status, doc, 200)
        return dict(doc)

    def healthy(self) -> bool:
        try:
            status, _ = self._call("GET", "/health")
        except HarnessError:
            return False
        return status == 200

    def _call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        return call_control_api(
            self.url, method, path, payload, self.timeout_s,
            error=HarnessError, name="fault proxy control",
        )  # fmt: skip

    def _expect(self, status: int, doc: Any, wanted: int) -> None:
        if status != wanted:
            message = doc.get("error", doc) if isinstance(doc, dict) else doc
            raise HarnessError(f"fault proxy control {self.url}: HTTP {status}: {message}")


def _config_error(message: str) -> HarnessError:
    """The ConfigError whose message is ``message`` ("field=value: fix"), if it has that shape.

    The value is a Python repr; it ends at the first ": " before which it parses. A value
    that does not parse back (``inf``) is kept as its text.
    """
    field, eq, rest = message.partition("=")
    first = rest.find(": ")
    if not eq or not field or first < 0:
        return HarnessError(f"fault proxy refused the rule: {message}")
    cut = first
    value: object = rest[:first]
    while cut >= 0:
        try:
            value = ast.literal_eval(rest[:cut])
            break
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            cut = rest.find(": ", cut + 1)
    if cut < 0:
        cut, value = first, rest[:first]
    error = ConfigError(field, value, rest[cut + 2 :])
    error.args = (message,)  # exactly the proxy's words, whatever repr() makes of value
    return error
