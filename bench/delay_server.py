"""A static HTTP/1.1 server that waits a fixed delay before each answer.

The network-like case of the benchmarks: every request (GET or HEAD) waits
``--delay`` seconds, then is answered from ``--root`` like nginx would:
200 with ``Content-Length``, ``Last-Modified`` and an nginx-style ``ETag``;
304 to a matching ``If-None-Match`` or a not-older ``If-Modified-Since``;
301 for the paths of ``--redirects`` (a JSON object path -> Location);
404 otherwise. Connections are kept alive. Bodies go out with
``loop.sendfile`` (``sendfile(2)``), so the server spends its CPU on
headers only; ``--workers`` processes share the port with ``SO_REUSEPORT``.

Usage: ``python bench/delay_server.py --root DIR --port P [--delay 0.05]
[--redirects FILE] [--workers 2]``; listens on 0.0.0.0 (every 127.0.0.K).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import signal
import socket
import sys
import urllib.parse

NOT_FOUND = (b"<html><head><title>404 Not Found</title></head>"
             b"<body><h1>404 Not Found</h1></body></html>\n")


class Server:
    def __init__(self, root: str, delay: float, redirects: dict[str, str]):
        self.root = os.path.realpath(root)
        self.delay = delay
        self.redirects = redirects

    def _resolve(self, target: str) -> str | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
        full = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if not full.startswith(self.root + os.sep):
            return None
        return full

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                connection = headers.get("connection", "").lower()
                keep = (version == "HTTP/1.1" and connection != "close") or \
                    connection == "keep-alive"
                await asyncio.sleep(self.delay)
                await self._answer(loop, writer, method, target, headers, keep)
                if not keep:
                    return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _answer(self, loop, writer, method, target, headers, keep) -> None:
        conn = b"keep-alive" if keep else b"close"
        path = urllib.parse.urlsplit(target).path
        if method not in ("GET", "HEAD"):
            return self._send(writer, b"405 Not Allowed", [], b"", conn, method)
        if path in self.redirects:
            body = b"<html><body>Moved</body></html>\n"
            return self._send(writer, b"301 Moved Permanently",
                              [(b"Location", self.redirects[path].encode())], body, conn, method)
        full = self._resolve(target)
        try:
            f = open(full, "rb") if full else None
        except OSError:
            f = None
        if f is None:
            return self._send(writer, b"404 Not Found", [(b"Content-Type", b"text/html")],
                              NOT_FOUND, conn, method)
        with f:
            st = os.fstat(f.fileno())
            etag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
            lm = email.utils.formatdate(int(st.st_mtime), usegmt=True)
            ctype = b"application/pdf" if full.endswith(".pdf") else \
                b"text/html" if full.endswith(".html") else b"application/octet-stream"
            extra = [(b"Content-Type", ctype), (b"Last-Modified", lm.encode()),
                     (b"ETag", etag.encode())]
            inm = headers.get("if-none-match")
            ims = headers.get("if-modified-since")
            not_modified = False
            if inm is not None:
                not_modified = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
            elif ims is not None:
                try:
                    since = email.utils.parsedate_to_datetime(ims).timestamp()
                    not_modified = since >= int(st.st_mtime)
                except (TypeError, ValueError):
                    pass
            if not_modified:
                return self._send(writer, b"304 Not Modified", extra, b"", conn, "HEAD")
            writer.write(self._head(b"200 OK", extra, st.st_size, conn))
            if method == "GET" and st.st_size:
                await writer.drain()
                await loop.sendfile(writer.transport, f, 0, st.st_size)
            await writer.drain()

    @staticmethod
    def _head(status: bytes, extra, length: int, conn: bytes) -> bytes:
        out = [b"HTTP/1.1 " + status, b"Server: kiel-bench-delay",
               b"Date: " + email.utils.formatdate(usegmt=True).encode(),
               b"Content-Length: " + str(length).encode(), b"Connection: " + conn]
        out += [k + b": " + v for k, v in extra]
        return b"\r\n".join(out) + b"\r\n\r\n"

    def _send(self, writer, status, extra, body, conn, method) -> None:
        writer.write(self._head(status, extra, len(body), conn)
                     + (body if method != "HEAD" else b""))


async def serve(args: argparse.Namespace) -> None:
    redirects = {}
    if args.redirects:
        with open(args.redirects, encoding="utf-8") as f:
            redirects = json.load(f)
    srv = Server(args.root, args.delay, redirects)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    server = await asyncio.start_server(srv.handle, sock=sock, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _run(args: argparse.Namespace) -> None:
    asyncio.run(serve(args))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="static server with a fixed delay per answer")
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--redirects")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            _run(args)
            os._exit(0)
        children.append(pid)

    def _forward(signum, _frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _forward)
    try:
        _run(args)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
