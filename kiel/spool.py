"""An external merge sort of byte lines, so that a run over millions of
records orders them (oldest ``00last`` first), finds duplicate ids and the
records gone from the input without holding the collection in memory.

One implementation of sorted chunk files and their merge serves this
sort and the OAI-PMH index build (:func:`write_chunk`, :func:`merge`).
Lines are sorted as bytes; callers build keys that sort right (zero-padded
numbers, path components joined by ``\\x00``). Chunks go to temporary files
under ``var/`` (nothing precious) and are merged with :func:`heapq.merge`.
"""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
from collections.abc import Iterator

from kiel.store import tmp_name


def write_chunk(directory: str, name: str, lines: list[bytes]) -> str:
    """Sort ``lines`` (each ending in a newline) into ``directory/name``,
    atomically (a temporary name, then ``rename``): a chunk file that exists
    is complete, so a killed sort resumes from its chunks."""
    lines.sort()
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, tmp_name())
    with open(tmp, "wb") as f:
        f.writelines(lines)
    os.rename(tmp, path)
    return path


def merge(paths: list[str]) -> Iterator[bytes]:
    """The lines of sorted chunk files, in order (newlines kept); every file is
    closed however the caller stops reading."""
    handles = [open(p, "rb") for p in paths]
    try:
        yield from heapq.merge(*handles)
    finally:
        for h in handles:
            h.close()


class ExternalSort:
    def __init__(self, workdir: str, chunk_bytes: int = 1024 * 1024):
        self.workdir = workdir
        self.chunk_bytes = chunk_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._files: list[str] = []
        self._tmpdir: str | None = None
        self.count = 0

    def add(self, line: bytes) -> None:
        if b"\n" in line:
            raise ValueError("spool lines hold no newline")
        self._lines.append(line)
        self._size += len(line) + 64
        self.count += 1
        if self._size >= self.chunk_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._lines:
            return
        if self._tmpdir is None:
            os.makedirs(self.workdir, exist_ok=True)
            self._tmpdir = tempfile.mkdtemp(prefix="sort-", dir=self.workdir)
        self._lines.sort()
        path = os.path.join(self._tmpdir, f"{len(self._files):06d}")
        with open(path, "wb") as f:
            for line in self._lines:
                f.write(line + b"\n")
        self._files.append(path)
        self._lines = []
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        if not self._files:
            self._lines.sort()
            lines, self._lines = self._lines, []
            yield from lines
            return
        self._flush()
        handles = [open(p, "rb") for p in self._files]
        try:
            yield from heapq.merge(*[(ln[:-1] for ln in h) for h in handles])
        finally:
            for h in handles:
                h.close()
            self.cleanup()

    def cleanup(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._files = []
        self._lines = []
