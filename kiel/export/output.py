"""Where the records go: a WARC file of gzip members, and a WACZ package.

warcio serializes every record; this module only chooses the compression
(one gzip member per record, WARC 1.1 annex D, so a record can be read at
its offset), counts offsets and hashes what it writes. The WACZ package
(WACZ 1.1.1) is a ZIP of that WARC, a CDXJ index sorted by an external
merge sort (:mod:`kiel.spool`), a page list and ``datapackage.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
import zlib
from datetime import datetime, timezone
from typing import IO
from urllib.parse import urlsplit

from warcio.recordloader import ArcWarcRecord
from warcio.warcwriter import WARCWriter

from kiel import hashing
from kiel.spool import ExternalSort

WACZ_VERSION = "1.1.1"
GZIP_LEVEL = 6  # gzip's and tar -z's default: level 9 costs time for little on PDFs


class _Members:
    """The stream warcio writes to: every record its own gzip member. warcio
    flushes once at the end of each record; that flush ends the member."""

    def __init__(self, out: WarcFile):
        self.out = out
        self.z: zlib._Compress | None = None

    def write(self, data: bytes) -> None:
        if self.z is None:
            self.z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        piece = self.z.compress(data)
        if piece:
            self.out.raw(piece)

    def flush(self) -> None:
        if self.z is not None:
            self.out.raw(self.z.flush())
            self.z = None


class WarcFile:
    """A ``.warc.gz`` being written: each record's offset and length, the
    file's sha256 (for the WACZ package)."""

    def __init__(self, path: str):
        self.path = path
        self.f: IO[bytes] = open(path, "xb", buffering=1 << 20)  # noqa: SIM115  # closed in close()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.writer = WARCWriter(_Members(self), gzip=False, warc_version="1.1")

    def raw(self, data: bytes) -> None:
        self.f.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def write(self, record: ArcWarcRecord) -> tuple[int, int]:
        """Write one record; its offset and compressed length."""
        start = self.size
        self.writer.write_record(record)
        return start, self.size - start

    def close(self) -> None:
        self.f.close()


def surt_key(url: str) -> str:
    """The sort-friendly URL key of CDXJ lines (SURT, as pywb and py-wacz
    write it): host reversed, ``www.`` dropped, default port dropped, query
    arguments sorted, fragment dropped, all lower case."""
    low = url.lower()
    parts = urlsplit(low)
    if parts.scheme not in ("http", "https", "ftp") or not parts.hostname:
        return low
    host = parts.hostname
    labels = host.split(".")
    if len(labels) > 2 and re.fullmatch(r"www\d*", labels[0]):
        labels = labels[1:]
    key = ",".join(reversed(labels))
    default = {"http": 80, "https": 443, "ftp": 21}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != default:
        key += f":{port}"
    key += ")" + (parts.path or "/")
    if parts.query:
        key += "?" + "&".join(sorted(parts.query.split("&")))
    return key


def cdxj_line(record: ArcWarcRecord, offset: int, length: int, filename: str) -> bytes | None:
    """The index line of a record a replay looks up (response, revisit,
    resource); None for warcinfo and metadata."""
    kind = record.rec_type
    if kind not in ("response", "revisit", "resource"):
        return None
    h = record.rec_headers
    url = h.get_header("WARC-Target-URI")
    date = h.get_header("WARC-Date")  # YYYY-MM-DDThh:mm:ssZ
    ts = date[0:4] + date[5:7] + date[8:10] + date[11:13] + date[14:16] + date[17:19]
    entry: dict[str, str] = {"url": url}
    if kind == "resource":
        entry["mime"] = (record.content_type or "").split(";")[0].strip()
    else:
        http = record.http_headers
        entry["mime"] = "warc/revisit" if kind == "revisit" else \
            (http.get_header("Content-Type") or "unk").split(";")[0].strip()
        entry["status"] = http.get_statuscode()
    entry["digest"] = h.get_header("WARC-Payload-Digest") or ""
    entry["length"] = str(length)
    entry["offset"] = str(offset)
    entry["filename"] = filename
    return f"{surt_key(url)} {ts} {json.dumps(entry, ensure_ascii=False)}".encode()


