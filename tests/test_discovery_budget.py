"""A landing page parsed once, within a budget (docs/discovery.md, Bounded):
an attribute bomb, a flood of elements, real bytes, one renewal through a
real local server."""

from __future__ import annotations

import time

from kiel import htmlparse, notes
from kiel.discovery import read_page
from kiel.platforms import match_page

from kit.homes import object_dir, run, set_config, text, write_amf

HEAD = b"<!DOCTYPE html><html><head><title>A paper</title>"
PDF_META = b'<meta name="citation_pdf_url" content="/files/paper.pdf">'
CANONICAL = b'<link rel="canonical" href="https://zenodo.org/records/1001">'


def bomb(n: int) -> bytes:
    """One tag with ``n`` attributes, then the metadata a reader wants."""
    attrs = b" ".join(b"data-a%d=x" % i for i in range(n))
    return HEAD + b"<meta " + attrs + b">" + PDF_META + CANONICAL + b"</head><body></body></html>"


def test_an_attribute_bomb_is_cut_and_the_rest_of_the_page_read() -> None:
    body = bomb(150_000)  # 1.7 MB, as in the attack
    assert len(body) > 1_600_000
    started = time.monotonic()
    r = read_page(body, "https://j.example.org/a/1", "text/html")
    elapsed = time.monotonic() - started
    assert [(f.rule, f.url) for f in r.found] == [
        ("citation_pdf_url", "https://j.example.org/files/paper.pdf")]
    assert r.dropped == ("page: attributes beyond the first 64 of 1 tag (<meta>) not read",)
    assert "https://zenodo.org/records/1001" in r.identity
    assert elapsed < 2, elapsed  # minutes in libxml2 before the budget


def test_the_deposit_reader_has_the_same_budget() -> None:
    started = time.monotonic()
    ref = match_page("https://j.example.org/a/1", bomb(60_000))
    assert ref is not None and ref.deposit_id == "1001"
    assert time.monotonic() - started < 2


def test_many_tags_of_many_attributes_and_a_flood_of_elements() -> None:
    tag = b"<div " + b" ".join(b"a%d=1" % i for i in range(300)) + b">"
    body = HEAD + PDF_META + b"</head><body>" + tag * (4 * 2**20 // len(tag))
    started = time.monotonic()
    r = read_page(body, "https://j.example.org/a/1", "text/html")
    assert time.monotonic() - started < 3
    assert [f.rule for f in r.found] == ["citation_pdf_url"]
    assert r.dropped[0].startswith("page: attributes beyond the first 64 of ")
    flood = HEAD + PDF_META + b"</head><body>" + b"<a href='/x.html'>x</a>" * 400_000
    data, cuts = htmlparse.bound(flood)
    assert data.count(b"<a ") < htmlparse.MAX_ELEMENTS and cuts
    started = time.monotonic()
    r = read_page(flood, "https://j.example.org/a/1", "text/html")
    assert time.monotonic() - started < 5
    assert [f.rule for f in r.found] == ["citation_pdf_url"]


def test_ordinary_markup_is_untouched() -> None:
    long_value = b'<img alt="figure" src="data:image/png;base64,' + b"A" * 50_000 + b'">'
    many = b"<div " + b" ".join(b'data-k%d="v>w"' % i for i in range(64)) + b">"
    script = (b'<script type="application/ld+json">{"a": "<b ' + b"x=1 " * 500
              + b'>"}</script>')
    for body in (HEAD + long_value, HEAD + many, HEAD + script):
        assert htmlparse.bound(body) == (body, [])


def test_a_renewal_parses_the_page_once_and_notes_the_cut(home, httpserver, tmp_path, clock,
                                                          monkeypatch) -> None:
    calls: list[int] = []
    real = htmlparse.parse

    def counted(data: bytes, charset: str | None, max_bytes: int = htmlparse.MAX_BYTES,
                budget: htmlparse.Budget | None = None) -> htmlparse.Parsed:
        calls.append(len(data))
        return real(data, charset, max_bytes, budget)

    monkeypatch.setattr(htmlparse, "parse", counted)
    set_config(home, processes=1)  # the parses are counted in this process
    body = bomb(60_000)
    httpserver.expect_request("/a/1").respond_with_data(body, content_type="text/html")
    httpserver.expect_request("/files/paper.pdf").respond_with_data(
        b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    rid = "RePEc:aaa:wpaper:71"
    page = httpserver.url_for("/a/1")
    started = time.monotonic()
    run(home, write_amf(tmp_path / "a.xml", text(rid, display=page)), clock=clock)
    assert time.monotonic() - started < 10
    (line,) = [e for e in notes.entries(str(object_dir(home, rid, page) / "00notes"))
               if "status" in e]
    assert line["discovered"] == [{"url": httpserver.url_for("/files/paper.pdf"),
                                   "rule": "citation_pdf_url"}]
    assert line["dropped"] == ["page: attributes beyond the first 64 of 1 tag (<meta>) "
                               "not read"]
    assert len(calls) == 1  # one parse for discovery and the deposit reader
