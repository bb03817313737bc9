"""``kiel export``: the store as WARC 1.1 or a WACZ 1.1.1 package.

:func:`export` checks the output, runs the walk (:mod:`kiel.export.walk`)
into it and returns what was written. One streaming walk over the record
directories (:func:`kiel.store.iter_record_dirs`),
one record directory at a time: memory holds one object's notes, never the
store. Every attempt that got an answer becomes a ``response`` (its file a
body) or a ``revisit`` (its file a link to an earlier body); every version
a ``resource``; ``metadata`` records tie them to the record that led to
them. The mapping, field by field, is in docs/export.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from kiel import __version__, store
from kiel.errors import KielError, NotFound
from kiel.export.output import Package, WarcFile
from kiel.export.walk import Problem, Selection, Walk, record_dirs
from kiel.tist import iso

__all__ = ["ExportError", "ExportSummary", "Problem", "Selection", "export", "format_of",
           "parse_when"]


class ExportError(KielError):
    """The export cannot start: a wrong output name, an output that exists."""


@dataclass(frozen=True)
class ExportSummary:
    output: str
    format: Literal["warc", "wacz"]
    records: int  # record directories walked
    versions: int  # resource records
    responses: int  # response records (redirects included)
    redirects: int
    revisits: int
    metadata: int
    no_answer: int  # 000 attempts, counted in metadata records
    not_written: int  # attempts noted without a file
    pages: int  # WACZ page list entries
    bytes: int  # size of the output
    problems: tuple[Problem, ...] = ()
    problem_count: int = 0


def parse_when(text: str, end: bool = False) -> int:
    """A tist, or an ISO 8601 date or date and time (UTC unless it says).

    With ``end``, the first tist after what ``text`` names: a date names its
    whole day, a time or tist its second (``--until`` is inclusive)."""
    t = text.strip()
    if t.isdigit():
        return int(t) + (1 if end else 0)
    try:
        if len(t) == 10:
            d = date.fromisoformat(t)
            start = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
            return int((start + timedelta(days=1 if end else 0)).timestamp())
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ExportError(f"not a tist nor an ISO 8601 date: {text!r} "
                          "(use e.g. 1763841600, 2025-11-22 or 2025-11-22T20:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) + (1 if end else 0)


def format_of(output: str) -> Literal["warc", "wacz"]:
    if output.endswith(".warc.gz"):
        return "warc"
    if output.endswith(".wacz"):
        return "wacz"
    raise ExportError(f"cannot tell the format of {output}: the output must end in "
                      ".warc.gz (WARC) or .wacz (WACZ)")


def export(home_root: str, output: str, selection: Selection | None = None) -> ExportSummary:
    """Write the part of the store ``selection`` names to ``output``.

    The output appears whole or not at all (written under a temporary name
    beside it, then linked to its name, never over an existing file)."""
    selection = selection or Selection()
    fmt = format_of(output)
    store_root = os.path.join(os.path.abspath(home_root), "store")
    if not os.path.isdir(store_root):
        raise NotFound(f"no store at {store_root} (is --home right?)")
    out_path = os.path.abspath(output)
    if os.path.lexists(out_path):
        raise ExportError(f"{output} exists: an export never replaces a file")
    work = tempfile.mkdtemp(prefix=store.TMP_PREFIX + "export-",
                            dir=os.path.dirname(out_path))
    package: Package | None = None
    try:
        base = os.path.basename(out_path)
        warc_name = base if fmt == "warc" else base[:-len(".wacz")] + ".warc.gz"
        warc = WarcFile(os.path.join(work, warc_name))
        try:
            package = Package(work, warc_name) if fmt == "wacz" else None
            walk = Walk(store_root, selection, warc, package)
            walk.warcinfo(home_root, warc_name)
            for record_dir in record_dirs(store_root, selection.prefixes):
                walk.record(record_dir)
        finally:
            warc.close()
        made = warc.path
        if package is not None:
            made = os.path.join(work, "package.wacz")
            package.finish(warc, made, iso(int(datetime.now(timezone.utc).timestamp())),
                           f"Kiel store {store_root}", f"Kiel {__version__}")
        try:
            os.link(made, out_path)
        except FileExistsError:
            raise ExportError(f"{output} exists: an export never replaces a file") from None
        size = os.path.getsize(out_path)
    finally:
        if package is not None:
            package.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    c = walk.counts
    return ExportSummary(
        output=out_path, format=fmt, records=c["records"], versions=c["versions"],
        responses=c["responses"], redirects=c["redirects"], revisits=c["revisits"],
        metadata=c["metadata"], no_answer=c["no_answer"], not_written=c["not_written"],
        pages=package.page_count if package else 0, bytes=size,
        problems=tuple(walk.problems), problem_count=c["problems"])
