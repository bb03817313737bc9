"""Fault injection at named moments, for the crash and full-disk tests.

``KIEL_FAULT=point@N[:action][,...]`` makes the N-th passage (counted in
the whole run, its worker processes included) through ``point`` either kill
the run with SIGKILL (``kill``, the default: a worker process kills its
parent, and the others die with it) or raise ENOSPC (``enospc``), so that tests can
place a real crash or a full disk at an exact moment of a run: between
writing a body and naming it, between naming it and noting it, in the
middle of a notes line... Unset (always, in production), each point costs
one global lookup.
"""

from __future__ import annotations

import errno
import os
import signal

_SPEC: dict[str, tuple[int, str]] = {}
for part in filter(None, os.environ.get("KIEL_FAULT", "").split(",")):
    where, _, action = part.partition(":")
    point, _, n = where.partition("@")
    _SPEC[point.strip()] = (int(n or 1), action.strip() or "kill")

ACTIVE = bool(_SPEC)
parent: int | None = None  # in a worker process: the run's parent, killed with it

if ACTIVE:
    # Counted across the processes of a run (workers are forked after this).
    import multiprocessing

    _shared = {point: multiprocessing.Value("i", 0) for point in _SPEC}


def hit(point: str) -> bool:
    """Pass ``point``; True when its fault fires with an action the caller does."""
    if not ACTIVE or point not in _SPEC:
        return False
    n, action = _SPEC[point]
    counter = _shared[point]
    with counter.get_lock():
        counter.value += 1
        fire = counter.value == n
    if not fire:
        return False
    if action == "kill":
        die()
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})")
    return True  # e.g. "torn": the caller does half its work, then calls die()


def die() -> None:
    """The run is killed: its parent first (a worker's siblings die with it)."""
    if parent is not None:
        os.kill(parent, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
