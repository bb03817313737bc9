"""What a caller gives a renewal, and what it hears back while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kiel.config import Config


class Stop(threading.Event):
    """Set by a signal handler: no record starts after it; ``reason`` names it."""

    reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.set()


@dataclass(frozen=True)
class Progress:
    phase: str  # "scan", "renew", "gone", "done"
    records_found: int
    records_done: int
    objects_total: int  # objects the scan found (redirect targets add to it)
    objects_done: int  # objects whose renewal ended
    fetching: int  # fetches under way now
    bytes_fetched: int
    elapsed: float
    max_time: float | None

    @property
    def eta(self) -> float | None:
        """Seconds left at the object rate so far, or None before it is known."""
        if not self.objects_done or not self.elapsed:
            return None
        rate = self.objects_done / self.elapsed
        return max(0.0, (self.objects_total - self.objects_done) / rate)


@dataclass(frozen=True)
class Options:
    inputs: tuple[str, ...] = ()  # empty: the ``input`` setting
    only: str | None = None  # record id prefix
    shard: tuple[int, int] | None = None  # (k, n), 1 <= k <= n
    max_time: float | None = None  # seconds; no record starts after it
    clock: Callable[[], float] = time.time
    stop: Stop | None = None  # set on SIGTERM / SIGINT
    progress: Callable[[Progress], None] | None = None
    verify_tls: bool = True
    allow_gone: bool = False  # accept more records gone than gone_max_share
    config: Config | None = None  # overrides etc/kiel.conf (tests, benchmarks)
