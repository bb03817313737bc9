"""Media types of attempts: the kind of a body, as a file-name token.

libmagic sniffs a body from its bytes alone; a browser reads the declared
``Content-Type`` and the bytes together. :func:`body_kind` decides as a
browser does (docs/contract.md, The kind of a body): a PDF signature is a
PDF whatever the declaration; a body declared HTML that holds an ``<html>``
or ``<head>`` tag is an HTML page, even when it opens with a script, a
comment, a byte-order mark, white space or an XML declaration and libmagic
calls it JavaScript or text; anything else is what libmagic says.
"""

from __future__ import annotations

import re
import threading

import magic

_local = threading.local()
_BAD = re.compile(r"[^a-z0-9.+-]")
HEAD = 65536  # bytes of a body given to libmagic
MAX_TOKEN = 100

HTML_TYPES = ("text/html", "application/xhtml+xml")
# The PDF signature (WHATWG MIME Sniffing, "25 50 44 46 2D"). PDF readers
# accept it anywhere in the first 1024 bytes; past offset 0 it counts only
# when no markup comes before it, so a page that quotes "%PDF-" stays a page.
_PDF = b"%PDF-"
_PDF_WINDOW = 1024
# Elements whose content is raw text for the HTML tokenizer: a "<html>"
# inside a script string is not a tag.
_RAW = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed",
        "noframes", "noscript", "plaintext")
_TAG = re.compile(rb"<([a-z][a-z0-9:-]*)")


def _magic() -> magic.Magic:
    # libmagic cookies are not thread-safe: one per thread.
    m = getattr(_local, "magic", None)
    if m is None:
        m = _local.magic = magic.Magic(mime=True)
    return m


def sniff(head: bytes) -> str | None:
    """The media type of a body from its first bytes; None when empty."""
    if not head:
        return None
    try:
        return _magic().from_buffer(head)
    except magic.MagicException:
        return None


def token(media_type: str | None) -> str:
    """``Text/HTML; charset=x`` -> ``text-html``; nothing -> ``none``."""
    if not media_type:
        return "none"
    t = media_type.split(";", 1)[0].strip().lower().replace("/", "-")
    # Capped, so an attempt name stays far below the 255 bytes of a file name.
    t = _BAD.sub("-", t)[:MAX_TOKEN].rstrip("-")
    return t or "none"


def declared_media(declared: str | None) -> str | None:
    """``Text/HTML; charset=x`` -> ``text/html``; None when not declared."""
    if not declared:
        return None
    return declared.split(";", 1)[0].strip().lower() or None


def is_pdf(head: bytes) -> bool:
    """A PDF signature at the start, or in the first 1024 bytes after
    bytes that hold no markup (a byte-order mark, white space, junk)."""
    at = head.find(_PDF, 0, _PDF_WINDOW)
    return at == 0 or (at > 0 and b"<" not in head[:at])


def has_document_tag(head: bytes) -> bool:
    """Whether a body holds an ``<html>`` or ``<head>`` start tag, read as
    the HTML tokenizer reads it: comments, a doctype, an XML declaration
    and the raw text of scripts and styles are passed over; a byte-order
    mark and white space are nothing. One pass, no backtracking."""
    data = _ascii_view(head).lower()
    i, n = 0, len(data)
    while i < n:
        lt = data.find(b"<", i)
        if lt < 0:
            return False
        if data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 4)
            i = n if end < 0 else end + 3
            continue
        if data.startswith((b"<!", b"<?", b"</"), lt):
            end = data.find(b">", lt + 2)
            i = n if end < 0 else end + 1
            continue
        m = _TAG.match(data, lt)
        if m is None:
            i = lt + 1
            continue
        name = m.group(1).decode("ascii")
        if name in ("html", "head"):
            return True
        i = m.end()
        if name in _RAW:
            close = data.find(b"</" + name.encode("ascii"), i) if name != "plaintext" else -1
            i = n if close < 0 else close + 2
    return False


def _ascii_view(head: bytes) -> bytes:
    # Tag names are ASCII: any ASCII-compatible charset reads the same; a
    # UTF-16 body (byte-order mark FF FE or FE FF) is turned into one.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "replace").encode("ascii", "replace")
    return head


def body_kind(head: bytes, declared: str | None) -> str | None:
    """The media type of a body, decided from its bytes and its declaration
    as a browser does (module docstring); None for an empty body."""
    if not head:
        return None
    if is_pdf(head):
        return "application/pdf"
    sniffed = sniff(head)
    if declared_media(declared) in HTML_TYPES and sniffed not in HTML_TYPES \
            and has_document_tag(head):
        return "text/html"
    return sniffed


def attempt_type(head: bytes, declared: str | None) -> str:
    """docs/contract.md: the kind of the body (:func:`body_kind`), else the
    declared type for an empty body, else none."""
    if head:
        return token(body_kind(head, declared))
    return token(declared)
