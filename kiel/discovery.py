"""Discovery: from a landing page to the full text it offers (docs/discovery.md).

Most ``displaypage`` values are publishers' landing pages; the protocol sets
out to store "the documents pointed to", so Kiel reads an HTML answer for the
full text it names. :func:`discover` is pure: bytes and a URL in, the URLs
found and the rule that found each out, in the order of trust of
docs/discovery.md. :func:`fulltext_status` reads what the renewal noted in a
record directory and says whether the record's full text is held, and how.

Markup is read with lxml's HTML parser, never with regular expressions: a
landing page is tag soup written by a thousand templates. Regular
expressions are used only on URL strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

from kiel import hostrules, htmlparse, notes, replies, signposting, store
from kiel.platforms.page import links_in_root
from kiel.urls import Target, classify

if TYPE_CHECKING:
    from lxml.etree import _Element

# Parsing a landing page costs memory in proportion to its size; the
# metadata Kiel reads sits in <head> and near the top of <body>.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

# Rule names, in order of trust; stable, they are written to the notes.
RULES: tuple[str, ...] = (
    "signposting_item",
    "citation_pdf_url",
    "bepress_citation_pdf_url",
    "eprints.document_url",
    "dc.identifier",
    "link_alternate_pdf",
    "citation_fulltext_html_url",
    "citation_xml_url",
    "link_alternate_xml",
    "jsonld",
    "ojs_download",
    "ojs_galley",
    "highwire_full_pdf",
    "biorxiv_full_pdf",
    "dspace_bitstream",
    "eprints_document",
    "bepress_viewcontent",
    "ssrn_delivery",
    "host",  # the host rules of kiel/data/host_rules.json, noted as host:<name>
    "plain_pdf_link",
)

# Media types that count as a full text (docs/discovery.md). HTML and XML do
# not: the landing page itself is HTML, and an XML answer is as often an
# error or a feed as a JATS article, so counting them would make the
# full-text share say nothing.
DOCUMENT_MEDIA_TYPES: tuple[str, ...] = (
    "application/pdf",
    "application/x-pdf",
    "application/postscript",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
    "application/rtf",
    "text/rtf",
    "application/epub+zip",
    "image/vnd.djvu",
    "application/x-dvi",
)
# The same as the type tokens of attempt names and notes (docs/contract.md).
DOCUMENT_TYPES: frozenset[str] = frozenset(m.replace("/", "-") for m in DOCUMENT_MEDIA_TYPES)

_ABSOLUTE = re.compile(r"^\s*(https?|ftp)://", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_DOC_EXT = re.compile(r"\.(pdf|ps|ps\.gz|djvu?|docx?|odt|rtf|epub)$", re.IGNORECASE)
_IMAGE_EXT = re.compile(r"\.(jpe?g|png|gif|webp|svg|tiff?)$", re.IGNORECASE)
_OJS_DOWNLOAD = re.compile(r"/article/download/\d+/\d+(/\d+)?/?$")
_OJS_VIEW_PAIR = re.compile(r"^(.*)/article/view/(\d+)/(\d+)/?$")
_FULL_PDF = re.compile(r"\.full\.pdf(\+html)?$", re.IGNORECASE)
_BIORXIV_HOST = re.compile(r"(^|\.)(biorxiv|medrxiv)\.org$", re.IGNORECASE)
_BIORXIV_PAGE = re.compile(r"^/content/10\.1101/[^/]+v\d+$")
_DSPACE = re.compile(r"/bitstreams?/|/server/api/core/bitstreams/[^/]+/content$")
_VIEWCONTENT = re.compile(r"/viewcontent\.cgi$")
_SSRN = re.compile(r"/Delivery\.cfm(/|$)", re.IGNORECASE)
_JSONLD_TYPES = frozenset({"ScholarlyArticle", "MedicalScholarlyArticle", "Report", "Thesis",
                           "Chapter"})
_DOC_MEDIA = frozenset(DOCUMENT_MEDIA_TYPES)
_XML_ALTERNATES = frozenset({"application/xml", "text/xml"})


@dataclass(frozen=True)
class Found:
    url: str  # absolute, as Kiel fetches it (kiel.urls.classify)
    rule: str  # one of RULES, or host:<name> for a host rule


@dataclass(frozen=True)
class PageReading:
    """What one read of a page gives: the full texts it offers, what its
    signposting says besides, and the values dropped as malformed."""

    found: tuple[Found, ...]
    cite_as: tuple[str, ...] = ()  # the persistent identifiers it asks to be cited by
    describedby: tuple[str, ...] = ()  # its metadata records
    dropped: tuple[str, ...] = ()  # "<where>: <why>", one per value not read
    # Where the page says what it is (canonical link, og:url, citation_doi...),
    # for the deposit matcher: the page is parsed once for both readers.
    identity: tuple[str, ...] = ()
    searched: str | None = None  # :func:`searched_field` of the search that gave it
    # Why the page was not read to its end (its time ran out, the run
    # stopped): nothing of it is taken, and no ``discovered`` is noted.
    given_up: str | None = None

    def fields(self) -> dict[str, object]:
        """The fields of the page's attempt line (docs/discovery.md)."""
        if self.given_up is not None:
            # Not searched: a 304 of the page searches its stored body again.
            return {"dropped": [f"page: {self.given_up}"]}
        out: dict[str, object] = {"discovered": discovered_field(self.found)}
        if self.searched:
            out["searched"] = self.searched
        sign = {k: list(v) for k, v in (("cite-as", self.cite_as),
                                        ("describedby", self.describedby)) if v}
        if sign:
            out["signposting"] = sign
        if self.dropped:
            out["dropped"] = list(self.dropped)
        return out


