"""Following XML markup without parsing it: where a top-level element ends.

The record reader (kiel/records.py) hands libxml2 at most ``max_record``
bytes of one top-level element. Past that, the element is passed over here,
byte by byte but never held: :class:`Passer` knows only the depth, and
whether it stands in text, a comment, a CDATA section, a processing
instruction, a declaration, a start tag (and in which quoted attribute
value) or an end tag, so that memory stays flat whatever the size of what
it passes. It is not a parser: the bytes after it are handed to libxml2
again, which judges them.
"""

from __future__ import annotations

import re

_TEXT, _PASS, _START, _END = range(4)
_TAG_STOP = re.compile(rb"[>\"']")
_HEAD = 8192  # bytes of a top-level start tag kept, to name its id
_ID = re.compile(rb"\sid\s*=\s*(?:\"([^\"<]*)\"|'([^'<]*)')")
_REF = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_OPENERS = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"), (b"<!", b">"))


class Passer:
    """Passes markup from a point between two children of the root (depth 1,
    outside any markup), fed in pieces by :meth:`run`."""

    def __init__(self, newlines: int = 0):
        self.depth = 1
        self.state = _TEXT
        self.term = b""  # what ends the markup being passed (_PASS)
        self.quote = 0  # the quote of the attribute value a start tag is in
        self.prev = 0  # the byte before the data of the next run
        self.tail = b""  # undecided bytes carried to the next run
        self.newlines = newlines  # in the bytes fed before the tail
        self.head = bytearray()  # the first bytes from the last top-level start tag on
        self.head_more = False
        self.head_line = 0  # the line it starts on

    def run(self, data: bytes, stop: bool, final: bool = False) -> tuple[bytes, int] | None:
        """Pass ``data``. With ``stop``: at the first ``<`` found outside all
        markup at depth 1, return what is left from there with the number of
        newlines before it; None when ``data`` ends first. ``final``: no
        byte follows ``data``."""
        if self.head_more:  # the top-level start tag's first bytes, for its id
            self.head += data[:_HEAD - len(self.head)]
            self.head_more = len(self.head) < _HEAD
        buf = self.tail + data if self.tail else data
        base_nl = self.newlines - self.tail.count(b"\n")
        self.tail = b""
        i, n = 0, len(buf)
        while i < n:
            if self.state == _TEXT:
                j = buf.find(b"<", i)
                if j < 0:
                    break
                if stop and self.depth == 1:
                    return buf[j:], base_nl + buf.count(b"\n", 0, j)
                if n - j < 9 and not final:
                    self.tail = buf[j:]
                    n = j
                    break
                i = self._open(buf, j, base_nl)
            elif self.state == _PASS:
                j = buf.find(self.term, i)
                if j < 0:
                    keep = len(self.term) - 1  # a terminator cut by the piece's end
                    if keep and not final:
                        self.tail = buf[max(i, n - keep):]
                        n -= len(self.tail)
                    break
                i = j + len(self.term)
                self.state = _TEXT
            elif self.state == _END:
                j = buf.find(b">", i)
                if j < 0:
                    break
                i = j + 1
                self.depth -= 1
                self.state = _TEXT
            else:
                i = self._tag(buf, i, n)
        if n > 0:
            self.prev = buf[n - 1]
        self.newlines = base_nl + buf.count(b"\n", 0, n) + self.tail.count(b"\n")
        if stop and final and self.state == _TEXT and self.depth == 1:
            return b"", self.newlines  # it ended, and so did the file: the parser judges
        return None

    def _open(self, buf: bytes, j: int, base_nl: int) -> int:
        """The markup starting at ``buf[j]`` (a ``<``)."""
        for opener, term in _OPENERS:
            if buf.startswith(opener, j):
                self.state, self.term = _PASS, term
                return j + len(opener)
        if buf.startswith(b"</", j):
            self.state = _END
            return j + 2
        self.state, self.quote = _START, 0
        if self.depth == 1:
            self.head = bytearray(buf[j:j + _HEAD])
            self.head_more = len(self.head) < _HEAD
            self.head_line = base_nl + buf.count(b"\n", 0, j) + 1
        return j + 1

    def _tag(self, buf: bytes, i: int, n: int) -> int:
        """Inside a start tag: to its ``>``, through quoted attribute values."""
        while i < n:
            if self.quote:
                j = buf.find(bytes((self.quote,)), i, n)
                if j < 0:
                    i = n
                    break
                self.quote = 0
                i = j + 1
                continue
            m = _TAG_STOP.search(buf, i, n)
            if m is None:
                i = n
                break
            j = m.start()
            if buf[j] != ord(">"):
                self.quote = buf[j]
                i = j + 1
                continue
            before = buf[j - 1] if j > 0 else self.prev
            if before != ord("/"):
                self.depth += 1
            self.state = _TEXT
            i = j + 1
            break
        return i

    def in_top_start_tag(self) -> bool:
        """Inside a start tag of a child of the root."""
        return self.state == _START and self.depth == 1

    def top_id(self) -> str | None:
        """The id attribute of the last top-level start tag, when its first
        8 KiB hold it (the attribute value as a parser gives it)."""
        head = bytes(self.head)
        end = _tag_end(head, 1)
        m = _ID.search(head[:end] if end > 0 else head)
        if m is None:
            return None
        raw = m.group(1) if m.group(1) is not None else m.group(2)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        text = re.sub(r"[\t\n\r]", " ", text)
        try:
            return _REF.sub(_unref, text)
        except (ValueError, OverflowError):
            return None


