"""Notes: JSON Lines that document what Kiel did (the protocol's tistbase).

Notes are appended one whole line per ``write`` on an ``O_APPEND`` file. A
crash can leave a torn last line (no newline): readers skip it, and the next
append first ends it with a newline (DESIGN.md, Notes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from kiel import faults

NOTES = "00notes"


def dumps(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def append(path: str, entry: dict[str, Any]) -> None:
    """Append one line to the notes file ``path`` (created if missing)."""
    line = dumps(entry)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            # End a torn last line first, so this line stays whole.
            if os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
        view = memoryview(line)
        if faults.ACTIVE and faults.hit("notes.torn"):
            os.write(fd, view[: len(view) // 2])  # a torn line, for the crash tests
            faults.die()
        faults.hit("notes.before")
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


@dataclass(frozen=True)
class NotesLine:
    number: int
    entry: dict[str, Any] | None  # None: not JSON (a breach, unless torn)
    raw: bytes
    torn: bool  # the last line, without a newline


def read(path: str) -> Iterator[NotesLine]:
    """Every line of a notes file, torn and broken lines marked."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        number = 0
        for raw in f:
            number += 1
            torn = not raw.endswith(b"\n")
            entry = None
            if not torn:
                try:
                    value = json.loads(raw)
                    entry = value if isinstance(value, dict) else None
                except ValueError:
                    entry = None
            yield NotesLine(number, entry, raw, torn)


def entries(path: str) -> Iterator[dict[str, Any]]:
    """The complete, parseable lines of a notes file (torn lines skipped)."""
    for line in read(path):
        if line.entry is not None:
            yield line.entry
