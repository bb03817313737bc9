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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kiel import store as _store
from kiel.notes import NotRegular, open_regular, read_regular
from kiel.oai.versions import read_id

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
        self._state: _State  # set by open()

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
        state = _State(home_root)
        try:
            seq = state.next_segment(max((k[1] for k in map(order, os.listdir(top))
                                          if k[0] == 1), default=0))
            name = f"{SEQ_MARK}{seq:0{SEQ_DIGITS}d}-{int(now())}-{os.getpid()}-" \
                   f"{os.urandom(3).hex()}{SUFFIX}"
            path = os.path.join(top, name)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                log = cls(home_root, fd, path, now, sync)
                log._state = state
                yield log
            finally:
                os.close(fd)  # closing releases the lock: the segment is complete
        finally:
            state.close()

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
            record_id = read_id(os.path.join(record_dir, newest[1])) if newest else None
            if record_id is None:
                raise ValueError(f"{record_dir}: no version names the record")
        # Never earlier than a datestamp already written, nor than a
        # responseDate the provider gave: after the clock stepped back, a
        # harvest from the last responseDate still lists this change.
        stamp = self._state.stamp(int(self._now()))
        change = Change(stamp, kind, newest[0] if newest else 0, record_id)
        data = format_line(change)
        # One write of the whole line: O_APPEND puts it after every line before.
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk mid-line: end the torn line
            raise OSError(f"{self.path}: short write to the change log")
        if self._sync:
            os.fdatasync(self._fd)
        return change


def order(name: str) -> tuple[int, int, str]:
    """The sort key of a segment name: the order segments were opened in.

    A segment is named ``n<sequence>-<tist>-<pid>-<hex>.log``: the sequence
    comes from ``var/oai/changes.state``, one more for each segment opened,
    so no clock step can put a later segment before an earlier one. Names
    of older versions (``<tist>-<pid>-<hex>.log``) sort first, by name:
    every one was opened before the first numbered one."""
    if name.startswith(SEQ_MARK):
        digits = name[len(SEQ_MARK):].split("-", 1)[0]
        if digits.isdigit():
            return (1, int(digits), name)
    return (0, 0, name)


def ordered(names: list[str]) -> list[str]:
    """The segment names among ``names``, in the order they were opened."""
    return sorted((n for n in names if n.endswith(SUFFIX)), key=order)


@dataclass(frozen=True)
class Segment:
    name: str
    size: int
    complete: bool  # no process holds it open


def segments(home_root: str) -> list[Segment]:
    """The segments in the order they were opened (see :func:`order`)."""
    top = changes_dir(home_root)
    out = []
    try:
        names = ordered(os.listdir(top))
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


def stream(home_root: str, name: str, start: int, stop: int,
           block: int = 1 << 20) -> Iterator[tuple[Change | None, int]]:
    """The complete lines of segment ``name`` between ``start`` and ``stop``,
    as :func:`read` finds them, a block at a time: ``(change, end)`` per
    line (``change`` None for a damaged line), ``end`` the offset after it.
    A torn last line is left for later, as there."""
    path = os.path.join(changes_dir(home_root), name)
    try:
        fd = open_regular(path, os.O_RDONLY)
    except (FileNotFoundError, NotRegular):
        return
    try:
        pos = start
        rest = b""
        while pos < stop:
            data = os.pread(fd, min(block, stop - pos), pos)
            if not data:
                break
            pos += len(data)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            end = pos - len(rest) - cut
            for line in data[:cut].split(b"\n")[:-1]:
                end += len(line) + 1
                yield parse_line(line), end
    finally:
        os.close(fd)


# --- what the clock cannot reorder ------------------------------------------------

SEQ_MARK = "n"
SEQ_DIGITS = 12
STATE = "changes.state"  # in var/oai: "<last segment number> <last datestamp>\n"
RESPONDED = "responded"  # in var/oai: the newest responseDate the provider gave


def _read_numbers(fd: int) -> list[int]:
    raw = os.pread(fd, 64, 0)
    out = []
    for field in raw.split()[:2]:
        out.append(int(field) if field.isdigit() and len(field) <= 20 else 0)
    return out + [0] * (2 - len(out))


class _State:
    """``var/oai/changes.state``, read and written under its ``flock``: the
    number of the last segment opened and the newest datestamp written.

    Both only grow. A lost or damaged file starts again from what the
    segments' names and the provider's ``responded`` file tell."""

    def __init__(self, home_root: str):
        self.home_root = home_root
        top = os.path.dirname(changes_dir(home_root))
        self.fd = open_regular(os.path.join(top, STATE), os.O_RDWR | os.O_CREAT)

    def close(self) -> None:
        os.close(self.fd)

    @contextmanager
    def _locked(self) -> Iterator[list[int]]:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            values = _read_numbers(self.fd)
            before = list(values)
            yield values
            if values != before:
                os.pwrite(self.fd, b"%020d %020d\n" % (values[0], values[1]), 0)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def next_segment(self, highest_named: int) -> int:
        with self._locked() as v:
            v[0] = max(v[0], highest_named) + 1
            return v[0]

    def stamp(self, now: int) -> int:
        """The datestamp of a change written now: ``now``, or the newest
        datestamp written or responseDate given when the clock is behind."""
        with self._locked() as v:
            v[1] = max(now, v[1], responded(self.home_root))
            return v[1]


def responded(home_root: str) -> int:
    """The newest responseDate the provider gave (0: none noted)."""
    path = os.path.join(os.path.abspath(home_root), "var", "oai", RESPONDED)
    try:
        raw = read_regular(path, 32)
    except OSError:
        return 0
    field = raw.strip()
    return int(field) if field.isdigit() and len(field) <= MAX_DIGITS else 0


class Responses:
    """The provider's side: notes each new second it answers at in
    ``var/oai/responded`` (one ``pwrite`` a second at most), so that a change
    written after an answer is never dated before it (:meth:`_State.stamp`)."""

    def __init__(self, home_root: str):
        self.path = os.path.join(os.path.abspath(home_root), "var", "oai", RESPONDED)
        self.last = responded(home_root)
        self._lock = threading.Lock()

    def note(self, now: int) -> None:
        if now <= self.last:
            return
        with self._lock:
            if now <= self.last:
                return
            try:
                fd = open_regular(self.path, os.O_WRONLY | os.O_CREAT)
                try:
                    os.pwrite(fd, b"%010d\n" % now, 0)
                finally:
                    os.close(fd)
            except OSError:
                return  # a read-only var/oai: datestamps then follow the clock alone
            self.last = now
