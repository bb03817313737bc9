"""The change log: what a renewal changed, visible to the provider at once.

The renewal appends one line per change (a version written, a record gone,
a record back) to a segment file under ``HOME/var/oai/changes/`` as it goes;
the provider reads the segments on every request and lays them over the
base index (:mod:`kiel.oai.index`), so a change is listed the moment its
line is written, with a datestamp taken at that moment (issue 15, case 1:
a datestamp is never earlier than the moment the record became visible).

A line is ``<datestamp>\\t<kind>\\t<version tist>\\t<record id>\\n`` written
with one ``write(2)`` on a descriptor opened ``O_APPEND``, so whole lines
land one after another even when two processes share a segment, and a
reader that meets a line without its newline (a write under way, or a
process killed in the middle) leaves it for the next read. Each process
writes its own segment (``<tist>-<pid>-<hex>.log``) and holds an exclusive
``flock`` on it while open: a segment whose lock can be taken is complete,
and only complete segments already folded into the index are removed.

The renewal writes the change to the store first (the version file, or
``00gone``) and the line after, so a line never names a change that is not
on disk. A process killed between the two loses that one line; the next
``kiel oai index --rebuild`` finds the store differing from what was served
and dates the change at the rebuild (never earlier than when it became
visible). With ``sync`` each line is flushed to disk before ``append``
returns.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kiel import store as _store
from kiel.notes import NotRegular, open_regular

CHANGES_DIR = "changes"
SUFFIX = ".log"
KINDS = ("version", "gone", "back")


@dataclass(frozen=True)
class Change:
    datestamp: int  # when the line was written: the moment it became visible
    kind: str  # "version", "gone" or "back"
    version: int  # tist of the record's current version (0: none found)
    id: str


def changes_dir(home_root: str) -> str:
    return os.path.join(os.path.abspath(home_root), "var", "oai", CHANGES_DIR)


def format_line(c: Change) -> bytes:
    if c.kind not in KINDS:
        raise ValueError(f"unknown change kind {c.kind!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in c.id):
        # A tab or newline would split the line; the provider never serves such ids.
        raise ValueError(f"record id with a control character: {c.id!r}")
    return b"%d\t%s\t%d\t%s\n" % (c.datestamp, c.kind.encode("ascii"), c.version,
                                  c.id.encode("utf-8", "surrogateescape"))


# A datestamp and a version tist are at most 10 digits: the base index keeps
# them as 10 zero-padded digits and as signed 64-bit numbers (kiel.oai.index).
MAX_DIGITS = 10


def _tist(field: bytes) -> int | None:
    if not 0 < len(field) <= MAX_DIGITS or not field.isdigit():
        return None  # not "+5", " 5", "1_0", "-1", nor 20 digits, which int() takes
    return int(field)


def parse_line(line: bytes) -> Change | None:
    """One complete line (without its newline); None when it is damaged:
    each field is checked as the provider will use it, so one bad line is
    dropped here and never reaches an answer (a 20-digit datestamp made
    every ListIdentifiers fail with an overflow)."""
    try:
        ds, kind, version, rid = line.split(b"\t", 3)
        k = kind.decode("ascii")
        d, v = _tist(ds), _tist(version)
        text = rid.decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeDecodeError):
        return None
    if k not in KINDS or d is None or d == 0 or v is None or not text \
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    return Change(d, k, v, text)


class ChangeLog:
    """One process's segment, open for appending. Use :meth:`open`."""

    def __init__(self, home_root: str, fd: int, path: str, now: Callable[[], float],
                 sync: bool):
        self.home_root = os.path.abspath(home_root)
        self.store_root = os.path.join(self.home_root, "store")
        self.path = path
        self._fd = fd
        self._now = now
        self._sync = sync

    @classmethod
    @contextmanager
    def open(cls, home_root: str, now: Callable[[], float] = time.time,
             sync: bool = False) -> Iterator[ChangeLog]:
        """A new segment of the home's change log, locked while in use.

        ``now`` is the clock datestamps are read from (the renewal passes
        its own, so tests can fix time).
        """
        top = changes_dir(home_root)
        os.makedirs(top, exist_ok=True)
        name = f"{int(now())}-{os.getpid()}-{os.urandom(3).hex()}{SUFFIX}"
        path = os.path.join(top, name)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield cls(home_root, fd, path, now, sync)
        finally:
            os.close(fd)  # closing releases the lock: the segment is complete

    def append(self, kind: str, record_id: str | None, rel: str,
               version: int | None = None) -> Change:
        """Record one change of the record at ``store/<rel>``, written to disk before.

        ``kind`` is ``version`` (a new version was stored), ``gone``
        (``00gone`` was written) or ``back`` (``00gone`` was removed). The
        ``record_id`` None reads the id from the current version. The
        datestamp is read from the clock here, just before the line is
        written, so it is never earlier than the moment the change is listed.
        """
        record_dir = os.path.join(self.store_root, rel)
        # The caller that just wrote the version knows it (``version``, its tist).
        newest = (version, "") if version is not None and record_id is not None \
            else _store.newest_version(record_dir)
        if record_id is None:  # the caller knows only the directory: the version says
            from kiel.oai.index import read_id

            record_id = read_id(os.path.join(record_dir, newest[1])) if newest else None
            if record_id is None:
                raise ValueError(f"{record_dir}: no version names the record")
        change = Change(int(self._now()), kind, newest[0] if newest else 0, record_id)
        data = format_line(change)
        # One write of the whole line: O_APPEND puts it after every line before.
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk mid-line: end the torn line
            raise OSError(f"{self.path}: short write to the change log")
        if self._sync:
            os.fdatasync(self._fd)
        return change


@dataclass(frozen=True)
class Segment:
    name: str
    size: int
    complete: bool  # no process holds it open


def segments(home_root: str) -> list[Segment]:
    """The segments in append order (their names begin with the opening tist)."""
    top = changes_dir(home_root)
    out = []
    try:
        names = sorted(n for n in os.listdir(top) if n.endswith(SUFFIX))
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(top, name)
        try:
            fd = open_regular(path, os.O_RDONLY)
        except (FileNotFoundError, NotRegular):
            continue  # gone meanwhile, or a FIFO or a link named like a segment: not Kiel's
        try:
            size = os.fstat(fd).st_size
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                complete = True
            except BlockingIOError:
                complete = False
        finally:
            os.close(fd)
        out.append(Segment(name, size, complete))
    return out


def read(home_root: str, name: str, start: int,
         stop: int | None = None) -> tuple[list[Change], int]:
    """Complete lines of segment ``name`` from byte ``start``: (changes, end).

    ``end`` is the offset after the last complete line read, where the next
    read begins; a torn last line is left for later.
    """
    path = os.path.join(changes_dir(home_root), name)
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as f:
            f.seek(start)
            data = f.read() if stop is None else f.read(max(0, stop - start))
    except (FileNotFoundError, NotRegular):
        return [], start
    cut = data.rfind(b"\n") + 1
    out = []
    for line in data[:cut].split(b"\n")[:-1]:
        c = parse_line(line)
        if c is not None:
            out.append(c)
    return out, start + cut
