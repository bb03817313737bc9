"""Signposting and malformed values through a real renewal: a local server
sends the page and its headers; the notes and files on disk are the test."""

from __future__ import annotations

import os

from pytest_httpserver import HTTPServer
from werkzeug import Response

from kiel import notes

from kit.homes import object_dir, record_dir, run, text, write_amf

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def lines(d) -> list[dict]:
    return [e for e in notes.entries(str(d / "00notes")) if "status" in e]


def test_a_signposted_item_is_fetched_and_cite_as_noted(home, httpserver: HTTPServer,
                                                        tmp_path, clock) -> None:
    """Headers as Zenodo sends them: the typed item is the full text; the
    persistent identifier and the metadata record are noted, not fetched."""
    base = httpserver.url_for("")
    link = (f'<https://doi.org/10.5281/zenodo.1234567> ; rel="cite-as" , '
            f'<{base}api/records/1234567> ; rel="describedby" ; type="application/dcat+xml" , '
            f'<{base}records/1234567/files/paper.pdf> ; rel="item" ; type="application/pdf" , '
            f'<{base}records/1234567/files/data.csv> ; rel="item" ; type="text/csv" , '
            f'<https://spdx.org/licenses/cc-by-4.0> ; rel="license"')
    httpserver.expect_request("/records/1234567").respond_with_response(Response(
        b"<!DOCTYPE html><html><head><title>Paper</title></head><body></body></html>",
        headers={"Content-Type": "text/html; charset=utf-8", "Link": link}))
    httpserver.expect_request("/records/1234567/files/paper.pdf").respond_with_data(
        PDF, content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:61"
    page = httpserver.url_for("/records/1234567")
    full = httpserver.url_for("/records/1234567/files/paper.pdf")
    run(home, write_amf(tmp_path / "a.xml", text(rid, display=page)), clock=clock)
    (pline,) = lines(object_dir(home, rid, page))
    assert pline["discovered"] == [{"url": full, "rule": "signposting_item"}]
    assert pline["signposting"] == {"cite-as": ["https://doi.org/10.5281/zenodo.1234567"],
                                    "describedby": [f"{base}api/records/1234567"]}
    (fline,) = lines(object_dir(home, rid, full))
    assert fline["via"] == {"url": page, "rule": "signposting_item"}
    assert (object_dir(home, rid, full) / fline["file"]).read_bytes() == PDF
    asked = sorted(r.path for r, _ in httpserver.log)
    assert asked == ["/records/1234567", "/records/1234567/files/paper.pdf"]


def test_one_malformed_url_leaves_the_page_searched_and_noted(home, httpserver: HTTPServer,
                                                              tmp_path, clock) -> None:
    """An unclosed IPv6 bracket in the canonical link and in JSON-LD, a lone
    surrogate escape in a contentUrl: the good citation_pdf_url is found, the
    page has its notes line, and nothing is left behind."""
    page_body = (
        b'<html><head><link rel="canonical" href="http://[::1/x">'
        b'<script type="application/ld+json">{"@type": "ScholarlyArticle", "encoding": '
        b'{"contentUrl": "http://[::1/x.pdf"}, "contentUrl": "http://a.example/\\ud800.pdf"}'
        b'</script><meta name="citation_pdf_url" content="/good.pdf"></head>'
        b"<body>paper</body></html>")
    httpserver.expect_request("/a/7").respond_with_data(page_body, content_type="text/html")
    httpserver.expect_request("/good.pdf").respond_with_data(PDF,
                                                             content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:62"
    page = httpserver.url_for("/a/7")
    s = run(home, write_amf(tmp_path / "a.xml", text(rid, display=page)), clock=clock)
    assert s.input_errors == 0
    pdir = object_dir(home, rid, page)
    (pline,) = lines(pdir)
    assert pline["discovered"] == [{"url": httpserver.url_for("/good.pdf"),
                                    "rule": "citation_pdf_url"}]
    assert any("Invalid IPv6 URL" in d for d in pline["dropped"]), pline
    assert sorted(os.listdir(pdir)) == sorted(["00notes", "00url", pline["file"]])
    names = [n for n in os.listdir(record_dir(home, rid)) if n.startswith(".")]
    assert names == []  # no temporary file left behind
