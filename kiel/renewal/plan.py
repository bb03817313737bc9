"""Plan: the scanned records, oldest first, one per record directory.

Reads the scan's sorted spool and yields each record to renew. A record
whose file failed to parse later in the file is dropped whole; of several
records with one id (one record directory), the first in input order
renews and the others are reported as duplicates, naming both places.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from kiel import urls
from kiel.spool import ExternalSort


@dataclass(frozen=True)
class Planned:
    id: str
    rel: str  # the record directory, relative to the store
    source: str  # file:line
    xml: bytes
    targets: tuple[urls.Target, ...]
    urls: dict[str, list[str]]
    skipped: list[dict[str, Any]]
    discover: frozenset[str]  # URL names whose branch asks for discovery


def plan(spool: ExternalSort, failed_files: set[int],
         duplicate: Callable[[str, str, str], None]) -> Iterator[Planned]:
    """``duplicate(id, source, first_source)`` hears of every duplicate skipped."""
    prev_rel = None
    prev_src = ""
    for line in spool:
        _, _, payload = line.partition(b"\t")
        e = json.loads(payload)
        if e["f"] in failed_files:
            continue
        if e["rel"] == prev_rel:
            duplicate(e["id"], e["src"], prev_src)
            continue
        prev_rel, prev_src = e["rel"], e["src"]
        yield Planned(e["id"], e["rel"], e["src"], e["xml"].encode("utf-8"),
                      tuple(urls.Target(f, n) for f, n in e["t"]), e["u"], e["s"],
                      frozenset(e.get("d", ())))
