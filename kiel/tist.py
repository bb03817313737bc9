"""Tists: Unix time stamps in whole seconds, UTC, in decimal."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def now() -> int:
    return int(time.time())


def iso(tist: int) -> str:
    """``1763841600`` -> ``2025-11-22T20:00:00Z``."""
    return datetime.fromtimestamp(int(tist), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> int:
    """Parse ``90m``, ``6h``, ``2d``, ``30`` (seconds) into seconds."""
    if text is None:
        raise ValueError("no duration given")
    parts = re.findall(r"\d+\s*[smhdw]?", text.strip())
    if not parts or "".join(p.replace(" ", "") for p in parts) != text.replace(" ", ""):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90m, 6h, 2d, 3600)")
    total = 0
    for part in parts:
        m = _DURATION.match(part)
        if not m:
            raise ValueError(f"not a duration: {text!r}")
        total += int(m.group(1)) * _UNITS[m.group(2)]
    return total
