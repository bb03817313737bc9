"""Notes: JSON Lines that document what Kiel did (the protocol's tistbase).

Notes are appended one whole line per ``write`` on an ``O_APPEND`` file. A
crash can leave a torn last line (no newline): readers skip it, and the next
append first ends it with a newline (docs/contract.md, Notes).

Each kind of line has one dataclass, one writer (its ``line()``) and one
reader (``parse_*``): :class:`AttemptNote` in object directories,
:class:`RenewalNote` in record directories, :class:`ManifestRecord` for a
deposit's manifest in record directories, and :class:`EventNote` for the
state changes of either (``gone``, ``back``, ``given-up``, ``revived``,
``adopted``). A renewal reads only the end of a notes file
(:func:`tail`): what it needs of the past is in the newest lines, so its
cost does not grow with the years of history before them.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kiel import faults
from kiel.hashing import ALGORITHMS
from kiel.urls import redact_text

NOTES = "00notes"
TAIL_WINDOW = 16384  # bytes read from the end of a notes file by a renewal (at least a line)
# The longest notes line a reader holds in memory. Kiel's own lines stay far
# below it (a manifest note is capped by its files); a longer one is a file
# that is not Kiel's notes (a sparse file, a disk image) and is skipped.
MAX_LINE = 64 * 2**20


class NotRegular(OSError):
    """A store file Kiel reads or appends to is not a regular file (a FIFO,
    a directory, a device): reported, never opened for blocking I/O."""

    def __init__(self, path: str, what: str):
        super().__init__(errno.EINVAL, f"not a regular file ({what})", path)
        self.what = what


def kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def open_regular(path: str, flags: int, mode: int = 0o644) -> int:
    return _open_regular(path, flags, mode)[0]


def _open_regular(path: str, flags: int, mode: int = 0o644) -> tuple[int, os.stat_result]:
    """``os.open`` that never blocks on, nor writes through, what is not a
    regular file: ``O_NONBLOCK`` (a FIFO opens at once), ``O_NOFOLLOW``, and
    an ``fstat`` after opening. Raises :class:`NotRegular`."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW, mode)
    except IsADirectoryError:
        raise NotRegular(path, "a directory") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotRegular(path, "a symbolic link") from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise NotRegular(path, "a FIFO") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(path, kind_of(st.st_mode))
    # O_NONBLOCK means nothing for a regular file: no need to clear it.
    return fd, st


def read_regular(path: str, limit: int | None = None) -> bytes:
    """The bytes of a small store file (``00last``, ``00url``, a version)."""
    fd, st = _open_regular(path, os.O_RDONLY)
    try:
        # Read what the file holds (one more byte tells a file that grew):
        # buffers sized to the file, not to a guess, keep the heap small.
        want = st.st_size + 1 if limit is None else min(limit, st.st_size + 1)
        chunks = []
        while want > 0:
            piece = os.read(fd, want)
            if not piece:
                break
            chunks.append(piece)
            want -= len(piece)
        if limit is None and want == 0:  # it grew while read: read the rest
            while piece := os.read(fd, 1 << 16):
                chunks.append(piece)
        return b"".join(chunks)
    finally:
        os.close(fd)


def dumps(entry: dict[str, Any]) -> bytes:
    """One notes line, every password of a URL in it (in a value or a key,
    at any depth: a manifest's API and file URLs, header values, an
    object's URL) replaced by ``***``: this is where every line is
    serialised, so no password reaches a notes file (docs/contract.md)."""
    return (json.dumps(_redacted(entry), ensure_ascii=False, separators=(",", ":"))
            + "\n").encode("utf-8")


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value) if "@" in value and "://" in value else value
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def append(path: str, entry: dict[str, Any]) -> None:
    """Append one line to the notes file ``path`` (created if missing)."""
    fd = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = _single_name(fd, path).st_size
        # End a torn last line first, so this line stays whole.
        append_fd(fd, entry, not size or os.pread(fd, 1, size - 1) == b"\n")
    finally:
        os.close(fd)


