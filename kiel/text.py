"""Small text helpers every layer uses: control characters, byte sizes."""

from __future__ import annotations

import re

# C0 and C1 control characters: never in an id, a URL Kiel fetches, a log line.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


# What must never reach a terminal as it is: C0, DEL and C1 controls (ESC
# starts a sequence that can set the clipboard or clear the screen, and
# U+009B is CSI itself to a terminal that reads 8-bit controls), the bytes
# of a file name that is not UTF-8 (decoded by Python as lone surrogates,
# written back raw), line and paragraph separators, and the bidirectional
# controls that make a line read otherwise than it is.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                    "\ufeff\ud800-\udfff]")


def _shown(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c < 0x100:
        return f"\\x{c:02x}"
    if 0xDC80 <= c <= 0xDCFF:  # a byte of a name that is not UTF-8 (surrogateescape)
        return f"\\x{c - 0xDC00:02x}"
    return f"\\u{c:04x}"


def printable(text: str) -> str:
    """``text`` safe for a terminal and one line: each character of
    :data:`UNSAFE` shown as ``\\xNN`` (``\\uNNNN`` above U+00FF); a byte
    of a name that is not UTF-8 as ``\\xNN``."""
    return UNSAFE.sub(_shown, text)


def printable_lines(text: str) -> str:
    """:func:`printable` for each line of ``text``: what a command prints."""
    return "\n".join(printable(line) for line in text.split("\n"))


def printable_json(text: str) -> str:
    """JSON text safe for a terminal: what :data:`UNSAFE` matches can only
    stand inside strings, where ``\\uNNNN`` means the same character."""
    return UNSAFE.sub(lambda m: _json_escape(ord(m.group())), text)


def _json_escape(c: int) -> str:
    if c == 0x0A:
        return "\n"  # the line breaks of indented JSON, outside strings
    return f"\\u{c:04x}"


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
