"""Honest bodies (issue 11): a body is kept as complete only when its decoding reached the end.

A real server on 127.0.0.1 sends the exact bytes of each case (a gzip
stream missing its last bytes, two gzip members, raw and zlib-wrapped
deflate, stacked codings, brotli); the fetch either keeps the whole decoded
body, keeps the bytes as received with the coding named, or ends ``000``
with nothing kept.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import zlib
from pathlib import Path

import pytest

from kiel import netguard
from kiel.fetch import Fetcher, Limits, Result

from kit import servers as hs

LOOPBACK = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),))
# 200 000 bytes that compress, with a PDF head for the type
BODY = b"%PDF-1.4\n" + b"".join(b"line %06d of a long body\n" % i for i in range(8000))
BODY = BODY[:199_994] + b"%%EOF\n"
assert len(BODY) == 200_000


def fetch(srv: hs.HostileServer, route: hs.Route, tmp_path: Path, **limits) -> Result:
    url = srv.route("/body", route)
    f = Fetcher(Limits(connect_timeout=2, read_timeout=3, total_timeout=5, **limits),
                guard=LOOPBACK)
    try:
        return f.fetch(url, str(tmp_path))
    finally:
        f.close()


def assert_whole(res: Result, tmp_path: Path, body: bytes = BODY) -> None:
    assert res.status == "200" and res.error is None and res.tmp_path is not None, res
    assert Path(res.tmp_path).read_bytes() == body
    assert res.size == len(body) and res.type == "application-pdf"
    assert res.encoding is None  # decoded: nothing left to name
    assert os.listdir(tmp_path) == [os.path.basename(res.tmp_path)]


def assert_nothing_kept(res: Result, tmp_path: Path, error: str) -> None:
    assert res.status == "000" and res.error == error, res
    assert res.tmp_path is None and res.size == 0 and res.sha256 is None
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "connection-close"])
def test_gzip_missing_its_last_20_bytes_is_not_a_complete_response(srv, tmp_path, length):
    # The HTTP framing is complete (the length says what was sent, or the
    # server closes): only the gzip stream knows it was cut.
    cut = gzip.compress(BODY)[:-20]
    res = fetch(srv, hs.encoded(cut, "gzip", length), tmp_path)
    assert_nothing_kept(res, tmp_path, "truncated")
    assert "gzip" in res.detail


def test_gzip_missing_only_its_last_byte_is_not_complete(srv, tmp_path):
    # every byte of the body decodes; only the trailer is short
    res = fetch(srv, hs.encoded(gzip.compress(BODY)[:-1], "gzip"), tmp_path)
    assert_nothing_kept(res, tmp_path, "truncated")


def test_multi_member_gzip_is_decoded_whole(srv, tmp_path):
    # pigz and bgzip write several members; a decoder that stops at the first
    # kept 65 536 of 200 000 bytes
    members = b"".join(gzip.compress(BODY[i:i + 65536]) for i in range(0, len(BODY), 65536))
    res = fetch(srv, hs.encoded(members, "gzip"), tmp_path)
    assert_whole(res, tmp_path)


def test_x_gzip_and_empty_gzip_members_are_gzip(srv, tmp_path):
    data = gzip.compress(b"") + gzip.compress(BODY) + gzip.compress(b"")
    assert_whole(fetch(srv, hs.encoded(data, "x-gzip"), tmp_path), tmp_path)


@pytest.mark.parametrize("wrapped", [True, False], ids=["zlib", "raw"])
def test_deflate_zlib_wrapped_and_raw(srv, tmp_path, wrapped):
    z = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    data = z.compress(BODY) + z.flush()
    assert_whole(fetch(srv, hs.encoded(data, "deflate"), tmp_path), tmp_path)


@pytest.mark.parametrize("wrapped", [True, False], ids=["zlib", "raw"])
def test_deflate_cut_short_is_not_complete(srv, tmp_path, wrapped):
    z = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    data = (z.compress(BODY) + z.flush())[:-10]
    res = fetch(srv, hs.encoded(data, "deflate"), tmp_path)
    assert_nothing_kept(res, tmp_path, "truncated")


def test_stacked_gzip_gzip_is_decoded_both_times(srv, tmp_path):
    twice = gzip.compress(gzip.compress(BODY))
    assert_whole(fetch(srv, hs.encoded(twice, "gzip, gzip"), tmp_path), tmp_path)


def test_stacked_codings_count_every_layer_against_max_body(srv, tmp_path):
    bomb = gzip.compress(gzip.compress(b"\0" * (8 * 1024 * 1024)))
    res = fetch(srv, hs.encoded(bomb, "gzip, gzip"), tmp_path, max_body=1024 * 1024)
    assert_nothing_kept(res, tmp_path, "too-large")
    assert "decoded" in res.detail


@pytest.mark.parametrize("coding", ["br", "gzip, br", "zstd", "compress"])
def test_a_coding_kiel_does_not_undo_is_kept_as_received_and_named(srv, tmp_path, coding):
    # Bytes as a brotli (or other) encoder left them: never stored as if decoded.
    wire = b"\x1b\x03\x00\xf8\xa5\x02\xc0" + os.urandom(200)
    res = fetch(srv, hs.encoded(wire, coding), tmp_path)
    assert res.status == "200" and res.error is None
    assert Path(res.tmp_path).read_bytes() == wire
    assert res.encoding == coding
    assert res.type != "application-pdf"  # the type is sniffed from what is stored


def test_gzip_followed_by_garbage_is_not_kept(srv, tmp_path):
    data = gzip.compress(BODY) + b"<html>not part of it</html>"
    res = fetch(srv, hs.encoded(data, "gzip"), tmp_path)
    assert_nothing_kept(res, tmp_path, "decoding")


def test_gzip_padded_with_nul_bytes_is_whole(srv, tmp_path):
    data = gzip.compress(BODY) + b"\0" * 512
    assert_whole(fetch(srv, hs.encoded(data, "gzip"), tmp_path), tmp_path)


def test_empty_body_under_gzip_is_an_empty_body(srv, tmp_path):
    res = fetch(srv, hs.encoded(b"", "gzip"), tmp_path)
    assert res.status == "200" and res.size == 0 and res.error is None


def test_headers_are_kept_as_received_in_order(srv, tmp_path):
    head = (b"HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Type: application/pdf\r\n"
            b"Link: <https://example.org/a>; rel=\"cite-as\"\r\nX-A: 1\r\nx-a: one more\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n")
    res = fetch(srv, hs.raw(head + BODY), tmp_path)
    assert res.status == "200"
    assert res.headers == (("X-B", "2"), ("Content-Type", "application/pdf"),
                           ("Link", '<https://example.org/a>; rel="cite-as"'),
                           ("X-A", "1"), ("x-a", "one more"),
                           ("Content-Length", str(len(BODY))))
    assert res.address == "127.0.0.1"
