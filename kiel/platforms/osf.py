"""OSF: the nodes and files API (JSON:API, paginated).

``GET https://api.osf.io/v2/nodes/{guid}/files/osfstorage/`` lists the
node's files in OSF Storage, walked page by page (``links.next``) and
folder by folder (``relationships.files.links.related``); add-on providers
(copies of what lives on GitHub, Dropbox...) are not read. Files carry
``extra.hashes.md5`` and ``sha256`` and a ``links.download`` URL. OSF
projects have no versions: the version is recorded as null and a change
shows in the manifest's fingerprint. The "download all" zip of the
node's storage is ``https://files.osf.io/v1/resources/{guid}/providers/osfstorage/?zip=``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

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

NAME = "osf"
API = "https://api.osf.io/v2"
_GUID = r"[a-z0-9]{5,6}"
_PAGE = re.compile(rf"^/({_GUID})(?:/(?:files(?:/.*)?|wiki(?:/.*)?)?)?/?$")
_API = re.compile(rf"^/v2/(?:nodes|registrations)/({_GUID})(?:/files(?:/.*)?)?/?$")
_DOI = re.compile(rf"^10\.17605/OSF\.IO/({_GUID})$", re.IGNORECASE)
# First path segments of osf.io that are pages of the site, not guids.
_RESERVED = {"login", "logout", "search", "about", "donate", "meetings", "preprints",
             "registries", "support", "static", "institutions", "collections", "explore",
             "dashboard", "myprojects", "settings", "download", "forgotpassword", "register",
             "goodbye", "legal"}


def match(url: str) -> DepositRef | None:
    doi = doi_of(url)
    if doi:
        m = _DOI.match(doi)
        return DepositRef(NAME, "osf.io", m.group(1).lower(), None, API) if m else None
    host = host_of(url)
    path = urlsplit(url).path
    if host == "api.osf.io":
        m = _API.match(path)
    elif host in ("osf.io", "www.osf.io"):
        m = _PAGE.match(path)
        if m and m.group(1) in _RESERVED:
            return None
    else:
        return None
    return DepositRef(NAME, "osf.io", m.group(1), None, API) if m else None


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    # Straight to OSF's own storage: the node's /files/ root lists the
    # add-on providers too (GitHub, Dropbox...), copies of what lives
    # elsewhere, at the cost of one more request at every renewal.
    storage = f"{ref.base}/nodes/{ref.deposit_id}/files/osfstorage/"
    files: list[ManifestFile] = []
    _walk(ctx, storage, "osfstorage", False, files)
    bundle = f"https://files.osf.io/v1/resources/{ref.deposit_id}/providers/osfstorage/?zip="
    return finish(ref, ctx, None, files, bundle, limits)


def _pages(ctx: Ctx, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    page: str | None = url
    while page is not None:
        if page in seen:
            raise Stop("platform-error", f"the listing pages in a loop at {page}")
        seen.add(page)
        body = obj(ctx.json(page, "node"), "listing")
        for item in lst(body.get("data"), "data"):
            out.append(obj(item, "an entry"))
        links = sub(body, "links")
        page = as_str(links.get("next"))
    return out


def _related(item: dict[str, Any]) -> str | None:
    rel = item.get("relationships")
    files = rel.get("files") if isinstance(rel, dict) else None
    links = files.get("links") if isinstance(files, dict) else None
    related = links.get("related") if isinstance(links, dict) else None
    if isinstance(related, dict):
        return as_str(related.get("href"))
    return as_str(related)


def _walk(ctx: Ctx, url: str, provider: str, prefixed: bool,
          files: list[ManifestFile]) -> None:
    for item in _pages(ctx, url):
        attrs = obj(item.get("attributes"), "attributes")
        if attrs.get("kind") == "folder":
            href = _related(item)
            if href:
                _walk(ctx, href, provider, prefixed, files)
            continue
        links = sub(item, "links")
        download = as_str(links.get("download"))
        path = (as_str(attrs.get("materialized_path")) or as_str(attrs.get("name"))
                or str(item.get("id"))).lstrip("/")
        if prefixed:  # two providers may hold the same path
            path = f"{provider}/{path}"
        if download is None:
            raise Stop("platform-error", f"file {path} has no download link")
        extra = sub(attrs, "extra")
        hashes = sub(extra, "hashes")
        files.append(ManifestFile(path=path, size=as_int(attrs.get("size")), url=download,
                                  md5=hexsum(hashes.get("md5")),
                                  sha256=hexsum(hashes.get("sha256")),
                                  media_type=as_str(attrs.get("content_type"))))
