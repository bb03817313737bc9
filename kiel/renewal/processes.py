"""Worker processes: the planned records shared out among N processes.

The parent scans and plans once; each record goes to one worker process,
chosen by the connected component of the URLs it shares with others
(:attr:`kiel.renewal.scan.Scanned.components`), so that a shared URL is
still fetched once and linked by the other records, all in one process.
Records travel as one JSON line each through a pipe per worker; a worker
renews them on its own event loop and sends its counts back through a
second pipe (nothing on disk: a full disk still gets its report), which
the parent merges. Only the parent marks
records gone, and only when every worker ended cleanly: a worker killed
ends the run as interrupted, and nothing is marked gone.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kiel import faults, urls
from kiel.renewal.plan import Planned

PIPE_SIZE = 1 << 20  # bytes of records queued for one worker


def count(setting: int, per_host: int, host_delay: float) -> int:
    """Processes a run uses: the setting (0: one per core), never more than
    ``per_host`` (each process gets its share of a host's connections) and
    one when hosts ask for a delay between requests (kept by one process)."""
    n = setting or os.cpu_count() or 1
    if host_delay > 0:
        return 1
    return max(1, min(n, per_host))


def worker_of(p: Planned, components: dict[str, str], n: int) -> int:
    """The worker of a record: by its component's first record, else its own directory."""
    key = components.get(p.rel, p.rel)
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % n


def encode(p: Planned) -> bytes:
    """One line for the pipe: the scan's own JSON of the record when the
    plan kept it (the same keys; :func:`decode` reads both), else encoded here."""
    if p.raw and not p.duplicates:
        return p.raw + b"\n"
    return json.dumps({
        "id": p.id, "rel": p.rel, "src": p.source, "xml": p.xml.decode("utf-8"),
        "t": [[t.fetch, t.name] for t in p.targets], "u": p.urls, "s": p.skipped,
        "d": sorted(p.discover), "dup": list(p.duplicates), "l": p.last_end,
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape") + b"\n"


def decode(line: bytes) -> Planned:
    e = json.loads(line)
    return Planned(e["id"], e["rel"], e["src"], e["xml"].encode("utf-8"),
                   tuple(urls.Target(f, n) for f, n in e["t"]), e["u"], e["s"],
                   frozenset(e.get("d", ())), tuple(e.get("dup", ())), e.get("l"))


async def records_from(fd: int) -> AsyncIterator[Planned]:
    """The records the parent sends down ``fd``, read on the loop (a worker
    waiting for records still serves its fetches)."""
    import asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            yield decode(line)
    finally:
        transport.close()


@dataclass
class Worker:
    pid: int
    fd: int  # the write end of its records' pipe, -1 once closed
    result: int  # the read end of the pipe its counts come back through


class Feeder:
    """The parent's side: one pipe per worker, written without blocking the
    watch over the stop and over workers that died."""

    def __init__(self, workers: list[Worker], stopping: Callable[[], bool],
                 on_stop: Callable[[], None], tick: Callable[[], None] = lambda: None):
        self.workers = workers
        self.stopping = stopping
        self.on_stop = on_stop
        self.tick = tick
        self.broken = False  # a worker's pipe closed early: it died

    def send(self, k: int, data: bytes) -> bool:
        """Queue ``data`` for worker ``k``; False when the run stops or a worker died."""
        w = self.workers[k]
        view = memoryview(data)
        poller = select.poll()
        poller.register(w.fd, select.POLLOUT)
        while view:
            if self.stopping():
                self.on_stop()
                return False
            if not poller.poll(100):
                self.tick()
                continue
            try:
                view = view[os.write(w.fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self.broken = True
                return False
        return True

    def close(self) -> None:
        for w in self.workers:
            if w.fd >= 0:
                os.close(w.fd)
                w.fd = -1


def feed(records: Iterable[Planned], feeder: Feeder, components: dict[str, str],
         n: int) -> int:
    """Send each record to its worker; the records not sent (0 or 1: the one
    refused when the run stopped or a worker died; the caller counts the rest)."""
    for p in records:
        if not feeder.send(worker_of(p, components, n), encode(p)):
            return 1
    return 0


def start(n: int, child: Callable[[int, int, int], None]) -> list[Worker]:
    """Fork ``n`` workers; ``child(k, records_fd, result_fd)`` runs in each and
    never returns (it ends with ``os._exit``)."""
    import fcntl

    workers: list[Worker] = []
    for k in range(n):
        r, w = os.pipe()
        rr, rw = os.pipe()
        try:
            fcntl.fcntl(w, 1031, PIPE_SIZE)  # F_SETPIPE_SZ: Linux only, best effort
        except OSError:
            pass
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child ends in os._exit
            _die_with(parent)
            os.close(w)
            os.close(rr)
            for other in workers:  # siblings' pipes: theirs to close
                os.close(other.fd)
                os.close(other.result)
            child(k, r, rw)
            os._exit(70)
        os.close(r)
        os.close(rw)
        os.set_blocking(w, False)
        workers.append(Worker(pid, w, rr))
    return workers


def _die_with(parent: int) -> None:
    """A worker never outlives its run: the kernel kills it when the parent
    dies (``PR_SET_PDEATHSIG``, Linux), and fault injection kills the parent."""
    import ctypes

    faults.parent = parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(70)  # the parent died before the line above


class Board:
    """What each worker has done so far, in memory shared with the parent
    (an anonymous shared mapping made before the fork): records done, objects
    found on the way, objects done, fetches under way, bytes fetched. The
    parent's progress line adds them up."""

    FIELDS = 5
    _FMT = "5q"

    def __init__(self, n: int):
        import mmap

        self.n = n
        self._mem = mmap.mmap(-1, 8 * self.FIELDS * n)

    def post(self, k: int, *values: int) -> None:
        struct.pack_into(self._FMT, self._mem, 8 * self.FIELDS * k, *values)

    def totals(self) -> tuple[int, ...]:
        rows = [struct.unpack_from(self._FMT, self._mem, 8 * self.FIELDS * k)
                for k in range(self.n)]
        return tuple(sum(col) for col in zip(*rows, strict=True))


def forward(workers: list[Worker], signum: int) -> None:
    for w in workers:
        try:
            os.kill(w.pid, signum)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Ended:
    """How a worker ended: its counts (None when it left none) and its status."""

    result: dict[str, Any] | None
    signal: int | None  # killed by this signal
    code: int | None


def reap(w: Worker, watch: Callable[[], None]) -> Ended:
    """Read a worker's counts to their end, then its exit status; ``watch``
    runs every tenth of a second meanwhile (the stop is forwarded there)."""
    data = bytearray()
    poller = select.poll()
    poller.register(w.result, select.POLLIN)
    while True:
        watch()
        if not poller.poll(100):
            continue
        piece = os.read(w.result, 1 << 16)
        if not piece:
            break
        data += piece
    os.close(w.result)
    _, status = os.waitpid(w.pid, 0)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    try:
        result = json.loads(bytes(data)) if data else None
    except ValueError:
        result = None
    return Ended(result, sig, code)


def send_result(fd: int, result: dict[str, Any]) -> None:
    """A worker's counts, back to the parent (then the pipe is closed)."""
    view = memoryview(json.dumps(result).encode("utf-8"))
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)
