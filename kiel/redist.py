"""The redist: the rule that maps a record id to its record directory.

docs/contract.md: ``RePEc:aaa:ssssss:rest`` (case-insensitive, also as
``info:lib/RePEc:...``) maps to ``RePEc/aaa/ssssss/<escaped rest>`` with
archive and series in lower case; any other id to ``other/<escaped id>``.
Every component is escaped, so no id can leave the store.
"""

from __future__ import annotations

import re

from kiel.escape import escape

_REPEC = re.compile(
    r"^(?:info:lib/)?repec:([A-Za-z0-9]+):([A-Za-z0-9_-]+):(.+)$", re.IGNORECASE | re.DOTALL
)


def repec_parts(record_id: str) -> tuple[str, str, str] | None:
    """``(archive, series, rest)`` of a RePEc handle, archive and series lower."""
    m = _REPEC.match(record_id)
    if not m:
        return None
    return m.group(1).lower(), m.group(2).lower(), m.group(3)


def record_path(record_id: str) -> str:
    """Record directory of ``record_id``, relative to ``store/``, with ``/``."""
    parts = repec_parts(record_id)
    if parts:
        archive, series, rest = parts
        return "/".join(("RePEc", escape(archive), escape(series), escape(rest)))
    return "other/" + escape(record_id)


def record_sets(record_id: str) -> list[str]:
    """The set hierarchy of a record: ``RePEc``, ``RePEc:aaa``, ``RePEc:aaa:ssssss``."""
    parts = repec_parts(record_id)
    if parts:
        return ["RePEc", f"RePEc:{parts[0]}", f"RePEc:{parts[0]}:{parts[1]}"]
    return ["other"]


def record_key(record_id: str) -> tuple[str, ...]:
    """What identifies a record: two ids with the same key are one record.

    RePEc handles compare archive and series case-insensitively, with or
    without ``info:lib/`` (docs/contract.md, The redist); any other id as written.
    """
    rid = record_id.strip()
    parts = repec_parts(rid)
    if parts:
        return ("RePEc", *parts)
    return ("other", rid)


def same_record(a: str, b: str) -> bool:
    return record_key(a) == record_key(b)