class Package:
    """The parts of a WACZ beside its WARC, gathered while the WARC is written."""

    def __init__(self, workdir: str, warc_name: str):
        self.workdir = workdir
        self.warc_name = warc_name
        self.index = ExternalSort(os.path.join(workdir, "index"), chunk_bytes=16 << 20)
        self.pages_path = os.path.join(workdir, "pages.jsonl")
        self.pages = open(self.pages_path, "wb")  # noqa: SIM115  # closed in finish()
        self.pages.write(json.dumps({"format": "json-pages-1.0", "id": "pages",
                                     "title": "All pages"}).encode("utf-8") + b"\n")
        self.page_count = 0

    def add(self, record: ArcWarcRecord, offset: int, length: int) -> None:
        line = cdxj_line(record, offset, length, self.warc_name)
        if line is not None:
            self.index.add(line)

    def page(self, url: str, tist: int, title: str) -> None:
        ts = datetime.fromtimestamp(tist, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = {"id": f"p{self.page_count}", "url": url, "ts": ts, "title": title}
        self.pages.write(json.dumps(entry, ensure_ascii=False).encode("utf-8") + b"\n")
        self.page_count += 1

    def finish(self, warc: WarcFile, out_path: str, created: str, title: str,
               software: str) -> None:
        """Write the ZIP: the WARC stored (never deflated: it is read at
        offsets), the index, the pages, ``datapackage.json`` with every
        file's sha256 and size, and ``datapackage-digest.json``."""
        self.pages.close()
        resources: list[dict[str, object]] = []
        with zipfile.ZipFile(out_path, "x", allowZip64=True) as z:
            arc = "archive/" + self.warc_name
            z.write(warc.path, arc, compress_type=zipfile.ZIP_STORED)
            resources.append(_resource(arc, "sha256:" + warc.sha256.hexdigest(), warc.size))
            # Index and pages go in from files of known size: a streamed entry
            # would carry a ZIP64 field in its local header, which readers that
            # take the data offset from the central directory (ReplayWeb.page)
            # do not expect.
            index_path = os.path.join(self.workdir, "index.cdx")
            h = hashlib.sha256()
            with open(index_path, "wb") as f:
                for line in self.index:
                    f.write(line + b"\n")
                    h.update(line + b"\n")
            for arc, path, digest in (("indexes/index.cdx", index_path, h.hexdigest()),
                                      ("pages/pages.jsonl", self.pages_path,
                                       _sha256_file(self.pages_path))):
                z.write(path, arc, compress_type=zipfile.ZIP_DEFLATED)
                resources.append(_resource(arc, "sha256:" + digest, os.path.getsize(path)))
            package = {"profile": "data-package", "resources": resources, "title": title,
                       "created": created, "wacz_version": WACZ_VERSION, "software": software}
            data = json.dumps(package, indent=2).encode("utf-8")
            z.writestr(_info("datapackage.json", zipfile.ZIP_DEFLATED), data)
            signed = {"path": "datapackage.json",
                      "hash": "sha256:" + hashlib.sha256(data).hexdigest()}
            z.writestr(_info("datapackage-digest.json", zipfile.ZIP_DEFLATED),
                       json.dumps(signed, indent=2).encode("utf-8"))

    def cleanup(self) -> None:
        if not self.pages.closed:
            self.pages.close()
        self.index.cleanup()


def _sha256_file(path: str) -> str:
    return hashing.digest_file(path, ("sha256",))[1]["sha256"]


def _info(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, datetime.now(timezone.utc).timetuple()[:6])
    info.compress_type = compress
    return info


def _resource(path: str, digest: str, size: int) -> dict[str, object]:
    return {"name": os.path.basename(path).lower(), "path": path, "hash": digest,
            "bytes": size}
