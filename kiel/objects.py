"""Object directories: one per URL inside a record directory.

An object directory holds ``00url``, ``00notes`` and one file per attempt,
``<tist>_<status>_<type>``: the complete body, empty when there is none, or
a relative symbolic link to an earlier regular file with the same body
(docs/contract.md, Objects).

What a renewal needs of an object's past (the newest attempt, the
validators for a conditional request, the body to link to, the object's
age) is read from the end of its ``00notes`` (:func:`kiel.notes.tail`), so
a renewal costs the same after ten years of nightly attempts as after one.
The directory itself is listed only to repair what a crashed run left
(``repair=True``).

A new object directory is built whole under a hidden temporary name in its
record directory (``00url``, the body under its final name, ``00notes``)
and renamed into place with its first notes line: fewer inodes and system
calls than publishing each file, and nothing but a complete directory under
a final name. A hidden directory a crash left behind is removed like any
abandoned temporary name (the next run, ``verify --repair``).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import Any

from kiel import faults, notes, store, urls
from kiel.attempt import Result
from kiel.escape import escape, is_cut
from kiel.notes import AttemptNote, EventNote


class Collision(Exception):
    """The directory a URL's escaped name leads to belongs to another URL."""


@dataclass
class ObjectDir:
    """What one renewal knows of an object directory's past."""

    path: str
    url: str  # the name form (password redacted)
    newest_tist: int | None = None
    since: int | None = None  # the first attempt
    ever_ok: bool = False
    given_up: bool = False
    body: AttemptNote | None = None  # newest attempt whose body is kept here
    by_sha: dict[str, str] = field(default_factory=dict)  # sha256 -> regular file name
    recovered: int = 0
    new: bool = False
    final: str | None = None  # a new directory's place, while it is built under ``path``
    notes_fd: int | None = None  # 00notes, open from the tail read to the append
    notes_whole: bool = True  # 00notes ends with a newline (or is empty)

    @property
    def name(self) -> str:
        """The object directory's name in its record directory."""
        return os.path.basename(self.final or self.path)

    def body_file(self) -> str | None:
        """The regular file that holds :attr:`body` (links resolved, one level)."""
        if self.body is None:
            return None
        name = self.body.link or self.body.file
        if not name:
            return None
        path = os.path.normpath(os.path.join(self.path, name))
        return path if _is_regular(path) else None

    def drop_damaged_body(self) -> dict[str, object] | None:
        """Forget :attr:`body` when its file no longer has the size its notes
        give (a stat, no read): the renewal then asks unconditionally and
        links nothing to it. The file itself is left as it is. Returns what
        was found (the ``damaged`` field of the next attempt line), or None."""
        b = self.body
        path = self.body_file()
        if b is None or path is None:
            return None
        try:
            size = os.stat(path, follow_symlinks=False).st_size
        except OSError:
            return None
        if size == b.size:
            return None
        if b.sha256 and self.by_sha.get(b.sha256) == (b.link or b.file):
            del self.by_sha[b.sha256]
        self.body = None
        return {"file": os.path.relpath(path, self.path), "size": size, "noted": b.size}

    def validators(self) -> dict[str, str]:
        """Headers of a conditional request confirming :attr:`body`."""
        h: dict[str, str] = {}
        b = self.body
        if b is None or b.status not in ("200", "304"):
            return h
        if b.etag:
            h["If-None-Match"] = b.etag
        if b.last_modified:
            h["If-Modified-Since"] = b.last_modified
        return h


