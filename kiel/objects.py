"""Object directories: one per URL inside a record directory.

An object directory holds ``00url``, ``00notes`` and one file per attempt,
``<tist>_<status>_<type>``: the complete body, empty when there is none, or
a relative symbolic link to an earlier regular file with the same body
(DESIGN.md, Objects).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from kiel import notes, store, urls
from kiel.escape import escape
from kiel.fetch import Result


@dataclass
class ObjectDir:
    """What one renewal needs to know of an object directory's past."""

    path: str
    url: str  # the name form (password redacted)
    by_sha: dict[str, str] = field(default_factory=dict)  # sha256 -> regular file
    tists: set[int] = field(default_factory=set)
    last_200: dict[str, Any] | None = None  # newest 200 with a file (conditional GET)
    first_tist: int | None = None
    newest_tist: int | None = None
    ever_succeeded: bool = False
    given_up: bool = False
    recovered: int = 0


def open_dir(record_dir: str, url_name: str) -> ObjectDir:
    """Create or read the object directory of ``url_name`` in ``record_dir``.

    Also repairs what a crash can leave: temporary files are removed, and
    an attempt file that has no notes line (the run died between the two)
    gets one, marked ``recovered``.
    """
    path = os.path.join(record_dir, escape(url_name))
    os.makedirs(path, exist_ok=True)
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "a symbolic link where an object directory belongs", path)
    store.write_once(os.path.join(path, store.URL), url_name.encode("utf-8") + b"\n")
    od = ObjectDir(path, url_name)
    names = os.listdir(path)
    attempts = {}
    for name in names:
        if store.is_tmp(name):
            try:
                os.unlink(os.path.join(path, name))
            except OSError:
                pass
            continue
        parsed = store.parse_attempt(name)
        if parsed:
            attempts[name] = parsed
            od.tists.add(parsed[0])
    noted: set[str] = set()
    for e in notes.entries(os.path.join(path, notes.NOTES)):
        if e.get("event") == "given-up":
            od.given_up = True
            continue
        if e.get("event") == "revived":
            od.given_up = False
            continue
        name = e.get("file")
        if not name:
            continue
        noted.add(name)
        t = e.get("tist")
        if isinstance(t, int):
            od.first_tist = t if od.first_tist is None else min(od.first_tist, t)
            od.newest_tist = t if od.newest_tist is None else max(od.newest_tist, t)
        st = str(e.get("status", "000"))
        if st[:1] in ("1", "2", "3"):
            od.ever_succeeded = True
        sha = e.get("sha256")
        if sha and e.get("size") and name in attempts:
            # An earlier copy of a body: a regular file here, or the regular file an
            # earlier link here points at (a URL shared with another record); a new
            # equal body links to that file, never to a link.
            target = e.get("link") or name
            if st != "304" and _is_regular(os.path.join(path, target)):
                od.by_sha.setdefault(sha, target)
        if st == "200" and (e.get("etag") or e.get("last_modified")) and name in attempts:
            od.last_200 = e
    for name in sorted(set(attempts) - noted):
        _recover(od, name, attempts[name])
    return od


def _recover(od: ObjectDir, name: str, parsed: tuple[int, str, str]) -> None:
    """Write the notes line a crash kept from being written."""
    full = os.path.join(od.path, name)
    st = os.lstat(full)
    link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
    size = os.path.getsize(full) if os.path.exists(full) else 0
    sha256 = store.sha256_file(full) if size and link is None else None
    entry = _entry(parsed[0], od.url, parsed[1], parsed[2], None, size, sha256, None, name, link,
                   None, "recovered: notes line written after a crash", 0.0)
    entry["recovered"] = True
    notes.append(os.path.join(od.path, notes.NOTES), entry)
    if sha256:
        od.by_sha.setdefault(sha256, name)
    od.recovered += 1


def _entry(tist, url, status, type_, declared, size, sha256, sha1, file, link, location,
           error, elapsed, **extra) -> dict[str, Any]:
    e = {"tist": tist, "url": url, "status": status, "type": type_, "declared_type": declared,
         "size": size, "sha256": sha256, "sha1": sha1, "file": file, "link": link,
         "location": location, "error": error, "elapsed": round(elapsed, 3)}
    e.update(extra)
    return e


