"""The walk of ``kiel export``: the record directories a selection names,
each turned into WARC records (:mod:`kiel.export.mapping`) and written to
its output (:mod:`kiel.export.output`), one record directory at a time."""

from __future__ import annotations

import os
import stat
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from kiel import __version__, notes, store
from kiel.escape import inside
from kiel.export import mapping
from kiel.export.output import Package, WarcFile
from kiel.notes import AttemptNote
from kiel.platforms.manifests import read_manifests
from kiel.tist import iso

MAX_PROBLEMS = 1000  # kept in the summary; the count goes on
PAGE_TYPES = ("text-html", "application-xhtml+xml", "application-pdf")


@dataclass(frozen=True)
class Selection:
    """What an export takes: record id prefixes (none: the whole store), and
    the attempts and versions whose tist is in ``[since, before)``."""

    prefixes: tuple[str, ...] = ()
    since: int | None = None
    before: int | None = None

    def takes(self, tist: int) -> bool:
        return (self.since is None or tist >= self.since) and \
            (self.before is None or tist < self.before)


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the store
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


def record_dirs(store_root: str, prefixes: tuple[str, ...]) -> Iterator[str]:
    """The record directories the prefixes name, each once, in store order."""
    from kiel.verify import prefix_path

    if not prefixes:
        yield from store.iter_record_dirs(store_root)
        return
    kept: list[str] = []
    for p in sorted({prefix_path(p) for p in prefixes}):
        # A prefix that extends a kept one names nothing more; the rest are disjoint.
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    for p in kept:
        yield from store.iter_record_dirs(store_root, p)


def _read_url(obj_dir: str) -> str | None:
    try:
        raw = notes.read_regular(os.path.join(obj_dir, store.URL), 65536)
    except OSError:
        return None
    text = raw.decode("utf-8", "replace").rstrip("\n")
    return text or None


def _media_type(token: str, declared: str | None) -> str:
    """A type token of a file name back to a media type (its first ``-``)."""
    if declared:
        return declared
    if token == "none" or "-" not in token:
        return "application/octet-stream"
    major, minor = token.split("-", 1)
    return f"{major}/{minor}"


