"""HTTP/1.1 message framing for the proxy: heads, bodies, hop-by-hop headers.

Only what a forwarding proxy needs: where a message ends (Content-Length, chunked, or the
close of the connection), whether the connection stays open, and which hop-by-hop headers
must not cross the proxy. Bodies are never decoded on the pass-through path; the chunked
reader only finds the end of the body (and, when asked, collects the decoded bytes).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"

# Headers that are about one hop, never forwarded (RFC 9110 7.6.1), plus Expect (the
# proxy answers 100-continue itself).
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
    }
)
_HOP_RE = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer|upgrade|expect):")
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_SPACE = frozenset(b" \t\r\n")


class HttpError(Exception):
    """A message the proxy cannot forward; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


# Parsed heads by their bytes: clients and nodes repeat the same few heads, and a dict
# lookup costs a tenth of a parse. Entries are immutable; the caches are emptied when full.
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The head of one request and how its body is framed."""

    method: bytes
    head: bytes  # as it goes to the node: hop-by-hop headers removed, ends with CRLFCRLF
    size: int  # bytes of the head as received (the body starts there)
    rewritten: bool  # ``head`` differs from the bytes received
    content_length: int  # -1: chunked
    keep_alive: bool  # the client keeps the connection after this exchange
    expect_continue: bool
    http10: bool


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The head of one response and how its body is framed."""

    status: int
    head: bytes  # as received, ends with CRLFCRLF
    size: int
    content_length: int  # -1: chunked, -2: until the connection closes, 0: no body
    keep_alive: bool  # the node keeps the connection after this response
    hop_headers: bool  # the head carries hop-by-hop headers that must be removed

    @property
    def chunked(self) -> bool:
        return self.content_length == -1


_REQUEST_HEADS: dict[bytes, RequestHead] = {}
_RESPONSE_HEADS: dict[tuple[bytes, bool], ResponseHead] = {}


