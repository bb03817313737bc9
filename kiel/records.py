"""Records: the top-level AMF ``text`` nouns of the input files.

Parsing streams (``iterparse``) and is safe: no DTD loading, no entity
expansion, no network. Each record is serialized deterministically as a
standalone document (docs/contract.md, Records): an XML declaration, an ``amf``
root in the AMF namespace, the one ``text`` noun, in Canonical XML 2.0 with
comments, so equal input gives equal bytes.
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from kiel import AMF_NS, markup
from kiel.escape import within
from kiel.notes import kind_of
from kiel.redist import repec_parts
from kiel.text import has_control
from kiel.text import printable as printable  # part of this module's API

_AMF = f"{{{AMF_NS}}}"
_TEXT_TAGS = (_AMF + "text", "text")
XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class Record:
    id: str
    file: str
    line: int
    xml: bytes  # the deterministic standalone serialization


@dataclass(frozen=True)
class Problem:
    """Something in the input that is reported and skipped."""

    file: str
    line: int | None
    reason: str
    id: str | None = None
    fatal_for_file: bool = False  # the whole file was skipped
    # A record of the input (``id``) skipped whole: its record directory is
    # left as it is, and not marked gone.
    skipped_record: bool = False
    # Part of the file was not read, or a record of unknown id was skipped:
    # no record can be marked gone by this run.
    partial: bool = False

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        rec = f" (record {printable(self.id)})" if self.id else ""
        return f"{where}{rec}: {self.reason}"




@dataclass(frozen=True)
class Ref:
    """A top-level ``text`` that only carries ``ref``: held elsewhere."""

    ref: str
    file: str
    line: int


Item = Record | Problem | Ref


DEFAULT_MAX_INPUT_FILE = 1024**3  # settings max_input_file and max_record (kiel/config.py)
DEFAULT_MAX_RECORD = 16 * 1024**2
_CHUNK = 64 * 1024  # bytes fed to the parser at a time


def is_input_name(name: str) -> bool:
    n = name.lower()
    return n.endswith((".xml", ".xml.gz"))


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def walk(paths: Iterable[str], follow_outside_links: bool = False) -> Iterator[str | Problem]:
    """Input files under ``paths`` in a deterministic (sorted by name) order.

    A file named directly is read whatever its name; in directories only
    ``*.xml`` and ``*.xml.gz`` (any case), never hidden files. Only regular
    files are yielded: a FIFO, socket or device with an input name is a
    problem, never opened (a FIFO would block the run with its lock held).
    A symbolic link is followed only to a file inside the input directory it
    was found in, unless ``follow_outside_links``; a link to a directory is
    walked only when it leaves the tree and that setting is on (inside the
    tree, its files are read under their own names already).
    """
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            yield Problem(path, None, "no such input file or directory", fatal_for_file=True)
            continue
        if stat.S_ISDIR(st.st_mode):
            root = os.path.realpath(path)
            yield from _walk_dir(path, root, follow_outside_links, {(st.st_dev, st.st_ino)})
        elif stat.S_ISREG(st.st_mode):
            yield path
        else:
            yield Problem(path, None, f"not a regular file ({kind_of(st.st_mode)}); skipped",
                          fatal_for_file=True)


def _walk_dir(directory: str, root: str, follow_outside: bool,
              seen: set[tuple[int, int]]) -> Iterator[str | Problem]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        yield Problem(directory, None, f"cannot list directory: {e.strerror}",
                      fatal_for_file=True)
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError as e:
            if is_input_name(name) and not name.startswith("."):
                yield Problem(path, None, f"cannot read: {e.strerror}", fatal_for_file=True)
            continue
        if name.startswith(".") and not stat.S_ISDIR(st.st_mode):
            continue  # hidden files (temporary copies) are not inputs; directories are walked
        link = stat.S_ISLNK(st.st_mode)
        if link:
            real = os.path.realpath(path)
            outside = not within(root, real)
            try:
                st = os.stat(path)
            except OSError:
                if is_input_name(name):
                    yield Problem(path, None, "symbolic link to nothing; skipped",
                                  fatal_for_file=True)
                continue
            if stat.S_ISDIR(st.st_mode):
                if not outside:
                    continue  # its files are read under their own names
                if not follow_outside:
                    yield Problem(path, None, f"symbolic link leaves the input tree (to {real});"
                                  " not followed (setting follow_outside_links)",
                                  fatal_for_file=True)
                    continue
            elif outside and not follow_outside and is_input_name(name):
                yield Problem(path, None, f"symbolic link leaves the input tree (to {real}); "
                              "not followed (setting follow_outside_links)", fatal_for_file=True)
                continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue  # a loop of links
            yield from _walk_dir(path, root, follow_outside, seen | {key})
        elif not is_input_name(name):
            continue
        elif stat.S_ISREG(st.st_mode):
            yield path
        else:
            yield Problem(path, None, f"not a regular file ({kind_of(st.st_mode)}); skipped",
                          fatal_for_file=True)


class _Unreadable(Exception):
    """An input that is not a regular file after all (replaced after the walk)."""


def _open(path: str) -> tuple[io.BufferedIOBase, int]:
    """Open a regular file without ever blocking; returns the stream and its size.

    O_NONBLOCK makes opening a FIFO return at once; fstat on the open
    descriptor then decides, so a file swapped for a FIFO between the walk
    and here is refused too.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Unreadable(f"not a regular file ({kind_of(st.st_mode)}); skipped")
        os.set_blocking(fd, True)
        raw = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), st.st_size
    raw.seek(0)
    return raw, st.st_size


