"""Which branch values are fetched, and under what name.

docs/contract.md: only ``http``, ``https`` and ``ftp`` URLs are fetched; schemes
are case-insensitive. Decisions (docs/contract.md): the scheme is written in
lower case, so ``Http://x`` and ``http://x`` are one object; a space inside
a URL is sent as ``%20``; a URL with other white space or control
characters, without a host, or with a bad port is skipped with a reason; a
password in a URL is fetched with but never written: the object's name,
``00url`` and the notes carry ``***`` in its place.

:func:`origin` is Kiel's one notion of where a URL's requests go (scheme,
host as dialled, explicit port): the fetcher keeps its connections by it,
and :func:`host_of`, its text, is the host of politeness, of the circuit
breaker and of the run's counts (docs/architecture.md, "Origins").
"""

from __future__ import annotations

import functools
import ipaddress
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


DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


@dataclass(frozen=True)
class Origin:
    """Where a URL's requests go: the one notion of an origin in Kiel.

    ``scheme`` in lower case; ``host`` as it is dialled and sent, lower case,
    a name IDNA-encoded as httpx encodes it, an IP address in its canonical
    text (an IPv6 one without brackets); ``port`` always explicit. The
    userinfo is no part of it: credentials travel with each request, never
    with a connection.
    """

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# A URL's origin is asked several times per attempt (queued, scheduled,
# counted, connected): parsed once while it is in flight.
@functools.lru_cache(maxsize=1024)
def origin(url: str) -> Origin:
    """The :class:`Origin` of an ``http``, ``https`` or ``ftp`` URL; ValueError
    when it has none (another scheme, no host, a malformed authority).

    The host is httpx's ``raw_host``, the bytes the fetcher sends and dials,
    so ``http://X:80/``, ``http://x/`` and ``http://user:pw@x/`` are one
    origin, and ``http://bücher.example/`` is ``http://xn--bcher-kva.example/``.
    A trailing dot is kept (``x.`` is another name to TLS and to virtual
    hosts) and a percent-encoded name is not decoded, as httpx does.
    """
    import httpx  # here: the readers import this module and never fetch

    try:
        u = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise ValueError(f"malformed URL: {e}") from e
    scheme = u.scheme
    default = DEFAULT_PORTS.get(scheme)
    if default is None:
        raise ValueError(f"scheme {scheme!r} is not fetched")
    host = u.raw_host.decode("ascii")
    if not host:
        raise ValueError("URL without a host")
    try:
        host = str(ipaddress.ip_address(host))  # ::FFFF:7F00:1 and ::ffff:7f00:1 are one
    except ValueError:
        pass
    port = default if u.port is None else u.port
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range 1-65535")
    return Origin(scheme, host, port)


def host_of(url: str) -> str:
    """The host that politeness (``per_host``, ``host_delay``), the circuit
    breaker and the run's counts go by: the URL's :func:`origin` as
    ``scheme://host:port``, or the URL itself when it has none."""
    try:
        return str(origin(url))
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
