"""The manifest note: what a deposit held and how each file checked out.

One line in the record's ``00notes`` per deposit and renewal, with
``"event": "manifest"`` (docs/contract.md, Deposits). The line is a typed
line of :mod:`kiel.notes` (:class:`kiel.notes.ManifestRecord`, its writer
``line()`` and its reader :func:`kiel.notes.manifest_records`); here it is
made from a platform's manifest and what the engine did with its files,
and compared with the deposit's state at the next renewal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kiel import notes, urls
from kiel.notes import ManifestRecord, NotedFile, manifest_records, writable
from kiel.platforms.types import ALGORITHMS, Failure, FileOutcome, Manifest, Verdict

EVENT = notes.MANIFEST
# The line's type, writer and reader are kiel.notes' (ManifestRecord.line,
# notes.manifest_records); named here too for the platforms' callers.
__all__ = ["EVENT", "ManifestRecord", "NotedFile", "SETTLED", "again", "carried",
           "failure_note", "fingerprint", "manifest_note", "manifest_records", "newest",
           "previous", "read_manifests", "unchanged", "writable"]


def fingerprint(manifest: Manifest) -> str:
    """What makes two manifests the same deposit state: version, strategy,
    bundle and every file's path, size, checksums, URL and access."""
    # By path (the order of every fingerprint written so far); entries of one
    # path, which a listing should not have, by their text: never a
    # comparison of a size with None.
    files = sorted(([f.path, f.size, f.md5, f.sha1, f.sha256, f.url, f.access]
                    for f in manifest.files),
                   key=lambda x: (x[0], json.dumps(x[1:], ensure_ascii=True)))
    text = json.dumps([manifest.platform, manifest.domain, manifest.deposit_id,
                       manifest.version, manifest.strategy, manifest.bundle_url, files],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _status(outcome: FileOutcome | None, access: str) -> str:
    if access != "open":
        return access
    if outcome is None:
        return "not-fetched"
    if outcome.verdict is not None:
        return outcome.verdict.status
    return "failed" if outcome.error else "not-fetched"


def manifest_note(manifest: Manifest, per_file_results: Mapping[str, FileOutcome], tist: int,
                  bundle: FileOutcome | None = None, unchanged: bool = False,
                  same_as: int | None = None) -> dict[str, Any]:
    """The notes line for ``manifest``; ``per_file_results`` maps each
    file's path to what the engine did with it (missing: not fetched);
    ``bundle`` is the bundle's own outcome for the bundle strategy.

    ``same_as``, with ``unchanged``, is the tist of the earlier note whose
    files this renewal carried over: the line then names it and lists no
    files (an unchanged deposit of thousands of files costs one short line
    a renewal, not its listing again); :func:`read_manifests` gives such a
    note the files of the one it names."""
    files = []
    for f in manifest.files:
        out = per_file_results.get(f.path)
        verdict: Verdict | None = out.verdict if out else None
        files.append(NotedFile(
            path=f.path, size=f.size, url=urls.redact(f.url), media_type=f.media_type,
            declared=f.declared(),
            found={a: v for a, v in (out.found if out else {}).items() if a in ALGORITHMS},
            found_size=out.size if out else None,
            file=out.file if out else None,
            status=_status(out, f.access),
            algorithm=verdict.algorithm if verdict else None,
            error=urls.redact_text(out.error) if out and out.error else None))
    return ManifestRecord(
        tist=tist, platform=manifest.platform, domain=manifest.domain,
        deposit_id=manifest.deposit_id, version=manifest.version, strategy=manifest.strategy,
        file_count=manifest.file_count, total_size=manifest.total_size,
        bundle_url=urls.redact(manifest.bundle_url) if manifest.strategy == "bundle"
        and manifest.bundle_url else None,
        bundle_file=bundle.file if bundle else None,
        api_urls=tuple(urls.redact(u) for u in manifest.api_urls),
        fingerprint=fingerprint(manifest), unchanged=unchanged, failure=None, message=None,
        files=tuple(files), same_as=same_as if unchanged else None).line()


def failure_note(failure: Failure, tist: int) -> dict[str, Any]:
    """The notes line for a deposit that ended in a named failure."""
    return ManifestRecord(
        tist=tist, platform=failure.platform, domain=failure.domain,
        deposit_id=failure.deposit_id, version=None, strategy=None, file_count=0,
        total_size=0, bundle_url=None, bundle_file=None,
        api_urls=tuple(urls.redact(u) for u in failure.api_urls), fingerprint=None,
        unchanged=False, failure=failure.name, message=urls.redact_text(failure.message),
        files=()).line()


def carried(previous: ManifestRecord) -> dict[str, FileOutcome]:
    """The outcomes of an earlier note, for the note of a renewal whose
    manifest did not change (nothing was fetched again)."""
    out = {}
    for f in previous.files:
        verdict = Verdict(f.status, f.algorithm) if f.status in ("ok", "mismatch",
                                                                 "unchecked") else None
        out[f.path] = FileOutcome(verdict, f.found_size, dict(f.found), f.file, f.error)
    return out


# The outcomes a renewal of an unchanged deposit carries over; a file noted
# otherwise (mismatch, failed, not fetched) is asked for again.
SETTLED = ("ok", "unchecked", "restricted", "embargoed")


def again(previous: ManifestRecord | None, manifest: Manifest) -> tuple[str, ...] | None:
    """None when ``previous`` did not note this deposit state (every file is
    fetched); else the URLs of the files its note left unsettled: a file
    that mismatched, or was not stored, is asked for again while the rest
    is carried over, so a platform that now serves the declared bytes is
    heard."""
    if previous is None or previous.failure is not None:
        return None
    if previous.fingerprint != fingerprint(manifest):
        return None
    if manifest.strategy == "bundle":
        return () if previous.bundle_file is not None else None
    status = {f.path: f.status for f in previous.files}
    return tuple(f.url for f in manifest.open_files if status.get(f.path) not in SETTLED)


def unchanged(previous: ManifestRecord | None, manifest: Manifest) -> bool:
    """True when ``previous`` noted the same deposit state and every file it
    settled: the renewal then costs the API requests and one note."""
    return again(previous, manifest) == ()


def read_manifests(record_dir: str) -> list[ManifestRecord]:
    """Every manifest note of a record directory, oldest first, for the
    renewal (:func:`previous`). Read as every reader reads notes
    (:func:`kiel.notes.entries_with`: a regular file only, bounded lines,
    only lines that mention the event parsed); a file that cannot be read
    has no manifests here (the readers report it: kiel/readers.py)."""
    out: list[ManifestRecord] = []
    try:
        out = notes.manifest_records(
            notes.entries_with(os.path.join(record_dir, notes.NOTES), b'"manifest"'), out)
    except OSError:
        pass
    return out


def previous(record_dir: str, platform: str, domain: str, deposit_id: str
             ) -> ManifestRecord | None:
    """The newest manifest note of one deposit in a record directory, for
    :func:`unchanged`."""
    found = None
    for rec in read_manifests(record_dir):
        if rec.key == (platform, domain, deposit_id):
            found = rec
    return found


def newest(records: Iterable[ManifestRecord]) -> list[ManifestRecord]:
    """The newest note of each deposit, in the order deposits first appear."""
    by_key: dict[tuple[str, str, str], ManifestRecord] = {}
    for rec in records:
        by_key[rec.key] = rec
    return list(by_key.values())
