"""Fetching ``ftp://`` objects: anonymous login, passive mode, binary.

The status of an FTP attempt is the FTP reply code of the transfer: ``226``
(or ``250``) when the file arrived complete, the error reply otherwise
(``550`` no such file, ``530`` login refused...), ``000`` when no reply came
(DESIGN.md, Objects). The body is streamed and hashed like HTTP's.
"""

from __future__ import annotations

import ftplib
import os
import socket
import time
from urllib.parse import unquote, urlsplit

from kiel import mediatype
from kiel.fetch import BodySink, Deadline, Limits, Result, TooLarge, classify
from kiel.store import tmp_name, unlink_quiet


def _reply_code(exc: BaseException) -> str | None:
    text = str(exc)
    code = text[:3]
    return code if code.isdigit() else None


def fetch(url: str, directory: str, limits: Limits, started: float | None = None) -> Result:
    started = time.time() if started is None else started
    t0 = time.monotonic()
    deadline = t0 + limits.total_timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 21
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password else "kiel@"
    path = unquote(parts.path or "/")
    tmp = None
    ftp = ftplib.FTP(timeout=limits.connect_timeout)
    try:
        try:
            ftp.connect(host, port)
            ftp.sock.settimeout(limits.read_timeout)
            ftp.login(user, password)
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
            tmp = os.path.join(directory, tmp_name())
            with BodySink(tmp, limits.max_body) as sink:
                conn = ftp.transfercmd("RETR " + path)
                with conn:
                    conn.settimeout(limits.read_timeout)
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
            if tmp:
                unlink_quiet(tmp)
            return Result(url, started, code, "none", None, 0, None, None, None, None,
                          None if code != "000" else "protocol", str(e)[:300],
                          time.monotonic() - t0)
        except ftplib.error_temp as e:
            if tmp:
                unlink_quiet(tmp)
            code = _reply_code(e) or "000"
            return Result(url, started, code, "none", None, 0, None, None, None, None,
                          None, str(e)[:300], time.monotonic() - t0)
        except (OSError, EOFError, ftplib.Error, TooLarge, Deadline) as e:
            # (a StoreError from the sink is not caught here: our disk stops the run)
            if tmp:
                unlink_quiet(tmp)
            if isinstance(e, socket.timeout):
                error, detail = "timeout", str(e)
            else:
                error, detail = classify(e)
                if isinstance(e, (EOFError, ftplib.Error)):
                    error = "protocol"
            return Result(url, started, "000", "none", None, 0, None, None, None, None,
                          error, detail, time.monotonic() - t0)
    finally:
        try:
            ftp.close()
        except OSError:
            pass
    return Result(url, started, status, mediatype.attempt_type(bytes(sink.head), None), None,
                  sink.size, sink.sha256.hexdigest(), sink.sha1.hexdigest(), tmp, None, None,
                  None, time.monotonic() - t0)

