"""The manifest note: what a deposit held and how each file checked out.

One line in the record's ``00notes`` per deposit and renewal, with
``"event": "manifest"`` (docs/contract.md, Deposits). Its keys avoid
``id``, ``version`` and ``current``, which readers of renewal lines take
as the record's id and version files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kiel import notes, urls
from kiel.platforms.types import ALGORITHMS, Failure, FileOutcome, Manifest, Verdict

EVENT = "manifest"


@dataclass(frozen=True)
class NotedFile:
    path: str
    size: int | None  # declared
    url: str | None
    declared: dict[str, str]
    found: dict[str, str]
    found_size: int | None
    file: str | None  # attempt file, relative to the record directory
    status: str  # ok, mismatch, unchecked, failed, not-fetched, restricted, embargoed
    algorithm: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ManifestRecord:
    """One manifest note as read back."""

    tist: int
    platform: str
    domain: str
    deposit_id: str
    version: str | None
    strategy: str | None  # None for a failure
    file_count: int
    total_size: int
    bundle_url: str | None
    bundle_file: str | None
    api_urls: tuple[str, ...]
    fingerprint: str | None
    unchanged: bool
    failure: str | None  # a name of kiel.platforms.types.FAILURES
    message: str | None
    files: tuple[NotedFile, ...]
    # An unchanged note names the earlier note that lists its files (by its
    # tist) instead of listing them again; read back, ``files`` are that note's.
    same_as: int | None = None

    @property
    def listed_at(self) -> int:
        """The tist of the note that lists this state's files."""
        return self.same_as if self.same_as is not None else self.tist

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.platform, self.domain, self.deposit_id)

    @property
    def mismatches(self) -> tuple[NotedFile, ...]:
        return tuple(f for f in self.files if f.status == "mismatch")


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
        files.append({
            "path": f.path, "size": f.size, "url": urls.redact(f.url), "media_type": f.media_type,
            "declared": f.declared(),
            "found": {a: v for a, v in (out.found if out else {}).items() if a in ALGORITHMS},
            "found_size": out.size if out else None,
            "file": out.file if out else None,
            "status": _status(out, f.access),
            "algorithm": verdict.algorithm if verdict else None,
            "error": urls.redact_text(out.error) if out and out.error else None,
        })
    return _writable_line({
        "event": EVENT, "tist": tist, "platform": manifest.platform,
        "domain": manifest.domain, "deposit": manifest.deposit_id,
        "deposit_version": manifest.version, "strategy": manifest.strategy,
        "file_count": manifest.file_count, "total_size": manifest.total_size,
        "bundle": urls.redact(manifest.bundle_url) if manifest.strategy == "bundle"
        and manifest.bundle_url else None,
        "bundle_file": bundle.file if bundle else None,
        "api": [urls.redact(u) for u in manifest.api_urls], "fingerprint": fingerprint(manifest),
        "unchanged": unchanged, "failure": None,
        "mismatches": sum(1 for x in files if x["status"] == "mismatch"),
        **({"same_as": same_as, "files": []} if unchanged and same_as is not None
           else {"files": files}),
    })


def writable(value: Any) -> Any:
    """``value`` with every string made writable as UTF-8: a lone surrogate
    (a file name or message a platform sent as ``"\\udc80"`` in JSON) is
    written as its escape, ``\\udc80``, instead of breaking the line."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {writable(k): writable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [writable(v) for v in value]
    return value


def _writable_line(line: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = writable(line)
    return out


def failure_note(failure: Failure, tist: int) -> dict[str, Any]:
    """The notes line for a deposit that ended in a named failure."""
    return _writable_line({
        "event": EVENT, "tist": tist, "platform": failure.platform, "domain": failure.domain,
        "deposit": failure.deposit_id, "deposit_version": None, "strategy": None,
        "file_count": 0, "total_size": 0, "bundle": None, "bundle_file": None,
        "api": [urls.redact(u) for u in failure.api_urls], "fingerprint": None,
        "unchanged": False,
        "failure": {"name": failure.name, "message": urls.redact_text(failure.message)},
        "mismatches": 0, "files": [],
    })


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


def _record(entry: dict[str, Any]) -> ManifestRecord | None:
    tist = entry.get("tist")
    if not isinstance(tist, int):
        return None
    failure = entry.get("failure") if isinstance(entry.get("failure"), dict) else None
    files = []
    for raw in entry.get("files") or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            continue
        files.append(NotedFile(
            path=raw["path"], size=_int(raw.get("size")), url=_str(raw.get("url")),
            declared=_sums(raw.get("declared")), found=_sums(raw.get("found")),
            found_size=_int(raw.get("found_size")), file=_str(raw.get("file")),
            status=_str(raw.get("status")) or "not-fetched",
            algorithm=_str(raw.get("algorithm")), error=_str(raw.get("error"))))
    return ManifestRecord(
        tist=tist, platform=_str(entry.get("platform")) or "",
        domain=_str(entry.get("domain")) or "", deposit_id=_str(entry.get("deposit")) or "",
        version=_str(entry.get("deposit_version")), strategy=_str(entry.get("strategy")),
        file_count=_int(entry.get("file_count")) or 0,
        total_size=_int(entry.get("total_size")) or 0,
        bundle_url=_str(entry.get("bundle")), bundle_file=_str(entry.get("bundle_file")),
        api_urls=tuple(u for u in entry.get("api") or () if isinstance(u, str)),
        fingerprint=_str(entry.get("fingerprint")), unchanged=entry.get("unchanged") is True,
        failure=_str(failure.get("name")) if failure else None,
        message=_str(failure.get("message")) if failure else None, files=tuple(files),
        same_as=_int(entry.get("same_as")) if entry.get("unchanged") is True else None)


def read_manifests(record_dir: str) -> list[ManifestRecord]:
    """Every manifest note of a record directory, oldest first, for the
    renewal (:func:`previous`). Read as every reader reads notes
    (:func:`kiel.notes.entries_with`: a regular file only, bounded lines,
    only lines that mention the event parsed); a file that cannot be read
    has no manifests here (the readers report it: kiel/readers.py)."""
    out: list[ManifestRecord] = []
    try:
        out = manifest_records(
            notes.entries_with(os.path.join(record_dir, notes.NOTES), b'"manifest"'), out)
    except OSError:
        pass
    return out


def manifest_records(entries: Iterable[dict[str, Any]],
                     out: list[ManifestRecord] | None = None) -> list[ManifestRecord]:
    """The manifest notes among parsed notes lines, oldest first, each
    unchanged one (``same_as``) given the files of the note it names. The
    one reader of the manifest line: the renewal and show, report and
    verify (kiel/readers.py) all call it. Records are appended to ``out``
    as they are read, so a caller that meets a read error keeps those
    read before it."""
    out = [] if out is None else out
    listed: dict[tuple[tuple[str, str, str], int], tuple[NotedFile, ...]] = {}
    for entry in entries:
        if entry.get("event") != EVENT:
            continue
        rec = _record(entry)
        if rec is None:
            continue
        if rec.same_as is not None:
            # The files of the note it names (one tuple, shared).
            rec = dataclasses.replace(rec, files=listed.get((rec.key, rec.same_as), rec.files))
        else:
            listed[(rec.key, rec.tist)] = rec.files
        out.append(rec)
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


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _sums(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        return {}
    return {k: x for k, x in v.items() if k in ALGORITHMS and isinstance(x, str)}
