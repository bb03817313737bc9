"""Deposits on data platforms, against a real local server.

One HTTP server on 127.0.0.1 answers every platform's API and files from
tests/fixtures/platforms/<platform>/routes.json. The client keeps the real
URLs the helpers build (https://zenodo.org/...) and a transport sends each
request to the local server with its Host header intact, so the helpers
are tested on the URLs they really make; the loop below plays the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiel import notes
from kiel.escape import escape
from kiel.platforms import (
    Answer,
    DepositRef,
    Failure,
    FileOutcome,
    Limits,
    Manifest,
    ManifestFile,
    ManifestRecord,
    Step,
    advance,
    check,
    check_bundle,
    digest_file,
    manifest_note,
    match,
    match_page,
    needed,
    previous,
    read_manifests,
    start,
    unchanged,
)
from kiel.platforms.manifests import failure_note
from kiel.redist import record_path

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"
PLATFORMS = ("zenodo", "dataverse", "figshare", "dryad", "osf", "archiveorg")


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, dict[str, Any]]] = {}
        for p in PLATFORMS:
            for key, route in json.loads((FIXTURES / p / "routes.json").read_text()).items():
                self.routes[key] = (p, route)
        self.overrides: dict[str, tuple[str, dict[str, Any]]] = {}
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                key = host + self.path
                outer.seen.append(key)
                got = outer.overrides.get(key) or outer.routes.get(key)
                if got is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                platform, route = got
                body = (FIXTURES / platform / route["body"]).read_bytes() \
                    if "body" in route else b""
                self.send_response(route["status"])
                self.send_header("Content-Type", route["type"])
                self.send_header("Content-Length", str(len(body)))
                if route.get("location"):
                    self.send_header("Location", route["location"])
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Reroute(httpx.BaseTransport):
    """Send every request to the local server; the Host header keeps the
    platform's host, which is how the server tells platforms apart."""

    def __init__(self, port: int):
        self.port = port
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    server.overrides.clear()
    with httpx.Client(transport=Reroute(server.port), follow_redirects=False,
                      timeout=5) as c:
        yield c


def drive(ref: DepositRef, client: httpx.Client, limits: Limits | None = None,
          today: str | None = None, previous: ManifestRecord | None = None
          ) -> tuple[Manifest | Failure, dict[str, Answer]]:
    """The engine's loop: fetch what each step asks for, until the end."""
    answers: dict[str, Answer] = {}
    step = start(ref, limits, today, previous)
    for _ in range(50):
        if not isinstance(step, Step):
            return step, answers
        for req in step.requests:
            assert req.url not in answers, "a helper asked twice for one URL"
            r = client.get(req.url, headers={"Accept": req.accept})
            answers[req.url] = Answer(f"{r.status_code:03d}", r.content,
                                      r.headers.get("location"))
        step = advance(ref, answers, limits, today, previous)
    raise AssertionError("the helper never ended")


def resolve(url: str, client: httpx.Client, **kw: Any) -> Manifest | Failure:
    ref = match(url)
    assert ref is not None, url
    return drive(ref, client, **kw)[0]


RID = "RePEc:tst:dep:1"


def make_record(store: Path) -> Path:
    """A record directory as a renewal leaves it: a version, its notes line, 00last."""
    rdir = store / record_path(RID)
    rdir.mkdir(parents=True)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">'
            f'<text id="{RID}"/></amf>\n').encode()
    (rdir / "1700000000.amf.xml").write_bytes(body)
    notes.append(str(rdir / "00notes"), {
        "event": "renewal", "tist": 1700000000, "end": 1700000001, "id": RID,
        "version": "1700000000.amf.xml", "version_sha256": hashlib.sha256(body).hexdigest()})
    (rdir / "00last").write_text("1700000000 1700000001\n")
    return rdir