Headers = Iterable[tuple[str, str]]
MAX_DROPPED = 20  # a page of a thousand bad values is noted by its first ones


def discover(body: bytes, page_url: str, declared_type: str | None,
             max_bytes: int = DEFAULT_MAX_BYTES, headers: Headers = ()) -> tuple[Found, ...]:
    """The full texts an HTML page offers, most trusted first.

    ``declared_type`` is the answer's ``Content-Type``: a type other than
    HTML gives nothing (none declared is read as HTML), and its charset is
    used to decode. ``headers`` are the answer's header fields, for their
    ``Link`` signposts. Only the first ``max_bytes`` of the body are parsed.
    Relative URLs are resolved against ``<base href>`` and ``page_url``;
    only http, https and ftp URLs are kept, each once (its first rule
    wins), never the page itself in any spelling.
    """
    return read_page(body, page_url, declared_type, max_bytes, headers).found


def read_page(body: bytes, page_url: str, declared_type: str | None,
              max_bytes: int = DEFAULT_MAX_BYTES, headers: Headers = (),
              budget: htmlparse.Budget | None = None) -> PageReading:
    """:func:`discover`, with the signposts noted and the values dropped.

    With a ``budget`` (:class:`kiel.htmlparse.Budget`, its clock started
    here) a page that takes longer, or is still being read when the run
    stops, is given up: :attr:`PageReading.given_up` says why."""
    budget = (budget or htmlparse.Budget()).begin()
    try:
        return _read_page(body, page_url, declared_type, max_bytes, headers, budget)
    except htmlparse.GivenUp as e:
        return PageReading((), given_up=given_up_reason(e))


STOPPED = "not read: the run was stopping"


def given_up_reason(e: htmlparse.GivenUp) -> str:
    """The words of a page's ``dropped`` note for a reading given up."""
    if e.why == "stop":
        return STOPPED
    return (f"given up: reading it took more than {e.seconds:g} s of processor time "
            "(discovery_timeout)")


