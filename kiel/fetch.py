"""Fetching one object: one request, its body streamed to a temporary file.

httpx does not follow redirects here (Kiel records every hop itself) and
does not decode the body: the raw stream is decoded by us with a bounded
decompressor, so the size limit counts decoded bytes and a gzip bomb cannot
fill memory. The total deadline is ours too; httpx has none.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urljoin

import httpcore
import httpx

from kiel import __version__, faults, mediatype
from kiel.errors import StoreError
from kiel.store import tmp_name, unlink_quiet

CHUNK = 65536
CLIENTS_PER_THREAD = 64  # origins a worker thread keeps a connection to


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    max_body: int = 2 * 1024**3
    user_agent: str = f"Kiel/{__version__}"


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


def user_agent(contact: str) -> str:
    ua = f"Kiel/{__version__} (preservation archiver; +https://amf.openlib.org"
    return ua + (f"; {contact})" if contact else ")")


class TooLarge(Exception):
    pass


class Deadline(Exception):
    pass


def classify(exc: BaseException) -> tuple[str, str]:
    """A short error word for the notes, and the detail."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc
    while cause.__cause__ or cause.__context__:
        cause = cause.__cause__ or cause.__context__
        if isinstance(cause, socket.gaierror):
            return "dns", text
        if isinstance(cause, ssl.SSLError):
            return "tls", text
        if isinstance(cause, ConnectionRefusedError):
            return "refused", text
        if isinstance(cause, ConnectionResetError):
            return "reset", text
    low = str(exc).lower()
    if isinstance(exc, TooLarge):
        return "too-large", str(exc)
    if isinstance(exc, Deadline):
        return "timeout", str(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout", text
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
        return "timeout", text
    if isinstance(exc, httpx.ConnectError):
        if "name or service" in low or "nodename" in low or "name resolution" in low \
                or "no address" in low:
            return "dns", text
        if "refused" in low:
            return "refused", text
        if "ssl" in low or "certificate" in low or "tls" in low:
            return "tls", text
        return "connect", text
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "reset", text
    if isinstance(exc, httpx.RemoteProtocolError):
        if "peer closed" in low or "incomplete" in low:
            return "incomplete", text
        return "protocol", text
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError)):
        return "url", text
    if isinstance(exc, zlib.error):
        return "decoding", text
    if isinstance(exc, OSError):
        return "connect", text
    return "protocol", text


class _Decoder:
    """Bounded decoding of gzip/deflate: never more than ``limit`` bytes out."""

    def __init__(self, encoding: str | None):
        enc = (encoding or "").strip().lower()
        self.z = None
        if enc in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.z = zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip header

    def feed(self, data: bytes, room: int):
        """Yield decoded pieces; raise TooLarge past ``room`` bytes."""
        if self.z is None:
            if len(data) > room:
                raise TooLarge("body larger than max_body")
            yield data
            return
        buf = data
        while buf:
            # max_length bounds each output piece: a bomb cannot fill memory.
            out = self.z.decompress(buf, min(CHUNK * 4, room + 1))
            if len(out) > room:
                raise TooLarge("decoded body larger than max_body")
            room -= len(out)
            if out:
                yield out
            buf = self.z.unconsumed_tail