def next_tist(od: ObjectDir, started: int) -> int:
    """The tist of a new attempt: when it started, moved on past any taken one.

    Also never before the newest attempt, so that ``ls`` order stays the
    order in which attempts were made even if the clock steps back.
    """
    t = started
    if od.tists:
        t = max(t, max(od.tists) + 1) if t <= max(od.tists) else t
    while t in od.tists:
        t += 1
    return t


@dataclass(frozen=True)
class Written:
    name: str
    link: str | None
    real: str  # path of the regular file that holds the body (may be name itself)
    entry: dict[str, Any]


def record(od: ObjectDir, res: Result, *, sync: bool = False, attempt: int = 1,
           link_to: str | None = None, same_as: str | None = None,
           keep_type: str | None = None) -> Written:
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
        t = started + step
        while t in od.tists:
            t += 1
        return f"{t}_{status}_{type_}"

    link = None
    if res.size and res.sha256 in od.by_sha and \
            _is_regular(os.path.join(od.path, od.by_sha[res.sha256])):
        link = od.by_sha[res.sha256]
    elif link_to is not None:
        link = os.path.relpath(link_to, od.path)
    if link is not None:
        if res.tmp_path:
            store.unlink_quiet(res.tmp_path)
        name = store.symlink_new(od.path, name_for, link)
        real = os.path.normpath(os.path.join(od.path, link))
    elif res.tmp_path:
        name = store.publish(res.tmp_path, od.path, name_for, sync)
        real = os.path.join(od.path, name)
        if res.size and res.sha256:
            od.by_sha.setdefault(res.sha256, name)
    else:
        name = store.write_new(od.path, name_for, b"", sync)
        real = os.path.join(od.path, name)
    tist = int(name.split("_", 1)[0])
    od.tists.add(tist)
    od.first_tist = tist if od.first_tist is None else min(od.first_tist, tist)
    od.newest_tist = tist if od.newest_tist is None else max(od.newest_tist, tist)
    if status[:1] in ("1", "2", "3"):
        od.ever_succeeded = True
    extra: dict[str, Any] = {"attempt": attempt}
    if same_as:
        extra["same_as"] = same_as
    if res.etag:
        extra["etag"] = res.etag
    if res.last_modified:
        extra["last_modified"] = res.last_modified
    if res.detail:
        extra["detail"] = res.detail[:500]
    entry = _entry(tist, od.url, status, type_, res.declared_type, res.size, res.sha256,
                   res.sha1, name, link, _redacted(res.location), res.error, res.elapsed, **extra)
    notes.append(os.path.join(od.path, notes.NOTES), entry)
    if status == "200" and (res.etag or res.last_modified):
        od.last_200 = entry
    return Written(name, link, real, entry)


def note_retry(od: ObjectDir, res: Result, attempt: int) -> None:
    """A transient failure that will be tried again: a notes line, no file."""
    if res.tmp_path:
        store.unlink_quiet(res.tmp_path)
    entry = _entry(int(res.started), od.url, res.status, res.type, res.declared_type, res.size,
                   res.sha256, res.sha1, None, None, _redacted(res.location), res.error,
                   res.elapsed, attempt=attempt, retried=True)
    if res.detail:
        entry["detail"] = res.detail[:500]
    notes.append(os.path.join(od.path, notes.NOTES), entry)


def note_event(od: ObjectDir, event: str, tist: int, **extra: Any) -> None:
    entry = {"event": event, "tist": tist, "url": od.url}
    entry.update(extra)
    notes.append(os.path.join(od.path, notes.NOTES), entry)


def real_file(od: ObjectDir, entry: dict[str, Any]) -> str | None:
    """The regular file holding the body an entry names (links resolved)."""
    name = entry.get("file")
    if not name:
        return None
    path = os.path.join(od.path, name)
    real = os.path.realpath(path)
    return real if _is_regular(real) else None


def _redacted(url: str | None) -> str | None:
    """A redirect target as the notes carry it: any password replaced by ``***``."""
    return urls.redact(url) if url else None


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False

