"""What the store holds about one record: versions, state markers, objects.

``kiel show`` reads a record directory and nothing else; it never writes.
The timeline of an object joins its ``00notes`` lines (which also tell of
attempts that left no file, such as a retried timeout) with the attempt
files on disk (which tell of attempts whose notes line a crash lost), so
neither source can hide the other.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from kiel import discovery, notes, readers, store
from kiel.errors import NotFound
from kiel.escape import unescape
from kiel.notes import ManifestRecord
from kiel.platforms.manifests import newest
from kiel.readers import Problems, Unreadable
from kiel.redist import record_path
from kiel.tist import iso

_MAX_VERSION = 64 * 2**20  # a version read to find the id of a record without notes


@dataclass(frozen=True)
class VersionView:
    name: str
    tist: int
    date: str
    size: int
    current: bool


@dataclass(frozen=True)
class AttemptView:
    """One line of an object's timeline: an attempt, or an event."""

    tist: int
    date: str
    status: str | None  # three digits; None for an event line
    type: str | None
    size: int | None
    file: str | None  # attempt file name; None when the attempt left none
    link: str | None  # target of the file when it is a symbolic link
    location: str | None  # resolved redirect target
    error: str | None
    event: str | None = None  # "given-up" and other event lines
    in_notes: bool = True  # False: known only from the file name
    on_disk: bool = True  # False: the notes name a file that is not there


@dataclass(frozen=True)
class ObjectView:
    name: str  # the escaped directory name
    url: str | None  # from 00url; None when missing
    timeline: tuple[AttemptView, ...]
    via: discovery.Via | None = None  # the page and rule that led to it
    discovered: discovery.Discovery | None = None  # newest discovery on this page

    @property
    def newest(self) -> AttemptView | None:
        """The newest attempt (events skipped)."""
        for a in reversed(self.timeline):
            if a.event is None:
                return a
        return None