_deadline = threading.local()


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read respects the attempt's total deadline.

    httpx has no total deadline: a server dripping its status line, headers
    or body one byte at a time would hold a worker for as long as it likes.
    """

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        end = getattr(_deadline, "at", None)
        if end is not None:
            left = end - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("total_timeout reached")
            timeout = left if timeout is None else min(timeout, left)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args, **kwargs) -> _DeadlineStream:
        return _DeadlineStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(self, *args, **kwargs) -> _DeadlineStream:
        return _DeadlineStream(super().connect_tcp(*args, **kwargs))


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
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise StoreError(f"{tmp}: cannot write: {e.strerror}") from e
        self._f = os.fdopen(fd, "wb", buffering=0)

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
            self._f.write(piece)
            faults.hit("body.chunk")
        except OSError as e:
            raise StoreError(f"{self.tmp}: cannot write: {e.strerror}") from e

    def __enter__(self) -> BodySink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


class Fetcher:
    """HTTP fetching with one httpx client per thread (see docs/performance.md)."""

    def __init__(self, limits: Limits, verify_tls: bool = True,
                 clients_per_thread: int = CLIENTS_PER_THREAD):
        self.limits = limits
        self.clients_per_thread = clients_per_thread
        self.verify_tls = verify_tls
        self._local = threading.local()
        self._clients: set[httpx.Client] = set()
        self._ssl = None
        self._lock = threading.Lock()

    def _client(self, url: str) -> httpx.Client:
        """This thread's client for the origin of ``url``.

        One small client per (thread, origin), kept in a little LRU: httpcore
        checks every idle connection of a pool before each request, so one
        pool per thread across many hosts spends its time polling sockets.
        """
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = OrderedDict()
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        c = clients.get(key)
        if c is not None:
            clients.move_to_end(key)
            return c
        if len(clients) >= self.clients_per_thread:
            _, old = clients.popitem(last=False)
            with self._lock:
                self._clients.discard(old)
            old.close()
        if self._ssl is None:
            with self._lock:
                if self._ssl is None:
                    # One SSL context for all clients: each costs about a megabyte.
                    self._ssl = httpx.create_ssl_context(verify=self.verify_tls)
        timeout = httpx.Timeout(connect=self.limits.connect_timeout,
                                read=self.limits.read_timeout,
                                write=self.limits.read_timeout,
                                pool=self.limits.connect_timeout)
        c = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                         verify=self._ssl, http2=False,
                         limits=httpx.Limits(max_connections=2, max_keepalive_connections=1))
        # HTTPTransport takes no network backend: set it on its pool. Checked,
        # so an httpx that renames it fails loudly rather than lose deadlines.
        pool = c._transport._pool  # type: ignore[attr-defined]
        assert hasattr(pool, "_network_backend"), "httpx/httpcore internals changed"
        pool._network_backend = _DeadlineBackend()
        clients[key] = c
        with self._lock:
            self._clients.add(c)
        return c

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                c.close()
            self._clients.clear()

    def fetch(self, url: str, directory: str, headers: dict[str, str] | None = None,
              started: float | None = None) -> Result:
        """One GET of ``url``; the body lands in a hidden file in ``directory``."""
        started = time.time() if started is None else started
        t0 = time.monotonic()
        deadline = t0 + self.limits.total_timeout
        req_headers = {
            "User-Agent": self.limits.user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
        }
        if headers:
            req_headers.update(headers)
        tmp = None
        status = "000"
        declared = None
        location = None
        resp_headers: dict[str, str] = {}
        _deadline.at = deadline
        try:
            with self._client(url).stream("GET", url, headers=req_headers) as resp:
                code = resp.status_code
                status = "%03d" % code if 0 <= code <= 999 else "000"
                declared = resp.headers.get("content-type")
                for h in ("etag", "last-modified", "retry-after", "content-length",
                          "content-encoding"):
                    if h in resp.headers:
                        resp_headers[h] = resp.headers[h]
                loc = resp.headers.get("location")
                if 300 <= code < 400 and loc:
                    location = urljoin(url, loc.strip())
                length = resp.headers.get("content-length")
                if length and length.strip().isdigit() and \
                        int(length) > self.limits.max_body and \
                        not resp.headers.get("content-encoding"):
                    raise TooLarge(f"Content-Length {int(length)} over max_body "
                                   f"{self.limits.max_body}")
                tmp = os.path.join(directory, tmp_name())
                size, sha256, sha1, head = self._stream(resp, tmp, deadline)
        except BaseException as e:  # noqa: BLE001 - every failure is data
            _deadline.at = None
            if tmp:
                unlink_quiet(tmp)
            if isinstance(e, (KeyboardInterrupt, SystemExit, StoreError)):
                raise  # our own disk failing stops the run; it is not a 000
            error, detail = classify(e)
            return Result(url, started, "000", "none", declared, 0, None, None, None,
                          location, error, detail, time.monotonic() - t0)
        _deadline.at = None
        return Result(url, started, status, mediatype.attempt_type(head, declared), declared,
                      size, sha256, sha1, tmp, location, None, None, time.monotonic() - t0,
                      etag=resp_headers.get("etag"),
                      last_modified=resp_headers.get("last-modified"),
                      retry_after=resp_headers.get("retry-after"))

    def _stream(self, resp: httpx.Response, tmp: str, deadline: float):
        decoder = _Decoder(resp.headers.get("content-encoding"))
        with BodySink(tmp, self.limits.max_body) as sink:
            # No chunk size: httpx would hold bytes back until it had 64 KiB.
            for raw in resp.iter_raw():
                if time.monotonic() > deadline:
                    raise Deadline(f"total_timeout {self.limits.total_timeout}s reached")
                for piece in decoder.feed(raw, sink.room):
                    sink.add(piece)
            if time.monotonic() > deadline:
                raise Deadline(f"total_timeout {self.limits.total_timeout}s reached")
        return sink.size, sink.sha256.hexdigest(), sink.sha1.hexdigest(), bytes(sink.head)

