"""Discovery: landing pages of real platforms, served by a real server.

The pages in tests/fixtures/landing/ follow each platform's own markup (see
the README there). Each is checked twice: ``discover`` on its bytes must
return exactly the expected list, and served from 127.0.0.1 together with
the files it names, every discovered URL must answer as the site would
(a PDF, a redirect to one, or a 404).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from kiel.discovery import (
    RULES,
    Discovery,
    Found,
    Preserved,
    Via,
    discover,
    fulltext_status,
)
from kiel.report import ArchiveFulltext, DayFulltext, render_html, report
from kiel.report import format_text as report_text
from kiel.show import format_text, show

from kit.homes import minimal_pdf
from kit.servers import Answer, Site
from kit.stores import StoreBuilder, line

LANDING = os.path.join(os.path.dirname(__file__), "fixtures", "landing")


# file -> (page URL, expected discoveries), from landing/expected.json (the
# same file scripts/discovery_precision.py measures precision on).
with open(os.path.join(LANDING, "expected.json"), encoding="utf-8") as _f:
    CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
        name: (case["page"], [(rule, url) for rule, url in case["expect"]])
        for name, case in json.load(_f).items()}


def read(name: str) -> bytes:
    with open(os.path.join(LANDING, name), "rb") as f:
        return f.read()


def test_every_fixture_has_a_case_and_the_readme_names_it() -> None:
    files = sorted(n for n in os.listdir(LANDING) if n.endswith(".html"))
    assert files == sorted(CASES)
    readme = read("README.md").decode()
    for name in files:
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", sorted(CASES))
def test_discover_fixture(name: str) -> None:
    page, expected = CASES[name]
    found = discover(read(name), page, "text/html; charset=utf-8" if name != "relative.html"
                     else "text/html")
    assert [(f.rule, f.url) for f in found] == expected
    assert all(f.rule in RULES for f in found)


def test_platform_count() -> None:
    # The issue asks for at least ten platforms; the rules they exercise:
    used = {rule for _, exp in CASES.values() for rule, _ in exp}
    assert len(CASES) >= 10
    assert {"citation_pdf_url", "bepress_citation_pdf_url", "eprints.document_url",
            "dc.identifier", "link_alternate_pdf", "citation_fulltext_html_url", "jsonld",
            "ojs_download", "ojs_galley", "highwire_full_pdf", "dspace_bitstream",
            "ssrn_delivery"} <= used


# --- the fixtures served -------------------------------------------------

PDF = minimal_pdf()


def routes() -> dict[str, tuple[int, dict[str, str], bytes]]:
    """path?query -> answer, for every page and every file a page names."""
    out: dict[str, tuple[int, dict[str, str], bytes]] = {}
    for name, (page, expected) in CASES.items():
        out[_local(page)] = (200, {"Content-Type": "text/html; charset=utf-8"}, read(name))
        for _rule, url in expected:
            out[_local(url)] = (200, {"Content-Type": "application/pdf"}, PDF)
    out["/research/papers/wp-17.html"] = (200, {"Content-Type": "text/html"},
                                          read("relative.html"))
    out[_local("https://www.biorxiv.org/content/10.1101/2020.03.01.972000v1.full")] = (
        200, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body>full text</body></html>")
    out["/article/55/pdf"] = (302, {"Location": "/files/55.pdf"}, b"")
    out["/files/55.pdf"] = (200, {"Content-Type": "application/pdf"}, PDF)
    out["/files/56.pdf"] = (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>")
    return out


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    table: dict[object, Answer] = {path: (status, list(headers.items()), body)
                                   for path, (status, headers, body) in routes().items()}
    with Site(table=table) as s:
        yield s.url()


def _to_site(url: str, site: str) -> str:
    # Pages name their own hosts; the test site answers for all of them.
    s = urlsplit(site)
    p = urlsplit(url)
    return urlunsplit((s.scheme, s.netloc, p.path, p.query, ""))


def test_served_fixtures_resolve(site: str) -> None:
    with httpx.Client(timeout=5) as client:
        for name, (page, expected) in sorted(CASES.items()):
            r = client.get(_to_site(page, site))
            assert r.status_code == 200, name
            # Discovery on the page as served: relative URLs now resolve
            # against the test site, absolute ones keep the page's hosts (so
            # one file may now be named twice, once per host, and a page that
            # names itself under its real host is no longer "the page").
            found = [f for f in discover(r.content, str(r.url), r.headers.get("content-type"))
                     if _local(f.url) != _local(page)]
            assert {_local(f.url) for f in found} == {_local(u) for _, u in expected}, name
            for f in found:
                answer = client.get(_to_site(f.url, site), follow_redirects=True)
                if name == "missing-pdf.html":
                    assert answer.status_code == 404
                    continue
                assert answer.status_code == 200, (name, f.url)
                if f.rule != "citation_fulltext_html_url":
                    assert answer.content == PDF, (name, f.url)
                if name == "redirect.html":
                    assert [h.status_code for h in answer.history] == [302]
                    assert answer.url.path == "/files/55.pdf"


def test_relative_served_from_its_own_path(site: str) -> None:
    with httpx.Client(timeout=5) as client:
        r = client.get(site + "/research/papers/wp-17.html")
        found = discover(r.content, str(r.url), r.headers.get("content-type"))
        assert found == (Found(site + "/research/pdf/wp-17.pdf", "citation_pdf_url"),)
        assert client.get(found[0].url).content == PDF


def test_minimal_pdf_is_typed_as_pdf() -> None:
    from kiel.mediatype import attempt_type

    assert attempt_type(PDF, None) == "application-pdf"
    assert PDF.startswith(b"%PDF-1.4") and PDF.rstrip().endswith(b"%%EOF")
    startxref = int(PDF.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert PDF[startxref:].startswith(b"xref")


# --- rules and limits one by one -----------------------------------------

PAGE = "https://journal.example.org/a/b/page.html"


def found(html: str, page: str = PAGE, declared: str | None = "text/html",
          **kw: Any) -> list[tuple[str, str]]:
    return [(f.rule, f.url) for f in discover(html.encode("utf-8"), page, declared, **kw)]


def test_order_of_trust_and_first_rule_wins() -> None:
    html = """<html><head>
    <link rel="alternate" type="application/pdf" href="/alt.pdf">
    <meta name="eprints.document_url" content="/e.pdf">
    <meta name="bepress_citation_pdf_url" content="/b.pdf">
    <meta name="citation_pdf_url" content="/c.pdf">
    <meta name="DC.identifier" content="https://journal.example.org/c.pdf">
    <meta name="citation_xml_url" content="/a.xml">
    <link rel="alternate" type="application/jats+xml" href="/jats.xml">
    <link rel="alternate" type="text/xml" title="JATS XML" href="/jats2.xml">
    <link rel="alternate" type="text/xml" title="METS" href="/mets.xml">
    </head><body></body></html>"""
    o = "https://journal.example.org"
    assert found(html) == [
        ("citation_pdf_url", o + "/c.pdf"), ("bepress_citation_pdf_url", o + "/b.pdf"),
        ("eprints.document_url", o + "/e.pdf"), ("link_alternate_pdf", o + "/alt.pdf"),
        ("citation_xml_url", o + "/a.xml"), ("link_alternate_xml", o + "/jats.xml"),
        ("link_alternate_xml", o + "/jats2.xml")]


def test_only_fetched_schemes_no_fragment_not_the_page() -> None:
    html = """<meta name="citation_pdf_url" content="javascript:alert(1)">
    <meta name="citation_pdf_url" content="mailto:x@example.org">
    <meta name="citation_pdf_url" content="data:application/pdf;base64,JVBERi0=">
    <meta name="citation_pdf_url" content="page.html#pdf">
    <meta name="citation_pdf_url" content="ftp://ftp.example.org/pub/p.pdf">
    <meta name="citation_pdf_url" content="HTTPS://journal.example.org/x.pdf#page=3">
    <meta name="citation_pdf_url" content="  https://journal.example.org/x.pdf  ">"""
    assert found(html) == [("citation_pdf_url", "ftp://ftp.example.org/pub/p.pdf"),
                           ("citation_pdf_url", "https://journal.example.org/x.pdf")]


def test_not_html_gives_nothing() -> None:
    html = '<meta name="citation_pdf_url" content="/x.pdf">'
    assert found(html, declared="application/pdf") == []
    assert found(html, declared="text/plain") == []
    assert found(html, declared=None) == [("citation_pdf_url", "https://journal.example.org/x.pdf")]
    assert found(html, declared="application/xhtml+xml") != []
    assert discover(b"", PAGE, "text/html") == ()
    assert discover(b"   \n", PAGE, "text/html") == ()


def test_bounded_parse() -> None:
    head = '<html><head><meta name="citation_pdf_url" content="/early.pdf"></head><body>'
    late = '<meta name="citation_pdf_url" content="/late.pdf">'
    html = head + "x" * 5000 + late
    assert [u for _, u in found(html, max_bytes=1000)] == ["https://journal.example.org/early.pdf"]
    assert len(found(html, max_bytes=10_000)) == 2
    assert found(html, max_bytes=0) == []


def test_charset_from_the_answer_wins() -> None:
    body = ('<meta charset="utf-8"><meta name="citation_pdf_url" content="/d\u00e9p\u00f4t.pdf">'
            ).encode("latin-1")
    assert discover(body, PAGE, "text/html; charset=iso-8859-1") == (
        Found("https://journal.example.org/d\u00e9p\u00f4t.pdf", "citation_pdf_url"),)
    # An unknown charset falls back to the page's own declaration.
    assert len(discover(body, PAGE, "text/html; charset=no-such-charset")) == 1


def test_markup_not_text_counts() -> None:
    # A URL in a comment, a script string or plain text is not a link.
    html = """<!-- <meta name="citation_pdf_url" content="/commented.pdf"> -->
    <script>var s = '<meta name="citation_pdf_url" content="/script.pdf">';</script>
    <p>citation_pdf_url /text.pdf Delivery.cfm?abstractid=1</p>"""
    assert found(html) == []


def test_dc_identifier_only_document_urls() -> None:
    html = """<meta name="dc.identifier" content="https://doi.org/10.1/x">
    <meta name="DC.Identifier" content="http://hdl.handle.net/1/2">
    <meta name="dc.identifier" content="paper.pdf">
    <meta name="DCTERMS.identifier" content="http://repo.example.org/bitstream/1/2/3/x">
    <meta name="DC.identifier" content="https://repo.example.org/x.PDF">
    <meta name="dc.identifier" content="https://repo.example.org/cover.jpg">"""
    assert found(html) == [("dc.identifier", "http://repo.example.org/bitstream/1/2/3/x"),
                           ("dc.identifier", "https://repo.example.org/x.PDF")]


def test_platform_links() -> None:
    html = """
    <a href="/index.php/j/article/download/5/6">PDF</a>
    <a href="/index.php/j/article/view/5/7" class="obj_galley_link file">HTML</a>
    <a href="/index.php/j/article/view/5/8">PDF (English)</a>
    <a href="/content/early/2019/01/01/x.full.pdf+html">preview</a>
    <a href="/server/api/core/bitstreams/0b5c1d2e/content">Download</a>
    <a href="/bitstream/handle/1/2/x.pdf.jpg?sequence=3">thumb</a>
    <a href="/9/1/doc.docx" class="ep_document_link">Word</a>
    <a href="/cgi/viewcontent.cgi?article=1&amp;context=wp">Download</a>
    <a href="/cgi/viewcontent.cgi?context=wp">no article</a>
    <a href="/sol3/Delivery.cfm?abstractid=9">SSRN</a>
    <a href="/files/guidelines.pdf">Author guidelines</a>"""
    o = "https://journal.example.org"
    assert found(html) == [
        ("ojs_download", o + "/index.php/j/article/download/5/6"),
        ("ojs_galley", o + "/index.php/j/article/download/5/8"),
        ("highwire_full_pdf", o + "/content/early/2019/01/01/x.full.pdf"),
        ("dspace_bitstream", o + "/server/api/core/bitstreams/0b5c1d2e/content"),
        ("eprints_document", o + "/9/1/doc.docx"),
        ("bepress_viewcontent", o + "/cgi/viewcontent.cgi?article=1&context=wp"),
        ("ssrn_delivery", o + "/sol3/Delivery.cfm?abstractid=9")]


def test_biorxiv_page_names_its_pdf() -> None:
    page = "https://www.medrxiv.org/content/10.1101/2021.05.05.21256000v2"
    assert found("<p>loading</p>", page=page) == [("biorxiv_full_pdf", page + ".full.pdf")]
    assert found("<p>loading</p>", page="https://example.org/content/10.1101/2021.05.05v2") == []


def test_jsonld_forms() -> None:
    html = """<script type="application/ld+json">[
      {"@type": "schema:ScholarlyArticle", "encoding": {"contentUrl": "/a.pdf"}},
      {"@type": "http://schema.org/Report", "associatedMedia": ["/b.pdf", "/b.png"]},
      {"@type": "Thesis", "contentUrl": "/c.pdf"},
      {"@type": "WebPage", "mainEntity": {"@type": "ScholarlyArticle",
        "encoding": [{"contentUrl": "/d.docx",
          "encodingFormat": "DOCX_TYPE"},
          {"contentUrl": "/d.html", "encodingFormat": "text/html"}]}},
      {"@type": "Dataset", "distribution": {"contentUrl": "/data.csv"}}
    ]</script>
    <script type="application/ld+json">{"@type": "ScholarlyArticle", "encoding": 5}</script>"""
    html = html.replace("DOCX_TYPE",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    o = "https://journal.example.org"
    assert found(html) == [("jsonld", o + "/a.pdf"), ("jsonld", o + "/b.pdf"),
                           ("jsonld", o + "/c.pdf"), ("jsonld", o + "/d.docx")]


def test_base_href_not_http_is_ignored() -> None:
    html = '<base href="javascript:void(0)"><meta name="citation_pdf_url" content="x.pdf">'
    assert found(html) == [("citation_pdf_url", "https://journal.example.org/a/b/x.pdf")]


def test_hostile_pages_do_not_crash() -> None:
    deep = "<div>" * 20000 + '<a href="/sol3/Delivery.cfm?abstractid=1">x</a>'
    assert found(deep) in ([], [("ssrn_delivery",
                                 "https://journal.example.org/sol3/Delivery.cfm?abstractid=1")])
    nested = '<script type="application/ld+json">' + "[" * 5000 + "]" * 5000 + "</script>"
    assert found(nested) == []
    binary = zlib.compress(os.urandom(2000))
    assert discover(binary, PAGE, "text/html") == ()
    assert discover(b"\x00" * 100 + b'<meta name="citation_pdf_url" content="/z.pdf">',
                    PAGE, None) in ((), (Found("https://journal.example.org/z.pdf",
                                               "citation_pdf_url"),))


# --- what the store says: fulltext_status, kiel show, kiel report ----------
#
# A store written by hand with the notes fields the renewal writes
# (docs/discovery.md): "discovered" on the page's attempt, "via" on each
# attempt of a discovered object.

T0 = 1700000000  # 2023-11-14T22:13:20Z
DAY = 86400


class DiscoveryStore:
    def __init__(self, home: str) -> None:
        self.b = StoreBuilder(home)
        self.home = home

    def version(self, rid: str, tist: int) -> str:
        self.b.version(rid, tist, "A paper")
        return self.b.record(rid)

    def attempt(self, rid: str, url: str, tist: int, status: str, mtype: str,
                body: bytes = b"", location: str | None = None,
                discovered: list[tuple[str, str]] | None = None,
                via: tuple[str, str] | None = None) -> None:
        d = self.b.object_dir(rid, url)
        name = f"{tist}_{status}_{mtype}"
        with open(os.path.join(d, name), "xb") as f:
            f.write(body)
        entry: dict[str, object] = {
            "tist": tist, "url": url, "status": status, "type": mtype, "declared_type": None,
            "size": len(body), "sha256": None, "sha1": None, "file": name, "link": None,
            "location": location, "error": None, "elapsed": 0.1, "attempt": 1}
        if discovered is not None:
            entry["discovered"] = [{"url": u, "rule": r} for u, r in discovered]
        if via is not None:
            entry["via"] = {"url": via[0], "rule": via[1]}
        line(os.path.join(d, "00notes"), entry)


R1, R2, R3, R4, R5, R6 = ("RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "RePEc:bbb:wpaper:3",
                          "RePEc:bbb:wpaper:4", "doi:10.5555/5", "RePEc:aaa:wpaper:6")
L1, P1 = "https://j.example.org/article/1", "https://j.example.org/article/1/file.pdf"
L2, P2, P2B = ("https://j.example.org/article/2", "https://repo.example.org/2.pdf",
               "https://j.example.org/article/2/file.pdf")
L3, P3, P3B = ("https://j.example.org/article/3", "https://j.example.org/article/3/pdf",
               "https://cdn.example.org/3.pdf")
L4, P4 = "https://j.example.org/article/4", "https://j.example.org/files/4.pdf"
L5 = "https://j.example.org/article/5"
L6, P6, P6D = ("https://j.example.org/article/6", "https://j.example.org/article/6/file.pdf",
               "https://repo.example.org/6.pdf")
PDF_TYPE = "application-pdf"


@pytest.fixture
def dstore(tmp_path) -> DiscoveryStore:
    s = DiscoveryStore(str(tmp_path))
    html = b"<html>landing</html>"
    # R1: the landing page named a PDF, later stopped naming it.
    s.version(R1, T0)
    s.attempt(R1, L1, T0 + 1, "200", "text-html", html, discovered=[(P1, "citation_pdf_url")])
    s.attempt(R1, P1, T0 + 2, "200", PDF_TYPE, PDF, via=(L1, "citation_pdf_url"))
    s.attempt(R1, L1, T0 + DAY + 1, "200", "text-html", html + b" ", discovered=[])
    # R2: a PDF the record links itself, and one its landing page names.
    s.version(R2, T0)
    s.attempt(R2, P2, T0 + 3, "200", PDF_TYPE, PDF)
    s.attempt(R2, L2, T0 + 4, "200", "text-html", html, discovered=[(P2B, "ojs_galley")])
    s.attempt(R2, P2B, T0 + 5, "200", PDF_TYPE, PDF, via=(L2, "ojs_galley"))
    # R3: the discovered link redirects; the target is its own object, without via.
    s.version(R3, T0)
    s.attempt(R3, L3, T0 + 6, "200", "text-html", html, discovered=[(P3, "citation_pdf_url")])
    s.attempt(R3, P3, T0 + 7, "302", "none", location=P3B, via=(L3, "citation_pdf_url"))
    s.attempt(R3, P3B, T0 + 8, "200", PDF_TYPE, PDF)
    # R4: the discovered PDF answers 404.
    s.version(R4, T0)
    s.attempt(R4, L4, T0 + 9, "200", "text-html", html, discovered=[(P4, "citation_pdf_url")])
    s.attempt(R4, P4, T0 + 10, "404", "text-html", b"<h1>Not Found</h1>",
              via=(L4, "citation_pdf_url"))
    # R5: a landing page that offers nothing; an HTML full text does not count.
    s.version(R5, T0 + DAY)
    s.attempt(R5, L5, T0 + DAY + 2, "200", "text-html", html, discovered=[])
    # R6: found by discovery first, linked directly two days later.
    s.version(R6, T0)
    s.attempt(R6, L6, T0 + 11, "200", "text-html", html, discovered=[(P6, "citation_pdf_url")])
    s.attempt(R6, P6, T0 + 12, "200", PDF_TYPE, PDF, via=(L6, "citation_pdf_url"))
    s.attempt(R6, P6D, T0 + 2 * DAY + 1, "200", PDF_TYPE, PDF)
    return s


def _status(s: DiscoveryStore, rid: str):
    return fulltext_status(s.b.record(rid))


def test_fulltext_status(dstore: DiscoveryStore) -> None:
    r1 = _status(dstore, R1)
    assert r1.kind == "discovered"
    assert r1.discovered == (Preserved(P1, T0 + 2, PDF_TYPE, Via(L1, "citation_pdf_url")),)
    assert r1.direct == ()
    # The page stopped offering it: its newest discovery is empty, the PDF stays.
    assert r1.pages == ((L1, Discovery(T0 + DAY + 1, ())),)
    r2 = _status(dstore, R2)
    assert (r2.kind, r2.urls) == ("direct", (P2, P2B))
    assert r2.direct_since == T0 + 3 and r2.discovered_since == T0 + 5
    r3 = _status(dstore, R3)
    assert r3.kind == "discovered"
    assert r3.discovered == (Preserved(P3B, T0 + 8, PDF_TYPE, Via(L3, "citation_pdf_url")),)
    r4 = _status(dstore, R4)
    assert (r4.kind, r4.urls) == ("none", ())
    assert r4.pages == ((L4, Discovery(T0 + 9, (Found(P4, "citation_pdf_url"),))),)
    assert _status(dstore, R5).kind == "none"
    r6 = _status(dstore, R6)
    assert (r6.kind, r6.direct_since, r6.discovered_since) == ("direct", T0 + 2 * DAY + 1,
                                                               T0 + 12)


def test_fulltext_status_of_an_empty_or_broken_record(tmp_path) -> None:
    assert fulltext_status(str(tmp_path / "missing")).kind == "none"
    obj = tmp_path / "rec" / "x"
    obj.mkdir(parents=True)
    (obj / "00notes").write_bytes(b'not json\n{"tist": "x", "status": "200"}\n'
                                  b'{"tist": 5, "status": "200", "type": "application-pdf", '
                                  b'"via": {"url": 3}}\n{"tist": 6, "status": "200"')
    st = fulltext_status(str(tmp_path / "rec"))
    # No 00url: the URL comes from the notes, or stays unknown; a torn line is skipped.
    assert st.kind == "direct" and st.direct[0].tist == 5 and st.direct[0].via is None


def test_show_puts_discovered_objects_under_their_page(dstore: DiscoveryStore) -> None:
    view = show(dstore.home, R3)
    by_url = {o.url: o for o in view.objects}
    via, discovered = by_url[P3].via, by_url[L3].discovered
    assert via is not None and via.rule == "citation_pdf_url"
    assert discovered is not None and discovered.found == (Found(P3, "citation_pdf_url"),)
    text = format_text(view)
    block = text.split("objects  3\n", 1)[1].splitlines()
    assert block == [
        f"  {P3B}",
        f"    2023-11-14T22:13:28Z  200  application-pdf  {len(PDF)} B  "
        + f"{T0 + 8}_200_application-pdf",
        f"  {L3}",
        f"    2023-11-14T22:13:26Z  200  text-html  20 B  {T0 + 6}_200_text-html",
        "    discovery 2023-11-14T22:13:26Z  1 found: citation_pdf_url",
        f"      -> {P3}  (discovered by citation_pdf_url)",
        f"        2023-11-14T22:13:27Z  302  none  0 B  {T0 + 7}_302_none  redirect -> {P3B}",
    ]
    text1 = format_text(show(dstore.home, R1))
    assert "    discovery 2023-11-15T22:13:21Z  nothing found (the page offered no full text)" \
        in text1
    assert json.loads(view.to_json())["objects"][1]["discovered"]["found"] == [
        {"url": P3, "rule": "citation_pdf_url"}]


def test_show_names_the_page_of_an_orphan(tmp_path) -> None:
    s = DiscoveryStore(str(tmp_path))
    s.version(R1, T0)
    s.attempt(R1, P1, T0 + 2, "200", PDF_TYPE, PDF, via=(L1, "citation_pdf_url"))
    assert f"  {P1}  (discovered by citation_pdf_url on {L1})" in format_text(show(s.home, R1))


def test_report_counts_the_fulltext_share(dstore: DiscoveryStore) -> None:
    r = report(dstore.home)
    assert r.fulltext == (ArchiveFulltext("RePEc:aaa", 2, 1, 0),
                          ArchiveFulltext("RePEc:bbb", 0, 1, 1),
                          ArchiveFulltext("other", 0, 0, 1))
    assert r.fulltext_over_time == (
        DayFulltext("2023-11-14", 1, 3, 1),  # R2 direct; R1, R3, R6 discovered; R4 none
        DayFulltext("2023-11-15", 1, 3, 2),  # R5 stored, without a full text
        DayFulltext("2023-11-16", 2, 2, 2),  # R6 now linked directly
    )
    text = report_text(r)
    assert "records by full text (docs/discovery.md):\n" \
           "  directly        2  (33.3%)\n" \
           "  by discovery    2  (33.3%)\n" \
           "  not at all      2  (33.3%)\n" in text
    assert "    RePEc:bbb                0 / 1 / 1\n" in text
    page = render_html(r, T0 + 3 * DAY)
    assert '<table id="fulltext">' in page and '<table id="fulltext-over-time">' in page
    assert ('<tr><th>RePEc:aaa</th><td class="n">2</td><td class="n">1</td>'
            '<td class="n">0</td></tr>') in page
    only = report(dstore.home, prefix="RePEc:bbb")
    assert only.fulltext == (ArchiveFulltext("RePEc:bbb", 0, 1, 1),)


def test_helpers_for_the_renewal(tmp_path) -> None:
    from kiel.discovery import discover_file, discovered_field, is_page, via_field

    page = tmp_path / "1700000000_200_text-html"
    page.write_bytes(read("relative.html"))
    found = discover_file(str(page), "http://econ.example.edu/research/papers/wp-17.html",
                          "text/html")
    assert found == (Found("http://econ.example.edu/research/pdf/wp-17.pdf", "citation_pdf_url"),)
    assert discover_file(str(page), "http://econ.example.edu/x", "text/html", max_bytes=100) == ()
    assert discovered_field(found) == [{"url": found[0].url, "rule": "citation_pdf_url"}]
    assert discovered_field(()) == []
    assert via_field("http://p", "jsonld") == {"url": "http://p", "rule": "jsonld"}
    assert is_page("200", "text-html", None)
    assert is_page("200", "application-xhtml+xml", "application/xhtml+xml")
    assert is_page("200", "text-plain", "text/html; charset=utf-8")
    assert not is_page("200", "text-plain", "text/plain")
    assert not is_page("200", "text-plain", None)
    assert not is_page("200", "text-html", "text/plain")  # discover would not read it
    assert not is_page("200", "application-pdf", "text/html")
    assert not is_page("404", "text-html", "text/html")
    assert not is_page("304", "text-html", "text/html")


def test_the_page_with_a_fragment_is_still_the_page() -> None:
    html = '<meta name="citation_fulltext_html_url" content="https://journal.example.org/a/b/page.html">'
    assert found(html, page=PAGE + "#abstract") == []


def test_document_types_are_attempt_tokens() -> None:
    from kiel.discovery import DOCUMENT_MEDIA_TYPES, DOCUMENT_TYPES
    from kiel.mediatype import token

    assert DOCUMENT_TYPES == {token(m) for m in DOCUMENT_MEDIA_TYPES}
    assert "application-pdf" in DOCUMENT_TYPES and "text-html" not in DOCUMENT_TYPES
