"""One attempt's values, shared by the HTTP and FTP fetchers: its limits,
its result, the sink its body streams into, and the words its errors get.

Kept apart from :mod:`kiel.fetch` and :mod:`kiel.ftp` so that neither
imports the other for them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import zlib
from dataclasses import dataclass

import h11
import httpx

from kiel import __version__, faults, mediatype
from kiel.decode import TooLarge, Truncated
from kiel.errors import StoreError
from kiel.netguard import Cancelled, Deadline, Denied

__all__ = ["BodySink", "Headers", "Limits", "Result", "classify", "user_agent"]


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    max_body: int = 2 * 1024**3
    user_agent: str = f"Kiel/{__version__}"


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Result:
    """One attempt, before it gets its name in the object directory."""

    url: str
    started: float
    status: str  # three digits, "000" when no complete response arrived
    type: str  # the file-name token
    declared_type: str | None
    size: int
    sha256: str | None
    sha1: str | None
    tmp_path: str | None  # the body, complete, under a hidden name; None for 000
    location: str | None  # resolved redirect target
    error: str | None
    detail: str | None
    elapsed: float
    etag: str | None = None
    last_modified: str | None = None
    retry_after: str | None = None
    # The address connected to, or the one refused (error "denied").
    address: str | None = None
    # The response's header fields as received, in order (FTP: ("reply", final line)).
    headers: Headers = ()
    # A Content-Encoding the stored body is still in (one Kiel does not undo).
    encoding: str | None = None


def user_agent(contact: str) -> str:
    ua = f"Kiel/{__version__} (preservation archiver; +https://amf.openlib.org"
    return ua + (f"; {contact})" if contact else ")")


def classify(exc: BaseException) -> tuple[str, str]:
    """A short error word for the notes, and the detail."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Denied):
        return "denied", str(exc)
    if isinstance(exc, Truncated):
        return "truncated", str(exc)
    if isinstance(exc, Cancelled):
        return "interrupted", str(exc)
    if isinstance(exc, TooLarge):
        return "too-large", str(exc)
    if isinstance(exc, (Deadline, TimeoutError)):
        return "timeout", text if not isinstance(exc, Deadline) else str(exc)
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return "dns", text
        if isinstance(cause, ssl.SSLError):
            return "tls", text
        if isinstance(cause, ConnectionRefusedError):
            return "refused", text
        if isinstance(cause, ConnectionResetError):
            return "reset", text
        cause = cause.__cause__ or cause.__context__
    low = str(exc).lower()
    if isinstance(exc, h11.RemoteProtocolError):
        if "peer closed" in low or "incomplete" in low or "without sending complete" in low:
            return "incomplete", text
        return "protocol", text
    if isinstance(exc, EOFError):
        return "protocol", text
    if isinstance(exc, (httpx.InvalidURL, ValueError, h11.LocalProtocolError)):
        return "url", text
    if isinstance(exc, zlib.error):
        return "decoding", text
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "reset", text
    if isinstance(exc, OSError):
        return "connect", text
    return "protocol", text


class BodySink:
    """A body on its way to disk: written to a new hidden file, hashed as it
    comes (sha256, sha1), its head kept for libmagic, its size capped.
    Our own disk failing is a :class:`StoreError`, never a 000 attempt."""

    def __init__(self, tmp: str, max_body: int):
        self.tmp = tmp
        self.room = max_body
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1()
        self.head = bytearray()
        try:
            self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                               0o644)
        except OSError as e:
            raise StoreError(f"{tmp}: cannot write: {e.strerror}") from e

    def add(self, piece: bytes) -> None:
        if len(piece) > self.room:
            raise TooLarge("body larger than max_body")
        self.room -= len(piece)
        self.size += len(piece)
        self.sha256.update(piece)
        self.sha1.update(piece)
        if len(self.head) < mediatype.HEAD:
            self.head += piece[: mediatype.HEAD - len(self.head)]
        try:
            view = memoryview(piece)
            while view:
                view = view[os.write(self._fd, view):]
            faults.hit("body.chunk")
        except OSError as e:
            raise StoreError(f"{self.tmp}: cannot write: {e.strerror}") from e

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> BodySink:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