def _header_value(lower: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` in a lower-cased head, or None; HttpError if repeated."""
    start = lower.find(name)
    if start < 0:
        return None
    end = lower.find(CRLF, start + len(name))
    value = lower[start + len(name) : end].strip()
    again = lower.find(name, end)
    if again >= 0:
        other_end = lower.find(CRLF, again + len(name))
        if lower[again + len(name) : other_end].strip() != value:
            raise HttpError(400, f"conflicting {name[2:-1].decode()} headers")
    return value


def _connection_tokens(lower: bytes) -> set[bytes]:
    tokens: set[bytes] = set()
    start = lower.find(b"\r\nconnection:")
    while start >= 0:
        end = lower.find(CRLF, start + 13)
        tokens.update(t.strip() for t in lower[start + 13 : end].split(b","))
        start = lower.find(b"\r\nconnection:", end)
    return tokens


def strip_headers(head: bytes, names: frozenset[bytes] | set[bytes]) -> bytes:
    """``head`` without the header lines whose lower-cased name is in ``names``."""
    lines = head[:-4].split(CRLF)
    kept = [lines[0]]
    kept.extend(line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in names)
    return CRLF.join(kept) + HEAD_END


def parse_request_head(buf: bytes | bytearray) -> RequestHead | None:
    """The request head at the start of ``buf``, or None while incomplete; raises HttpError."""
    end = buf.find(HEAD_END)
    if end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise HttpError(431, "request head too large")
        return None
    head = bytes(buf[: end + 4])
    cached = _REQUEST_HEADS.get(head)
    if cached is not None:
        return cached
    parsed = _parse_request_head(head)
    if len(_REQUEST_HEADS) >= _CACHE_SIZE:
        _REQUEST_HEADS.clear()
    _REQUEST_HEADS[head] = parsed
    return parsed


def _parse_request_head(head: bytes) -> RequestHead:
    size = len(head)
    line_end = head.find(CRLF)
    parts = head[:line_end].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, _, version = parts
    http10 = version == b"HTTP/1.0"
    lower = head.lower()
    content_length = 0
    if b"\r\ntransfer-encoding:" in lower:
        if b"\r\ncontent-length:" in lower:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        encoding = _header_value(lower, b"\r\ntransfer-encoding:")
        if encoding != b"chunked":
            raise HttpError(501, "only the chunked transfer coding is supported")
        content_length = -1
    else:
        value = _header_value(lower, b"\r\ncontent-length:")
        if value is not None:
            if not value.isdigit():
                raise HttpError(400, "bad Content-Length")
            content_length = int(value)
            if content_length > MAX_BODY_BYTES:
                raise HttpError(413, "request body too large")
    keep_alive = not http10
    expect_continue = False
    rewritten = http10
    if _HOP_RE.search(lower) is not None:
        tokens = _connection_tokens(lower)
        if b"close" in tokens:
            keep_alive = False
        elif b"keep-alive" in tokens:
            keep_alive = True
        expect = _header_value(lower, b"\r\nexpect:")
        expect_continue = expect == b"100-continue"
        head = strip_headers(head, _HOP_BY_HOP | tokens)
        rewritten = True
    if http10:
        head = head[: line_end - 3] + b"1.1" + head[line_end:]
    return RequestHead(
        method, head, size, rewritten, content_length, keep_alive, expect_continue, http10
    )


def parse_response_head(buf: bytes | bytearray, request_method: bytes) -> ResponseHead | None:
    """The response head at the start of ``buf``, or None while incomplete; raises HttpError."""
    end = buf.find(HEAD_END)
    if end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise HttpError(502, "response head too large")
        return None
    head = bytes(buf[: end + 4])
    key = (head, request_method == b"HEAD")
    cached = _RESPONSE_HEADS.get(key)
    if cached is not None:
        return cached
    parsed = _parse_response_head(head, request_method)
    if len(_RESPONSE_HEADS) >= _CACHE_SIZE:
        _RESPONSE_HEADS.clear()
    _RESPONSE_HEADS[key] = parsed
    return parsed


def _parse_response_head(head: bytes, request_method: bytes) -> ResponseHead:
    size = len(head)
    if not head.startswith(b"HTTP/1.") or len(head) < 12 or not head[9:12].isdigit():
        raise HttpError(502, "malformed status line from the node")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = not head.startswith(b"HTTP/1.0")
    hop_headers = _HOP_RE.search(lower) is not None
    if hop_headers:
        tokens = _connection_tokens(lower)
        if b"close" in tokens:
            keep_alive = False
        elif b"keep-alive" in tokens:
            keep_alive = True
    if request_method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        content_length = 0
    elif b"\r\ntransfer-encoding:" in lower:
        encoding = _header_value(lower, b"\r\ntransfer-encoding:")
        if encoding is None or not encoding.endswith(b"chunked"):
            content_length = -2
            keep_alive = False
        else:
            content_length = -1
    else:
        value = _header_value(lower, b"\r\ncontent-length:")
        if value is None:
            content_length = -2
            keep_alive = False
        elif not value.isdigit():
            raise HttpError(502, "bad Content-Length from the node")
        else:
            content_length = int(value)
    return ResponseHead(status, head, size, content_length, keep_alive, hop_headers)


def client_head(response: ResponseHead, *, close: bool) -> bytes:
    """The response head as it goes to the client: without hop-by-hop headers, with
    ``Connection: close`` when the proxy closes the client connection after it."""
    head = response.head
    if response.hop_headers:
        head = strip_headers(head, _HOP_BY_HOP | _connection_tokens(head.lower()))
    if close:
        head = head[:-2] + b"connection: close\r\n\r\n"
    return head


@functools.lru_cache(maxsize=1024)  # the same few heads come back, as in the parse caches
def reframed_head(head: bytes, content_length: int, *, close: bool, status: int = 0) -> bytes:
    """``head`` with its framing replaced by ``Content-Length`` (a buffered body), hop-by-hop
    headers removed, and optionally another status line."""
    tokens = _connection_tokens(head.lower())
    head = strip_headers(head, _HOP_BY_HOP | _FRAMING | tokens)
    if status:
        line_end = head.find(CRLF)
        head = b"HTTP/1.1 %d %s" % (status, reason(status).encode()) + head[line_end:]
    extra = b"content-length: %d\r\n" % content_length
    if close:
        extra += b"connection: close\r\n"
    return head[:-2] + extra + CRLF


_REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
}


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def proxy_response_head(
    status: int,
    content_length: int,
    *,
    close: bool = False,
    content_type: bytes = b"application/json",
    extra: bytes = b"",
) -> bytes:
    """The head of a response made by the proxy itself; ``extra`` is whole header lines."""
    connection = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n" % (
        status,
        reason(status).encode(),
        content_type,
        content_length,
        extra,
        connection,
    )


def simple_response(
    status: int,
    body: bytes,
    *,
    close: bool = False,
    content_type: bytes = b"application/json",
    extra: bytes = b"",
) -> bytes:
    """A complete response made by the proxy itself (control API, errors, synthetic answers)."""
    head = proxy_response_head(
        status, len(body), close=close, content_type=content_type, extra=extra
    )
    return head + body


class ChunkedReader:
    """Incremental reader of a chunked body: finds its end, optionally collects the data.

    Also remembers the first and last non-blank data byte, so that the caller can tell a
    JSON-shaped body from anything else without decoding it.
    """

    __slots__ = ("_line", "_remaining", "_state", "collected", "first", "last")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self, collect: bool = False) -> None:
        self._state = self._SIZE
        self._remaining = 0
        self._line = bytearray()
        self.collected: bytearray | None = bytearray() if collect else None
        self.first = -1
        self.last = -1

    def feed(self, buf: bytes | bytearray, pos: int = 0) -> int:
        """Consume ``buf[pos:]``; the offset just past the body's end, or -1 if not there yet."""
        n = len(buf)
        while pos < n:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, n - pos)
                self._note(buf, pos, pos + take)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self._DATA_END
                continue
            end = buf.find(b"\n", pos)
            if end < 0:
                self._line += buf[pos:]
                if len(self._line) > MAX_HEAD_BYTES:
                    raise HttpError(400, "chunk header too long")
                return -1
            line = bytes(self._line + buf[pos:end]) if self._line else bytes(buf[pos:end])
            self._line.clear()
            pos = end + 1
            line = line.rstrip(b"\r")
            if state == self._SIZE:
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpError(400, "bad chunk size") from None
                if size < 0:
                    raise HttpError(400, "bad chunk size")
                if size == 0:
                    self._state = self._TRAILER
                else:
                    self._remaining = size
                    self._state = self._DATA
            elif state == self._DATA_END:
                if line:
                    raise HttpError(400, "chunk data longer than its size")
                self._state = self._SIZE
            elif not line:  # the empty line that ends the trailers
                return pos
        return -1

    def _note(self, buf: bytes | bytearray, start: int, end: int) -> None:
        if self.collected is not None:
            self.collected += buf[start:end]
        first, last = first_last_nonblank(buf, start, end)
        if first >= 0:
            if self.first < 0:
                self.first = first
            self.last = last


def first_last_nonblank(buf: bytes | bytearray, start: int, end: int) -> tuple[int, int]:
    """The first and last byte in ``buf[start:end]`` that is not blank, or (-1, -1)."""
    i = start
    while i < end and buf[i] in _SPACE:
        i += 1
    if i == end:
        return -1, -1
    j = end - 1
    while buf[j] in _SPACE:
        j -= 1
    return buf[i], buf[j]


_JSON_ENDS = {(ord("{"), ord("}")), (ord("["), ord("]"))}


def looks_like_json(first: int, last: int) -> bool:
    """Whether a body whose first and last non-blank bytes are these is JSON-shaped."""
    return (first, last) in _JSON_ENDS


def dechunk(body: bytes) -> bytes:
    """The data of a complete chunked body."""
    reader = ChunkedReader(collect=True)
    if reader.feed(body) < 0:
        raise HttpError(400, "incomplete chunked body")
    assert reader.collected is not None
    return bytes(reader.collected)
