"""Local servers for the tests, and checks of a home after a hostile case.

:class:`HostileServer` is a raw TCP server: each route writes the bytes of
its answer itself, so every misbehaviour (a lying ``Content-Length``, a
reset in mid-body, a status line no HTTP library would produce) really
happens on the wire. It counts requests and body bytes per route, so a
test can prove that something was *not* downloaded or *not* asked for.

The checks at the end (:func:`snapshot`, :func:`assert_preserved`,
:func:`assert_clean`) state the invariants every hostile case must keep:
nothing partial under a final name, no temporary file left, every path
inside the home, and every earlier file byte-identical.
"""

from __future__ import annotations

import gzip
import http.server
import os
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiel import store

GOOD_BODY = b"%PDF-1.4\n" + b"good body\n" * 200 + b"%%EOF\n"
MAX_REQUEST_HEAD = 64 * 1024


def response_head(status: str, headers: list[tuple[str, str]] | None = None,
                  reason: str = "Whatever") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in (headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Conn:
    """One accepted connection, as a route sees it."""

    def __init__(self, server: HostileServer, sock: socket.socket, path: str,
                 headers: dict[str, str]):
        self.server = server
        self.sock = sock
        self.path = path
        self.headers = headers

    def send(self, data: bytes, body: bool = True) -> bool:
        """Send ``data``; False once the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        if body:
            self.server.count_body(self.path, len(data))
        return True

    def client_closed(self, wait: float) -> bool:
        """True when the client closes the connection within ``wait`` seconds."""
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            if r:
                try:
                    if self.sock.recv(65536) == b"":
                        return True
                except OSError:
                    return True
            if self.server.stopping.is_set():
                return False

    def reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops; False when it does."""
        return not self.server.stopping.wait(seconds)


Route = Callable[[Conn], None]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        srv: HostileServer = self.server.hostile  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        first, _, rest = head.partition(b"\r\n")
        parts = first.decode("latin-1").split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        headers = {}
        for line in rest.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            k, _, v = line.decode("latin-1").partition(":")
            if k:
                headers[k.strip().lower()] = v.strip()
        srv.note_request(path, headers)
        route = srv.routes.get(path)
        conn = Conn(srv, sock, path, headers)
        try:
            if route is None:
                conn.send(response_head("404", [("Content-Length", "0"),
                                                ("Connection", "close")], "Not Found"), False)
            else:
                route(conn)
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class HostileServer:
    """A raw HTTP/1.1 server on 127.0.0.1 (or ``::1``), port 0, one route per path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.routes: dict[str, Route] = {}
        self.requests: dict[str, int] = {}
        self.request_headers: dict[str, list[dict[str, str]]] = {}
        self.body_bytes: dict[str, int] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._asked = threading.Condition(self._lock)
        cls: type[_TCPServer] = _TCPServer
        if ":" in host:
            cls = type("_TCPServer6", (_TCPServer,), {"address_family": socket.AF_INET6})
        self._srv = cls((host, port), _Handler)
        self._srv.hostile = self  # type: ignore[attr-defined]
        self.host = host
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, fn: Route) -> str:
        self.routes[path] = fn
        return self.url(path)

    def note_request(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            self.request_headers.setdefault(path, []).append(headers)
            self._asked.notify_all()

    def wait_requests(self, path: str, n: int = 1, timeout: float = 30) -> bool:
        """Wait until ``path`` was asked ``n`` times; False if ``timeout`` passed first."""
        with self._asked:
            return self._asked.wait_for(lambda: self.requests.get(path, 0) >= n, timeout)

    def count_body(self, path: str, n: int) -> None:
        with self._lock:
            self.body_bytes[path] = self.body_bytes.get(path, 0) + n

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_headers.clear()
            self.body_bytes.clear()

    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def close(self) -> None:
        self.stopping.set()
        self._srv.shutdown()
        self._srv.server_close()


# --- routes: each writes its answer byte by byte as it wants -----------------------


def good(body: bytes = GOOD_BODY, content_type: str = "application/pdf") -> Route:
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", content_type),
                                     ("Content-Length", str(len(body)))], "OK"), False)
        c.send(body)
    return route


def raw(data: bytes, close_with_reset: bool = False) -> Route:
    """Send exactly ``data`` (head and body), then close."""
    def route(c: Conn) -> None:
        c.send(data, False)
        if close_with_reset:
            c.reset()
    return route


def drip_body(length: int = 100, every: float = 1.0) -> Route:
    """A complete head, then the body one byte every ``every`` seconds."""
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "text/plain"),
                                     ("Content-Length", str(length))], "OK"), False)
        for _ in range(length):
            if not c.send(b"x") or not c.sleep(every):
                return
    return route


def drip_head(every: float = 0.2, for_seconds: float = 5.0) -> Route:
    """The status line and headers, one byte at a time, never ending.

    Each byte comes well within the read timeout, so only a deadline on the
    whole attempt ends it; the server gives up after ``for_seconds``.
    """
    def route(c: Conn) -> None:
        data = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 10_000
        end = time.monotonic() + for_seconds
        for i in range(len(data)):
            if time.monotonic() > end or not c.send(data[i:i + 1], False) \
                    or not c.sleep(every):
                return
    return route


def reset_mid_body(sent: int = 20_000, declared: int = 100_000) -> Route:
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "application/pdf"),
                                     ("Content-Length", str(declared))], "OK"), False)
        c.send(GOOD_BODY[:10] + b"r" * (sent - 10))
        time.sleep(0.1)  # let the client read the start, then break the connection
        c.reset()
    return route


def length_lies(declared: int, body: bytes) -> Route:
    """``Content-Length: declared`` but ``body`` is sent, then the connection closes."""
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "text/plain"),
                                     ("Content-Length", str(declared))], "OK"), False)
        c.send(body)
    return route


def gzip_bomb(decoded: int = 10 * 1024 * 1024) -> Route:
    payload = gzip.compress(b"\0" * decoded, compresslevel=9)

    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "application/octet-stream"),
                                     ("Content-Encoding", "gzip"),
                                     ("Content-Length", str(len(payload)))], "OK"), False)
        c.send(payload)
    route.payload_size = len(payload)  # type: ignore[attr-defined]
    return route


def huge_length(declared: int = 10 * 1000**3, wait: float = 3.0) -> Route:
    """``Content-Length: 10 GB``. A client that refuses before download
    closes at once; otherwise, after ``wait``, the body starts flowing and
    is counted."""
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "application/octet-stream"),
                                     ("Content-Length", str(declared))], "OK"), False)
        if c.client_closed(wait):
            return
        chunk = b"\0" * 65536
        for _ in range(declared // len(chunk)):
            if not c.send(chunk):
                return
    return route


def huge_headers(total: int = 1024 * 1024) -> Route:
    def route(c: Conn) -> None:
        line = b"X-Junk: " + b"j" * 990 + b"\r\n"
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", False)
        for _ in range(total // len(line)):
            if not c.send(line, False):
                return
        c.send(b"Content-Length: 2\r\n\r\nok", False)
    return route


def status_line(code: str, body: bytes = b"odd status\n") -> Route:
    return raw(f"HTTP/1.1 {code} Odd\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def redirect(location: str) -> Route:
    return raw(response_head("302", [("Location", location), ("Content-Length", "0"),
                                     ("Connection", "close")], "Found"))


class SilentTLS:
    """Accepts TCP connections and never says a word: a TLS handshake that never completes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.hello_bytes = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.setblocking(False)
                self._conns.append(conn)
            except OSError:
                pass
            for conn in list(self._conns):
                try:
                    data = conn.recv(65536)  # read the ClientHello, answer nothing
                    self.hello_bytes += len(data)
                    if not data:
                        self._conns.remove(conn)
                except BlockingIOError:
                    pass
                except OSError:
                    self._conns.remove(conn)

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self.sock.close()


# --- checks of a home ----------------------------------------------------------------

MARKERS = (store.LAST, store.GONE)  # the only files a renewal replaces


def snapshot(root: str | os.PathLike[str]) -> dict[str, tuple[str, bytes]]:
    """Every file under ``root``: ("link", target) or ("file", bytes)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p).encode())
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


def assert_preserved(before: dict[str, tuple[str, bytes]], root: str | os.PathLike[str]) -> None:
    """Every earlier file is still there, byte-identical; notes only grew at their end."""
    after = snapshot(root)
    for rel, (kind, data) in before.items():
        name = os.path.basename(rel)
        if name in MARKERS:
            continue
        assert rel in after, f"{rel} disappeared"
        if name == "00notes":
            assert after[rel][1].startswith(data), f"{rel} was rewritten, not appended to"
        else:
            assert after[rel] == (kind, data), f"{rel} changed"


def assert_clean(home_root: str | os.PathLike[str]) -> None:
    """No temporary file left; every path, link targets included, inside the home."""
    root = os.path.realpath(home_root)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            assert not store.is_tmp(name), f"temporary file left: {p}"
            assert os.path.realpath(p).startswith(root + os.sep), f"{p} leaves the home"
            if os.path.islink(p):
                assert os.path.exists(p), f"dangling link {p}"


def grep_home(home_root: str | os.PathLike[str], needle: bytes,
              except_versions: bool = False) -> list[str]:
    """Every file (and name) under the home that holds ``needle``.

    ``except_versions``: do not look inside record versions, which keep
    what the record says, verbatim (a URL with a password included).
    """
    hits = []
    for dirpath, dirs, files in os.walk(home_root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if needle in os.fsencode(p):
                hits.append(p)
            elif except_versions and store.VERSION_RE.match(name):
                continue
            elif name in files and not os.path.islink(p):
                if needle in Path(p).read_bytes():
                    hits.append(p)
    return hits


# --- hostile FTP (issue 11): replies and data written line by line -------------------


class HostileFTP:
    """A raw FTP server on 127.0.0.1 (or ``::1``), port 0, misbehaving as asked.

    ``greeting_every``: the greeting is ``220-`` continuation lines, one every
    so many seconds, never ending (each line well within any read timeout).
    ``data_every``: the file's bytes come over the data connection one at a
    time, so many seconds apart. Otherwise it is a plain anonymous server
    (USER, PASS, TYPE, PASV, EPSV, RETR, QUIT) serving ``body`` for any path.
    A dripping server gives up after ``for_seconds``, so that a client without
    a deadline fails a test rather than hang it. Counts control and data
    connections.
    """

    def __init__(self, host: str = "127.0.0.1", greeting_every: float | None = None,
                 data_every: float | None = None, body: bytes = GOOD_BODY,
                 for_seconds: float = 10.0):
        self.host = host
        self.greeting_every = greeting_every
        self.data_every = data_every
        self.body = body
        self.for_seconds = for_seconds
        self.connections = 0
        self.peers: list[tuple[object, ...]] = []  # accepted control connections, in order
        self.data_connections = 0
        self.greeting_lines = 0
        self.stopping = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def url(self, path: str = "/pub/paper.pdf") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ftp://{host}:{self.port}{path}"

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self.peers.append(peer)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(10)
                end = time.monotonic() + self.for_seconds
                if self.greeting_every is not None:
                    while not self.stopping.is_set() and time.monotonic() < end:
                        conn.sendall(b"220-Welcome. Please wait.\r\n")
                        self.greeting_lines += 1
                        if self.stopping.wait(self.greeting_every):
                            return
                    return
                conn.sendall(b"220 ready\r\n")
                f = conn.makefile("rb")
                data_srv: socket.socket | None = None
                for line in f:
                    cmd = line.decode("latin-1").strip().split(" ", 1)[0].upper()
                    if cmd == "USER":
                        conn.sendall(b"331 password please\r\n")
                    elif cmd == "PASS":
                        conn.sendall(b"230 logged in\r\n")
                    elif cmd == "TYPE":
                        conn.sendall(b"200 binary\r\n")
                    elif cmd in ("PASV", "EPSV"):
                        data_srv = socket.socket(conn.family, socket.SOCK_STREAM)
                        data_srv.bind((self.host, 0))
                        data_srv.listen(1)
                        p = data_srv.getsockname()[1]
                        if cmd == "PASV":
                            h = self.host.replace(".", ",")
                            conn.sendall(f"227 passive ({h},{p >> 8},{p & 255})\r\n".encode())
                        else:
                            conn.sendall(f"229 passive (|||{p}|)\r\n".encode())
                    elif cmd == "RETR" and data_srv is not None:
                        conn.sendall(b"150 opening data connection\r\n")
                        data_srv.settimeout(5)
                        d, _ = data_srv.accept()
                        self.data_connections += 1
                        with d:
                            if self.data_every is None:
                                d.sendall(self.body)
                            else:
                                for i in range(len(self.body)):
                                    if time.monotonic() > end:
                                        return
                                    d.sendall(self.body[i:i + 1])
                                    if self.stopping.wait(self.data_every):
                                        return
                        data_srv.close()
                        conn.sendall(b"226 Transfer complete.\r\n")
                    elif cmd == "QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"502 not implemented\r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


def keep_alive(body: bytes = GOOD_BODY, hold: float = 5.0) -> Route:
    """A complete keep-alive answer, then the connection held open until the client closes it."""
    def route(c: Conn) -> None:
        c.send(response_head("200", [("Content-Type", "application/pdf"),
                                     ("Content-Length", str(len(body)))], "OK"), False)
        c.send(body)
        c.client_closed(hold)
    return route


def encoded(payload: bytes, encoding: str, length: bool = True,
            content_type: str = "application/pdf") -> Route:
    """``payload`` as it is on the wire under ``Content-Encoding: encoding``."""
    headers = [("Content-Type", content_type), ("Content-Encoding", encoding)]
    if length:
        headers.append(("Content-Length", str(len(payload))))
    else:
        headers.append(("Connection", "close"))  # the body ends when the connection does
    return raw(response_head("200", headers, "OK") + payload)


class TLSServer:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate, keep-alive, one body.

    Counts TCP connections, so a test can see a kept-alive connection reused.
    """

    def __init__(self, cert: str, key: str, body: bytes = GOOD_BODY):
        import ssl

        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.body = body
        self.connections = 0
        self.peers: list[tuple[object, ...]] = []  # accepted connections, in order
        self.requests = 0
        self.stopping = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                buf = b""
                while not self.stopping.is_set():
                    data = tls.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        _, buf = buf.split(b"\r\n\r\n", 1)
                        self.requests += 1
                        tls.sendall(response_head("200", [
                            ("Content-Type", "application/pdf"),
                            ("Content-Length", str(len(self.body)))], "OK") + self.body)
        except OSError:
            pass

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


def has_ipv6() -> bool:
    """Whether this machine has an IPv6 loopback to bind."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --- a plain HTTP site ----------------------------------------------------------------

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]


@dataclass(frozen=True)
class Received:
    """One request a :class:`Site` answered: the client's (address, port),
    which tells connections apart, and the header fields as received."""

    host: str
    path: str
    peer: tuple[object, ...]
    headers: dict[str, str]


class Site:
    """A well-behaved HTTP/1.1 server on 127.0.0.1 (keep-alive, a thread per
    connection) that records every request and answers through ``answer``.

    ``answer(host, path)`` gets the Host header's name (no port) and the path
    with its query; the default answers from :attr:`table`, keyed by path or by
    ``(host, path)``, else 404. With ``tls`` (a server-side SSLContext) it
    speaks HTTPS. :meth:`wait_requests` waits on what the server recorded, so a
    test synchronises on the request itself, never on a sleep.
    """

    def __init__(self, answer: Callable[[str, str], Answer] | None = None,
                 table: dict[object, Answer] | None = None, host: str = "127.0.0.1",
                 port: int = 0, tls: ssl.SSLContext | None = None):
        self.table: dict[object, Answer] = dict(table or {})
        self.answer = answer or self._from_table
        self.requests: list[tuple[str, str]] = []  # (host, path), in arrival order
        self.received: list[Received] = []  # every request in full, in arrival order
        self._asked = threading.Condition()
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
                site._note(host, self.path, self.client_address,
                           {k.lower(): v for k, v in self.headers.items()})
                status, headers, body = site.answer(host, self.path)
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client went away while the answer was made

            def log_message(self, *args: object) -> None:
                pass

        server_cls = type("_Threading", (http.server.ThreadingHTTPServer,),
                          {"daemon_threads": True,
                           "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        self._httpd = server_cls((host, port), Handler)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _from_table(self, host: str, path: str) -> Answer:
        got = self.table.get((host, path)) or self.table.get(path)
        return got if got is not None else (404, [("Content-Type", "text/plain")], b"not here")

    def _note(self, host: str, path: str, peer: tuple[object, ...] = (),
              headers: dict[str, str] | None = None) -> None:
        with self._asked:
            self.requests.append((host, path))
            self.received.append(Received(host, path, tuple(peer), headers or {}))
            self._asked.notify_all()

    def url(self, path: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

    def asked(self, path: str) -> int:
        """How many times ``path`` was asked so far."""
        with self._asked:
            return sum(1 for _, p in self.requests if p == path)

    def wait_requests(self, n: int = 1, path: str | None = None, timeout: float = 30) -> bool:
        """Wait until ``n`` requests (of ``path``, or of anything) arrived."""
        with self._asked:
            return self._asked.wait_for(
                lambda: sum(1 for _, p in self.requests if path in (None, p)) >= n, timeout)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- waiting on events, never on the clock ---------------------------------------------

def wait_until(ready: Callable[[], object], timeout: float = 30, every: float = 0.02) -> bool:
    """Wait until ``ready()`` is true (an event a server or the store recorded);
    False if ``timeout`` seconds pass first. Bounded: a test fails, never hangs."""
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end:
            return False
        time.sleep(every)
    return True


def accepted_before_now(server: HostileFTP | TLSServer, host: str = "127.0.0.1",
                        timeout: float = 10) -> list[tuple[object, ...]]:
    """The connections ``server`` accepted before this call.

    A sentinel connection is dialled and waited for; a listening socket accepts
    in arrival order, so every connection dialled before it is counted by then.
    This proves that something was *not* dialled without sleeping on a guess.
    """
    with socket.create_connection((host, server.port), timeout=timeout) as s:
        me = s.getsockname()
        if not wait_until(lambda: any(p[:2] == me[:2] for p in server.peers), timeout):
            raise AssertionError(f"the sentinel connection {me} was never accepted")
        peers = list(server.peers)
    return peers[:next(i for i, p in enumerate(peers) if p[:2] == me[:2])]
