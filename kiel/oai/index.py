"""The OAI index: every record's (datestamp, id, deleted, version, sets), sorted.

The provider never walks the store to answer a list request: it reads a
*base* index, a handful of plain files under ``HOME/var/oai/`` (``var/``
holds what can be rebuilt from the store, docs/contract.md "The home"), and lays
over it the change log the renewal appends to as it goes
(:mod:`kiel.oai.changes`). A generation is a directory
``index-<tist>-<hex>``; the symbolic link ``current`` names the one in use
and is replaced atomically, so a reader sees a whole old base or a whole
new one, never a mix.

A generation holds:

``records``
    One text line per record, ``<datestamp>\\t<id>\\t<flag>\\t<version>\\t<sets>``,
    the datestamp zero-padded to 10 digits, flag ``-`` (present) or ``d``
    (deleted: ``00gone``), version the tist of the version served, the
    sets separated by spaces. Because ids hold no control characters,
    sorting the lines as bytes sorts them by (datestamp, id).
``offsets``
    16 bytes per record (little-endian): the datestamp (``q``) and the byte
    offset of its line in ``records`` (``Q``), so record *i* is one step
    away and a binary search costs log2(n) reads at any depth.
``byid``
    The record numbers (``Q``) in the order of their ids: ``GetRecord`` and
    the rebuild find a record's served state in log2(n) reads.
``postings``
    For each set, the numbers (``Q``) of its records in ascending order.
``sets``
    ``<setSpec>\\t<first posting>\\t<count>`` per set, sorted by setSpec.
``meta.json``
    Format, counts, earliest datestamp, build time, and ``folded``: for each
    change-log segment, how many of its bytes this base already holds.

Two ways make a generation. :func:`fold` (the renewal's end, cheap: no walk
of the store) merges the base with the change log. :func:`rebuild` (``kiel
oai index --rebuild``, a repair) walks the store, resumable after a kill.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import mmap
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kiel import store as _store
from kiel.errors import StoreError
from kiel.home import Home
from kiel.notes import entries_with, parse_event, parse_renewal, read_regular
from kiel.oai import changes as _changes
from kiel.oai.versions import read_id
from kiel.redist import record_path, record_sets
from kiel.spool import ExternalSort, merge, write_chunk

FORMAT = 2
OAI_DIR = "oai"
CURRENT = "current"
KEY_FILE = "key"
LOCK_FILE = "build.lock"
REBUILD_DIR = "rebuild"

_OFF = struct.Struct("<qQ")
_POST = struct.Struct("<Q")

Key = tuple[int, bytes]  # (datestamp, id as UTF-8): the order of the index


@dataclass(frozen=True)
class Entry:
    datestamp: int
    id: str
    deleted: bool
    sets: tuple[str, ...]
    version: int = 0  # tist of the version served (0: unknown)


Row = Entry


def key_of(e: Entry) -> Key:
    return (e.datestamp, e.id.encode("utf-8", "surrogateescape"))


@dataclass(frozen=True)
class IndexStats:
    path: str  # the generation directory now current
    records: int
    deleted: int
    sets: int
    skipped: int  # record directories without a readable current version
    earliest: int | None
    seconds: float
    changed: int = 0  # rebuild: records whose store differed from what was served
    folded: int = 0  # fold: change-log lines merged into the base
    resumed: bool = False  # rebuild: continued from a killed one


def oai_dir(home_root: str) -> str:
    return os.path.join(Home(home_root).var, OAI_DIR)


# --- reading the store --------------------------------------------------------

def read_gone(record_dir: str) -> int | None:
    """The tist in ``00gone``, or None when there is none."""
    try:
        text = read_regular(os.path.join(record_dir, _store.GONE), 64)
    except OSError:  # missing, or not a regular file (never opened for blocking I/O)
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        # A damaged marker must not hide a record: serve it as present.
        return None


def read_back(record_dir: str) -> int | None:
    """When the record last came back after being gone, from its ``00notes``.

    The renewal notes a return as an ``"event": "back"`` line, or as
    ``"back": true`` on its renewal line; the newest tist wins.
    """
    newest = None
    try:
        # Read as every reader reads notes: a regular file, lines bounded.
        for note in entries_with(os.path.join(record_dir, "00notes"), b'"back"'):
            t = _back_tist(note)
            if t is not None and (newest is None or t > newest):
                newest = t
    except OSError:
        return newest
    return newest


def _back_tist(note: dict[str, Any]) -> int | None:
    """The tist of a return: a ``back`` event, or a renewal marked ``back``."""
    event = parse_event(note)
    if event is not None:
        return event.tist if event.event == "back" else None
    renewal = parse_renewal(note)
    return renewal.tist if renewal is not None and renewal.back else None


def servable_id(rid: str | None) -> bool:
    return bool(rid) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in rid or "")


def entry_for(record_dir: str) -> Entry | None:
    """A record directory's entry as its files tell it; None without a version.

    The datestamp is the newest of: the current version's tist, ``00gone``,
    the record's return (:func:`read_back`).
    """
    newest = _store.newest_version(record_dir)
    if newest is None:
        return None
    tist, name = newest
    rid = read_id(os.path.join(record_dir, name))
    if rid is None or not servable_id(rid):
        return None
    gone = read_gone(record_dir)
    if gone is not None:
        return Entry(max(gone, tist), rid, True, tuple(record_sets(rid)), tist)
    back = read_back(record_dir)
    ds = max(tist, back) if back is not None else tist
    return Entry(ds, rid, False, tuple(record_sets(rid)), tist)


def _entry_at(store_root: str, record_dir: str) -> Entry | None:
    entry = entry_for(record_dir)
    # The redist must map the id back here; a directory put elsewhere by
    # hand would otherwise be served under an id GetRecord cannot find.
    if entry is not None and os.path.join(store_root, record_path(entry.id)) != record_dir:
        return None
    return entry


def store_entries(home_root: str) -> Iterator[Entry | None]:
    """One entry (or None for a directory without version) per record directory."""
    store_root = Home(home_root).store
    for record_dir in _store.iter_record_dirs(store_root):
        yield _entry_at(store_root, record_dir)


# --- writing ----------------------------------------------------------------

def _line(e: Entry) -> bytes:
    return b"%010d\t%s\t%s\t%d\t%s\n" % (e.datestamp, e.id.encode("utf-8", "surrogateescape"),
                                         b"d" if e.deleted else b"-", e.version,
                                         " ".join(e.sets).encode("ascii"))


def _parse(line: bytes) -> Entry:
    ds, rid, flag, version, sets = line.rstrip(b"\n").split(b"\t")
    return Entry(int(ds), rid.decode("utf-8", "surrogateescape"), flag == b"d",
                 tuple(sets.decode("ascii").split()), int(version))


def _storage_error(home_root: str, e: OSError) -> StoreError:
    where = e.filename or oai_dir(os.path.abspath(home_root))
    return StoreError(f"{where}: cannot write the OAI index: {e.strerror or e}")


class _BuildLock:
    """One writer of ``var/oai`` at a time (fold, rebuild); readers never wait."""

    def __init__(self, top: str):
        self.top = top
        self.fd = -1

    def __enter__(self) -> _BuildLock:
        os.makedirs(self.top, exist_ok=True)
        self.fd = os.open(os.path.join(self.top, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _sort_chunks(work: str, lines: Iterable[bytes], chunk: int, first: int = 0) -> list[str]:
    """Sorted chunk files of at most ``chunk`` lines each, written atomically."""
    out: list[str] = []
    buf: list[bytes] = []

    def flush() -> None:
        out.append(write_chunk(work, f"chunk-{first + len(out):06d}", buf[:]))
        buf.clear()

    for line in lines:
        buf.append(line)
        if len(buf) >= chunk:
            flush()
    if buf:
        flush()
    return out


def _write_generation(work: str, chunk_paths: list[str], chunk: int, skipped: int,
                      folded: dict[str, int]) -> tuple[int, int, int, int | None]:
    """Merge sorted chunk files into a generation in ``work``;
    (records, deleted, sets, earliest)."""
    set_counts: dict[str, int] = {}
    count = deleted = 0
    earliest = None
    id_chunks: list[str] = []
    ids: list[bytes] = []
    with open(os.path.join(work, "records"), "wb") as rec, \
            open(os.path.join(work, "offsets"), "wb") as off:
        pos = 0
        for line in merge(chunk_paths):
            ds = int(line[:10])
            if earliest is None:
                earliest = ds
            off.write(_OFF.pack(ds, pos))
            rec.write(line)
            pos += len(line)
            _ds, rid, flag, _v, sets = line.rstrip(b"\n").split(b"\t")
            deleted += flag == b"d"
            for s in sets.decode("ascii").split():
                set_counts[s] = set_counts.get(s, 0) + 1
            ids.append(b"%s\x00%d\n" % (rid, count))
            if len(ids) >= chunk:
                id_chunks += _sort_chunks(work, ids, chunk, 900000 + len(id_chunks))
                ids = []
            count += 1
    if ids or not id_chunks:
        id_chunks += _sort_chunks(work, ids, chunk, 900000 + len(id_chunks))
    # byid: ids hold no control characters, so "\0" ends an id before any
    # longer id it is a prefix of, and the byte order is the id order.
    with open(os.path.join(work, "byid"), "wb") as out:
        for line in merge(id_chunks):
            out.write(_POST.pack(int(line[line.rindex(b"\x00") + 1:])))
    for p in id_chunks:
        os.unlink(p)

    # Postings: each set's slice is known from its count, so record numbers
    # are written straight into place through a mapping of the file.
    specs = sorted(set_counts)
    start: dict[str, int] = {}
    n = 0
    with open(os.path.join(work, "sets"), "wb") as sets_file:
        for s in specs:
            start[s] = n
            sets_file.write(b"%s\t%d\t%d\n" % (s.encode("ascii"), n, set_counts[s]))
            n += set_counts[s]
    post_path = os.path.join(work, "postings")
    with open(post_path, "wb") as post:
        post.truncate(n * _POST.size)
    if n:
        fill = dict(start)
        with open(post_path, "r+b") as post_rw, mmap.mmap(post_rw.fileno(), 0) as mm, \
                open(os.path.join(work, "records"), "rb") as rec:
            pack = _POST.pack_into
            for number, line in enumerate(rec):
                for s in line.rstrip(b"\n").rsplit(b"\t", 1)[1].decode("ascii").split():
                    pack(mm, fill[s] * 8, number)
                    fill[s] += 1
            mm.flush()
    meta = {"format": FORMAT, "records": count, "deleted": deleted, "sets": len(specs),
            "skipped": skipped, "earliest": earliest, "built": int(time.time()),
            "folded": folded}
    with open(os.path.join(work, "meta.json"), "w", encoding="utf-8") as meta_file:
        json.dump(meta, meta_file, indent=1, sort_keys=True)
        meta_file.write("\n")
    return count, deleted, len(specs), earliest


def _publish(top: str, work: str) -> tuple[str, str | None]:
    """Rename ``work`` into a generation and point ``current`` at it."""
    name = f"index-{int(time.time())}-{os.urandom(4).hex()}"
    final = os.path.join(top, name)
    os.rename(work, final)
    previous = _readlink(os.path.join(top, CURRENT))
    link_tmp = os.path.join(top, _store.tmp_name())
    os.symlink(name, link_tmp)
    os.replace(link_tmp, os.path.join(top, CURRENT))
    # Keep the generation just replaced: a request that resolved the old
    # link a moment ago can still open its files.
    for old in os.listdir(top):
        if old.startswith("index-") and old not in (name, previous):
            shutil.rmtree(os.path.join(top, old), ignore_errors=True)
    return final, previous


def _generation(home_root: str, top: str, chunk_paths: list[str], chunk: int, skipped: int,
                folded: dict[str, int], started: float) -> IndexStats:
    work = os.path.join(top, _store.tmp_name())
    os.mkdir(work)
    try:
        records, deleted, nsets, earliest = _write_generation(work, chunk_paths, chunk,
                                                              skipped, folded)
        final, previous = _publish(top, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _drop_folded_segments(home_root, folded, previous and os.path.join(top, previous))
    return IndexStats(final, records, deleted, nsets, skipped, earliest,
                      round(time.monotonic() - started, 3))


def _drop_folded_segments(home_root: str, folded: dict[str, int], previous: str | None) -> None:
    """Remove segments that are complete and held whole by this base and the one before."""
    before: dict[str, int] = {}
    if previous:
        try:
            with open(os.path.join(previous, "meta.json"), encoding="utf-8") as f:
                before = json.load(f).get("folded") or {}
        except (OSError, ValueError):
            return
    for seg in _changes.segments(home_root):
        # An empty segment (a run that changed nothing) holds nothing to lose.
        if seg.complete and folded.get(seg.name, 0) == seg.size == before.get(seg.name, 0):
            try:
                os.unlink(os.path.join(_changes.changes_dir(home_root), seg.name))
            except OSError:
                pass


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


def write_index(home_root: str, entries: Iterable[Entry | None], chunk: int = 200_000,
                folded: dict[str, int] | None = None) -> IndexStats:
    """Sort ``entries`` into a new base and make it current (``None``: skipped)."""
    started = time.monotonic()
    top = oai_dir(os.path.abspath(home_root))
    with _BuildLock(top):
        _clean_tmp(top)
        work = os.path.join(top, _store.tmp_name())
        os.mkdir(work)
        try:
            skipped = 0

            def lines() -> Iterator[bytes]:
                nonlocal skipped
                for e in entries:
                    if e is None:
                        skipped += 1
                    else:
                        yield _line(e)

            chunks = _sort_chunks(work, lines(), chunk)
            return _generation(home_root, top, chunks, chunk, skipped, folded or {}, started)
        finally:
            shutil.rmtree(work, ignore_errors=True)


# --- fold: the base and the change log into a new base ------------------------

def fold(home_root: str, chunk: int = 200_000) -> IndexStats:
    """Merge the change log into a new base; build one from the store when there is none.

    No walk of the store: one pass over the base. The renewal calls it at
    its end (:func:`refresh`), so that the log the provider reads on each
    request stays short.

    Raises :class:`kiel.errors.StoreError` when ``var/oai`` cannot be written.
    """
    home_root = os.path.abspath(home_root)
    try:
        if _readlink(os.path.join(oai_dir(home_root), CURRENT)) is None:
            return rebuild(home_root, chunk=chunk)
        return _fold(home_root, chunk)
    except OSError as e:
        raise _storage_error(home_root, e) from None


FOLD_SORT_BYTES = 1 << 20  # the fold's sort of the log by record id: a chunk's bytes


def _fold(home_root: str, chunk: int) -> IndexStats:
    """The log over the base, in memory bounded by the sort chunks whatever
    its length (a run that wrote a million versions leaves a million lines):
    its lines sorted by record id, in the order written within one id (the
    later line wins, as the provider reads them: :meth:`Overlay.refresh`);
    one entry per id, never dated before the base's row or any of its lines;
    the base's rows of those ids left out by a merge in key order."""
    started = time.monotonic()
    top = oai_dir(home_root)
    with _BuildLock(top):
        _clean_tmp(top)
        target = _readlink(os.path.join(top, CURRENT))
        if target is None:
            raise IndexMissing(f"no OAI index in {top}; run 'kiel oai index'")
        try:
            base = Index(os.path.join(top, target))
        except FileNotFoundError:
            raise IndexMissing(f"OAI index {target} vanished; try again") from None
        work = os.path.join(top, _store.tmp_name())
        os.mkdir(work)
        try:
            positions = dict(base.meta.get("folded") or {})
            by_id = ExternalSort(work, chunk_bytes=FOLD_SORT_BYTES)
            read = _log_by_id(home_root, positions, by_id)
            shadowed = ExternalSort(work, chunk_bytes=FOLD_SORT_BYTES)
            chunks = _sort_chunks(work, _folded_entries(base, by_id, shadowed), chunk)
            chunks.append(_base_without(work, base, shadowed))
            stats = _generation(home_root, top, chunks, chunk, int(base.meta.get("skipped", 0)),
                                positions, started)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return IndexStats(**{**stats.__dict__, "folded": read})


