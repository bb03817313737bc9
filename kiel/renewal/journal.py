"""The run's journal of records in flight, for the repair after a crash.

A run notes in ``var/run-<tist>-<pid>/journal`` each record it starts and
ends. A run killed in between (SIGKILL, power cut) leaves its work
directory behind; the next run reads the journal of every such directory
whose process is gone, and repairs only those records' object
directories (temporary files, attempts without a notes line). So a
renewal never lists object directories that no crash touched.
"""

from __future__ import annotations

import os
import shutil
import threading

from kiel.store import pid_alive
from kiel.workdir import JOURNAL as JOURNAL  # re-exported: run.py names it journal.JOURNAL
from kiel.workdir import pid_of


class Journal:
    """A record's start is written at once, before the record's first write;
    its end waits for the next start (a lost end only means a repair more)."""

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, JOURNAL)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._ended: list[str] = []
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        if self._fd >= 0:
            os.write(self._fd, text.encode("utf-8", "surrogateescape"))

    def started(self, rel: str) -> None:
        with self._lock:
            ended, self._ended = self._ended, []
        self._write("".join(ended) + f"+{rel}\n")

    def ended(self, rel: str) -> None:
        with self._lock:
            self._ended.append(f"-{rel}\n")

    def close(self) -> None:
        if self._fd >= 0:
            with self._lock:
                ended, self._ended = self._ended, []
            if ended:
                self._write("".join(ended))
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unfinished(var_dir: str) -> tuple[set[str], list[str]]:
    """Records that crashed runs started and did not end, and the work
    directories of those runs (for the caller to remove once repaired)."""
    dirty: set[str] = set()
    dead: list[str] = []
    try:
        names = os.listdir(var_dir)
    except FileNotFoundError:
        return dirty, dead
    for name in names:
        pid = pid_of(name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        path = os.path.join(var_dir, name)
        dead.append(path)
        try:
            with open(os.path.join(path, JOURNAL), "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        continue
                    rel = raw[1:-1].decode("utf-8", "surrogateescape")
                    if raw[:1] == b"+":
                        dirty.add(rel)
                    elif raw[:1] == b"-":
                        dirty.discard(rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return dirty, dead


def remove(paths: list[str]) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
