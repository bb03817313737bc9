"""Discovery and deposits through a real renewal: the files on disk and the
notes are the test (docs/discovery.md, docs/datasets.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kiel import notes
from kiel.escape import escape

from kit.homes import minimal_pdf, object_dir, record_dir, run, set_config, text, write_amf

FIXTURES = Path(__file__).parent / "fixtures" / "platforms" / "dataverse"


def landing(pdf_path: str) -> bytes:
    """A publisher's landing page in Highwire Press markup (Google Scholar's)."""
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>A paper</title>'
            f'<meta name="citation_title" content="A paper">'
            f'<meta name="citation_pdf_url" content="{pdf_path}"></head>'
            f'<body><h1>A paper</h1><a href="{pdf_path}">PDF</a></body></html>').encode()


NOTHING = b"<!DOCTYPE html><html><head><title>Gone</title></head><body>moved</body></html>"


def lines(d: Path) -> list[dict]:
    return [e for e in notes.entries(str(d / "00notes")) if "status" in e]


def test_a_landing_page_leads_to_its_full_text(home, httpserver, tmp_path, clock):
    pdf = minimal_pdf("the full text")
    httpserver.expect_request("/paper/1").respond_with_data(landing("/files/1.pdf"),
                                                            content_type="text/html")
    httpserver.expect_request("/files/1.pdf").respond_with_data(pdf,
                                                                content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:1"
    page = httpserver.url_for("/paper/1")
    src = write_amf(tmp_path / "a.xml", text(rid, display=page))
    s = run(home, src, clock=clock)
    assert s.input_errors == 0
    full = httpserver.url_for("/files/1.pdf")
    (pline,) = lines(object_dir(home, rid, page))
    assert pline["discovered"] == [{"url": full, "rule": "citation_pdf_url"}]
    fdir = object_dir(home, rid, full)
    (fline,) = lines(fdir)
    assert fline["status"] == "200" and fline["type"] == "application-pdf"
    assert fline["via"] == {"url": page, "rule": "citation_pdf_url"}
    assert (fdir / fline["file"]).read_bytes() == pdf
    (renewal,) = [e for e in notes.entries(str(record_dir(home, rid) / "00notes"))
                  if e.get("event") == "renewal"]
    assert renewal["urls"]["(discovered)"] == [full]
    assert renewal["objects"][full] == escape(full)

    # the page stops offering it: noted; the full text stays as it was
    httpserver.clear()
    httpserver.expect_request("/paper/1").respond_with_data(NOTHING, content_type="text/html")
    clock.advance(86400)
    run(home, src, clock=clock)
    assert lines(object_dir(home, rid, page))[-1]["discovered"] == []
    assert (fdir / fline["file"]).read_bytes() == pdf and len(lines(fdir)) == 1


def test_a_full_text_the_record_names_too_is_one_object(home, httpserver, tmp_path, clock):
    httpserver.expect_request("/paper/2").respond_with_data(landing("/files/2.pdf"),
                                                            content_type="text/html")
    httpserver.expect_request("/files/2.pdf").respond_with_data(
        minimal_pdf(), content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:2"
    page, full = httpserver.url_for("/paper/2"), httpserver.url_for("/files/2.pdf")
    run(home, write_amf(tmp_path / "a.xml", text(rid, full, display=page)), clock=clock)
    dirs = [d for d in record_dir(home, rid).iterdir() if d.is_dir()]
    assert sorted(d.name for d in dirs) == sorted([escape(page), escape(full)])
    (fline,) = lines(object_dir(home, rid, full))
    assert "via" not in fline  # the record names it: not a discovery
    assert len(httpserver.log) == 2


def test_depth_one_and_branches_without_discovery(home, httpserver, tmp_path, clock):
    """A discovered page is not searched again; file/url is not searched."""
    httpserver.expect_request("/paper/3").respond_with_data(landing("/next"),
                                                            content_type="text/html")
    httpserver.expect_request("/next").respond_with_data(landing("/deeper.pdf"),
                                                         content_type="text/html")
    httpserver.expect_request("/file-page").respond_with_data(landing("/other.pdf"),
                                                              content_type="text/html")
    rid = "RePEc:aaa:wpaper:3"
    page = httpserver.url_for("/paper/3")
    run(home, write_amf(tmp_path / "a.xml",
                        text(rid, httpserver.url_for("/file-page"), display=page)), clock=clock)
    fetched = sorted(r.path for r, _ in httpserver.log)
    assert fetched == ["/file-page", "/next", "/paper/3"]
    assert "discovered" not in lines(object_dir(home, rid, httpserver.url_for("/next")))[0]
    assert "discovered" not in lines(object_dir(home, rid, httpserver.url_for("/file-page")))[0]


def serve_dataverse(httpserver):
    """A Dataverse installation on loopback: the dataset page, its API answer
    and its two files. Returns the dataset's id and the files' bytes."""
    pid = "doi:10.7910/DVN/KIEL01"
    api = json.loads((FIXTURES / "api" / "kiel01-latest.json").read_text())
    httpserver.expect_request("/dataset.xhtml").respond_with_data(
        b"<html><body>dataset</body></html>", content_type="text/html")
    httpserver.expect_request("/api/datasets/:persistentId/versions/:latest-published",
                              query_string={"persistentId": pid}).respond_with_json(api)
    panel = (FIXTURES / "files" / "panel.dta").read_bytes()
    analysis = (FIXTURES / "files" / "analysis.do").read_bytes()
    httpserver.expect_request("/api/access/datafile/11").respond_with_data(
        panel, content_type="application/x-stata")
    httpserver.expect_request("/api/access/datafile/12").respond_with_data(
        analysis, content_type="text/plain")
    return pid, panel, analysis


def test_a_deposit_link_ends_with_every_file_verified(home, httpserver, tmp_path, clock):
    """A Dataverse installation on loopback: the record's link to a dataset page
    leads through the API to both files, checked against the declared md5."""
    pid, panel, analysis = serve_dataverse(httpserver)
    rid = "RePEc:aaa:wpaper:4"
    link = httpserver.url_for("/dataset.xhtml") + f"?persistentId={pid}"
    set_config(home, max_file_count=10)
    s = run(home, write_amf(tmp_path / "a.xml", text(rid, link)), clock=clock)
    assert s.input_errors == 0, s.problems
    rdir = record_dir(home, rid)
    (m,) = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "manifest"]
    assert m["platform"] == "dataverse" and m["failure"] is None, m
    assert m["file_count"] == 2
    by_path = {f["path"]: f for f in m["files"]}
    for f in by_path.values():
        assert f["file"] is not None, f
        body = (rdir / f["file"]).read_bytes()
        assert f["found"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert f["status"] in ("ok", "mismatch")
    assert {(rdir / f["file"]).read_bytes() for f in by_path.values()} == {panel, analysis}
    # the API answer is an object of the record too, with its time
    api_dirs = [d for d in rdir.iterdir() if d.is_dir() and "api%2Fdatasets" in d.name]
    assert len(api_dirs) == 1 and lines(api_dirs[0])[0]["status"] == "200"

    # unchanged next time: one API request and one note, no file fetched again
    before = len(httpserver.log)
    clock.advance(86400)
    run(home, write_amf(tmp_path / "a.xml", text(rid, link)), clock=clock)
    again = [r.path for r, _ in httpserver.log[before:]]
    assert sorted(again) == ["/api/datasets/:persistentId/versions/:latest-published",
                             "/dataset.xhtml"]
    ms = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "manifest"]
    assert len(ms) == 2 and ms[1]["unchanged"] is True


def _etagged(body: bytes, content_type: str):
    """A handler that answers 304 to a request carrying the body's ETag."""
    from werkzeug import Response

    def handler(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, content_type=content_type, headers={"ETag": '"v1"'})
    return handler


