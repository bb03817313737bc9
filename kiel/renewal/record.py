"""A record's renewal: its version, its countdown of objects, its notes line.

The countdown starts at one, a token the starter holds: every job for the
record raises it *before* the job is queued (:meth:`RecordRenewal.expect`),
and each job lowers it once when it ends. The starter gives its token back
after queuing the first jobs, so the count reaches zero exactly once, after
the last job, whatever the workers do meanwhile. Then the record's notes
line and ``00last`` are written (:func:`finish`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiel import notes, store
from kiel.escape import is_cut
from kiel.names import version_id
from kiel.notes import EventNote, RenewalNote
from kiel.redist import same_record
from kiel.renewal.plan import Planned


class CountdownError(RuntimeError):
    """A job ended twice, or a job was added to a finished record: a bug."""


@dataclass
class RecordRenewal:
    id: str
    rel: str
    dir: str
    start: int
    source: str
    version: str | None  # written by this renewal
    version_sha256: str | None
    current: str | None  # the newest version after it
    changed: bool
    virgin: bool  # no version was stored before
    urls: dict[str, list[str]]
    skipped: list[dict[str, Any]]
    repair: bool = False  # a crashed run left this record in flight
    events: list[EventNote] = field(default_factory=list)
    objects: dict[str, str | None] = field(default_factory=dict)  # URL name -> directory
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # more fields of the renewal line
    on_finish: Callable[[RecordRenewal], None] | None = None
    _pending: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # How each job ended, by the URL it fetched, for a deposit whose file the
    # record fetched first (Deposit waits for it instead of noting it failed).
    _ended: dict[str, Ended] = field(default_factory=dict)
    _watch: dict[str, list[Callable[[Any, str | None, str | None], None]]] = \
        field(default_factory=dict)

    def expect(self, n: int = 1) -> None:
        """Raise the count for ``n`` jobs about to be queued."""
        with self._lock:
            if self._pending <= 0:
                raise CountdownError(f"record {self.id}: a job added after its end")
            self._pending += n

    def interrupt(self) -> None:
        """Not renewed whole (a stop, ``--max-time``, a shared fetch abandoned):
        no ``00last``, so the record comes first next time."""
        with self._lock:
            self.interrupted = True

    def done(self) -> None:
        """One job (or the starter's token) ended."""
        with self._lock:
            if self._pending <= 0:
                raise CountdownError(f"record {self.id}: ended twice")
            self._pending -= 1
            finished = self._pending == 0
            left = [cb for cbs in self._watch.values() for cb in cbs] if finished else []
            if finished:
                self._watch.clear()
        for cb in left:  # a URL that ended under another name (a redirect): heard as such
            cb(None, None, "not fetched: the record's own fetch of it ended elsewhere")
        if finished and self.on_finish is not None:
            self.on_finish(self)

    def ended(self, url: str, written: Any, object_dir: str | None,
              error: str | None) -> None:
        """A job of this record that fetched ``url`` ended (``written``: its
        :class:`kiel.objects.Written`, or None); whoever watches it hears."""
        with self._lock:
            self._ended[url] = Ended(written, object_dir, error)
            cbs = self._watch.pop(url, [])
        for cb in cbs:
            cb(written, object_dir, error)

    def watch(self, url: str, cb: Callable[[Any, str | None, str | None], None]) -> None:
        """Call ``cb(written, object_dir, error)`` once the record's job for
        ``url`` ends (at once when it has); at the record's end at the
        latest."""
        with self._lock:
            got = self._ended.get(url)
            if got is None:
                self._watch.setdefault(url, []).append(cb)
                return
        cb(got.written, got.object_dir, got.error)

    def claim(self, name: str) -> bool:
        """Take the object ``name`` for this renewal; False when it already has it
        (a redirect back to an object of the record ends the chain)."""
        with self._lock:
            if name in self.objects:
                return False
            self.objects[name] = None
            return True

    def object_dir(self, name: str, directory: str) -> None:
        with self._lock:
            self.objects[name] = directory

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def add_urls(self, branch: str, name: str) -> None:
        with self._lock:
            self.urls.setdefault(branch, []).append(name)


@dataclass(frozen=True)
class Ended:
    written: Any  # kiel.objects.Written or None
    object_dir: str | None
    error: str | None


class Damaged(Exception):
    """The record directory holds something Kiel cannot renew safely."""


def start(p: Planned, store_root: str, now: int, *, sync: bool, repair: bool,
          changed_hook: Callable[[str, int | None], None] = lambda _k, _v: None,
          on_finish: Callable[[RecordRenewal], None] | None = None) -> RecordRenewal:
    """Store the record's version when its bytes changed; adopt versions a
    crash left unnoted; note a return from ``00gone``. ``changed_hook`` hears
    of each change harvesters must see (``version``, ``back``), after it is
    on disk (the OAI-PMH change log), with the tist of the current version.

    Raises :class:`Damaged` (report, skip the record) or ``OSError`` (the
    store cannot be written)."""
    rdir = os.path.join(store_root, p.rel)
    _make_record_dir(rdir, store_root)
    vers = []
    is_gone = False
    with os.scandir(rdir) as it:
        for entry in it:
            name = entry.name
            if name == store.GONE:
                is_gone = True
                _regular(entry)
            elif store.is_tmp(name):
                if store.tmp_abandoned(entry.path):
                    store.remove_tmp(entry.path)
                continue
            m = store.VERSION_RE.match(name)
            if m:
                _regular(entry)  # every version is hashed or read back: none may block
                vers.append((int(m.group(1)), name))
    vers.sort()
    if vers and is_cut(os.path.basename(rdir)):
        # Only a cut name can be shared by two ids: the newest version says whose it is.
        held = version_id(os.path.join(rdir, vers[-1][1]))
        if held is not None and not same_record(held, p.id):
            raise Damaged(f"{rdir}: holds record {held!r}, not {p.id!r} (two ids share a cut "
                          "name); refused")
    try:
        # A version no newer than the last finished renewal was noted by it;
        # only a newer one (a renewal that did not finish) sends us to the notes.
        unsure = bool(vers) and (p.last_end is None or vers[-1][0] > p.last_end)
        past = notes.tail(os.path.join(rdir, notes.NOTES)) if unsure else notes.Tail((), True)
        gone = os.path.join(rdir, store.GONE)
        changed = True
        newest = vers[-1] if vers else None
        if newest is not None:
            changed = notes.read_regular(os.path.join(rdir, newest[1])) != p.xml
    except notes.NotRegular as e:
        raise Damaged(f"{e.filename}: {e.what} where a regular file belongs") from None
    events: list[EventNote] = []
    for name in (_unnoted(rdir, vers, past) if unsure else ()):
        events.append(EventNote("adopted", now, {
            "version": name, "version_sha256": store.sha256_file(os.path.join(rdir, name)),
            "reason": "written by a renewal that ended before noting it"}))
    version = None
    current = newest[1] if newest else None
    if changed:
        base = now if newest is None else max(now, newest[0] + 1)
        version = store.write_new(rdir, lambda s: f"{base + s}.amf.xml", p.xml, sync)
        current = version
    current_tist = int(current.split(".", 1)[0]) if current else None
    if version is not None or events:
        changed_hook("version", current_tist)  # a new version, or one a crash left unlisted
    if is_gone:
        os.unlink(gone)
        events.append(EventNote("back", now, {}))
        changed_hook("back", current_tist)
    r = RecordRenewal(
        p.id, p.rel, rdir, now, p.source, version,
        hashlib.sha256(p.xml).hexdigest() if version else None, current, changed,
        newest is None, dict(p.urls), list(p.skipped), repair=repair, events=events,
        on_finish=on_finish)
    if p.duplicates:
        r.extra["duplicates"] = list(p.duplicates)
    return r


def _make_record_dir(rdir: str, store_root: str) -> None:
    """Make the record directory (and the levels above it) unless it is there.

    Something else in its place, or in the place of a level above it (a file
    planted or left by hand), is damage in one record: :class:`Damaged`,
    nothing touched, never an error that stops the run."""
    try:
        os.mkdir(rdir)
    except FileExistsError:
        pass
    except FileNotFoundError:
        try:
            os.makedirs(rdir, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            _blocked(rdir, store_root)
    except NotADirectoryError:
        _blocked(rdir, store_root)
    st = os.lstat(rdir)
    if not stat.S_ISDIR(st.st_mode):
        raise Damaged(f"{rdir}: {_kind(st.st_mode)} where the record directory belongs")


def _blocked(rdir: str, store_root: str) -> None:
    """Name the level above ``rdir`` that is not a directory."""
    path = rdir
    while True:
        parent = os.path.dirname(path)
        if parent == path or not parent.startswith(store_root):
            break
        path = parent
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise Damaged(f"{path}: {_kind(st.st_mode)} where a directory of the store "
                          f"belongs (above {rdir})")
    raise Damaged(f"{rdir}: cannot be made, a level above it is not a directory")


def _regular(entry: os.DirEntry[str]) -> None:
    """A version or ``00gone`` (removed when its record comes back) must be a
    regular file: a directory, a FIFO or a link there is reported and left
    as it is (the directory entry's type: no system call of its own)."""
    if not entry.is_file(follow_symlinks=False):
        raise Damaged(f"{entry.path}: {_kind(entry.stat(follow_symlinks=False).st_mode)} "
                      "where a regular file belongs")


def _kind(mode: int) -> str:
    return "a regular file" if stat.S_ISREG(mode) else notes.kind_of(mode)


def _unnoted(rdir: str, vers: list[tuple[int, str]], past: notes.Tail) -> list[str]:
    """Versions newer than the newest one a renewal line names."""
    if not vers:
        return []
    lines = list(past.entries)
    if not past.whole and not any(e.get("event") == "renewal" for e in lines):
        lines = list(notes.entries(os.path.join(rdir, notes.NOTES)))
    named: set[str] = set()
    newest_named = -1
    for e in lines:
        for key in ("current", "version"):
            v = e.get(key)
            if isinstance(v, str):
                named.add(v)
                m = store.VERSION_RE.match(v)
                if m:
                    newest_named = max(newest_named, int(m.group(1)))
    return [name for t, name in vers if t > newest_named and name not in named]


def finish(r: RecordRenewal, end: int, *, sync: bool) -> None:
    """The record's notes line, then ``00last`` (not after an interruption:
    the record then stays first in line for the next run).

    A wall clock that stepped back since the record started never makes its
    end earlier than its start: the end is then the start (docs/contract.md,
    00last)."""
    end = max(end, r.start)
    path = os.path.join(r.dir, notes.NOTES)
    for ev in r.events:
        notes.append(path, dict(ev.line(), id=r.id))
    with r._lock:
        note = RenewalNote(r.start, end, r.id, r.source, r.version, r.version_sha256, r.current,
                           r.urls, r.skipped, dict(r.objects), list(r.errors),
                           back=any(ev.event == "back" for ev in r.events),
                           interrupted=r.interrupted, extra=dict(r.extra))
    notes.append(path, note.line())
    if not r.interrupted:
        store.write_last(r.dir, r.start, end, sync)
