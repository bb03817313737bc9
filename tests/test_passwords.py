"""No password of a URL reaches a file Kiel writes.

A real renewal against a server on 127.0.0.1 whose URLs carry a user and a
password (a record's file, a landing page that redirects to a second URL
with its own password, an answer whose ``Link`` header names a third), then
every file under the home is searched for the passwords. The stored
versions are the records as their authors wrote them (docs/contract.md) and
are left out of the search; nothing else is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from werkzeug import Response

from kiel import notes

from kit.homes import Clock, record_dir, run, text, write_amf

SECRETS = (b"secret1", b"secret2", b"secret3", b"secret4")


def files_holding(root: str, needles: tuple[bytes, ...]) -> list[str]:
    out = []
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            if name.endswith(".amf.xml") or os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            out += [f"{path}: {n.decode()}" for n in needles if n in data]
    return out


def test_no_password_reaches_any_file_of_the_home(home, tmp_path: Path, httpserver):
    port = httpserver.port
    base = f"127.0.0.1:{port}"
    httpserver.expect_request("/paper.pdf").respond_with_response(Response(
        b"%PDF-1.4\n%%EOF\n", content_type="application/pdf",
        headers={"Link": f"<http://u3:secret3@{base}/other>; rel=alternate"}))
    httpserver.expect_request("/old").respond_with_response(Response(
        b"", status=301, headers={"Location": f"http://u2:secret2@{base}/new"}))
    httpserver.expect_request("/new").respond_with_data(b"<html>landing</html>",
                                                        content_type="text/html")
    src = write_amf(tmp_path / "in" / "a.xml", text(
        "RePEc:aaa:wpaper:1", f"http://user:secret1@{base}/paper.pdf",
        display=f"http://user:secret1@{base}/old"))
    clock = Clock()
    run(home, src, clock=clock)
    clock.advance(86400)
    run(home, src, clock=clock)
    # The server was sent the credentials as given.
    assert any(r.authorization is not None and r.authorization.password == "secret1"
               for r, _ in httpserver.log)
    # A manifest line, as the deposit engine writes one, goes through the same writer.
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    notes.append(str(rdir / "00notes"), {
        "event": "manifest", "tist": int(clock.t), "platform": "zenodo", "domain": "z",
        "deposit": "1", "api": [f"http://api:secret4@{base}/api/records/1"],
        "bundle": f"https://api:secret4@{base}/b.zip",
        "files": [{"path": "d.csv", "url": f"http://api:secret4@{base}/files/d.csv"}],
        "urls": {f"http://api:secret4@{base}/k": [f"ftp://a:secret4@{base}/f"]}})
    assert files_holding(home.root, SECRETS) == []
    last = json.loads((rdir / "00notes").read_bytes().splitlines()[-1])
    assert last["api"] == [f"http://api:***@{base}/api/records/1"]
    assert last["files"][0]["url"] == f"http://api:***@{base}/files/d.csv"
    assert list(last["urls"]) == [f"http://api:***@{base}/k"]
