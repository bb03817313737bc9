"""Records: the top-level AMF ``text`` nouns of the input files.

Parsing streams (``iterparse``) and is safe: no DTD loading, no entity
expansion, no network. Each record is serialized deterministically as a
standalone document (DESIGN.md, Records): an XML declaration, an ``amf``
root in the AMF namespace, the one ``text`` noun, in Canonical XML 2.0 with
comments, so equal input gives equal bytes.
"""

from __future__ import annotations

import copy
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Union

from lxml import etree

from kiel import AMF_NS

_AMF = "{%s}" % AMF_NS
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

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        rec = f" (record {printable(self.id)})" if self.id else ""
        return f"{where}{rec}: {self.reason}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters shown as ``\\xNN``: a message or log line stays one line."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


@dataclass(frozen=True)
class Ref:
    """A top-level ``text`` that only carries ``ref``: held elsewhere."""

    ref: str
    file: str
    line: int


Item = Union[Record, Problem, Ref]


def is_input_name(name: str) -> bool:
    n = name.lower()
    return n.endswith(".xml") or n.endswith(".xml.gz")


def walk(paths: Iterable[str]) -> Iterator[str | Problem]:
    """Input files under ``paths`` in a stable (sorted) order.

    A file named directly is read whatever its name; in directories only
    ``*.xml`` and ``*.xml.gz`` (any case). Unreadable paths are problems.
    """
    for path in paths:
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path, onerror=None):
                dirnames.sort()
                for name in sorted(filenames):
                    if is_input_name(name) and not name.startswith("."):
                        yield os.path.join(dirpath, name)
        elif os.path.isfile(path):
            yield path
        else:
            yield Problem(path, None, "no such input file or directory", fatal_for_file=True)


def _open(path: str):
    f = open(path, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")
    f.seek(0)
    return f


def _local(tag: object) -> str | None:
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1]


def read_file(path: str) -> Iterator[Item]:
    """Yield the records, refs and problems of one input file, in order.

    A file that is not well-formed ends with a problem marked
    ``fatal_for_file``; records already yielded from it must then be
    dropped by the caller (the whole file is skipped).
    """
    try:
        f = _open(path)
    except OSError as e:
        yield Problem(path, None, f"cannot read: {e.strerror}", fatal_for_file=True)
        return
    root = None
    count = 0
    try:
        with f:
            events = etree.iterparse(
                f, events=("start", "end"), resolve_entities=False, no_network=True,
                load_dtd=False, huge_tree=False, remove_blank_text=False,
            )
            for event, el in events:
                if event == "start":
                    if root is None:
                        root = el
                    continue
                parent = el.getparent()
                if parent is None:
                    # The root itself: a bare text noun is one record.
                    if el.tag in _TEXT_TAGS:
                        count += 1
                        yield _record(el, path)
                    elif _local(el.tag) != "amf":
                        yield Problem(path, el.sourceline,
                                      f"not AMF: root element is <{_local(el.tag)}>",
                                      fatal_for_file=True)
                    elif el.tag != _AMF + "amf" and el.tag != "amf":
                        yield Problem(path, el.sourceline, "not AMF: root <amf> in namespace "
                                      f"{etree.QName(el).namespace}", fatal_for_file=True)
                    break
                if parent is root and root.tag not in _TEXT_TAGS:
                    if el.tag in _TEXT_TAGS:
                        count += 1
                        yield _record(el, path)
                    # Free what was read: memory stays flat in the file size.
                    el.clear(keep_tail=False)
                    while el.getprevious() is not None:
                        del root[0]
    except etree.XMLSyntaxError as e:
        line = e.lineno if e.lineno else None
        yield Problem(path, line, f"not well-formed XML: {e.msg}", fatal_for_file=True)
    except (OSError, EOFError, zlib.error) as e:
        yield Problem(path, None, f"cannot read: {e}", fatal_for_file=True)


def _record(el, path: str) -> Item:
    line = el.sourceline or 0
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
        return Record(rid, path, line, serialize(el))
    except (ValueError, etree.Error) as e:
        return Problem(path, line, f"cannot serialize: {e}", id=rid)


def _bad_id(rid: str) -> str | None:
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in rid):
        return "id holds control characters"
    if len(rid.encode("utf-8", "surrogateescape")) > 4096:
        return "id longer than 4096 bytes"
    return None


def serialize(text_el) -> bytes:
    """The standalone, deterministic bytes of one ``text`` noun."""
    text = copy.deepcopy(text_el)
    text.tail = None
    for node in text.iter():
        if isinstance(node, etree._Entity):
            raise ValueError(f"unexpanded entity reference {node.text}")
        tag = node.tag
        # Non-namespaced AMF is AMF: give it the namespace.
        if isinstance(tag, str) and tag[0] != "{":
            node.tag = _AMF + tag
    root = etree.Element(_AMF + "amf", nsmap={None: AMF_NS})
    root.append(text)
    return XML_DECL + etree.tostring(root, method="c14n2", with_comments=True) + b"\n"


def parse_stored(data: bytes):
    """Parse a stored version (our own bytes) safely; returns its ``text``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    return root[0] if len(root) else None