def append_fd(fd: int, entry: dict[str, Any], ends_whole: bool) -> None:
    """Append one line through ``fd`` (opened ``O_APPEND``), its file's last
    byte known (``ends_whole``: empty, or a newline)."""
    line = dumps(entry) if ends_whole else b"\n" + dumps(entry)
    view = memoryview(line)
    if faults.ACTIVE and faults.hit("notes.torn"):
        os.write(fd, view[: len(view) // 2])  # a torn line, for the crash tests
        faults.die()
    faults.hit("notes.before")
    while view:
        n = os.write(fd, view)
        view = view[n:]


@dataclass(frozen=True)
class NotesLine:
    number: int
    entry: dict[str, Any] | None  # None: not JSON (a breach, unless torn)
    raw: bytes  # the line; its first MAX_LINE bytes when it is longer
    torn: bool  # the last line, without a newline
    too_long: bool = False  # longer than MAX_LINE: skipped unread


def read(path: str, max_line: int = MAX_LINE) -> Iterator[NotesLine]:
    """Every line of a notes file, torn, broken and overlong lines marked.

    The one way every reader (show, report, verify, the provider) reads a
    store's notes: a regular file only (:class:`NotRegular` otherwise, raised
    before any byte is read: never a FIFO, a device or a link out of the
    store), and no line held beyond ``max_line`` bytes, so a planted sparse
    file of gigabytes without a newline costs a bounded buffer. A missing
    file has no lines."""
    for number, raw, too_long in _raw_lines(path, max_line):
        if too_long:
            yield NotesLine(number, None, raw, not raw.endswith(b"\n"), too_long=True)
            continue
        torn = not raw.endswith(b"\n")
        yield NotesLine(number, None if torn else _parse(raw), raw, torn)


def entries_with(path: str, needle: bytes, max_line: int = MAX_LINE
                 ) -> Iterator[dict[str, Any]]:
    """The complete, parseable lines of a notes file that contain ``needle``
    (``b'"back"'``, ``b'"manifest"'``), read as :func:`read` reads: only
    those lines are parsed, which keeps a walk of every record cheap."""
    for _number, raw, too_long in _raw_lines(path, max_line):
        if not too_long and needle in raw and raw.endswith(b"\n"):
            entry = _parse(raw)
            if entry is not None:
                yield entry


def _raw_lines(path: str, max_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, line, too long)``; a line over ``max_line`` bytes is
    skipped in pieces, its first ``max_line`` bytes kept (with its newline
    when it has one, so a torn one still shows as torn)."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as f:
        number = 0
        while raw := f.readline(max_line + 1):
            number += 1
            if len(raw) > max_line and not raw.endswith(b"\n"):
                head = raw[:max_line]
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = f.readline(1 << 20)
                yield number, head + (b"\n" if raw else b""), True
                continue
            yield number, raw, False


def read_small(path: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of a small store file (``00url``, ``00last``,
    ``00gone``); None when it is missing. Raises :class:`NotRegular` for
    anything but a regular file, a symbolic link included."""
    try:
        return read_regular(path, limit)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def entries(path: str) -> Iterator[dict[str, Any]]:
    """The complete, parseable lines of a notes file (torn lines skipped)."""
    for line in read(path):
        if line.entry is not None:
            yield line.entry


@dataclass(frozen=True)
class Tail:
    """The newest lines of a notes file, oldest first."""

    entries: tuple[dict[str, Any], ...]
    whole: bool  # the window held the whole file


def tail_lines(path: str, window: int = TAIL_WINDOW) -> tuple[list[bytes], bool]:
    """The complete lines (unparsed) in the last ``window`` bytes of a notes
    file (at least one, read further back when needed: :func:`tail_of`),
    and whether they are the whole file.

    One ``open``, one ``fstat``, one ``pread`` (more only when the window
    holds no whole line): the cost does not depend on how long the file
    is. A missing file is an empty, whole tail.
    """
    try:
        fd, st = _open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return [], True
    try:
        return tail_of(fd, st.st_size, window)[:2]
    finally:
        os.close(fd)


def open_for_tail(path: str) -> tuple[int, int] | None:
    """A notes file opened to read its tail and append to it (one descriptor
    for both), and its size; None when it does not exist."""
    try:
        fd, _ = _open_regular(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return None
    try:
        return fd, _single_name(fd, path).st_size
    except BaseException:
        os.close(fd)
        raise


def _single_name(fd: int, path: str) -> os.stat_result:
    """The status of a notes file opened to append to, refused when the file
    has more than one name: Kiel never hard-links a store file, so a second
    name is someone else's file (outside the store, or another record's
    notes), and a line appended here would land in it."""
    st = os.fstat(fd)
    if st.st_nlink > 1:
        raise NotRegular(path, f"a hard link ({st.st_nlink} names share this file)")
    return st


def tail_of(fd: int, size: int, window: int = TAIL_WINDOW,
            limit: int = MAX_LINE) -> tuple[list[bytes], bool, bool]:
    """:func:`tail_lines` of an open file of ``size`` bytes, and whether the
    file ends with a newline (or is empty).

    The last ``window`` bytes, and further back when they hold no whole
    line (the newest lines are longer than the window: an answer's 1 500
    header fields, written by runs that kept them all), each time four
    times as far, until they hold one or ``limit`` bytes are read: what a
    renewal needs of the past is never lost to one long line, and a file
    without newlines costs at most ``limit`` bytes of memory.
    """
    # One byte before the window tells whether the window begins a line.
    start = max(0, size - window - 1)
    data = os.pread(fd, size - start, start)
    while start > 0 and not _holds_a_line(data) and size - start < limit:
        further = max(0, size - min(4 * (size - start), limit))
        data = b""  # read again whole, not joined: one buffer of at most ``limit`` bytes
        data = os.pread(fd, size - further, further)
        start = further
    ends_whole = not data or data.endswith(b"\n")
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn line
    if start > 0 and lines:
        lines.pop(0)  # what precedes the first newline: the end of an earlier line
    return lines, start == 0, ends_whole


def _holds_a_line(data: bytes) -> bool:
    """``data``, read from inside a file, holds one whole line: the end of
    an earlier line (its first newline), then a newline after it."""
    first = data.find(b"\n")
    return first >= 0 and data.find(b"\n", first + 1) >= 0


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One complete notes line as a dict; None when it is not a JSON object."""
    return _parse(raw)


def tail(path: str, window: int = TAIL_WINDOW) -> Tail:
    """The parseable lines in the last ``window`` bytes of a notes file (at
    least one whole line: :func:`tail_of`)."""
    lines, whole = tail_lines(path, window)
    return Tail(tuple(e for e in map(_parse, lines) if e is not None), whole)


def status_class(status: str) -> str:
    """``000``, ``2xx``, ``3xx``...: the classes the summary and the report count."""
    return "000" if status.startswith("0") else status[0] + "xx"


# --- typed lines ---------------------------------------------------------------

Headers = tuple[tuple[str, str], ...]

# What an attempt line keeps of an answer's header fields: a line stays well
# under the TAIL_WINDOW a renewal reads, whatever a server sends (HTTP allows
# a head of 256 KiB: 1 500 fields made 86 KB lines).
HEADER_FIELDS = 100  # fields kept at most
HEADER_BYTES = 8192  # bytes they take in the line at most (as JSON)
# The fields Kiel reads back from the notes or needs to replay an answer,
# always kept: validators of a conditional request, the body's type, length
# and coding, the redirect target, signposting links, Retry-After, a file's
# name, and FTP's final reply.
RELIED_ON = frozenset({
    "etag", "last-modified", "content-type", "content-length", "content-encoding",
    "transfer-encoding", "location", "content-location", "content-disposition", "link",
    "retry-after", "reply"})


@dataclass(frozen=True)
class LeftOut:
    """The header fields of an answer its attempt line does not keep."""

    fields: int
    bytes: int  # their names and values, as received

    def line(self) -> dict[str, int]:
        return {"fields": self.fields, "bytes": self.bytes}


def kept_headers(headers: Headers, max_fields: int = HEADER_FIELDS,
                 max_bytes: int = HEADER_BYTES) -> tuple[Headers, LeftOut | None]:
    """The header fields an attempt line keeps, in the order received, and
    what it leaves out (None: nothing).

    The first field of each name Kiel relies on (:data:`RELIED_ON`) is
    always kept, however long; then its repeats (more ``Link`` fields), then
    the others, each in the order received, while they fit in ``max_fields``
    fields and ``max_bytes`` bytes of the line."""
    if len(headers) <= max_fields and len(_json(headers)) <= max_bytes:
        return headers, None
    first: list[int] = []
    repeats: list[int] = []
    others: list[int] = []
    seen: set[str] = set()
    for i, (name, _) in enumerate(headers):
        low = name.lower()
        if low not in RELIED_ON:
            others.append(i)
        elif low in seen:
            repeats.append(i)
        else:
            seen.add(low)
            first.append(i)
    keep = set(first)
    used = sum(len(_json(headers[i])) + 1 for i in first)
    for i in repeats + others:
        if len(keep) >= max_fields:
            break
        cost = len(_json(headers[i])) + 1  # and its comma
        if used + cost <= max_bytes:
            keep.add(i)
            used += cost
    left = [h for i, h in enumerate(headers) if i not in keep]
    return (tuple(h for i, h in enumerate(headers) if i in keep),
            LeftOut(len(left), sum(len(n) + len(v) for n, v in left)) if left else None)


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


@dataclass(frozen=True)
class AttemptNote:
    """One attempt at an object (docs/contract.md, Notes), as ``00notes`` holds it.

    ``since`` (the object's first attempt) and ``ever_ok`` (some attempt up
    to this one answered) carry the object's age forward, so a renewal
    decides on giving up from the newest line alone.
    """

    tist: int
    url: str
    status: str
    type: str
    declared_type: str | None
    size: int
    sha256: str | None
    sha1: str | None
    file: str | None
    link: str | None
    location: str | None
    error: str | None
    elapsed: float
    headers: Headers | None = None
    attempt: int = 1
    retried: bool = False
    recovered: bool = False
    same_as: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    detail: str | None = None
    since: int | None = None
    ever_ok: bool | None = None
    headers_left_out: LeftOut | None = None  # fields not kept in ``headers``
    extra: dict[str, Any] = field(default_factory=dict)  # more fields, kept as given

    BASE = ("tist", "url", "status", "type", "declared_type", "size", "sha256", "sha1", "file",
            "link", "location", "error", "elapsed", "headers")
    OPTIONAL = ("attempt", "retried", "recovered", "same_as", "etag", "last_modified", "detail",
                "since", "ever_ok", "headers_left_out")

    def line(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tist": self.tist, "url": self.url, "status": self.status, "type": self.type,
            "declared_type": self.declared_type, "size": self.size, "sha256": self.sha256,
            "sha1": self.sha1, "file": self.file, "link": self.link, "location": self.location,
            "error": self.error, "elapsed": round(self.elapsed, 3),
            "headers": [list(h) for h in self.headers] if self.headers is not None else None,
            "attempt": self.attempt,
        }
        if self.headers_left_out is not None:
            d["headers_left_out"] = self.headers_left_out.line()
        for key in ("retried", "recovered"):
            if getattr(self, key):
                d[key] = True
        for key in ("same_as", "etag", "last_modified", "detail", "since", "ever_ok"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        d.update(self.extra)
        return d

    @property
    def succeeded(self) -> bool:
        """An answer arrived (1xx-3xx): the object is alive."""
        return self.status[:1] in ("1", "2", "3")


def parse_attempt(e: dict[str, Any]) -> AttemptNote | None:
    """The attempt a notes line records, or None when it records something else."""
    if "event" in e or not isinstance(e.get("tist"), int) or "status" not in e:
        return None
    h = e.get("headers")
    headers: Headers | None = None
    if isinstance(h, list):
        headers = tuple((str(p[0]), str(p[1])) for p in h
                        if isinstance(p, list) and len(p) == 2)
    known = set(AttemptNote.BASE) | set(AttemptNote.OPTIONAL)
    since = e.get("since")
    ever_ok = e.get("ever_ok")
    return AttemptNote(
        tist=e["tist"], url=str(e.get("url") or ""), status=str(e["status"]),
        type=str(e.get("type") or "none"), declared_type=_opt_str(e.get("declared_type")),
        size=_number(int, e.get("size"), 0), sha256=_opt_str(e.get("sha256")),
        sha1=_opt_str(e.get("sha1")), file=_opt_str(e.get("file")),
        link=_opt_str(e.get("link")), location=_opt_str(e.get("location")),
        error=_opt_str(e.get("error")), elapsed=_number(float, e.get("elapsed"), 0.0),
        headers=headers, attempt=_number(int, e.get("attempt"), 1),
        retried=bool(e.get("retried")), recovered=bool(e.get("recovered")),
        same_as=_opt_str(e.get("same_as")), etag=_opt_str(e.get("etag")),
        last_modified=_opt_str(e.get("last_modified")), detail=_opt_str(e.get("detail")),
        since=since if isinstance(since, int) else None,
        ever_ok=ever_ok if isinstance(ever_ok, bool) else None,
        headers_left_out=_left_out(e.get("headers_left_out")),
        extra={k: v for k, v in e.items() if k not in known},
    )


def _left_out(v: object) -> LeftOut | None:
    if not isinstance(v, dict):
        return None
    fields, size = _int(v.get("fields")), _int(v.get("bytes"))
    return LeftOut(fields, size or 0) if fields is not None else None


def _opt_str(v: object) -> str | None:
    """A text field as written, or None: a damaged line parses to what the
    dataclass declares (``show`` and ``verify`` read damaged stores)."""
    return v if isinstance(v, str) else None


_N = TypeVar("_N", int, float)


def _number(kind: type[_N], v: object, default: _N) -> _N:
    """``kind(v)``, or ``default`` when ``v`` is missing or not a number: a
    damaged line must not end a reader with a traceback."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return default
    try:
        return kind(v) or default
    except (TypeError, ValueError, OverflowError):
        return default


@dataclass(frozen=True)
class EventNote:
    """A state change: ``gone``, ``back``, ``adopted`` (record directories);
    ``given-up``, ``revived``, ``refused`` (object directories)."""

    event: str
    tist: int
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> dict[str, Any]:
        d: dict[str, Any] = {"event": self.event, "tist": self.tist}
        d.update(self.extra)
        return d


def parse_event(e: dict[str, Any]) -> EventNote | None:
    ev = e.get("event")
    if not isinstance(ev, str) or ev == "renewal" or not isinstance(e.get("tist"), int):
        return None
    return EventNote(ev, e["tist"], {k: v for k, v in e.items() if k not in ("event", "tist")})


@dataclass(frozen=True)
class RenewalNote:
    """One renewal of a record: the version written (or None), the URLs found
    per branch, the values skipped and why, the object directories, errors."""

    tist: int
    end: int
    id: str
    source: str
    version: str | None
    version_sha256: str | None
    current: str | None
    urls: dict[str, list[str]]
    skipped: list[dict[str, Any]]
    objects: dict[str, str | None]
    errors: list[str]
    back: bool = False
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "event": "renewal", "tist": self.tist, "end": self.end, "id": self.id,
            "source": self.source, "version": self.version,
            "version_sha256": self.version_sha256, "current": self.current, "urls": self.urls,
            "skipped": self.skipped, "objects": self.objects, "errors": self.errors,
        }
        if self.back:
            d["back"] = True
        if self.interrupted:
            d["interrupted"] = True
        d.update(self.extra)
        return d


def parse_renewal(e: dict[str, Any]) -> RenewalNote | None:
    if e.get("event") != "renewal" or not isinstance(e.get("tist"), int):
        return None
    known = {"event", "tist", "end", "id", "source", "version", "version_sha256", "current",
             "urls", "skipped", "objects", "errors", "back", "interrupted"}
    end = e.get("end")
    return RenewalNote(
        tist=e["tist"], end=end if isinstance(end, int) else e["tist"],
        id=_opt_str(e.get("id")) or "", source=_opt_str(e.get("source")) or "",
        version=_opt_str(e.get("version")), version_sha256=_opt_str(e.get("version_sha256")),
        current=_opt_str(e.get("current")),
        urls=e.get("urls") or {}, skipped=e.get("skipped") or [],
        objects=e.get("objects") or {}, errors=e.get("errors") or [],
        back=bool(e.get("back")), interrupted=bool(e.get("interrupted")),
        extra={k: v for k, v in e.items() if k not in known},
    )


# --- the deposit manifest line ----------------------------------------------------------

MANIFEST = "manifest"


@dataclass(frozen=True)
class NotedFile:
    """One file of a manifest line: as the platform declared it, and what came of it."""

    path: str
    size: int | None  # declared
    url: str | None
    declared: dict[str, str]
    found: dict[str, str]
    found_size: int | None
    file: str | None  # attempt file, relative to the record directory
    status: str  # ok, mismatch, unchecked, failed, not-fetched, restricted, embargoed
    algorithm: str | None = None
    error: str | None = None
    media_type: str | None = None

    def line(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "url": self.url,
                "media_type": self.media_type, "declared": self.declared,
                "found": self.found, "found_size": self.found_size, "file": self.file,
                "status": self.status, "algorithm": self.algorithm, "error": self.error}


@dataclass(frozen=True)
class ManifestRecord:
    """One ``manifest`` line (docs/contract.md, Deposits): what a deposit held
    and how each file checked out, one line per deposit and renewal. Its keys
    avoid ``id``, ``version`` and ``current``, which readers of renewal lines
    take as the record's id and version files."""

    tist: int
    platform: str
    domain: str
    deposit_id: str
    version: str | None
    strategy: str | None  # None for a failure
    file_count: int
    total_size: int
    bundle_url: str | None
    bundle_file: str | None
    api_urls: tuple[str, ...]
    fingerprint: str | None
    unchanged: bool
    failure: str | None  # a name of kiel.platforms.types.FAILURES
    message: str | None
    files: tuple[NotedFile, ...]
    # An unchanged note names the earlier note that lists its files (by its
    # tist) instead of listing them again; read back, ``files`` are that note's.
    # Written, such a line lists no files (but counts their mismatches).
    same_as: int | None = None

    @property
    def listed_at(self) -> int:
        """The tist of the note that lists this state's files."""
        return self.same_as if self.same_as is not None else self.tist

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.platform, self.domain, self.deposit_id)

    @property
    def mismatches(self) -> tuple[NotedFile, ...]:
        return tuple(f for f in self.files if f.status == "mismatch")

    def line(self) -> dict[str, Any]:
        """The notes line, every string writable as UTF-8 (:func:`writable`)."""
        listed = self.unchanged and self.same_as is not None
        line: dict[str, Any] = writable({
            "event": MANIFEST, "tist": self.tist, "platform": self.platform,
            "domain": self.domain, "deposit": self.deposit_id,
            "deposit_version": self.version, "strategy": self.strategy,
            "file_count": self.file_count, "total_size": self.total_size,
            "bundle": self.bundle_url, "bundle_file": self.bundle_file,
            "api": list(self.api_urls), "fingerprint": self.fingerprint,
            "unchanged": self.unchanged,
            "failure": {"name": self.failure, "message": self.message}
            if self.failure is not None else None,
            "mismatches": len(self.mismatches),
            **({"same_as": self.same_as, "files": []} if listed
               else {"files": [f.line() for f in self.files]}),
        })
        return line


def writable(value: Any) -> Any:
    """``value`` with every string made writable as UTF-8: a lone surrogate
    (a file name or message a platform sent as ``"\\udc80"`` in JSON) is
    written as its escape, ``\\udc80``, instead of breaking the line."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {writable(k): writable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [writable(v) for v in value]
    return value


def parse_manifest(entry: dict[str, Any]) -> ManifestRecord | None:
    """One ``manifest`` line as written, its ``files`` as listed there (see
    :func:`manifest_records` for those of an unchanged line)."""
    tist = entry.get("tist")
    if entry.get("event") != MANIFEST or not isinstance(tist, int):
        return None
    failure = entry.get("failure") if isinstance(entry.get("failure"), dict) else None
    files = []
    for raw in entry.get("files") or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            continue
        files.append(NotedFile(
            path=raw["path"], size=_int(raw.get("size")), url=_opt_str(raw.get("url")),
            declared=_sums(raw.get("declared")), found=_sums(raw.get("found")),
            found_size=_int(raw.get("found_size")), file=_opt_str(raw.get("file")),
            status=_opt_str(raw.get("status")) or "not-fetched",
            algorithm=_opt_str(raw.get("algorithm")), error=_opt_str(raw.get("error")),
            media_type=_opt_str(raw.get("media_type"))))
    return ManifestRecord(
        tist=tist, platform=_opt_str(entry.get("platform")) or "",
        domain=_opt_str(entry.get("domain")) or "",
        deposit_id=_opt_str(entry.get("deposit")) or "",
        version=_opt_str(entry.get("deposit_version")),
        strategy=_opt_str(entry.get("strategy")),
        file_count=_int(entry.get("file_count")) or 0,
        total_size=_int(entry.get("total_size")) or 0,
        bundle_url=_opt_str(entry.get("bundle")),
        bundle_file=_opt_str(entry.get("bundle_file")),
        api_urls=tuple(u for u in entry.get("api") or () if isinstance(u, str)),
        fingerprint=_opt_str(entry.get("fingerprint")),
        unchanged=entry.get("unchanged") is True,
        failure=_opt_str(failure.get("name")) if failure else None,
        message=_opt_str(failure.get("message")) if failure else None, files=tuple(files),
        same_as=_int(entry.get("same_as")) if entry.get("unchanged") is True else None)


def manifest_records(entries: Iterable[dict[str, Any]],
                     out: list[ManifestRecord] | None = None) -> list[ManifestRecord]:
    """The manifest lines among parsed notes lines, oldest first, each
    unchanged one (``same_as``) given the files of the line it names. The
    one reader of the manifest line: the renewal and show, report and
    verify (kiel/readers.py) all call it. Records are appended to ``out``
    as they are read, so a caller that meets a read error keeps those
    read before it."""
    out = [] if out is None else out
    listed: dict[tuple[tuple[str, str, str], int], tuple[NotedFile, ...]] = {}
    for entry in entries:
        rec = parse_manifest(entry)
        if rec is None:
            continue
        if rec.same_as is not None:
            # The files of the line it names (one tuple, shared).
            rec = dataclasses.replace(rec, files=listed.get((rec.key, rec.same_as), rec.files))
        else:
            listed[(rec.key, rec.tist)] = rec.files
        out.append(rec)
    return out


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _sums(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        return {}
    return {k: x for k, x in v.items() if k in ALGORITHMS and isinstance(x, str)}
