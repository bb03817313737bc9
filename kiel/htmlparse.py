"""One bounded parse of a landing page, for every reader of its markup.

libxml2 checks each attribute of a tag against all earlier ones, so one
tag with 150 000 attributes costs minutes of C code that no signal can
interrupt; a page of a million elements costs seconds in every reader
that walks them. Before the page is parsed its bytes are bounded
(docs/discovery.md, Bounded): at most ``max_bytes``, ``MAX_ELEMENTS``
start tags and ``MAX_ATTRIBUTES`` attributes a tag (the excess is cut from
the bytes, and said in :attr:`Parsed.cuts`). The scan is linear: regular
expressions without backtracking over the bytes, the usual page untouched
(only a tag longer than ``LONG_TAG`` bytes is looked into).

What no byte count bounds, the reading's time does (:class:`Budget`):
libxml2 is fed the page in pieces of ``CHUNK`` bytes, and between pieces,
as between elements in the readers, the budget is asked whether the page
has had its share of processor time or the run is stopping
(:class:`GivenUp`). The engine reads a page in a thread of its own
(:func:`kiel.discovery.read_page_off_loop`), so nothing here holds the
event loop; the budget is what lets that thread end early.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from lxml.etree import _Element

MAX_BYTES = 4 * 1024 * 1024
MAX_ELEMENTS = 100_000  # a long article page has a few thousand
MAX_ATTRIBUTES = 64  # a real tag has a handful; a data-* heavy one a few dozen
LONG_TAG = 1024  # shorter tags cannot hold more than MAX_ATTRIBUTES cheaply harmful ones
CHUNK = 64 * 1024  # libxml2 is fed this much at a time; the worst piece costs milliseconds
EVERY = 32  # the budget's clock is read once in this many steps of a reader

T = TypeVar("T")

_TAG_START = re.compile(rb"<[A-Za-z]")
_LONG = re.compile(rb"<[A-Za-z][^<>]{%d,}" % LONG_TAG)
_NAME = re.compile(rb"<[A-Za-z][^\s/>]*")
_RAW_OPEN = re.compile(rb"<(script|style|textarea|title|xmp|noscript|iframe|noembed|noframes)"
                       rb"[\s/>]")
_ATTR = re.compile(rb"""[\s/]*([^\s"'>/=]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*))?""")


class GivenUp(Exception):
    """A page not read to its end: ``why`` is ``time`` (its budget of
    processor time ran out) or ``stop`` (the run is stopping)."""

    def __init__(self, why: Literal["time", "stop"], seconds: float | None = None):
        super().__init__(why)
        self.why = why
        self.seconds = seconds


class Budget:
    """The time one reading of one page may take: ``seconds`` of processor
    time of the thread that reads it (None: no limit), and ``stop``, set
    when the run is stopping. The clock starts at :meth:`begin`, in the
    reading thread; one reading uses one budget."""

    __slots__ = ("seconds", "stop", "_until", "_steps")

    def __init__(self, seconds: float | None = None, stop: threading.Event | None = None):
        self.seconds = seconds
        self.stop = stop
        self._until: float | None = None
        self._steps = 0

    def begin(self) -> Budget:
        if self.seconds is not None:
            self._until = time.thread_time() + self.seconds
        return self

    def check(self) -> None:
        """Raise :class:`GivenUp` when the time is spent or the run stops."""
        if self.stop is not None and self.stop.is_set():
            raise GivenUp("stop")
        if self._until is not None and time.thread_time() > self._until:
            raise GivenUp("time", self.seconds)

    def step(self) -> None:
        """One small piece of work done: :meth:`check` once in ``EVERY``."""
        self._steps += 1
        if self._steps % EVERY == 0:
            self.check()

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, one :meth:`step` each."""
        for item in items:
            self.step()
            yield item


@dataclass(frozen=True)
class Parsed:
    root: _Element | None  # None: nothing that parses as a page
    cuts: tuple[str, ...] = ()  # what the budget left out, in words


def bound(data: bytes, max_bytes: int = MAX_BYTES) -> tuple[bytes, list[str]]:
    """``data`` within the budget, and what was cut."""
    cuts: list[str] = []
    if len(data) > max_bytes:
        cuts.append(f"bytes after the first {max_bytes} not read")
        data = data[:max(max_bytes, 0)]
    if data.count(b"<") > MAX_ELEMENTS:
        for i, m in enumerate(_TAG_START.finditer(data)):
            if i == MAX_ELEMENTS:
                cuts.append(f"elements after the first {MAX_ELEMENTS} not read")
                data = data[:m.start()]
                break
    if _LONG.search(data) is None:
        return data, cuts
    out: list[bytes] = []
    last = 0
    tags: list[str] = []
    raw = _raw_text(data)
    r = 0
    for m in _LONG.finditer(data):
        while r < len(raw) and raw[r][1] <= m.start():
            r += 1
        if r < len(raw) and raw[r][0] <= m.start():
            continue  # inside a script or a style: text, not a tag
        name = _NAME.match(data, m.start())
        assert name is not None  # _LONG starts the same way
        pos, count, keep = name.end(), 0, name.end()
        while pos < m.end() and count <= MAX_ATTRIBUTES:
            a = _ATTR.match(data, pos, m.end())
            if a is None or a.end() == pos:
                break
            count += 1
            pos = a.end()
            if count == MAX_ATTRIBUTES:
                keep = pos
        if count > MAX_ATTRIBUTES:
            tags.append(name.group()[1:].decode("ascii", "replace").lower())
            out.append(data[last:keep])  # the rest of the tag up to its ">" is cut
            last = m.end()
    if not out:
        return data, cuts
    out.append(data[last:])
    names = ", ".join(f"<{t}>" for t in dict.fromkeys(tags[:5]))
    cuts.append(f"attributes beyond the first {MAX_ATTRIBUTES} of {len(tags)} "
                f"tag{'s' if len(tags) > 1 else ''} ({names}) not read")
    return b"".join(out), cuts


def _raw_text(data: bytes) -> list[tuple[int, int]]:
    """The spans of the content of raw-text elements (a script holding
    "<b x=1 ...>" in a JSON-LD string is not a tag), in order, one pass."""
    low = data.lower()
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        m = _RAW_OPEN.search(low, pos)
        if m is None:
            return spans
        name = m.group(1)
        start = low.find(b">", m.end() - 1)
        if start < 0:
            return spans
        end = low.find(b"</" + name, start)
        end = len(data) if end < 0 else end
        spans.append((start + 1, end))
        pos = end + 1


def parse(data: bytes, charset: str | None, max_bytes: int = MAX_BYTES,
          budget: Budget | None = None) -> Parsed:
    """The page's tree, parsed once within the budget: lxml's HTML parser
    (libxml2, recovering, no network, comments and processing instructions
    dropped); the answer's charset first, the page's own when unknown.
    With a ``budget`` it is asked between pieces (:class:`GivenUp`)."""
    # lxml on first use only: kiel show and kiel report start faster without it.
    from lxml import etree

    budget = budget or Budget()
    budget.check()
    data, cuts = bound(data, max_bytes)
    if not data.strip():
        return Parsed(None, tuple(cuts))
    for encoding in ((charset, None) if charset else (None,)):
        try:
            parser = etree.HTMLParser(encoding=encoding, recover=True, no_network=True,
                                      remove_comments=True, remove_pis=True, huge_tree=False)
            # Fed in pieces, the tree is the same as from the whole string
            # (the fixtures' trees compared byte for byte at 1 to 64 KiB).
            for i in range(0, len(data), CHUNK):
                budget.check()
                parser.feed(data[i:i + CHUNK])
            root = parser.close()
        except (LookupError, etree.LxmlError, ValueError):
            continue
        if root is not None:
            return Parsed(root, tuple(cuts))
    return Parsed(None, tuple(cuts))
