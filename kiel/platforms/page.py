"""Links a landing page names in its markup, for :func:`kiel.platforms.match_page`.

Only the places where a page says what it *is* are read (canonical link,
``og:url``, a meta refresh, ``citation_doi``, ``DC.identifier``), never
its ordinary links: a paper's page links to many deposits it is not.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from kiel import htmlparse

if TYPE_CHECKING:
    from lxml.etree import _Element

MAX_PAGE = 4 * 2**20  # the head of any real landing page is in its first MiB
_REFRESH = re.compile(r"^\s*\d*\s*;?\s*url\s*=\s*['\"]?([^'\"]+)", re.IGNORECASE)
_META_NAMES = {"citation_doi", "dc.identifier", "dcterms.identifier", "prism.doi",
               "bepress_citation_doi"}
_META_PROPS = {"og:url"}


def links_in_page(url: str, body: bytes) -> list[str]:
    """The links of a page's body, parsed within the budget of
    :mod:`kiel.htmlparse` (discovery passes its own parse to
    :func:`links_in_root` instead)."""
    if not body:
        return []
    root = htmlparse.parse(body, None, MAX_PAGE).root
    return links_in_root(url, root) if root is not None else []


def links_in_root(url: str, doc: _Element, budget: htmlparse.Budget | None = None) -> list[str]:
    """The links of a parsed page; ``budget`` is asked at each element
    (:class:`kiel.htmlparse.GivenUp`)."""
    budget = budget or htmlparse.Budget()
    out: list[str] = []

    def add(base: str, value: str) -> None:
        # A malformed value (an unclosed IPv6 bracket) is one value lost,
        # never the page: the other places are still read.
        try:
            out.append(urljoin(base, value.strip()))
        except ValueError:
            pass

    for el in budget.each(doc.iter("link")):
        if not isinstance(el.tag, str):
            continue
        rel = (el.get("rel") or "").lower().split()
        if "canonical" in rel and el.get("href"):
            add(url, el.get("href", ""))
    for el in budget.each(doc.iter("meta")):
        if not isinstance(el.tag, str):
            continue
        content = (el.get("content") or "").strip()
        if not content:
            continue
        name = (el.get("name") or "").lower()
        prop = (el.get("property") or "").lower()
        equiv = (el.get("http-equiv") or "").lower()
        if equiv == "refresh":
            m = _REFRESH.match(content)
            if m:
                add(url, m.group(1))
        elif prop in _META_PROPS:
            add(url, content)
        elif name in _META_NAMES:
            out.append(content)  # a DOI, doi:..., or a URL: match() reads all three
    return list(dict.fromkeys(out))
