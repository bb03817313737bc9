"""Fetching one object: one request, its body streamed to a temporary file.

HTTP/1.1 on the event loop: the connection is dialled by
:func:`kiel.netguard.adial` (the address dialled is the address judged),
wrapped in TLS by one shared ``SSLContext``, kept alive per origin
(:func:`kiel.urls.origin`, which politeness calls a host too), and the
protocol is parsed by h11 (never by hand). Redirects are not followed here
(Kiel records every hop itself) and the body is not decoded by the
protocol layer: the raw stream is decoded by :mod:`kiel.decode`, bounded, so
the size limit counts decoded bytes, a gzip bomb cannot fill memory and a
cut stream is not kept as whole.

Every step of an attempt meets its deadlines through one timer per attempt
(:class:`_Watch`): ``connect_timeout`` while connecting,
``read_timeout`` since the last bytes, ``total_timeout`` in all. When it
fires, the attempt's task is cancelled; no system call is made per read to
set a socket timeout. A cancellation from outside (the run stopping) ends
the attempt as ``000 interrupted``. FTP blocks in a thread
(:mod:`kiel.ftp`), bounded the same way by its own budget.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote, urljoin

import h11
import httpx

from kiel import ftp, mediatype, netguard
from kiel.attempt import BodySink, Headers, Limits, Result, classify, user_agent
from kiel.decode import Decoder, TooLarge, Truncated
from kiel.errors import StoreError
from kiel.netguard import Cancelled, Deadline, Denied
from kiel.store import tmp_name, unlink_quiet
from kiel.urls import Origin, origin

__all__ = ["BodySink", "Cancelled", "Deadline", "Denied", "Fetcher", "Headers", "Limits",
           "Result", "TooLarge", "Truncated", "classify", "user_agent"]

CHUNK = 65536
CLIENTS_PER_THREAD = 64  # idle keep-alive connections a fetcher keeps, per worker
KEEPALIVE_EXPIRY = 5.0  # an idle connection older than this is not reused
MAX_HEADERS = 256 * 1024  # a response head longer than this is a protocol error
POLL = 0.05  # the synchronous interface looks at its stop event this often

T = TypeVar("T")


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    """The cancellation was turned into a result: the task goes on (3.11+)."""
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


class _Watch:
    """One timer for one attempt: the current step's limit and the total
    deadline. Moving the limit costs a clock read; the timer is re-armed
    only when it fires early. When the limit passes, the attempt's task is
    cancelled and :attr:`fired` says why."""

    __slots__ = ("loop", "task", "deadline", "total", "until", "why", "fired", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any],
                 deadline: float, total: float):
        self.loop = loop
        self.task = task
        self.deadline = deadline
        self.total = total
        self.until = deadline
        self.why = f"total_timeout {total}s reached"
        self.fired: str | None = None
        self.handle = loop.call_at(deadline, self._check)

    def step(self, seconds: float, what: str) -> None:
        until = self.loop.time() + seconds
        if until >= self.deadline:
            self.until, self.why = self.deadline, f"total_timeout {self.total}s reached"
        else:
            self.until, self.why = until, f"{what} {seconds}s reached"
        if self.until < self.handle.when():
            self.handle.cancel()
            self.handle = self.loop.call_at(self.until, self._check)

    def _check(self) -> None:
        if self.fired is not None:
            return
        if self.loop.time() + 0.001 < self.until:
            self.handle = self.loop.call_at(self.until, self._check)
            return
        self.fired = self.why
        self.task.cancel()

    def cancel(self) -> None:
        self.handle.cancel()


@dataclass(eq=False)
class _Conn:
    """One kept-alive HTTP/1.1 connection of one origin."""

    key: Origin
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: str
    proto: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADERS))
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


@dataclass
class _Seen:
    """What an attempt learned before it failed, for its 000 result."""

    tmp: str | None = None
    declared: str | None = None
    location: str | None = None
    address: str | None = None
    received: Headers = ()


def _field(fields: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """A header field's value (repeated fields joined by commas), or None."""
    values = [v for k, v in fields if k == name]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