async def read_page_off_loop(path: str, page_url: str, declared_type: str | None,
                             headers: Headers = (), seconds: float | None = None,
                             max_bytes: int = DEFAULT_MAX_BYTES) -> PageReading:
    """:func:`read_page` on the first ``max_bytes`` of the file at ``path``,
    in a thread of its own, so the event loop (and a stop's cancellation)
    is never held by a page: within ``seconds`` of processor time.

    A cancellation (the run stopping) is answered at once, as a fetch's is
    (kiel/fetch.py): the task goes on with a reading given up as
    :data:`STOPPED`, and the thread, a daemon that never keeps the process
    alive, is told to end at its next step."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[PageReading] = loop.create_future()
    stop = threading.Event()

    def settle(result: PageReading | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(cast(PageReading, result))

    def work() -> None:
        result: PageReading | None = None
        error: BaseException | None = None
        try:
            with open(path, "rb") as f:
                body = f.read(max(max_bytes, 0))
            result = read_page(body, page_url, declared_type, max_bytes, headers,
                               htmlparse.Budget(seconds, stop))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            error = e
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="kiel-page", daemon=True).start()
    try:
        return await done
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and hasattr(task, "uncancel"):
            task.uncancel()  # the cancellation is this result (3.11+)
        return PageReading((), given_up=STOPPED)
    finally:
        stop.set()  # a cancelled reading ends at its next step; a finished one is unaffected


def _read_page(body: bytes, page_url: str, declared_type: str | None, max_bytes: int,
               headers: Headers, budget: htmlparse.Budget) -> PageReading:
    media, charset = _media_type(declared_type)
    if media is not None and media not in _HTML_TYPES:
        return PageReading(())
    root, cuts = _parse(body[:max(max_bytes, 0)], charset, budget)
    posts = signposting.from_headers(headers)
    if root is None and not posts:
        return PageReading(())
    dropped: list[str] = [f"page: {c}" for c in cuts]
    base = _base(root, page_url, dropped, budget) if root is not None else page_url
    page_key = _page_key(page_url)
    out: list[Found] = []
    seen: set[str] = set()

    def take(rule: str, value: str, against: str) -> bool:
        budget.step()
        url = _resolve(against, value, dropped, rule)
        if url is None or url in seen or _page_key(url) == page_key:
            return False  # the page itself, in any spelling, is not a second object
        seen.add(url)
        out.append(Found(url, rule))
        return True

    # Relative hrefs of headers resolve against the page, of <link> the base.
    both = [(p, page_url) for p in posts] + [
        (p, base) for p in (_signposts(root, budget) if root is not None else [])]
    for post, against in both:
        if post.rel == "item" and post.type in _DOC_MEDIA:
            # A typed item is the platform saying "this is the content".
            take("signposting_item", post.href, against)
    cite_as = _noted(both, "cite-as", dropped, budget)
    described = _noted(both, "describedby", dropped, budget)
    if root is not None:
        for rule, value in _candidates(root, base, page_url, dropped, budget):
            take(rule, value, base)
        if not out:
            for rule, value in _plain_link(root, base, page_url, dropped, budget):
                take(rule, value, base)
    identity = tuple(links_in_root(page_url, root, budget)) if root is not None else ()
    return PageReading(tuple(out), cite_as, described, tuple(dropped[:MAX_DROPPED]), identity)


def plain_pdf_link(body: bytes, page_url: str, declared_type: str | None,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Found | None:
    """The plain-link rule alone, as if no other rule had found anything:
    what it would take on a page (its precision is measured this way)."""
    media, charset = _media_type(declared_type)
    if media is not None and media not in _HTML_TYPES:
        return None
    root, _ = _parse(body[:max(max_bytes, 0)], charset)
    if root is None:
        return None
    dropped: list[str] = []
    free = htmlparse.Budget()
    for rule, url in _plain_link(root, _base(root, page_url, dropped, free), page_url, dropped,
                                 free):
        if _page_key(url) != _page_key(page_url):
            return Found(url, rule)
    return None


def _noted(posts: list[tuple[signposting.Signpost, str]], rel: str,
           dropped: list[str], budget: htmlparse.Budget) -> tuple[str, ...]:
    urls = (_resolve(against, p.href, dropped, f"signposting {rel}")
            for p, against in budget.each(posts) if p.rel == rel)
    return tuple(dict.fromkeys(u for u in urls if u is not None))


def _signposts(root: _Element, budget: htmlparse.Budget) -> list[signposting.Signpost]:
    out: list[signposting.Signpost] = []
    for rel, mtype, href, _ in _links(root, budget):
        out.extend(signposting.Signpost(r, href, mtype) for r in sorted(rel)
                   if r in signposting.RELATIONS)
    return out


def _page_key(url: str) -> str | None:
    """One spelling of a page URL: scheme and host in lower case, no
    default port, no trailing slash, no fragment."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    path = parts.path.rstrip("/") or ""
    return urlunsplit((scheme, host, path, parts.query, ""))


_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def discover_file(path: str, page_url: str, declared_type: str | None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Found, ...]:
    """:func:`discover` on a stored attempt file, reading at most ``max_bytes``."""
    with open(path, "rb") as f:
        return discover(f.read(max(max_bytes, 0)), page_url, declared_type, max_bytes)


_PAGE_TOKENS = frozenset({"text-html", "application-xhtml+xml"})


