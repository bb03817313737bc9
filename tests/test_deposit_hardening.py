"""Deposits under attack: hostile platforms, bundles and listings against a
real renewal. A Dataverse installation runs on loopback (any host may be
one), serving its API, its files and its "download all" zip from bytes the
test builds; the store and the notes are the test (docs/hardening.md,
Deposits)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kiel import notes

from kit.homes import record_dir, run, set_config, text, write_amf
from kit.servers import Answer, Site, wait_until

PID = "doi:10.7910/DVN/HARD01"


@dataclass
class DvFile:
    fid: int
    name: str
    body: bytes
    size: int | None = -1  # declared; -1: the body's own size
    md5: str | None = ""  # declared; "": the body's own md5
    folder: str | None = None

    def entry(self) -> dict[str, Any]:
        size = len(self.body) if self.size == -1 else self.size
        md5 = hashlib.md5(self.body).hexdigest() if self.md5 == "" else self.md5
        df: dict[str, Any] = {"id": self.fid, "filename": self.name,
                              "contentType": "application/octet-stream"}
        if size is not None:
            df["filesize"] = size
        if md5 is not None:
            df["md5"] = md5
        row: dict[str, Any] = {"label": self.name, "restricted": False, "dataFile": df}
        if self.folder:
            row["directoryLabel"] = self.folder
        return row


@dataclass
class Dataverse:
    """One dataset, its files and its bundle, served over HTTP on 127.0.0.1."""

    files: list[DvFile] = field(default_factory=list)
    bundle: bytes | None = None
    api_down: bool = False  # the API answers 503 (the files still do)
    api_body: bytes | None = None  # served instead of the dataset's JSON
    credentials: str | None = None  # "user:password" every request must send
    log: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0

    def dataset(self) -> bytes:
        if self.api_body is not None:
            return self.api_body
        return json.dumps({"status": "OK", "data": {
            "versionNumber": 1, "versionMinorNumber": 0, "versionState": "RELEASED",
            "files": [f.entry() for f in self.files]}}).encode()

    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(handler.path)
        if self.credentials is not None:
            want = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if handler.headers.get("Authorization") != want:
                return 401, {"WWW-Authenticate": 'Basic realm="dv"'}, b""
        if parts.path == "/dataset.xhtml":
            return 200, {"Content-Type": "text/html"}, b"<html><body>dataset</body></html>"
        if parts.path.startswith("/api/datasets/"):
            if self.api_down:
                return 503, {"Content-Type": "text/plain"}, b"down for maintenance"
            return 200, {"Content-Type": "application/json"}, self.dataset()
        if parts.path.startswith("/api/access/dataset/") and self.bundle is not None:
            return 200, {"Content-Type": "application/zip"}, self.bundle
        if parts.path.startswith("/api/access/datafile/"):
            fid = int(parts.path.rsplit("/", 1)[-1])
            for f in self.files:
                if f.fid == fid:
                    etag = '"' + hashlib.sha256(f.body).hexdigest()[:16] + '"'
                    if handler.headers.get("If-None-Match") == etag:
                        return 304, {"ETag": etag}, b""
                    return 200, {"Content-Type": "application/octet-stream",
                                 "ETag": etag}, f.body
        return 404, {"Content-Type": "text/plain"}, b"no such thing"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def link(self, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}/dataset.xhtml?persistentId={PID}"

    def asked(self, prefix: str) -> int:
        return sum(1 for p, _ in self.log if p.startswith(prefix))


@pytest.fixture
def dv() -> Iterator[Dataverse]:
    state = Dataverse()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, headers, body = state.answer(self)
            state.log.append((self.path, status))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield state
    server.shutdown()
    server.server_close()


RID = "RePEc:aaa:wpaper:77"
MiB = 1 << 20


def deflated_zeros(mib: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``mib`` MiB of zeros (about 1 KiB a MiB), its
    CRC and its size: one flushed block repeated, so building it is quick."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(bytes(MiB), crc)
    return piece * mib + c.flush(), crc, mib * MiB


def build_zip(members: list[tuple[str, bytes, int, int]], method: int = 8,
              flags: int = 0) -> bytes:
    """A zip written byte by byte: (name, compressed data, CRC, size the
    headers declare) for each member, so a header may lie."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size in members:
        n = name.encode("utf-8", "surrogatepass")
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc,
                           len(data), size, len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0,
                               0x21, crc, len(data), size, len(n), 0, 0, 0, 0, 0, off) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(central), len(out), 0)
    return bytes(out + central + end)


