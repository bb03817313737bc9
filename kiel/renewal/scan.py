"""Scan: the inputs to a spool, one line per record, in renewal order.

Walks the input files, parses every record, serializes it, evaluates the
branches and reads its ``00last``. Each record becomes one line of an
external sort keyed by (end of last renewal, record directory, input
order): virgin records first, then the most overdue (docs/contract.md, Records).
Every fetched URL goes to a second sort, to find the URLs that several
records share; every record directory seen, to a third, for the gone check.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from kiel import records, redist, spool, store, urls
from kiel.branches import Branch
from kiel.errors import StoreError
from kiel.notes import NotRegular
from kiel.spool import ExternalSort


def shard_of(record_id: str, n: int) -> int:
    """The shard (1..n) of a record: a stable hash of its record directory."""
    digest = hashlib.sha256(redist.record_path(record_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def matches_only(record_id: str, prefix: str) -> bool:
    """``--only``: the id starts with the prefix (RePEc handles case-insensitively)."""
    rid = record_id
    if rid.lower().startswith("info:lib/"):
        rid = rid[len("info:lib/"):]
    pre = prefix[len("info:lib/"):] if prefix.lower().startswith("info:lib/") else prefix
    if rid.lower().startswith("repec:") and pre.lower().startswith("repec"):
        return rid.lower().startswith(pre.lower())
    return rid.startswith(pre) or record_id.startswith(prefix)


@dataclass(frozen=True)
class Selection:
    only: str | None = None
    shard: tuple[int, int] | None = None

    def wants(self, record_id: str) -> bool:
        if self.only and not matches_only(record_id, self.only):
            return False
        return not (self.shard and shard_of(record_id, self.shard[1]) != self.shard[0])


@dataclass(frozen=True)
class InputRules:
    """How inputs are read (settings of the same names)."""

    max_input_file: int = records.DEFAULT_MAX_INPUT_FILE
    max_record: int = records.DEFAULT_MAX_RECORD
    follow_outside_links: bool = False
    archive_dirs: bool = True


@dataclass
class Scanned:
    """What the scan leaves for the rest of the run."""

    spool: ExternalSort
    seen: ExternalSort
    shared_urls: set[str] = field(default_factory=set)
    # Records linked by shared URLs, each to one record of its connected
    # component (record directories, relative to the store): records that
    # share a URL, directly or through others, renew in one process.
    components: dict[str, str] = field(default_factory=dict)
    failed_files: set[int] = field(default_factory=set)
    complete: bool = True  # every input path was read without error
    records_found: int = 0
    objects_total: int = 0
    refs: int = 0
    damaged: int = 0
    files: int = 0
    seq: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


Report = Callable[[str, bool], None]  # (text, is an input error)


def scan(inputs: Iterable[str], branches: Sequence[Branch], store_root: str, workdir: str,
         selection: Selection, *, now: int, interval: int, full_run: bool, report: Report,
         stopping: Callable[[], bool], log: Callable[[str], None],
         tick: Callable[[int], None] | None = None,
         rules: InputRules = InputRules()) -> Scanned:
    """Read every input once; raises :class:`StoreError` when ``var/`` is full."""
    out = Scanned(ExternalSort(workdir), ExternalSort(workdir, chunk_bytes=spool.CHUNK_BYTES // 2))
    url_spool = ExternalSort(workdir)
    try:
        for root in inputs:
            _scan(root, branches, store_root, selection, now, interval, full_run, report,
                  stopping, log, tick, out, url_spool, rules)
        _find_shared(url_spool, out.shared_urls, out.components)
    except OSError as e:
        out.spool.cleanup()
        out.seen.cleanup()
        url_spool.cleanup()
        raise StoreError(f"{getattr(e, 'filename', None) or workdir}: cannot write the run's "
                         f"work files: {e.strerror or e}; nothing in the store was touched") \
            from None
    return out


def _scan(root: str, branches: Sequence[Branch], store_root: str,
          selection: Selection, now: int, interval: int, full_run: bool, report: Report,
          stopping: Callable[[], bool], log: Callable[[str], None],
          tick: Callable[[int], None] | None, out: Scanned, url_spool: ExternalSort,
          rules: InputRules) -> None:
    """One input path (the root that archive directories are found under)."""
    for path in records.walk([root], follow_outside_links=rules.follow_outside_links):
        if isinstance(path, records.Problem):
            out.complete = False
            report(str(path), True)
            continue
        out.files += 1
        fidx = out.files
        if stopping():
            out.complete = False  # not all input read: no record is gone
            break
        for item in records.read_file(path, rules.max_input_file, rules.max_record):
            if isinstance(item, records.Problem):
                if item.fatal_for_file:
                    out.failed_files.add(fidx)
                    out.complete = False
                    report(str(item) + " (file skipped)", True)
                else:
                    report(str(item), True)
                    if item.partial:
                        out.complete = False  # records may have gone unread: none is gone
                    elif item.skipped_record and item.id and full_run \
                            and selection.wants(item.id):
                        # In the input, only too large to renew: never marked gone.
                        out.seen.add(redist.record_path(item.id).replace("/", "\x00")
                                     .encode("utf-8") + b"\t%d" % fidx)
                continue
            if isinstance(item, records.Ref):
                out.refs += 1
                log(f"ref: {item.file}, line {item.line}: text refers to {item.ref}, "
                    "held elsewhere; not stored")
                continue
            rec = item
            if not selection.wants(rec.id):
                continue
            if rules.archive_dirs:
                outside = records.claimed_outside_archive(rec.file, root, rec.id)
                if outside is not None:
                    report(f"{rec.file}, line {rec.line} (record {rec.id}): {outside}", True)
                    continue
            out.seq += 1
            seq = out.seq
            rel = redist.record_path(rec.id)
            key_rel = rel.replace("/", "\x01").encode("utf-8")
            if full_run:
                out.seen.add(rel.replace("/", "\x00").encode("utf-8") + b"\t%d" % fidx)
            out.records_found += 1
            try:
                last = store.read_last(os.path.join(store_root, rel))
            except NotRegular as e:
                out.damaged += 1
                out.skipped["damaged"] += 1
                report(f"{e.filename}: {e.what} where 00last belongs; record {rec.id} "
                       "not renewed (the record directory needs a person)", False)
                continue
            if interval and last and now - last.end < interval:
                out.skipped["record_interval"] += 1
                continue
            try:
                found = urls.find(branches, records.parse_stored(rec.xml))
            except etree.XMLSyntaxError as e:
                report(f"{rec.file}, line {rec.line} (record {rec.id}): cannot be read back "
                       f"after serialization ({e.msg}); skipped", True)
                out.skipped["unreadable"] += 1
                continue
            discover = sorted({n for b in branches if b.discover
                               for n in found.by_branch.get(b.xpath, [])})
            payload = json.dumps({
                "id": rec.id, "rel": rel, "f": fidx, "src": f"{rec.file}:{rec.line}",
                "l": last.end if last else None,
                "xml": rec.xml.decode("utf-8"), "t": [[t.fetch, t.name] for t in found.targets],
                "u": found.by_branch, "s": list(found.skipped), "d": discover,
            }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            # Among records of one directory, the one the duplicate rule keeps
            # comes first, whatever the order of the walk (docs/contract.md).
            pref = records.preference_bytes(records.occurrence(rec.id, rec.file, rec.line, root))
            pref = pref.replace(b"\n", b"\x01").replace(b"\t", b"\x01")
            out.spool.add(b"%012d\x00%s\x00%s\t" % (last.end if last else 0, key_rel, pref)
                          + payload)
            out.objects_total += len(found.targets)
            for t in found.targets:
                url_spool.add(t.fetch.encode("utf-8", "surrogateescape") + b"\t" + key_rel)
            if tick is not None and seq % 1000 == 0:
                tick(seq)


def _find_shared(url_spool: ExternalSort, shared: set[str],
                 components: dict[str, str] | None = None) -> None:
    """URLs linked by more than one record: fetched once, linked by the rest.
    With ``components``: every record linked by one, mapped to one record of
    its connected component (union-find over the records sharing a URL)."""
    parent: dict[bytes, bytes] = {}

    def root(x: bytes) -> bytes:
        r = x
        while parent.get(r, r) != r:
            r = parent[r]
        while x != r:  # path compression
            parent[x], x = r, parent[x]
        return r

    prev_url = None
    prev_rel = None
    first_rel = b""
    for line in url_spool:
        url, _, rel = line.partition(b"\t")
        if url != prev_url:
            first_rel = rel
        elif rel != prev_rel:
            shared.add(url.decode("utf-8", "surrogateescape"))
            if components is not None:
                a, b = root(first_rel), root(rel)
                if a != b:
                    parent[b] = a
                parent.setdefault(a, a)
        prev_url, prev_rel = url, rel
    if components is not None:
        for x in list(parent):
            components[x.decode("utf-8").replace("\x01", "/")] = \
                root(x).decode("utf-8").replace("\x01", "/")
