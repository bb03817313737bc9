"""kiel show: one record's versions, state markers and object timelines.

The stores here are written by hand, file by file, as docs/contract.md lays them
out, so these tests check the tools against the contract and not against
whatever the renewal code happens to write. ``make_store`` is imported by
test_verify.py and test_report.py too.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from kiel.cli_tools import show as show_cmd
from kiel.errors import NotFound
from kiel.escape import escape
from kiel.redist import record_path
from kiel.show import show

T0 = 1700000000  # 2023-11-14T22:13:20Z
DAY = 86400

PDF_URL = "http://example.org/paper.pdf"
DEAD_URL = "http://dead.example.net/gone.html"
OLD_URL = "http://example.org/old"
NEW_URL = "http://example.org/new"
DOI_ID = "doi:10.1234/x"
REPEC_ID = "RePEc:aaa:wpaper:1"


def version_bytes(rid: str, title: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">'
            f'<text id="{rid}"><title>{title}</title></text></amf>\n').encode()


def line(path: str, entry: dict, newline: bool = True) -> None:
    with open(path, "ab") as f:
        f.write(json.dumps(entry).encode() + (b"\n" if newline else b""))


class StoreBuilder:
    """Write a store by hand: record directories, versions, objects, attempts."""

    def __init__(self, home: str):
        self.home = home
        self.store = os.path.join(home, "store")
        os.makedirs(self.store, exist_ok=True)

    def record(self, rid: str) -> str:
        d = os.path.join(self.store, record_path(rid))
        os.makedirs(d, exist_ok=True)
        return d

    def version(self, rid: str, tist: int, title: str, end: int | None = None,
                with_sha: bool = True, skipped: list | None = None) -> str:
        d = self.record(rid)
        name = f"{tist}.amf.xml"
        data = version_bytes(rid, title)
        with open(os.path.join(d, name), "xb") as f:
            f.write(data)
        entry = {"event": "renewal", "tist": tist, "end": end or tist + 10, "id": rid,
                 "source": "/input/x.xml:1", "version": name, "current": name,
                 "urls": {}, "skipped": skipped or [], "objects": {}, "errors": []}
        if with_sha:
            entry["version_sha256"] = hashlib.sha256(data).hexdigest()
        line(os.path.join(d, "00notes"), entry)
        with open(os.path.join(d, "00last"), "w") as f:
            f.write(f"{tist} {end or tist + 10}\n")
        return os.path.join(d, name)

    def unchanged(self, rid: str, tist: int, current: str) -> None:
        d = self.record(rid)
        line(os.path.join(d, "00notes"),
             {"event": "renewal", "tist": tist, "end": tist + 10, "id": rid, "version": None,
              "current": current, "urls": {}, "skipped": [], "objects": {}, "errors": []})
        with open(os.path.join(d, "00last"), "w") as f:
            f.write(f"{tist} {tist + 10}\n")

    def object_dir(self, rid: str, url: str) -> str:
        d = os.path.join(self.record(rid), escape(url))
        if not os.path.isdir(d):
            os.makedirs(d)
            with open(os.path.join(d, "00url"), "w") as f:
                f.write(url + "\n")
        return d

    def attempt(self, rid: str, url: str, tist: int, status: str, mtype: str,
                body: bytes = b"", link: str | None = None, location: str | None = None,
                error: str | None = None, file: bool = True, attempt: int = 1) -> str | None:
        """One attempt: its file (regular, or a link to ``link``) and notes line."""
        d = self.object_dir(rid, url)
        name = f"{tist}_{status}_{mtype}" if file else None
        if name and link:
            os.symlink(link, os.path.join(d, name))
        elif name:
            with open(os.path.join(d, name), "xb") as f:
                f.write(body)
        line(os.path.join(d, "00notes"), {
            "tist": tist, "url": url, "status": status, "type": mtype,
            "declared_type": mtype.replace("-", "/", 1), "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest() if file or body else None,
            "sha1": hashlib.sha1(body).hexdigest(), "file": name, "link": link,
            "location": location, "error": error, "elapsed": 0.25, "attempt": attempt,
            "same_as": None})
        return os.path.join(d, name) if name else None


def make_store(home) -> StoreBuilder:
    """A clean store: two records, versions, a link, a shared object, a
    redirect, failures, a retried attempt that left no file, a gone record."""
    b = StoreBuilder(str(home))
    pdf = b"%PDF-1.4 a paper\n"
    b.version(REPEC_ID, T0, "First")
    b.attempt(REPEC_ID, PDF_URL, T0 + 1, "200", "application-pdf", pdf)
    b.attempt(REPEC_ID, DEAD_URL, T0 + 2, "404", "text-html", b"<html>not here</html>")
    b.attempt(REPEC_ID, OLD_URL, T0 + 3, "301", "none", location=NEW_URL)
    b.attempt(REPEC_ID, NEW_URL, T0 + 4, "200", "text-html", b"<html>landing</html>")
    b.version(REPEC_ID, T0 + DAY, "First, revised", skipped=[
        {"branch": "file/url", "value": "mailto:a@example.org",
         "reason": "scheme mailto is not fetched"}])
    b.attempt(REPEC_ID, PDF_URL, T0 + DAY + 1, "200", "application-pdf", pdf,
              link=f"{T0 + 1}_200_application-pdf")
    # A retried timeout leaves a notes line and no file; the retry fails too.
    b.attempt(REPEC_ID, DEAD_URL, T0 + DAY + 2, "000", "none", error="timeout", file=False)
    b.attempt(REPEC_ID, DEAD_URL, T0 + DAY + 5, "000", "none", error="timeout", attempt=2)
    line(os.path.join(b.object_dir(REPEC_ID, DEAD_URL), "00notes"),
         {"event": "given-up", "tist": T0 + DAY + 6})
    b.attempt(REPEC_ID, OLD_URL, T0 + DAY + 3, "301", "none", location=NEW_URL)
    b.attempt(REPEC_ID, NEW_URL, T0 + DAY + 4, "200", "text-html", b"<html>landing 2</html>")

    # The same PDF linked from another record: a link into the first one.
    b.version(DOI_ID, T0 + DAY, "Other", with_sha=False)
    b.attempt(DOI_ID, PDF_URL, T0 + DAY + 7, "200", "application-pdf", pdf,
              link=f"../../../{record_path(REPEC_ID)}/{escape(PDF_URL)}/"
                   f"{T0 + 1}_200_application-pdf")
    with open(os.path.join(b.record(DOI_ID), "00gone"), "w") as f:
        f.write(f"{T0 + 2 * DAY}\n")
    return b


@pytest.fixture
def home(tmp_path):
    make_store(tmp_path)
    return str(tmp_path)


def test_record_with_versions_links_redirects_and_failures(home):
    view = show(home, REPEC_ID)
    assert view.id == REPEC_ID
    assert view.path == os.path.join(home, "store", "RePEc", "aaa", "wpaper", "1")
    assert view.store_path == "RePEc/aaa/wpaper/1"
    assert [(v.name, v.current) for v in view.versions] == [
        (f"{T0}.amf.xml", False), (f"{T0 + DAY}.amf.xml", True)]
    assert view.versions[0].date == "2023-11-14T22:13:20Z"
    assert view.versions[1].size == len(version_bytes(REPEC_ID, "First, revised"))
    assert view.last == (T0 + DAY, T0 + DAY + 10)
    assert view.gone is None and view.renewals == 2
    assert view.skipped == (("file/url", "mailto:a@example.org", "scheme mailto is not fetched"),)
    by_url = {o.url: o for o in view.objects}
    assert set(by_url) == {PDF_URL, DEAD_URL, OLD_URL, NEW_URL}

    pdf = by_url[PDF_URL].timeline
    assert [(a.status, a.link) for a in pdf] == [
        ("200", None), ("200", f"{T0 + 1}_200_application-pdf")]
    assert pdf[1].size == len(b"%PDF-1.4 a paper\n")

    dead = by_url[DEAD_URL].timeline
    assert [(a.status, a.file, a.error, a.event) for a in dead] == [
        ("404", f"{T0 + 2}_404_text-html", None, None),
        ("000", None, "timeout", None),
        ("000", f"{T0 + DAY + 5}_000_none", "timeout", None),
        (None, None, None, "given-up")]
    assert by_url[DEAD_URL].newest.status == "000"

    old = by_url[OLD_URL].timeline
    assert [a.location for a in old] == [NEW_URL, NEW_URL]


def test_record_by_path_and_gone(home):
    path = os.path.join(home, "store", record_path(DOI_ID))
    view = show(home, path)
    assert view.id == DOI_ID
    assert view.gone == T0 + 2 * DAY
    (obj,) = view.objects
    assert obj.timeline[0].link.startswith("../../../RePEc/aaa/wpaper/1/")
    # A store-relative path works too, and a handle in its info:lib form.
    assert show(home, record_path(DOI_ID)).path == path
    assert show(home, "info:lib/RePEc:AAA:wpaper:1").id == REPEC_ID


def test_attempt_file_without_notes_line_shows_up(home):
    d = os.path.join(home, "store", record_path(REPEC_ID), escape(NEW_URL))
    with open(os.path.join(d, f"{T0 + 9 * DAY}_503_text-html"), "wb") as f:
        f.write(b"busy")
    view = show(home, REPEC_ID)
    (new,) = [o for o in view.objects if o.url == NEW_URL]
    assert (new.newest.status, new.newest.in_notes, new.newest.size) == ("503", False, 4)


def test_missing_id_is_not_found(home):
    with pytest.raises(NotFound, match=r"no record 'RePEc:zzz:none:1' in the store"):
        show(home, "RePEc:zzz:none:1")
    with pytest.raises(NotFound, match="not a record directory"):
        show(home, os.path.join(home, "store"))


def test_cli_text(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, REPEC_ID])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"record   {REPEC_ID}\n")
    assert f"  * {T0 + DAY}.amf.xml  2023-11-15T22:13:20Z" in out
    assert "(current)" in out
    assert f"  {PDF_URL}\n" in out
    assert f"{T0 + DAY + 1}_200_application-pdf -> {T0 + 1}_200_application-pdf" in out
    assert f"redirect -> {NEW_URL}" in out
    assert "(no file)  error timeout" in out
    assert "2023-11-15T22:13:26Z  given-up" in out
    assert out.endswith("  skipped mailto:a@example.org (file/url): scheme mailto is not fetched\n")


def test_cli_json(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, "--json", REPEC_ID])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == REPEC_ID
    assert [v["current"] for v in data["versions"]] == [False, True]
    assert {o["url"]: o["newest_status"] for o in data["objects"]}[DEAD_URL] == "000"


def test_cli_missing_id_exits_1(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, "RePEc:zzz:none:1"])
    assert result.exit_code == 1
    assert "Error: no record 'RePEc:zzz:none:1' in the store" in result.output


def test_a_line_with_values_of_the_wrong_types_is_shown_not_a_traceback(home):
    d = os.path.join(home, "store", record_path(REPEC_ID), escape(NEW_URL))
    line(os.path.join(d, "00notes"),
         {"tist": T0 + 9 * DAY, "url": NEW_URL, "status": "200", "type": "text-html",
          "size": "many", "elapsed": [], "attempt": "first", "file": 7, "link": {},
          "location": 3, "error": ["x"], "headers": "Server: x"})
    line(os.path.join(home, "store", record_path(REPEC_ID), "00notes"),
         {"event": "renewal", "tist": T0 + 9 * DAY, "id": 5, "version": 6, "skipped": "x"})
    view = show(home, REPEC_ID)
    (new,) = [o for o in view.objects if o.url == NEW_URL]
    damaged = new.timeline[-1]
    assert (damaged.tist, damaged.status, damaged.size, damaged.file, damaged.link,
            damaged.location, damaged.error) == (T0 + 9 * DAY, "200", 0, None, None, None, None)
    # The id is not text: the one the store's versions give stands.
    assert (view.id, view.renewals, view.skipped) == (REPEC_ID, 3, ())
