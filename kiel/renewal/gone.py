"""Gone: record directories a full run did not find in its input.

A record is marked gone (``00gone``, and a notes line) only by a full run
that read every input path without error, and only when the records about
to become gone are no more than ``gone_max_share`` of the collection:
an empty or half-mounted input directory must never mark the archive
deleted (the OAI-PMH provider would tell every harvester so). Past the
share, no record is marked, the run says how many and why, and a person
decides (``--allow-gone``).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kiel import notes, store
from kiel.notes import EventNote
from kiel.spool import ExternalSort


@dataclass(frozen=True)
class GoneResult:
    marked: int
    held: int  # would have been marked, but were past the share
    collection: int  # records in the store (not gone before this run)
    reason: str | None  # why none was marked, when some would have been
    # Records not marked because their notes are not a regular file with one
    # name (a directory, a FIFO, a hard link): one message each, naming it.
    damaged: tuple[str, ...] = ()


def _candidates(store_root: str, seen: ExternalSort) -> Iterator[tuple[str, bool]]:
    """Every live record directory, and whether the input lacked it."""
    seen_iter = iter(seen)
    current = next(seen_iter, None)
    try:
        for rdir in store.iter_record_dirs(store_root):
            rel = os.path.relpath(rdir, store_root)
            key = rel.replace(os.sep, "\x00").encode("utf-8")
            while current is not None and current.partition(b"\t")[0] < key:
                current = next(seen_iter, None)
            missing = not (current is not None and current.partition(b"\t")[0] == key)
            if os.path.lexists(os.path.join(rdir, store.GONE)) or not store.versions(rdir):
                continue
            yield rdir, missing
    finally:
        for _ in seen_iter:
            pass


def mark_gone(store_root: str, seen: ExternalSort, workdir: str, now: int, *,
              max_share: float, allow: bool, sync: bool,
              on_gone: Callable[[str], None]) -> GoneResult:
    """Mark the missing records gone, within the share (see the module doc).
    ``OSError`` means the store could not be written."""
    collection = 0
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir) as missing:
        count = 0
        for rdir, is_missing in _candidates(store_root, seen):
            collection += 1
            if is_missing:
                count += 1
                missing.write(os.fsencode(rdir) + b"\n")
        if count == 0:
            return GoneResult(0, 0, collection, None)
        if not allow and count > max_share * collection:
            return GoneResult(0, count, collection,
                              f"{count} of {collection} records ({100 * count / collection:.1f} %)"
                              f" were not in the input, more than gone_max_share "
                              f"({100 * max_share:g} %): none was marked gone. If the input is "
                              "right, run again with --allow-gone")
        missing.seek(0)
        marked = 0
        damaged: list[str] = []
        for raw in missing:
            rdir = os.fsdecode(raw[:-1])
            path = os.path.join(rdir, notes.NOTES)
            try:
                _notes_writable(path)
                store.replace(os.path.join(rdir, store.GONE), b"%d\n" % now, sync)
                notes.append(path, EventNote("gone", now).line())
            except notes.NotRegular as e:
                # Damage in one record directory: reported, never a stop of the run.
                damaged.append(f"{e.filename}: {e.what} where a regular file belongs; "
                               f"{os.path.relpath(rdir, store_root)} not marked gone (the "
                               "record directory needs a person)")
                continue
            marked += 1
            on_gone(rdir)
        return GoneResult(marked, 0, collection, None, tuple(damaged))


def _notes_writable(path: str) -> None:
    """Raise :class:`kiel.notes.NotRegular` unless the notes ``path`` is missing
    or a regular file with one name (before ``00gone`` is written beside it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise notes.NotRegular(path, notes.kind_of(st.st_mode))
    if st.st_nlink > 1:
        raise notes.NotRegular(path, f"a hard link ({st.st_nlink} names share this file)")
