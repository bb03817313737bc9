"""The run log, ``var/log/<tist>.log``: every problem, every failing object,
one line per record. Not precious: a full disk loses lines, not the run."""

from __future__ import annotations

import os
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
