"""Dryad: the datasets API (v2) by DOI, its versions and their files.

``GET /api/v2/datasets/{doi}`` (the DOI as ``doi:10.5061/dryad.x``,
percent-encoded) gives the dataset and, in ``_links["stash:version"]``,
its latest published version; ``GET /api/v2/versions/{id}/files`` lists
that version's files, page by page (``_links.next``). Dryad URLs name no
version: the latest is taken and its version id recorded. Each file has
``digest`` and ``digestType``; ``_links["stash:download"]`` of the dataset
is the whole-dataset zip.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

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

NAME = "dryad"
HOST = "datadryad.org"
BASE = f"https://{HOST}"
_DOI = re.compile(r"^10\.5061/dryad\.[a-z0-9]+$", re.IGNORECASE)
_PATH = re.compile(r"^/(?:stash/)?dataset/doi:(10\.5061/dryad\.[A-Za-z0-9]+)/?$")
_API = re.compile(r"^/api/v2/datasets/doi:(10\.5061/dryad\.[A-Za-z0-9]+)/?$")
_DIGESTS = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256",
            "sha-256": "sha256"}
# Curation states in which the files are not yet (or no longer) public.
_NOT_PUBLIC = {"embargoed", "peer_review", "private for peer review", "withdrawn"}


def match(url: str) -> DepositRef | None:
    doi = doi_of(url)
    if doi:
        return DepositRef(NAME, HOST, doi.lower(), None, BASE) if _DOI.match(doi) else None
    if host_of(url) not in (HOST, f"www.{HOST}"):
        return None
    path = unquote(urlsplit(url).path)
    m = _PATH.match(path) or _API.match(path)
    return DepositRef(NAME, HOST, m.group(1).lower(), None, BASE) if m else None


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    ident = quote(f"doi:{ref.deposit_id}", safe="")
    dataset_url = f"{ref.base}/api/v2/datasets/{ident}"
    dataset = obj(ctx.json(dataset_url, "dataset"), "dataset")
    status = str(dataset.get("curationStatus") or "").strip().lower()
    if status in _NOT_PUBLIC:
        raise Stop("platform-restricted", f"curationStatus is {dataset.get('curationStatus')}")
    links = sub(dataset, "_links")
    version_href = _href(links, "stash:version")
    if version_href is None:
        raise Stop("platform-restricted", "the dataset has no published version")
    version_url = urljoin(dataset_url, version_href)
    version = version_href.rstrip("/").rsplit("/", 1)[-1]
    download = _href(links, "stash:download")
    bundle = urljoin(dataset_url, download) if download else None
    # The files are listed only when the version changed since the last
    # manifest: the dataset answer is then the one request of the renewal.
    known = ctx.files_of_previous(version)
    if known is not None:
        return finish(ref, ctx, version, known, bundle, limits)
    files: list[ManifestFile] = []
    page: str | None = version_url.rstrip("/") + "/files"
    seen: set[str] = set()
    while page is not None:
        if page in seen:
            raise Stop("platform-error", f"the file listing pages in a loop at {page}")
        seen.add(page)
        listing = obj(ctx.json(page, "file listing"), "file listing")
        embedded = sub(listing, "_embedded")
        for raw in lst(embedded.get("stash:files"), "stash:files"):
            f = _file(page, raw)
            if f is not None:
                files.append(f)
        nxt = _href(sub(listing, "_links"),
                    "next")
        page = urljoin(page, nxt) if nxt else None
    return finish(ref, ctx, version, files, bundle, limits)


def _href(links: dict[str, Any], name: str) -> str | None:
    link = links.get(name)
    return as_str(link.get("href")) if isinstance(link, dict) else None


def _file(page: str, raw: Any) -> ManifestFile | None:
    f = obj(raw, "a file")
    if str(f.get("status") or "").lower() == "deleted":
        return None
    links = sub(f, "_links")
    download = _href(links, "stash:download")
    path = as_str(f.get("path")) or "(unnamed)"
    if download is None:
        raise Stop("platform-error", f"file {path} has no stash:download link")
    alg = _DIGESTS.get(str(f.get("digestType") or "").lower())
    digest = hexsum(f.get("digest")) if alg else None
    sums = {alg: digest} if alg and digest else {}
    return ManifestFile(path=path, size=as_int(f.get("size")), url=urljoin(page, download),
                        md5=sums.get("md5"), sha1=sums.get("sha1"), sha256=sums.get("sha256"),
                        media_type=as_str(f.get("mimeType")))
