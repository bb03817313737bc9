"""The metadata formats: ``amf`` (the stored bytes) and ``oai_dc`` (XSLT)."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import cast

from lxml import etree

from kiel import AMF_NS
from kiel import store as _store
from kiel.notes import read_regular

_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")
_K = "urn:x-kiel:oai"


@dataclass(frozen=True)
class Format:
    prefix: str
    schema: str
    namespace: str


FORMATS: dict[str, Format] = {
    "oai_dc": Format("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
                     "http://www.openarchives.org/OAI/2.0/oai_dc/"),
    "amf": Format("amf", "http://amf.openlib.org/2001/amf.xsd", AMF_NS),
}

_local = threading.local()


def _transform() -> etree.XSLT:
    # An XSLT object must not be shared between threads (lxml); one each.
    t = getattr(_local, "xslt", None)
    if t is None:
        text = resources.files("kiel.oai").joinpath("oai_dc.xsl").read_bytes()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        # DENY_ALL exists at run time; lxml-stubs do not declare it.
        deny_all = cast(etree.XSLTAccessControl,
                        getattr(etree.XSLTAccessControl, "DENY_ALL"))  # noqa: B009
        t = etree.XSLT(etree.fromstring(text, parser), access_control=deny_all)
        _local.xslt = t
    return t


def read_version(record_dir: str, version: int, datestamp: int) -> bytes | None:
    """The version the index names; without one, the newest not after ``datestamp``."""
    # Store files are read only when regular (a FIFO would block the server).
    if version:
        try:
            return read_regular(os.path.join(record_dir, f"{version}.amf.xml"))
        except OSError:
            pass
    older = [v for v in _store.versions(record_dir) if v[0] <= datestamp]
    if not older:
        return None
    try:
        return read_regular(os.path.join(record_dir, older[-1][1]))
    except OSError:
        return None


def amf_metadata(version: bytes) -> bytes:
    """The stored ``amf`` element, byte for byte, without the XML declaration."""
    return _DECL.sub(b"", version, count=1).rstrip()


def oai_dc_metadata(version: bytes) -> bytes:
    """Dublin Core made from the stored version alone (issue 15, case 4).

    Nothing else of the record directory (what was fetched, when) enters,
    so the metadata changes only with a new version, and so does the datestamp.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    amf = etree.fromstring(version, parser)
    wrapper = etree.Element(f"{{{_K}}}record", nsmap={"k": _K})
    wrapper.append(amf)
    result = _transform()(etree.ElementTree(wrapper))
    root = result.getroot()
    if root is None:
        raise ValueError("the stored version holds no text noun")
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=False))


def metadata(prefix: str, record_dir: str, version: int, datestamp: int) -> bytes | None:
    """The ``metadata`` content of a record in ``prefix``; None if unreadable."""
    data = read_version(record_dir, version, datestamp)
    if data is None:
        return None
    if prefix == "amf":
        return amf_metadata(data)
    try:
        return oai_dc_metadata(data)
    except (etree.XMLSyntaxError, ValueError):
        return None
