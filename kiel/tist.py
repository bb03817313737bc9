"""Tists: Unix time stamps in whole seconds, UTC, in decimal."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

# Durations, the one grammar of kiel.conf and of every command-line option:
# one or more parts such as 1h30m, each a number and a unit, case ignored; a
# bare number is seconds (what the *_timeout and *_delay keys always took).
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[smhdw])?\s*")
DURATION_HELP = ("use seconds or a number with ms, s, m, h, d or w "
                 "(e.g. 30, 30s, 500ms, 90m, 1h30m, 2d)")


def now() -> int:
    return int(time.time())


def iso(tist: int) -> str:
    """``1763841600`` -> ``2025-11-22T20:00:00Z``."""
    return datetime.fromtimestamp(int(tist), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(text: str) -> float:
    """``500ms`` -> 0.5, ``1h30m`` -> 5400.0, ``2H`` -> 7200.0, ``30`` -> 30.0 (seconds).

    Raises ValueError saying what is accepted (:data:`DURATION_HELP`).
    """
    t = text.strip().lower()
    pos, total, parts = 0, 0.0, 0
    while pos < len(t):
        m = _DURATION_PART.match(t, pos)
        if not m or m.end() == pos or (m.group(2) is None and m.end() < len(t)):
            raise ValueError(f"not a duration; {DURATION_HELP}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
        pos, parts = m.end(), parts + 1
    if not parts:
        raise ValueError(f"not a duration; {DURATION_HELP}")
    return total
