"""FAIR Signposting: typed links a landing page gives about itself.

A page says where its content is (``rel="item"``), which persistent
identifier to cite (``rel="cite-as"``) and where its metadata is
(``rel="describedby"``), in ``Link`` response headers (RFC 8288) and in
``<link>`` elements of its head (https://signposting.org/FAIR/). Zenodo,
Dryad, DSpace 7, EPrints, OJS and Figshare publish them. This module reads
the header form; kiel.discovery reads both and ranks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

RELATIONS = ("item", "cite-as", "describedby")
MAX_LINKS = 1000  # one page names a handful; a header of thousands is not read further


@dataclass(frozen=True)
class Signpost:
    rel: str  # one of RELATIONS
    href: str  # as written: resolved against the page by the reader
    type: str  # media type in lower case, "" when none is given


def from_headers(headers: Iterable[tuple[str, str]]) -> list[Signpost]:
    """The signposts of every ``Link`` header field, in order."""
    out: list[Signpost] = []
    for name, value in headers:
        if name.strip().lower() != "link":
            continue
        for href, params in _links(value):
            rels = params.get("rel", "").lower().split()
            mtype = params.get("type", "").split(";")[0].strip().lower()
            out.extend(Signpost(r, href, mtype) for r in rels if r in RELATIONS)
            if len(out) >= MAX_LINKS:
                return out
    return out


def _links(value: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``<href>; k=v; k="v, w", <href2>...`` as (href, params), one pass.

    Commas separate links but may sit inside ``<...>`` and quoted values,
    so the value is read character by character, not split."""
    i, n = 0, len(value)
    count = 0
    while i < n and count < MAX_LINKS:
        lt = value.find("<", i)
        if lt < 0:
            return
        gt = value.find(">", lt + 1)
        if gt < 0:
            return
        href = value[lt + 1:gt].strip()
        i = gt + 1
        params: dict[str, str] = {}
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                i += 1
                break
            if value[i] != ";":
                # junk between parameters: skip to the next separator
                nxt = min((p for p in (value.find(";", i), value.find(",", i)) if p >= 0),
                          default=n)
                i = nxt
                continue
            i += 1
            eq = i
            while eq < n and value[eq] not in "=;,":
                eq += 1
            key = value[i:eq].strip().lower()
            if eq < n and value[eq] == "=":
                j = eq + 1
                while j < n and value[j] in " \t":
                    j += 1
                if j < n and value[j] == '"':
                    end = value.find('"', j + 1)
                    end = n if end < 0 else end
                    val = value[j + 1:end]
                    i = end + 1
                else:
                    end = j
                    while end < n and value[end] not in ";,":
                        end += 1
                    val = value[j:end].strip()
                    i = end
            else:
                val, i = "", eq
            if key and key not in params:  # RFC 8288: the first occurrence counts
                params[key] = val
        count += 1
        yield href, params
