"""The provider under waitress, with limits that hold under load (issue 11).

waitress stops accepting once ``connection_limit`` connections are open, so
idle sockets silence it and harvesters time out without an answer. Here the
server keeps accepting: past the limit each new connection is read briefly
(its request line and headers, at most 8 KiB or one second) and answered
``503`` with ``Retry-After`` at once, then closed. Idle connections are
dropped after ``channel_timeout``; a POST body over ``max_request_body`` is
refused from its ``Content-Length`` (``413``) before any of it is read.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher


@dataclass(frozen=True)
class Limits:
    threads: int
    connection_limit: int
    channel_timeout: int  # seconds
    max_request_body: int  # bytes
    retry_after: int  # seconds


def _busy(retry_after: int) -> bytes:
    body = b"Too many connections; retry later.\n"
    return (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (retry_after, len(body), body))


class _Shed(wasyncore.dispatcher):  # type: ignore[misc]  # waitress is untyped
    """One connection over the limit: read its head, answer 503, close."""

    def __init__(self, conn: socket.socket, answer: bytes, map: dict[int, Any]):
        super().__init__(conn, map=map)
        self.answer = answer
        self.head = b""
        self.until = time.monotonic() + 1.0

    def readable(self) -> bool:
        if time.monotonic() > self.until:
            self._answer()
            return False
        return True

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            data = self.recv(8192)
        except OSError:
            data = b""
        self.head += data
        # Answer once the request head is in: closing a socket with unread
        # bytes would reset the connection and lose the 503 on its way.
        if not data or b"\r\n\r\n" in self.head or len(self.head) >= 8192:
            self._answer()

    def _answer(self) -> None:
        try:
            self.socket.setblocking(False)
            self.socket.send(self.answer)
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close()

    def handle_error(self) -> None:
        self.close()


class SheddingServer(TcpWSGIServer):  # type: ignore[misc]  # waitress is untyped
    """A waitress TCP server that answers 503 past its connection limit."""

    def readable(self) -> bool:
        now = time.time()
        if now >= float(getattr(self, "next_channel_cleanup")):  # noqa: B009 - untyped base
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        if len(self._map) < self.adj.connection_limit:
            super().handle_accept()
            return
        try:
            got = self.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED):
                return
            return
        if got is None:
            return
        conn, _addr = got
        _Shed(conn, self._busy_answer, self._map)

    _busy_answer = _busy(10)


def make_server(app: Any, host: str, port: int, limits: Limits) -> SheddingServer:
    """A server bound to ``host``:``port`` (0: any free port); call ``run()``.

    Raises OSError when the address cannot be bound.
    """
    adj = Adjustments(host=host, port=port, threads=limits.threads,
                      connection_limit=limits.connection_limit,
                      channel_timeout=limits.channel_timeout,
                      cleanup_interval=max(1, min(30, limits.channel_timeout // 2)),
                      max_request_body_size=limits.max_request_body,
                      ident="kiel-oai", expose_tracebacks=False)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(limits.threads)
    sockinfo = adj.listen[0]
    server = SheddingServer(app, {}, True, None, dispatcher=dispatcher, adj=adj,
                            sockinfo=sockinfo)
    server._busy_answer = _busy(limits.retry_after)
    return server


class Background:
    """A server running in a thread until :meth:`stop` (tests, benchmarks).

    The loop polls a flag rather than being closed under its feet, so
    stopping never leaves a thread raising on a closed socket.
    """

    def __init__(self, app: Any, limits: Limits, host: str = "127.0.0.1", port: int = 0):
        import threading

        self.server = make_server(app, host, port, limits)
        self.url = f"http://{host}:{self.server.effective_port}/oai"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, count=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self.server._map)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