def is_page(status: str, type_token: str, declared_type: str | None) -> bool:
    """Whether an attempt is one discovery reads: a 200 declared as HTML
    (or not declared) whose body is a page by :func:`kiel.mediatype.body_kind`
    (the kind its attempt file is named by: a page that opens with a script
    is ``text-html`` there), or text while the server declares HTML (a
    fragment without ``<html>`` can sniff as text/plain). Exactly the
    attempts on which :func:`discover` looks."""
    if status != "200":
        return False
    media, _ = _media_type(declared_type)
    if media is not None and media not in _HTML_TYPES:
        return False
    return type_token in _PAGE_TOKENS or (
        media is not None and type_token in ("text-plain", "text-xml", "application-xml"))


def discovered_field(found: tuple[Found, ...]) -> list[dict[str, str]]:
    """The ``discovered`` field of the page's attempt line (docs/discovery.md)."""
    return [{"url": f.url, "rule": f.rule} for f in found]


def via_field(page_url: str, rule: str) -> dict[str, str]:
    """The ``via`` field of each attempt line of a discovered object."""
    return {"url": page_url, "rule": rule}


# Raised whenever a rule reads pages differently from before: a page whose
# stored body was searched under another version is searched again.
RULES_VERSION = 1


@functools.cache
def _rules_digest() -> str:
    table = resources.files("kiel").joinpath("data/host_rules.json").read_bytes()
    h = hashlib.sha256(f"{RULES_VERSION}\0{','.join(RULES)}\0".encode())
    h.update(table)
    return h.hexdigest()


def searched_field(discover: bool, depth: int) -> str:
    """The ``searched`` field of a page's attempt line: a short fingerprint of
    what a search of it depended on (the rules and host rules Kiel has, the
    branch's ``discover``, ``discovery_depth``). A page that answers 304 is
    searched again, from its stored body, when this differs from the one its
    stored body was last searched under (docs/discovery.md)."""
    h = hashlib.sha256(f"{_rules_digest()}\0{int(discover)}\0{depth}".encode())
    return h.hexdigest()[:16]


# --- parsing ---------------------------------------------------------------

def _media_type(declared: str | None) -> tuple[str | None, str | None]:
    if not declared:
        return None, None
    parts = declared.split(";")
    media = parts[0].strip().lower() or None
    charset = None
    for p in parts[1:]:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media, charset


def _parse(data: bytes, charset: str | None, budget: htmlparse.Budget | None = None
           ) -> tuple[_Element | None, tuple[str, ...]]:
    parsed = htmlparse.parse(data, charset, max_bytes=len(data), budget=budget)
    return parsed.root, parsed.cuts


def _elements(root: _Element, tag: str, budget: htmlparse.Budget) -> Iterator[_Element]:
    for el in budget.each(root.iter(tag)):
        if isinstance(el.tag, str):
            yield el


def _attr(el: _Element, name: str) -> str:
    value = el.get(name)
    return value.strip() if isinstance(value, str) else ""


def _base(root: _Element, page_url: str, dropped: list[str],
          budget: htmlparse.Budget) -> str:
    # The first <base href> counts (HTML: "the first base element with an href").
    for el in _elements(root, "base", budget):
        href = _attr(el, "href")
        if href:
            try:
                resolved = urljoin(page_url, _clean(href))
                scheme = urlsplit(resolved).scheme.lower()
            except ValueError as e:
                dropped.append(f"base href: {e}")
                break
            if scheme in ("http", "https", "ftp"):
                return resolved
            break
    return page_url


def _clean(value: str) -> str:
    # The URL parser of browsers drops tabs and newlines inside a URL.
    return value.strip().replace("\t", "").replace("\n", "").replace("\r", "")


def _resolve(base: str, value: str, dropped: list[str] | None = None,
             where: str = "") -> str | None:
    """``value`` resolved and in the form Kiel fetches, or None. A malformed
    value (an unclosed IPv6 bracket, a lone surrogate) is noted in
    ``dropped`` and the rest of the page read on."""
    value = _clean(value)
    if not value:
        return None
    try:
        value.encode("utf-8")
        url = urljoin(base, value)
        parts = urlsplit(url)
        # The fragment never reaches the server: one object with or without it.
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    except (ValueError, UnicodeError) as e:
        if dropped is not None and len(dropped) < MAX_DROPPED:
            dropped.append(f"{where}: {type(e).__name__}: {str(e)[:200]}")
        return None
    return _fetch_form(url)


