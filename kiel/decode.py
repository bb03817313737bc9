"""Honest decoding of a response body's ``Content-Encoding``.

A body is kept as a complete response only when its decoding reached the
end of every stream: a gzip stream missing its last bytes is
:class:`Truncated`, never stored as if whole. Multi-member gzip (as pigz and
bgzip write) is decoded whole; ``deflate`` is taken zlib-wrapped (RFC 9110)
or raw (what many servers send); stacked codings (``gzip, gzip``) are
undone one after the other. A coding Kiel cannot undo (``br``, ``zstd``,
``compress``...) leaves the body stored as received, and
:attr:`Decoder.stored_encoding` names it for the notes.

Every stage is bounded: no output piece exceeds :data:`PIECE` bytes, and no
stage produces more than ``limit`` bytes in all (:class:`TooLarge`), so a
bomb costs neither memory nor disk.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

PIECE = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class TooLarge(Exception):
    pass


class Truncated(Exception):
    """The body ended before its encoded stream did."""


def _zlib_header(two: bytes) -> bool:
    # RFC 1950: CM = 8 (deflate), and CMF*256 + FLG a multiple of 31.
    return len(two) == 2 and two[0] & 0x0F == 8 and (two[0] * 256 + two[1]) % 31 == 0


class _Stage:
    """One coding undone: gzip (any number of members) or deflate."""

    def __init__(self, coding: str, limit: int):
        self.coding = coding
        self.limit = limit
        self.out = 0
        self.z: zlib._Decompress | None = None
        self.started = False  # a stream (or gzip member) has begun
        self.ended = False  # the last stream reached its end
        self.head = b""  # the first bytes, held back until the format is known

    def _open(self, first: bytes) -> None:
        if first == _GZIP_MAGIC:
            wbits = 16 + zlib.MAX_WBITS
        elif self.coding == "gzip":
            raise zlib.error(f"gzip body does not start with a gzip header ({first.hex()})")
        elif _zlib_header(first):
            wbits = zlib.MAX_WBITS
        else:
            wbits = -zlib.MAX_WBITS  # raw deflate
        self.z = zlib.decompressobj(wbits)
        self.started, self.ended = True, False

    def _count(self, piece: bytes) -> bytes:
        self.out += len(piece)
        if self.out > self.limit:
            raise TooLarge("decoded body larger than max_body")
        return piece

    def feed(self, data: bytes) -> Iterator[bytes]:
        buf = self.head + data
        self.head = b""
        while buf:
            if self.z is None:
                # After a complete stream: another gzip member, or padding.
                if self.ended and (self.coding != "gzip"
                                   or not _GZIP_MAGIC.startswith(buf[:2])):
                    if buf.strip(b"\0"):
                        raise zlib.error("data after the end of the compressed stream")
                    return  # NUL padding, as tape-era tools wrote it
                if len(buf) < 2:
                    self.head = buf
                    return
                self._open(buf[:2])
            assert self.z is not None
            while True:
                piece = self.z.decompress(buf, PIECE)
                if piece:
                    yield self._count(piece)
                buf = self.z.unconsumed_tail
                # A full piece may leave output inside zlib with no input left.
                if self.z.eof or (not buf and len(piece) < PIECE):
                    break
            if self.z.eof:
                buf = self.z.unused_data
                self.z = None
                self.ended = True

    def finish(self) -> Iterator[bytes]:
        if self.head:
            raise Truncated(f"{self.coding} stream cut after {len(self.head)} byte(s)")
        if self.z is not None:
            piece = self.z.flush()
            if piece:
                yield self._count(piece)
            if not self.z.eof:
                raise Truncated(f"{self.coding} stream ended before its end marker "
                                f"({self.out} bytes decoded)")
        # nothing at all (a 304, an empty redirect body) is an empty body


class Decoder:
    """Undo ``Content-Encoding`` where Kiel can, bounded by ``limit`` per stage."""

    def __init__(self, header: str | None, limit: int):
        codings = [c.strip().lower() for c in (header or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        codings = ["gzip" if c == "x-gzip" else c for c in codings]
        self.limit = limit
        self.stages: list[_Stage] = []
        self.stored_encoding: str | None = None
        if any(c not in ("gzip", "deflate") for c in codings):
            # Stored as received: the notes name what it is still wrapped in.
            self.stored_encoding = ", ".join(codings)
        else:
            # The last coding listed was applied last: it is undone first.
            self.stages = [_Stage(c, limit) for c in reversed(codings)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of the next bytes of the body."""
        return self._through(0, [data])

    def finish(self) -> Iterator[bytes]:
        """The last pieces; :class:`Truncated` when a stream did not end."""
        for i, stage in enumerate(self.stages):
            yield from self._through(i + 1, stage.finish())

    def _through(self, first: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        if first == len(self.stages):
            for p in pieces:
                if p:
                    yield p
            return
        stage = self.stages[first]
        for p in pieces:
            yield from self._through(first + 1, stage.feed(p))
