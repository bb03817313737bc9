"""Fair, polite dispatch of object jobs to the workers, on the event loop.

Jobs wait in one ready queue per host. A worker takes the next job of a
host that has fewer than ``per_host`` requests running and whose last
request started at least ``host_delay`` seconds ago; hosts take turns
(round robin), so one slow host never holds the workers that other hosts
could use.

A retry is a job put back after a delay (:meth:`put_later`): it waits on
the loop's timer, not in a worker, so the wait holds neither a worker nor
the host's slot. A host's politeness delay is a timer too, and so is a
host's pause (:meth:`pause`: the host asked, with ``Retry-After``, to be
left alone for a while; none of its jobs starts before the pause ends).

The planner asks :attr:`runnable` how many queued jobs a worker could take
now: jobs waiting behind a busy or paused host, or on a retry's timer, do
not count, so records of a slow host never keep the records of other hosts
from starting (docs/architecture.md, "The renewal").

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
        self._next_start: dict[str, float] = {}  # politeness: a host's next start
        self._paused: dict[str, float] = {}  # Retry-After: loop time a host's pause ends
        self._runnable: dict[str, int] = {}  # per host: queued jobs a worker could take now
        self._runnable_total = 0
        self._pending = 0
        self._closed = False
        self._held = False
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

    @property
    def runnable(self) -> int:
        """Queued jobs a worker could take now: not behind a host at its
        ``per_host`` limit, a paused host, or a retry's timer."""
        return self._runnable_total

    def _recount(self, host: str) -> None:
        q = self._queues.get(host)
        n = 0
        if q and host not in self._paused and not self._held:
            n = min(len(q), max(0, self.per_host - self._active.get(host, 0)))
        old = self._runnable.pop(host, 0)
        if n:
            self._runnable[host] = n
        self._runnable_total += n - old
        if n < old:
            self._notify_room()

    def put(self, host: str, job: J) -> None:
        self._queues.setdefault(host, deque()).append(job)
        self._pending += 1
        self._recount(host)
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
            self._recount(host)
            self._make_ready(host)

        handle = loop.call_later(max(0.0, delay), due)
        self._timers[handle] = (host, job)

    def pause(self, host: str, seconds: float) -> None:
        """Start none of ``host``'s jobs for ``seconds`` (its ``Retry-After``);
        a longer pause already set stands."""
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if self._paused.get(host, 0.0) >= until:
            return
        first = host not in self._paused
        self._paused[host] = until
        self._recount(host)
        if first:
            loop.call_later(seconds, self._pause_over, host)

    def _pause_over(self, host: str) -> None:
        until = self._paused.get(host)
        if until is None:
            return
        loop = asyncio.get_running_loop()
        left = until - loop.time()
        if left > 0:  # extended meanwhile
            loop.call_later(left, self._pause_over, host)
            return
        del self._paused[host]
        self._recount(host)
        self._in_ready.discard(host)
        self._make_ready(host)

    def _make_ready(self, host: str) -> None:
        if host in self._in_ready or host in self._paused or self._held:
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
            if not q or self._active.get(host, 0) >= self.per_host or host in self._paused:
                continue  # a paused host is made ready again when its pause ends
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
            self._recount(host)
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
        self._recount(host)
        self._make_ready(host)
        if self._closed and self._pending == 0:
            self._wake(every=True)
        self._notify_room()

    def begin_work(self) -> None:
        """Work of the run's done off the loop (a bundle's check) has begun: the
        run does not end (:meth:`get` gives no None) before :meth:`end_work`."""
        self._pending += 1

    def end_work(self) -> None:
        self._pending -= 1
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
        self._runnable.clear()
        self._runnable_total = 0
        self._pending -= len(out)
        self._wake(every=True)
        self._notify_room()
        return out

    def full(self, lookahead: int, most: int) -> bool:
        """The planner waits: more than ``lookahead`` jobs a worker could take
        now, or more than ``most`` jobs pending in all (queued anywhere, waiting
        for a retry, or running)."""
        return self._runnable_total > lookahead or self._pending > most

    async def wait_room(self, lookahead: int, most: int, timeout: float) -> None:
        """Wait (the planner) while :meth:`full`, at most ``timeout`` seconds."""
        if not self.full(lookahead, most):
            return
        loop = asyncio.get_running_loop()
        self._room = loop.create_future()
        handle = loop.call_later(timeout, self._notify_room)
        try:
            await self._room
        finally:
            self._room = None
            handle.cancel()

    @property
    def held(self) -> bool:
        """No job starts any more (:meth:`hold`)."""
        return self._held

    def hold(self) -> None:
        """Start no job from now on (the run's ``--max-time`` is reached): jobs
        running finish; those queued, now or later, wait for :meth:`drain`."""
        self._held = True
        self._ready.clear()
        self._in_ready.clear()
        self._runnable.clear()
        self._runnable_total = 0
        self._notify_room()

    def close(self) -> None:
        self._closed = True
        self._wake(every=True)
