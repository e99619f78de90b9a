"""A thin, typed driver for a real Toxiproxy server, over the toxiproxy-python library.

Where it sits in the flow: `LocalStack` creates one Toxiproxy proxy per node when the
stack is started with ``--toxiproxy URL`` (HAProxy -> Toxiproxy -> [fault proxy ->] node)
and destroys them at teardown; the transport faults (`harness.faults.proxy`) add and
remove toxics on those proxies; `reap_stale_stacks` and the ledger replay remove what a
killed harness left on the server.

What toxiproxy-python 0.1.1 gives, and where this driver works around it:

- Its ``APIConsumer`` keeps the server's host and port in *class* attributes (one server
  per process, set globally by ``update_api_consumer``). Each driver makes a subclass of
  its own with its host and port, so two drivers (two servers, two threads) never see
  each other's address; the library's classmethods read ``cls.host``/``cls.port``.
- Its ``Toxiproxy``/``Proxy`` objects call ``requests`` without a timeout (a server that
  accepts and never answers would hang the harness) and reach the server through the
  module-level ``APIConsumer``, so they cannot use a per-driver address. The driver
  calls the API through its ``APIConsumer`` subclass with a timeout instead, and keeps
  the library's status mapping (400 ``InvalidToxic``, 404 ``NotFound``, 409
  ``ProxyExists``, raised for toxics as well as proxies).
- It lets every other status through (a 500 when the listen address is taken, say) and
  lets ``requests`` errors escape; both become `ToxiproxyError` here.
- A toxic type is only a string to it, so reset_peer (Toxiproxy >= 2.2) needs nothing
  special. Toxiproxy decodes attributes into Go integers and refuses ``200.0``: callers
  pass ints (see `harness.faults.proxy.toxic_for`).
- It builds URLs as ``http://HOST:PORT`` without brackets, so an IPv6 host is given to
  it bracketed.
- ``/version`` is plain text up to Toxiproxy 2.5 and JSON (``{"version": ...}``) after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.errors import ConfigError, HarnessError

DEFAULT_URL = "http://127.0.0.1:8474"
URL_ENV = "HARNESS_TOXIPROXY_URL"
STREAMS = ("upstream", "downstream")


class ToxiproxyError(HarnessError):
    """The Toxiproxy server refused a request, or did not answer; says what and how to fix."""


class ToxiproxyUnreachable(ToxiproxyError):
    """No Toxiproxy server answers at the URL."""


@dataclass(frozen=True)
class ToxiproxyProxy:
    """One proxy as the server describes it: ``listen`` is the address it really bound."""

    name: str
    listen: str
    upstream: str
    enabled: bool


def toxiproxy_url_from_env() -> str:
    """$HARNESS_TOXIPROXY_URL, or the default ``http://127.0.0.1:8474``."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


