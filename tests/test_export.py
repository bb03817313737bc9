"""``kiel export``: a store made by real renewals over three nights against a
server on 127.0.0.1, written as WARC and WACZ, then read back by warcio,
replayed by pywb and checked by py-wacz (docs/export.md)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from test_discovery import minimal_pdf
from warcio.archiveiterator import ArchiveIterator
from werkzeug import Request, Response

from kiel import home as home_mod
from kiel import notes, store
from kiel.escape import escape
from kiel.export import ExportError, Selection, export, parse_when

from kit.cdp_pipe import ALL_TEXT, Browser, Files
from kit.homes import TEST_SETTINGS, Clock, run, set_config, text, write_amf

FIXTURES = Path(__file__).parent / "fixtures" / "platforms" / "dataverse"
BIN = Path(sys.executable).parent
NIGHT = 86400
PID = "doi:10.7910/DVN/KIEL01"
# What the server sends in a header, as bytes on the wire: UTF-8 and a Latin-1 byte.
DISPOSITION = 'attachment; filename="caf\u00c3\u00a9 \u00e2\u0082\u00ac.pdf"'  # UTF-8 bytes
DISPOSITION_BYTES = b'attachment; filename="caf\xc3\xa9 \xe2\x82\xac.pdf"'
LATIN = "M\u00fcller"
LATIN_BYTES = b"M\xfcller"


def page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"</head><body><h1>{title}</h1><p>{body}</p></body></html>").encode()


def landing() -> bytes:
    return (b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>A paper</title>"
            b"<meta name='citation_pdf_url' content='/files/1.pdf'></head>"
            b"<body><h1>A paper</h1><p>Landing page text of Kiel</p></body></html>")


@dataclass
class Site:
    """The server's answers, night by night."""

    night: int = 0
    seen_conditional: list[str] = field(default_factory=list)

    def handler(self, request: Request) -> Response:
        p = request.path
        if p == "/same.pdf":
            return Response(minimal_pdf("always the same"), content_type="application/pdf")
        if p == "/changes.html":
            return Response(page("Changing", f"version of night {min(self.night, 1)}"),
                            content_type="text/html; charset=utf-8")
        if p == "/etag.html":
            if request.headers.get("If-None-Match") == '"v1"':
                self.seen_conditional.append(p)
                return Response(status=304, headers={"ETag": '"v1"',
                                                     "X-Night": str(self.night)})
            return Response(page("Tagged", "confirmed by 304 later"),
                            content_type="text/html", headers={"ETag": '"v1"'})
        if p == "/redirect":
            return Response(b"", status=302, headers={"Location": "/target.html"})
        if p == "/target.html":
            return Response(page("Target", "where the redirect leads"),
                            content_type="text/html")
        if p == "/missing":
            return Response(b"not here", status=404, content_type="text/plain")
        if p == "/gz.html":
            body = gzip.compress(page("Compressed", "sent gzip-encoded"))
            return Response(body, content_type="text/html",
                            headers={"Content-Encoding": "gzip"})
        if p == "/nonascii.pdf":
            return Response(minimal_pdf("non-ASCII header values"),
                            content_type="application/pdf",
                            headers={"Content-Disposition": DISPOSITION, "X-Author": LATIN})
        if p == "/paper/1":
            return Response(landing(), content_type="text/html")
        if p == "/files/1.pdf":
            return Response(minimal_pdf("the discovered full text"),
                            content_type="application/pdf")
        if p == "/other.html":
            return Response(page("Other", f"night {self.night}"), content_type="text/html")
        return deposit(request)