@dataclass(frozen=True)
class RecordView:
    id: str | None
    path: str  # absolute path of the record directory
    store_path: str | None  # relative to store/, None when outside it
    versions: tuple[VersionView, ...]  # oldest first; the last is current
    last: tuple[int, int] | None  # 00last, None when missing or malformed
    last_raw: str | None  # 00last as written, for a malformed one
    gone: int | None
    renewals: int  # renewal lines in the record's 00notes
    objects: tuple[ObjectView, ...]
    # (branch, value, reason) of the values the newest renewal did not fetch
    skipped: tuple[tuple[str, str, str], ...] = ()
    # the newest manifest note of each deposit the record links (docs/datasets.md)
    deposits: tuple[ManifestRecord, ...] = ()
    # store files that could not be read as the contract says (a planted link,
    # a FIFO): named, and skipped
    unreadable: tuple[Unreadable, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        for obj, view in zip(data["objects"], self.objects, strict=True):
            newest = view.newest
            obj["newest_status"] = newest.status if newest else None
        return json.dumps(data, indent=2, ensure_ascii=False)


def show(home_root: str, id_or_path: str) -> RecordView:
    """The record directory of a record id, or of a directory path given."""
    store_root = readers.store_root(home_root)
    path = locate_record(store_root, id_or_path)
    return record_view(store_root, path)


def locate_record(store_root: str, id_or_path: str) -> str:
    """Record directory for an id, a store-relative path or a path.

    The id is tried first: an id such as ``RePEc:aaa:wpaper:1`` is never a
    directory an operator means, but a path may look like nothing else.
    """
    candidates = [os.path.join(store_root, record_path(id_or_path)),
                  id_or_path, os.path.join(store_root, id_or_path)]
    for cand in candidates:
        if os.path.isdir(cand):
            path = os.path.abspath(cand)
            if not _looks_like_record(path):
                raise NotFound(f"{path} is not a record directory "
                               "(no versions, no 00notes, no 00last)")
            return path
    raise NotFound(f"no record {id_or_path!r} in the store: "
                   f"{candidates[0]} does not exist (give a record id or a record directory)")


def _looks_like_record(path: str) -> bool:
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(store.VERSION_RE.match(n) for n in names) or \
        notes.NOTES in names or store.LAST in names


def record_view(store_root: str, path: str) -> RecordView:
    problems = Problems()
    names = sorted(os.listdir(path))
    vs = store.versions(path)
    versions = tuple(
        VersionView(name, tist, iso(tist), _size(os.path.join(path, name)), i == len(vs) - 1)
        for i, (tist, name) in enumerate(vs))
    last_raw = _read_small(os.path.join(path, store.LAST), problems)
    last = _last(last_raw)
    gone_raw = _read_small(os.path.join(path, store.GONE), problems)
    gone = int(gone_raw) if gone_raw and gone_raw.strip().isdigit() else None
    record_id = None
    renewals = 0
    skipped: tuple[tuple[str, str, str], ...] = ()
    for entry in readers.entries(os.path.join(path, notes.NOTES), problems):
        r = notes.parse_renewal(entry)
        if r is None:
            continue  # an event or a manifest: neither counts as a renewal
        renewals += 1
        skipped = tuple((str(s.get("branch")), str(s.get("value")), str(s.get("reason")))
                        for s in r.skipped if isinstance(s, dict))
        if r.id:
            record_id = r.id
    rel_path = os.path.relpath(path, store_root)
    rel = None if rel_path.startswith("..") else rel_path
    if record_id is None:
        record_id = _id_from_version(path, vs) or _id_from_path(rel)
    objects = tuple(object_view(os.path.join(path, n), problems) for n in names
                    if os.path.isdir(os.path.join(path, n))
                    and not os.path.islink(os.path.join(path, n)) and not store.is_tmp(n))
    deposits = tuple(newest(readers.manifests(path, problems)))
    return RecordView(
        id=record_id, path=path, store_path=rel, versions=versions,
        last=(last.start, last.end) if last else None,
        last_raw=last_raw.rstrip("\n") if last_raw is not None else None,
        gone=gone, renewals=renewals, objects=objects, skipped=skipped,
        deposits=deposits, unreadable=tuple(problems.items))


def _last(raw: str | None) -> store.Last | None:
    parts = raw.split() if raw is not None else []
    if raw is None or len(parts) != 2 or not raw.endswith("\n"):
        return None
    try:
        return store.Last(int(parts[0]), int(parts[1]))
    except ValueError:
        return None


def object_view(obj_dir: str, problems: Problems | None = None) -> ObjectView:
    """One object directory; the files skipped are added to ``problems``."""
    problems = Problems() if problems is None else problems
    url_raw = _read_small(os.path.join(obj_dir, store.URL), problems, 64 * 1024)
    url = url_raw.rstrip("\n") if url_raw is not None else None
    tl = timeline(obj_dir, problems)
    try:
        links = discovery.object_notes(obj_dir)
    except OSError:  # its 00notes is not a regular file: named by timeline()
        links = discovery.ObjectNotes(None, None, (), None, None, ())
    return ObjectView(os.path.basename(obj_dir), url, tl, links.via, links.discovered)


def timeline(obj_dir: str, problems: Problems | None = None) -> tuple[AttemptView, ...]:
    """Attempts and events of an object directory, oldest first."""
    problems = Problems() if problems is None else problems
    try:
        names = os.listdir(obj_dir)
    except OSError:
        names = []
    files = {n: p for n in names if (p := store.parse_attempt(n)) is not None}
    noted: set[str] = set()
    out: list[AttemptView] = []
    for entry in readers.entries(os.path.join(obj_dir, notes.NOTES), problems):
        ev = notes.parse_event(entry)
        if ev is not None:
            out.append(AttemptView(ev.tist, iso(ev.tist), None, None, None, None, None, None,
                                   _str(ev.extra.get("error")), event=ev.event))
            continue
        a = notes.parse_attempt(entry)
        if a is None:
            continue  # neither an attempt nor an event: nothing to show
        name = a.file
        on_disk = True
        link = a.link
        if name is not None:
            noted.add(name)
            full = os.path.join(obj_dir, name)
            on_disk = os.path.lexists(full)
            if on_disk and os.path.islink(full):
                link = os.readlink(full)
        out.append(AttemptView(a.tist, iso(a.tist), a.status, a.type, a.size, name, link,
                               a.location, a.error, on_disk=on_disk))
    for name, (tist, status, mtype) in files.items():
        if name in noted:
            continue
        full = os.path.join(obj_dir, name)
        link = os.readlink(full) if os.path.islink(full) else None
        size = _size(full) if os.path.exists(full) else None
        out.append(AttemptView(tist, iso(tist), status, mtype, size, name, link, None, None,
                               in_notes=False))
    # Stable: notes order breaks ties (an attempt and its given-up event).
    out.sort(key=lambda a: a.tist)
    return tuple(out)


def format_text(view: RecordView) -> str:
    """The record as an operator reads it in a terminal."""
    lines = [f"record   {view.id or '(unknown id)'}", f"dir      {view.path}"]
    if view.last:
        lines.append(f"last     {iso(view.last[0])} .. {iso(view.last[1])}")
    elif view.last_raw is not None:
        lines.append(f"last     malformed 00last: {view.last_raw!r}")
    else:
        lines.append("last     never renewed (no 00last)")
    if view.gone is not None:
        lines.append(f"gone     missing from the input since {iso(view.gone)}")
    lines.append(f"versions {len(view.versions)}")
    for v in reversed(view.versions):
        mark = "*" if v.current else " "
        lines.append(f"  {mark} {v.name}  {v.date}  {v.size} bytes"
                     + ("  (current)" if v.current else ""))
    lines.append(f"objects  {len(view.objects)}")
    lines += object_lines(view.objects)
    for branch, value, reason in view.skipped:
        lines.append(f"  skipped {value} ({branch}): {reason}")
    if view.deposits:
        lines += deposit_lines(view.deposits)
    for u in view.unreadable:
        lines.append(f"unreadable {u}")
    return "\n".join(lines) + "\n"


def object_lines(objects: tuple[ObjectView, ...]) -> list[str]:
    """Each object with its timeline; a discovered object under the page
    that led to it (docs/discovery.md), with the page's newest discovery."""
    urls = {o.url for o in objects if o.url is not None}
    children: dict[str, list[ObjectView]] = {}
    top = []
    for o in objects:
        if o.via is not None and o.via.url in urls and o.via.url != o.url:
            children.setdefault(o.via.url, []).append(o)
        else:
            top.append(o)
    out: list[str] = []
    shown: set[str] = set()

    def emit(o: ObjectView, indent: str) -> None:
        if o.name in shown:
            return  # a loop of vias: each object once
        shown.add(o.name)
        head = o.url if o.url is not None else "(no 00url) " + o.name
        if o.via is not None:
            head = (f"-> {head}  (discovered by {o.via.rule})" if indent != "  "
                    else f"{head}  (discovered by {o.via.rule} on {o.via.url})")
        out.append(indent + head)
        for a in o.timeline:
            out.append(indent + "  " + _attempt_line(a))
        d = o.discovered
        if d is not None:
            what = (f"{len(d.found)} found: " + ", ".join(f.rule for f in d.found)
                    if d.found else "nothing found (the page offered no full text)")
            out.append(f"{indent}  discovery {iso(d.tist)}  {what}")
        for child in children.get(o.url or "", ()):
            emit(child, indent + "    ")

    for o in top:
        emit(o, "  ")
    for o in objects:  # children of a loop that nothing at the top reaches
        emit(o, "  ")
    return out


STORED = ("ok", "mismatch", "unchecked")  # a deposit file's statuses whose bytes are kept


@dataclass(frozen=True)
class DepositTally:
    """What one manifest note says of its files: ``show`` and ``report``
    count deposits with this one function, so they agree."""

    by_status: tuple[tuple[str, int], ...]  # (status, files), by status name
    stored: int  # files whose bytes are kept (STORED)
    bytes: int  # their size as found
    mismatched: int
    failed: int  # files whose fetch failed


def deposit_tally(rec: ManifestRecord) -> DepositTally:
    counts: dict[str, int] = {}
    stored = size = 0
    for f in rec.files:
        counts[f.status] = counts.get(f.status, 0) + 1
        if f.status in STORED:
            stored += 1
            size += f.found_size or 0
    return DepositTally(tuple(sorted(counts.items())), stored, size,
                        counts.get("mismatch", 0), counts.get("failed", 0))


def deposit_lines(deposits: tuple[ManifestRecord, ...]) -> list[str]:
    """Each deposit as its newest manifest note says: files and verification."""
    out = [f"deposits {len(deposits)}"]
    for d in deposits:
        head = f"  {d.platform} {d.domain} {d.deposit_id}  {iso(d.tist)}"
        if d.failure:
            out.append(f"{head}  {d.failure}: {d.message}")
            continue
        tally = ", ".join(f"{n} {s}" for s, n in deposit_tally(d).by_status)
        out.append(f"{head}  version {d.version or '-'}  {d.strategy}, {d.file_count} files, "
                   f"{d.total_size} B ({tally})" + ("  unchanged" if d.unchanged else ""))
        if d.bundle_url:
            out.append(f"    bundle {d.bundle_url}  {d.bundle_file or '(not stored)'}")
        for f in d.files:
            line = f"    {f.status:11} {f.path}  {f.size if f.size is not None else '-'} B"
            if f.algorithm:
                line += f"  {f.algorithm}"
            if f.status == "mismatch" and f.algorithm:
                exp = str(f.size) if f.algorithm == "size" else f.declared.get(f.algorithm)
                got = str(f.found_size) if f.algorithm == "size" else f.found.get(f.algorithm)
                line += f" expected {exp} found {got}"
            if f.error:
                line += f"  error {f.error}"
            out.append(line)
    return out


def _attempt_line(a: AttemptView) -> str:
    if a.event is not None:
        return f"{a.date}  {a.event}"
    parts = [a.date, a.status or "???", a.type or "none"]
    parts.append(f"{a.size} B" if a.size is not None else "- B")
    if a.file and a.link:
        parts.append(f"{a.file} -> {a.link}")  # as ls -l shows a link
    elif a.file:
        parts.append(a.file)
    else:
        parts.append("(no file)")
    if a.location:
        parts.append(f"redirect -> {a.location}")
    if a.error:
        parts.append(f"error {a.error}")
    if not a.in_notes:
        parts.append("[no notes line]")
    if not a.on_disk:
        parts.append("[file missing]")
    return "  ".join(parts)


def _id_from_version(path: str, vs: list[tuple[int, str]]) -> str | None:
    if not vs:
        return None
    from kiel.records import parse_stored  # lxml only when needed (not a cycle)

    try:
        text = parse_stored(notes.read_regular(os.path.join(path, vs[-1][1]), _MAX_VERSION))
    except (OSError, ValueError, SyntaxError):
        return None
    return text.get("id") if text is not None else None


def _id_from_path(rel: str | None) -> str | None:
    if not rel:
        return None
    parts = rel.split(os.sep)
    try:
        if parts[0] == "RePEc" and len(parts) == 4:
            return f"RePEc:{parts[1]}:{parts[2]}:{unescape(parts[3])}"
        if parts[0] == "other" and len(parts) == 2:
            return unescape(parts[1])
    except (ValueError, IndexError):
        return None
    return None


def _read_small(path: str, problems: Problems, limit: int = 256) -> str | None:
    raw = readers.small(path, limit, problems)
    return raw.decode("utf-8", "replace") if raw is not None else None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
