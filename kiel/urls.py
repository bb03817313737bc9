"""Which branch values are fetched, and under what name.

docs/contract.md: only ``http``, ``https`` and ``ftp`` URLs are fetched; schemes
are case-insensitive. Decisions (docs/contract.md): the scheme is written in
lower case, so ``Http://x`` and ``http://x`` are one object; a space inside
a URL is sent as ``%20``; a URL with other white space or control
characters, without a host, or with a bad port is skipped with a reason; a
password in a URL is fetched with but never written: the object's name,
``00url`` and the notes carry ``***`` in its place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from kiel.text import has_control

if TYPE_CHECKING:
    from lxml.etree import _Element

    from kiel.branches import Branch

FETCHED = ("http", "https", "ftp")
MAX_URL = 8192
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class Target:
    fetch: str  # what is requested
    name: str  # what the store calls it (password redacted)


def classify(value: str) -> Target | str:
    """A :class:`Target`, or the reason the value is skipped."""
    if len(value) > MAX_URL:
        return f"URL longer than {MAX_URL} characters"
    m = _SCHEME.match(value)
    if not m:
        return "not an absolute URL"
    scheme = m.group(1).lower()
    if scheme not in FETCHED:
        return f"scheme {scheme} is not fetched"
    if has_control(value):
        return "URL holds control characters or line breaks"
    value = scheme + value[len(scheme):]
    value = value.replace(" ", "%20")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range
    except ValueError as e:
        return f"malformed URL: {e}"
    if not parts.hostname:
        return "URL without a host"
    if port == 0:
        return "URL with port 0"
    name = value
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        name = urlunsplit((parts.scheme, f"{user}:***@{netloc[1]}", parts.path, parts.query,
                           parts.fragment))
    return Target(value, name)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^/?#]*@")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for notes and logs),
    also when the value is not a URL Kiel fetches."""
    r = classify(url)
    return r.name if isinstance(r, Target) else _USERINFO.sub(r"\1***@", url)


# The password runs to the authority's last "@" (one written unescaped
# inside it must not leave its end in clear).
_USERINFO_ANYWHERE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s\"'<>]*:)[^/?#\s\"'<>]*@")


def redact_text(text: str) -> str:
    """Any password of a URL inside ``text`` (a header value: ``Location``,
    ``Link``, ``Refresh``...) replaced by ``***``."""
    return _USERINFO_ANYWHERE.sub(r"\1***@", text)


def host_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"
    except ValueError:
        return url


@dataclass(frozen=True)
class Found:
    """What the branches find in one record: the URLs fetched (each once, in
    order), the URL names per branch, and the values skipped with why."""

    targets: tuple[Target, ...]
    by_branch: dict[str, list[str]]
    skipped: tuple[dict[str, str], ...]


def find(branches: Iterable[Branch], text_el: _Element) -> Found:
    """Evaluate every branch on a record's ``text`` element: the one URL
    finder of ``kiel renew`` and ``kiel check-branches --records``."""
    by_branch: dict[str, list[str]] = {}
    skipped: list[dict[str, str]] = []
    targets: list[Target] = []
    names: set[str] = set()
    for b in branches:
        found = by_branch.setdefault(b.xpath, [])
        for value, reason in b.evaluate(text_el):
            if reason is None:
                t = classify(value or "")
                if isinstance(t, str):
                    reason = t
                else:
                    found.append(t.name)
                    if t.name not in names:
                        names.add(t.name)
                        targets.append(t)
                    continue
            skipped.append({"branch": b.xpath, "value": redact(value or "")[:500],
                            "reason": reason})
    return Found(tuple(targets), by_branch, tuple(skipped))