def open_dir(record_dir: str, url_name: str, *, repair: bool = False) -> ObjectDir:
    """Create or read the object directory of ``url_name`` in ``record_dir``.

    ``repair``: also list the directory and mend what a crash left:
    temporary files are removed, and an attempt file that has no notes
    line (the run died between the two) gets one, marked ``recovered``.
    Raises :class:`Collision` when a cut name's directory belongs to
    another URL, :class:`kiel.notes.NotRegular` when ``00notes`` or
    ``00url`` is not a regular file, ``OSError(ELOOP)`` on a planted link.
    """
    path = os.path.join(record_dir, escape(url_name))
    od = ObjectDir(path, url_name)
    try:
        st = os.lstat(path)  # one call on the warm path: it is there
    except FileNotFoundError:
        hidden = os.path.join(record_dir, store.tmp_name())
        os.mkdir(hidden)
        od.new, od.path, od.final = True, hidden, path
        _create(os.path.join(hidden, store.URL), url_name.encode("utf-8") + b"\n")
        return od
    else:
        if not stat.S_ISDIR(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.ELOOP, "a symbolic link where an object directory belongs",
                              path) from None
            raise notes.NotRegular(path, notes.kind_of(st.st_mode) +
                                   " where an object directory belongs") from None
    if is_cut(os.path.basename(path)):
        # Only a cut name can be shared by two URLs: its 00url says whose it is.
        try:
            owner = notes.read_regular(os.path.join(path, store.URL), 65536)
        except FileNotFoundError:
            owner = None
        if owner is None:
            store.write_once(os.path.join(path, store.URL), url_name.encode("utf-8") + b"\n")
        elif owner.rstrip(b"\n").decode("utf-8", "replace") != url_name:
            raise Collision(f"{path}: holds {owner.rstrip().decode('utf-8', 'replace')!r}, "
                            f"not {url_name!r}")
    elif repair:
        store.write_once(os.path.join(path, store.URL), url_name.encode("utf-8") + b"\n")
    _read_past(od)
    if repair:
        _repair(od)
    return od


def _read_past(od: ObjectDir) -> None:
    """The newest lines first, parsed only as far as needed: the newest attempt
    (its age, carried in the line), the newest body kept here, and whether a
    ``given-up`` came after them. Earlier bodies are found on disk when a new
    body needs them (:func:`_earlier_equal`)."""
    opened = notes.open_for_tail(os.path.join(od.path, notes.NOTES))
    past = _Past()
    if opened is not None:
        od.notes_fd, size = opened
        window = notes.TAIL_WINDOW
        while True:
            lines, whole, od.notes_whole = notes.tail_of(od.notes_fd, size, window)
            past = _past_of(lines)
            if past.newest is not None or whole or window >= notes.MAX_LINE:
                break
            # Only events and retried attempts after lines longer than the
            # window: further back for the newest attempt, which carries the age.
            window *= 8
    newest = past.newest
    od.newest_tist, od.given_up, od.body = past.newest_tist, past.given_up, past.body
    if newest is not None:
        od.ever_ok = bool(newest.ever_ok) or newest.succeeded
        od.since = min(newest.since, newest.tist) if newest.since is not None else newest.tist
    if past.body is not None and past.body.sha256:
        od.by_sha[past.body.sha256] = past.body.link or past.body.file or ""
    if newest is not None and (newest.since is None or newest.ever_ok is None):
        # Notes written before lines carried the object's age: read them once.
        _read_age(od)


@dataclass
class _Past:
    newest_tist: int | None = None  # of any attempt, a retried one too
    newest: AttemptNote | None = None  # the newest attempt not retried
    body: AttemptNote | None = None  # the newest attempt whose body is kept here
    given_up: bool = False


def _past_of(lines: list[bytes]) -> _Past:
    past = _Past()
    decided = False  # given_up is known: an event or an attempt came first
    for raw in reversed(lines):
        e = notes.parse_line(raw)
        if e is None:
            continue
        a = notes.parse_attempt(e)
        if a is None:
            ev = notes.parse_event(e)
            if not decided and ev is not None and ev.event in ("given-up", "revived"):
                past.given_up = ev.event == "given-up"
                decided = True
            continue
        if past.newest_tist is None or a.tist > past.newest_tist:
            past.newest_tist = a.tist
        if a.retried:
            continue
        decided = True
        if past.newest is None:
            past.newest = a
        if a.size and a.sha256 and (a.file or a.link) and a.status != "000":
            past.body = a
            break
    return past


def _read_age(od: ObjectDir) -> None:
    for e in notes.entries(os.path.join(od.path, notes.NOTES)):
        a = notes.parse_attempt(e)
        if a is None or a.retried:
            continue
        od.since = a.tist if od.since is None else min(od.since, a.tist)
        if a.succeeded:
            od.ever_ok = True


def _repair(od: ObjectDir) -> None:
    noted: set[str] = set()
    for e in notes.entries(os.path.join(od.path, notes.NOTES)):
        name = e.get("file")
        if isinstance(name, str):
            noted.add(name)
    for name in sorted(os.listdir(od.path)):
        if store.is_tmp(name):
            if store.tmp_abandoned(os.path.join(od.path, name)):
                store.unlink_quiet(os.path.join(od.path, name))
            continue
        parsed = store.parse_attempt(name)
        if parsed and name not in noted:
            _recover(od, name, parsed)


