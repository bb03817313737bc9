"""Fair, polite dispatch of object jobs to worker threads.

Jobs wait in one queue per host. A worker takes the next job of a host that
has fewer than ``per_host`` requests running and whose last request started
at least ``host_delay`` seconds ago; hosts take turns (round robin), so one
slow host never holds the workers that other hosts could use.

A retry is a job put back with the time it becomes due (:meth:`put_at`):
it waits on the scheduler's heap, not in a worker, so the wait holds
neither a worker nor the host's slot. Politeness delays and retries share
that one heap.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from typing import Generic, TypeVar

J = TypeVar("J")


class Scheduler(Generic[J]):
    def __init__(self, per_host: int, host_delay: float = 0.0):
        self.per_host = per_host
        self.host_delay = host_delay
        lock = threading.Lock()
        self._cv = threading.Condition(lock)  # workers wait here for a job
        self._room = threading.Condition(lock)  # the producer waits here for room
        self._queues: dict[str, deque[J]] = {}
        self._active: dict[str, int] = {}
        self._running = 0
        self._ready: deque[str] = deque()
        self._in_ready: set[str] = set()
        # (due, seq, host, job): job None is a host whose politeness delay ends.
        self._heap: list[tuple[float, int, str, J | None]] = []
        self._seq = itertools.count()
        self._next_start: dict[str, float] = {}
        self._pending = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs queued, waiting for a retry, or running."""
        with self._cv:
            return self._pending

    @property
    def running(self) -> int:
        """Jobs a worker holds now (fetches under way)."""
        with self._cv:
            return self._running

    def put(self, host: str, job: J) -> None:
        with self._cv:
            self._queues.setdefault(host, deque()).append(job)
            self._pending += 1
            self._make_ready(host)
            self._cv.notify()

    def put_at(self, host: str, job: J, due: float) -> None:
        """Queue ``job`` once the monotonic clock reaches ``due`` (a retry)."""
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._seq), host, job))
            self._pending += 1
            self._cv.notify()

    def _make_ready(self, host: str) -> None:
        if host in self._in_ready:
            return
        q = self._queues.get(host)
        if q and self._active.get(host, 0) < self.per_host:
            self._ready.append(host)
            self._in_ready.add(host)

    def get(self) -> tuple[str, J] | None:
        """The next job, or None once closed and drained."""
        with self._cv:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, host, job = heapq.heappop(self._heap)
                    if job is None:
                        self._in_ready.discard(host)
                    else:
                        # A due retry goes first in its host's queue.
                        self._queues.setdefault(host, deque()).appendleft(job)
                    self._make_ready(host)
                if self._ready:
                    host = self._ready.popleft()
                    self._in_ready.discard(host)
                    q = self._queues.get(host)
                    if not q or self._active.get(host, 0) >= self.per_host:
                        continue
                    wait = self._next_start.get(host, 0.0) - now
                    if wait > 0:
                        heapq.heappush(self._heap, (now + wait, next(self._seq), host, None))
                        self._in_ready.add(host)
                        continue
                    job = q.popleft()
                    if not q:
                        del self._queues[host]
                    self._active[host] = self._active.get(host, 0) + 1
                    self._running += 1
                    if self.host_delay:
                        self._next_start[host] = now + self.host_delay
                    if host in self._queues:
                        self._make_ready(host)
                    return host, job
                if self._closed and self._pending == 0:
                    return None
                timeout = None
                if self._heap:
                    timeout = max(0.0, self._heap[0][0] - now)
                self._cv.wait(timeout)

    def done(self, host: str) -> None:
        with self._cv:
            self._active[host] -= 1
            if not self._active[host]:
                del self._active[host]
            self._running -= 1
            self._pending -= 1
            self._make_ready(host)
            # One freed slot makes at most one job runnable: wake one worker, not
            # all of them (a herd of threads fighting for the GIL on 2 cores).
            if self._closed and self._pending == 0:
                self._cv.notify_all()
            elif self._ready:
                self._cv.notify()
            self._room.notify()

    def drain(self) -> list[J]:
        """Take every job not yet running (queued or waiting to retry): on a
        stop, the caller settles each one; the workers then run dry."""
        with self._cv:
            out: list[J] = []
            for q in self._queues.values():
                out.extend(q)
            out.extend(job for _, _, _, job in self._heap if job is not None)
            self._queues.clear()
            self._ready.clear()
            self._in_ready.clear()
            self._heap.clear()
            self._pending -= len(out)
            self._cv.notify_all()
            self._room.notify_all()
            return out

    def wait_below(self, limit: int, timeout: float | None = None) -> None:
        """Block the producer while more than ``limit`` jobs are pending."""
        with self._room:
            end = None if timeout is None else time.monotonic() + timeout
            while self._pending > limit:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._room.wait(left)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