class ToxiproxyDriver:
    """The Toxiproxy API at ``url``: proxies and their toxics. Every call has a timeout."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        # Not at the top: harness.stack imports this module (LocalStack makes proxies).
        from harness.stack.model import split_toxiproxy_url

        host, port = split_toxiproxy_url(url)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self.timeout_s = timeout_s
        # A consumer class of this driver's own: the library's holds one global address.
        # It also writes "http://%s:%s" % (host, port): an IPv6 host needs its brackets.
        url_host = f"[{host}]" if ":" in host else host
        self._api: type[APIConsumer] = type(
            "HarnessAPIConsumer", (APIConsumer,), {"host": url_host, "port": port}
        )

    # -- the server ----------------------------------------------------------------------

    def reachable(self, timeout_s: float = 0.5) -> bool:
        """True if a Toxiproxy server answers ``/version`` within ``timeout_s``."""
        try:
            self._call("get", "/version", timeout_s=timeout_s)
        except ToxiproxyError:
            return False
        return True

    def version(self) -> str:
        """The server's version, e.g. ``2.3.0``."""
        text = self._call("get", "/version").text.strip()
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        return str(doc.get("version", text)) if isinstance(doc, dict) else text

    # -- proxies -------------------------------------------------------------------------

    def proxies(self) -> dict[str, ToxiproxyProxy]:
        """Every proxy on the server, by name."""
        doc = self._call("get", "/proxies").json()
        return {name: _proxy(values) for name, values in doc.items()}

    def create_proxy(self, name: str, listen: str, upstream: str) -> ToxiproxyProxy:
        """Create and enable a proxy ``listen`` (host:port) -> ``upstream`` (host:port)."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        try:
            return _proxy(self._call("post", "/proxies", json=body).json())
        except ProxyExists:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} already has a proxy named {name!r}: another stack "
                "of the same name uses this server; choose another stack name (--name), or "
                f"remove it (curl -X DELETE {self.url}/proxies/{name})"
            ) from None

    def destroy_proxy(self, name: str, listen: str | None = None) -> bool:
        """Delete proxy ``name`` (and its toxics); False if there is none. With ``listen``,
        only a proxy still bound there: a proxy of that name elsewhere is someone else's."""
        try:
            if listen is not None:
                found = _proxy(self._call("get", f"/proxies/{name}").json())
                if found.listen != listen:
                    return False
            self._call("delete", f"/proxies/{name}")
        except NotFound:
            return False
        return True

    # -- toxics --------------------------------------------------------------------------

    def add_toxic(
        self,
        proxy: str,
        name: str,
        type: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
    ) -> None:
        """Add toxic ``name`` of ``type`` to ``proxy``; `ConfigError` if the server refuses
        its attributes, `ToxiproxyError` if the proxy is gone or the name is taken."""
        if stream not in STREAMS:
            raise ConfigError("stream", stream, "choose upstream or downstream")
        body: dict[str, Any] = {
            "name": name,
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        try:
            self._call("post", f"/proxies/{proxy}/toxics", json=body)
        except InvalidToxic as exc:
            raise ConfigError(
                f"{type} toxic", body["attributes"], f"Toxiproxy refused it: {_message(exc)}"
            ) from None
        except NotFound:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} has no proxy named {proxy!r}: the stack's proxies "
                "are gone (was the server restarted?); restart the stack"
            ) from None
        except ProxyExists:
            raise ToxiproxyError(
                f"Toxiproxy proxy {proxy!r} already has a toxic named {name!r}; remove it "
                f"(curl -X DELETE {self.url}/proxies/{proxy}/toxics/{name})"
            ) from None

    def remove_toxic(self, proxy: str, name: str) -> bool:
        """Remove toxic ``name`` from ``proxy``; False if either is already gone."""
        try:
            self._call("delete", f"/proxies/{proxy}/toxics/{name}")
        except NotFound:
            return False
        return True

    def toxic_names(self, proxy: str) -> list[str]:
        """The names of the toxics on ``proxy``; `ToxiproxyError` if there is no such proxy."""
        try:
            toxics = self._call("get", f"/proxies/{proxy}/toxics").json()
        except NotFound:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} has no proxy named {proxy!r}; restart the stack"
            ) from None
        return sorted(str(t["name"]) for t in toxics)

    # -- the one way in ------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """One API request through the library's consumer (which raises InvalidToxic,
        NotFound, ProxyExists); any other failure becomes a `ToxiproxyError`."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            response: requests.Response = getattr(self._api, method)(
                path, timeout=timeout, **kwargs
            )
        except (InvalidToxic, NotFound, ProxyExists):
            raise
        except requests.Timeout:
            raise ToxiproxyUnreachable(
                f"the Toxiproxy server at {self.url} did not answer {method.upper()} {path} "
                f"within {timeout:g}s; is it overloaded or stopped (SIGSTOP)?"
            ) from None
        except requests.RequestException as exc:
            _unreachable(self.url, exc)
        if not response.ok:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} answered {method.upper()} {path} with "
                f"HTTP {response.status_code}: {_message(response.text)}"
            )
        return response


def _unreachable(url: str, exc: Exception) -> NoReturn:
    raise ToxiproxyUnreachable(
        f"no Toxiproxy server answers at {url} ({type(exc).__name__}): start one "
        f"(`toxiproxy-server -host 127.0.0.1 -port {urlsplit(url).port}`) or drop --toxiproxy"
    ) from None


def _proxy(doc: Mapping[str, Any]) -> ToxiproxyProxy:
    return ToxiproxyProxy(
        str(doc["name"]), str(doc["listen"]), str(doc["upstream"]), bool(doc["enabled"])
    )


def _message(error: object) -> str:
    """The server's own words from an error body (``{"error": ..., "status": ...}``)."""
    raw = error.args[0] if isinstance(error, Exception) and error.args else error
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()
    return str(doc.get("error", text)) if isinstance(doc, dict) else text.strip()