def renew(home: Any, tmp_path: Path, clock: Any, link: str, **opts: Any) -> Any:
    return run(home, write_amf(tmp_path / "a.xml", text(RID, link)), clock=clock, **opts)


def cli(home: Any, *args: str) -> Any:
    from click.testing import CliRunner

    from kiel.cli import main

    return CliRunner().invoke(main, [*args, "--home", str(home.root)])


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def manifests(home: Any) -> list[dict[str, Any]]:
    return [e for e in notes.entries(str(record_dir(home, RID) / "00notes"))
            if e.get("event") == "manifest"]


def everything_stored(home: Any) -> bytes:
    """Every file of the record directory but the record's own versions
    (the record as harvested, password included, is what is preserved)."""
    out = b""
    for p in sorted(record_dir(home, RID).rglob("*")):
        if p.is_file() and not p.name.endswith(".amf.xml"):
            out += p.read_bytes()
    return out


# -- passwords ---------------------------------------------------------------------------


def test_a_deposit_password_is_sent_as_given_and_never_written(home, dv, tmp_path, clock):
    """The platform is sent the password as the record gives it (its case
    kept: the netloc is not lower-cased), and no line Kiel writes holds it:
    the manifest note's ``api``, ``bundle`` and ``files[].url`` are redacted."""
    dv.credentials = "Reader:PassWord"
    dv.files = [DvFile(21, "a.csv", b"x,y\n1,2\n"), DvFile(22, "b.csv", b"x,y\n3,4\n")]
    set_config(home, max_file_count=10)
    s = renew(home, tmp_path, clock, dv.link("Reader:PassWord"))
    assert s.input_errors == 0, s.problems
    (m,) = manifests(home)
    assert m["failure"] is None, m
    assert [f["status"] for f in m["files"]] == ["ok", "ok"]
    assert all(code == 200 for _, code in dv.log), dv.log
    stored = everything_stored(home)
    assert b"PassWord" not in stored
    assert all("Reader:***@" in u for u in m["api"])
    assert all("Reader:***@" in f["url"] for f in m["files"])

    # the next renewal still sends it (the note's URLs are not the ones asked)
    clock.advance(86400)
    renew(home, tmp_path, clock, dv.link("Reader:PassWord"))
    assert all(code in (200, 304) for _, code in dv.log), dv.log
    assert manifests(home)[-1]["unchanged"] is True
    assert b"PassWord" not in everything_stored(home)


# -- a night without the API -------------------------------------------------------------


