"""The store as WARC records: one attempt, one version, one link at a time.

Each function takes what the store holds (a notes line, a file path) and
returns a warcio record ready to write; nothing here walks the store or
writes a file (docs/export.md has the mapping field by field).
"""

from __future__ import annotations

import base64
import hashlib
import http
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from warcio.recordbuilder import RecordBuilder
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders

from kiel import hashing
from kiel.notes import AttemptNote, Headers
from kiel.tist import iso

RECORD_URN = "urn:kiel:record:"
ORIG = "X-Archive-Orig-"  # as pywb and Heritrix keep a field they had to change
# Fields that frame the body on the wire: made true for the body as stored.
FRAMING = ("content-length", "transfer-encoding", "content-encoding")
_IDS = uuid.UUID("8b6f1f0e-4a57-5f4e-9b0e-6b69656c7761")  # the namespace of our record ids
CHUNK = 1 << 20


def record_uri(record_id: str) -> str:
    """The URI a record's versions are written under: ``urn:kiel:record:<id>``.

    The id is kept as it is (RePEc handles read as they are cited); only
    what a URI cannot hold is percent-encoded."""
    out = []
    for ch in record_id:
        if ch.isascii() and (ch.isalnum() or ch in "-._~:/@!$&'()*+,;=%"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return RECORD_URN + "".join(out)


def record_id_for(kind: str, store_path: str) -> str:
    """A WARC-Record-ID named by what it records: the same store file gives
    the same id in every export, so a revisit names its original's id even
    when that original went into an earlier export."""
    return f"<urn:uuid:{uuid.uuid5(_IDS, kind + ':' + store_path)}>"


def sha1_base32(hex_digest: str) -> str:
    return "sha1:" + base64.b32encode(bytes.fromhex(hex_digest)).decode("ascii")


def status_line(status: str) -> str:
    try:
        return f"{status} {http.HTTPStatus(int(status)).phrase}"
    except ValueError:
        return f"{status} "


class ReceivedHeaders(StatusAndHeaders):  # type: ignore[misc]  # warcio is untyped
    """HTTP header fields written as the bytes received.

    The notes hold them decoded as Latin-1, so encoding them as Latin-1
    gives back the bytes on the wire. warcio's own serializer would
    percent-encode a value that is not ASCII (RFC 8187), which changes it.
    """

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        self.headers_buff = self.to_bytes(header_filter, encoding="latin-1")


@dataclass(frozen=True)
class Digests:
    payload: str  # sha1:BASE32 of the stored body
    block: str  # sha1:BASE32 of the header block and the body
    sha1_hex: str
    size: int


def digests(head: bytes, path: str | None) -> Digests:
    """One read of the body for both digests WARC asks for."""
    payload = hashing.Hashes(("sha1",))
    block = hashlib.sha1(head)
    if path is not None:
        with open(path, "rb", buffering=0) as f:
            for chunk in hashing.chunks(f.read):
                payload.update(chunk)
                block.update(chunk)
    sha1_hex = payload.hexdigests()["sha1"]
    return Digests(sha1_base32(sha1_hex), sha1_base32(block.hexdigest()), sha1_hex, payload.size)


def _clean(text: str) -> str:
    # A damaged notes line must not split the header block.
    return text.replace("\r", " ").replace("\n", " ")


def http_headers(status: str, received: Headers | None, size: int,
                 stored_encoding: str | None, declared_type: str | None,
                 extra: Iterable[tuple[str, str]] = ()) -> ReceivedHeaders:
    """The status line and the fields kept in the notes, in their order;
    the framing fields renamed ``X-Archive-Orig-*`` and a true
    ``Content-Length`` added for the body as stored. ``Content-Encoding``
    stays when the stored body is still in it (a coding Kiel does not undo)."""
    fields: list[tuple[str, str]] = []
    if received is None:
        # Notes written before the headers were kept: what they do say.
        if declared_type:
            fields.append(("Content-Type", declared_type))
    else:
        for name, value in received:
            low = name.lower()
            if low in FRAMING and not (low == "content-encoding" and stored_encoding):
                fields.append((ORIG + _clean(name), _clean(value)))
            else:
                fields.append((_clean(name), _clean(value)))
    fields.extend(extra)
    fields.append(("Content-Length", str(size)))
    return ReceivedHeaders(status_line(status), fields, protocol="HTTP/1.1")


def merged_304(confirmed: AttemptNote | None, not_modified: AttemptNote) -> Headers:
    """A 304's fields over those of the response it confirmed (RFC 9111,
    4.3.4: a 304 updates the stored response's fields): what a client held
    after the 304, replayed as the body it confirmed."""
    mine = list(not_modified.headers or ())
    names = {n.lower() for n, _ in mine}
    base = [(n, v) for n, v in (confirmed.headers or ()) if n.lower() not in names] \
        if confirmed is not None else []
    if confirmed is None and not_modified.declared_type and "content-type" not in names:
        base.append(("Content-Type", not_modified.declared_type))
    return tuple(base + mine)


class Builder:
    """warcio's record builder, set for WARC 1.1."""

    def __init__(self) -> None:
        self.rb = RecordBuilder(warc_version="1.1")

    def response(self, uri: str, tist: int, rid: str, head: ReceivedHeaders,
                 body: IO[bytes] | None, d: Digests) -> ArcWarcRecord:
        warc = {"WARC-Record-ID": rid, "WARC-Date": iso(tist),
                "WARC-Payload-Digest": d.payload, "WARC-Block-Digest": d.block}
        record = self.rb.create_warc_record(uri, "response", payload=body, length=d.size,
                                            warc_headers_dict=warc, http_headers=head)
        return record

    def revisit(self, uri: str, tist: int, rid: str, head: ReceivedHeaders, payload: str,
                refers_uri: str, refers_tist: int, refers_id: str) -> ArcWarcRecord:
        warc = {"WARC-Record-ID": rid, "WARC-Date": iso(tist), "WARC-Refers-To": refers_id}
        return self.rb.create_revisit_record(uri, payload, refers_uri, iso(refers_tist),
                                             http_headers=head, warc_headers_dict=warc)

    def resource(self, uri: str, tist: int, rid: str, content_type: str, body: IO[bytes],
                 d: Digests) -> ArcWarcRecord:
        warc = {"WARC-Record-ID": rid, "WARC-Date": iso(tist),
                "WARC-Payload-Digest": d.payload, "WARC-Block-Digest": d.block,
                "Content-Type": content_type}
        return self.rb.create_warc_record(uri, "resource", payload=body, length=d.size,
                                          warc_headers_dict=warc)

    def metadata(self, uri: str, tist: int, rid: str, refers_to: str | None,
                 fields: list[tuple[str, str]]) -> ArcWarcRecord:
        import io

        data = "".join(f"{_clean(k)}: {_clean(v)}\r\n" for k, v in fields).encode("utf-8")
        warc = {"WARC-Record-ID": rid, "WARC-Date": iso(tist),
                "Content-Type": "application/warc-fields"}
        if refers_to:
            warc["WARC-Refers-To"] = refers_to
        return self.rb.create_warc_record(uri, "metadata", payload=io.BytesIO(data),
                                          length=len(data), warc_headers_dict=warc)

    def warcinfo(self, filename: str, fields: list[tuple[str, str]]) -> ArcWarcRecord:
        import io

        data = "".join(f"{_clean(k)}: {_clean(v)}\r\n" for k, v in fields).encode("utf-8")
        warc = {"WARC-Filename": filename, "Content-Type": "application/warc-fields"}
        return self.rb.create_warc_record("", "warcinfo", payload=io.BytesIO(data),
                                          length=len(data), warc_headers_dict=warc)


def store_rel(store_root: str, path: str) -> str:
    return os.path.relpath(path, store_root)
