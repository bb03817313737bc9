"""Escaping of URLs and record ids into single directory names.

docs/contract.md: UTF-8, then every byte outside ``A-Z a-z 0-9 - . _ ~`` as ``%XX``
(upper-case hex). ``.`` and ``..`` cannot occur as names. A name over 240
bytes is cut to 200 and ends in ``%~<first 16 hex of sha256(url)>``: an
escaped ``%`` is always followed by two hex digits, so escaping never
produces ``%~`` and no URL or id can forge a cut name.

Decisions (docs/contract.md): a leading ``.`` is escaped as ``%2E`` so that
no escaped name is hidden (hidden names are Kiel's temporary files), which
also rules out ``.`` and ``..``; the cut never splits a ``%XX`` triplet, so
a cut name is at most 200 + 18 bytes.
"""

from __future__ import annotations

import hashlib
import os
import re

MAX_NAME = 240
CUT_TO = 200
CUT_MARK = "%~"  # never made by escaping: see the module doc
_CUT = re.compile(r"%~[0-9a-f]{16}\Z")

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_TABLE = [chr(b) if b in _SAFE else f"%{b:02X}" for b in range(256)]


def escape(value: str) -> str:
    """Map any string to one safe directory name (see module doc)."""
    raw = value.encode("utf-8", "surrogateescape")
    parts = [_TABLE[b] for b in raw]
    if parts and parts[0] == ".":
        parts[0] = "%2E"
    name = "".join(parts)
    if len(name) <= MAX_NAME:
        return name
    size = 0
    kept = []
    for part in parts:
        if size + len(part) > CUT_TO:
            break
        kept.append(part)
        size += len(part)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return "".join(kept) + CUT_MARK + digest


def unescape(name: str) -> str:
    """Reverse :func:`escape` for names that were not cut (see :func:`is_cut`)."""
    out = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "%":
            out.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(c))
            i += 1
    return out.decode("utf-8", "surrogateescape")


def is_cut(name: str) -> bool:
    """True for a cut name: only a cut ends in ``%~`` and 16 hex digits."""
    return _CUT.search(name) is not None


def within(root: str, path: str) -> bool:
    """True when the path ``path`` is ``root`` or lies below it, as written
    (both already resolved): the one containment rule."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (resolved, links followed) stays inside ``root``."""
    return within(os.path.realpath(root), os.path.realpath(path))
