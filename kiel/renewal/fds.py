"""Open files: a run fits the limit it has (cron's and systemd's 1024 soft).

At start the soft limit is raised to the hard one where allowed; the
fetching pools are then sized from what remains after a reserve for the
store's own files, so a run never fails for want of a descriptor and
never blames the store for it."""

from __future__ import annotations

import resource
from dataclasses import dataclass

RESERVE = 64  # notes, bodies being written, spools, the log, libmagic, the lock
PER_FETCH = 3  # a socket, a body's temporary file, a notes file


@dataclass(frozen=True)
class Budget:
    soft: int
    workers: int  # fetches at once
    clients_per_worker: int  # idle keep-alive origins one worker keeps


def raise_soft_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def budget(soft: int, concurrency: int, clients_per_worker: int) -> Budget:
    room = max(soft - RESERVE, PER_FETCH)
    workers = max(1, min(concurrency, room // PER_FETCH))
    # Each idle client keeps at most one connection open.
    idle = max(0, room - workers * PER_FETCH)
    per_worker = max(1, min(clients_per_worker, idle // workers))
    return Budget(soft, workers, per_worker)
