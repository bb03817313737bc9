"""The OAI index: every record's (datestamp, id, deleted, sets), sorted.

The provider never walks the store to answer a list request: it reads this
index, a handful of plain files under ``HOME/var/oai/`` (``var/`` holds what
can be rebuilt from the store, DESIGN.md "The home"). A generation is a
directory ``index-<tist>-<hex>``; the symbolic link ``current`` names the one
in use and is replaced atomically, so a reader sees a whole old index or a
whole new one, never a mix.

A generation holds:

``records``
    One text line per record, ``<datestamp>\\t<id>\\t<flag>\\t<sets>``, with
    the datestamp zero-padded to 10 digits, flag ``-`` (present) or ``d``
    (deleted: ``00gone``), the sets separated by spaces. Because ids hold
    no control characters, sorting the lines as bytes sorts them by
    (datestamp, id): ``sort -c`` agrees, and an operator can read it.
``offsets``
    16 bytes per record (little-endian): the datestamp (``q``) and the byte
    offset of its line in ``records`` (``Q``). Record *i* is found in one
    step, so a binary search costs log2(n) reads at any depth.
``postings``
    For each set, the numbers (``Q``) of its records in ascending order
    (ascending number is ascending datestamp), the sets one after another.
``sets``
    ``<setSpec>\\t<first posting>\\t<count>`` per set, sorted by setSpec.
``meta.json``
    Format version, counts, earliest datestamp, build time.

The build streams the store (``iter_record_dirs``) and sorts with an
external merge sort: sorted chunk files of ``chunk`` lines, then one merge,
so memory stays bounded by the chunk size and the number of sets.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import mmap
import os
import shutil
import struct
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from lxml import etree

from kiel import store as _store
from kiel.errors import StoreError
from kiel.home import Home
from kiel.redist import record_path, record_sets

FORMAT = 1
OAI_DIR = "oai"
CURRENT = "current"
KEY_FILE = "key"
LOCK_FILE = "build.lock"

_OFF = struct.Struct("<qQ")
_POST = struct.Struct("<Q")

Key = tuple[int, bytes]  # (datestamp, id as UTF-8): the order of the index


@dataclass(frozen=True)
class Entry:
    datestamp: int
    id: str
    deleted: bool
    sets: tuple[str, ...]


@dataclass(frozen=True)
class IndexStats:
    path: str  # the generation directory now current
    records: int
    deleted: int
    sets: int
    skipped: int  # record directories without a readable current version
    earliest: int | None
    seconds: float


def oai_dir(home_root: str) -> str:
    return os.path.join(Home(home_root).var, OAI_DIR)


# --- reading the store --------------------------------------------------------

BACK = "00back"


def read_gone(record_dir: str, name: str = _store.GONE) -> int | None:
    """The tist in ``00gone`` (or ``name``), or None when there is none."""
    try:
        with open(os.path.join(record_dir, name), "rb") as f:
            text = f.read(64)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        # A damaged marker must not hide a record: serve it as present.
        return None


def read_id(version_path: str) -> str | None:
    """The ``id`` of the ``text`` noun of a stored version, read lazily."""
    try:
        # Our own file object: leaving iterparse early must still close it.
        with open(version_path, "rb") as f:
            for _event, el in etree.iterparse(f, events=("start",), resolve_entities=False,
                                              no_network=True, load_dtd=False):
                if el.getparent() is not None:
                    rid = el.get("id")
                    return rid.strip() if rid else None
    except (OSError, etree.XMLSyntaxError):
        return None
    return None


def entry_for(record_dir: str) -> Entry | None:
    """The index entry of one record directory; None when it has no version."""
    newest = _store.newest_version(record_dir)
    if newest is None:
        return None
    tist, name = newest
    rid = read_id(os.path.join(record_dir, name))
    if not rid or any(ord(c) < 0x20 or ord(c) == 0x7F for c in rid):
        return None
    gone = read_gone(record_dir)
    if gone is not None:
        return Entry(gone, rid, True, tuple(record_sets(rid)))
    return Entry(present_datestamp(record_dir, tist), rid, False, tuple(record_sets(rid)))


def present_datestamp(record_dir: str, version_tist: int) -> int:
    """The datestamp of a record that is not gone.

    The tist of the current version; but a record that came back unchanged
    after being gone must not return to a datestamp older than its deletion,
    or incremental harvesters would never see it again. A ``00back`` marker
    (the tist it came back), where the renewal leaves one, moves it forward.
    """
    back = read_gone(record_dir, BACK)
    return max(version_tist, back) if back is not None else version_tist


def store_entries(home_root: str) -> Iterator[Entry | None]:
    """One entry (or None for a directory without version) per record directory."""
    store_root = Home(home_root).store
    for record_dir in _store.iter_record_dirs(store_root):
        entry = entry_for(record_dir)
        # The redist must map the id back here; a directory put elsewhere by
        # hand would otherwise be served under an id GetRecord cannot find.
        if entry is not None and os.path.join(store_root, record_path(entry.id)) != record_dir:
            entry = None
        yield entry


# --- writing ----------------------------------------------------------------

def _line(e: Entry) -> bytes:
    return b"%010d\t%s\t%s\t%s\n" % (e.datestamp, e.id.encode("utf-8", "surrogateescape"),
                                     b"d" if e.deleted else b"-",
                                     " ".join(e.sets).encode("ascii"))


def build(home_root: str, chunk: int = 200_000) -> IndexStats:
    """Rebuild the index of the home's store and make it current.

    Raises :class:`kiel.errors.StoreError` when ``var/oai`` cannot be
    written (full disk, read-only home); the index in use stays as it was.
    """
    try:
        return write_index(home_root, store_entries(home_root), chunk=chunk)
    except OSError as e:
        where = e.filename or oai_dir(os.path.abspath(home_root))
        raise StoreError(f"{where}: cannot write the OAI index: {e.strerror or e}") from None


def write_index(home_root: str, entries: Iterable[Entry | None], chunk: int = 200_000) -> IndexStats:
    """Sort ``entries`` into a new generation and make it current.

    ``None`` entries count as skipped. Builds of one home run one at a time
    (a lock in ``var/oai``); readers are never blocked.
    """
    started = time.monotonic()
    top = oai_dir(os.path.abspath(home_root))
    os.makedirs(top, exist_ok=True)
    lock_fd = os.open(os.path.join(top, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        _clean_tmp(top)
        work = os.path.join(top, _store.tmp_name())
        os.mkdir(work)
        try:
            stats = _write_generation(work, entries, chunk)
            name = "index-%d-%s" % (int(time.time()), os.urandom(4).hex())
            final = os.path.join(top, name)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        previous = _readlink(os.path.join(top, CURRENT))
        link_tmp = os.path.join(top, _store.tmp_name())
        os.symlink(name, link_tmp)
        os.replace(link_tmp, os.path.join(top, CURRENT))
        # Keep the generation just replaced: a request that resolved the old
        # link a moment ago can still open its files.
        for old in os.listdir(top):
            if old.startswith("index-") and old not in (name, previous):
                shutil.rmtree(os.path.join(top, old), ignore_errors=True)
        records, deleted, nsets, skipped, earliest = stats
        return IndexStats(final, records, deleted, nsets, skipped, earliest,
                          round(time.monotonic() - started, 3))
    finally:
        os.close(lock_fd)


def _clean_tmp(top: str) -> None:
    for name in os.listdir(top):
        if _store.is_tmp(name):
            path = os.path.join(top, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _write_generation(work: str, entries: Iterable[Entry | None], chunk: int):
    set_counts: dict[str, int] = {}
    chunks: list[str] = []
    buf: list[bytes] = []
    skipped = deleted = 0

    def flush() -> None:
        buf.sort()
        path = os.path.join(work, "chunk-%06d" % len(chunks))
        with open(path, "wb") as f:
            f.writelines(buf)
        chunks.append(path)
        buf.clear()

    for e in entries:
        if e is None:
            skipped += 1
            continue
        buf.append(_line(e))
        deleted += e.deleted
        for s in e.sets:
            set_counts[s] = set_counts.get(s, 0) + 1
        if len(buf) >= chunk:
            flush()
    if buf or not chunks:
        flush()

    # Merge the sorted chunks into ``records`` and ``offsets``.
    files = [open(p, "rb") for p in chunks]
    count = 0
    earliest = None
    try:
        with open(os.path.join(work, "records"), "wb") as rec, \
                open(os.path.join(work, "offsets"), "wb") as off:
            pos = 0
            for line in heapq.merge(*files):
                ds = int(line[:10])
                if earliest is None:
                    earliest = ds
                off.write(_OFF.pack(ds, pos))
                rec.write(line)
                pos += len(line)
                count += 1
    finally:
        for f in files:
            f.close()
    for p in chunks:
        os.unlink(p)

    # Postings: each set's slice is known from its count, so record numbers
    # are written straight into place through a mapping of the file.
    specs = sorted(set_counts)
    first: dict[str, int] = {}
    n = 0
    with open(os.path.join(work, "sets"), "wb") as f:
        for s in specs:
            first[s] = n
            f.write(b"%s\t%d\t%d\n" % (s.encode("ascii"), n, set_counts[s]))
            n += set_counts[s]
    total = n
    post_path = os.path.join(work, "postings")
    with open(post_path, "wb") as f:
        f.truncate(total * _POST.size)
    if total:
        fill = dict(first)
        with open(post_path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm, \
                open(os.path.join(work, "records"), "rb") as rec:
            pack = _POST.pack_into
            for number, line in enumerate(rec):
                for s in line.rstrip(b"\n").rsplit(b"\t", 1)[1].decode("ascii").split():
                    pack(mm, fill[s] * 8, number)
                    fill[s] += 1
            mm.flush()
    meta = {"format": FORMAT, "records": count, "deleted": deleted, "sets": len(specs),
            "skipped": skipped, "earliest": earliest, "built": int(time.time())}
    with open(os.path.join(work, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    return count, deleted, len(specs), skipped, earliest


# --- reading ------------------------------------------------------------------

class IndexMissing(Exception):
    """No index has been built for this home yet."""


def _map(path: str) -> mmap.mmap | bytes:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


@dataclass(frozen=True)
class Row:
    datestamp: int
    id: str
    deleted: bool
    sets: tuple[str, ...]

    @property
    def key(self) -> Key:
        return (self.datestamp, self.id.encode("utf-8", "surrogateescape"))


class Index:
    """One generation, opened read-only; safe to share between threads."""

    def __init__(self, path: str):
        self.path = path
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta.get("format") != FORMAT:
            raise IndexMissing(f"{path}: index format {self.meta.get('format')}, "
                               f"expected {FORMAT}; run 'kiel oai index'")
        self._records = _map(os.path.join(path, "records"))
        self._offsets = _map(os.path.join(path, "offsets"))
        self._postings = _map(os.path.join(path, "postings"))
        self.count = len(self._offsets) // _OFF.size
        self.sets: dict[str, tuple[int, int]] = {}
        self.set_specs: list[str] = []
        with open(os.path.join(path, "sets"), "rb") as f:
            for line in f:
                spec, start, n = line.rstrip(b"\n").split(b"\t")
                s = spec.decode("ascii")
                self.sets[s] = (int(start), int(n))
                self.set_specs.append(s)

    @property
    def earliest(self) -> int | None:
        return self.meta.get("earliest")

    def datestamp(self, number: int) -> int:
        return _OFF.unpack_from(self._offsets, number * 16)[0]

    def _line(self, number: int) -> bytes:
        start = _OFF.unpack_from(self._offsets, number * 16)[1]
        if number + 1 < self.count:
            end = _OFF.unpack_from(self._offsets, (number + 1) * 16)[1]
        else:
            end = len(self._records)
        return self._records[start:end]

    def key(self, number: int) -> Key:
        line = self._line(number)
        return (int(line[:10]), line[11:line.index(b"\t", 11)])

    def row(self, number: int) -> Row:
        ds, rid, flag, sets = self._line(number).rstrip(b"\n").split(b"\t")
        return Row(int(ds), rid.decode("utf-8", "surrogateescape"), flag == b"d",
                   tuple(sets.decode("ascii").split()))

    def view(self, set_spec: str | None) -> "View":
        if set_spec is None:
            return View(self, None, 0, self.count)
        start, n = self.sets.get(set_spec, (0, 0))
        return View(self, self._postings, start, n)


class View:
    """The records of one set (or of all), in index order."""

    def __init__(self, index: Index, postings, start: int, n: int):
        self.index = index
        self._postings = postings
        self._start = start
        self.n = n

    def __len__(self) -> int:
        return self.n

    def number(self, i: int) -> int:
        if self._postings is None:
            return i
        return _POST.unpack_from(self._postings, (self._start + i) * 8)[0]

    def first_from(self, tist: int) -> int:
        """First position whose datestamp is >= ``tist``."""
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.index.datestamp(self.number(mid)) < tist:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def first_after(self, key: Key) -> int:
        """First position whose (datestamp, id) is > ``key``."""
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            number = self.number(mid)
            ds = self.index.datestamp(number)
            if ds < key[0] or (ds == key[0] and self.index.key(number) <= key):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def rows(self, start: int, stop: int) -> list[Row]:
        return [self.index.row(self.number(i)) for i in range(start, stop)]


class IndexCache:
    """The current generation of a home, reopened when ``current`` changes."""

    def __init__(self, home_root: str):
        self.top = oai_dir(home_root)
        self._lock = threading.Lock()
        self._target: str | None = None
        self._index: Index | None = None

    def get(self) -> Index:
        target = _readlink(os.path.join(self.top, CURRENT))
        if target is None:
            raise IndexMissing(f"no OAI index in {self.top}; run 'kiel oai index'")
        with self._lock:
            if target != self._target:
                try:
                    self._index = Index(os.path.join(self.top, target))
                except FileNotFoundError:
                    raise IndexMissing(f"OAI index {target} vanished; try again") from None
                self._target = target
            assert self._index is not None
            return self._index


def open_current(home_root: str) -> Index:
    return IndexCache(home_root).get()
