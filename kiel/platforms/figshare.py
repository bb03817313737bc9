"""Figshare: the public articles API with versions.

``GET https://api.figshare.com/v2/articles/{id}/versions/{v}`` for the
version the URL names (``.../12345/2``, ``10.6084/m9.figshare.12345.v2``),
else ``GET /v2/articles/{id}`` (the latest; its ``version`` field is
recorded). Files carry ``computed_md5`` (the platform's own hash of what it
stores; ``supplied_md5`` is the uploader's claim, used only when the
platform computed none). The "download all" zip is
``https://ndownloader.figshare.com/articles/{id}/versions/{v}``.
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
)
from kiel.platforms.types import DepositRef, Failure, Limits, Manifest, ManifestFile

NAME = "figshare"
API = "https://api.figshare.com/v2"
_DOI = re.compile(r"^10\.6084/m9\.figshare\.(\d+)(?:\.v(\d+))?$", re.IGNORECASE)
# /articles/{id}, /articles/{slug}/{id}[/{v}], /articles/{type}/{slug}/{id}[/{v}]
_ARTICLE = re.compile(r"^/articles/(?:[^/]+/){0,2}?(\d+)(?:/(\d+))?/?$")
_API = re.compile(r"^/v2/articles/(\d+)(?:/versions/(\d+))?/?$")
_FILE = re.compile(r"^/files/(\d+)/?$")


def match(url: str) -> DepositRef | None:
    doi = doi_of(url)
    if doi:
        m = _DOI.match(doi)
        return DepositRef(NAME, "figshare.com", m.group(1), m.group(2), API) if m else None
    host = host_of(url)
    path = urlsplit(url).path
    if host == "api.figshare.com":
        m = _API.match(path)
        return DepositRef(NAME, "figshare.com", m.group(1), m.group(2), API) if m else None
    if host == "ndownloader.figshare.com":
        m = _FILE.match(path)
        return DepositRef(NAME, "figshare.com", m.group(1), None, API, kind="file") \
            if m else None
    if host == "figshare.com" or host.endswith(".figshare.com"):
        m = _ARTICLE.match(path)
        if m:
            return DepositRef(NAME, host.removeprefix("www."), m.group(1), m.group(2), API)
    return None


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    if ref.kind == "file":
        raise Stop("platform-scope", f"figshare file {ref.deposit_id} is one file; "
                   "the article it belongs to is not named")
    url = f"{ref.base}/articles/{ref.deposit_id}"
    if ref.version:
        url += f"/versions/{ref.version}"
    article = obj(ctx.json(url, "article"), "article")
    if article.get("is_embargoed"):
        until = article.get("embargo_date")
        raise Stop("platform-restricted", "the article is embargoed"
                   + (f" until {until}" if until else "")
                   + (f" ({article.get('embargo_title')})" if article.get("embargo_title") else ""))
    if article.get("is_confidential"):
        raise Stop("platform-restricted", "the article's files are confidential")
    version = article.get("version")
    v = str(version) if isinstance(version, int) else ref.version
    files = [_file(f) for f in lst(article.get("files"), "files")]
    # The version must be known to name the bundle of that version and no other.
    bundle = f"https://ndownloader.figshare.com/articles/{ref.deposit_id}/versions/{v}" \
        if v else None
    return finish(ref, ctx, v, files, bundle, limits)


def _file(raw: Any) -> ManifestFile:
    f = obj(raw, "a file")
    url = as_str(f.get("download_url"))
    name = as_str(f.get("name")) or str(f.get("id"))
    if url is None:
        raise Stop("platform-error", f"file {name} has no download_url")
    md5 = hexsum(f.get("computed_md5")) or hexsum(f.get("supplied_md5"))
    # A link-only file lives elsewhere: Kiel fetches it, but the platform
    # vouches for no bytes.
    if f.get("is_link_only"):
        md5 = None
    return ManifestFile(path=name, size=as_int(f.get("size")), url=url, md5=md5,
                        media_type=as_str(f.get("mimetype")))