def store_object(rdir: Path, url: str, body: bytes, tist: int) -> str:
    """Store one fetched body as the engine does: object dir, 00url, attempt
    file, notes line; the attempt file's path relative to the record."""
    odir = rdir / escape(url)
    odir.mkdir(exist_ok=True)
    (odir / "00url").write_text(url + "\n")
    name = f"{tist}_200_application-octet-stream"
    (odir / name).write_bytes(body)
    notes.append(str(odir / "00notes"), {
        "tist": tist, "url": url, "status": "200", "type": "application-octet-stream",
        "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        "sha1": hashlib.sha1(body).hexdigest(), "file": name})
    return f"{escape(url)}/{name}"


def archive(m: Manifest, client: httpx.Client, rdir: Path, tist: int = 1700000100
            ) -> dict[str, Any]:
    """Fetch what the manifest says, check each file, append the note."""
    bundle = None
    results: dict[str, FileOutcome] = {}
    if m.strategy == "bundle":
        assert m.bundle_url is not None
        body = client.get(m.bundle_url).content
        rel = store_object(rdir, m.bundle_url, body, tist)
        bundle = FileOutcome(None, len(body), {}, rel)
        results = check_bundle(str(rdir / rel), m)
    else:
        for f in m.open_files:
            r = client.get(f.url)
            assert r.status_code == 200, f.url
            rel = store_object(rdir, f.url, r.content, tist)
            size, found = digest_file(str(rdir / rel), ("sha256", "sha1") + needed(f))
            results[f.path] = FileOutcome(check(f, size, found), size, found, rel)
    note = manifest_note(m, results, tist, bundle)
    notes.append(str(rdir / "00notes"), note)
    return note


# --- matching ---------------------------------------------------------------

@pytest.mark.parametrize("url, platform, domain, deposit, version, kind", [
    ("https://zenodo.org/records/1001", "zenodo", "zenodo.org", "1001", None, "deposit"),
    ("https://zenodo.org/record/1001#.Y2pPt", "zenodo", "zenodo.org", "1001", None, "deposit"),
    ("https://doi.org/10.5281/zenodo.1000", "zenodo", "zenodo.org", "1000", None, "deposit"),
    (("https://dataverse.harvard.edu/dataset.xhtml?persistentId=doi:10.7910/DVN/KIEL01"
      "&version=1.0"), "dataverse", "dataverse.harvard.edu", "doi:10.7910/DVN/KIEL01", "1.0",
     "deposit"),
    ("https://data.example.edu/api/datasets/:persistentId/?persistentId=doi:10.5072/FK2/X",
     "dataverse", "data.example.edu", "doi:10.5072/FK2/X", None, "deposit"),
    ("https://doi.org/10.7910/DVN/KIEL01", "dataverse", "dataverse.harvard.edu",
     "doi:10.7910/DVN/KIEL01", None, "deposit"),
    ("https://data.example.edu/file.xhtml?persistentId=doi:10.5072/FK2/X/ABCDEF", "dataverse",
     "data.example.edu", "doi:10.5072/FK2/X/ABCDEF", None, "file"),
    ("https://figshare.com/articles/dataset/Replication_files/3001/2", "figshare",
     "figshare.com", "3001", "2", "deposit"),
    ("https://doi.org/10.6084/m9.figshare.3001.v2", "figshare", "figshare.com", "3001", "2",
     "deposit"),
    ("https://ndownloader.figshare.com/files/4000", "figshare", "figshare.com", "4000", None,
     "file"),
    ("https://datadryad.org/stash/dataset/doi:10.5061/dryad.kiel42", "dryad", "datadryad.org",
     "10.5061/dryad.kiel42", None, "deposit"),
    ("https://doi.org/10.5061/DRYAD.kiel42", "dryad", "datadryad.org", "10.5061/dryad.kiel42",
     None, "deposit"),
    ("https://osf.io/abcde/", "osf", "osf.io", "abcde", None, "deposit"),
    ("https://doi.org/10.17605/OSF.IO/ABCDE", "osf", "osf.io", "abcde", None, "deposit"),
    ("https://archive.org/details/kiel-test-item", "archiveorg", "archive.org",
     "kiel-test-item", None, "deposit"),
    ("https://archive.org/download/kiel-test-item/paper.pdf", "archiveorg", "archive.org",
     "kiel-test-item", None, "file"),
])
def test_match(url: str, platform: str, domain: str, deposit: str, version: str | None,
               kind: str) -> None:
    ref = match(url)
    assert ref is not None
    assert (ref.platform, ref.domain, ref.deposit_id, ref.version, ref.kind) == \
        (platform, domain, deposit, version, kind)


@pytest.mark.parametrize("url", [
    "https://zenodo.org/communities/econ", "https://osf.io/preprints/", "https://example.org/",
    "https://doi.org/10.1257/aer.20181234", "mailto:x@example.org", "http://[::1/x",
    "https://figshare.com/authors/Jane/123", "https://archive.org/search?query=x",
])
def test_no_match(url: str) -> None:
    assert match(url) is None


# --- resolving against the local server --------------------------------------

def test_zenodo_fileset(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://zenodo.org/records/1001", client)
    assert isinstance(m, Manifest)
    assert (m.strategy, m.version, m.file_count) == ("fileset", "1001", 3)
    assert m.api_urls == ("https://zenodo.org/api/records/1001",)
    assert all(f.md5 for f in m.files)
    rdir = make_record(tmp_path / "store")
    note = archive(m, client, rdir)
    assert [f["status"] for f in note["files"]] == ["ok", "ok", "ok"]
    assert {f["algorithm"] for f in note["files"]} == {"md5"}
    [rec] = read_manifests(str(rdir))
    assert (rec.platform, rec.deposit_id, rec.version, rec.strategy) == \
        ("zenodo", "1001", "1001", "fileset")
    assert rec.total_size == m.total_size and not rec.mismatches


def test_single_file_with_checksum_mismatch(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://doi.org/10.5281/zenodo.1002", client)
    assert isinstance(m, Manifest) and m.strategy == "single"
    rdir = make_record(tmp_path / "store")
    note = archive(m, client, rdir)
    [f] = note["files"]
    assert f["status"] == "mismatch" and f["algorithm"] == "md5"
    assert f["found"]["md5"] != f["declared"]["md5"]
    assert f["file"] and (rdir / f["file"]).read_bytes().startswith(b"%PDF")  # kept as fetched
    assert read_manifests(str(rdir))[0].mismatches[0].path == "paper.pdf"


def test_new_version_through_the_concept_id(server: Server, client: httpx.Client) -> None:
    ref = match("https://doi.org/10.5281/zenodo.1000")
    assert ref is not None
    first, _ = drive(ref, client)
    assert isinstance(first, Manifest) and first.version == "1001"  # the latest, recorded
    assert "https://zenodo.org/api/records/1000" in first.api_urls  # the redirect is kept
    again, _ = drive(ref, client)
    note = manifest_note(first, {f.path: FileOutcome(check(f, f.size, {"md5": f.md5 or ""}),
                                                     f.size, {"md5": f.md5 or ""}, "x/y")
                                 for f in first.files}, 1)
    from kiel.notes import parse_manifest as _record
    prev = _record(json.loads(json.dumps(note)))
    assert isinstance(again, Manifest) and unchanged(prev, again)  # same version, same checksums: nothing to fetch
    server.overrides["zenodo.org/api/records/1000"] = (
        "zenodo", {"status": 302, "type": "application/json",
                   "location": "https://zenodo.org/api/records/1005"})
    second, _ = drive(ref, client)
    assert isinstance(second, Manifest) and second.version == "1005"
    assert not unchanged(prev, second)
    old = {f.path: f for f in first.files}
    changed = [f.path for f in second.files if f.md5 != old[f.path].md5]
    assert changed == ["data.csv"]
    assert {f.url for f in second.files}.isdisjoint({f.url for f in first.files})


def test_bundle_over_max_file_count(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://zenodo.org/records/1001", client, limits=Limits(max_file_count=2))
    assert isinstance(m, Manifest) and m.strategy == "bundle"
    assert m.fetch == ("https://zenodo.org/api/records/1001/files-archive",)
    rdir = make_record(tmp_path / "store")
    note = archive(m, client, rdir)
    assert note["bundle"] == m.bundle_url and note["bundle_file"]
    # the bundle's interior, listed and checked file by file
    assert sorted(f["path"] for f in note["files"]) == ["README.md", "code.do", "data.csv"]
    assert {f["status"] for f in note["files"]} == {"ok"}


def test_embargoed(client: httpx.Client) -> None:
    f = resolve("https://zenodo.org/records/1003", client)
    assert isinstance(f, Failure) and f.name == "platform-restricted"
    assert "2031-01-01" in f.message
    g = resolve("https://figshare.com/articles/dataset/x/3002", client)
    assert isinstance(g, Failure) and g.name == "platform-restricted"


def test_404(client: httpx.Client) -> None:
    for url in ("https://zenodo.org/records/1004", "https://figshare.com/articles/3009",
                "https://archive.org/details/no-such-item"):
        f = resolve(url, client)
        assert isinstance(f, Failure) and f.name == "platform-404", url


def test_over_each_limit(client: httpx.Client) -> None:
    f = resolve("https://doi.org/10.5061/dryad.kiel42", client,
                limits=Limits(max_file_count=2))
    # Dryad's dataset here offers no download link: no bundle to fall back on
    assert isinstance(f, Failure) and f.name == "too-many-files"
    g = resolve("https://archive.org/details/kiel-test-item", client,
                limits=Limits(max_total_size=10))
    assert isinstance(g, Failure) and g.name == "too-large-size"


def test_scope() -> None:
    for url in ("https://ndownloader.figshare.com/files/4000",
                "https://archive.org/download/kiel-test-item/paper.pdf",
                "https://data.example.edu/file.xhtml?persistentId=doi:10.5072/FK2/X/ABCDEF"):
        ref = match(url)
        assert ref is not None
        f = start(ref)  # nothing is asked for a URL out of scope
        assert isinstance(f, Failure) and f.name == "platform-scope", url


def test_dataverse_versions_and_original_files(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://doi.org/10.7910/DVN/KIEL01", client)
    assert isinstance(m, Manifest) and m.version == "2.0" and m.strategy == "fileset"
    tab = next(f for f in m.files if f.path == "data/panel.dta")
    assert tab.url.endswith("/api/access/datafile/11?format=original")
    rdir = make_record(tmp_path / "store")
    assert {f["status"] for f in archive(m, client, rdir)["files"]} == {"ok"}
    v1 = resolve("https://dataverse.harvard.edu/dataset.xhtml?persistentId="
                 "doi:10.7910/DVN/KIEL01&version=1.0", client)
    assert isinstance(v1, Manifest) and v1.version == "1.0" and v1.strategy == "single"


def test_landing_pages_lead_to_platforms(client: httpx.Client) -> None:
    url = "https://journal.example.org/article/42"
    assert match(url) is None
    ref = match_page(url, client.get(url).content)
    assert ref is not None and (ref.platform, ref.deposit_id) == \
        ("dataverse", "doi:10.7910/DVN/KIEL01")
    url = "https://data.example.edu/landing/locked"
    ref = match_page(url, client.get(url).content)
    assert ref is not None and ref.domain == "data.example.edu"  # any installation
    f = drive(ref, client)[0]
    assert isinstance(f, Failure) and f.name == "platform-restricted"  # every file restricted
    assert match_page("https://example.org/", b"<html><body>no deposit</body></html>") is None
    assert match_page("https://example.org/", b"\x00\xff not html") is None


def test_figshare_named_version(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://figshare.com/articles/dataset/Replication_files/3001/2", client)
    assert isinstance(m, Manifest) and m.version == "2" and m.file_count == 2
    assert m.bundle_url == "https://ndownloader.figshare.com/articles/3001/versions/2"
    assert {f["status"] for f in archive(m, client, make_record(tmp_path / "s"))["files"]} \
        == {"ok"}


def test_dryad_pages(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://datadryad.org/stash/dataset/doi:10.5061/dryad.kiel42", client)
    assert isinstance(m, Manifest) and m.version == "501" and m.file_count == 3
    assert len(m.api_urls) == 3  # the dataset and two pages of files
    assert all(f.sha256 for f in m.files)
    note = archive(m, client, make_record(tmp_path / "s"))
    assert {(f["status"], f["algorithm"]) for f in note["files"]} == {("ok", "sha256")}


def test_osf_folders_and_pages(client: httpx.Client, tmp_path: Path) -> None:
    m = resolve("https://osf.io/abcde/", client)
    assert isinstance(m, Manifest) and m.version is None
    assert sorted(f.path for f in m.files) == ["README.md", "analysis.R", "data/survey.csv"]
    assert m.bundle_url and "zip=" in m.bundle_url
    note = archive(m, client, make_record(tmp_path / "s"))
    assert {(f["status"], f["algorithm"]) for f in note["files"]} == {("ok", "sha256")}
    f = resolve("https://osf.io/zzzzz/", client)
    assert isinstance(f, Failure) and f.name == "platform-restricted"


def test_archiveorg_originals_only(client: httpx.Client) -> None:
    m = resolve("https://archive.org/details/kiel-test-item", client)
    assert isinstance(m, Manifest)
    assert sorted(f.path for f in m.files) == ["data.csv", "paper.pdf"]
    assert all(f.md5 and f.sha1 for f in m.files)
    f = resolve("https://archive.org/details/a-dark-item", client)
    assert isinstance(f, Failure) and f.name == "platform-restricted"


def test_platform_error_answers() -> None:
    ref = match("https://zenodo.org/records/1001")
    assert ref is not None
    url = "https://zenodo.org/api/records/1001"
    for answer, name in ((Answer("000", b""), "platform-error"),
                         (Answer("503", b"busy"), "platform-error"),
                         (Answer("200", b"<html>"), "platform-error"),
                         (Answer("200", b"[1, 2]"), "platform-error"),
                         (Answer("403", b""), "platform-restricted"),
                         (Answer("410", b"{}"), "platform-404")):
        f = advance(ref, {url: answer})
        assert isinstance(f, Failure) and f.name == name, answer
        assert f.api_urls == (url,)


def test_redirect_loop_is_a_platform_error() -> None:
    ref = match("https://zenodo.org/records/7")
    assert ref is not None
    a, b = "https://zenodo.org/api/records/7", "https://zenodo.org/api/records/8"
    answers = {a: Answer("302", b"", b), b: Answer("302", b"", a)}
    f = advance(ref, answers)
    assert isinstance(f, Failure) and f.name == "platform-error"


def test_check_outcomes() -> None:
    f = ManifestFile("a", 3, "u", md5=hashlib.md5(b"abc").hexdigest())
    good = {"md5": hashlib.md5(b"abc").hexdigest()}
    assert check(f, 3, good).status == "ok"
    v = check(f, 4, good)
    assert (v.status, v.algorithm, v.expected, v.found) == ("mismatch", "size", "3", "4")
    v = check(f, 3, {"md5": "0" * 32})
    assert (v.status, v.algorithm) == ("mismatch", "md5")
    assert check(f, 3, {"sha256": "x"}).status == "unchecked"  # md5 declared, not computed
    assert check(ManifestFile("b", None, "u"), 5, {}).status == "unchecked"


def test_failure_note_round_trip(tmp_path: Path) -> None:
    rdir = make_record(tmp_path / "store")
    notes.append(str(rdir / "00notes"), failure_note(
        Failure("platform-404", "gone", "zenodo", "zenodo.org", "9"), 5))
    [rec] = read_manifests(str(rdir))
    assert (rec.failure, rec.message, rec.deposit_id, rec.files) == \
        ("platform-404", "gone", "9", ())


def test_fixture_checksums_match_their_files() -> None:
    """The fixtures declare what their files hold, except the one mismatch."""
    record = json.loads((FIXTURES / "zenodo" / "api" / "record-1001.json").read_text())
    for f in record["files"]:
        body = (FIXTURES / "zenodo" / "files" / "1001" / f["key"]).read_bytes()
        assert f["checksum"] == "md5:" + hashlib.md5(body).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{32}", record["files"][0]["checksum"][4:])
    assert os.path.exists(FIXTURES / "zenodo" / "NOTE.md")


# --- verify, show and report read the manifest notes ------------------------

def test_verify_show_report(client: httpx.Client, tmp_path: Path) -> None:
    from kiel import report, show, verify

    home = tmp_path / "home"
    rdir = make_record(home / "store")
    for url in ("https://zenodo.org/records/1001", "https://zenodo.org/records/1002"):
        m = resolve(url, client)
        assert isinstance(m, Manifest)
        archive(m, client, rdir)
    notes.append(str(rdir / "00notes"), failure_note(
        Failure("platform-404", "no such record", "zenodo", "zenodo.org", "1004"), 1700000200))

    v = verify.verify(str(home))
    found = list(v)
    assert [(f.kind, f.severity) for f in found] == [("deposit-mismatch", "warning")]
    assert "paper.pdf" in found[0].detail and found[0].expected != found[0].found
    assert v.summary.clean

    v = verify.verify(str(home), fixity=True)
    assert [f.kind for f in v] == ["deposit-mismatch"]
    assert v.summary.fixity_failed == 0 and v.summary.fixity_passed >= 8

    # a stored deposit file damaged after the fact: Kiel's own sha256 and the
    # platform's md5 both catch it
    data = next(f for f in read_manifests(str(rdir))[0].files if f.path == "data.csv")
    assert data.file is not None
    stored = rdir / data.file
    stored.write_bytes(stored.read_bytes().replace(b"2019", b"2018"))
    v = verify.verify(str(home), fixity=True)
    kinds = sorted(f.kind for f in v)
    assert kinds == ["deposit-fixity-failed", "deposit-mismatch", "fixity-failed"]
    assert not v.summary.clean

    view = show.show(str(home), RID)
    assert [d.deposit_id for d in view.deposits] == ["1001", "1002", "1004"]
    text = show.format_text(view)
    assert "deposits 3" in text
    assert re.search(r"mismatch +paper\.pdf +\d+ B +md5 expected [0-9a-f]{32} found", text)
    assert "platform-404: no such record" in text
    assert json.loads(view.to_json())["deposits"][0]["files"][0]["status"] == "ok"

    r = report.report(str(home))
    assert (r.deposits, r.deposit_files, r.deposit_mismatches, r.deposit_failures) == \
        (3, 4, 1, 1)
    assert r.deposit_bytes == sum(f.found_size or 0 for rec in read_manifests(str(rdir))
                                  for f in rec.files)
    assert "deposits          3  (4 files" in report.format_text(r)
    assert "deposit files mismatched" in report.render_html(r, 1700000300)


def test_verify_fixity_of_a_bundle(client: httpx.Client, tmp_path: Path) -> None:
    from kiel import verify

    home = tmp_path / "home"
    rdir = make_record(home / "store")
    m = resolve("https://zenodo.org/records/1001", client, limits=Limits(max_file_count=2))
    assert isinstance(m, Manifest) and m.strategy == "bundle"
    note = archive(m, client, rdir)
    v = verify.verify(str(home), fixity=True)
    assert list(v) == [] and v.summary.fixity_failed == 0
    # the zip rewritten with one interior file changed: Kiel's own sha256 of
    # the attempt file and the platform's md5 of the interior file both fail
    import io
    import zipfile
    stored = rdir / note["bundle_file"]
    buf = io.BytesIO()
    with zipfile.ZipFile(stored) as old, zipfile.ZipFile(buf, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, data.replace(b"2019", b"2018") if info.filename == "data.csv"
                         else data)
    stored.write_bytes(buf.getvalue())
    found = [(f.kind, f.detail) for f in verify.verify(str(home), fixity=True)]
    assert ("fixity-failed", "sha256 differs from the notes") in found
    assert any(k == "deposit-fixity-failed" and "data.csv: md5 differs" in d for k, d in found)
    assert len(found) == 2


def test_previous_and_unchanged(client: httpx.Client, tmp_path: Path) -> None:
    rdir = make_record(tmp_path / "store")
    m = resolve("https://zenodo.org/records/1001", client)
    assert isinstance(m, Manifest)
    assert not unchanged(previous(str(rdir), "zenodo", "zenodo.org", "1001"), m)
    archive(m, client, rdir)
    prev = previous(str(rdir), "zenodo", "zenodo.org", "1001")
    assert prev is not None and unchanged(prev, m)
    # the limits changed the strategy: the deposit is fetched again
    b = resolve("https://zenodo.org/records/1001", client, limits=Limits(max_file_count=2))
    assert isinstance(b, Manifest) and not unchanged(prev, b)
    # an unchanged renewal's note carries the earlier outcomes
    from kiel.platforms.manifests import carried
    note = manifest_note(m, carried(prev), 1700000500, unchanged=True)
    assert [f["status"] for f in note["files"]] == ["ok"] * 3 and note["unchanged"]
    assert [f["file"] for f in note["files"]] == [f.file for f in prev.files]


# (deposit URL, API requests of the first renewal, of an unchanged one)
REQUESTS = [
    ("https://zenodo.org/records/1001", 1, 1),
    # a concept DOI as InvenioRDM answers it: 404 for the concept, then the
    # API's own way to the latest version; unchanged, that redirect alone
    ("https://doi.org/10.5281/zenodo.2000", 3, 1),
    ("https://doi.org/10.7910/DVN/KIEL01", 1, 1),
    ("https://figshare.com/articles/3001/2", 1, 1),
    # the dataset, then its version's two pages of files; unchanged, the dataset
    ("https://doi.org/10.5061/dryad.kiel42", 3, 1),
    # straight to osfstorage/: its two pages and one folder, every time
    ("https://osf.io/abcde/", 3, 3),
    ("https://archive.org/details/kiel-test-item", 1, 1),
]


@pytest.mark.parametrize("url, first, again", REQUESTS)
def test_requests_per_renewal(url: str, first: int, again: int, server: Server,
                              client: httpx.Client, tmp_path: Path) -> None:
    """The API requests the local server receives for one deposit: an
    unchanged deposit costs one request where the platform allows it."""
    ref = match(url)
    assert ref is not None
    rdir = make_record(tmp_path / "store")
    server.seen.clear()
    m, _ = drive(ref, client, Limits(max_file_count=10),
                 previous=previous(str(rdir), ref.platform, ref.domain, ref.deposit_id))
    assert isinstance(m, Manifest), m
    assert len(server.seen) == first, server.seen
    archive(m, client, rdir)
    prev = previous(str(rdir), ref.platform, ref.domain, ref.deposit_id)
    assert prev is not None
    server.seen.clear()
    m2, _ = drive(ref, client, Limits(max_file_count=10), previous=prev)
    assert len(server.seen) == again, server.seen
    assert isinstance(m2, Manifest) and unchanged(prev, m2)
    assert m2.version == m.version and m2.fetch == m.fetch


def test_a_new_version_is_listed_again(server: Server, client: httpx.Client,
                                       tmp_path: Path) -> None:
    """The shortcut holds only for the version noted last time."""
    ref = match("https://doi.org/10.5281/zenodo.2000")
    assert ref is not None
    rdir = make_record(tmp_path / "store")
    m, _ = drive(ref, client, Limits(max_file_count=10))
    assert isinstance(m, Manifest) and m.version == "2001"
    assert m.api_urls[:2] == ("https://zenodo.org/api/records/2000",
                              "https://zenodo.org/api/records/2000/versions/latest")
    archive(m, client, rdir)
    prev = previous(str(rdir), ref.platform, ref.domain, ref.deposit_id)
    server.overrides["zenodo.org/api/records/2000/versions/latest"] = (
        "zenodo", {"status": 302, "type": "application/json",
                   "location": "https://zenodo.org/api/records/1005"})
    server.seen.clear()
    m2, _ = drive(ref, client, Limits(max_file_count=10), previous=prev)
    assert isinstance(m2, Manifest) and m2.version == "1005" and not unchanged(prev, m2)
    assert server.seen == ["zenodo.org/api/records/2000/versions/latest",
                           "zenodo.org/api/records/1005"]
    # Dryad: a previous manifest of another version lists the files again
    dref = match("https://doi.org/10.5061/dryad.kiel42")
    assert dref is not None
    d, _ = drive(dref, client, Limits(max_file_count=10))
    assert isinstance(d, Manifest)
    archive(d, client, rdir, tist=1700000200)
    dprev = previous(str(rdir), dref.platform, dref.domain, dref.deposit_id)
    assert dprev is not None
    from dataclasses import replace
    server.seen.clear()
    d2, _ = drive(dref, client, Limits(max_file_count=10), previous=replace(dprev,
                                                                              version="500"))
    assert isinstance(d2, Manifest) and len(server.seen) == 3


# --- hostile answers --------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from([
        "id", "files", "key", "size", "checksum", "links", "self", "metadata", "access_right",
        "data", "dataFile", "md5", "filename", "versionNumber", "version", "download_url",
        "computed_md5", "is_embargoed", "_links", "_embedded", "stash:files",
        "stash:version", "href", "next", "attributes", "kind", "extra", "hashes",
        "relationships", "related", "name", "source", "is_dark", "path", "digest",
        "digestType", "status", "embargo", "restricted", "entries", "access"]), inner,
        max_size=6),
    max_leaves=25)

REFS = [match(u) for u in (
    "https://zenodo.org/records/1001", "https://doi.org/10.7910/DVN/KIEL01",
    "https://figshare.com/articles/3001/2", "https://doi.org/10.5061/dryad.kiel42",
    "https://osf.io/abcde/", "https://archive.org/details/kiel-test-item")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REFS), st.lists(_json, min_size=1, max_size=6),
       st.sampled_from(["200", "200", "302", "500"]))
def test_any_answer_ends_in_a_step_a_manifest_or_a_named_failure(
        ref: DepositRef, bodies: list[Any], status: str) -> None:
    answers: dict[str, Answer] = {}
    step = start(ref)
    for body in bodies:
        if not isinstance(step, Step):
            break
        [req] = step.requests
        answers[req.url] = Answer(status, json.dumps(body).encode(),
                                  "https://zenodo.org/api/records/5" if status == "302"
                                  else None)
        step = advance(ref, answers)
    assert isinstance(step, Step | Manifest | Failure)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = new
    return copy


@pytest.mark.parametrize("url", [
    "https://zenodo.org/records/1001", "https://doi.org/10.7910/DVN/KIEL01",
    "https://figshare.com/articles/3001/2", "https://doi.org/10.5061/dryad.kiel42",
    "https://osf.io/abcde/", "https://archive.org/details/kiel-test-item"])
def test_every_part_of_a_real_answer_damaged(url: str, client: httpx.Client) -> None:
    """Each value of each real answer replaced in turn by values of other
    shapes: the helper ends in a step, a manifest or a named failure."""
    ref = match(url)
    assert ref is not None
    good, answers = drive(ref, client)
    assert isinstance(good, Manifest)
    runs = 0
    for api_url, answer in answers.items():
        if answer.status != "200":
            continue
        body = json.loads(answer.body)
        for path in _paths(body):
            for new in (None, 7, "x", [], {}, [None], {"x": None}, -1, True):
                damaged = dict(answers)
                damaged[api_url] = Answer("200", json.dumps(_replaced(body, path, new)).encode())
                got = advance(ref, damaged)
                assert isinstance(got, Step | Manifest | Failure), (api_url, path, new)
                runs += 1
    assert runs > 100


def test_cli_verify_and_show(client: httpx.Client, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kiel.cli import main

    home = tmp_path / "home"
    rdir = make_record(home / "store")
    m = resolve("https://zenodo.org/records/1002", client)
    assert isinstance(m, Manifest)
    archive(m, client, rdir)
    r = CliRunner().invoke(main, ["verify", "--home", str(home)])
    assert r.exit_code == 0, r.output  # a mismatch is a warning: the store is intact
    assert "warning deposit-mismatch: RePEc/tst/dep/1/00notes: zenodo 1002 paper.pdf: md5" \
        in r.output
    r = CliRunner().invoke(main, ["show", RID, "--home", str(home)])
    assert r.exit_code == 0 and "deposits 1" in r.output and "mismatch    paper.pdf" in r.output