def _log_by_id(home_root: str, positions: dict[str, int], out: ExternalSort) -> int:
    """Every complete line of the log past ``positions`` (moved to where each
    segment was read to) into ``out`` as ``<id>\\0<order>\\t<datestamp>\\t<kind>\\t<version>``.
    Returns the lines read."""
    top = _changes.changes_dir(home_root)
    try:
        names = _changes.ordered(os.listdir(top))
    except FileNotFoundError:
        return 0
    n = 0
    for name in names:
        start = positions.get(name, 0)
        try:
            size = os.stat(os.path.join(top, name)).st_size
        except FileNotFoundError:
            continue
        if size <= start:
            continue
        end = start
        for c, after in _changes.stream(home_root, name, start, size):
            end = after
            if c is None:
                continue
            n += 1
            # Ids hold no control character (parse_line): "\0" ends one, and
            # an id sorts before every longer id it begins.
            out.add(b"%s\0%012d\t%d\t%s\t%d" % (c.id.encode("utf-8", "surrogateescape"), n,
                                                 c.datestamp, c.kind.encode("ascii"), c.version))
        positions[name] = end
    return n


def _folded_entries(base: Index, by_id: ExternalSort, shadowed: ExternalSort) -> Iterator[bytes]:
    """One index line per record id of the log; the key prefix of each base
    row they replace goes to ``shadowed``."""
    def entry(rid_b: bytes, group: list[bytes]) -> bytes:
        rid = rid_b.decode("utf-8", "surrogateescape")
        old = base.find(rid)
        stamp = old.datestamp if old is not None else 0
        kind, version = b"", 0
        for g in group:
            ds, kind, ver = g.split(b"\t")
            stamp = max(stamp, int(ds))
            version = int(ver)
        if old is not None:
            shadowed.add(b"%010d\t%s\t" % (old.datestamp, rid_b))
        return _line(Entry(stamp, rid, kind == b"gone", tuple(record_sets(rid)), version))

    current: bytes | None = None
    group: list[bytes] = []
    for line in by_id:
        head, _, fields = line.partition(b"\t")
        rid_b = head[:head.rindex(b"\0")]
        if rid_b != current:
            if current is not None:
                yield entry(current, group)
            current, group = rid_b, []
        group.append(fields)
    if current is not None:
        yield entry(current, group)


