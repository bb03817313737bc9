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
from kiel.platforms import (
    Answer,
    DepositRef,
    Failure,
    Limits,
    Manifest,
    ManifestFile,
    ManifestRecord,
    Step,
    advance,
    check,
    match,
    match_page,
    read_manifests,
    start,
)
from kiel.platforms.manifests import failure_note

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
    """Fetch what each step asks for, until the end: the real answers the
    hostile tests below damage. The engine's own loop is tested end to end in
    test_platforms_e2e.py."""
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

def test_scope() -> None:
    for url in ("https://ndownloader.figshare.com/files/4000",
                "https://archive.org/download/kiel-test-item/paper.pdf",
                "https://data.example.edu/file.xhtml?persistentId=doi:10.5072/FK2/X/ABCDEF"):
        ref = match(url)
        assert ref is not None
        f = start(ref)  # nothing is asked for a URL out of scope
        assert isinstance(f, Failure) and f.name == "platform-scope", url


def test_landing_pages_lead_to_platforms(client: httpx.Client) -> None:
    url = "https://journal.example.org/article/42"
    assert match(url) is None
    ref = match_page(url, client.get(url).content)
    assert ref is not None and (ref.platform, ref.deposit_id) == \
        ("dataverse", "doi:10.7910/DVN/KIEL01")
    url = "https://data.example.edu/landing/locked"
    ref = match_page(url, client.get(url).content)
    assert ref is not None and ref.domain == "data.example.edu"  # any installation
    # (that it fails platform-restricted, every file restricted: test_platforms_e2e.py)
    assert match_page("https://example.org/", b"<html><body>no deposit</body></html>") is None
    assert match_page("https://example.org/", b"\x00\xff not html") is None


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
    rdir = tmp_path / "record"
    rdir.mkdir()
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