def _recover(od: ObjectDir, name: str, parsed: tuple[int, str, str]) -> None:
    """Write the notes line a crash kept from being written."""
    full = os.path.join(od.path, name)
    st = os.lstat(full)
    link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
    size = os.path.getsize(full) if os.path.exists(full) else 0
    sha256 = store.sha256_file(full) if size and link is None else None
    note = AttemptNote(parsed[0], od.url, parsed[1], parsed[2], None, size, sha256, None, name,
                       link, None, "recovered: notes line written after a crash", 0.0,
                       recovered=True, since=od.since if od.since is not None else parsed[0],
                       ever_ok=od.ever_ok or parsed[1][:1] in ("1", "2", "3"))
    notes.append(os.path.join(od.path, notes.NOTES), note.line())
    od.notes_whole = True
    if sha256:
        od.by_sha.setdefault(sha256, name)
    od.newest_tist = max(od.newest_tist or parsed[0], parsed[0])
    od.recovered += 1


def next_tist(od: ObjectDir, started: int) -> int:
    """The tist of a new attempt: when it started, but never at or before the
    newest attempt, so that ``ls`` order stays the order of the attempts
    even if the clock steps back. A name still taken moves on at publish."""
    if od.newest_tist is not None and started <= od.newest_tist:
        return od.newest_tist + 1
    return started


@dataclass(frozen=True)
class Written:
    name: str
    link: str | None
    real: str  # path of the regular file that holds the body (may be name itself)
    note: AttemptNote


def record(od: ObjectDir, res: Result, *, sync: bool = False, attempt: int = 1,
           link_to: str | None = None, same_as: str | None = None,
           keep_type: str | None = None, extra: dict[str, object] | None = None) -> Written:
    """Give attempt ``res`` its file in ``od`` and its notes line.

    ``link_to``: an absolute path of a regular file elsewhere holding this
    body (a URL shared by several records, or the 200 a 304 confirms); the
    attempt becomes a relative link to it, unless this directory already
    holds the same body, which is linked first.
    """
    status = res.status
    type_ = keep_type or res.type
    started = next_tist(od, int(res.started))

    def name_for(step: int) -> str:
        return f"{started + step}_{status}_{type_}"

    link = None
    known = od.by_sha.get(res.sha256 or "") if res.size else None
    if known is None and res.size and res.sha256 and res.tmp_path and not od.new:
        known = _earlier_equal(od, res.size, res.sha256)
    if known and _is_regular(os.path.join(od.path, known)):
        link = known
    elif link_to is not None:
        link = os.path.relpath(link_to, od.path)
    if link is not None:
        if res.tmp_path:
            store.unlink_quiet(res.tmp_path)
        name = store.symlink_new(od.path, name_for, link)
    elif od.final is not None:
        # A directory under construction: no name is taken, nothing is seen yet.
        name = name_for(0)
        if res.tmp_path:
            os.rename(res.tmp_path, os.path.join(od.path, name))
        else:
            _create(os.path.join(od.path, name), b"")
    elif res.tmp_path:
        name = store.publish(res.tmp_path, od.path, name_for, sync)
    else:
        name = store.write_new(od.path, name_for, b"", sync)
    tist = int(name.split("_", 1)[0])
    ok = status[:1] in ("1", "2", "3")
    since = od.since if od.since is not None else tist
    headers, left_out = _kept_headers(res.headers)
    note = AttemptNote(
        tist, od.url, status, type_, res.declared_type, res.size, res.sha256, res.sha1, name,
        link, _redacted(res.location), res.error, res.elapsed,
        headers=headers, attempt=attempt, same_as=same_as,
        etag=res.etag, last_modified=res.last_modified,
        detail=res.detail[:500] if res.detail else None, since=since,
        ever_ok=od.ever_ok or ok, headers_left_out=left_out, extra=_extra(res, extra),
    )
    _append(od, note.line(), sync)
    real = os.path.normpath(os.path.join(od.path, link)) if link is not None \
        else os.path.join(od.path, name)
    od.newest_tist = tist
    od.since = since
    od.ever_ok = od.ever_ok or ok
    if res.size and res.sha256:
        od.by_sha.setdefault(res.sha256, link or name)
        od.body = note
    return Written(name, link, real, note)


