"""HTTP/1.1 framing for the proxy: heads, chunked bodies, hop-by-hop headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.proxy.http1 import (
    ChunkedReader,
    HttpError,
    client_head,
    dechunk,
    looks_like_json,
    parse_request_head,
    parse_response_head,
    reframed_head,
)

REQUEST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_a_plain_request_head_is_forwarded_as_received() -> None:
    head = parse_request_head(REQUEST)
    assert head is not None
    assert (head.method, head.size, head.content_length, head.keep_alive) == (
        b"POST",
        len(REQUEST) - 2,
        2,
        True,
    )
    assert not head.rewritten
    assert head.head == REQUEST[: head.size]


def test_an_incomplete_head_is_none_and_an_oversized_one_is_refused() -> None:
    assert parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\n") is None
    with pytest.raises(HttpError) as refused:
        parse_request_head(b"GET / HTTP/1.1\r\nx: " + b"a" * 70_000)
    assert refused.value.status == 431


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ],
)
def test_requests_a_proxy_must_not_guess_about_are_refused(head: bytes, status: int) -> None:
    with pytest.raises(HttpError) as refused:
        parse_request_head(head)
    assert refused.value.status == status


def test_hop_by_hop_headers_and_the_ones_connection_names_are_stripped() -> None:
    head = parse_request_head(
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n"
        b"Keep-Alive: 5\r\nExpect: 100-continue\r\nX-Keep: 2\r\nContent-Length: 0\r\n\r\n"
    )
    assert head is not None
    assert head.rewritten and head.expect_continue and not head.keep_alive
    assert head.head == b"POST / HTTP/1.1\r\nHost: x\r\nX-Keep: 2\r\nContent-Length: 0\r\n\r\n"


def test_http10_is_close_by_default_and_goes_to_the_node_as_11() -> None:
    head = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert head is not None and head.http10 and not head.keep_alive
    assert head.head == b"GET / HTTP/1.1\r\n\r\n"
    alive = parse_request_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert alive is not None and alive.keep_alive


@pytest.mark.parametrize(
    ("raw", "method", "length", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"POST", 5, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"POST", -1, True),
        (b"HTTP/1.1 200 OK\r\n\r\n", b"POST", -2, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", b"POST", 5, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", b"POST", 5, False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"POST", 0, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"HEAD", 0, True),
    ],
)
def test_response_framing(raw: bytes, method: bytes, length: int, keep_alive: bool) -> None:
    head = parse_response_head(raw, method)
    assert head is not None
    assert (head.content_length, head.keep_alive) == (length, keep_alive)


def test_the_client_head_loses_hop_by_hop_headers_and_says_close_when_asked() -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", b"POST"
    )
    assert head is not None
    assert client_head(head, close=False) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert client_head(head, close=True).endswith(b"connection: close\r\n\r\n")


def test_a_reframed_head_carries_the_new_length_and_status() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
    assert reframed_head(head, 12, close=False, status=429) == (
        b"HTTP/1.1 429 Too Many Requests\r\nX-A: 1\r\ncontent-length: 12\r\n\r\n"
    )


def chunked(data: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for size in sizes:
        piece = data[pos : pos + size]
        if piece:
            out += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
        pos += size
    if pos < len(data):
        out += b"%x\r\n%s\r\n" % (len(data) - pos, data[pos:])
    return out + b"0\r\nTrailer: t\r\n\r\n"


@given(
    st.binary(max_size=300),
    st.lists(st.integers(1, 50), max_size=10),
    st.lists(st.integers(1, 40), max_size=20),
)
def test_the_chunked_reader_finds_the_end_however_the_bytes_arrive(
    data: bytes, sizes: list[int], cuts: list[int]
) -> None:
    wire = chunked(data, sizes) + b"NEXT"
    reader = ChunkedReader(collect=True)
    buf = b""
    end = -1
    pos = 0
    for cut in [*cuts, len(wire)]:
        piece, wire_left = wire[pos : pos + cut], pos + cut
        pos = wire_left
        before = len(buf)
        buf += piece
        found = reader.feed(buf, before)
        if found >= 0:
            end = found
            break
    assert end == len(chunked(data, sizes))
    assert reader.collected == data
    assert dechunk(chunked(data, sizes)) == data


def test_a_bad_chunk_size_is_refused() -> None:
    with pytest.raises(HttpError):
        dechunk(b"zz\r\nabc\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("body", "shaped"),
    [(b' {"a":1}\n', True), (b"[1]", True), (b"nope", False), (b'{"a":', False), (b"[}", False)],
)
def test_json_shape_is_first_and_last_non_blank_byte(body: bytes, shaped: bool) -> None:
    reader = ChunkedReader()
    reader.feed(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert looks_like_json(reader.first, reader.last) == shaped