def _fetch_form(url: str) -> str | None:
    t = classify(url)
    return t.fetch if isinstance(t, Target) else None


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


# --- the rules -------------------------------------------------------------

def _metas(root: _Element, budget: htmlparse.Budget) -> list[tuple[str, str]]:
    """(lower-case name, content) of every <meta>; ``property`` stands in
    for ``name``, as some templates write it."""
    out = []
    for el in _elements(root, "meta", budget):
        name = _attr(el, "name") or _attr(el, "property")
        content = _attr(el, "content")
        if name and content:
            out.append((name.lower(), content))
    return out


def _links(root: _Element, budget: htmlparse.Budget) -> list[tuple[set[str], str, str, str]]:
    out = []
    for el in _elements(root, "link", budget):
        rel = set(_attr(el, "rel").lower().split())
        mtype = _attr(el, "type").split(";")[0].strip().lower()
        href = _attr(el, "href")
        if href:
            out.append((rel, mtype, href, _attr(el, "title")))
    return out


def _candidates(root: _Element, base: str, page_url: str, dropped: list[str],
                budget: htmlparse.Budget) -> Iterator[tuple[str, str]]:
    metas = _metas(root, budget)
    links = _links(root, budget)

    def meta(name: str) -> Iterator[tuple[str, str]]:
        return ((name, content) for n, content in metas if n == name)

    yield from meta("citation_pdf_url")
    yield from meta("bepress_citation_pdf_url")
    yield from meta("eprints.document_url")
    for n, content in budget.each(metas):
        if n in ("dc.identifier", "dcterms.identifier") and _ABSOLUTE.match(content):
            url = _resolve(base, content, dropped, "dc.identifier")
            # A DOI or handle URL names the landing page, not a document.
            if url is not None and _is_document_url(url):
                yield "dc.identifier", content
    for rel, mtype, href, _ in links:
        if "alternate" in rel and mtype == "application/pdf":
            yield "link_alternate_pdf", href
    yield from meta("citation_fulltext_html_url")
    yield from meta("citation_xml_url")
    for rel, mtype, href, title in links:
        # Repositories offer many exports as text/xml alternates (METS, MODS,
        # DIDL): only JATS counts as a full text.
        if "alternate" in rel and (mtype == "application/jats+xml" or (
                mtype in _XML_ALTERNATES and "jats" in title.lower())):
            yield "link_alternate_xml", href
    for url in _jsonld(root, budget):
        yield "jsonld", url
    yield from _platform(root, base, page_url, dropped, budget)
    yield from _host_rules(root, base, page_url, dropped, budget)


def _is_document_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    path = parts.path
    if _IMAGE_EXT.search(path):
        return False
    return bool(_DOC_EXT.search(path) or _OJS_DOWNLOAD.search(path) or _DSPACE.search(path)
                or (_VIEWCONTENT.search(path) and "article=" in parts.query)
                or _SSRN.search(path))


def _platform(root: _Element, base: str, page_url: str, dropped: list[str],
              budget: htmlparse.Budget) -> Iterator[tuple[str, str]]:
    """Links that well-known platforms give their full texts, in page order."""
    for el in _elements(root, "a", budget):
        href = _attr(el, "href")
        if not href:
            continue
        url = _resolve(base, href, dropped, "a href")
        if url is None:
            continue
        parts = urlsplit(url)
        path, query = parts.path, parts.query
        classes = set(_attr(el, "class").lower().split())
        if _IMAGE_EXT.search(path):
            continue  # thumbnails and cover images share the platforms' paths
        if _OJS_DOWNLOAD.search(path):
            yield "ojs_download", url
            continue
        m = _OJS_VIEW_PAIR.match(path)
        if m and ("pdf" in classes or _text(el).upper().startswith("PDF")):
            # An OJS galley link /article/view/N/M shows the PDF in a frame;
            # /article/download/N/M is the file itself.
            dl = f"{m.group(1)}/article/download/{m.group(2)}/{m.group(3)}"
            yield "ojs_galley", urlunsplit((parts.scheme, parts.netloc, dl, "", ""))
            continue
        if _FULL_PDF.search(path):
            yield "highwire_full_pdf", urlunsplit((parts.scheme, parts.netloc,
                                                   _FULL_PDF.sub(".full.pdf", path), query, ""))
            continue
        if _DSPACE.search(path):
            yield "dspace_bitstream", url
            continue
        if "ep_document_link" in classes:
            yield "eprints_document", url
            continue
        if _VIEWCONTENT.search(path) and "article=" in query:
            yield "bepress_viewcontent", url
            continue
        if _SSRN.search(path) and "abstractid=" in query.lower():
            yield "ssrn_delivery", url
    try:
        page = urlsplit(page_url)
        host = page.hostname or ""
    except ValueError:
        return
    if _BIORXIV_HOST.search(host) and _BIORXIV_PAGE.match(page.path):
        # bioRxiv and medRxiv serve every preprint's PDF at the page's
        # versioned path plus .full.pdf.
        yield "biorxiv_full_pdf", urlunsplit((page.scheme, page.netloc,
                                              page.path + ".full.pdf", "", ""))


