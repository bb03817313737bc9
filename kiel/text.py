"""Small text helpers every layer uses: control characters, byte sizes."""

from __future__ import annotations

import re

# C0 and C1 control characters: never in an id, a URL Kiel fetches, a log line.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


def printable(text: str) -> str:
    """Control characters shown as ``\\xNN``: a message or log line stays one line."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def human(n: int) -> str:
    """A byte count for people: ``335 B``, ``2.3 KiB``, ``4 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            if unit == "B":
                return f"{n} B"
            return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
