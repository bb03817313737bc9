"""How ``show``, ``report`` and ``verify`` read the files of a store.

They read a store anyone with a shell may have damaged, so they read as the
renewal does: regular files only, opened without following a link and
without blocking on a FIFO (:func:`kiel.notes.open_regular`), lines bounded
(:data:`kiel.notes.MAX_LINE`). A file that fails this is named in an
:class:`Unreadable` the reader reports, and the walk goes on with the next
file: one planted link never stops the tool that exists to find it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kiel import notes
from kiel.errors import ConfigError
from kiel.notes import ManifestRecord


def store_root(home_root: str) -> str:
    """``HOME/store``; a :class:`ConfigError` (exit 2, as for a home that
    does not exist) when it is not there: the home is the wrong one."""
    root = os.path.join(os.path.abspath(home_root), "store")
    if not os.path.isdir(root):
        raise ConfigError(f"{root}: no store here (is --home or KIEL_HOME right? "
                          "see 'kiel init')")
    return root


@dataclass(frozen=True)
class Unreadable:
    """A store file a reader skipped, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}, skipped"


class Problems:
    """The files one reading skipped, in the order met: the first ``limit``
    named, the rest counted (a walk of a store with a million planted links
    must not hold a million names)."""

    def __init__(self, limit: int = 1000) -> None:
        self.items: list[Unreadable] = []
        self.limit = limit
        self.more = 0  # skipped beyond the first ``limit``
        self._named: set[str] = set()

    def add(self, path: str, reason: str) -> None:
        if path in self._named:
            return  # a file read twice (its notes, then its manifests) is named once
        if len(self.items) < self.limit:
            self.items.append(Unreadable(path, reason))
            self._named.add(path)
        else:
            self.more += 1

    def add_error(self, e: OSError, path: str) -> None:
        self.add(str(e.filename or path), e.strerror or str(e))


def lines(path: str, problems: Problems) -> Iterator[notes.NotesLine]:
    """The lines of a notes file (:func:`kiel.notes.read`); nothing when it
    is missing, or not a regular file (then named in ``problems``)."""
    try:
        yield from notes.read(path)
    except OSError as e:  # NotRegular, or a read error in mid-file
        problems.add_error(e, path)


def entries(path: str, problems: Problems) -> Iterator[dict[str, Any]]:
    """The complete, parseable lines of a notes file (see :func:`lines`)."""
    for line in lines(path, problems):
        if line.entry is not None:
            yield line.entry


def small(path: str, limit: int, problems: Problems) -> bytes | None:
    """The first ``limit`` bytes of ``00url``, ``00last``, ``00gone``; None
    when missing or not a regular file (then named in ``problems``)."""
    try:
        return notes.read_small(path, limit)
    except OSError as e:
        problems.add_error(e, path)
        return None


def manifests(record_dir: str, problems: Problems) -> list[ManifestRecord]:
    """Every manifest note of a record directory, oldest first, read as
    every other notes line is (see module doc)."""
    path = os.path.join(record_dir, notes.NOTES)
    out: list[ManifestRecord] = []
    try:
        notes.manifest_records(notes.entries_with(path, b'"manifest"'), out)
    except OSError as err:  # NotRegular, or a read error in mid-file
        problems.add_error(err, path)
    return out
