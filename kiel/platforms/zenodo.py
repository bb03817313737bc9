"""Zenodo: the records API (``GET /api/records/{id}``).

A Zenodo record id names one version; a concept id (all versions) is
answered by the platform with its latest version, which is what gets
recorded. Files come with ``md5:<hex>`` checksums; the record's
``links.archive`` is the "download all" zip.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from kiel.platforms._common import (
    Ctx,
    Stop,
    as_int,
    as_str,
    doi_of,
    finish,
    hexsum,
    host_of,
    lst,
    obj,
    sub,
)
from kiel.platforms.types import DepositRef, Failure, Limits, Manifest, ManifestFile

NAME = "zenodo"
HOSTS = {"zenodo.org", "www.zenodo.org", "sandbox.zenodo.org"}
_PATH = re.compile(r"^/(?:api/)?(?:records?|deposit|uploads)/(\d+)(/.*)?$")
_DOI = re.compile(r"^10\.5281/zenodo\.(\d+)$", re.IGNORECASE)
_RECORD_API = re.compile(r"^/api/records/(\d+)/?$")


def match(url: str) -> DepositRef | None:
    doi = doi_of(url)
    if doi:
        m = _DOI.match(doi)
        return DepositRef(NAME, "zenodo.org", m.group(1), None, "https://zenodo.org") \
            if m else None
    host = host_of(url)
    if host not in HOSTS:
        return None
    m = _PATH.match(urlsplit(url).path)
    if not m:
        return None
    domain = "zenodo.org" if host == "www.zenodo.org" else host
    # /records/{id}/files/{key} names one file of the record: the record is
    # archived whole, as the issue asks for "every file of the deposit".
    return DepositRef(NAME, domain, m.group(1), None, f"https://{domain}")


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    first = f"{ref.base}/api/records/{ref.deposit_id}"
    latest = f"{first}/versions/latest"
    prev = ctx.previous
    # A concept id (all versions) is answered 404 at /api/records/<id> by
    # InvenioRDM; /versions/latest redirects to the latest version. Known
    # as a concept from the last manifest, it is asked there at once.
    concept = prev is not None and latest in prev.api_urls
    if not concept and ctx.peek(first).status == "404":
        concept = True
    url = latest if concept else first
    if concept:
        hop = ctx.peek(latest)
        m = _RECORD_API.match(urlsplit(urljoin(latest, hop.location or "")).path) \
            if hop.status[:1] == "3" else None
        # A published version's files never change: the same latest
        # version as last time is the same manifest, without asking again.
        files = ctx.files_of_previous(m.group(1)) if m else None
        if m and files is not None and prev is not None:
            # The note keeps the bundle URL of a bundle only; Zenodo's is
            # the record's files-archive.
            rid = m.group(1)
            bundle = prev.bundle_url or f"{ref.base}/api/records/{rid}/files-archive"
            return finish(ref, ctx, rid, files, bundle, limits)
    record = obj(ctx.json(url, "record"), "record")
    rid = str(record.get("id") or ref.deposit_id)
    _access(record)
    files = [_file(ref.base, rid, f) for f in _entries(record.get("files"))]
    links = sub(record, "links")
    bundle = as_str(links.get("archive")) or f"{ref.base}/api/records/{rid}/files-archive"
    return finish(ref, ctx, rid, files, bundle, limits)


def _access(record: dict[str, Any]) -> None:
    meta = sub(record, "metadata")
    right = meta.get("access_right")
    if right in ("embargoed", "restricted", "closed"):
        until = meta.get("embargo_date")
        raise Stop("platform-restricted", f"access_right is {right}"
                   + (f" until {until}" if until else ""))
    access = record.get("access")
    if isinstance(access, dict):  # the InvenioRDM form of the same facts
        embargo = access.get("embargo")
        if isinstance(embargo, dict) and embargo.get("active"):
            raise Stop("platform-restricted", f"embargoed until {embargo.get('until')}")
        if access.get("files") == "restricted":
            raise Stop("platform-restricted", "the files are restricted")


def _entries(files: Any) -> list[Any]:
    # The default (legacy) serializer gives a list; InvenioRDM's own gives
    # {"enabled": ..., "entries": {key: file}}.
    if isinstance(files, dict):
        entries = files.get("entries")
        return list(entries.values()) if isinstance(entries, dict) else lst(entries, "files")
    return lst(files, "files")


def _file(base: str, rid: str, raw: Any) -> ManifestFile:
    f = obj(raw, "a file")
    key = as_str(f.get("key")) or as_str(f.get("filename"))
    if key is None:
        raise Stop("platform-error", "a file without a key")
    sums: dict[str, str] = {}
    checksum = f.get("checksum")
    if isinstance(checksum, str) and ":" in checksum:
        alg, value = checksum.split(":", 1)
        alg = alg.lower().replace("-", "")
        if alg in ("md5", "sha1", "sha256") and hexsum(value):
            sums[alg] = hexsum(value) or ""
    links = sub(f, "links")
    url = as_str(links.get("content")) or as_str(links.get("self")) \
        or f"{base}/api/records/{rid}/files/{quote(key)}/content"
    return ManifestFile(path=key, size=as_int(f.get("size")), url=url,
                        md5=sums.get("md5"), sha1=sums.get("sha1"), sha256=sums.get("sha256"),
                        media_type=as_str(f.get("mimetype")))
