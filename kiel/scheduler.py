"""Fair, polite dispatch of object jobs to worker threads.

Jobs wait in one queue per host. A worker takes the next job of a host that
has fewer than ``per_host`` requests running and whose last request started
at least ``host_delay`` seconds ago; hosts take turns (round robin), so one
slow host never holds the workers that other hosts could use.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from typing import Any


class Scheduler:
    def __init__(self, per_host: int, host_delay: float = 0.0):
        self.per_host = per_host
        self.host_delay = host_delay
        lock = threading.Lock()
        self._cv = threading.Condition(lock)  # workers wait here for a job
        self._room = threading.Condition(lock)  # the producer waits here for room
        self._queues: dict[str, deque] = {}
        self._active: dict[str, int] = {}
        self._ready: deque[str] = deque()
        self._in_ready: set[str] = set()
        self._delayed: list[tuple[float, str]] = []
        self._next_start: dict[str, float] = {}
        self._pending = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cv:
            return self._pending

    def put(self, host: str, job: Any) -> None:
        with self._cv:
            self._queues.setdefault(host, deque()).append(job)
            self._pending += 1
            self._make_ready(host)
            self._cv.notify()

    def _make_ready(self, host: str) -> None:
        if host in self._in_ready:
            return
        q = self._queues.get(host)
        if q and self._active.get(host, 0) < self.per_host:
            self._ready.append(host)
            self._in_ready.add(host)

    def get(self) -> tuple[str, Any] | None:
        """The next job, or None once closed and drained."""
        with self._cv:
            while True:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, host = heapq.heappop(self._delayed)
                    self._in_ready.discard(host)
                    self._make_ready(host)
                if self._ready:
                    host = self._ready.popleft()
                    self._in_ready.discard(host)
                    q = self._queues.get(host)
                    if not q or self._active.get(host, 0) >= self.per_host:
                        continue
                    wait = self._next_start.get(host, 0.0) - now
                    if wait > 0:
                        heapq.heappush(self._delayed, (now + wait, host))
                        self._in_ready.add(host)
                        continue
                    job = q.popleft()
                    if not q:
                        del self._queues[host]
                    self._active[host] = self._active.get(host, 0) + 1
                    if self.host_delay:
                        self._next_start[host] = now + self.host_delay
                    if host in self._queues:
                        self._make_ready(host)
                    return host, job
                if self._closed and self._pending == 0:
                    return None
                timeout = None
                if self._delayed:
                    timeout = max(0.0, self._delayed[0][0] - now)
                self._cv.wait(timeout)

    def done(self, host: str) -> None:
        with self._cv:
            self._active[host] -= 1
            if not self._active[host]:
                del self._active[host]
            self._pending -= 1
            self._make_ready(host)
            # One freed slot makes at most one job runnable: wake one worker, not
            # all of them (a herd of threads fighting for the GIL on 2 cores).
            if self._closed and self._pending == 0:
                self._cv.notify_all()
            elif self._ready:
                self._cv.notify()
            self._room.notify()

    def wait_below(self, limit: int) -> None:
        """Block the producer while more than ``limit`` jobs are pending."""
        with self._room:
            while self._pending > limit:
                self._room.wait()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