def test_discovery_switched_on_later_searches_the_stored_page(home, httpserver, tmp_path,
                                                              clock):
    """A page searched under other settings is searched again from its stored
    body when it answers 304: no second request for the page."""
    import dataclasses

    pdf = minimal_pdf("found on the second night")
    httpserver.expect_request("/paper/7").respond_with_handler(
        _etagged(landing("/files/7.pdf"), "text/html"))
    httpserver.expect_request("/files/7.pdf").respond_with_data(
        pdf, content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:7"
    page, full = httpserver.url_for("/paper/7"), httpserver.url_for("/files/7.pdf")
    src = write_amf(tmp_path / "a.xml", text(rid, display=page))
    off = dataclasses.replace(home.config(), discovery_depth=0)
    run(home, src, clock=clock, config=off)
    (night1,) = lines(object_dir(home, rid, page))
    assert night1["status"] == "200" and "discovered" not in night1
    assert not object_dir(home, rid, full).exists()

    clock.advance(86400)
    run(home, src, clock=clock)  # discovery_depth = 1 (the default)
    night2 = lines(object_dir(home, rid, page))[-1]
    assert night2["status"] == "304"
    assert night2["discovered"] == [{"url": full, "rule": "citation_pdf_url"}]
    (fline,) = lines(object_dir(home, rid, full))
    assert fline["status"] == "200" and fline["via"] == {"url": page,
                                                        "rule": "citation_pdf_url"}
    fdir = object_dir(home, rid, full)
    assert (fdir / fline["file"]).read_bytes() == pdf
    assert [r.path for r, _ in httpserver.log] == ["/paper/7", "/paper/7", "/files/7.pdf"]

    # the same settings the next night: the page's reading is carried, not redone
    clock.advance(86400)
    run(home, src, clock=clock)
    night3 = lines(object_dir(home, rid, page))[-1]
    assert night3["status"] == "304" and night3["searched"] == night2["searched"]
    assert night3["discovered"] == night2["discovered"]


def test_two_records_linking_one_deposit_ask_its_api_once(home, httpserver, tmp_path, clock):
    """The deposit's API and files are fetched once per run; the second record
    links to the first's bodies and still verifies every file."""
    pid, panel, analysis = serve_dataverse(httpserver)
    link = httpserver.url_for("/dataset.xhtml") + f"?persistentId={pid}"
    set_config(home, max_file_count=10)
    rids = ["RePEc:aaa:wpaper:5", "RePEc:aaa:wpaper:6"]
    s = run(home, write_amf(tmp_path / "a.xml", *(text(r, link) for r in rids)), clock=clock)
    assert s.input_errors == 0, s.problems
    asked = sorted(r.path for r, _ in httpserver.log)
    assert asked == ["/api/access/datafile/11", "/api/access/datafile/12",
                     "/api/datasets/:persistentId/versions/:latest-published",
                     "/dataset.xhtml"]
    for rid in rids:
        rdir = record_dir(home, rid)
        (m,) = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "manifest"]
        assert m["failure"] is None and m["file_count"] == 2, m
        assert {(rdir / f["file"]).read_bytes() for f in m["files"]} == {panel, analysis}
        assert all(f["status"] in ("ok", "mismatch") for f in m["files"]), m["files"]


