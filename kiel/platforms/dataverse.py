"""Dataverse, any installation: the native API by ``persistentId``.

``GET /api/datasets/:persistentId/versions/{v}?persistentId={pid}``, with
``v`` the version the URL names (``version=2.1``) or ``:latest-published``;
the answer says which version that is, and the manifest records it. Files
are fetched in their original format (``/api/access/datafile/{id}?format=
original``): the ``md5`` (or ``checksum``) Dataverse declares is the
original's, and so is ``originalFileSize``. The "download all" zip is
``/api/access/dataset/:persistentId/versions/{v}?persistentId={pid}&format=original``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from kiel.platforms._common import (
    Ctx,
    Stop,
    as_int,
    as_str,
    base_of,
    doi_of,
    finish,
    hexsum,
    host_of,
    lst,
    obj,
)
from kiel.platforms.types import DepositRef, Failure, Limits, Manifest, ManifestFile

NAME = "dataverse"
HARVARD = "dataverse.harvard.edu"
_HARVARD_DOI = re.compile(r"^10\.7910/DVN/[A-Z0-9]+$", re.IGNORECASE)
_PID = re.compile(r"^(doi:10\.\d{4,9}/\S+|hdl:\S+/\S+|perma:\S+)$", re.IGNORECASE)
_API_DATASET = re.compile(r"^/api(?:/v1)?/datasets/:persistentId/?(?:versions/([^/]+)/?)?$")
_API_FILE = re.compile(r"^/api(?:/v1)?/(?:files|access/datafile)/:persistentId/?$")
_VERSION = re.compile(r"^(\d+(?:\.\d+)?|:latest|:latest-published|:draft)$")


def match(url: str) -> DepositRef | None:
    doi = doi_of(url)
    if doi:
        if _HARVARD_DOI.match(doi):
            return DepositRef(NAME, HARVARD, f"doi:{doi.upper()}", None, f"https://{HARVARD}")
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    query = parse_qs(parts.query)
    pids = query.get("persistentId")
    if not pids or not _PID.match(pids[0].strip()):
        return None
    pid = pids[0].strip()
    base = base_of(url)
    domain = host_of(url)
    versions = query.get("version")
    version = versions[0] if versions and _VERSION.match(versions[0]) else None
    path = parts.path
    if path.endswith(("/dataset.xhtml", "/citation")):
        return DepositRef(NAME, domain, pid, version, base)
    m = _API_DATASET.match(path)
    if m:
        named = m.group(1)
        return DepositRef(NAME, domain, pid, named if named and _VERSION.match(named)
                          else version, base)
    if path.endswith("/file.xhtml") or _API_FILE.match(path):
        return DepositRef(NAME, domain, pid, version, base, kind="file")
    return None


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    if ref.kind == "file":
        raise Stop("platform-scope", f"{ref.deposit_id} names one file, not a dataset")
    v = ref.version or ":latest-published"
    pid = quote(ref.deposit_id, safe=":/")
    url = f"{ref.base}/api/datasets/:persistentId/versions/{quote(v, safe=':.')}" \
          f"?persistentId={pid}"
    answer = obj(ctx.json(url, "dataset"), "answer")
    if answer.get("status") not in (None, "OK"):
        raise Stop("platform-error", f"Dataverse says {answer.get('status')}: "
                   f"{answer.get('message')}")
    data = obj(answer.get("data"), "data")
    state = data.get("versionState")
    if state == "DEACCESSIONED":
        raise Stop("platform-restricted", "the dataset version is deaccessioned: "
                   f"{data.get('versionNote') or data.get('deaccessionNote') or ''}".rstrip(": "))
    major, minor = data.get("versionNumber"), data.get("versionMinorNumber")
    version = f"{major}.{minor}" if major is not None else (state or v).lower()
    files = [_file(ref.base, f, ctx.today) for f in lst(data.get("files"), "files")]
    bundle = f"{ref.base}/api/access/dataset/:persistentId/versions/{version}" \
             f"?persistentId={pid}&format=original"
    return finish(ref, ctx, version, files, bundle, limits)


def _file(base: str, raw: Any, today: str | None) -> ManifestFile:
    row = obj(raw, "a file")
    df = obj(row.get("dataFile"), "dataFile")
    fid = df.get("id")
    if not isinstance(fid, int):
        raise Stop("platform-error", "a dataFile without an id")
    original = as_str(df.get("originalFileName"))
    name = original or as_str(df.get("filename")) or as_str(row.get("label")) or str(fid)
    folder = as_str(row.get("directoryLabel"))
    size = as_int(df.get("originalFileSize")) if original else None
    if size is None:
        size = as_int(df.get("filesize"))
    sums: dict[str, str] = {}
    checksum = df.get("checksum")
    if isinstance(checksum, dict):
        alg = str(checksum.get("type", "")).lower().replace("-", "")
        if alg in ("md5", "sha1", "sha256") and hexsum(checksum.get("value")):
            sums[alg] = hexsum(checksum.get("value")) or ""
    if "md5" not in sums and hexsum(df.get("md5")):
        sums["md5"] = hexsum(df.get("md5")) or ""
    access = "open"
    embargo = df.get("embargo")
    until = embargo.get("dateAvailable") if isinstance(embargo, dict) else None
    # An embargo whose date has passed stays in the answer; without today's
    # date (ISO, from the engine) every embargo counts as active.
    if isinstance(until, str) and (today is None or until > today):
        access = "embargoed"
    elif row.get("restricted") is True or df.get("restricted") is True:
        access = "restricted"
    url = f"{base}/api/access/datafile/{fid}" + ("?format=original" if original else "")
    return ManifestFile(path=f"{folder}/{name}" if folder else name, size=size, url=url,
                        md5=sums.get("md5"), sha1=sums.get("sha1"), sha256=sums.get("sha256"),
                        media_type=as_str(df.get("originalFileFormat")) if original
                        else as_str(df.get("contentType")), access=access)