def _text(el: _Element) -> str:
    # lxml-stubs allow bytes; lxml gives str text on Python 3.
    return " ".join("".join(cast(Iterator[str], el.itertext())).split())


def _host_rules(root: _Element, base: str, page_url: str, dropped: list[str],
                budget: htmlparse.Budget) -> Iterator[tuple[str, str]]:
    """The rules of kiel/data/host_rules.json for the page's host, in table
    order; a value is taken only in the URL form its rule requires."""
    try:
        host = urlsplit(page_url).hostname or ""
    except ValueError:
        return
    from lxml import etree

    for c in hostrules.for_host(host):
        budget.check()
        try:
            values = c.xpath(root)
        except etree.XPathError:
            continue
        for value in budget.each(values if isinstance(values, list) else ()):
            if not isinstance(value, str):
                continue
            url = _resolve(base, value, dropped, f"host:{c.rule.name}")
            if url is not None and c.form.search(url):
                yield f"host:{c.rule.name}", url


# Words of an anchor that say it is the full text, and of one that says it is
# something else a landing page links as a PDF (docs/discovery.md, Plain links).
_FULLTEXT_WORDS = re.compile(r"\bpdf\b|full[\s_-]*text|download", re.IGNORECASE)
# Words a paper's own title may hold (policy, programme, reform, terms of
# trade) are not among them: an economics paper is often about just that.
_NOT_FULLTEXT = re.compile(
    r"licen[cs]e|guideline|call[\s_-]*for[\s_-]*(papers|proposals|submissions)|\bcfp\b"
    r"|template|\bposters?\b|instructions|author[\s_-]*guide|style[\s_-]*guide|\bflyer"
    r"|brochure|\bslides\b|supplement|appendix|\berrat|\breviewers?\b|\bforms?\b"
    r"|copyright|terms[\s_-]*(of[\s_-]*use|and[\s_-]*conditions)", re.IGNORECASE)
_PDF_NAME = re.compile(r"\.pdf$", re.IGNORECASE)


def _plain_link(root: _Element, base: str, page_url: str, dropped: list[str],
                budget: htmlparse.Budget) -> Iterator[tuple[str, str]]:
    """One plain link to a PDF, when no other rule found anything: on the
    page's own site, said by its text, title or class to be the PDF, the
    full text or a download, and not a licence, guideline, call for papers,
    template or poster. Two different such links: none (which one is the
    paper cannot be told)."""
    site = _site(page_url)
    if site is None:
        return
    chosen: str | None = None
    for el in _elements(root, "a", budget):
        href = _attr(el, "href")
        if not href:
            continue
        url = _resolve(base, href, dropped, "a href")
        if url is None or _site(url) != site or not _names_pdf(url):
            continue
        said = " ".join((_text(el), _attr(el, "title"), _attr(el, "class"),
                         _attr(el, "aria-label")))
        if not _FULLTEXT_WORDS.search(said) and not _FULLTEXT_WORDS.search(
                " ".join(_img_alts(el, budget))):
            continue
        if _NOT_FULLTEXT.search(said) or _NOT_FULLTEXT.search(url):
            continue
        if chosen is not None and chosen != url:
            return  # ambiguous: a list of papers, not one paper's page
        chosen = url
    if chosen is not None:
        yield "plain_pdf_link", chosen


def _img_alts(el: _Element, budget: htmlparse.Budget) -> list[str]:
    return [_attr(img, "alt") for img in _elements(el, "img", budget)]


