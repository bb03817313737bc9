"""Fair, polite dispatch of object jobs to the workers, on the event loop.

Jobs wait in one ready queue per host. A worker takes the next job of a
host that has fewer than ``per_host`` requests running and whose last
request started at least ``host_delay`` seconds ago; hosts take turns
(round robin), so one slow host never holds the workers that other hosts
could use.

A retry is a job put back after a delay (:meth:`put_later`): it waits on
the loop's timer, not in a worker, so the wait holds neither a worker nor
the host's slot. A host's politeness delay is a timer too.

Everything runs on one event loop: no locks; a worker waiting for a job
awaits a future that a new job, a freed host or the close settles.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

J = TypeVar("J")


class Scheduler(Generic[J]):
    def __init__(self, per_host: int, host_delay: float = 0.0):
        self.per_host = per_host
        self.host_delay = host_delay
        self._queues: dict[str, deque[J]] = {}
        self._active: dict[str, int] = {}
        self._running = 0
        self._ready: deque[str] = deque()
        self._in_ready: set[str] = set()
        self._timers: dict[asyncio.TimerHandle, tuple[str, J]] = {}  # retries waiting
        self._next_start: dict[str, float] = {}
        self._pending = 0
        self._closed = False
        self._waiters: deque[asyncio.Future[None]] = deque()  # workers waiting for a job
        self._room: asyncio.Future[None] | None = None  # the producer waiting for room

    @property
    def pending(self) -> int:
        """Jobs queued, waiting for a retry, or running."""
        return self._pending

    @property
    def running(self) -> int:
        """Jobs a worker holds now (fetches under way)."""
        return self._running

    def put(self, host: str, job: J) -> None:
        self._queues.setdefault(host, deque()).append(job)
        self._pending += 1
        self._make_ready(host)

    def put_later(self, host: str, job: J, delay: float) -> None:
        """Queue ``job`` after ``delay`` seconds (a retry), first in its host's queue."""
        loop = asyncio.get_running_loop()
        self._pending += 1
        handle: asyncio.TimerHandle

        def due() -> None:
            if self._timers.pop(handle, None) is None:
                return  # drained meanwhile
            self._queues.setdefault(host, deque()).appendleft(job)
            self._make_ready(host)

        handle = loop.call_later(max(0.0, delay), due)
        self._timers[handle] = (host, job)

    def _make_ready(self, host: str) -> None:
        if host in self._in_ready:
            return
        q = self._queues.get(host)
        if q and self._active.get(host, 0) < self.per_host:
            self._ready.append(host)
            self._in_ready.add(host)
            self._wake()

    def _wake(self, every: bool = False) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                if not every:
                    return

    def _host_free(self, host: str) -> None:
        """A host's politeness delay ended."""
        self._in_ready.discard(host)
        self._make_ready(host)

    def _take(self) -> tuple[str, J] | None:
        loop = asyncio.get_running_loop()
        while self._ready:
            host = self._ready.popleft()
            self._in_ready.discard(host)
            q = self._queues.get(host)
            if not q or self._active.get(host, 0) >= self.per_host:
                continue
            if self.host_delay:
                now = loop.time()
                wait = self._next_start.get(host, 0.0) - now
                if wait > 0:
                    self._in_ready.add(host)  # not ready again until the delay ends
                    loop.call_later(wait, self._host_free, host)
                    continue
                self._next_start[host] = now + self.host_delay
            job = q.popleft()
            if not q:
                del self._queues[host]
            self._active[host] = self._active.get(host, 0) + 1
            self._running += 1
            if host in self._queues:
                self._make_ready(host)
            return host, job
        return None

    async def get(self) -> tuple[str, J] | None:
        """The next job, or None once closed and drained."""
        loop = asyncio.get_running_loop()
        while True:
            got = self._take()
            if got is not None:
                if self._ready:
                    self._wake()  # more runnable: the next worker looks too
                return got
            if self._closed and self._pending == 0:
                self._wake(every=True)
                return None
            w: asyncio.Future[None] = loop.create_future()
            self._waiters.append(w)
            await w

    def done(self, host: str) -> None:
        self._active[host] -= 1
        if not self._active[host]:
            del self._active[host]
        self._running -= 1
        self._pending -= 1
        self._make_ready(host)
        if self._closed and self._pending == 0:
            self._wake(every=True)
        self._notify_room()

    def _notify_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def drain(self) -> list[J]:
        """Take every job not yet running (queued or waiting to retry): on a
        stop, the caller settles each one; the workers then run dry."""
        out: list[J] = []
        for q in self._queues.values():
            out.extend(q)
        for handle, (_, job) in self._timers.items():
            handle.cancel()
            out.append(job)
        self._timers.clear()
        self._queues.clear()
        self._ready.clear()
        self._in_ready.clear()
        self._pending -= len(out)
        self._wake(every=True)
        self._notify_room()
        return out

    async def wait_below(self, limit: int, timeout: float | None = None) -> None:
        """Wait (the producer) while more than ``limit`` jobs are pending."""
        if self._pending <= limit:
            return
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while self._pending > limit:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return
            self._room = loop.create_future()
            handle = None if left is None else loop.call_later(left, self._notify_room)
            try:
                await self._room
            finally:
                self._room = None
                if handle is not None:
                    handle.cancel()

    def close(self) -> None:
        self._closed = True
        self._wake(every=True)