def test_a_night_without_the_api_is_recovered_from(home, dv, tmp_path, clock):
    """A night the API answers 503 is a failure note; the next night the files
    answer 304 to their conditional requests, and a 304 that links a body
    which matches the manifest is a verified file, not ``failed error 304``;
    the night after, the deposit is unchanged (one API request)."""
    dv.files = [DvFile(31, "a.csv", b"a,b\n1,2\n"), DvFile(32, "b.csv", b"a,b\n3,4\n"),
                DvFile(33, "c.txt", b"read me\n")]
    set_config(home, max_file_count=10)
    link = dv.link()
    renew(home, tmp_path, clock, link)
    assert [f["status"] for f in manifests(home)[-1]["files"]] == ["ok"] * 3

    dv.api_down = True
    clock.advance(86400)
    renew(home, tmp_path, clock, link)
    assert manifests(home)[-1]["failure"]["name"] == "platform-error"

    dv.api_down = False
    clock.advance(86400)
    before = len(dv.log)
    renew(home, tmp_path, clock, link)
    m = manifests(home)[-1]
    assert [code for p, code in dv.log[before:] if "datafile" in p] == [304] * 3
    assert [f["status"] for f in m["files"]] == ["ok"] * 3, m["files"]
    rdir = record_dir(home, RID)
    for f, src in zip(m["files"], dv.files, strict=True):
        assert (rdir / f["file"]).read_bytes() == src.body
        assert f["found"]["sha256"] == hashlib.sha256(src.body).hexdigest()

    clock.advance(86400)
    before = len(dv.log)
    renew(home, tmp_path, clock, link)
    assert manifests(home)[-1]["unchanged"] is True
    assert dv.asked("/api/access/datafile/") == 6  # nothing asked again
    assert cli(home, "verify", "--fixity").exit_code == 0


# -- a zip bomb in a bundle --------------------------------------------------------------


def bomb(mib: int = 256) -> tuple[bytes, list[DvFile]]:
    """Three members of ``mib`` MiB of zeros (about 1 KB a MiB), each declared
    10 bytes by the platform: the first with an honest zip header, the second
    with a header that lies too (10 bytes), the third with no size from the
    platform."""
    data, crc, size = deflated_zeros(mib)
    z = build_zip([("m0.csv", data, crc, size), ("m1.csv", data, crc, 10),
                   ("m2.csv", data, crc, size)])
    files = [DvFile(41, "m0.csv", bytes(10)), DvFile(42, "m1.csv", bytes(10)),
             DvFile(43, "m2.csv", bytes(10), size=None, md5=None)]
    return z, files


def test_a_zip_bomb_in_a_bundle_is_stopped_at_the_first_lie(home, dv, tmp_path, clock):
    """A bundle whose members inflate to 256 MiB each, declared 10 bytes by
    the platform: no member is inflated past what was declared, the whole
    bundle within ``max_total_size``; the note names each lie, in seconds."""
    dv.bundle, dv.files = bomb()
    set_config(home, max_file_count=2, max_total_size="64MiB")
    t0 = time.monotonic()
    s = renew(home, tmp_path, clock, dv.link())
    took = time.monotonic() - t0
    assert s.input_errors == 0, s.problems
    (m,) = manifests(home)
    assert m["strategy"] == "bundle" and m["bundle_file"], m
    by = {f["path"]: f for f in m["files"]}
    assert by["m0.csv"]["status"] == "mismatch"
    assert by["m0.csv"]["error"] == ("the bundle declares 268435456 bytes, the platform 10; "
                                     "not inflated")
    assert by["m1.csv"]["status"] != "ok" and "CRC" in by["m1.csv"]["error"]
    assert by["m2.csv"]["status"] == "unchecked"
    assert "bytes allowed for the whole bundle" in by["m2.csv"]["error"]
    assert took < 10, took
    assert cli(home, "verify").exit_code == 0


def test_verify_fixity_does_not_inflate_a_bomb(home, dv, tmp_path, clock):
    """``verify --fixity`` checks a bundle with the same function: a stored
    bundle whose members passed, damaged into a bomb, is a breach found in
    seconds, not 2 GiB inflated and hashed three ways."""
    z, _ = bomb(1024)
    honest = [DvFile(41, "m0.csv", b"0123456789"), DvFile(42, "m1.csv", b"abcdefghij"),
              DvFile(43, "m2.csv", b"klmnopqrst")]
    dv.files = honest
    dv.bundle = build_zip([(f.name, f.body, zlib.crc32(f.body), 10) for f in honest],
                          method=0)
    set_config(home, max_file_count=2)
    renew(home, tmp_path, clock, dv.link())
    (m,) = manifests(home)
    assert [f["status"] for f in m["files"]] == ["ok"] * 3, m["files"]
    stored = record_dir(home, RID) / m["bundle_file"]
    stored.chmod(0o644)
    stored.write_bytes(z)  # the damage
    t0 = time.monotonic()
    r = cli(home, "verify", "--fixity")
    took = time.monotonic() - t0
    assert r.exit_code == 1, r.output
    assert r.output.count("deposit-fixity-failed") == 3, r.output
    assert took < 8, took


