"""Media types of attempts: sniffed by libmagic, as a file-name token."""

from __future__ import annotations

import re
import threading

import magic

_local = threading.local()
_BAD = re.compile(r"[^a-z0-9.+-]")
HEAD = 65536  # bytes of a body given to libmagic
MAX_TOKEN = 100


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


def attempt_type(head: bytes, declared: str | None) -> str:
    """docs/contract.md: sniffed type, else the declared one for an empty body, else none."""
    if head:
        return token(sniff(head))
    return token(declared)
