"""The run log, ``var/log/<tist>.log``: every problem, every failing object,
one line per record. Not precious: a full disk loses lines, not the run; but
how the run ended is always written (:class:`Reserve`, :meth:`RunLog.write_last`)."""

from __future__ import annotations

import os
import socket
import threading
import time

from kiel.text import printable


def unique_path(directory: str, stem: str, ext: str) -> str:
    """``<stem><ext>``, or ``<stem>.<n><ext>`` when a run in the same second
    took it: created here, exclusively, so no run overwrites another's."""
    n = 0
    while True:
        name = f"{stem}{ext}" if n == 0 else f"{stem}.{n}{ext}"
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return path


RESERVE_BYTES = 16 * 1024


class Reserve:
    """Room held on ``var/``'s filesystem from a run's start, freed at its end
    so that the summary and the log's last lines can be written even when the
    run filled the disk. A reserve left by a run that was killed is removed by
    the next run on its host (its process is gone)."""

    def __init__(self, directory: str, size: int = RESERVE_BYTES):
        # Named by host and process: runs of several machines (shards) may share a home.
        host = socket.gethostname().replace("-", "_") or "host"
        self.path = os.path.join(directory, f"reserve-{host}-{os.getpid()}")
        for name in os.listdir(directory):
            owner, _, pid = name[len("reserve-"):].rpartition("-")
            if name.startswith("reserve-") and owner == host and pid.isdigit() \
                    and not _alive(int(pid)):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            os.close(fd)
            self.free()
            raise
        os.close(fd)

    def free(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class RunLog:
    def __init__(self, path: str):
        self.path = path
        # Buffered: the log is not precious, and a write per line costs a syscall.
        self._f = open(path, "a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{stamp} {printable(text)}\n"
        with self._lock:
            try:
                self._f.write(line)
            except (OSError, ValueError):
                pass  # the log is not precious; a full disk is reported by the run

    def flush(self) -> None:
        with self._lock:
            try:
                self._f.flush()
            except (OSError, ValueError):
                pass

    def write_last(self, *texts: str) -> None:
        """The run's last lines, after what is buffered; written even when a
        full disk lost earlier writes (the run's reserve was freed for them)."""
        self.flush()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data = "".join(f"{stamp} {printable(t)}\n" for t in texts).encode("utf-8")
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                try:
                    while data:
                        data = data[os.write(fd, data):]
                finally:
                    os.close(fd)
            except OSError:
                pass  # no room even now: the summary says how the run ended

    def reopen(self) -> None:
        """In a worker process: a file of its own, written a line at a time,
        so that the processes' lines never interleave within a line."""
        self._f = open(self.path, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            try:
                self._f.close()
            except OSError:
                pass

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