def _local(tag: object) -> str | None:
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1]


class _TooLarge(Exception):
    def __init__(self, line: int | None, reason: str, rid: str | None = None):
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.rid = rid


def read_file(path: str, max_input_file: int = DEFAULT_MAX_INPUT_FILE,
              max_record: int = DEFAULT_MAX_RECORD) -> Iterator[Item]:
    """Yield the records, refs and problems of one input file, in order.

    A file that is not well-formed ends with a problem marked
    ``fatal_for_file``; records already yielded from it must then be
    dropped by the caller (the whole file is skipped).

    Memory is bounded whatever the bytes: the parser is fed at most 64 KiB
    at a time; a file decompressing to more than ``max_input_file`` bytes
    ends with a problem. More than ``max_record`` bytes without the end of
    a top-level noun (a record too large, or an unterminated attribute,
    comment, processing instruction or CDATA section, which libxml2 buffers
    whole), or a text longer than libxml2 takes, is one problem, not
    fatal: that record (``skipped_record`` when its id is known) is passed
    over as it streams and the records after it are read (see
    :class:`_Reader`); when the file ends inside it, the problem is
    ``partial``. A record serializing to more than ``max_record`` bytes is
    skipped.
    """
    try:
        f, disk_size = _open(path)
    except _Unreadable as e:
        yield Problem(path, None, str(e), fatal_for_file=True)
        return
    except OSError as e:
        yield Problem(path, None, f"cannot read: {e.strerror}", fatal_for_file=True)
        return
    try:
        with f:
            if not isinstance(f, gzip.GzipFile) and disk_size > max_input_file:
                raise _TooLarge(None, f"file larger than {_size_text(max_input_file)} "
                                "(setting max_input_file)")
            yield from _Reader(f, path, max_input_file, max_record).items()
    except _TooLarge as e:
        yield Problem(path, e.line, e.reason, id=e.rid, fatal_for_file=True)
    except _NotWellFormed as e:
        yield Problem(path, e.line, f"not well-formed XML: {e.msg}", fatal_for_file=True)
    except (OSError, EOFError, zlib.error) as e:
        yield Problem(path, None, f"cannot read: {e}", fatal_for_file=True)


