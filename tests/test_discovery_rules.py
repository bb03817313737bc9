"""Discovery, second round: host rules, the guarded plain link, self-links,
FAIR Signposting and malformed values (docs/discovery.md). Fixtures are
pages in each host's published markup and headers as each platform sends
them; one of each is also served by a real local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from lxml import html as lxml_html

from kiel import hostrules, signposting
from kiel.discovery import RULES, Found, discover, read_page

from kit.servers import Site

TOP = Path(__file__).resolve().parent.parent
FIX = TOP / "tests" / "fixtures"
HOSTS = FIX / "hosts"
PLAIN = FIX / "plain"
SIGN = FIX / "signposting"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def cases(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "expected.json").read_text("utf-8"))


# --- host rules --------------------------------------------------------------

HOST_CASES = cases(HOSTS)


def test_the_table_covers_the_major_hosts_and_each_rule_has_a_fixture() -> None:
    names = [c.rule.name for c in hostrules.rules()]
    assert len(names) == len(set(names))
    assert sorted(f"{n}.html" for n in names) == sorted(HOST_CASES)
    assert sorted(p.name for p in HOSTS.glob("*.html")) == sorted(HOST_CASES)
    hosts = {h for c in hostrules.rules() for h in c.rule.hosts}
    for needed in ("sciencedirect.com", "link.springer.com", "onlinelibrary.wiley.com",
                   "tandfonline.com", "academic.oup.com", "cambridge.org", "jstor.org",
                   "papers.ssrn.com", "nber.org", "ideas.repec.org", "econpapers.repec.org",
                   "econstor.eu", "elifesciences.org", "mdpi.com", "frontiersin.org",
                   "hindawi.com", "journals.plos.org", "peerj.com", "arxiv.org",
                   "biorxiv.org", "osf.io"):
        assert needed in hosts, needed
    for c in hostrules.rules():  # each example is a page of the rule's own host
        assert c.rule.applies_to(urlsplit(c.rule.example).hostname or "")
        assert HOST_CASES[f"{c.rule.name}.html"]["page"] == c.rule.example


@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_host_fixture(name: str) -> None:
    case = HOST_CASES[name]
    found = discover((HOSTS / name).read_bytes(), case["page"], "text/html; charset=utf-8")
    assert [[f.rule, f.url] for f in found] == case["expect"]


@pytest.mark.parametrize("rule", [c.rule.name for c in hostrules.rules()])
def test_each_host_rule_alone_finds_the_expected_link(rule: str) -> None:
    """The selector and URL form of each rule, on its own fixture: also for the
    three hosts whose link a platform pattern takes first (SSRN, EconStor,
    bioRxiv)."""
    (c,) = [c for c in hostrules.rules() if c.rule.name == rule]
    case = HOST_CASES[f"{rule}.html"]
    doc = lxml_html.document_fromstring((HOSTS / f"{rule}.html").read_bytes())
    found = c.xpath(doc)
    assert isinstance(found, list)
    urls = [u for u in (urljoin(case["page"], str(v)) for v in found) if c.form.search(u)]
    assert urls[:1] == [u for _, u in case["expect"]]


def test_a_host_rule_reads_only_pages_of_its_host() -> None:
    for name, case in HOST_CASES.items():
        body = (HOSTS / name).read_bytes()
        elsewhere = "https://mirror.example.org/" + urlsplit(case["page"]).path.lstrip("/")
        assert not [f for f in discover(body, elsewhere, "text/html")
                    if f.rule.startswith("host:")], name
    assert hostrules.for_host("www.NBER.org.")[0].rule.name == "nber"
    assert hostrules.for_host("nber.org.evil.example") == ()
    assert hostrules.for_host("notnber.org") == ()


def test_a_malformed_table_names_the_rule() -> None:
    with pytest.raises(ValueError, match="host rule 2"):
        hostrules.parse('{"rules": [{"name": "a", "hosts": ["a.org"], "select": "//a/@href",'
                        ' "form": ".", "example": "https://a.org/"}, {"name": "b"}]}')


# --- the guarded plain link --------------------------------------------------

PLAIN_CASES = cases(PLAIN)


@pytest.mark.parametrize("name", sorted(PLAIN_CASES))
def test_plain_fixture(name: str) -> None:
    case = PLAIN_CASES[name]
    found = discover((PLAIN / name).read_bytes(), case["page"], "text/html")
    assert [[f.rule, f.url] for f in found] == case["expect"]
    assert sum(f.rule == "plain_pdf_link" for f in found) <= 1


def test_precision_is_measured_and_the_figure_is_in_the_docs() -> None:
    out = subprocess.run([sys.executable, str(TOP / "scripts" / "discovery_precision.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pages leading to a wrong object: 0" in out.stdout
    doc = (TOP / "docs" / "discovery.md").read_text("utf-8")
    assert out.stdout.strip() in doc


# --- self-links ----------------------------------------------------------------

@pytest.mark.parametrize("spelling", [
    "https://journal.example.org/article/12/", "https://JOURNAL.example.org/article/12",
    "https://journal.example.org:443/article/12", "https://journal.example.org./article/12",
    "https://journal.example.org/article/12#fulltext", "/article/12/"])
def test_the_page_itself_in_another_spelling_is_not_a_second_object(spelling: str) -> None:
    page = "https://journal.example.org/article/12"
    body = (f'<html><head><meta name="citation_fulltext_html_url" content="{spelling}">'
            '<meta name="citation_pdf_url" content="/article/12/pdf"></head></html>').encode()
    assert discover(body, page, "text/html") == (
        Found("https://journal.example.org/article/12/pdf", "citation_pdf_url"),)
    # and from the other side: the page with a slash, the link without
    assert discover(body, page + "/", "text/html")[0].rule == "citation_pdf_url"
    assert len(discover(body, page + "/", "text/html")) == 1


def test_another_page_is_still_an_object() -> None:
    body = (b'<html><head><meta name="citation_fulltext_html_url" '
            b'content="https://journal.example.org:8443/article/12"></head></html>')
    assert [f.rule for f in discover(body, "https://journal.example.org/article/12",
                                     "text/html")] == ["citation_fulltext_html_url"]
    body = b'<meta name="citation_fulltext_html_url" content="/article/12?view=full">'
    assert len(discover(body, "https://journal.example.org/article/12", "text/html")) == 1


# --- signposting -----------------------------------------------------------------

SIGN_CASES = json.loads((SIGN / "cases.json").read_text("utf-8"))


@pytest.mark.parametrize("platform", sorted(SIGN_CASES))
def test_signposting_as_each_platform_sends_it(platform: str) -> None:
    c = SIGN_CASES[platform]
    r = read_page(c["body"].encode(), c["page"], "text/html; charset=utf-8",
                  headers=[(k, v) for k, v in c["headers"]])
    assert [[f.rule, f.url] for f in r.found] == c["expect"]
    assert list(r.cite_as) == c["cite_as"]
    assert list(r.describedby) == c["describedby"]
    fields = r.fields()
    assert fields["signposting"] == {"cite-as": c["cite_as"], "describedby": c["describedby"]}


def test_a_typed_item_is_the_most_trusted_rule() -> None:
    assert RULES[0] == "signposting_item"
    body = (b'<html><head><meta name="citation_pdf_url" content="/meta.pdf">'
            b'<link rel="item" type="application/pdf" href="/item.pdf"></head></html>')
    got = discover(body, "https://r.example.org/rec/1", "text/html",
                   headers=[("Link", '</head.pdf>; rel="item"; type="application/pdf"')])
    assert [(f.rule, f.url) for f in got] == [
        ("signposting_item", "https://r.example.org/head.pdf"),
        ("signposting_item", "https://r.example.org/item.pdf"),
        ("citation_pdf_url", "https://r.example.org/meta.pdf")]


def test_link_header_parsing() -> None:
    posts = signposting.from_headers([
        ("link", '<https://a.example/x,y.pdf>; rel="item describedby"; type="Application/PDF"; '
                 'title="a, b; c", <https://a.example/c>;rel=cite-as,<bad'),
        ("Content-Type", "text/html"), ("LINK", "no link here; rel=item")])
    assert posts == [signposting.Signpost("item", "https://a.example/x,y.pdf", "application/pdf"),
                     signposting.Signpost("describedby", "https://a.example/x,y.pdf",
                                          "application/pdf"),
                     signposting.Signpost("cite-as", "https://a.example/c", "")]
    many = ", ".join(f'</f{i}.pdf>; rel="item"; type="application/pdf"' for i in range(5000))
    assert len(signposting.from_headers([("Link", many)])) == signposting.MAX_LINKS


# --- malformed values: dropped and noted, the rest of the page read ----------------

GOOD = '<meta name="citation_pdf_url" content="/good.pdf">'


@pytest.mark.parametrize("bad", [
    '<link rel="canonical" href="http://[::1/x">',
    '<base href="http://[::1/">',
    '<meta name="citation_pdf_url" content="http://[::1/a.pdf">',
    '<script type="application/ld+json">{"@type":"ScholarlyArticle","encoding":'
    '{"contentUrl":"http://[::1/x.pdf"}}</script>',
    '<script type="application/ld+json">{"@type":"ScholarlyArticle",'
    '"contentUrl":"http://a.example/\\ud800.pdf"}</script>',
    '<meta name="citation_pdf_url" content="http://a.example:99999/a.pdf">',
    '<link rel="item" type="application/pdf" href="http://[v1.x/y.pdf">',
])
def test_one_malformed_url_leaves_the_rest_of_the_page(bad: str) -> None:
    from kiel.platforms import match_page

    body = f"<html><head>{bad}{GOOD}</head><body></body></html>".encode("utf-8",
                                                                       "surrogatepass")
    page = "https://j.example.org/a/1"
    r = read_page(body, page, "text/html")
    assert [f.url for f in r.found] == ["https://j.example.org/good.pdf"]
    json.dumps(r.fields(), ensure_ascii=False).encode("utf-8")  # writable as a notes line
    match_page(page, body)  # the deposit reader of the same page does not break either


def test_a_dropped_value_is_noted() -> None:
    body = (b'<html><head><meta name="citation_pdf_url" content="http://[::1/a.pdf">'
            + GOOD.encode() + b"</head></html>")
    r = read_page(body, "https://j.example.org/a/1", "text/html")
    assert r.fields()["dropped"] == ["citation_pdf_url: ValueError: Invalid IPv6 URL"]


# --- one rule of each kind through a real local server -------------------------------

@pytest.fixture
def site() -> Iterator[Site]:
    """Answers for any host name (the Host header is the real host's)."""
    with Site() as s:
        yield s


def _get(client: httpx.Client, site: Site, url: str) -> httpx.Response:
    # The real URL asked of the local server: its path, and its host in Host.
    parts = urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return client.get(site.url(path), headers={"Host": parts.hostname or ""})


@pytest.mark.parametrize("kind", ["host:nber", "plain_pdf_link", "signposting_item"])
def test_served_under_the_real_host_name(site: Site, kind: str) -> None:
    headers: list[tuple[str, str]]
    if kind == "host:nber":
        page = HOST_CASES["nber.html"]["page"]
        body, headers = (HOSTS / "nber.html").read_bytes(), []
    elif kind == "plain_pdf_link":
        page = PLAIN_CASES["thesis.html"]["page"]
        body, headers = (PLAIN / "thesis.html").read_bytes(), []
    else:
        c = SIGN_CASES["zenodo"]
        page, body = c["page"], c["body"].encode()
        headers = [(k, v) for k, v in c["headers"] if k == "Link"]
    p = urlsplit(page)
    site.table = {(p.hostname or "", p.path + ("?" + p.query if p.query else "")):
                   (200, [("Content-Type", "text/html; charset=utf-8"), *headers], body)}
    with httpx.Client(timeout=5) as client:
        r = _get(client, site, page)
        assert r.status_code == 200
        found = discover(r.content, page, r.headers.get("content-type"),
                         headers=list(r.headers.multi_items()))
        assert [f.rule for f in found] == [kind]
        f = urlsplit(found[0].url)
        site.table[(f.hostname or "", f.path + ("?" + f.query if f.query else ""))] = (
            200, [("Content-Type", "application/pdf")], PDF)
        assert _get(client, site, found[0].url).content == PDF
    assert [h for h, _ in site.requests] == [p.hostname, f.hostname]


def test_fixture_files_are_small() -> None:
    for folder in (HOSTS, PLAIN, SIGN):
        for name in os.listdir(folder):
            assert (folder / name).stat().st_size < 16 * 1024, name