class Walk:
    def __init__(self, store_root: str, selection: Selection, warc: WarcFile,
                 package: Package | None):
        self.store_root = store_root
        self.sel = selection
        self.warc = warc
        self.package = package
        self.build = mapping.Builder()
        self.counts: dict[str, int] = dict.fromkeys(
            ("records", "versions", "responses", "redirects", "revisits", "metadata",
             "no_answer", "not_written", "problems"), 0)
        self.problems: list[Problem] = []

    def problem(self, path: str, detail: str) -> None:
        self.counts["problems"] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(os.path.relpath(path, self.store_root), detail))

    def write(self, record: object) -> None:
        offset, length = self.warc.write(record)
        if self.package is not None:
            self.package.add(record, offset, length)

    def warcinfo(self, home_root: str, warc_name: str) -> None:
        sel = self.sel
        fields = [("software", f"Kiel {__version__}"), ("format", "WARC File Format 1.1"),
                  ("conformsTo", "https://iipc.github.io/warc-specifications/"
                                 "specifications/warc-format/warc-1.1/"),
                  ("home", os.path.abspath(home_root)),
                  ("selection-prefixes", " ".join(sel.prefixes) or "(the whole store)"),
                  ("selection-from", iso(sel.since) if sel.since is not None else "(any time)"),
                  ("selection-until", iso(sel.before - 1) if sel.before is not None
                   else "(any time)"),
                  ("description", "A Kiel store: record versions, every attempt at their "
                                  "objects with the header fields as received "
                                  "(docs/export.md)")]
        self.write(self.build.warcinfo(warc_name, fields))

    # -- one record directory ------------------------------------------------------

    def record(self, record_dir: str) -> None:
        self.counts["records"] += 1
        try:
            names = sorted(os.listdir(record_dir))
        except OSError as e:
            self.problem(record_dir, f"cannot list: {e.strerror or e}")
            return
        rid = _record_id(record_dir, self.store_root)
        uri = mapping.record_uri(rid)
        versions = store.versions(record_dir)
        for tist, name in versions:
            if self.sel.takes(tist):
                self._version(record_dir, name, tist, uri)
        deposits = _deposits(record_dir)
        ctx = _RecordContext(rid, uri, [t for t, _ in versions], deposits)
        for name in names:
            full = os.path.join(record_dir, name)
            if store.is_tmp(name) or os.path.islink(full) or not os.path.isdir(full):
                continue
            self._object(full, ctx)

    def _version(self, record_dir: str, name: str, tist: int, uri: str) -> None:
        path = os.path.join(record_dir, name)
        if not stat.S_ISREG(os.lstat(path).st_mode):
            self.problem(path, "a version that is not a regular file: not exported")
            return
        d = mapping.digests(b"", path)
        rel = mapping.store_rel(self.store_root, path)
        with open(path, "rb") as body:
            self.write(self.build.resource(uri, tist, mapping.record_id_for("version", rel),
                                           "application/xml", body, d))
        self.counts["versions"] += 1

    # -- one object directory ------------------------------------------------------

    def _object(self, obj_dir: str, ctx: _RecordContext) -> None:
        attempts = [a for a in map(notes.parse_attempt, _entries(obj_dir)) if a is not None]
        if not attempts:
            return
        url = _read_url(obj_dir) or attempts[-1].url
        by_file = {a.file: a for a in attempts if a.file}
        no_answer: list[AttemptNote] = []
        page: AttemptNote | None = None
        for a in attempts:
            if not self.sel.takes(a.tist):
                continue
            if a.status.startswith("0"):
                no_answer.append(a)
                continue
            if a.file is None:
                self.counts["not_written"] += 1
                continue
            path = os.path.join(obj_dir, a.file)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                self.problem(path, "named by the notes but missing: not exported")
                continue
            ftp = url.lower().startswith("ftp://")
            if stat.S_ISLNK(mode) and ftp:
                # An FTP answer has no HTTP block for a revisit to carry:
                # the body is written again, as the resource it is.
                target = self._link_target(obj_dir, path)
                written = self._response(url, a, path) if target else None
            elif stat.S_ISLNK(mode):
                written = self._revisit(obj_dir, url, a, path, by_file)
            elif stat.S_ISREG(mode):
                written = self._response(url, a, path)
            else:
                self.problem(path, "not a regular file nor a link: not exported")
                continue
            if written is None:
                continue
            self._link(url, a, path, written, ctx)
            if a.status == "200" and a.type in PAGE_TYPES:
                page = a
        if no_answer:
            self._no_answer(obj_dir, url, no_answer, ctx)
        if page is not None and self.package is not None:
            self.package.page(url, page.tist, f"{ctx.id}: {url}")

    def _response(self, url: str, a: AttemptNote, path: str) -> str | None:
        rel = mapping.store_rel(self.store_root, path)
        size = os.path.getsize(path)
        rid = mapping.record_id_for("response", rel)
        if url.lower().startswith("ftp://"):
            d = mapping.digests(b"", path)
            with open(path, "rb") as body:
                self.write(self.build.resource(url, a.tist, rid,
                                               _media_type(a.type, a.declared_type), body, d))
            self.counts["responses"] += 1
            return rid
        encoding = a.extra.get("encoding")
        head = mapping.http_headers(a.status, a.headers, size,
                                    encoding if isinstance(encoding, str) else None,
                                    a.declared_type)
        head.compute_headers_buffer()
        d = mapping.digests(head.headers_buff, path)
        if a.sha1 and d.sha1_hex != a.sha1:
            self.problem(path, f"sha1 {d.sha1_hex} differs from the notes' {a.sha1}: "
                               "written as it is now")
        with open(path, "rb") as body:
            self.write(self.build.response(url, a.tist, rid, head, body, d))
        self.counts["responses"] += 1
        if a.status.startswith("3"):
            self.counts["redirects"] += 1
        return rid

    def _revisit(self, obj_dir: str, url: str, a: AttemptNote, path: str,
                 by_file: dict[str, AttemptNote]) -> str | None:
        target = self._link_target(obj_dir, path)
        parsed = store.parse_attempt(os.path.basename(target)) if target else None
        if target is None or parsed is None:
            return None
        t_tist, t_status, _ = parsed
        t_dir = os.path.dirname(target)
        same = os.path.samefile(t_dir, obj_dir)
        t_url = url if same else (_read_url(t_dir) or url)
        confirmed = by_file.get(os.path.basename(target)) if same else \
            _note_of(t_dir, os.path.basename(target))
        sha1 = a.sha1 or (confirmed.sha1 if confirmed else None) or \
            mapping.digests(b"", target).sha1_hex
        size = a.size or os.path.getsize(target)
        encoding = a.extra.get("encoding")
        enc = encoding if isinstance(encoding, str) else None
        if a.status == "304":
            # Replayed as the body it confirmed: that response's status line,
            # its fields updated by the 304's own (docs/export.md).
            head = mapping.http_headers(t_status, mapping.merged_304(confirmed, a), size,
                                        enc, a.declared_type)
        else:
            head = mapping.http_headers(a.status, a.headers, size, enc, a.declared_type)
        rel = mapping.store_rel(self.store_root, path)
        rid = mapping.record_id_for("response", rel)
        refers = mapping.record_id_for("response", mapping.store_rel(self.store_root, target))
        self.write(self.build.revisit(url, a.tist, rid, head, mapping.sha1_base32(sha1),
                                      t_url, t_tist, refers))
        self.counts["revisits"] += 1
        return rid

    def _link_target(self, obj_dir: str, path: str) -> str | None:
        """The attempt file a link names, when it is one in the store."""
        target = os.path.normpath(os.path.join(obj_dir, os.readlink(path)))
        if store.parse_attempt(os.path.basename(target)) is None or \
                not inside(self.store_root, target) or not os.path.isfile(target) or \
                os.path.islink(target):
            self.problem(path, "a link to no attempt file in the store: not exported")
            return None
        return target

    def _link(self, url: str, a: AttemptNote, path: str, written: str,
              ctx: _RecordContext) -> None:
        """The metadata record that ties an attempt to its record (and to the
        page or deposit manifest that named it)."""
        rel = mapping.store_rel(self.store_root, path)
        fields = [("record", ctx.uri)]
        version = ctx.version_at(a.tist)
        if version is not None:
            fields.append(("record-version", iso(version)))
        fields.append(("status", a.status))
        fields.append(("store-file", rel))
        via = a.extra.get("via")
        if isinstance(via, dict) and isinstance(via.get("url"), str):
            fields.append(("via", f"{via['url']} {via.get('rule', '')}".strip()))
        in_record = os.path.join(os.path.basename(os.path.dirname(path)),
                                 os.path.basename(path))
        fields.extend(ctx.deposits.get(in_record, ()))
        self.write(self.build.metadata(url, a.tist, mapping.record_id_for("metadata", rel),
                                       written, fields))
        self.counts["metadata"] += 1

    def _no_answer(self, obj_dir: str, url: str, attempts: list[AttemptNote],
                   ctx: _RecordContext) -> None:
        """Attempts that got no answer are no responses: one metadata record
        per object lists them."""
        fields = [("record", ctx.uri)]
        for a in attempts:
            why = " ".join(x for x in (a.error, a.detail) if x)
            fields.append(("no-answer", f"{iso(a.tist)} {why}".strip()))
        rel = mapping.store_rel(self.store_root, obj_dir)
        self.write(self.build.metadata(url, attempts[0].tist,
                                       mapping.record_id_for("no-answer", rel + "/"
                                                             + str(attempts[0].tist)),
                                       None, fields))
        self.counts["metadata"] += 1
        self.counts["no_answer"] += len(attempts)