def _site(url: str) -> str | None:
    """The page's site: its host without a leading www."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return None
    return host[4:] if host.startswith("www.") else host or None


def _names_pdf(url: str) -> bool:
    """A path ending in .pdf, or a script URL whose query names a .pdf file."""
    parts = urlsplit(url)
    if _PDF_NAME.search(parts.path):
        return True
    return any(_PDF_NAME.search(v) for _, _, v in
               (p.partition("=") for p in parts.query.split("&")))


# --- JSON-LD ---------------------------------------------------------------

def _jsonld(root: _Element, budget: htmlparse.Budget) -> Iterator[str]:
    for el in _elements(root, "script", budget):
        if _attr(el, "type").split(";")[0].strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(el.text or "")
        except (ValueError, RecursionError):
            continue  # broken JSON-LD is common; the rest of the page still counts
        yield from _jsonld_urls(data, 0, budget)


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("@type")
    values = t if isinstance(t, list) else [t]
    # "schema:ScholarlyArticle" and "http://schema.org/ScholarlyArticle" too.
    return {re.split(r"[/:#]", v)[-1] for v in values if isinstance(v, str)}


def _jsonld_urls(data: Any, depth: int, budget: htmlparse.Budget) -> Iterator[str]:
    if depth > 8:
        return
    if isinstance(data, list):
        for item in budget.each(data):
            yield from _jsonld_urls(item, depth + 1, budget)
        return
    if not isinstance(data, dict):
        return
    if _types(data) & _JSONLD_TYPES:
        for key in ("encoding", "associatedMedia"):
            for media in budget.each(_as_list(data.get(key))):
                url = _media_url(media)
                if url:
                    yield url
        content = data.get("contentUrl")
        if isinstance(content, str) and content.strip():
            yield content
    for key in ("@graph", "mainEntity", "hasPart"):
        if key in data:
            yield from _jsonld_urls(data[key], depth + 1, budget)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def _media_url(media: Any) -> str | None:
    if isinstance(media, str):
        return media if _DOC_EXT.search(_path_of(media)) else None
    if not isinstance(media, dict):
        return None
    url = media.get("contentUrl") or media.get("url")
    if not isinstance(url, str) or not url.strip():
        return None
    fmt = media.get("encodingFormat") or media.get("fileFormat")
    if isinstance(fmt, str) and fmt.strip():
        return url if fmt.split(";")[0].strip().lower() in _DOC_MEDIA else None
    return url if not _IMAGE_EXT.search(_path_of(url)) else None


# --- what the store says was preserved --------------------------------------
#
# The renewal notes discovery in the object notes (docs/discovery.md): an
# attempt on which discovery ran carries ``"discovered": [{"url", "rule"}...]``
# (empty when the page offered nothing); every attempt on a discovered object
# carries ``"via": {"url": <page>, "rule": <rule>}``.

@dataclass(frozen=True)
class Via:
    url: str  # the page that named the object
    rule: str


@dataclass(frozen=True)
class Discovery:
    """What one attempt on a page discovered."""

    tist: int
    found: tuple[Found, ...]  # empty: the page offered nothing


@dataclass(frozen=True)
class ObjectNotes:
    """What the notes of one object directory say about discovery."""

    url: str | None
    via: Via | None  # None: not a discovered object
    discoveries: tuple[Discovery, ...]  # oldest first; empty: discovery never ran
    preserved: int | None  # tist of the first 200 with a document type
    preserved_type: str | None
    redirects: tuple[str, ...]  # targets of its 3xx answers

    @property
    def discovered(self) -> Discovery | None:
        """The newest discovery on this page."""
        return self.discoveries[-1] if self.discoveries else None


@dataclass(frozen=True)
class Preserved:
    url: str  # the object that holds a full text
    tist: int  # its first attempt that did
    type: str  # that attempt's type token
    via: Via | None  # the page and rule that led to it; None when linked directly


@dataclass(frozen=True)
class FulltextStatus:
    kind: Literal["direct", "discovered", "none"]
    direct: tuple[Preserved, ...]
    discovered: tuple[Preserved, ...]
    pages: tuple[tuple[str, Discovery], ...]  # (page URL, its newest discovery)

    @property
    def direct_since(self) -> int | None:
        return min((p.tist for p in self.direct), default=None)

    @property
    def discovered_since(self) -> int | None:
        return min((p.tist for p in self.discovered), default=None)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(p.url for p in self.direct + self.discovered)


def object_notes(obj_dir: str) -> ObjectNotes:
    """Discovery, origin and preservation of one object, from its 00notes."""
    url = _read_url(obj_dir)
    via: Via | None = None
    discoveries: list[Discovery] = []
    preserved: int | None = None
    preserved_type: str | None = None
    redirects: list[str] = []
    path = os.path.join(obj_dir, notes.NOTES)
    entries = notes.entries(path) if os.path.isfile(path) else iter(())
    for e in entries:
        ev = notes.parse_event(e)
        if ev is not None:
            # An event line names the object's URL too (given-up, revived).
            u = ev.extra.get("url")
            if url is None and isinstance(u, str):
                url = u
            continue
        a = notes.parse_attempt(e)
        if a is None:
            continue
        if url is None and a.url:
            url = a.url
        tist = a.tist
        # Only an attempt at a page that was searched, or at a link found
        # on one, carries these: they stay in the attempt's extra fields.
        v = a.extra.get("via")
        if isinstance(v, dict) and isinstance(v.get("url"), str) and isinstance(v.get("rule"), str):
            via = Via(v["url"], v["rule"])
        d = a.extra.get("discovered")
        if isinstance(d, list):
            discoveries.append(Discovery(tist, tuple(
                Found(x["url"], x["rule"]) for x in d if isinstance(x, dict)
                and isinstance(x.get("url"), str) and isinstance(x.get("rule"), str))))
        if replies.complete_body(url or a.url, a.status) and a.type in DOCUMENT_TYPES and \
                (preserved is None or tist < preserved):
            preserved, preserved_type = tist, a.type
        if a.status.startswith("3") and a.location is not None and a.location not in redirects:
            redirects.append(a.location)
    discoveries.sort(key=lambda x: x.tist)
    return ObjectNotes(url, via, tuple(discoveries), preserved, preserved_type, tuple(redirects))


def fulltext_status(record_dir: str) -> FulltextStatus:
    """Whether the record's full text is held, linked directly or discovered."""
    try:
        names = sorted(os.listdir(record_dir))
    except OSError:
        names = []
    objs = []
    for name in names:
        full = os.path.join(record_dir, name)
        if os.path.isdir(full) and not os.path.islink(full) and not store.is_tmp(name):
            objs.append(object_notes(full))
    return status_of(objs)


