"""Walk the store and report every breach of the on-disk contract.

Like bagit-python's validation, every problem becomes a structured
:class:`Finding` (kind, path, detail, and for a checksum the expected and
found values) and the walk goes on; one :class:`Summary` joins them. Like
warcio, a fixity check has three outcomes per file: passed, failed, not
checked. Memory stays flat in the size of the store: one record directory
is looked at at a time (:func:`kiel.store.iter_record_dirs`), and nothing
is kept from one record to the next but counters.

What ``fixity`` covers (docs/tools.md): every regular attempt file is
re-hashed and compared with the ``sha256`` of the notes line that names it
(an empty file whose line has no sha256 but size 0 passes on its size).
A symbolic link is not hashed: it has no bytes of its own, and its target
is checked where it lives. A version is compared with a sha256 only when
the record's notes line that wrote it carries one (``version_sha256``);
otherwise it counts as not checked, and is at least parsed as XML and its
``id`` compared with the directory it sits in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from kiel import notes, readers, store
from kiel.errors import NotFound
from kiel.escape import escape, inside, within
from kiel.home import Home, Lock
from kiel.inflight import InFlight
from kiel.names import record_key, version_id
from kiel.notes import AttemptNote, ManifestRecord
from kiel.platforms.fixity import check_bundle, digest_file
from kiel.platforms.manifests import newest
from kiel.platforms.types import ManifestFile
from kiel.redist import record_path, repec_parts

BREACH = "breach"
WARNING = "warning"
REPAIRED = "repaired"

# Every kind verify can report, with its severity. Warnings and repairs do
# not make the exit status 1: a torn last notes line is what a crash is
# allowed to leave (docs/contract.md, Notes), and a removed temporary file is gone.
KINDS: dict[str, str] = {
    "bad-name": BREACH,  # a name the contract has no place for
    "not-regular": BREACH,  # a version, 00url, 00notes or attempt of the wrong file type
    "link-absolute": BREACH,
    "link-outside": BREACH,  # a relative link that leaves the store
    "link-dangling": BREACH,
    "link-chained": BREACH,  # a link to a link
    "link-not-attempt": BREACH,  # a link to something other than an attempt file
    "last-malformed": BREACH,
    "last-missing": WARNING,  # a record whose first renewal was cut short
    "gone-malformed": BREACH,
    "url-missing": BREACH,
    "url-mismatch": BREACH,  # escape(00url) is not the directory name
    "notes-unparseable": BREACH,
    "notes-torn": WARNING,
    "notes-missing-file": BREACH,  # a notes line names a file that is not there
    "notes-mismatch": BREACH,  # a notes line disagrees with the file it names
    "file-without-notes": BREACH,  # an attempt or version no notes line names
    "size-mismatch": BREACH,
    "fixity-failed": BREACH,
    "version-unparseable": BREACH,
    "version-misplaced": BREACH,  # its id belongs in another record directory
    "owner-collision": BREACH,  # a directory holds two records, or two URLs (issue 11)
    "tmp-leftover": BREACH,
    "tmp-removed": REPAIRED,
    "empty-record": WARNING,  # a record directory without any version
    "unreadable": BREACH,
    "hard-link": BREACH,
    # A file a running renewal is writing (kiel/inflight.py): named, never a breach.
    "in-flight": WARNING,  # a store file sharing its inode with another name (Kiel makes none)
    # Deposits (docs/datasets.md): a file the platform declared otherwise is
    # stored as fetched, so it is no breach of the store, but an operator
    # must hear of it; a stored deposit file that no longer hashes as noted is.
    "deposit-mismatch": WARNING,
    "deposit-fixity-failed": BREACH,
    "deposit-file-missing": BREACH,
}

# An escaped name, and a cut one ending in %~ and 16 hex digits (kiel/escape.py).
_ESCAPED_NAME = re.compile(r"^(?:[A-Za-z0-9\-_~]|%[0-9A-F]{2})(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*"
                           r"(?:%~[0-9a-f]{16})?$")
# Names of the directories one level below each directory above the records
# (docs/contract.md, The redist): archive and series in lower case, then records.
_LEVEL_NAMES: dict[tuple[str, int], re.Pattern[str]] = {
    ("RePEc", 1): re.compile(r"^[a-z0-9]+$"),
    ("RePEc", 2): re.compile(r"^[a-z0-9_-]+$"),
    ("RePEc", 3): _ESCAPED_NAME,
    ("other", 1): _ESCAPED_NAME,
}
_RECORD_FILES = {store.LAST, store.GONE, notes.NOTES}
# What a renewal leaves for a moment between two writes of a record it is
# renewing: findings of these kinds in such a record are "in-flight".
_IN_FLIGHT = {"file-without-notes", "url-missing", "empty-record", "last-missing"}
_MAX_VERSION_PARSE = 64 * 2**20
_OBJECT_FILES = {store.URL, notes.NOTES}


@dataclass(frozen=True)
class Finding:
    kind: str
    path: str  # relative to the store
    detail: str
    expected: str | None = None
    found: str | None = None

    @property
    def severity(self) -> str:
        return KINDS[self.kind]

    def __str__(self) -> str:
        return f"{self.severity} {self.kind}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class Summary:
    records: int = 0
    versions: int = 0
    objects: int = 0
    attempt_files: int = 0
    links: int = 0
    fixity_passed: int = 0
    fixity_failed: int = 0
    fixity_not_checked: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def breaches(self) -> int:
        return sum(n for k, n in self.by_kind.items() if KINDS[k] == BREACH)

    @property
    def warnings(self) -> int:
        return sum(n for k, n in self.by_kind.items() if KINDS[k] == WARNING)

    @property
    def repaired(self) -> int:
        return sum(n for k, n in self.by_kind.items() if KINDS[k] == REPAIRED)

    @property
    def clean(self) -> bool:
        return self.breaches == 0


class Verification:
    """Iterate to get the findings as the walk makes them; then read ``summary``."""

    def __init__(self, home_root: str, prefix: str | None = None,
                 fixity: bool = False, repair: bool = False):
        self.home_root = os.path.abspath(home_root)
        self.store_root = readers.store_root(self.home_root)
        self.given_prefix = prefix
        self.in_flight = InFlight(Home(self.home_root).var)
        self.prefix = prefix_path(prefix) if prefix else None
        self.fixity = fixity
        self.repair = repair
        self._counts: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()
        self._done = False
        self._started = False

    @property
    def summary(self) -> Summary:
        if not self._done:
            raise RuntimeError("the verification has not run to its end")
        return Summary(by_kind=dict(sorted(self._kinds.items())), **self._counts)

    def __iter__(self) -> Iterator[Finding]:
        if self._started:
            raise RuntimeError("a verification runs once; call verify() again")
        self._started = True
        # A renewal's temporary file is a leftover only once no renewal runs:
        # repair takes the renewal lock (LockHeld, exit 75, if one runs).
        lock = Lock(Home(self.home_root)).acquire() if self.repair else None
        try:
            for f in self._walk():
                self._kinds[f.kind] += 1
                yield f
        finally:
            if lock is not None:
                lock.release()
        self._done = True
        if self.prefix and not self._counts["records"]:
            raise NotFound(nothing_matches(self.given_prefix or "", self.prefix))

    def _walk(self) -> Iterator[Finding]:
        if not self.prefix:
            yield from self._level(self.store_root, None)
        for top, depth in (("RePEc", 3), ("other", 1)):
            path = os.path.join(self.store_root, top)
            if self._wanted(path) and _real_dir(path):
                yield from self._below(path, top, 1, depth)

    def _wanted(self, path: str) -> bool:
        rel = os.path.relpath(path, self.store_root)
        return not self.prefix or rel.startswith(self.prefix) or self.prefix.startswith(rel + "/")

    def _below(self, path: str, top: str, level: int, depth: int) -> Iterator[Finding]:
        """The directory ``path`` above the records (``level`` names below
        ``store/``), then what it holds, in sorted order: every level is
        checked for files, links and names the redist never makes, also one
        that holds no record (a file planted where a series belongs)."""
        yield from self._level(path, _LEVEL_NAMES[(top, level)])
        for name in _subdirs(path):
            child = os.path.join(path, name)
            if not self._wanted(child):
                continue
            if level == depth:
                yield from _RecordCheck(self, child).run()
            else:
                yield from self._below(child, top, level + 1, depth)

    def _level(self, path: str, names: re.Pattern[str] | None) -> Iterator[Finding]:
        rc = _RecordCheck(self, path)
        try:
            it = os.scandir(path)
        except OSError as err:
            yield rc.finding("unreadable", path, f"cannot list: {err.strerror}")
            return
        # Only the findings are kept, sorted so that the output is the same
        # from run to run; the names of a level may be millions.
        out: list[Finding] = []
        with it:
            for e in it:
                if store.is_tmp(e.name):
                    out.extend(rc.tmp(e.path))
                elif e.is_symlink():
                    out.append(rc.finding("bad-name", e.path, "a symbolic link where only real "
                                          "directories belong", found=os.readlink(e.path)))
                elif not e.is_dir(follow_symlinks=False):
                    # kiel renew skips (and reports) a record whose directory this is
                    where = "a record directory" if names is _ESCAPED_NAME else "a directory"
                    out.append(rc.finding("bad-name", e.path, f"a file where {where} belongs"))
                elif names is None and e.name not in ("RePEc", "other"):
                    out.append(rc.finding("bad-name", e.path,
                                          "store/ holds only RePEc/ and other/"))
                elif names is not None and not names.match(e.name):
                    out.append(rc.finding("bad-name", e.path,
                                          "not a name the redist makes here"))
        yield from sorted(out, key=lambda f: f.path)

    def count(self, what: str, n: int = 1) -> None:
        self._counts[what] += n


def verify(home_root: str, prefix: str | None = None, fixity: bool = False,
           repair: bool = False) -> Verification:
    """Check the store of ``home_root``; iterate the result for findings."""
    return Verification(home_root, prefix, fixity, repair)


def nothing_matches(prefix: str, path: str) -> str:
    """The message for a PREFIX under which the store holds no record."""
    return (f"no record in the store matches {prefix!r} (no record directory under "
            f"store/{path}): give a record id prefix such as RePEc:aaa or a store path "
            "such as RePEc/aaa")


def prefix_path(prefix: str) -> str:
    """A store-relative path prefix for a record id prefix or a path.

    ``RePEc:eee`` -> ``RePEc/eee``; ``RePEc:eee:wpaper:1`` ->
    ``RePEc/eee/wpaper/1`` (which also takes ``...:10``, as the id prefix
    does); ``RePEc/eee`` and ``other/...`` are taken as paths.
    """
    p = prefix.strip()
    if p in ("RePEc", "other") or p.startswith(("RePEc/", "other/")):
        return p
    low = p.lower()
    for head in ("info:lib/repec:", "repec:"):
        if low.startswith(head):
            if repec_parts(p):
                return record_path(p)
            parts = [x.lower() for x in p[len(head):].split(":", 2)]
            # A trailing ':' closes the archive or series: RePEc:eee: is not RePEc:eeex.
            return "/".join(["RePEc"] + [x for x in parts if x]) + ("/" if p.endswith(":") else "")
    return "other/" + escape(p)


class _RecordCheck:
    def __init__(self, v: Verification, record_dir: str):
        self.v = v
        self.dir = record_dir
        self.rel = os.path.relpath(record_dir, v.store_root)
        self.noted_ids: dict[str, int] = {}  # record ids the notes name -> first line

    def finding(self, kind: str, path: str, detail: str, expected: str | None = None,
                found: str | None = None) -> Finding:
        if kind in _IN_FLIGHT and self.v.in_flight.holds(self.rel):
            kind, detail = "in-flight", f"{detail}: the record is being renewed right now"
        return Finding(kind, os.path.relpath(path, self.v.store_root), detail, expected, found)

    def run(self) -> Iterator[Finding]:
        v = self.v
        v.count("records")
        try:
            entries = sorted(os.scandir(self.dir), key=lambda e: e.name)
        except OSError as err:
            yield self.finding("unreadable", self.dir, f"cannot list: {err.strerror}")
            return
        version_names: list[str] = []
        object_dirs: list[str] = []
        for e in entries:
            if store.is_tmp(e.name):
                yield from self.tmp(e.path)
            elif store.VERSION_RE.match(e.name):
                version_names.append(e.name)
                if e.is_symlink():
                    yield from self.link(e.path, self.dir)
                    yield self.finding("not-regular", e.path, "a version is a symbolic link")
                elif not e.is_file(follow_symlinks=False):
                    yield self.finding("not-regular", e.path, "a version is not a regular file")
            elif e.name in _RECORD_FILES:
                if e.is_symlink():
                    yield from self.link(e.path, self.dir)
                if not e.is_file(follow_symlinks=False):
                    yield self.finding("not-regular", e.path, f"{e.name} is not a regular file")
            elif e.is_dir(follow_symlinks=False) and _ESCAPED_NAME.match(e.name):
                object_dirs.append(e.path)
            elif e.is_symlink():
                yield from self.link(e.path, self.dir)
                yield self.finding("bad-name", e.path, "unexpected symbolic link in a record "
                                   "directory")
            else:
                yield self.finding("bad-name", e.path, "not a version (<tist>.amf.xml), 00last, "
                                   "00gone, 00notes or object directory (escaped URL)")
        yield from self.shared_inodes(entries)
        v.count("versions", len(version_names))
        if not version_names:
            yield self.finding("empty-record", self.dir, "record directory without a version")
        yield from self.last()
        yield from self.gone()
        yield from self.record_notes(version_names)
        yield from self.deposits()
        yield from self.owner(version_names)
        for d in object_dirs:
            yield from _ObjectCheck(self, d).run()

    def shared_inodes(self, entries: list[os.DirEntry[str]]) -> Iterator[Finding]:
        """Regular files with more than one name: Kiel never hard-links a
        store file, so the other name is someone else's (a file outside
        the store, another record's notes), and an append would reach it.
        A file named a moment ago still shares its inode with the temporary
        name it was written under (kiel.store.publish): not a breach."""
        in_flight = set()
        for e in entries:
            if store.is_tmp(e.name):
                try:
                    in_flight.add(e.inode())
                except OSError:
                    pass
        for e in entries:
            if store.is_tmp(e.name) or not e.is_file(follow_symlinks=False):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_nlink > 1 and st.st_ino not in in_flight:
                yield self.finding("hard-link", e.path, f"{st.st_nlink} names share this file "
                                   f"(inode {st.st_ino}): a hard link Kiel never makes",
                                   found=str(st.st_nlink))

    def tmp(self, path: str) -> Iterator[Finding]:
        if store.tmp_owner(os.path.basename(path)) is not None \
                and not store.tmp_abandoned(path):
            # Named by a process that still runs (on this host), or by one
            # of another host less than a day ago: a write under way.
            yield self.finding("in-flight", path, "temporary file of a running process")
            return
        # A directory under a temporary name is a new object directory a crash
        # left half-built (it is renamed into place whole): removed the same way.
        if self.v.repair:
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                yield self.finding("tmp-removed", path, "leftover temporary file removed")
                return
            except OSError as e:
                yield self.finding("tmp-leftover", path, f"cannot remove: {e.strerror}")
                return
        yield self.finding("tmp-leftover", path, "leftover temporary file of an interrupted "
                           "write (kiel verify --repair removes it)")

    def last(self) -> Iterator[Finding]:
        path = os.path.join(self.dir, store.LAST)
        raw = _read(path, 64)
        if raw is None:
            yield self.finding("last-missing", path, "no 00last: the record was never "
                               "completely renewed")
            return
        m = re.fullmatch(rb"(\d+) (\d+)\n", raw)
        if not m:
            yield self.finding("last-malformed", path, "expected '<start tist> <end tist>\\n'",
                               found=_shown(raw))
        elif int(m.group(1)) > int(m.group(2)):
            yield self.finding("last-malformed", path, "start is after end",
                               found=raw.decode().strip())

    def gone(self) -> Iterator[Finding]:
        path = os.path.join(self.dir, store.GONE)
        raw = _read(path, 64)
        if raw is not None and not re.fullmatch(rb"\d+\n", raw):
            yield self.finding("gone-malformed", path, "expected '<tist>\\n'",
                               found=_shown(raw))

    def record_notes(self, version_names: list[str]) -> Iterator[Finding]:
        path = os.path.join(self.dir, notes.NOTES)
        written: dict[str, str | None] = {}  # version name -> its sha256 if noted
        current: set[str] = set()
        lines = _notes_lines(path)
        for line, entry, torn in lines:
            yield from _bad_line(self, path, line, entry, torn)
            if entry is None:
                continue
            said = _record_line(entry)
            if said is None:
                continue  # neither a renewal nor an event: names nothing
            name, sha, cur, rid = said
            if name is not None:
                written[name] = sha
            if cur is not None:
                current.add(cur)
            if rid:
                self.noted_ids.setdefault(rid, line.number)
        for name in sorted(set(written) | current):
            if not store.VERSION_RE.match(name) or name not in version_names:
                yield self.finding("notes-missing-file", path,
                                   f"names version {name!r}, which is not there")
        for name in version_names:
            full = os.path.join(self.dir, name)
            # A version a crash kept from its renewal line is named by the
            # next renewal as "current": named, so not a breach.
            if name not in written and name not in current:
                yield self.finding("file-without-notes", full, "no line of 00notes names "
                                   "this version")
            if self.v.fixity and os.path.isfile(full) and not os.path.islink(full):
                yield from self.version_fixity(full, written.get(name))

    def deposits(self) -> Iterator[Finding]:
        """Deposit files the newest manifest note of each deposit marks
        ``mismatch``; with fixity, each stored deposit file re-hashed with
        the algorithms its platform declared (md5 included) and compared with
        the declaration, or, for a file that never matched it, with what
        Kiel found when it was fetched."""

        notes_path = os.path.join(self.dir, notes.NOTES)
        for rec in newest(readers.manifests(self.dir, readers.Problems())):
            if self.v.fixity and rec.bundle_file:
                yield from self.bundle_fixity(rec, rec.bundle_file, notes_path)
            for f in rec.files:
                where = f"{rec.platform} {rec.deposit_id} {f.path}"
                if f.status == "mismatch":
                    alg = f.algorithm or "size"
                    exp = str(f.size) if alg == "size" else f.declared.get(alg)
                    got = str(f.found_size) if alg == "size" else f.found.get(alg)
                    yield self.finding("deposit-mismatch", notes_path, f"{where}: {alg} "
                                       "differs from the platform's; stored as fetched",
                                       expected=exp, found=got)
                if not self.v.fixity or f.file is None:
                    continue
                full = yield from self.stored_file(f.file, notes_path, where)
                if full is None:
                    self.v.count("fixity_not_checked")
                    continue
                expected = f.declared if f.status == "ok" else f.found
                if not expected:
                    self.v.count("fixity_not_checked")
                    continue
                try:
                    _, found = digest_file(full, expected)
                except OSError as e:
                    yield self.finding("unreadable", full, f"cannot read: {e.strerror}")
                    continue
                bad = [a for a in expected if found.get(a) != expected[a].lower()]
                if bad:
                    self.v.count("fixity_failed")
                    yield self.finding("deposit-fixity-failed", full, f"{where}: {bad[0]} "
                                       "differs from the manifest note", expected=expected[bad[0]],
                                       found=found.get(bad[0]))
                else:
                    self.v.count("fixity_passed")

    def stored_file(self, name: str, notes_path: str,
                    where: str) -> Generator[Finding, None, str | None]:
        """The path to hash for the deposit file a manifest note names: a
        regular file of this record, or a link to one inside the store.
        Anything else (missing, a link leaving the store, a link to a
        device, a FIFO or ``/proc/kcore``) is reported and never read."""
        full = os.path.join(self.dir, name)
        if not inside(self.dir, os.path.dirname(full)) or not os.path.lexists(full):
            yield self.finding("deposit-file-missing", notes_path,
                               f"{where}: the note names {name}, which is not there")
            return None
        real = os.path.realpath(full)
        if not within(os.path.realpath(self.v.store_root), real):
            target = os.readlink(full) if os.path.islink(full) else real
            yield self.finding("link-outside", full, f"{where}: leads to {target}, outside "
                               "the store: not hashed", found=target)
            return None
        try:
            mode = os.stat(real).st_mode
        except OSError as e:
            yield self.finding("deposit-file-missing", notes_path,
                               f"{where}: {name}: {e.strerror}")
            return None
        if not stat.S_ISREG(mode):
            yield self.finding("not-regular", full, f"{where}: {notes.kind_of(mode)}, not a "
                               "regular file: not hashed")
            return None
        return real

    def bundle_fixity(self, rec: ManifestRecord, bundle_file: str,
                      notes_path: str) -> Iterator[Finding]:
        """The files inside a stored bundle, checked again against what the
        platform declared; a file that checked ``ok`` when fetched and does
        not now is a breach."""

        where = f"{rec.platform} {rec.deposit_id} bundle"
        full = yield from self.stored_file(bundle_file, notes_path, where)
        if full is None:
            self.v.count("fixity_not_checked")
            return
        was_ok = [f for f in rec.files if f.status == "ok"]
        files = [ManifestFile(f.path, f.size, f.url or "", md5=f.declared.get("md5"),
                              sha1=f.declared.get("sha1"), sha256=f.declared.get("sha256"))
                 for f in was_ok]
        for path, out in sorted(check_bundle(full, files).items()):
            if out.verdict is not None and out.verdict.status == "ok":
                self.v.count("fixity_passed")
                continue
            self.v.count("fixity_failed")
            v = out.verdict
            yield self.finding("deposit-fixity-failed", full, f"{where}: {path}: "
                               + (f"{v.algorithm} differs from the platform's"
                                  if v is not None and v.status == "mismatch"
                                  else out.error or "no longer checks"),
                               expected=v.expected if v else None, found=v.found if v else None)

    def owner(self, version_names: list[str]) -> Iterator[Finding]:
        """A record directory names one record: its newest version's id and
        every id of its notes are the same record (docs/contract.md, Objects)."""
        ids: list[tuple[str, str]] = []  # (id, where)
        if version_names:
            newest = max(version_names, key=lambda n: int(n.split(".", 1)[0]))
            rid = version_id(os.path.join(self.dir, newest))
            if rid is not None:
                ids.append((rid, newest))
        ids += [(rid, f"{notes.NOTES} line {n}") for rid, n in self.noted_ids.items()]
        if len({record_key(rid) for rid, _ in ids}) > 1:
            shown = "; ".join(f"{rid!r} ({where})" for rid, where in ids[:5])
            yield self.finding("owner-collision", self.dir, "the directory holds more than "
                               f"one record: {shown}")

    def version_fixity(self, full: str, expected: str | None) -> Iterator[Finding]:
        try:
            # A record is kilobytes; a planted giant is hashed, not loaded.
            with open(full, "rb") as f:
                data = f.read(_MAX_VERSION_PARSE + 1)
            found = store.sha256_file(full) if len(data) > _MAX_VERSION_PARSE \
                else hashlib.sha256(data).hexdigest()
        except OSError as e:
            yield self.finding("unreadable", full, f"cannot read: {e.strerror}")
            return
        if expected:
            if found != expected:
                self.v.count("fixity_failed")
                yield self.finding("fixity-failed", full, "sha256 differs from the notes",
                                   expected=expected, found=found)
            else:
                self.v.count("fixity_passed")
        else:
            self.v.count("fixity_not_checked")
        if len(data) > _MAX_VERSION_PARSE:
            yield self.finding("version-unparseable", full, "over "
                               f"{_MAX_VERSION_PARSE // 2**20} MiB: not an AMF record")
            return
        # lxml and the record reader are loaded only when a version is parsed
        # (not a cycle: kiel.records imports nothing of verify).
        from lxml import etree

        from kiel.records import parse_stored

        try:
            text = parse_stored(data)
        except etree.XMLSyntaxError as e:
            yield self.finding("version-unparseable", full, f"not well-formed XML: {e.msg}")
            return
        rid = text.get("id") if text is not None else None
        if rid is None:
            yield self.finding("version-unparseable", full, "no text with an id")
        elif record_path(rid) != self.rel.replace(os.sep, "/"):
            yield self.finding("version-misplaced", full,
                               f"id {rid!r} belongs in {record_path(rid)}")

    def link(self, path: str, directory: str) -> Iterator[Finding]:
        """Check one symbolic link; the contract allows only relative links
        to a regular attempt file inside the store (docs/contract.md, Objects)."""
        target = os.readlink(path)
        if os.path.isabs(target):
            yield self.finding("link-absolute", path, f"absolute link to {target}",
                               found=target)
            return
        lexical = os.path.normpath(os.path.join(directory, target))
        root = self.v.store_root
        if not (lexical.startswith(root + os.sep)) or \
                (os.path.lexists(lexical) and not inside(root, lexical)):
            yield self.finding("link-outside", path, f"link to {target} leaves the store",
                               found=target)
            return
        if not os.path.lexists(lexical):
            yield self.finding("link-dangling", path, f"link to {target}, which is not there",
                               found=target)
        elif os.path.islink(lexical):
            yield self.finding("link-chained", path, f"link to {target}, itself a link to "
                               f"{os.readlink(lexical)}", found=target)
        elif not os.path.isfile(lexical) or store.parse_attempt(os.path.basename(lexical)) \
                is None:
            yield self.finding("link-not-attempt", path,
                               f"link to {target}, which is not an attempt file", found=target)


class _ObjectCheck:
    def __init__(self, rc: _RecordCheck, obj_dir: str):
        self.rc = rc
        self.v = rc.v
        self.dir = obj_dir
        self.noted_urls: dict[str, int] = {}  # URLs the notes name -> first line

    def owner(self, url: str) -> Iterator[Finding]:
        """An object directory names one URL: every notes line is about its 00url."""
        others = [(u, n) for u, n in self.noted_urls.items() if u != url]
        if others:
            path = os.path.join(self.dir, notes.NOTES)
            shown = "; ".join(f"{u!r} (line {n})" for u, n in others[:5])
            yield self.rc.finding("owner-collision", path, f"00url is {url!r} but the notes "
                                  f"name other URLs: {shown}", expected=url, found=others[0][0])

    def run(self) -> Iterator[Finding]:
        rc, v = self.rc, self.v
        v.count("objects")
        try:
            entries = sorted(os.scandir(self.dir), key=lambda e: e.name)
        except OSError as err:
            yield rc.finding("unreadable", self.dir, f"cannot list: {err.strerror}")
            return
        attempts: dict[str, os.DirEntry[str]] = {}
        for e in entries:
            if store.is_tmp(e.name):
                yield from rc.tmp(e.path)
            elif store.parse_attempt(e.name):
                attempts[e.name] = e
                if e.is_symlink():
                    v.count("links")
                    yield from rc.link(e.path, self.dir)
                elif not e.is_file(follow_symlinks=False):
                    yield rc.finding("not-regular", e.path, "an attempt is neither a regular "
                                     "file nor a symbolic link")
            elif e.name in _OBJECT_FILES:
                if not e.is_file(follow_symlinks=False):
                    yield rc.finding("not-regular", e.path, f"{e.name} is not a regular file")
            else:
                yield rc.finding("bad-name", e.path, "not an attempt (<tist>_<status>_<type>), "
                                 "00url or 00notes")
        yield from rc.shared_inodes(entries)
        v.count("attempt_files", len(attempts))
        url = yield from self.url()
        yield from self.notes(attempts, url)
        if url is not None and escape(url) == os.path.basename(self.dir):
            yield from self.owner(url)  # else url-mismatch said it

    def url(self) -> Generator[Finding, None, str | None]:
        rc = self.rc
        path = os.path.join(self.dir, store.URL)
        raw = _read(path, 1 << 16)
        if raw is None:
            yield rc.finding("url-missing", path, "object directory without 00url")
            return None
        try:
            text = raw.decode("utf-8", "surrogateescape")
        except ValueError:  # pragma: no cover - surrogateescape always decodes
            text = ""
        if not text.endswith("\n") or "\n" in text[:-1]:
            yield rc.finding("url-mismatch", path, "00url is not one line ending in a newline",
                             found=text[:200].encode("unicode_escape").decode("ascii"))
            return text.rstrip("\n")
        url = text[:-1]
        name = os.path.basename(self.dir)
        if escape(url) != name:
            yield rc.finding("url-mismatch", path, "escape(00url) is not the directory name",
                             expected=name, found=escape(url))
        return url

    def notes(self, attempts: dict[str, os.DirEntry[str]], url: str | None) -> Iterator[Finding]:
        rc, v = self.rc, self.v
        path = os.path.join(self.dir, notes.NOTES)
        noted: set[str] = set()
        for line, entry, torn in _notes_lines(path):
            yield from _bad_line(rc, path, line, entry, torn)
            if entry is None:
                continue
            event = notes.parse_event(entry)
            if event is not None:
                # given-up and revived name the object's URL too.
                u = event.extra.get("url")
                if isinstance(u, str):
                    self.noted_urls.setdefault(u, line.number)
                continue
            a = _attempt(entry)
            if a is None:
                continue  # neither an attempt nor an event: names no file
            if a.url:
                self.noted_urls.setdefault(a.url, line.number)
            # The raw value, for a name that is not text: the line names a
            # file all the same, one that cannot be there.
            name = a.file if a.file is not None else entry.get("file")
            if name is None:
                continue
            if not isinstance(name, str) or name not in attempts:
                # A name that is not an attempt, or that is not in this
                # directory, is missing here even if it exists elsewhere.
                yield rc.finding("notes-missing-file", path,
                                 f"line {line.number} names {name!r}, which is not there")
                continue
            noted.add(name)
            yield from self.attempt(attempts[name], a, entry, line.number)
        for name, e in attempts.items():
            if name not in noted:
                yield rc.finding("file-without-notes", e.path, "no line of 00notes names "
                                 "this attempt file")
                if v.fixity and not e.is_symlink():
                    v.count("fixity_not_checked")

    def attempt(self, e: os.DirEntry[str], a: AttemptNote, entry: dict[str, Any],
                number: int) -> Iterator[Finding]:
        """The attempt file ``e`` against what line ``number`` says of it.

        The meaning comes from the typed line ``a``; the raw ``entry`` only
        tells which fields the line left out (null or missing says nothing,
        where the typed line holds a default)."""
        rc, v = self.rc, self.v
        is_link = e.is_symlink()
        parsed = store.parse_attempt(e.name)
        assert parsed is not None  # run() keeps only the names of attempts
        _, status, mtype = parsed
        said_status = a.status if _says(entry, "status") else None
        said_type = a.type if _says(entry, "type") else None
        if said_status not in (None, status) or said_type not in (None, mtype):
            yield rc.finding("notes-mismatch", e.path, f"line {number} says status "
                             f"{said_status} type {said_type}")
        # A link that is not text still says something the disk contradicts.
        link = a.link if a.link is not None else entry.get("link")
        if is_link and link is not None and link != os.readlink(e.path):
            yield rc.finding("notes-mismatch", e.path, f"line {number} says link {link}",
                             expected=str(link), found=os.readlink(e.path))
        elif not is_link and link is not None:
            yield rc.finding("notes-mismatch", e.path, f"line {number} says link {link}, "
                             "the file is a regular file")
        if is_link:
            return  # no bytes of its own; the target is checked where it lives
        if not e.is_file(follow_symlinks=False):
            return  # reported as not-regular; reading a fifo would block forever
        size = a.size if _says(entry, "size") else None
        try:
            actual = e.stat(follow_symlinks=False).st_size
        except OSError as err:
            yield rc.finding("unreadable", e.path, f"cannot stat: {err.strerror}")
            return
        if isinstance(size, int) and size != actual:
            yield rc.finding("size-mismatch", e.path, "size differs from the notes",
                             expected=str(size), found=str(actual))
        if not v.fixity:
            return
        expected = a.sha256
        if expected is None:
            # An empty body is checked whole by its size; anything else
            # without a sha256 cannot be checked.
            v.count("fixity_passed" if size == 0 and actual == 0 else "fixity_not_checked")
            return
        try:
            found = store.sha256_file(e.path)
        except OSError as err:
            v.count("fixity_not_checked")
            yield rc.finding("unreadable", e.path, f"cannot read: {err.strerror}")
            return
        if found == expected:
            v.count("fixity_passed")
        else:
            v.count("fixity_failed")
            yield rc.finding("fixity-failed", e.path, "sha256 differs from the notes",
                             expected=expected, found=found)


def _attempt(entry: dict[str, Any]) -> AttemptNote | None:
    """The attempt a line of an object's notes records.

    Kiel writes no attempt without its status, but a damaged or hand-made
    line may leave it out and still name its file: it is read with the
    status unstated (:func:`_says` tells), so the file counts as noted and
    is checked against what the line does say."""
    a = notes.parse_attempt(entry)
    if a is None and "event" not in entry and "status" not in entry:
        a = notes.parse_attempt(dict(entry, status=None))
    return a


def _says(entry: dict[str, Any], key: str) -> bool:
    """The line gives ``key`` a value (a missing or null field says nothing)."""
    return entry.get(key) is not None


def _record_line(entry: dict[str, Any]
                 ) -> tuple[str | None, str | None, str | None, str] | None:
    """``(version, version_sha256, current, id)`` a record's notes line
    names: a renewal, or an event (``adopted`` names the version a crash
    kept from its renewal line); None for a line of neither kind."""
    r = notes.parse_renewal(entry)
    if r is not None:
        return r.version, r.version_sha256 if r.version else None, r.current, r.id
    ev = notes.parse_event(entry)
    if ev is None:
        return None
    x = ev.extra
    name, sha, cur, rid = x.get("version"), x.get("version_sha256"), x.get("current"), x.get("id")
    if not isinstance(name, str):
        name, sha = None, None
    return (name, sha if isinstance(sha, str) else None, cur if isinstance(cur, str) else None,
            rid if isinstance(rid, str) else "")


def _notes_lines(
    path: str,
) -> Iterator[tuple[notes.NotesLine, dict[str, Any] | None, bool]]:
    """``(line, entry, torn)``; a torn last line that happens to be whole
    JSON still counts for the files it names (only its newline is lost).
    A 00notes that is not a regular file has no lines here: the walk
    reported it as not-regular (and its link) when it listed the directory."""
    for line in readers.lines(path, readers.Problems()):
        entry = line.entry
        if line.torn and not line.too_long:
            try:
                value = json.loads(line.raw)
                entry = value if isinstance(value, dict) else None
            except ValueError:
                entry = None
        yield line, entry, line.torn


def _bad_line(rc: _RecordCheck, path: str, line: notes.NotesLine,
              entry: dict[str, Any] | None, torn: bool) -> Iterator[Finding]:
    if line.too_long:
        yield rc.finding("notes-unparseable", path, f"line {line.number} is longer than "
                         f"{notes.MAX_LINE // 2**20} MiB: skipped unread",
                         found=_shown(line.raw))
    elif torn:
        yield rc.finding("notes-torn", path, f"line {line.number} is torn (no newline): a "
                         "write was interrupted; the next append ends it")
    elif entry is None and _torn_then_ended(line.raw):
        # Kiel writes each line whole, starting '{"'; one that starts so and does
        # not parse was cut by a crash and ended by the next append (docs/contract.md, Notes).
        yield rc.finding("notes-torn", path, f"line {line.number} was torn by a crash and "
                         "ended by a later append; readers skip it")
    elif entry is None:
        yield rc.finding("notes-unparseable", path, f"line {line.number} is not a JSON object",
                         found=line.raw[:80].decode("utf-8", "replace"))


def _torn_then_ended(raw: bytes) -> bool:
    if not raw.startswith(b'{"') or not raw.endswith(b"\n"):
        return False
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


def _shown(raw: bytes) -> str:
    """A marker's bytes as one printable line: a newline shows as \\n."""
    return raw[:40].decode("utf-8", "replace").encode("unicode_escape").decode("ascii")


def _real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _subdirs(path: str) -> list[str]:
    """The real directories in ``path`` (no links, no temporary ones), sorted,
    as :func:`kiel.store.iter_record_dirs` walks them."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it
                          if e.is_dir(follow_symlinks=False) and not store.is_tmp(e.name))
    except OSError:
        return []


def _read(path: str, limit: int) -> bytes | None:
    """The start of a small file; None when missing or not a regular file
    (a FIFO or a link planted as ``00last``, reported as not-regular by the
    walk, is never opened)."""
    return readers.small(path, limit, readers.Problems())
