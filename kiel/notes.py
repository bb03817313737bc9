"""Notes: JSON Lines that document what Kiel did (the protocol's tistbase).

Notes are appended one whole line per ``write`` on an ``O_APPEND`` file. A
crash can leave a torn last line (no newline): readers skip it, and the next
append first ends it with a newline (docs/contract.md, Notes).

Each kind of line has one dataclass, one writer (its ``line()``) and one
reader (``parse_*``): :class:`AttemptNote` in object directories,
:class:`RenewalNote` in record directories, and :class:`EventNote` for the
state changes of either (``gone``, ``back``, ``given-up``, ``revived``,
``adopted``). A renewal reads only the end of a notes file
(:func:`tail`): what it needs of the past is in the newest lines, so its
cost does not grow with the years of history before them.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kiel import faults

NOTES = "00notes"
TAIL_WINDOW = 16384  # bytes read from the end of a notes file by a renewal


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
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def append(path: str, entry: dict[str, Any]) -> None:
    """Append one line to the notes file ``path`` (created if missing)."""
    fd = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
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
    raw: bytes
    torn: bool  # the last line, without a newline


def read(path: str) -> Iterator[NotesLine]:
    """Every line of a notes file, torn and broken lines marked."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as f:
        number = 0
        for raw in f:
            number += 1
            torn = not raw.endswith(b"\n")
            entry = None
            if not torn:
                entry = _parse(raw)
            yield NotesLine(number, entry, raw, torn)


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
    file, and whether they are the whole file.

    One ``open``, one ``fstat``, one ``pread``: the cost does not depend on
    how long the file is. A missing file is an empty, whole tail.
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
        fd, st = _open_regular(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return None
    return fd, st.st_size


def tail_of(fd: int, size: int, window: int = TAIL_WINDOW) -> tuple[list[bytes], bool, bool]:
    """:func:`tail_lines` of an open file of ``size`` bytes, and whether the
    file ends with a newline (or is empty)."""
    start = max(0, size - window)
    data = os.pread(fd, size - start, start)
    ends_whole = not data or data.endswith(b"\n")
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn line
    if start > 0 and lines:
        lines.pop(0)  # the window began inside a line
    return lines, start == 0, ends_whole


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One complete notes line as a dict; None when it is not a JSON object."""
    return _parse(raw)


def tail(path: str, window: int = TAIL_WINDOW) -> Tail:
    """The parseable lines in the last ``window`` bytes of a notes file."""
    lines, whole = tail_lines(path, window)
    return Tail(tuple(e for e in map(_parse, lines) if e is not None), whole)


def status_class(status: str) -> str:
    """``000``, ``2xx``, ``3xx``...: the classes the summary and the report count."""
    return "000" if status.startswith("0") else status[0] + "xx"


# --- typed lines ---------------------------------------------------------------

Headers = tuple[tuple[str, str], ...]


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
    extra: dict[str, Any] = field(default_factory=dict)  # more fields, kept as given

    BASE = ("tist", "url", "status", "type", "declared_type", "size", "sha256", "sha1", "file",
            "link", "location", "error", "elapsed", "headers")
    OPTIONAL = ("attempt", "retried", "recovered", "same_as", "etag", "last_modified", "detail",
                "since", "ever_ok")

    def line(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tist": self.tist, "url": self.url, "status": self.status, "type": self.type,
            "declared_type": self.declared_type, "size": self.size, "sha256": self.sha256,
            "sha1": self.sha1, "file": self.file, "link": self.link, "location": self.location,
            "error": self.error, "elapsed": round(self.elapsed, 3),
            "headers": [list(h) for h in self.headers] if self.headers is not None else None,
            "attempt": self.attempt,
        }
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
        extra={k: v for k, v in e.items() if k not in known},
    )


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
