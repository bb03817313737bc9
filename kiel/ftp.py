"""Fetching ``ftp://`` objects: anonymous login, passive mode, binary.

The status of an FTP attempt is the FTP reply code of the transfer: ``226``
(or ``250``) when the file arrived complete, the error reply otherwise
(``550`` no such file, ``530`` login refused...), ``000`` when no reply came
(docs/contract.md, Objects). The body is streamed and hashed like HTTP's.

Both connections, control and data, are made by :func:`kiel.netguard.dial`:
the address dialled is checked, and every read and write on them meets the
attempt's total deadline, so a server sending ``220-`` lines forever ends
with the attempt (``000``, error ``timeout``).
"""

from __future__ import annotations

import ftplib
import os
import socket
import threading
import time
from urllib.parse import unquote, urlsplit

from kiel import mediatype, netguard
from kiel.attempt import BodySink, Headers, Limits, Result, classify
from kiel.decode import TooLarge
from kiel.netguard import Cancelled, Deadline, Denied
from kiel.store import tmp_name, unlink_quiet


def _reply_code(exc: BaseException) -> str | None:
    text = str(exc)
    code = text[:3]
    return code if code.isdigit() else None


def _last_line(reply: str) -> Headers:
    lines = [x for x in reply.splitlines() if x.strip()]
    return (("reply", lines[-1]),) if lines else ()


class _GuardedFTP(ftplib.FTP):
    """ftplib over guarded sockets: both connections dialled by the network guard."""

    def __init__(self, limits: Limits, guard: netguard.Policy | None,
                 resolver: netguard.Resolver):
        super().__init__(timeout=limits.connect_timeout)
        self.limits = limits
        self.guard = guard
        self.resolver = resolver
        self.address: str | None = None

    def _dial(self, host: str, port: int) -> netguard.GuardedSocket:
        sock: netguard.GuardedSocket
        sock, verdict = netguard.dial(host, port, self.guard, self.limits.connect_timeout,
                                      resolver=self.resolver,
                                      sock_class=netguard.GuardedSocket)
        sock.io_timeout = self.limits.read_timeout
        if self.address is None:
            self.address = verdict.address
        return sock

    def open(self, host: str, port: int) -> str:
        """``connect``, with the control connection dialled by the guard."""
        self.host, self.port = host, port
        self.sock = self._dial(host, port)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket,
                                                                            int | None]:
        # Passive only. ftplib dials the data address the server names
        # itself; here the guard dials it, and judges it like any other.
        host, port = self.makepasv()
        conn = self._dial(host, port)
        try:
            if rest is not None:
                self.sendcmd(f"REST {rest}")
            resp = self.sendcmd(cmd)
            if resp[0] == "2":  # a 200 before the 150 (see ftplib)
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
        except BaseException:
            conn.close()
            raise
        size = ftplib.parse150(resp) if resp[:3] == "150" else None
        return conn, size


def fetch(url: str, directory: str, limits: Limits, started: float | None = None, *,
          guard: netguard.Policy | None = None, stop: threading.Event | None = None,
          resolver: netguard.Resolver = netguard.system_resolver) -> Result:
    started = time.time() if started is None else started
    t0 = time.monotonic()
    deadline = t0 + limits.total_timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    tmp = None
    ftp = _GuardedFTP(limits, guard, resolver)

    def failed(status: str, error: str | None, detail: str, reply: str = "",
               address: str | None = None) -> Result:
        if tmp:
            unlink_quiet(tmp)
        return Result(url, started, status, "none", None, 0, None, None, None, None,
                      error, detail, time.monotonic() - t0,
                      address=address or ftp.address, headers=_last_line(reply))

    try:
        with netguard.attempt(netguard.Budget(deadline, stop)):
            try:
                port = parts.port or 21
                user = unquote(parts.username) if parts.username else "anonymous"
                password = unquote(parts.password) if parts.password else "kiel@"
                path = unquote(parts.path or "/")
                ftp.open(host, port)
                ftp.login(user, password)
                ftp.voidcmd("TYPE I")
                tmp = os.path.join(directory, tmp_name())
                with BodySink(tmp, limits.max_body) as sink:
                    conn = ftp.transfercmd("RETR " + path)
                    with conn:
                        while True:
                            if time.monotonic() > deadline:
                                raise Deadline(f"total_timeout {limits.total_timeout}s reached")
                            chunk = conn.recv(65536)
                            if not chunk:
                                break
                            sink.add(chunk)
                reply = ftp.voidresp()
                status = reply[:3]
            except ftplib.error_perm as e:
                code = _reply_code(e) or "000"
                return failed(code, None if code != "000" else "protocol", str(e)[:300], str(e))
            except ftplib.error_temp as e:
                code = _reply_code(e) or "000"
                return failed(code, None, str(e)[:300], str(e))
            except Denied as e:
                return failed("000", "denied", str(e), address=e.verdict.address)
            except (OSError, EOFError, ftplib.Error, TooLarge, Deadline, Cancelled,
                    ValueError) as e:
                # (a StoreError from the sink is not caught here: our disk stops the run)
                if isinstance(e, TimeoutError):
                    error, detail = "timeout", str(e) or "timed out"
                else:
                    error, detail = classify(e)
                    if isinstance(e, (EOFError, ftplib.Error)):
                        error = "protocol"
                return failed("000", error, detail)
    finally:
        try:
            ftp.close()
        except OSError:
            pass
    return Result(url, started, status, mediatype.attempt_type(bytes(sink.head), None), None,
                  sink.size, sink.sha256.hexdigest(), sink.sha1.hexdigest(), tmp, None, None,
                  None, time.monotonic() - t0, address=ftp.address, headers=_last_line(reply))
