"""Who owns a directory: a name is reused only for the thing it was made for.

docs/contract.md (Objects): a directory is reused only when its ``00url`` (for a
record directory, its record's id) names the same thing; otherwise the
attempt is refused and noted, and ``verify`` reports it. Escaping makes a
forged cut name impossible from now on; this check also covers what an
earlier form of the cut, or a hand-made directory, may have left.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Literal

from kiel import notes, store
from kiel.redist import record_key, same_record

__all__ = ["Owner", "owner_matches", "record_key", "same_record", "stored_owner"]

Kind = Literal["object", "record"]
_MAX_URL = 1 << 16
_MAX_VERSION = 64 * 1024**2  # as verify: a record is kilobytes; a giant is not ours


def owner_matches(directory: str, expected: str, kind: Kind) -> bool | None:
    """Whether ``directory`` belongs to ``expected`` (a URL's name form, or a record id).

    None when the directory does not exist or holds nothing that names an
    owner (new, or left empty by a crash): it may be used. True when its
    ``00url`` (object) or its newest readable version's id, else the id of
    its notes (record), names the same thing. False otherwise, including an
    object directory with files but no readable ``00url``, a record
    directory whose versions are all unreadable, and anything that is not a
    real directory: the caller refuses the attempt and notes why.
    """
    owner = stored_owner(directory, kind)
    if owner is None:
        return None
    if owner.name is None:
        return False
    if kind == "object":
        return owner.name == expected
    return same_record(owner.name, expected)


@dataclass(frozen=True)
class Owner:
    """What a directory says it belongs to."""

    name: str | None  # the URL (object) or record id (record); None: unreadable
    source: str  # the file that says so (store-relative callers show it)


def stored_owner(directory: str, kind: Kind) -> Owner | None:
    """The owner a directory names; None when it names nothing yet."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return Owner(None, directory)
    try:
        names = [n for n in os.listdir(directory) if not store.is_tmp(n)]
    except OSError:
        return Owner(None, directory)
    if not names:
        return None
    if kind == "object":
        path = os.path.join(directory, store.URL)
        raw = _read_regular(path, _MAX_URL)
        if raw is None or not raw.endswith(b"\n") or len(raw) > _MAX_URL:
            return Owner(None, path)
        return Owner(raw[:-1].decode("utf-8", "surrogateescape"), path)
    versions = sorted((int(m.group(1)), n) for n in names if (m := store.VERSION_RE.match(n)))
    for _, name in reversed(versions):
        rid = version_id(os.path.join(directory, name))
        if rid is not None:
            return Owner(rid, os.path.join(directory, name))
    if versions:
        return Owner(None, directory)
    path = os.path.join(directory, notes.NOTES)
    rid = notes_id(path)
    return None if rid is None else Owner(rid, path)


def version_id(path: str) -> str | None:
    """The ``id`` of the ``text`` of a stored version; None when unreadable."""
    raw = _read_regular(path, _MAX_VERSION)
    if raw is None or len(raw) > _MAX_VERSION:
        return None
    # lxml and the record reader only when a version is read (not a cycle:
    # kiel.records imports nothing of names).
    from lxml import etree

    from kiel.records import parse_stored

    try:
        text = parse_stored(raw)
    except (etree.XMLSyntaxError, ValueError):
        return None
    rid = text.get("id") if text is not None else None
    return rid.strip() if isinstance(rid, str) else None


def notes_id(path: str) -> str | None:
    """The id of the newest renewal line of a record's notes, if any."""
    found = None
    if _read_regular(path, 0) is None:
        return None
    for line in notes.read(path):
        entry = line.entry
        if line.torn:
            try:
                entry = json.loads(line.raw)
            except ValueError:
                entry = None
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            found = entry["id"]
    return found


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to ``limit`` + 1 bytes of a regular file, never through a link or
    into a FIFO; None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        left = limit + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)
