"""Fault injection at named moments, for the crash and full-disk tests.

``KIEL_FAULT=point@N[:action][,...]`` makes the N-th passage (counted in
the whole process) through ``point`` either kill the process with SIGKILL
(``kill``, the default) or raise ENOSPC (``enospc``), so that tests can
place a real crash or a full disk at an exact moment of a run: between
writing a body and naming it, between naming it and noting it, in the
middle of a notes line... Unset (always, in production), each point costs
one global lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

_SPEC: dict[str, tuple[int, str]] = {}
for part in filter(None, os.environ.get("KIEL_FAULT", "").split(",")):
    where, _, action = part.partition(":")
    point, _, n = where.partition("@")
    _SPEC[point.strip()] = (int(n or 1), action.strip() or "kill")

ACTIVE = bool(_SPEC)
_counts: dict[str, int] = {}
_lock = threading.Lock()


def hit(point: str) -> bool:
    """Pass ``point``; True when its fault fires with an action the caller does."""
    if not ACTIVE or point not in _SPEC:
        return False
    n, action = _SPEC[point]
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        fire = _counts[point] == n
    if not fire:
        return False
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})")
    return True  # e.g. "torn": the caller does half its work, then calls die()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
