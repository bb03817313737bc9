"""Plan: the scanned records, oldest first, one per record directory.

Reads the scan's sorted spool and yields each record to renew. A record
whose file failed to parse later in the file is dropped whole; of several
records with one id (one record directory), the first in input order
renews and the others are reported as duplicates, naming both places.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
    duplicates: tuple[str, ...] = ()  # file:line of the occurrences not kept
    last_end: int | None = None  # the end of the last finished renewal (00last)
    # The scan's JSON of the record, as the spool holds it: sent to a worker
    # process as it is (kiel.renewal.processes.encode), not encoded again.
    raw: bytes = field(default=b"", compare=False, repr=False)


def plan(spool: ExternalSort, failed_files: set[int],
         duplicate: Callable[[str, str, str], None],
         dropped: Callable[[str, str], None] = lambda _id, _src: None) -> Iterator[Planned]:
    """``duplicate(id, source, kept_source)`` hears of every duplicate skipped,
    ``dropped(id, source)`` of every record dropped with its file (a file that
    failed after the record was read: it was counted as found).

    The spool sorts the occurrences of one record directory by the duplicate
    rule, so the first of each group (from a file that was read whole) is kept;
    the group is read to its end first, so the kept record's notes can name
    the others."""
    group: list[tuple[dict[str, Any], bytes]] = []
    for line in spool:
        _, _, payload = line.partition(b"\t")
        e = json.loads(payload)
        if e["f"] in failed_files:
            dropped(e["id"], e["src"])
            continue
        if group and e["rel"] != group[0][0]["rel"]:
            yield _kept(group, duplicate)
            group = []
        group.append((e, payload))
    if group:
        yield _kept(group, duplicate)


def _kept(group: list[tuple[dict[str, Any], bytes]],
          duplicate: Callable[[str, str, str], None]) -> Planned:
    e, raw = group[0]
    for other, _ in group[1:]:
        duplicate(other["id"], other["src"], e["src"])
    return Planned(e["id"], e["rel"], e["src"], e["xml"].encode("utf-8"),
                   tuple(urls.Target(f, n) for f, n in e["t"]), e["u"], e["s"],
                   frozenset(e.get("d", ())), tuple(o["src"] for o, _ in group[1:]), e.get("l"),
                   raw)