def _base_without(work: str, base: Index, shadowed: ExternalSort) -> str:
    """The base's rows, in their order, less those ``shadowed`` names by key
    prefix: one sorted chunk file."""
    path = os.path.join(work, "chunk-base")
    tmp = os.path.join(work, _store.tmp_name())
    drop = iter(shadowed)
    next_drop = next(drop, None)
    with open(tmp, "wb") as out, open(os.path.join(base.path, "records"), "rb") as f:
        for line in f:
            prefix = line[:line.index(b"\t", 11) + 1]
            while next_drop is not None and next_drop < prefix:
                next_drop = next(drop, None)
            if next_drop == prefix:
                continue
            out.write(line)
    for _ in drop:  # read to its end: the sort removes its files
        pass
    os.rename(tmp, path)
    return path


def refresh(home_root: str, chunk: int = 10_000) -> IndexStats | None:
    """What the renewal calls at its end: fold the change log, if there is any.

    Builds the base from the store when there is none yet; None when there
    was nothing to fold. Small sort chunks keep the run's memory flat in
    the store's size (docs/performance.md, "Memory").
    """
    top = oai_dir(os.path.abspath(home_root))
    target = _readlink(os.path.join(top, CURRENT))
    if target is not None:
        # The base's meta says what it holds; the log itself is read only to
        # fold it (reading it here too doubled the fold of a long log).
        try:
            folded = Index(os.path.join(top, target)).meta.get("folded") or {}
        except FileNotFoundError:
            raise IndexMissing(f"OAI index {target} vanished; try again") from None
        segs = _changes.segments(home_root)
        if all(folded.get(s.name, 0) == s.size for s in segs):
            # Nothing new: only the segments of runs that changed nothing go.
            for seg in segs:
                if seg.complete and seg.size == 0:
                    try:
                        os.unlink(os.path.join(_changes.changes_dir(home_root), seg.name))
                    except OSError:
                        pass
            return None
    return fold(home_root, chunk=chunk)