# -- a listing without end ---------------------------------------------------------------


@dataclass
class Pages:
    """An OSF Storage listing of ``count`` pages of ``pad`` bytes each, served
    on loopback; the deposit's URLs keep OSF's host, sent here by the driver."""

    count: int
    pad: int
    port: int = 0
    asked: int = 0

    def page(self, n: int) -> bytes:
        nxt = f"https://api.osf.io/v2/nodes/abcde/files/osfstorage/?page={n + 1}" \
            if n < self.count else None
        data = [{"id": f"f{n}-{i}", "type": "files",
                 "attributes": {"kind": "file", "name": f"f{n}-{i}.csv", "size": 4,
                                "materialized_path": f"/f{n}-{i}.csv",
                                "extra": {"hashes": {}}},
                 "links": {"download": f"https://osf.io/download/f{n}-{i}/"}}
                for i in range(10)]
        return json.dumps({"data": data, "links": {"next": nxt},
                           "meta": {"padding": "x" * self.pad}}).encode()


def drive(deposit: Any, port: int, tmp_path: Path) -> None:
    """Play the engine for one deposit: fetch what it queues from the local
    server (OSF's host sent to 127.0.0.1), store each body in a file, tell it."""
    import httpx

    from kiel.renewal import deposits

    queue: list[tuple[str, str]] = []

    def enqueue(rec: Any, target: Any, dep: Any, role: str, accept: Any) -> bool:
        queue.append((target.fetch, role))
        return True

    deposit.enqueue = enqueue
    assert isinstance(deposit, deposits.Deposit)
    deposit.begin()
    n = 0
    with httpx.Client() as client:
        while queue:
            url, role = queue.pop(0)
            parts = urlsplit(url)
            r = client.get(f"http://127.0.0.1:{port}{parts.path}?{parts.query}")
            n += 1
            body = tmp_path / f"body{n}"
            body.write_bytes(r.content)
            written: Any = type("W", (), {"name": body.name, "link": None, "real": str(body),
                                     "note": type("N", (), {"status": str(r.status_code)})})
            if role == "api":
                deposit.answered(url, written, str(r.status_code), None)
            else:
                deposit.file_done(url, written, str(tmp_path))


def test_a_listing_of_many_large_pages_is_bounded_as_a_whole(tmp_path):
    """Pages of 2 MiB each, 40 of them: the deposit's answers together pass
    ``max_api_bytes`` (64 MiB) and the deposit ends in a named failure note
    after 32 pages, none asked after it. No answer's bytes are held once
    it is parsed (nor parsed again at the next step), and the whole walk
    stays within a small multiple of the budget."""
    import tracemalloc

    from kiel.platforms import Limits, match
    from kiel.renewal.deposits import Deposit

    pages = Pages(count=40, pad=2 * MiB)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            q = parse_qs(urlsplit(self.path).query)
            n = int(q.get("page", ["1"])[0])
            pages.asked += 1
            body = pages.page(n)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.api+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rdir = tmp_path / "record"
        rdir.mkdir()
        ref = match("https://osf.io/abcde/")
        assert ref is not None
        rec = type("R", (), {"dir": str(rdir)})()
        d = Deposit(rec, ref, Limits(), "2026-12-04",
                    lambda *a: False, lambda: 1700000000)
        tracemalloc.start()
        drive(d, server.server_address[1], tmp_path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        server.shutdown()
        server.server_close()
    (m,) = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "manifest"]
    assert m["failure"]["name"] == "platform-error", m
    assert "max_api_bytes" in m["failure"]["message"]
    assert pages.asked == 32
    assert sum(len(a.body) for a in d.answers.values()) < 2 * MiB
    assert peak < 3 * 64 * MiB, peak