# The end tags of the AMF nouns: the feed is cut after each, so that when
# the parser ends a top-level element there, Kiel knows the byte it ended
# on (the point from which an oversized record can be passed over).
_NOUN_END = re.compile(rb"</(?:[^\s<>/:]+:)?(text|person|organization|collection)[ \t\r\n]*>")
_HOLD = 256  # a possible end tag cut by a chunk's end waits for the next chunk


def _pieces(f: io.BufferedIOBase) -> Iterator[tuple[bytes, str | None]]:
    """The file in pieces of at most 64 KiB, each cut after a noun's end tag
    (with its local name) or at a chunk's end (None)."""
    carry = b""
    unsure = False  # the chunk before ended inside markup too long to carry
    while True:
        data = f.read(_CHUNK)
        if not data:
            if carry:
                yield carry, None
            return
        if carry:
            data, carry = carry + data, b""
        lt = data.rfind(b"<")
        cut_off = lt >= 0 and data.find(b">", lt) < 0
        if cut_off and len(data) - lt <= _HOLD:
            data, carry = data[:lt], data[lt:]
            cut_off = False
        if unsure:
            # An end tag may have been cut by the chunk's end, unseen by
            # the pattern: no piece of this chunk tells a known point.
            yield from ((piece, None) for piece, _ in _cut(data))
        else:
            yield from _cut(data)
        unsure = cut_off


def _cut(data: bytes) -> Iterator[tuple[bytes, str | None]]:
    start = 0
    for m in _NOUN_END.finditer(data):
        yield data[start:m.end()], m.group(1).decode("ascii")
        start = m.end()
    if start < len(data):
        yield data[start:], None


_LONGEST = "10 000 000"  # bytes: libxml2's longest text node without XML_PARSE_HUGE


def _text_too_long(e: etree.XMLSyntaxError) -> bool:
    """libxml2 refused a text node over its limit (not a depth or other limit)."""
    msg = e.msg or ""
    return "Text node too long" in msg or "huge text node" in msg


class _NotWellFormed(Exception):
    def __init__(self, line: int | None, msg: str):
        super().__init__(msg)
        self.line = line
        self.msg = msg


def _new_parser() -> Any:
    # Typed Any: lxml's event tuples are a union the code narrows by event.
    return etree.XMLPullParser(
        # No comment or PI events: lxml finds the node of each one before the
        # root by a walk of its siblings, quadratic in their number. They
        # count towards max_record like any other markup instead.
        events=("start", "end"), resolve_entities=False, no_network=True,
        load_dtd=False, huge_tree=False, remove_blank_text=False,
    )