def _unref(m: re.Match[str]) -> str:
    if m.group(1):
        return chr(int(m.group(1), 16))
    if m.group(2):
        return chr(int(m.group(2)))
    return _NAMED[m.group(3)]


def header_end(data: bytes) -> int | None:
    """Where the root's start tag ends in ``data`` (the file's first bytes:
    XML declaration, comments, processing instructions, a document type
    declaration with its internal subset, then the root's start tag); None
    when it cannot be told (an empty root, or not an encoding that keeps
    ASCII as it is)."""
    if b"\x00" in data[:4] or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    n = len(data)
    while i < n:
        if data[i] in b" \t\r\n":
            i += 1
        elif data.startswith(b"<?", i):
            i = _after(data, b"?>", i + 2)
        elif data.startswith(b"<!--", i):
            i = _after(data, b"-->", i + 4)
        elif data.startswith(b"<!DOCTYPE", i):
            i = _doctype_end(data, i + 9)
        elif data.startswith(b"<", i):
            end = _tag_end(data, i + 1)
            if end < 0 or data[end - 2] == ord("/"):
                return None  # its tag does not end here, or an empty root
            return end
        else:
            return None
        if i < 0:
            return None
    return None


def _after(data: bytes, term: bytes, i: int) -> int:
    j = data.find(term, i)
    return -1 if j < 0 else j + len(term)


def _tag_end(data: bytes, i: int) -> int:
    quote = 0
    while i < len(data):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in b"\"'":
            quote = c
        elif c == ord(">"):
            return i + 1
        i += 1
    return -1


def _doctype_end(data: bytes, i: int) -> int:
    """After ``<!DOCTYPE``: to its ``>``, through quoted literals and the
    internal subset (with its comments and processing instructions)."""
    n = len(data)
    subset = False
    while 0 <= i < n:
        c = data[i]
        if c in b"\"'":
            i = _after(data, bytes((c,)), i + 1)
        elif subset and data.startswith(b"<!--", i):
            i = _after(data, b"-->", i + 4)
        elif subset and data.startswith(b"<?", i):
            i = _after(data, b"?>", i + 2)
        elif c == ord("["):
            subset = True
            i += 1
        elif c == ord("]"):
            subset = False
            i += 1
        elif c == ord(">") and not subset:
            return i + 1
        else:
            i += 1
    return -1
