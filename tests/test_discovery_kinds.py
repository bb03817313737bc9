"""The kind of a body, decided as a browser decides it (docs/contract.md,
The kind of a body): pages that libmagic calls JavaScript are pages; a PDF
is a PDF whatever the server declares. Real bytes, and one renewal through
a real local server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kiel import notes
from kiel.discovery import discover, is_page
from kiel.mediatype import attempt_type, body_kind, has_document_tag, is_pdf, sniff

from kit.homes import object_dir, run, text, write_amf

# A tag manager snippet: libmagic 5.44 types a body that opens with it as
# application/javascript, as it does the article pages of large platforms.
GTM = (b"(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':new Date().getTime(),"
       b"event:'gtm.js'});var f=d.getElementsByTagName(s)[0],j=d.createElement(s),"
       b"dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src='https://www.googletagmanager.com/"
       b"gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);})(window,document,'script',"
       b"'dataLayer','GTM-KIEL');\n")
SCRIPT = b"<script>\n" + GTM + b"</script>\n"
PAGE = (b'<html lang="en"><head><meta charset="utf-8"><title>A paper</title>'
        b'<meta name="citation_pdf_url" content="/files/paper.pdf"></head>'
        b"<body><h1>A paper</h1></body></html>")

OPENINGS: dict[str, bytes] = {
    "a script": SCRIPT + PAGE,
    "a comment, then a script": b"<!-- rendered 2024-01-01 <html> -->\n" + SCRIPT + PAGE,
    "a byte-order mark": b"\xef\xbb\xbf" + SCRIPT + PAGE,
    "white space": b"\r\n\r\n   \t\n" + SCRIPT + PAGE,
    "an XML declaration": (b'<?xml version="1.0" encoding="utf-8"?>\n' + SCRIPT
                           + PAGE.replace(b"<html ",
                                          b'<html xmlns="http://www.w3.org/1999/xhtml" ')),
    "a doctype after the script": SCRIPT + b"<!DOCTYPE html>\n" + PAGE,
    "a head without html": SCRIPT + PAGE.replace(b'<html lang="en">', b"")
    .replace(b"</html>", b""),
}


@pytest.mark.parametrize("opening", sorted(OPENINGS))
def test_a_page_libmagic_misreads_is_a_page(opening: str) -> None:
    body = OPENINGS[opening]
    # what libmagic alone says: the reason for the rule
    assert sniff(body) not in ("text/html", "application/xhtml+xml"), sniff(body)
    kind = attempt_type(body, "text/html; charset=utf-8")
    assert kind == "text-html"
    assert is_page("200", kind, "text/html; charset=utf-8")
    found = discover(body, "https://journal.example.org/a/1", "text/html; charset=utf-8")
    assert [(f.rule, f.url) for f in found] == [
        ("citation_pdf_url", "https://journal.example.org/files/paper.pdf")]


def test_the_declaration_and_the_bytes_together() -> None:
    # Not declared HTML: libmagic's word stands (a browser shows text/plain as text).
    assert attempt_type(SCRIPT + PAGE, "application/javascript") == "application-javascript"
    assert attempt_type(SCRIPT + PAGE, "text/plain") == "application-javascript"
    assert attempt_type(SCRIPT + PAGE, None) == "application-javascript"
    # Declared HTML, but no document: a script whose strings name tags is no page.
    js = SCRIPT + b'<script>document.write("<html><head>");</script>' + GTM
    assert not has_document_tag(js)
    assert attempt_type(js, "text/html") == "application-javascript"
    assert attempt_type(b'{"error": "no such article"}', "text/html") == "application-json"
    assert not has_document_tag(b"<!-- <html> <head> -->" + GTM)
    assert not has_document_tag(b"<style>/* <html> */</style><htmlx><header>")
    assert has_document_tag(b"<HTML>") and has_document_tag(b"<Head >")
    assert has_document_tag("\ufeff<script>x</script><html>".encode("utf-16"))
    # An empty body is named by its declaration, as before.
    assert attempt_type(b"", "text/html; charset=utf-8") == "text-html"
    assert body_kind(b"", "text/html") is None


def test_a_pdf_is_a_pdf_whatever_the_declaration() -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
    for declared in ("text/html", "text/html; charset=utf-8", "application/octet-stream",
                     "text/plain", None):
        assert attempt_type(pdf, declared) == "application-pdf"
        assert not is_page("200", attempt_type(pdf, declared), declared)
    # the signature after a byte-order mark or white space, as PDF readers accept
    for lead in (b"\xef\xbb\xbf", b"\r\n\r\n", b"\x00" * 10):
        assert is_pdf(lead + pdf) and attempt_type(lead + pdf, "text/html") == "application-pdf"
    # a page that quotes the signature stays a page
    quoting = PAGE.replace(b"<h1>A paper</h1>", b"<p>Files begin with %PDF-1.4</p>")
    assert not is_pdf(quoting) and attempt_type(quoting, "text/html") == "text-html"
    assert not is_pdf(b"%PD") and not is_pdf(b"x" * 1030 + b"%PDF-1.4")


def test_the_scan_is_linear() -> None:
    # Hostile heads: unclosed comments and tags by the tens of thousands.
    for body in (b"<a" * 32768, b"<!--" + b"-" * 65536, b"</" * 32768, b"<?" * 32768,
                 b"<script>" * 8192, b"<" * 65536):
        assert not has_document_tag(body)
        assert attempt_type(body, "text/html") != "text-html" or sniff(body) == "text/html"


def test_a_renewal_names_the_page_by_its_kind_and_searches_it(home, httpserver, tmp_path,
                                                              clock) -> None:
    """A real server sends a page that opens with a script as text/html: the
    attempt file is ``_200_text-html`` and its notes line names the PDF."""
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    body = OPENINGS["a script"]
    httpserver.expect_request("/a/1").respond_with_data(body,
                                                        content_type="text/html; charset=utf-8")
    httpserver.expect_request("/files/paper.pdf").respond_with_data(
        pdf, content_type="application/octet-stream")
    rid = "RePEc:aaa:wpaper:51"
    page = httpserver.url_for("/a/1")
    full = httpserver.url_for("/files/paper.pdf")
    run(home, write_amf(tmp_path / "a.xml", text(rid, display=page)), clock=clock)
    pdir = object_dir(home, rid, page)
    (pline,) = [e for e in notes.entries(str(pdir / "00notes")) if "status" in e]
    assert pline["file"].endswith("_200_text-html"), pline["file"]
    assert (pdir / pline["file"]).read_bytes() == body
    assert pline["discovered"] == [{"url": full, "rule": "citation_pdf_url"}]
    fdir = object_dir(home, rid, full)
    (fline,) = [e for e in notes.entries(str(fdir / "00notes")) if "status" in e]
    assert fline["file"].endswith("_200_application-pdf")
    assert hashlib.sha256((fdir / fline["file"]).read_bytes()).hexdigest() == \
        hashlib.sha256(pdf).hexdigest()
    assert sorted(p.name for p in Path(pdir).iterdir()) == sorted(["00notes", "00url",
                                                                   pline["file"]])