class _Reader:
    """One file's records, streamed (see :func:`read_file`).

    Past ``max_record`` bytes without the end of a top-level element, the
    parser is dropped and the element passed over by :class:`kiel.markup.Passer`
    from the last point where the parser was known to stand between two
    top-level elements; a new parser then reads on, first fed the file's
    own bytes up to the end of the root's start tag (its XML declaration,
    document type and namespaces), its line numbers moved to the file's.
    """

    def __init__(self, f: io.BufferedIOBase, path: str, max_input_file: int, max_record: int):
        self.path = path
        self.max_input_file = max_input_file
        self.max_record = max_record
        self.src = _pieces(f)
        self.back: list[tuple[bytes, str | None]] = []  # read by the passer, to parse again
        self.fed = 0  # bytes of the file read
        self.newlines = 0  # among them
        self.header: bytes | None = None  # the file up to the end of the root's start tag
        self.prolog: list[bytes] | None = []  # the bytes before the root started
        # The bytes since the parser last stood between two top-level
        # elements, and the newlines before that point; None when unknown.
        self.known: list[bytes] | None = None
        self.known_len = 0
        self.known_nl = 0
        self.shift = 0  # the parser's line + shift = the file's line
        self.parser: Any = _new_parser()
        self.restarted = False
        self.root: Any = None
        self.depth = 0
        self.mark = 0  # bytes read when the root started or the last top-level element ended
        self.mark_line: int | None = None  # where that was
        self.open_line: int | None = None  # the top-level element being read
        self.open_id: str | None = None
        self.last_end: str | None = None
        self.done = False

    def _next(self) -> tuple[bytes, str | None] | None:
        if self.back:
            return self.back.pop(0)
        item = next(self.src, None)
        if item is not None:
            self.fed += len(item[0])
            self.newlines += item[0].count(b"\n")
            if self.fed > self.max_input_file:
                raise _TooLarge(self.mark_line, f"file larger than "
                                f"{_size_text(self.max_input_file)} (setting max_input_file)")
        return item

    def _line(self, el: Any) -> int | None:
        line = cast("int | None", el.sourceline)
        return line + self.shift if line else None

    def items(self) -> Iterator[Item]:
        try:
            yield from self._items()
        except etree.XMLSyntaxError as e:
            msg = e.msg
            if self.shift:  # a parser after a skipped record: its own lines are not the file's
                msg = re.sub(r", line \d+, column \d+$", "", msg)
            raise _NotWellFormed(e.lineno + self.shift if e.lineno else None, msg) from None

    def _items(self) -> Iterator[Item]:
        while True:
            item = self._next()
            if item is None:
                break
            piece, noun = item
            if self.prolog is not None:
                self.prolog.append(piece)
            elif self.known is not None:
                self.known.append(piece)
                self.known_len += len(piece)
            too_long: etree.XMLSyntaxError | None = None
            try:
                self.parser.feed(piece)
            except etree.XMLSyntaxError as e:
                if not _text_too_long(e):
                    raise
                too_long = e  # the events before it are read, then the record passed over
            yield from self._events()
            if self.done:
                return
            last_end = self.last_end
            if noun is not None and last_end == noun and self.header is not None:
                self.known, self.known_len, self.known_nl = [], 0, self.newlines
            elif self.known_len > 2 * self.max_record + 4 * _CHUNK:
                self.known = None  # no such point for long: what follows cannot be passed
            if too_long is not None or self.fed - self.mark > self.max_record:
                problem = self._pass_over(too_long)
                yield problem
                if self.parser is None:
                    return  # the file ended inside it
        self.parser.close()  # raises on a truncated or empty document

    def _events(self) -> Iterator[Item]:
        """The parser's events so far; ``last_end`` tells whether the last one
        ended a top-level element (its local name), ``done`` the root's end."""
        self.last_end = None
        for event, el in self.parser.read_events():
            self.last_end = None
            if event == "start":
                self.depth += 1
                if self.root is None:
                    self._root(el)
                elif self.depth == 2 and self.root.tag not in _TEXT_TAGS:
                    self.open_line, self.open_id = self._line(el), el.get("id")
                continue
            self.depth -= 1
            parent = el.getparent()
            if parent is None:
                yield from self._root_end(el)
                self.done = True
                return
            if parent is self.root and self.root.tag not in _TEXT_TAGS:
                if el.tag in _TEXT_TAGS:
                    yield _record(el, self.path, self.max_record, self.shift)
                self.mark, self.mark_line = self.fed, self._line(el)
                self.open_line, self.open_id = None, None
                self.last_end = _local(el.tag)
                # Free what was read: memory stays flat in the file size.
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del self.root[0]

    def _root(self, el: Any) -> None:
        self.root = el
        if self.restarted:
            return  # the header again: the file's root, read before
        self.mark, self.mark_line = self.fed, el.sourceline
        if el.tag in _TEXT_TAGS:
            self.open_line, self.open_id = el.sourceline, el.get("id")
            self.prolog = None  # a file of one record: nothing beside it to read on to
            return
        data = b"".join(self.prolog or ())
        self.prolog = None
        end = markup.header_end(data)
        if end is not None:
            self.header = data[:end]
            self.known = [data[end:]]
            self.known_len = len(data) - end
            self.known_nl = self.header.count(b"\n")

    def _root_end(self, el: Any) -> Iterator[Item]:
        # The root itself: a bare text noun is one record.
        if el.tag in _TEXT_TAGS:
            yield _record(el, self.path, self.max_record)
        elif _local(el.tag) != "amf":
            yield Problem(self.path, el.sourceline,
                          f"not AMF: root element is <{_local(el.tag)}>", fatal_for_file=True)
        elif el.tag != _AMF + "amf" and el.tag != "amf":
            yield Problem(self.path, el.sourceline, "not AMF: root <amf> in namespace "
                          f"{etree.QName(el).namespace}", fatal_for_file=True)

    def _pass_over(self, too_long: etree.XMLSyntaxError | None = None) -> Problem:
        """Pass over the top-level element (or markup) open for more than
        ``max_record`` bytes (or holding a text longer than libxml2 takes,
        ``too_long``), never holding it; a new parser reads on after it."""
        limit = _size_text(self.max_record)
        open_line, open_id = self.open_line, self.open_id
        if too_long is not None and (self.known is None or self.header is None):
            raise too_long
        if self.known is None or self.header is None:
            # Before the root's start tag ended, in a file of one record, or
            # with no point known to stand between two elements: the file
            # cannot be read on.
            if open_line is not None:
                raise _TooLarge(open_line, f"record larger than {limit} (setting max_record)",
                                open_id.strip()[:200] if open_id else None)
            where = "the start" if self.mark_line is None else "the element starting on this line"
            raise _TooLarge(self.mark_line, f"nothing ends within {limit} after {where} "
                            "(setting max_record): an unterminated or oversized attribute, "
                            "comment, processing instruction, CDATA section or record")
        passer = markup.Passer(self.known_nl)
        known, self.known = self.known, None
        for part in known:
            passer.run(part, stop=False)
        del known
        in_tag = passer.in_top_start_tag()  # libxml2 had not seen its start tag end
        self.parser = None  # what it held is freed
        self.root = None
        resumed = None
        while resumed is None:
            item = self._next()
            if item is None:
                resumed = passer.run(b"", stop=True, final=True)
                break
            resumed = passer.run(item[0], stop=True)
        if open_line is not None or in_tag:
            rid = (open_id if open_line is not None else passer.top_id()) or ""
            rid = rid.strip()
            rid_ok = rid if rid and not _bad_id(rid) else None
            line: int | None = open_line if open_line is not None else passer.head_line
            what = f"record larger than {limit} (setting max_record)"
            if too_long is not None:
                what = (f"record too large: a text in it is longer than {_LONGEST} bytes, "
                        "the most the XML parser holds")
            elif open_line is None:
                what += ": its start tag does not end within it"
        else:
            rid_ok, line = None, self.mark_line
            where = "the start" if self.mark_line is None else "the element starting on this line"
            what = (f"nothing ends within {limit} after {where} (setting max_record): an "
                    "unterminated or oversized attribute, comment, processing instruction, "
                    "CDATA section or record")
            if too_long is not None:
                what = (f"a text longer than {_LONGEST} bytes, the most the XML parser holds, "
                        f"after {where}")
        unnamed = rid_ok is None and (open_line is not None or in_tag)
        if resumed is None:
            return Problem(self.path, line, f"{what}, and the file ends inside it; skipped, "
                           "the records before it are read", id=rid_ok,
                           skipped_record=rid_ok is not None, partial=True)
        rest, nl = resumed
        # A new parser: the file's own header, then the bytes after what was passed.
        self.parser = _new_parser()
        self.restarted = True
        self.depth = 0
        self.parser.feed(self.header)
        self.shift = nl - self.header.count(b"\n")
        self.back = list(_cut(rest))
        self.mark = self.fed - len(rest)
        self.mark_line = nl + 1
        self.open_line = self.open_id = None
        self.known, self.known_len, self.known_nl = [], 0, nl
        return Problem(self.path, line, f"{what}; skipped, the records around it are read",
                       id=rid_ok, skipped_record=rid_ok is not None, partial=unnamed)


