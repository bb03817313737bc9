"""Fetching one object: one request, its body streamed to a temporary file.

httpx does not follow redirects here (Kiel records every hop itself) and
does not decode the body: the raw stream is decoded by :mod:`kiel.decode`,
bounded, so the size limit counts decoded bytes, a gzip bomb cannot fill
memory and a cut stream is not kept as whole. Connections go through
:mod:`kiel.netguard`: the address actually dialled is checked, and every
step of an attempt meets its total deadline (httpx has none).
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
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from kiel import __version__, faults, mediatype, netguard
from kiel.decode import Decoder, TooLarge, Truncated
from kiel.errors import StoreError
from kiel.netguard import Cancelled, Deadline, Denied
from kiel.store import tmp_name, unlink_quiet

__all__ = ["BodySink", "Cancelled", "Deadline", "Denied", "Fetcher", "Limits", "Result",
           "TooLarge", "Truncated", "classify", "user_agent"]

CHUNK = 65536
CLIENTS_PER_THREAD = 64  # origins a worker thread keeps a connection to


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
    if isinstance(exc, Deadline):
        return "timeout", str(exc)
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

    def __enter__(self) -> BodySink:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


class Fetcher:
    """HTTP fetching with one small httpx client per (thread, origin) (see docs/performance.md).

    ``guard`` decides where connections may go (None: anywhere; the renewal
    always passes one). ``stop``, when set, ends every attempt in flight
    within a fraction of a second (error ``interrupted``). Sockets are
    bounded: a thread holds at most ``clients_per_thread`` clients, each
    with at most ``max_keepalive_per_client`` idle connections, and makes
    one request at a time, so :meth:`sockets_bound` is what a run may open.
    """

    def __init__(self, limits: Limits, verify_tls: bool = True, *,
                 guard: netguard.Policy | None = None,
                 stop: threading.Event | None = None,
                 max_connections_per_client: int = 2,
                 max_keepalive_per_client: int = 1,
                 clients_per_thread: int = CLIENTS_PER_THREAD,
                 resolver: netguard.Resolver = netguard.system_resolver):
        self.limits = limits
        self.verify_tls = verify_tls
        self.guard = guard
        self.stop = stop
        self.max_connections_per_client = max(1, max_connections_per_client)
        self.max_keepalive_per_client = max(0, min(max_keepalive_per_client,
                                                   self.max_connections_per_client))
        self.clients_per_thread = max(1, clients_per_thread)
        self.resolver = resolver
        self._local = threading.local()
        self._clients: set[httpx.Client] = set()
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def sockets_bound(self, threads: int) -> int:
        """The most sockets ``threads`` fetching threads hold open at once.

        Per thread: the idle keep-alive connections of its clients, plus the
        attempt in progress (one HTTP connection, or FTP control and data).
        """
        return threads * (self.clients_per_thread * self.max_keepalive_per_client + 2)

    def budget(self, deadline: float) -> netguard.Budget:
        return netguard.Budget(deadline, self.stop)

    def _client(self, url: str) -> httpx.Client:
        """This thread's client for the origin of ``url``.

        One small client per (thread, origin), kept in a little LRU: httpcore
        checks every idle connection of a pool before each request, so one
        pool per thread across many hosts spends its time polling sockets.
        """
        clients: OrderedDict[str, httpx.Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = OrderedDict()
        key = "/".join(url.split("/", 3)[:3])
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
        transport = netguard.GuardedTransport(
            policy=self.guard, ssl_context=self._ssl,
            max_connections=self.max_connections_per_client,
            max_keepalive_connections=self.max_keepalive_per_client,
            resolver=self.resolver)
        c = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                         transport=transport)
        clients[key] = c
        with self._lock:
            self._clients.add(c)
        return c

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                c.close()
            self._clients.clear()

    def fetch_ftp(self, url: str, directory: str, started: float | None = None) -> Result:
        """One ``ftp://`` retrieval under the same guard, deadline and stop."""
        from kiel import ftp

        return ftp.fetch(url, directory, self.limits, started, guard=self.guard,
                         stop=self.stop, resolver=self.resolver)

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
        declared = None
        location = None
        address = None
        received: Headers = ()
        try:
            with netguard.attempt(self.budget(deadline)), \
                    self._client(url).stream("GET", url, headers=req_headers) as resp:
                code = resp.status_code
                status = f"{code:03d}" if 0 <= code <= 999 else "000"
                received = tuple((k.decode("latin-1"), v.decode("latin-1"))
                                 for k, v in resp.headers.raw)
                address = _peer(resp)
                declared = resp.headers.get("content-type")
                loc = resp.headers.get("location")
                if 300 <= code < 400 and loc:
                    location = urljoin(url, loc.strip())
                length = resp.headers.get("content-length")
                if length and length.strip().isdigit() and \
                        int(length) > self.limits.max_body and \
                        not resp.headers.get("content-encoding"):
                    raise TooLarge(f"Content-Length {int(length)} over max_body "
                                   f"{self.limits.max_body}")
                decoder = Decoder(resp.headers.get("content-encoding"), self.limits.max_body)
                tmp = os.path.join(directory, tmp_name())
                size, sha256, sha1, head = self._stream(resp.iter_raw(), decoder, tmp,
                                                        deadline)
        except BaseException as e:  # every failure is data
            if tmp:
                unlink_quiet(tmp)
            if isinstance(e, (KeyboardInterrupt, SystemExit, StoreError)):
                raise  # our own disk failing stops the run; it is not a 000
            error, detail = classify(e)
            if isinstance(e, Denied):
                address = e.verdict.address
            return Result(url, started, "000", "none", declared, 0, None, None, None,
                          location, error, detail, time.monotonic() - t0,
                          address=address, headers=received)
        return Result(url, started, status, mediatype.attempt_type(head, declared), declared,
                      size, sha256, sha1, tmp, location, None, None, time.monotonic() - t0,
                      etag=resp.headers.get("etag"),
                      last_modified=resp.headers.get("last-modified"),
                      retry_after=resp.headers.get("retry-after"),
                      address=address, headers=received, encoding=decoder.stored_encoding)

    def _stream(self, raw: Iterator[bytes], decoder: Decoder, tmp: str,
                deadline: float) -> tuple[int, str, str, bytes]:
        with BodySink(tmp, self.limits.max_body) as sink:
            # No chunk size: httpx would hold bytes back until it had 64 KiB.
            for data in raw:
                if time.monotonic() > deadline:
                    raise Deadline(f"total_timeout {self.limits.total_timeout}s reached")
                for piece in decoder.feed(data):
                    sink.add(piece)
            for piece in decoder.finish():
                sink.add(piece)
            if time.monotonic() > deadline:
                raise Deadline(f"total_timeout {self.limits.total_timeout}s reached")
        return sink.size, sink.sha256.hexdigest(), sink.sha1.hexdigest(), bytes(sink.head)


def _peer(resp: httpx.Response) -> str | None:
    """The address the answer came from (httpcore's ``network_stream`` extension)."""
    stream = resp.extensions.get("network_stream")
    try:
        peer = stream.get_extra_info("server_addr") if stream is not None else None
    except OSError:
        return None
    return str(peer[0]) if peer else None
