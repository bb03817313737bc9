"""archive.org items: the metadata API (``GET https://archive.org/metadata/{id}``).

The answer lists every file of the item with ``size`` (a string), ``md5``,
``sha1`` and ``source``; only ``original`` files are the deposit (the
derivatives and the item's own metadata files are archive.org's work). An
unknown item is answered ``{}``, a dark one with ``is_dark``. Items have no
versions: the version is recorded as null. The "download all" zip is
``https://archive.org/compress/{id}``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kiel.platforms._common import (
    Ctx,
    Stop,
    as_int,
    as_str,
    finish,
    hexsum,
    host_of,
    lst,
    obj,
    sub,
)
from kiel.platforms.types import DepositRef, Failure, Limits, Manifest, ManifestFile

NAME = "archiveorg"
HOST = "archive.org"
BASE = f"https://{HOST}"
_PATH = re.compile(r"^/(details|download|metadata)/([A-Za-z0-9][A-Za-z0-9_.\-]*)(/.*)?$")
# Files archive.org writes into every item about the item itself.
_OWN = ("_meta.xml", "_files.xml", "_meta.sqlite", "_archive.torrent", "_reviews.xml",
        "_itemimage.jpg")


def match(url: str) -> DepositRef | None:
    if host_of(url) not in (HOST, f"www.{HOST}"):
        return None
    m = _PATH.match(unquote(urlsplit(url).path))
    if not m:
        return None
    rest = (m.group(3) or "").strip("/")
    kind = "file" if m.group(1) == "download" and rest else "deposit"
    return DepositRef(NAME, HOST, m.group(2), None, BASE, kind)


def resolve(ctx: Ctx, limits: Limits) -> Manifest | Failure:
    ref = ctx.ref
    if ref.kind == "file":
        raise Stop("platform-scope", f"the URL names one file of item {ref.deposit_id}")
    item = obj(ctx.json(f"{ref.base}/metadata/{ref.deposit_id}", "item"), "item")
    if item.get("is_dark"):
        raise Stop("platform-restricted", "the item is dark (withdrawn from public view)")
    if not item or not item.get("files") and not item.get("metadata"):
        raise Stop("platform-404", f"archive.org has no item {ref.deposit_id}")
    meta = sub(item, "metadata")
    if meta.get("mediatype") == "collection":
        raise Stop("platform-scope", f"{ref.deposit_id} is a collection, not an item")
    ident = as_str(meta.get("identifier")) or ref.deposit_id
    files = [f for f in (_file(ref.base, ident, raw) for raw in lst(item.get("files"), "files"))
             if f is not None]
    return finish(ref, ctx, None, files, f"{ref.base}/compress/{ident}", limits)


def _file(base: str, ident: str, raw: Any) -> ManifestFile | None:
    f = obj(raw, "a file")
    name = as_str(f.get("name"))
    if name is None or f.get("source") != "original":
        return None
    if name.startswith("_") or any(name in (ident + s, ident.lower() + s) for s in _OWN):
        return None
    access = "restricted" if str(f.get("private", "")).lower() == "true" else "open"
    return ManifestFile(path=name, size=as_int(f.get("size")),
                        url=f"{base}/download/{quote(ident)}/{quote(name)}",
                        md5=hexsum(f.get("md5")), sha1=hexsum(f.get("sha1")),
                        media_type=None, access=access)
