"""An external merge sort of byte lines, so that a run over millions of
records orders them (oldest ``00last`` first), finds duplicate ids and the
records gone from the input without holding the collection in memory.

One implementation of sorted chunk files and their merge serves this
sort and the OAI-PMH index build (:func:`write_chunk`, :func:`merge`).
Lines are sorted as bytes; callers build keys that sort right (zero-padded
numbers, path components joined by ``\\x00``). Chunks go to temporary files
under ``var/`` (nothing precious) and are merged with :func:`heapq.merge`,
at most :func:`fan_in` files at a time: more chunks than that (7 million
URLs make over a thousand chunks of 1 MiB) are first merged in groups into
intermediate files, pass after pass, so a sort of any size fits a 1 024
open-files limit.
"""

from __future__ import annotations

import heapq
import os
import resource
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


FAN_IN = 64  # files merged at once, at most
CHUNK_BYTES = 1024 * 1024  # an ExternalSort's chunk, by default


def fan_in() -> int:
    """Files one merge step opens: :data:`FAN_IN`, fewer when the open-files
    limit is low (an eighth of it, at least 2), so that the run's sockets,
    notes and bodies keep the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return FAN_IN
    return max(2, min(FAN_IN, soft // 8))


def _merged(paths: list[str], strip: bool) -> Iterator[bytes]:
    """The lines of ``paths`` (at most :func:`fan_in` of them) in order; with
    ``strip``, compared and yielded without their newline."""
    handles = [open(p, "rb") for p in paths]
    try:
        if strip:
            yield from heapq.merge(*[(ln[:-1] for ln in h) for h in handles])
        else:
            yield from heapq.merge(*handles)
    finally:
        for h in handles:
            h.close()


def _reduce(paths: list[str], strip: bool) -> tuple[list[str], list[str]]:
    """Merge ``paths`` in groups into intermediate files (beside the first
    path, under temporary names) until at most :func:`fan_in` remain.
    Returns the paths left to merge and the intermediates still on disk
    (the caller removes them); an intermediate is removed as soon as the
    next pass has read it, and all of them if this fails."""
    k = fan_in()
    made: list[str] = []
    try:
        while len(paths) > k:
            directory = os.path.dirname(paths[0])
            nxt: list[str] = []
            for i in range(0, len(paths), k):
                group = paths[i:i + k]
                if len(group) == 1:
                    nxt.append(group[0])
                    continue
                out = os.path.join(directory, tmp_name())
                made.append(out)
                with open(out, "wb") as f:
                    if strip:
                        for line in _merged(group, True):
                            f.write(line + b"\n")
                    else:
                        f.writelines(_merged(group, False))
                for p in group:
                    if p in made:
                        os.unlink(p)
                        made.remove(p)
                nxt.append(out)
            paths = nxt
    except BaseException:
        _unlink_all(made)
        raise
    return paths, made


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def merge(paths: list[str]) -> Iterator[bytes]:
    """The lines of sorted chunk files, in order (newlines kept), opening at
    most :func:`fan_in` files at a time; every file is closed, and every
    intermediate removed, however the caller stops reading."""
    last, made = _reduce(list(paths), False)
    try:
        yield from _merged(last, False)
    finally:
        _unlink_all(made)


class ExternalSort:
    def __init__(self, workdir: str, chunk_bytes: int | None = None):
        self.workdir = workdir
        self.chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
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
        try:
            last, _made = _reduce(self._files, True)
            # Intermediates live in the sort's own directory: cleanup removes them.
            yield from _merged(last, True)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._files = []
        self._lines = []