# -- deposits that ended in an internal error ---------------------------------------------


def _three(body: Callable[[int], bytes]) -> list[DvFile]:
    return [DvFile(50 + i, f"m{i}.csv", body(i)) for i in range(3)]


def _deflate64(dv: Dataverse) -> str:
    dv.files = _three(lambda i: b"%d" % i * 10)
    dv.bundle = build_zip([(f.name, f.body, zlib.crc32(f.body), 10) for f in dv.files],
                          method=9)
    return "compressed in a way Kiel cannot read"


def _encrypted(dv: Dataverse) -> str:
    dv.files = _three(lambda i: b"%d" % i * 10)
    dv.bundle = build_zip([(f.name, f.body, zlib.crc32(f.body), 10) for f in dv.files],
                          method=0, flags=1)
    return "encrypted"


def _surrogate_name(dv: Dataverse) -> str:
    dv.files = [DvFile(61, "caf\udc80.csv", b"x\n"), DvFile(62, "b.csv", b"y\n")]
    dv.api_body = json.dumps({"status": "OK", "data": {
        "versionNumber": 1, "versionMinorNumber": 0, "versionState": "RELEASED",
        "files": [f.entry() for f in dv.files]}}).encode()
    return "caf\\udc80.csv"


def _surrogate_status(dv: Dataverse) -> str:
    dv.api_body = json.dumps({"status": "ERROR", "message": "bad \udc80 id"}).encode()
    return "bad \\udc80 id"


@pytest.mark.parametrize("deposit", [_deflate64, _encrypted, _surrogate_name,
                                     _surrogate_status])
def test_hostile_deposits_end_in_a_note(deposit, home, dv, tmp_path, clock):
    """A bundle of Deflate64 members, a bundle of encrypted members, a lone
    surrogate in a file name, and one in an error status each end in the
    deposit's manifest note, naming what was wrong; the run has no internal
    error, and the renewal line is written."""
    words = deposit(dv)
    set_config(home, max_file_count=2)
    s = renew(home, tmp_path, clock, dv.link())
    assert s.input_errors == 0, s.problems
    assert not [p for p in s.problems if "internal" in str(p).lower()], s.problems
    (m,) = manifests(home)
    assert any(words in x for x in strings(m)), m
    entries = notes.entries(str(record_dir(home, RID) / "00notes"))
    assert any(e.get("event") == "renewal" for e in entries)
    assert cli(home, "verify").exit_code == 0


# -- one path, two files -------------------------------------------------------------------


@pytest.mark.parametrize("second", ["wrong bytes", "no size"])
def test_two_files_under_one_path_are_a_named_failure(second, home, dv, tmp_path, clock):
    """Two entries of one path: before, they shared one outcome (both ``ok``
    while one's bytes were wrong), or, one without a size, the fingerprint's
    sort raised TypeError and the deposit had no note. Now a named failure;
    an entry listed twice alike is one file."""
    good = DvFile(71, "x.csv", b"right\n", folder="data")
    if second == "wrong bytes":
        other = DvFile(72, "x.csv", b"wrong\n", md5=hashlib.md5(b"other\n").hexdigest(),
                       folder="data")
    else:
        other = DvFile(72, "x.csv", b"right\n", size=None, folder="data")
    dv.files = [good, other, DvFile(73, "y.csv", b"y\n")]
    set_config(home, max_file_count=10)
    s = renew(home, tmp_path, clock, dv.link())
    assert s.input_errors == 0, s.problems
    (m,) = manifests(home)
    assert m["failure"] == {"name": "platform-error", "message": m["failure"]["message"]}, m
    assert "names data/x.csv for two different files" in m["failure"]["message"]

    dv.files = [good, good, DvFile(73, "y.csv", b"y\n")]  # the same entry twice: one file
    clock.advance(86400)
    renew(home, tmp_path, clock, dv.link())
    m = manifests(home)[-1]
    assert [(f["path"], f["status"]) for f in m["files"]] == [("data/x.csv", "ok"),
                                                             ("y.csv", "ok")]


