"""Checksums of bytes read in chunks: the one loop that hashes a file or a stream.

A stored body, a version file and a member of a deposit's bundle are all
hashed here, in chunks of :data:`CHUNK` bytes, each algorithm fed the same
chunk, the size counted on the way. (A body being fetched is hashed as it
is written, by ``fetch.BodySink``.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

CHUNK = 1 << 20
# The checksums a platform may declare and Kiel computes, strongest first:
# a file is judged by the strongest one both sides know.
ALGORITHMS = ("sha256", "sha1", "md5")


class Hashes:
    """Running checksums of one stream, by algorithm (hashlib's names), and its size."""

    def __init__(self, algorithms: Iterable[str]):
        self._hashers = {alg: hashlib.new(alg) for alg in dict.fromkeys(algorithms)}
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        for h in self._hashers.values():
            h.update(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {alg: h.hexdigest() for alg, h in self._hashers.items()}


def chunks(read: Callable[[int], bytes], most: int | None = None) -> Iterator[bytes]:
    """What ``read(n)`` gives, chunk by chunk, until it gives nothing or, with
    ``most``, until ``most`` bytes were read (never more)."""
    got = 0
    while most is None or got < most:
        chunk = read(CHUNK if most is None else min(CHUNK, most - got))
        if not chunk:
            return
        got += len(chunk)
        yield chunk


def digest_file(path: str, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Size and checksums (hex, by algorithm) of a stored file, read once in chunks."""
    hashes = Hashes(algorithms)
    with open(path, "rb") as f:
        for chunk in chunks(f.read):
            hashes.update(chunk)
    return hashes.size, hashes.hexdigests()
