"""What a renewal asks of a server about the copy it holds: conditional
requests, one night of unconditional ones (``--refresh``), and an
unconditional request when its own copy no longer has its noted size."""

from __future__ import annotations

import os
from pathlib import Path

from werkzeug import Request, Response

from kiel import notes

from kit.cli import renew as cli_renew
from kit.homes import minimal_pdf, object_dir, run, text, write_amf

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


def test_a_body_that_lost_its_size_is_asked_for_again(home, httpserver, tmp_path, clock):
    pdf = minimal_pdf("kept whole")
    server = Recorder(pdf)
    httpserver.expect_request("/files/2.pdf").respond_with_handler(server)
    rid = "RePEc:aaa:wpaper:2"
    url = httpserver.url_for("/files/2.pdf")
    src = write_amf(tmp_path / "a.xml", text(rid, url))
    run(home, src, clock=clock)
    d = object_dir(home, rid, url)
    (first,) = lines(d)
    stored = d / first["file"]
    damaged = pdf[:-7]
    stored.write_bytes(damaged)  # truncated on disk: its size no longer matches
    before = os.stat(stored)

    clock.advance(86400)
    run(home, src, clock=clock)
    assert server.seen[-1] == (None, None)  # unconditional
    second = lines(d)[-1]
    assert second["status"] == "200" and second["link"] is None
    assert (d / second["file"]).read_bytes() == pdf and not os.path.islink(d / second["file"])
    assert second["damaged"] == {"file": first["file"], "size": len(damaged),
                                 "noted": len(pdf)}
    logs = sorted(Path(home.root, "var", "log").glob("*.log"))
    assert f"has {len(damaged)} bytes, its notes say {len(pdf)}; asked unconditionally " \
           f"(record {rid})" in logs[-1].read_text()
    # the damaged file is left as it was: nothing preserved is rewritten
    assert stored.read_bytes() == damaged and os.stat(stored).st_mtime_ns == before.st_mtime_ns

    # the new body is the one confirmed from now on
    clock.advance(86400)
    run(home, src, clock=clock)
    assert server.seen[-1][0] == ETAG
    third = lines(d)[-1]
    assert third["status"] == "304" and third["link"] == second["file"]
    assert "damaged" not in third