# -- a file that mismatched once -------------------------------------------------------------


def test_a_mismatched_file_is_asked_again_until_it_matches(home, dv, tmp_path, clock):
    """The manifest is the same, but a file the last note marks ``mismatch``
    is fetched again (the others are carried over): once the platform serves
    the declared bytes, the file is ``ok``, and the deposit then unchanged."""
    right = b"the declared bytes\n"
    good = DvFile(81, "good.csv", b"fine\n")
    bad = DvFile(82, "bad.csv", b"damaged bytes\n", size=len(right),
                 md5=hashlib.md5(right).hexdigest())
    dv.files = [good, bad]
    set_config(home, max_file_count=10)
    renew(home, tmp_path, clock, dv.link())
    assert [f["status"] for f in manifests(home)[-1]["files"]] == ["ok", "mismatch"]

    bad.body = right  # the platform repaired its copy; its listing is the same
    clock.advance(86400)
    before = len(dv.log)
    renew(home, tmp_path, clock, dv.link())
    m = manifests(home)[-1]
    assert [p for p, _ in dv.log[before:] if "datafile" in p] == ["/api/access/datafile/82"]
    assert [f["status"] for f in m["files"]] == ["ok", "ok"], m["files"]
    assert (record_dir(home, RID) / m["files"][1]["file"]).read_bytes() == right
    assert m["files"][0]["file"] == manifests(home)[0]["files"][0]["file"]

    clock.advance(86400)
    before = len(dv.log)
    renew(home, tmp_path, clock, dv.link())
    assert manifests(home)[-1]["unchanged"] is True
    assert not [p for p, _ in dv.log[before:] if "datafile" in p]
    assert cli(home, "verify", "--fixity").exit_code == 0


# -- max_total_size --------------------------------------------------------------------------


def test_max_total_size_counts_what_is_served(home, dv, tmp_path, clock):
    """Eight files declared 10 bytes each, served 300 KiB each, under a
    ``max_total_size`` of 500 KiB: files are queued a few at a time and,
    once what is stored passes the limit, the rest are not fetched, each
    noted with why (before: all eight fetched, the declared 80 bytes passed)."""
    dv.files = [DvFile(90 + i, f"part{i}.bin", bytes([i]) * 300 * 1024, size=10, md5=None)
                for i in range(8)]
    set_config(home, max_file_count=10, max_total_size="500KiB")
    renew(home, tmp_path, clock, dv.link())
    (m,) = manifests(home)
    held = [f for f in m["files"] if f["status"] == "failed"]
    fetched = [f for f in m["files"] if f["file"]]
    assert held and len(fetched) + len(held) == 8, m["files"]
    assert len(fetched) <= 2 + 4  # the limit passed at the second, at most 4 more in flight
    assert all("over max_total_size (512000)" in f["error"] for f in held)
    assert dv.asked("/api/access/datafile/") == len(fetched)


def test_sizes_that_cancel_out_are_not_a_total(home, dv, tmp_path, clock):
    """A size of +10^12 and one of -10^12 declared together: the negative one
    is no size, so the total passes ``max_total_size`` and is refused."""
    dv.files = [DvFile(101, "huge.bin", b"a", size=10**12, md5=None),
                DvFile(102, "negative.bin", b"b", size=-(10**12), md5=None)]
    set_config(home, max_file_count=10)
    renew(home, tmp_path, clock, dv.link())
    (m,) = manifests(home)
    assert m["failure"]["name"] == "too-large-size", m
    assert dv.asked("/api/access/datafile/") == 0