def _record(el: etree._Element, path: str, max_record: int = DEFAULT_MAX_RECORD,
            shift: int = 0) -> Item:
    # lxml-stubs declares sourceline as a bare ``...``; lxml gives an int or None.
    sourceline = cast("int | None", el.sourceline)
    line = sourceline + shift if sourceline else 0
    rid = el.get("id")
    if rid is None:
        ref = el.get("ref")
        if ref is not None:
            return Ref(ref, path, line)
        return Problem(path, line, "text without id")
    rid = rid.strip()
    if not rid:
        return Problem(path, line, "text with an empty id")
    bad = _bad_id(rid)
    if bad:
        return Problem(path, line, bad, id=rid[:200])
    try:
        xml = serialize(el)
    except (ValueError, etree.Error) as e:
        return Problem(path, line, f"cannot serialize: {e}", id=rid, skipped_record=True)
    if len(xml) > max_record:
        return Problem(path, line, f"record larger than {_size_text(max_record)} when "
                       "serialized (setting max_record)", id=rid, skipped_record=True)
    return Record(rid, path, line, xml)


def _bad_id(rid: str) -> str | None:
    if has_control(rid):
        return "id holds control characters"
    if len(rid.encode("utf-8", "surrogateescape")) > 4096:
        return "id longer than 4096 bytes"
    return None