def _earlier_equal(od: ObjectDir, size: int, sha256: str) -> str | None:
    """An earlier regular file here with this body (docs/contract.md: an equal body
    becomes a link to it), looked for on disk: only when a body is new to
    the newest lines, and hashing only files of the same size."""
    try:
        names = os.listdir(od.path)
    except OSError:
        return None
    for name in sorted(names, reverse=True):
        if store.parse_attempt(name) is None:
            continue
        path = os.path.join(od.path, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == size and \
                store.sha256_file(path) == sha256:
            od.by_sha[sha256] = name
            return name
    return None


def note_retry(od: ObjectDir, res: Result, attempt: int,
               extra: dict[str, object] | None = None) -> None:
    """A transient failure that will be tried again: a notes line, no file."""
    if res.tmp_path:
        store.unlink_quiet(res.tmp_path)
    tist = next_tist(od, int(res.started))
    headers, left_out = _kept_headers(res.headers)
    note = AttemptNote(tist, od.url, res.status, res.type, res.declared_type, res.size,
                       res.sha256, res.sha1, None, None, _redacted(res.location), res.error,
                       res.elapsed, headers=headers, attempt=attempt,
                       retried=True, detail=res.detail[:500] if res.detail else None,
                       headers_left_out=left_out, extra=_extra(res, extra))
    _append(od, note.line(), False)


def _kept_headers(headers: notes.Headers) -> tuple[notes.Headers, notes.LeftOut | None]:
    """The response's headers as an attempt line keeps them: as received, but
    bounded (:func:`kiel.notes.kept_headers`: a line stays well under the tail
    a renewal reads), and never a password (a redirect's ``Location`` may
    carry one; docs/contract.md: passwords are never written)."""
    kept, left_out = notes.kept_headers(headers)
    return tuple((name, urls.redact_text(value)) for name, value in kept), left_out


def _extra(res: Result, extra: dict[str, object] | None) -> dict[str, object]:
    """The fields of an attempt line beyond the contract's: where Kiel connected
    (or was refused), an encoding the stored body is still in."""
    out: dict[str, object] = {}
    if res.address:
        out["address"] = res.address
    if res.encoding:
        out["encoding"] = res.encoding
    out.update(extra or {})
    return out


def note_event(od: ObjectDir, event: str, tist: int, **extra: object) -> None:
    _append(od, EventNote(event, tist, dict(extra, url=od.url)).line(), False)


def _append(od: ObjectDir, line: dict[str, Any], sync: bool) -> None:
    """A notes line; a new directory gets its ``00notes`` with it and is
    renamed into place (see the module doc)."""
    if od.final is None:
        fd, od.notes_fd = od.notes_fd, None
        if fd is None:
            notes.append(os.path.join(od.path, notes.NOTES), line)
            return
        try:
            # The descriptor of the tail read: no second open for the append.
            notes.append_fd(fd, line, od.notes_whole)
        finally:
            os.close(fd)
        return
    _create(os.path.join(od.path, notes.NOTES), notes.dumps(line))
    if sync:
        for name in os.listdir(od.path):
            fd = os.open(os.path.join(od.path, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    faults.hit("objdir.built")
    try:
        os.rename(od.path, od.final)
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        # Another URL took the name meanwhile (two cut names alike): its directory stays.
        shutil.rmtree(od.path, ignore_errors=True)
        raise Collision(f"{od.final}: made meanwhile for another URL, not "
                        f"{od.url!r}") from None
    od.path, od.final = od.final, None


def release(od: ObjectDir) -> None:
    """The job of ``od`` ended: its notes descriptor is closed, and a new
    directory that got no attempt (it held only ``00url``) is removed."""
    if od.notes_fd is not None:
        os.close(od.notes_fd)
        od.notes_fd = None
    if od.final is not None:
        shutil.rmtree(od.path, ignore_errors=True)


def _create(path: str, data: bytes) -> None:
    """A new file in a directory under construction (the whole directory is
    published at once, so no temporary name is needed here)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _redacted(url: str | None) -> str | None:
    """A redirect target as the notes carry it: any password replaced by ``***``."""
    return urls.redact(url) if url else None


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