# -- the size of the notes -------------------------------------------------------------------


def test_an_unchanged_manifest_is_a_reference_to_the_last_listing(home, dv, tmp_path, clock):
    """An unchanged deposit's note names the note that lists its files
    (``same_as``, its tist) and lists none: a short line a renewal, however
    many files. ``show``, ``report`` and ``verify --fixity`` read it with the
    files of the note it names."""
    dv.files = [DvFile(110 + i, f"table{i}.csv", b"%d\n" % i * 50) for i in range(40)]
    set_config(home, max_file_count=50)
    renew(home, tmp_path, clock, dv.link())
    first = manifests(home)[0]
    for _ in range(2):
        clock.advance(86400)
        renew(home, tmp_path, clock, dv.link())
    raw = [line for line in (record_dir(home, RID) / "00notes").read_bytes().splitlines()
           if b'"event":"manifest"' in line]
    assert len(raw) == 3 and all(len(line) < 1200 for line in raw[1:]), [len(x) for x in raw]
    m2, m3 = manifests(home)[1:]
    assert m2["unchanged"] and m3["unchanged"]
    assert m2["same_as"] == m3["same_as"] == first["tist"]
    assert m2["files"] == m3["files"] == []

    from kiel.platforms import read_manifests

    recs = read_manifests(str(record_dir(home, RID)))
    assert [len(r.files) for r in recs] == [40, 40, 40]
    assert [f.status for f in recs[-1].files] == ["ok"] * 40
    assert [f.file for f in recs[-1].files] == [f["file"] for f in first["files"]]
    r = cli(home, "show", RID)
    assert r.exit_code == 0 and "table39.csv" in r.output, r.output
    r = cli(home, "verify", "--fixity")
    assert r.exit_code == 0, r.output
    r = cli(home, "report")
    assert r.exit_code == 0 and "40 files" in r.output, r.output


def test_a_deposit_of_too_many_files_is_refused_not_listed(home, dv, tmp_path, clock):
    """A listing of 10 001 files (a bundle offered): ``too-many-files``, and
    the note lists none (before: every file, in one line, at every renewal)."""
    files = [{"label": f"f{i}", "restricted": False,
              "dataFile": {"id": 1000 + i, "filename": f"f{i}.csv", "filesize": 1}}
             for i in range(10_001)]
    dv.api_body = json.dumps({"status": "OK", "data": {
        "versionNumber": 1, "versionMinorNumber": 0, "versionState": "RELEASED",
        "files": files}}).encode()
    renew(home, tmp_path, clock, dv.link())
    (m,) = manifests(home)
    assert m["failure"] == {"name": "too-many-files", "message": "the deposit lists 10001 "
                            "files, over the 10000 a manifest note keeps"}
    assert m["files"] == []


# -- a file the record fetches itself ---------------------------------------------------------


def test_a_file_the_record_links_itself_is_checked_by_its_deposit(home, dv, tmp_path, clock):
    """The record links the dataset and one of its files: the file is one
    object, fetched once, and the deposit judges the body the record's own
    job stored (before: ``failed``, never checked). A deposit API URL the
    record links is one object too, its answer read by the deposit."""
    dv.files = [DvFile(121, "a.csv", b"a\n1\n"), DvFile(122, "b.csv", b"b\n2\n")]
    set_config(home, max_file_count=10)
    direct = dv.url("/api/access/datafile/121")
    api = dv.url(f"/api/datasets/:persistentId/versions/:latest-published?persistentId={PID}")
    src = write_amf(tmp_path / "a.xml", text(RID, dv.link(), direct, api))
    s = run(home, src, clock=clock)
    assert s.input_errors == 0, s.problems
    (m,) = manifests(home)
    assert m["failure"] is None, m
    by = {f["path"]: f for f in m["files"]}
    assert by["a.csv"]["status"] == "ok", by["a.csv"]
    assert by["b.csv"]["status"] == "ok"
    rdir = record_dir(home, RID)
    assert (rdir / by["a.csv"]["file"]).read_bytes() == b"a\n1\n"
    assert dv.asked("/api/access/datafile/121") == 1
    assert dv.asked("/api/datasets/") == 1
    entries = notes.entries(str(rdir / "00notes"))
    order = [e.get("event") for e in entries]
    assert order == ["manifest", "renewal"], order  # the manifest before the record's line