_XML_NS = "{http://www.w3.org/XML/1998/namespace}"


def serialize(text_el: etree._Element) -> bytes:
    """The standalone, deterministic bytes of one ``text`` noun.

    Canonical XML 2.0 as lxml writes it, except for a record that C14N 2.0
    would damage: lxml's C14N 2.0 writer gives an attribute the default
    namespace's empty prefix when the two share a URI, so ``amf:lang``
    became an unqualified ``lang``. Such a record (found by reading the
    bytes back) is written in exclusive Canonical XML 1.0, which keeps
    every namespace; every other record keeps the bytes it always had, so
    no stored record gets a new version from this.
    """
    text = copy.deepcopy(text_el)
    text.tail = None
    qualified = False
    for node in text.iter():
        if isinstance(node, etree._Entity):
            # a fault of the input, not of the caller: a ValueError
            raise ValueError(f"unexpanded entity reference {node.text}")  # noqa: TRY004
        tag = node.tag
        # Non-namespaced AMF is AMF: give it the namespace.
        if isinstance(tag, str) and tag[0] != "{":
            node.tag = _AMF + tag
        if isinstance(tag, str) and not qualified:
            # lxml-stubs allow bytes names; lxml gives str on Python 3.
            names = cast("Iterable[str]", node.attrib)
            qualified = any(k[0] == "{" and not k.startswith(_XML_NS) for k in names)
    # lxml-stubs have no None (default namespace) key in nsmap; lxml takes it.
    root = etree.Element(_AMF + "amf", nsmap=cast(Any, {None: AMF_NS}))
    root.append(text)
    body = etree.tostring(root, method="c14n2", with_comments=True)
    if qualified and _attribute_names(_reread(body)) != _attribute_names(root):
        body = etree.tostring(root, method="c14n", exclusive=True, with_comments=True)
    return XML_DECL + body + b"\n"


def _reread(body: bytes) -> etree._Element:
    # A parser per call: lxml parsers are not to be shared between threads.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(body, parser)


def _attribute_names(root: etree._Element) -> list[list[str]]:
    # lxml-stubs allow bytes names; lxml gives str on Python 3.
    return [sorted(cast("list[str]", n.attrib.keys())) for n in root.iter()
            if isinstance(n.tag, str)]