# --- rebuild: the repair, from the store -------------------------------------

def build(home_root: str, chunk: int = 200_000) -> IndexStats:
    """Rebuild the base from the store (see :func:`rebuild`)."""
    return rebuild(home_root, chunk=chunk)


def rebuild(home_root: str, chunk: int = 200_000, now: Callable[[], float] = time.time,
            checkpoint: int = 10_000) -> IndexStats:
    """Walk the store into a new base and make it current: the repair.

    A record whose store differs from what the provider serves (a change
    whose change-log line was lost: a process killed between writing the
    version and the line) is appended to the change log at the end, dated
    then: that is when it becomes visible. Every other record keeps the
    later of its served datestamp and the one its files give
    (:func:`entry_for`), so no datestamp moves back.

    The walk is saved every ``checkpoint`` records under
    ``var/oai/rebuild/``; a rebuild killed midway continues from there.

    Raises :class:`kiel.errors.StoreError` when ``var/oai`` cannot be written.
    """
    home_root = os.path.abspath(home_root)
    try:
        return _rebuild(home_root, chunk, now, checkpoint)
    except OSError as e:
        raise _storage_error(home_root, e) from None


def _rebuild(home_root: str, chunk: int, now: Callable[[], float],
             checkpoint: int) -> IndexStats:
    started = time.monotonic()
    top = oai_dir(home_root)
    store_root = Home(home_root).store
    with _BuildLock(top):
        _clean_tmp(top)
        work = os.path.join(top, REBUILD_DIR)
        os.makedirs(work, exist_ok=True)
        state_path = os.path.join(work, "state.json")
        served: Served | None
        try:
            served = IndexCache(home_root).get()
        except IndexMissing:
            served = None
        state: dict[str, Any] = {}
        try:
            with open(state_path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
        resumed = bool(state)
        if not state:
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            # The base holds the log as far as it was read now; later lines
            # stay in the log and lie over the new base.
            state = {"folded": served.overlay.positions() if served else {},
                     "after": None, "chunks": [], "skipped": 0, "changed": 0}
        changed_path = os.path.join(work, "changed")
        buf: list[bytes] = []
        after = state["after"]
        skipped = 0
        changed: list[bytes] = []

        def save(rel: str | None) -> None:
            nonlocal buf, skipped, changed
            state["chunks"] += [os.path.basename(p) for p in
                                _sort_chunks(work, buf, len(buf) + 1, len(state["chunks"]))]
            with open(changed_path, "ab") as f:
                f.writelines(changed)
            state["skipped"] += skipped
            state["changed"] += len(changed)
            state["after"] = rel
            tmp = os.path.join(work, _store.tmp_name())
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(tmp, state_path)
            buf, skipped, changed = [], 0, []

        if state["after"] != "":  # "" marks a finished walk
            last = None
            for record_dir in _store.iter_record_dirs(store_root):
                rel = os.path.relpath(record_dir, store_root)
                if after is not None and rel <= after:
                    continue
                e = _entry_at(store_root, record_dir)
                if e is None:
                    skipped += 1
                else:
                    e, kind = _against_served(e, served)
                    if kind:
                        changed.append(b"%s\t%s\n" % (kind.encode("ascii"),
                                                      e.id.encode("utf-8", "surrogateescape")))
                    buf.append(_line(e))
                last = rel
                if len(buf) + skipped >= checkpoint:
                    save(last)
            save("")
        try:
            with open(changed_path, "rb") as changed_file:
                repairs = [line.rstrip(b"\n").split(b"\t", 1) for line in changed_file]
        except FileNotFoundError:
            repairs = []
        if repairs:
            # Listed from now on, dated now: appended before the new base is
            # current, so the old base shows them too.
            with _changes.ChangeLog.open(home_root, now=now) as log:
                for kind_b, rid_b in repairs:
                    r = rid_b.decode("utf-8", "surrogateescape")
                    log.append(kind_b.decode("ascii"), r, record_path(r))
        chunks = [os.path.join(work, c) for c in state["chunks"]]
        stats = _generation(home_root, top, chunks, chunk, state["skipped"], state["folded"],
                            started)
        shutil.rmtree(work, ignore_errors=True)
    return IndexStats(**{**stats.__dict__, "changed": len(repairs), "resumed": resumed})


def _against_served(e: Entry, served: Served | None) -> tuple[Entry, str | None]:
    """The entry to keep, and the change kind when the store differs from what is served."""
    if served is None:
        return e, None  # the first build: nothing was visible before
    s = served.find(e.id)
    if s is None:
        return e, "gone" if e.deleted else "version"
    if s.deleted != e.deleted or (not e.deleted and s.version != e.version):
        kind = "gone" if e.deleted else ("back" if s.deleted and s.version == e.version
                                         else "version")
        return Entry(max(e.datestamp, s.datestamp), e.id, e.deleted, e.sets, e.version), kind
    return Entry(max(e.datestamp, s.datestamp), e.id, e.deleted, e.sets, e.version), None


# --- reading ------------------------------------------------------------------

class IndexMissing(Exception):
    """No index has been built for this home yet."""


def _map(path: str) -> mmap.mmap | bytes:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class Index:
    """One base generation, opened read-only; safe to share between threads."""

    def __init__(self, path: str):
        self.path = path
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta.get("format") != FORMAT:
            raise IndexMissing(f"{path}: index format {self.meta.get('format')}, "
                               f"expected {FORMAT}; run 'kiel oai index --rebuild'")
        self._records = _map(os.path.join(path, "records"))
        self._offsets = _map(os.path.join(path, "offsets"))
        self._postings = _map(os.path.join(path, "postings"))
        self._byid = _map(os.path.join(path, "byid"))
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
        e = self.meta.get("earliest")
        return e if isinstance(e, int) else None

    def datestamp(self, number: int) -> int:
        return int(_OFF.unpack_from(self._offsets, number * 16)[0])

    def _line(self, number: int) -> bytes:
        start = _OFF.unpack_from(self._offsets, number * 16)[1]
        if number + 1 < self.count:
            end = _OFF.unpack_from(self._offsets, (number + 1) * 16)[1]
        else:
            end = len(self._records)
        return bytes(self._records[start:end])

    def key(self, number: int) -> Key:
        line = self._line(number)
        return (int(line[:10]), line[11:line.index(b"\t", 11)])

    def row(self, number: int) -> Entry:
        return _parse(self._line(number))

    def find(self, rid: str) -> Entry | None:
        """The row of record ``rid``, by binary search over ``byid``."""
        want = rid.encode("utf-8", "surrogateescape")
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            number = _POST.unpack_from(self._byid, mid * 8)[0]
            got = self.key(number)[1]
            if got < want:
                lo = mid + 1
            elif got > want:
                hi = mid
            else:
                return self.row(number)
        return None

    def view(self, set_spec: str | None) -> View:
        if set_spec is None:
            return View(self, None, 0, self.count)
        start, n = self.sets.get(set_spec, (0, 0))
        return View(self, self._postings, start, n)


class View:
    """The records of one set (or of all) of a base, in index order."""

    def __init__(self, index: Index, postings: mmap.mmap | bytes | None, start: int, n: int):
        self.index = index
        self._postings = postings
        self._start = start
        self.n = n

    def __len__(self) -> int:
        return self.n

    def number(self, i: int) -> int:
        if self._postings is None:
            return i
        return int(_POST.unpack_from(self._postings, (self._start + i) * 8)[0])

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

    def rows(self, start: int, stop: int) -> list[Entry]:
        return [self.index.row(self.number(i)) for i in range(start, stop)]


class Overlay:
    """The change log beyond what a base holds, as rows that replace the base's.

    Read incrementally: each :meth:`refresh` reads only the bytes appended
    since the last one.
    """

    def __init__(self, home_root: str, base: Index):
        self.home_root = home_root
        self.base = base
        self._pos: dict[str, int] = dict(base.meta.get("folded") or {})
        self.ids: dict[str, Entry] = {}
        self.lines = 0
        self.version = 0
        self._sorted: list[tuple[Key, Entry]] = []
        self._shadow: dict[str, Key | None] = {}  # id -> the base row it hides
        self._per_set: dict[str | None, SetOverlay] = {}

    def positions(self) -> dict[str, int]:
        return dict(self._pos)

    def refresh(self) -> None:
        new: list[_changes.Change] = []
        try:
            names = _changes.ordered(os.listdir(_changes.changes_dir(self.home_root)))
        except FileNotFoundError:
            return
        for name in names:
            start = self._pos.get(name, 0)
            try:
                size = os.stat(os.path.join(_changes.changes_dir(self.home_root), name)).st_size
            except FileNotFoundError:
                continue
            if size <= start:
                continue
            got, end = _changes.read(self.home_root, name, start, size)
            new += got
            self._pos[name] = end
        if not new:
            return
        self.lines += len(new)
        # New containers, never changed in place: a request holding the
        # previous ones (a snapshot, see IndexCache.get) keeps a whole state.
        ids = dict(self.ids)
        shadow = dict(self._shadow)
        for c in new:
            # The later line wins: segments are read in the order they were
            # opened, lines in the order written (kiel.oai.changes.order),
            # never by datestamp, which a clock step can reorder. Its
            # datestamp never moves the record's back: a harvest from a date
            # already served still lists it.
            if c.id not in shadow:
                b = self.base.find(c.id)
                shadow[c.id] = None if b is None else key_of(b)
            old = ids.get(c.id)
            base_key = shadow[c.id]
            floor = old.datestamp if old is not None else \
                (base_key[0] if base_key is not None else 0)
            ids[c.id] = Entry(max(c.datestamp, floor), c.id, c.kind == "gone",
                              tuple(record_sets(c.id)), c.version)
        self.ids, self._shadow = ids, shadow
        self._sorted = sorted((key_of(e), e) for e in self.ids.values())
        self.version += 1
        self._per_set = {}

    def rows_sorted(self) -> list[Entry]:
        return [e for _k, e in self._sorted]

    def for_set(self, spec: str | None) -> SetOverlay:
        got = self._per_set.get(spec)
        if got is None:
            pairs = [(k, e) for k, e in self._sorted if spec is None or spec in e.sets]
            shadow = sorted(k for rid, k in self._shadow.items() if k is not None
                            and (spec is None or spec in record_sets(rid)))
            got = SetOverlay([k for k, _e in pairs], [e for _k, e in pairs], shadow)
            self._per_set[spec] = got
        return got


@dataclass(frozen=True)
class SetOverlay:
    keys: list[Key]
    rows: list[Entry]
    shadow: list[Key]  # base keys of the rows the overlay replaces


@dataclass(frozen=True)
class Page:
    rows: list[Entry]
    more: bool  # items remain after the page
    total: int  # completeListSize
    cursor: int  # items before the page


@dataclass(frozen=True)
class Served:
    """What the provider serves at one moment: a base and the log over it."""

    base: Index
    overlay: Overlay
    set_specs: list[str] = field(default_factory=list)

    @property
    def earliest(self) -> int | None:
        e = self.base.earliest
        if self.overlay._sorted:
            o = self.overlay._sorted[0][0][0]
            e = o if e is None else min(e, o)
        return e

    def find(self, rid: str) -> Entry | None:
        got = self.overlay.ids.get(rid)
        return got if got is not None else self.base.find(rid)

    def page(self, spec: str | None, from_: int | None, until: int | None,
             after: Key | None, size: int) -> Page:
        """Up to ``size`` rows of the list, after ``after`` when given."""
        view = self.base.view(spec)
        ov = self.overlay.for_set(spec)
        ids = self.overlay.ids
        low: Key = (from_, b"") if from_ is not None else (-1, b"")
        high: Key = (until + 1, b"") if until is not None else (1 << 62, b"")
        lo_b = view.first_from(from_) if from_ is not None else 0
        hi_b = view.first_from(until + 1) if until is not None else len(view)
        lo_o = bisect.bisect_left(ov.keys, low)
        hi_o = bisect.bisect_left(ov.keys, high)
        s_lo = bisect.bisect_left(ov.shadow, low)
        s_hi = bisect.bisect_left(ov.shadow, high)
        total = (hi_b - lo_b) - (s_hi - s_lo) + (hi_o - lo_o)
        if after is not None:
            p = max(lo_b, view.first_after(after))
            q = max(lo_o, bisect.bisect_right(ov.keys, after))
            s_at = max(s_lo, bisect.bisect_right(ov.shadow, after))
        else:
            p, q, s_at = lo_b, lo_o, s_lo
        cursor = (p - lo_b) - (s_at - s_lo) + (q - lo_o)
        rows: list[Entry] = []
        base_row: Entry | None = None
        while len(rows) <= size:
            while base_row is None and p < hi_b:
                r = view.index.row(view.number(p))
                p += 1
                if r.id not in ids:  # the log holds a newer state of it
                    base_row = r
            over = ov.rows[q] if q < hi_o else None
            if base_row is None and over is None:
                break
            if over is None or (base_row is not None and key_of(base_row) < key_of(over)):
                assert base_row is not None
                rows.append(base_row)
                base_row = None
            else:
                rows.append(over)
                q += 1
        more = len(rows) > size
        return Page(rows[:size], more, total, cursor)


    def last_upto(self, spec: str | None, from_: int | None, key: Key) -> Entry | None:
        """The last row of the list at or before ``key`` (and not before ``from_``)."""
        view = self.base.view(spec)
        ov = self.overlay.for_set(spec)
        lo_b = view.first_from(from_) if from_ is not None else 0
        low: Key = (from_, b"") if from_ is not None else (-1, b"")
        best: Entry | None = None
        p = view.first_after(key) - 1
        while p >= lo_b:
            r = view.index.row(view.number(p))
            if r.id not in self.overlay.ids:
                best = r
                break
            p -= 1
        q = bisect.bisect_right(ov.keys, key) - 1
        if q >= 0 and ov.keys[q] >= low and (best is None or ov.keys[q] > key_of(best)):
            best = ov.rows[q]
        return best


class IndexCache:
    """The current base of a home, reopened when ``current`` changes, with its log."""

    def __init__(self, home_root: str):
        self.home_root = os.path.abspath(home_root)
        self.top = oai_dir(self.home_root)
        self._lock = threading.Lock()
        self._target: str | None = None
        self._served: Served | None = None

    def get(self) -> Served:
        target = _readlink(os.path.join(self.top, CURRENT))
        if target is None:
            raise IndexMissing(f"no OAI index in {self.top}; run 'kiel oai index'")
        with self._lock:
            if target != self._target or self._served is None:
                try:
                    base = Index(os.path.join(self.top, target))
                except FileNotFoundError:
                    raise IndexMissing(f"OAI index {target} vanished; try again") from None
                self._served = Served(base, Overlay(self.home_root, base))
                self._target = target
            served = self._served
            before = served.overlay.version
            served.overlay.refresh()
            if served.overlay.version != before or not served.set_specs:
                specs = set(served.base.set_specs)
                for e in served.overlay.ids.values():
                    specs.update(e.sets)
                served.set_specs[:] = sorted(specs)
            # A snapshot: later refreshes build new lists, never change these.
            return Served(served.base, _Frozen.of(served.overlay), list(served.set_specs))


class _Frozen(Overlay):
    """A read-only copy of an overlay's state for one request."""

    @classmethod
    def of(cls, o: Overlay) -> _Frozen:
        f = cls.__new__(cls)
        f.home_root, f.base, f._pos, f.ids = o.home_root, o.base, dict(o._pos), o.ids
        f.lines, f.version, f._sorted, f._shadow = o.lines, o.version, o._sorted, o._shadow
        f._per_set = o._per_set
        return f

    def refresh(self) -> None:  # a snapshot never reads further
        return None


def open_current(home_root: str) -> Index:
    return IndexCache(home_root).get().base