def status_of(objs: list[ObjectNotes]) -> FulltextStatus:
    """The full-text status of a record from the notes of its objects.

    A redirect target is its own object without a ``via``: it takes the
    origin of the objects that lead to it, a direct one winning, so a
    discovered PDF link that redirects still counts as discovered.
    """
    by_url = {o.url: o for o in objs if o.url is not None}
    targets = {t for o in objs for t in o.redirects}
    direct_reach = _reach([u for u, o in by_url.items() if o.via is None and u not in targets],
                          by_url)
    led: dict[str, Via] = {}
    for u, o in by_url.items():
        if o.via is not None:
            for r in _reach([u], by_url):
                led.setdefault(r, o.via)
    direct: list[Preserved] = []
    discovered: list[Preserved] = []
    pages: list[tuple[str, Discovery]] = []
    for o in objs:
        if o.url is not None and o.discovered is not None:
            pages.append((o.url, o.discovered))
        if o.preserved is None or o.preserved_type is None:
            continue
        url = o.url or ""
        origin = None if url in direct_reach else (o.via or led.get(url))
        p = Preserved(url, o.preserved, o.preserved_type, origin)
        (direct if origin is None else discovered).append(p)
    kind: Literal["direct", "discovered", "none"] = (
        "direct" if direct else "discovered" if discovered else "none")
    return FulltextStatus(kind, tuple(direct), tuple(discovered), tuple(pages))


def _reach(start: list[str], by_url: dict[str, ObjectNotes]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        o = by_url.get(u)
        if o is not None:
            todo.extend(t for t in o.redirects if t not in seen)
    return seen


def _read_url(obj_dir: str) -> str | None:
    try:  # a regular file only: a planted link's target is never read
        raw = notes.read_small(os.path.join(obj_dir, store.URL), 64 * 1024)
    except OSError:
        return None
    if raw is None:
        return None
    return raw.decode("utf-8", "replace").rstrip("\n") or None