def parse_stored(data: bytes) -> Any:
    """Parse a stored version (our own bytes) safely; returns its ``text``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    return root[0] if len(root) else None


# --- duplicate ids ------------------------------------------------------------------
#
# Which of two records with one id is kept must not depend on the order of
# a directory walk (issue 11). RePEc lays out its AMF one directory per
# archive (/opt/amf/RePEc/<archive>/<series>/), so a handle found under
# another archive's directory is most likely a claim on a record that is
# not its file's to make.

_ARCHIVE_NAME = re.compile(r"[A-Za-z]{3}\Z")


@dataclass(frozen=True)
class Occurrence:
    """Where a record id was found: enough to choose between duplicates."""

    id: str
    file: str
    line: int
    in_archive: bool = False  # the file lies in the directory of the handle's archive

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}"


@functools.lru_cache(maxsize=256)
def archive_dir(path: str, input_root: str) -> str | None:
    """The archive directory a file lies in, or None (a function of the two
    names alone, remembered: every record of a file asks it).

    It is the nearest directory above the file, up to and including the
    input root, whose name is three ASCII letters (a RePEc archive code) and
    whose parent directory is named ``RePEc`` (any case), or, below the
    input root, is the input root itself: ``<root>/RePEc/aaa/wpaper/x.xml``
    and ``<root>/aaa/wpaper/x.xml`` (root given as the directory of the
    archives) both lie in ``aaa``. A file named as the input lies in none.
    """
    root = os.path.abspath(input_root)
    d = os.path.dirname(os.path.abspath(path))
    if os.path.abspath(path) == root:
        return None
    while True:
        parent = os.path.dirname(d)
        name = os.path.basename(d)
        if _ARCHIVE_NAME.match(name) and (
                os.path.basename(parent).lower() == "repec" or (parent == root and d != root)):
            return d
        if d == root or parent == d or not (d + os.sep).startswith(root + os.sep):
            return None
        d = parent


def claimed_outside_archive(path: str, input_root: str, record_id: str) -> str | None:
    """Why a RePEc handle in ``path`` is claimed outside its archive's directory, or None.

    None for ids that are not RePEc handles, and for files in no archive
    directory (see :func:`archive_dir`); archive codes compare
    case-insensitively. With the setting ``archive_dirs`` (on by default)
    the engine skips such a record and reports this reason.
    """
    parts = repec_parts(record_id)
    if parts is None:
        return None
    adir = archive_dir(path, input_root)
    if adir is None:
        return None
    code = os.path.basename(adir).lower()
    if code == parts[0]:
        return None
    return (f"handle of archive {parts[0]} in {adir}, the directory of archive {code}; "
            "skipped (setting archive_dirs)")


def occurrence(record_id: str, path: str, line: int, input_root: str) -> Occurrence:
    """An :class:`Occurrence`, knowing whether the file is in the handle's archive."""
    parts = repec_parts(record_id)
    adir = archive_dir(path, input_root) if parts else None
    inside = adir is not None and parts is not None and \
        os.path.basename(adir).lower() == parts[0]
    return Occurrence(record_id, path, line, inside)


def preference_key(o: Occurrence) -> tuple[int, bytes, int]:
    """Sort key of the duplicate rule: the smallest key is kept.

    First an occurrence in its own archive's directory; then the smaller
    path, compared as bytes (the same in every locale); then the earlier
    line.
    """
    return (0 if o.in_archive else 1, os.fsencode(o.file), o.line)


def preference_bytes(o: Occurrence) -> bytes:
    """:func:`preference_key` as bytes that sort the same way (for an external sort).

    A path holds no NUL byte, so ending it with one makes a path sort
    before every longer path it begins, as in the tuple.
    """
    return b"%d\x00%s\x00%012d" % (0 if o.in_archive else 1, os.fsencode(o.file), o.line)


def preferred(a: Occurrence, b: Occurrence) -> Occurrence:
    """Which of two occurrences of one record is kept (see :func:`preference_key`)."""
    return a if preference_key(a) <= preference_key(b) else b


def duplicate_problem(kept: Occurrence, skipped: Occurrence) -> Problem:
    """The problem that reports a skipped duplicate, naming both occurrences."""
    return Problem(skipped.file, skipped.line, f"duplicate id, also at {kept.where}, which is "
                   "kept (in its archive's directory, else the smaller path, then the earlier "
                   "line); skipped", id=skipped.id)