def test_a_branch_switched_to_discover_searches_its_stored_pages(home, httpserver, tmp_path,
                                                                 clock):
    httpserver.expect_request("/page/8").respond_with_handler(
        _etagged(landing("/files/8.pdf"), "text/html"))
    httpserver.expect_request("/files/8.pdf").respond_with_data(
        minimal_pdf(), content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:8"
    page, full = httpserver.url_for("/page/8"), httpserver.url_for("/files/8.pdf")
    src = write_amf(tmp_path / "a.xml", text(rid, page))  # file/url: discover="no"
    run(home, src, clock=clock)
    assert "discovered" not in lines(object_dir(home, rid, page))[0]

    branches = Path(home.root) / "etc" / "branches.xml"
    branches.write_text(branches.read_text().replace(
        '<branch xpath="file/url" discover="no"/>', '<branch xpath="file/url" discover="yes"/>'))
    clock.advance(86400)
    run(home, src, clock=clock)
    last = lines(object_dir(home, rid, page))[-1]
    assert last["status"] == "304"
    assert last["discovered"] == [{"url": full, "rule": "citation_pdf_url"}]
    assert lines(object_dir(home, rid, full))[0]["status"] == "200"


def test_the_searched_fingerprint_follows_rules_and_settings(monkeypatch):
    from kiel import discovery

    base = discovery.searched_field(True, 1)
    assert len(base) == 16 and base == discovery.searched_field(True, 1)
    assert discovery.searched_field(True, 2) != base
    assert discovery.searched_field(False, 1) != base
    monkeypatch.setattr(discovery, "RULES_VERSION", discovery.RULES_VERSION + 1)
    discovery._rules_digest.cache_clear()
    try:
        assert discovery.searched_field(True, 1) != base
    finally:
        monkeypatch.undo()
        discovery._rules_digest.cache_clear()
    assert discovery.searched_field(True, 1) == base