def test_sigterm_is_honoured_while_a_bundle_is_checked(home, dv, tmp_path):
    """A bundle of four honest members of 1 GiB of zeros (4 MB fetched,
    about 20 s of inflating and hashing): SIGTERM during its check ends the
    run within seconds, the members left ``unchecked`` (the run is
    stopping), the deposit noted."""
    import os
    import signal
    import subprocess
    import sys

    data, crc, size = deflated_zeros(1024)
    dv.files = [DvFile(130 + i, f"big{i}.bin", b"", size=size, md5=None) for i in range(4)]
    dv.bundle = build_zip([(f.name, data, crc, size) for f in dv.files])
    set_config(home, max_file_count=2, max_total_size="16GiB")
    src = write_amf(tmp_path / "a.xml", text(RID, dv.link()))
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                          "--no-progress", str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # The bundle's body under its final name: its check (about 20 s of
        # inflating) starts next, and the signal meets it.
        assert dv.bundle is not None
        size = len(dv.bundle)

        def stored() -> bool:
            return any(f.is_file() and not f.is_symlink() and not f.name.startswith(".")
                       and f.stat().st_size == size
                       for f in record_dir(home, RID).rglob("*_200_*"))

        assert wait_until(stored, timeout=60), dv.log
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - t
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 143, err
    assert took < 8, took
    (m,) = manifests(home)
    assert m["bundle_file"] and m["failure"] is None, m
    assert any(f["error"] == "not checked: the run is stopping" for f in m["files"]), m["files"]


def test_other_transfers_go_on_while_a_bundle_is_checked(home, dv, tmp_path, clock):
    """A bundle of two members of 1 GiB of zeros takes seconds to inflate and
    hash. Meanwhile 30 other records are fetched one at a time from a server
    that answers in 0.3 s: no gap between two of its requests is anywhere near
    as long as the check (the check held the event loop: the gap was the
    check's length, and every transfer of the process waited)."""
    data, crc, size = deflated_zeros(1024)
    dv.files = [DvFile(140 + i, f"big{i}.bin", b"", size=size, md5=None) for i in range(2)]
    dv.bundle = build_zip([(f.name, data, crc, size) for f in dv.files])
    set_config(home, max_file_count=1, max_total_size="16GiB", processes=1, per_host=1,
               read_timeout=30)
    arrivals: list[float] = []

    def slow(host: str, path: str) -> Answer:
        arrivals.append(time.monotonic())
        time.sleep(0.3)  # the server is slow; the test waits on nothing
        return 200, [("Content-Type", "text/plain")], path.encode()

    site = Site(slow)
    try:
        recs = [text(RID, dv.link())]
        recs += [text(f"RePEc:bbb:wpaper:{n}", site.url(f"/o{n}")) for n in range(30)]
        run(home, write_amf(tmp_path / "a.xml", *recs), clock=clock)
    finally:
        site.close()
    assert len(arrivals) == 30
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) < 2.5, f"the longest pause between two requests: {max(gaps):.1f} s"
    (m,) = manifests(home)
    assert m["bundle_file"] and m["failure"] is None, m
    # Inflated whole, sizes and CRCs right; no checksum declared to compare.
    assert [(f["status"], f.get("error")) for f in m["files"]] == [("unchecked", None)] * 2, \
        m["files"]
