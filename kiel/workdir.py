"""A renewal's work directory as it lies on disk: ``var/run-<tist>[-shard-K-of-N]-<pid>/``.

The renewal writes it (kiel/renewal/journal.py); verify reads it to tell a
write under way from damage (kiel/inflight.py). Both take its names from here.
"""

from __future__ import annotations

JOURNAL = "journal"
WORKDIR_PREFIX = "run-"


def pid_of(workdir_name: str) -> int | None:
    """The process that made a work directory (``run-<tist>[-shard-K-of-N]-<pid>``)."""
    if not workdir_name.startswith(WORKDIR_PREFIX):
        return None
    tail = workdir_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
