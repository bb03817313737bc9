"""What a renewal asks of a server about the copy it holds: conditional
requests, one night of unconditional ones (``--refresh``), and an
unconditional request when its own copy no longer has its noted size."""

from __future__ import annotations

from pathlib import Path

from werkzeug import Request, Response

from kiel import notes

from kit.cli import renew as cli_renew
from kit.homes import minimal_pdf, object_dir, text, write_amf

ETAG = '"v1"'


class Recorder:
    """A URL that answers 304 to its own ETag, noting each request's validators."""

    def __init__(self, body: bytes):
        self.body = body
        self.seen: list[tuple[str | None, str | None]] = []

    def __call__(self, request: Request) -> Response:
        self.seen.append((request.headers.get("If-None-Match"),
                          request.headers.get("If-Modified-Since")))
        if request.headers.get("If-None-Match") == ETAG:
            return Response(status=304, headers={"ETag": ETAG})
        return Response(self.body, content_type="application/pdf",
                        headers={"ETag": ETAG,
                                 "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})


def lines(d: Path) -> list[dict]:
    return [e for e in notes.entries(str(d / "00notes")) if "status" in e]


def test_refresh_asks_unconditionally_for_one_run(home, httpserver, tmp_path):
    pdf = minimal_pdf("refreshed")
    server = Recorder(pdf)
    httpserver.expect_request("/files/1.pdf").respond_with_handler(server)
    rid = "RePEc:aaa:wpaper:1"
    url = httpserver.url_for("/files/1.pdf")
    src = write_amf(tmp_path / "a.xml", text(rid, url))
    for args in ((), (), ("--refresh",), ()):
        r = cli_renew(home, *args, "--quiet", src)
        assert r.returncode == 0, r.stderr
    cond = (ETAG, "Mon, 01 Jan 2024 00:00:00 GMT")
    assert server.seen == [(None, None), cond, (None, None), cond]
    statuses = [e["status"] for e in lines(object_dir(home, rid, url))]
    assert statuses == ["200", "304", "200", "304"]
    # the refreshed body is the same: a link to the first, not a second copy
    third = lines(object_dir(home, rid, url))[2]
    assert third["link"] == lines(object_dir(home, rid, url))[0]["file"]