@dataclass(frozen=True)
class _RecordContext:
    id: str
    uri: str
    versions: list[int]  # tists, oldest first
    deposits: dict[str, list[tuple[str, str]]]  # attempt file (in the record) -> fields

    def version_at(self, tist: int) -> int | None:
        i = bisect_right(self.versions, tist)
        return self.versions[i - 1] if i else None


def _entries(obj_dir: str) -> Iterator[dict[str, object]]:
    path = os.path.join(obj_dir, notes.NOTES)
    try:
        yield from notes.entries(path)
    except notes.NotRegular:
        return


def _note_of(obj_dir: str, name: str) -> AttemptNote | None:
    found = None
    for e in _entries(obj_dir):
        a = notes.parse_attempt(e)
        if a is not None and a.file == name:
            found = a
    return found


def _record_id(record_dir: str, store_root: str) -> str:
    """The record's id as its newest renewal line gives it (the end of its
    notes, as a renewal reads them); else as its path tells."""
    from kiel.show import _id_from_path

    rid = None
    path = os.path.join(record_dir, notes.NOTES)
    try:
        tail = notes.tail(path)
    except notes.NotRegular:
        tail = notes.Tail((), True)
    for e in reversed(tail.entries):
        r = notes.parse_renewal(e)
        if r is not None and r.id:
            rid = r.id
            break
    if rid is None and not tail.whole:
        for e in notes.entries(path):
            r = notes.parse_renewal(e)
            if r is not None and r.id:
                rid = r.id
    if rid is None:
        rid = _id_from_path(os.path.relpath(record_dir, store_root))
    return rid or os.path.relpath(record_dir, store_root)


def _deposits(record_dir: str) -> dict[str, list[tuple[str, str]]]:
    """For each deposit file of the record (as its manifest notes name it),
    the fields that say which deposit and manifest it came from."""
    out: dict[str, list[tuple[str, str]]] = {}
    for m in read_manifests(record_dir):
        head = [("deposit", f"{m.platform} {m.domain} {m.deposit_id}"
                 + (f" version {m.version}" if m.version else ""))]
        head += [("manifest", u) for u in m.api_urls]
        for f in m.files:
            if f.file:
                out.setdefault(f.file, head + [("deposit-path", f.path)])
        if m.bundle_file:
            out.setdefault(m.bundle_file, head + [("deposit-path", "(bundle)")])
    return out