class Fetcher:
    """HTTP(S) and FTP attempts under one network guard, on the event loop.

    ``guard`` decides where connections may go (None: anywhere; the renewal
    always passes one). Idle keep-alive connections are bounded: at most
    ``max_connections_per_client`` per origin and ``clients_per_thread x
    max_keepalive_per_client`` in all (oldest closed first), so
    :meth:`sockets_bound` is what a run may open.

    :meth:`afetch` and :meth:`afetch_ftp` run on the caller's loop; a
    cancellation ends the attempt as ``000 interrupted``. :meth:`fetch` and
    :meth:`fetch_ftp` are the same for synchronous callers, on a loop of the
    fetcher's own; there ``stop``, when set, ends the attempt within a
    fraction of a second.
    """

    def __init__(self, limits: Limits, verify_tls: bool = True, *,
                 guard: netguard.Policy | None = None,
                 stop: threading.Event | None = None,
                 max_connections_per_client: int = 2,
                 max_keepalive_per_client: int = 1,
                 clients_per_thread: int = CLIENTS_PER_THREAD,
                 resolver: netguard.Resolver = netguard.system_resolver,
                 threads: int = 1):
        self.limits = limits
        self.verify_tls = verify_tls
        self.guard = guard
        self.stop = stop
        self.max_connections_per_client = max(1, max_connections_per_client)
        self.max_keepalive_per_client = max(0, min(max_keepalive_per_client,
                                                   self.max_connections_per_client))
        self.clients_per_thread = max(1, clients_per_thread)
        self.max_idle = self.clients_per_thread * self.max_keepalive_per_client * max(1, threads)
        self.per_origin = max(self.max_keepalive_per_client, self.max_connections_per_client)
        self.resolver = resolver
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[_Conn]] = {}
        self._lru: OrderedDict[_Conn, None] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ftp_pool: concurrent.futures.ThreadPoolExecutor | None = None

    def sockets_bound(self, threads: int) -> int:
        """The most sockets ``threads`` attempts at once hold open: the idle
        keep-alive connections, plus each attempt's own (FTP: control and data)."""
        return threads * (self.clients_per_thread * self.max_keepalive_per_client + 2)

    # -- connections --------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # One SSL context for every connection: each costs about a megabyte.
            self._ssl = httpx.create_ssl_context(verify=self.verify_tls)
        return self._ssl

    def _take(self, key: Origin, now: float) -> _Conn | None:
        conns = self._idle.get(key)
        while conns:
            c = conns.pop()
            self._lru.pop(c, None)
            if now - c.idle_since < KEEPALIVE_EXPIRY and not c.reader.at_eof() and \
                    not c.writer.is_closing():
                return c
            c.close()
        return None

    def _give_back(self, c: _Conn, now: float) -> None:
        conns = self._idle.setdefault(c.key, [])
        if len(conns) >= self.per_origin or self.max_idle == 0:
            c.close()
            return
        c.idle_since = now
        conns.append(c)
        self._lru[c] = None
        while len(self._lru) > self.max_idle:
            old, _ = self._lru.popitem(last=False)
            self._idle[old.key].remove(old)
            old.close()

    async def _connect(self, key: Origin) -> _Conn:
        sock, verdict = await netguard.adial(key.host, key.port, self.guard, self.resolver)
        try:
            tls = self._ssl_context() if key.scheme == "https" else None
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=tls, server_hostname=key.host if tls else None, limit=4 * CHUNK)
        except BaseException:
            sock.close()
            raise
        return _Conn(key, reader, writer, verdict.address)

    async def aclose(self) -> None:
        for c in list(self._lru):
            c.close()
        self._lru.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # the transports' own closing runs now
        if self._ftp_pool is not None:
            self._ftp_pool.shutdown(wait=False)
            self._ftp_pool = None

    # -- one HTTP attempt ---------------------------------------------------------------

    async def afetch(self, url: str, directory: str, headers: dict[str, str] | None = None,
                     started: float | None = None) -> Result:
        """One GET of ``url``; the body lands in a hidden file in ``directory``."""
        started = time.time() if started is None else started
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(loop, task, t0 + self.limits.total_timeout, self.limits.total_timeout)
        seen = _Seen()
        try:
            try:
                return await self._exchange(url, directory, headers or {}, started, t0, watch,
                                            seen)
            except asyncio.CancelledError:
                _uncancel(task)
                if watch.fired is not None:
                    raise Deadline(watch.fired) from None
                raise Cancelled("the run is stopping") from None
        except BaseException as e:  # every failure is data
            if seen.tmp:
                unlink_quiet(seen.tmp)
            if isinstance(e, (KeyboardInterrupt, SystemExit, StoreError)):
                raise  # our own disk failing stops the run; it is not a 000
            error, detail = classify(e)
            address = e.verdict.address if isinstance(e, Denied) else seen.address
            return Result(url, started, "000", "none", seen.declared, 0, None, None, None,
                          seen.location, error, detail, loop.time() - t0, address=address,
                          headers=seen.received)
        finally:
            watch.cancel()

    async def _exchange(self, url: str, directory: str, extra: dict[str, str], started: float,
                        t0: float, watch: _Watch, seen: _Seen) -> Result:
        loop = watch.loop
        u = httpx.URL(url)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {u.scheme!r}")
        # Connections are kept per origin (kiel.urls.origin): the userinfo is
        # no part of it, as credentials travel with each request.
        key = origin(url)
        host = u.raw_host.decode("ascii")
        authority = f"[{host}]" if ":" in host else host
        fields = {"Host": authority if u.port is None else f"{authority}:{u.port}",
                  "User-Agent": self.limits.user_agent, "Accept": "*/*",
                  "Accept-Encoding": "gzip, deflate"}
        if u.userinfo:
            user, _, password = u.userinfo.decode("ascii").partition(":")
            token = f"{unquote(user)}:{unquote(password)}".encode()
            fields["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        fields.update(extra)
        request = h11.Request(method="GET", target=u.raw_path, headers=list(fields.items()))
        read_timeout = self.limits.read_timeout
        while True:
            conn = self._take(key, loop.time())
            reused = conn is not None
            if conn is None:
                watch.step(self.limits.connect_timeout, "connect_timeout")
                conn = await self._connect(key)
            seen.address = conn.address
            got = False
            try:
                watch.step(read_timeout, "read_timeout")
                p = conn.proto
                conn.writer.write(p.send(request) + p.send(h11.EndOfMessage()))
                while True:
                    ev = p.next_event()
                    if ev is h11.NEED_DATA:
                        data = await conn.reader.read(CHUNK)
                        watch.step(read_timeout, "read_timeout")
                        got = got or bool(data)
                        p.receive_data(data)
                        continue
                    if isinstance(ev, h11.InformationalResponse):
                        continue
                    if isinstance(ev, h11.Response):
                        break
                    raise h11.RemoteProtocolError("the server closed the connection without "
                                                  "an answer")
            except (OSError, h11.RemoteProtocolError):
                conn.close()
                if reused and not got:
                    continue  # a kept-alive connection the server had closed: once more
                raise
            except BaseException:
                conn.close()
                raise
            break
        try:
            return await self._body(url, directory, started, t0, watch, seen, conn, ev)
        except BaseException:
            conn.close()
            raise

    async def _body(self, url: str, directory: str, started: float, t0: float, watch: _Watch,
                    seen: _Seen, conn: _Conn, resp: h11.Response) -> Result:
        loop = watch.loop
        p = conn.proto
        raw = resp.headers.raw_items()
        seen.received = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
        items = list(resp.headers)  # lower-case names
        code = resp.status_code
        status = f"{code:03d}" if 0 <= code <= 999 else "000"
        seen.declared = _field(items, b"content-type")
        loc = _field(items, b"location")
        if 300 <= code < 400 and loc:
            seen.location = urljoin(url, loc.strip())
        coding = _field(items, b"content-encoding")
        length = _field(items, b"content-length")
        max_body = self.limits.max_body
        if length and length.strip().isdigit() and int(length) > max_body and not coding:
            raise TooLarge(f"Content-Length {int(length)} over max_body {max_body}")
        decoder = Decoder(coding, max_body)
        read_timeout = self.limits.read_timeout
        seen.tmp = os.path.join(directory, tmp_name())
        with BodySink(seen.tmp, max_body) as sink:
            while True:
                ev = p.next_event()
                if ev is h11.NEED_DATA:
                    data = await conn.reader.read(CHUNK)
                    watch.step(read_timeout, "read_timeout")
                    p.receive_data(data)
                elif isinstance(ev, h11.Data):
                    for piece in decoder.feed(bytes(ev.data)):
                        sink.add(piece)
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    raise h11.RemoteProtocolError("incomplete: the connection closed in the body")
            for piece in decoder.finish():
                sink.add(piece)
        if p.our_state is h11.DONE and p.their_state is h11.DONE and not p.trailing_data[0]:
            p.start_next_cycle()
            self._give_back(conn, loop.time())
        else:
            conn.close()  # closing, or bytes past the answer: nothing is read from it again
        tmp, seen.tmp = seen.tmp, None
        return Result(url, started, status, mediatype.attempt_type(bytes(sink.head), seen.declared),
                      seen.declared, sink.size, sink.sha256.hexdigest(), sink.sha1.hexdigest(),
                      tmp, seen.location, None, None, loop.time() - t0,
                      etag=_field(items, b"etag"), last_modified=_field(items, b"last-modified"),
                      retry_after=_field(items, b"retry-after"), address=conn.address,
                      headers=seen.received, encoding=decoder.stored_encoding)

    # -- FTP: blocking, in a thread -------------------------------------------------------

    async def afetch_ftp(self, url: str, directory: str, started: float | None = None) -> Result:
        """One ``ftp://`` retrieval (ftplib, blocking, in a thread of its own
        under the same guard and deadline); a cancellation stops it within
        :data:`kiel.netguard.POLL` and it ends as ``000 interrupted``."""
        loop = asyncio.get_running_loop()
        if self._ftp_pool is None:
            self._ftp_pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="kiel-ftp")
        stop = threading.Event()
        fut = loop.run_in_executor(self._ftp_pool, partial(
            ftp.fetch, url, directory, self.limits, started, guard=self.guard, stop=stop,
            resolver=self.resolver))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            _uncancel(asyncio.current_task())
            stop.set()
            return await fut

    # -- the synchronous interface --------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        task = loop.create_task(coro)
        stop = self.stop
        if stop is not None:
            def look() -> None:
                if task.done():
                    return
                if stop.is_set():
                    task.cancel()
                    return
                loop.call_later(POLL, look)
            loop.call_soon(look)
        result = loop.run_until_complete(task)
        loop.run_until_complete(asyncio.sleep(0))  # closings scheduled by the attempt
        return result

    def fetch(self, url: str, directory: str, headers: dict[str, str] | None = None,
              started: float | None = None) -> Result:
        """:meth:`afetch` for a synchronous caller."""
        return self._run(self.afetch(url, directory, headers, started))

    def fetch_ftp(self, url: str, directory: str, started: float | None = None) -> Result:
        """One ``ftp://`` retrieval for a synchronous caller, under ``stop``."""
        return ftp.fetch(url, directory, self.limits, started, guard=self.guard,
                         stop=self.stop, resolver=self.resolver)

    def close(self) -> None:
        """Close the idle connections (and the fetcher's own loop, if it made one)."""
        if self._loop is not None:
            self._loop.run_until_complete(self.aclose())
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()
            self._loop = None
        elif self._lru:
            for c in list(self._lru):
                c.close()
            self._lru.clear()
            self._idle.clear()