def deposit(request: Request) -> Response:
    p = request.path
    if p == "/dataset.xhtml":
        return Response(b"<html><body>dataset</body></html>", content_type="text/html")
    if p == "/api/datasets/:persistentId/versions/:latest-published":
        api = (FIXTURES / "api" / "kiel01-latest.json").read_bytes()
        return Response(api, content_type="application/json")
    if p == "/api/access/datafile/11":
        return Response((FIXTURES / "files" / "panel.dta").read_bytes(),
                        content_type="application/x-stata")
    if p == "/api/access/datafile/12":
        return Response((FIXTURES / "files" / "analysis.do").read_bytes(),
                        content_type="text/plain")
    return Response(b"no such path", status=404)


@dataclass(frozen=True)
class Store:
    home: str
    nights: tuple[int, int, int]
    urls: dict[str, str]
    tmp: Path


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _ftp_server(root: Path):
    """A real FTP server on 127.0.0.1 (anonymous, read-only) serving one PDF."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    (root / "pub").mkdir(parents=True)
    (root / "pub" / "paper.pdf").write_bytes(minimal_pdf("over FTP"))
    auth = DummyAuthorizer()
    auth.add_anonymous(str(root))
    handler = type("Handler", (FTPHandler,), {"authorizer": auth})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.05},
                     daemon=True).start()
    return server


@pytest.fixture(scope="module")
def kstore(tmp_path_factory: pytest.TempPathFactory) -> Store:
    tmp = tmp_path_factory.mktemp("export")
    site = Site()
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("").respond_with_handler(site.handler)
    server.start()
    ftp = _ftp_server(tmp / "ftproot")
    try:
        h = home_mod.Home(str(tmp / "home"))
        home_mod.init(h)
        with open(h.conf, "a", encoding="utf-8") as f:
            f.write(TEST_SETTINGS)
        set_config(h, max_file_count=10)
        u = {n: server.url_for(p) for n, p in (
            ("same", "/same.pdf"), ("changes", "/changes.html"), ("etag", "/etag.html"),
            ("redirect", "/redirect"), ("target", "/target.html"), ("missing", "/missing"),
            ("gz", "/gz.html"), ("nonascii", "/nonascii.pdf"), ("landing", "/paper/1"),
            ("full", "/files/1.pdf"), ("other", "/other.html"))}
        u["dataset"] = server.url_for("/dataset.xhtml") + f"?persistentId={PID}"
        u["refused"] = f"http://127.0.0.1:{_closed_port()}/nothing"
        u["ftp"] = f"ftp://127.0.0.1:{ftp.address[1]}/pub/paper.pdf"
        clock = Clock()
        nights = []
        for night in range(3):
            site.night = night
            extra = "<abstract>changed on the second night</abstract>" if night else ""
            src = write_amf(
                tmp / "in" / "a.xml",
                text("RePEc:aaa:wpaper:1", u["same"], u["changes"], u["etag"], u["redirect"],
                     u["missing"], u["gz"], u["nonascii"], display=u["landing"], extra=extra),
                text("RePEc:aaa:wpaper:4", u["dataset"]),
                text("RePEc:bbb:wpaper:1", u["other"], u["refused"], u["ftp"]))
            s = run(h, src, clock=clock)
            assert s.input_errors == 0, s.problems
            nights.append(int(clock()))
            clock.advance(NIGHT)
        assert site.seen_conditional, "the server never saw a conditional request"
    finally:
        server.stop()
        ftp.close_all()
    return Store(h.root, (nights[0], nights[1], nights[2]), u, tmp)


# -- reading an export back ---------------------------------------------------------

@dataclass(frozen=True)
class Rec:
    type: str
    uri: str
    date: str
    id: str
    warc: dict[str, str]
    http: bytes | None  # the HTTP header block as written
    status: str | None
    payload: bytes


def read_warc(path: Path) -> list[Rec]:
    out = []
    with open(path, "rb") as f:
        for r in ArchiveIterator(f, arc2warc=False, ensure_http_headers=False):
            http_block = None
            status = None
            if r.http_headers is not None:
                status = r.http_headers.get_statuscode()
            payload = r.raw_stream.read()
            out.append(Rec(r.rec_type, r.rec_headers.get_header("WARC-Target-URI") or "",
                           r.rec_headers.get_header("WARC-Date"),
                           r.rec_headers.get_header("WARC-Record-ID"),
                           dict(r.rec_headers.headers), http_block, status, payload))
    return out


def fields(rec: Rec) -> list[tuple[str, str]]:
    out = []
    for line in rec.payload.decode("utf-8").split("\r\n"):
        if line:
            k, v = line.split(": ", 1)
            out.append((k, v))
    return out


def store_attempts(root: str, sel: Selection, prefix: str = "") -> dict[str, str]:
    """Every attempt file of the store the selection takes, by store path,
    with its status: what an export must hold, found by listing the store."""
    out = {}
    base = Path(root) / "store"
    for d in sorted(base.rglob("00url")):
        obj = d.parent
        rel_rec = str(obj.parent.relative_to(base))
        if prefix and not rel_rec.startswith(prefix):
            continue
        for name in os.listdir(obj):
            parsed = store.parse_attempt(name)
            if parsed and sel.takes(parsed[0]) and parsed[1] != "000":
                out[str((obj / name).relative_to(base))] = parsed[1]
    return out


def store_versions(root: str, sel: Selection, prefix: str = "") -> set[str]:
    base = Path(root) / "store"
    return {str(p.relative_to(base)) for p in base.rglob("*.amf.xml")
            if sel.takes(int(p.name.split(".")[0]))
            and str(p.parent.relative_to(base)).startswith(prefix)}


def exported(kstore: Store, name: str, sel: Selection | None = None) -> Path:
    out = kstore.tmp / name
    if not out.exists():
        export(kstore.home, str(out), sel or Selection())
    return out


# -- the tests ----------------------------------------------------------------------

def test_warcio_check_passes(kstore):
    out = exported(kstore, "all.warc.gz")
    r = subprocess.run([str(BIN / "warcio"), "check", "-v", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "digest pass" in r.stdout  # it did check digests


def test_each_record_its_own_gzip_member(kstore):
    out = exported(kstore, "all.warc.gz")
    data = out.read_bytes()
    members = 0
    while data:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        record = d.decompress(data)
        assert record.startswith(b"WARC/1.1\r\n") and record.endswith(b"\r\n\r\n")
        data = d.unused_data
        members += 1
    assert members == len(read_warc(out))


def test_every_payload_is_the_stored_file_byte_for_byte(kstore):
    out = exported(kstore, "all.warc.gz")
    recs = read_warc(out)
    assert recs[0].type == "warcinfo"
    by_id = {r.id: r for r in recs}
    base = Path(kstore.home) / "store"
    linked = {}
    for m in (r for r in recs if r.type == "metadata" and "WARC-Refers-To" in r.warc):
        f = dict(fields(m))
        target = by_id[m.warc["WARC-Refers-To"]]
        linked[f["store-file"]] = target
        stored = (base / f["store-file"]).read_bytes()
        if target.type == "revisit":
            original = by_id[target.warc["WARC-Refers-To"]]
            assert original.type == "response" and original.payload == stored
            assert target.warc["WARC-Refers-To-Target-URI"] == original.uri
            assert target.warc["WARC-Refers-To-Date"] == original.date
            assert target.warc["WARC-Payload-Digest"] == original.warc["WARC-Payload-Digest"]
            assert target.payload == b""
        else:
            assert target.payload == stored, f["store-file"]
        assert f["record"].startswith("urn:kiel:record:RePEc:")
    # every attempt file with an answer, and nothing else
    assert set(linked) == set(store_attempts(kstore.home, Selection()))
    versions = {r.payload for r in recs if r.uri.startswith("urn:kiel:record:")}
    assert versions == {(base / v).read_bytes()
                        for v in store_versions(kstore.home, Selection())}


def test_the_mapping_of_each_kind_of_answer(kstore):
    recs = read_warc(exported(kstore, "all.warc.gz"))
    u = kstore.urls
    n1, n2, n3 = kstore.nights

    def at(url: str, tist: int) -> Rec:
        (r,) = [r for r in recs if r.uri == url and r.type in ("response", "revisit")
                and r.date == _iso(tist)]
        return r

    # the same body: one response, then revisits of it
    assert at(u["same"], n1).type == "response"
    for n in (n2, n3):
        rv = at(u["same"], n)
        assert rv.type == "revisit" and rv.warc["WARC-Refers-To-Date"] == _iso(n1)
        assert rv.warc["WARC-Profile"] == ("http://netpreserve.org/warc/1.1/revisit/"
                                           "identical-payload-digest")
    # a body that changed: a response each time it changed
    assert at(u["changes"], n1).type == at(u["changes"], n2).type == "response"
    assert at(u["changes"], n1).payload != at(u["changes"], n2).payload
    assert at(u["changes"], n3).type == "revisit"
    # a 304 is a revisit replayed as the 200 it confirmed, its own fields kept
    rv = at(u["etag"], n2)
    assert rv.type == "revisit" and rv.status == "200"
    raw = _raw_record(exported(kstore, "all.warc.gz"), rv.id)
    assert b"X-Night: 1\r\n" in raw and b'ETag: "v1"\r\n' in raw
    # a redirect: its status line and Location, no payload
    red = at(u["redirect"], n1)
    assert red.type == "response" and red.status == "302" and red.payload == b""
    raw = _raw_record(exported(kstore, "all.warc.gz"), red.id)
    assert b"\r\nLocation: /target.html\r\n" in raw and b"\r\nContent-Length: 0\r\n" in raw
    # a 404 with its body
    miss = at(u["missing"], n1)
    assert (miss.status, miss.payload) == ("404", b"not here")
    # gzip on the wire, stored decoded: the body as stored, the coding kept aside
    gz = at(u["gz"], n1)
    raw = _raw_record(exported(kstore, "all.warc.gz"), gz.id)
    assert b"\r\nX-Archive-Orig-Content-Encoding: gzip\r\n" in raw
    assert b"\r\nContent-Encoding:" not in raw
    assert gz.payload.startswith(b"<!DOCTYPE html>") and b"Compressed" in gz.payload
    assert b"\r\nContent-Length: %d\r\n" % len(gz.payload) in raw
    # non-ASCII header values: the bytes received, not percent-encoded
    raw = _raw_record(exported(kstore, "all.warc.gz"), at(u["nonascii"], n1).id)
    assert b"\r\nContent-Disposition: " + DISPOSITION_BYTES + b"\r\n" in raw
    assert b"\r\nX-Author: " + LATIN_BYTES + b"\r\n" in raw
    # 000: never a response, counted in a metadata record
    assert not [r for r in recs if r.uri == u["refused"] and r.type != "metadata"]
    (na,) = [r for r in recs if r.uri == u["refused"] and r.type == "metadata"]
    assert [k for k, _ in fields(na)].count("no-answer") == 3
    # FTP: no HTTP answer to write: a resource record each time, the body as stored
    ftp = [r for r in recs if r.uri == u["ftp"] and r.type != "metadata"]
    assert [r.type for r in ftp] == ["resource"] * 3
    assert {r.warc["Content-Type"] for r in ftp} == {"application/pdf"}
    assert {r.payload for r in ftp} == {minimal_pdf("over FTP")}
    # versions: resource records under the record's URI, at their tist
    vs = [r for r in recs if r.type == "resource" and r.uri == "urn:kiel:record:RePEc:aaa:wpaper:1"]
    assert [r.date for r in vs] == [_iso(n1), _iso(n2)]
    assert all(r.warc["Content-Type"] == "application/xml" for r in vs)


def test_discovered_and_deposit_files_name_where_they_came_from(kstore):
    recs = read_warc(exported(kstore, "all.warc.gz"))
    u = kstore.urls
    meta = [dict(fields(r)) for r in recs if r.type == "metadata" and r.uri == u["full"]]
    assert meta and all(m["via"] == f"{u['landing']} citation_pdf_url" for m in meta)
    dep = [dict(fields(r)) for r in recs
           if r.type == "metadata" and "/api/access/datafile/" in r.uri]
    assert len(dep) == 2
    for m in dep:
        assert m["deposit"].startswith(f"dataverse 127.0.0.1 {PID}")
        assert "/api/datasets/:persistentId/versions/:latest-published" in m["manifest"]
        assert m["record"] == "urn:kiel:record:RePEc:aaa:wpaper:4"


def _iso(tist: int) -> str:
    from kiel.tist import iso

    return iso(tist)


def _raw_record(path: Path, rid: str) -> bytes:
    data = path.read_bytes()
    while data:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        record = d.decompress(data)
        if f"WARC-Record-ID: {rid}\r\n".encode() in record:
            return record
        data = d.unused_data
    raise AssertionError(rid)


# -- selection -----------------------------------------------------------------------

@pytest.mark.parametrize("name,sel_args,prefix", [
    ("from", {"since": 1}, ""),
    ("until", {"until": 0}, ""),
    ("between", {"since": 1, "until": 1}, ""),
    ("prefix", {"prefixes": ("RePEc:bbb",)}, "RePEc/bbb"),
    ("record", {"prefixes": ("RePEc:aaa:wpaper:4", "RePEc:aaa:wpaper:4")},
     "RePEc/aaa/wpaper/4"),
])
def test_selection_takes_exactly_what_it_names(kstore, name, sel_args, prefix):
    nights = kstore.nights
    sel = Selection(
        prefixes=sel_args.get("prefixes", ()),
        since=parse_when(str(nights[sel_args["since"]])) if "since" in sel_args else None,
        before=parse_when(str(nights[sel_args["until"]]), end=True)
        if "until" in sel_args else None)
    recs = read_warc(exported(kstore, f"sel-{name}.warc.gz", sel))
    got = {dict(fields(r))["store-file"] for r in recs
           if r.type == "metadata" and "WARC-Refers-To" in r.warc}
    assert got == set(store_attempts(kstore.home, sel, prefix))
    assert got
    base = Path(kstore.home) / "store"
    versions = {r.payload for r in recs if r.uri.startswith("urn:kiel:record:")}
    assert versions == {(base / v).read_bytes() for v in store_versions(kstore.home, sel, prefix)}
    info = dict(fields(recs[0]))
    assert info["selection-prefixes"] == (" ".join(sel.prefixes) or "(the whole store)")


def test_when_takes_a_tist_or_an_iso_date():
    assert parse_when("1700000000") == 1700000000
    assert parse_when("1700000000", end=True) == 1700000001
    assert parse_when("2023-11-14") == 1699920000
    assert parse_when("2023-11-14", end=True) == 1699920000 + NIGHT
    assert parse_when("2023-11-14T22:13:20Z") == 1700000000
    assert parse_when("2023-11-14T23:13:20+01:00") == 1700000000
    with pytest.raises(ExportError, match="not a tist nor an ISO 8601 date"):
        parse_when("yesterday")


def test_cli_refuses_a_wrong_ending_and_an_existing_output(kstore, tmp_path):
    r = subprocess.run([sys.executable, "-m", "kiel", "export", "--home", kstore.home,
                        "-o", str(tmp_path / "x.zip")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "must end in .warc.gz (WARC) or .wacz (WACZ)" in r.stderr
    (tmp_path / "there.warc.gz").write_bytes(b"precious")
    r = subprocess.run([sys.executable, "-m", "kiel", "export", "--home", kstore.home,
                        "-o", str(tmp_path / "there.warc.gz")], capture_output=True, text=True)
    assert r.returncode == 2 and "exists: an export never replaces a file" in r.stderr
    assert (tmp_path / "there.warc.gz").read_bytes() == b"precious"
    r = subprocess.run([sys.executable, "-m", "kiel", "export", "--home", kstore.home,
                        "-o", str(tmp_path / "ok.warc.gz"), "RePEc:bbb"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "3 attempts without an answer noted" in r.stdout
    assert sorted(os.listdir(tmp_path)) == ["ok.warc.gz", "there.warc.gz"]  # no leftovers


# -- replay in pywb ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pywb(kstore: Store):
    """A real pywb on 127.0.0.1 with the export in collection ``kiel``."""
    out = exported(kstore, "all.warc.gz")
    root = kstore.tmp / "pywb"
    root.mkdir()
    for args in (["init", "kiel"], ["add", "kiel", str(out)]):
        subprocess.run([str(BIN / "wb-manager"), *args], cwd=root, check=True,
                       capture_output=True, timeout=120)
    port = _closed_port()
    log = open(root / "wayback.log", "wb")  # noqa: SIM115  # closed below
    proc = subprocess.Popen([str(BIN / "wayback"), "-p", str(port), "-b", "127.0.0.1"],
                            cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(600):  # until it answers, or it died
                assert proc.poll() is None, (root / "wayback.log").read_text()
                try:
                    client.get(base + "/")
                    break
                except httpx.TransportError:
                    _wait_port(port)
            yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_port(port: int) -> None:
    """Block until something listens on ``port`` (at most 0.1 s)."""
    s = socket.socket()
    s.settimeout(0.1)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        import select

        select.select([], [], [], 0.1)
    finally:
        s.close()


def test_pywb_replays_every_attempt_at_its_time(kstore, pywb):
    base = Path(kstore.home) / "store"
    seen = {"200": 0, "304": 0, "302": 0, "404": 0, "revisit": 0}
    with httpx.Client(timeout=30) as client:
        for rel, status in sorted(store_attempts(kstore.home, Selection()).items()):
            path = base / rel
            url = (path.parent / "00url").read_text().rstrip("\n")
            tist = int(path.name.split("_")[0])
            ts = _iso(tist).replace("-", "").replace(":", "").replace("T", "")[:14]
            r = client.get(f"{pywb}/kiel/{ts}id_/{url}")
            stored = path.read_bytes()  # through a link: the earlier body
            if status.startswith("3") and status != "304":
                assert r.status_code == int(status), (rel, r.status_code)
                loc = dict(notes_headers(path))["location"]
                assert r.headers["location"].endswith(loc), (rel, r.headers["location"])
                seen["302"] += 1
                continue
            # a 304 replays as the body it confirmed, with that answer's status
            # (an FTP answer is a resource record: replayed as a 200)
            want = 200 if status == "304" or url.startswith("ftp://") else int(status)
            assert (r.status_code, r.content) == (want, stored), rel
            seen[status if status in seen else "200"] += 1
            seen["revisit"] += path.is_symlink()
    assert all(seen.values()), seen
    # and a record's versions under its URI, each at its time
    rdir = base / "RePEc" / "aaa" / "wpaper" / "1"
    with httpx.Client(timeout=30) as client:
        for tist, name in store.versions(str(rdir)):
            ts = _iso(tist).replace("-", "").replace(":", "").replace("T", "")[:14]
            r = client.get(f"{pywb}/kiel/{ts}id_/urn:kiel:record:RePEc:aaa:wpaper:1")
            assert (r.status_code, r.content) == (200, (rdir / name).read_bytes())


def notes_headers(path: Path) -> list[tuple[str, str]]:
    for e in notes.entries(str(path.parent / "00notes")):
        if e.get("file") == path.name:
            return [(k.lower(), v) for k, v in e["headers"]]
    raise AssertionError(path)


# -- WACZ ------------------------------------------------------------------------------

def test_wacz_validates_and_its_index_is_what_cdxj_indexer_makes(kstore, tmp_path):
    if not (BIN / "wacz").exists() and sys.version_info < (3, 11):
        pytest.skip("py-wacz needs Python 3.11 (setup.cfg installs it from there on)")
    out = exported(kstore, "all.wacz")
    r = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "the passed WACZ is valid" in r.stdout, r.stdout + r.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names == ["archive/all.warc.gz", "indexes/index.cdx", "pages/pages.jsonl",
                         "datapackage.json", "datapackage-digest.json"]
        assert z.getinfo("archive/all.warc.gz").compress_type == zipfile.ZIP_STORED
        # ReplayWeb.page takes an entry's data offset from the central
        # directory when that has no extra field: the local header must agree.
        raw = out.read_bytes()
        for info in z.infolist():
            local_extra = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30],
                                         "little")
            assert local_extra == len(info.extra), info.filename
        z.extractall(tmp_path)
        package = json.loads(z.read("datapackage.json"))
    assert package["wacz_version"] == "1.1.1"
    warc = tmp_path / "archive" / "all.warc.gz"
    # the WARC inside is a whole export: warcio checks it
    r = subprocess.run([str(BIN / "warcio"), "check", str(warc)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the index lines are those py-wacz's indexer writes for that WARC, sorted
    theirs = subprocess.run([str(BIN / "cdxj-indexer"), str(warc)], capture_output=True,
                            check=True).stdout.splitlines()
    ours = (tmp_path / "indexes" / "index.cdx").read_bytes().splitlines()
    assert ours == sorted(theirs) and len(ours) > 40
    # every page listed is a stored 200 HTML page or PDF, at an attempt's time
    pages = [json.loads(x) for x in (tmp_path / "pages" / "pages.jsonl").read_text().splitlines()]
    assert pages[0]["format"] == "json-pages-1.0"
    urls = {p["url"] for p in pages[1:]}
    u = kstore.urls
    assert {u["landing"], u["full"], u["same"], u["target"], u["gz"]} <= urls
    assert u["missing"] not in urls and u["redirect"] not in urls


def test_wacz_index_sorts_through_chunk_files(kstore, tmp_path, monkeypatch):
    """The index is sorted on disk, not in memory: with tiny chunks the
    package is the same."""
    from kiel.export import output

    orig = output.ExternalSort

    def tiny(workdir: str, chunk_bytes: int = 0) -> output.ExternalSort:
        return orig(workdir, chunk_bytes=512)

    monkeypatch.setattr(output, "ExternalSort", tiny)
    out = tmp_path / "tiny.wacz"
    export(kstore.home, str(out))
    with zipfile.ZipFile(out) as z:
        lines = z.read("indexes/index.cdx").splitlines()
    assert lines == sorted(lines) and len(lines) > 40
    if (BIN / "wacz").exists():
        r = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout


# -- ReplayWeb.page --------------------------------------------------------------------

TOP = Path(__file__).resolve().parent.parent
RWP = Path(os.environ.get("KIEL_REPLAYWEBPAGE", TOP / ".venv" / "share" / "replaywebpage"))
ARTIFACTS = Path(os.environ.get("KIEL_TEST_ARTIFACTS", TOP / ".venv" / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI: scripts/setup-env --test installs it")
    pytest.skip(f"{what} is not installed (scripts/setup-env --test installs it)")


def test_replaywebpage_opens_the_wacz_and_shows_a_stored_page(kstore, tmp_path):
    _need("chromium", CHROMIUM is not None)
    _need(f"ReplayWeb.page ({RWP})", (RWP / "sw.js").is_file() and (RWP / "ui.js").is_file())
    out = exported(kstore, "all.wacz")
    n1, n2, _ = kstore.nights
    shots = []
    for url, tist, want, not_want in (
            (kstore.urls["landing"], n1, "Landing page text of Kiel", None),
            (kstore.urls["changes"], n1, "version of night 0", "version of night 1"),
            (kstore.urls["changes"], n2, "version of night 1", "version of night 0")):
        ts = _iso(tist).replace("-", "").replace(":", "").replace("T", "")[:14]
        # The embedding page: ReplayWeb.page's own app and service worker
        # under /replay/, the package beside them; nothing leaves 127.0.0.1.
        embed = (f'<!doctype html><html><head><script src="/replay/ui.js"></script></head>'
                 f'<body style="margin:0"><replay-web-page style="display:block;width:1000px;'
                 f'height:700px" source="/all.wacz" url="{url}" ts="{ts}" '
                 f'replayBase="/replay/" embed="replayonly"></replay-web-page></body></html>')
        with Files({"/": embed.encode(), "/all.wacz": str(out)}, {"/replay/": str(RWP)}) as fs:
            browser = Browser(CHROMIUM, str(tmp_path / f"profile-{len(shots)}"),
                              f"http://127.0.0.1:{fs.port}/", str(tmp_path / "chromium.log"))
            try:
                shown = browser.wait_for(ALL_TEXT, lambda v, w=want: w in (v or ""), 90)
                shot = browser.screenshot()
            finally:
                browser.close()
        assert want in (shown or ""), (shown, fs.requests[-20:])
        if not_want:
            assert not_want not in shown
        assert any(r.startswith("GET /all.wacz") for r in fs.requests)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"export-replaywebpage-{len(shots)}.png"
        path.write_bytes(shot)
        shots.append(path)
        assert shot.startswith(b"\x89PNG")
    print("ReplayWeb.page screenshots:", *shots)


def test_a_damaged_store_is_exported_with_each_problem_named(kstore, tmp_path):
    """What cannot be exported is named, the rest is written, exit status 1;
    the store is not touched."""
    home = tmp_path / "home"
    shutil.copytree(kstore.home, home, symlinks=True)
    base = home / "store"
    u = kstore.urls
    n1, n2, n3 = kstore.nights
    same = base / "RePEc/aaa/wpaper/1" / escape(u["same"])
    (same / f"{n2}_200_application-pdf").unlink()  # named by the notes, gone
    (same / f"{n3}_200_application-pdf").unlink()
    (same / f"{n3}_200_application-pdf").symlink_to("../../../../../../outside")  # leaves
    changes = base / "RePEc/aaa/wpaper/1" / escape(u["changes"])
    first = changes / f"{n1}_200_text-html"
    first.write_bytes(first.read_bytes().replace(b"night 0", b"night X"))  # bit rot
    before = {p: p.read_bytes() for p in base.rglob("*") if p.is_file() and not p.is_symlink()}
    out = tmp_path / "damaged.warc.gz"
    r = subprocess.run([sys.executable, "-m", "kiel", "export", "--home", str(home),
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    rel = f"RePEc/aaa/wpaper/1/{escape(u['same'])}"
    assert (f"not exported: {rel}/{n2}_200_application-pdf: named by the notes but missing: "
            "not exported") in r.stdout
    assert (f"not exported: {rel}/{n3}_200_application-pdf: a link to no attempt file in "
            "the store: not exported") in r.stdout
    assert f"{escape(u['changes'])}/{n1}_200_text-html: sha1 " in r.stdout
    assert "written as it is now" in r.stdout
    recs = read_warc(out)
    (bad,) = [x for x in recs if x.uri == u["changes"] and x.date == _iso(n1)
              and x.type == "response"]
    assert b"night X" in bad.payload
    assert len([x for x in recs if x.uri == u["same"] and x.type != "metadata"]) == 1
    subprocess.run([str(BIN / "warcio"), "check", str(out)], check=True, capture_output=True)
    assert before == {p: p.read_bytes() for p in base.rglob("*")
                      if p.is_file() and not p.is_symlink()}
