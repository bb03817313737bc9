"""OAI-PMH stores written by hand, schema validation, and a WSGI client.

Every response is validated against the OAI-PMH schema (and each oai_dc
record against oai_dc.xsd), resolved from tests/fixtures/oai without the network.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from lxml import etree

from kiel import AMF_NS
from kiel.oai.server import Limits
from kiel.records import serialize
from kiel.redist import record_path, record_sets
from kiel.tist import iso

FIXTURES = Path(__file__).parent.parent / "fixtures" / "oai"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
OAI_DC = "{http://www.openarchives.org/OAI/2.0/oai_dc/}"
REPO = "test.kiel"

# --- schemas, resolved locally ------------------------------------------------

_LOCAL = {
    "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
}


class _LocalSchemas(etree.Resolver):
    def resolve(self, url, pubid, context):
        name = _LOCAL.get(url)
        if name is None and url.startswith(str(FIXTURES)):
            name = os.path.basename(url)
        if name is None:
            raise AssertionError(f"schema import {url} would need the network")
        return self.resolve_filename(str(FIXTURES / name), context)


def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(FIXTURES / name), parser))


OAI_SCHEMA = _schema("OAI-PMH.xsd")
DC_SCHEMA = _schema("oai_dc.xsd")


def validate(body: bytes) -> etree._Element:
    """Parse a response, validate it and its oai_dc records; return the root."""
    root = etree.fromstring(body)
    if not OAI_SCHEMA.validate(root):
        raise AssertionError(f"not valid OAI-PMH: {OAI_SCHEMA.error_log}\n{body.decode()}")
    for dc in root.iter(OAI_DC + "dc"):
        doc = etree.ElementTree(copy.deepcopy(dc))
        if not DC_SCHEMA.validate(doc):
            raise AssertionError(f"not valid oai_dc: {DC_SCHEMA.error_log}")
    return root


# --- stores written by hand -----------------------------------------------------

T0 = 1_700_000_000


@dataclass
class Rec:
    id: str
    versions: list[tuple[int, str]]  # (tist, title), oldest first
    gone: int | None = None
    objects: list[tuple[str, list[str]]] = field(default_factory=list)  # (url, statuses)
    extra: str = ""  # more AMF inside text, e.g. authors

    @property
    def datestamp(self) -> int:
        return self.gone if self.gone is not None else self.versions[-1][0]


def amf_bytes(rid: str, title: str, extra: str = "") -> bytes:
    text = (f'<text xmlns="{AMF_NS}" id="{etree_escape(rid)}"><title>{etree_escape(title)}'
            f"</title>{extra}<displaypage>http://example.org/{etree_escape(rid)}</displaypage></text>")
    return serialize(etree.fromstring(text))


def etree_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def write_record(store: Path, rec: Rec) -> Path:
    d = store / record_path(rec.id)
    d.mkdir(parents=True)
    for tist, title in rec.versions:
        (d / f"{tist}.amf.xml").write_bytes(amf_bytes(rec.id, title, rec.extra))
    last = rec.versions[-1][0]
    (d / "00last").write_text(f"{last} {last + 2}\n")
    (d / "00notes").write_text(json.dumps({"event": "renewal", "tist": last, "id": rec.id},
                                          separators=(",", ":"), ensure_ascii=False) + "\n")
    if rec.gone is not None:
        (d / "00gone").write_text(f"{rec.gone}\n")
        with open(d / "00notes", "a") as f:
            f.write(f'{{"event":"gone","tist":{rec.gone}}}\n')
    for _n, (url, statuses) in enumerate(rec.objects):
        from kiel.escape import escape

        o = d / escape(url)
        o.mkdir()
        (o / "00url").write_text(url + "\n")
        for k, status in enumerate(statuses):
            (o / f"{last + k}_{status}_text-html").write_bytes(b"<html>%d</html>" % k)
        (o / "00notes").write_text("")
    return d


RECORDS = [
    Rec("RePEc:aaa:wpaper:1", [(T0, "First draft"), (T0 + 500, "Growth & <Trade>")],
        objects=[("http://example.org/paper1.pdf", ["200"]),
                 ("http://example.org/missing", ["404", "404"])],
        extra='<hasauthor><person><name>Ada  Lovelace</name></person></hasauthor>'
              '<abstract> An abstract. </abstract><keywords>trade, growth</keywords>'),
    Rec("RePEc:aaa:wpaper:2", [(T0 + 100, "Two")]),
    Rec("RePEc:aaa:wpaper:3", [(T0 + 100, "Three")]),  # same datestamp as :2
    Rec("RePEc:aaa:wpaper:4", [(T0 + 200, "Four")], gone=T0 + 86400 * 3),
    Rec("RePEc:aaa:journl:v:1:y:2007:p:1-9", [(T0 + 300, "Colons in the rest")]),
    Rec("RePEc:BME:wpaper:7", [(T0 + 86400 * 2, "Mixed case archive")]),
    Rec("RePEc:bbb:wpaper:1", [(T0 + 86400 * 2, "Other archive")]),
    Rec("info:x/y z", [(T0 + 86400, "Space in the id")]),
    Rec("urn:\u00e9t\u00e9:1", [(T0 + 86400 + 1, "Non-ASCII id")]),
    Rec("RePEc:ccc:wpaper:9", [(T0 + 86400 * 4, "Gone and back")]),
]


def expected(recs=RECORDS) -> list[Rec]:
    return sorted(recs, key=lambda r: (r.datestamp, r.id.encode()))


def make_home(root: Path, recs=RECORDS, page_size: int = 3, max_requests: int = 4) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "var").mkdir()
    store = root / "store"
    store.mkdir()
    (root / "etc" / "kiel.conf").write_text(
        "[kiel]\n"
        f"repository_identifier = {REPO}\n"
        "repository_name = Test archive\n"
        "admin_email = oai@example.org\n"
        "base_url = http://127.0.0.1/oai\n"
        f"page_size = {page_size}\n"
        f"max_requests = {max_requests}\n"
        "request_wait = 0.2\n")
    for rec in recs:
        write_record(store, rec)
    return root


def oai_id(rid: str) -> str:
    from urllib.parse import quote

    return f"oai:{REPO}:" + quote(rid, safe="-_.!~*'();/?:@&=+$,")


class Client:
    """Calls the WSGI application directly, as a server would."""

    def __init__(self, app):
        self.app = app

    def raw(self, query: str = "", method: str = "GET", body: bytes = b""):
        env = {"REQUEST_METHOD": method, "QUERY_STRING": query if method == "GET" else "",
               "PATH_INFO": "/oai", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "wsgi.url_scheme": "http"}
        got = {}

        def start_response(status, headers):
            got["status"], got["headers"] = status, dict(headers)

        data = b"".join(self.app(env, start_response))
        return got["status"], got["headers"], data

    def get(self, **args) -> etree._Element:
        return self.query(urlencode(args))

    def query(self, query: str) -> etree._Element:
        status, headers, data = self.raw(query)
        assert status == "200 OK", data
        assert headers["Content-Type"] == "text/xml; charset=utf-8"
        return validate(data)

    def post(self, **args) -> etree._Element:
        status, _h, data = self.raw(method="POST", body=urlencode(args).encode())
        assert status == "200 OK"
        return validate(data)


def error_codes(root) -> list[str]:
    return [e.get("code") for e in root.iter(OAI + "error")]


def request_attrs(root) -> dict:
    return dict(root.find(OAI + "request").attrib)


def harvest(client: Client, verb: str, **args) -> tuple[list, list]:
    """Follow resumption tokens; return the items and the token elements seen."""
    items: list[etree._Element] = []
    tokens: list[etree._Element] = []
    root = client.get(verb=verb, **args)
    while True:
        body = root.find(OAI + verb)
        tag = {"ListRecords": "record", "ListIdentifiers": "header", "ListSets": "set"}[verb]
        assert body is not None, verb
        items.extend(body.findall(OAI + tag))
        tok = body.find(OAI + "resumptionToken")
        if tok is None:
            break
        tokens.append(tok)
        if not tok.text:
            break
        root = client.get(verb=verb, resumptionToken=tok.text)
    return items, tokens


def header_tuple(h) -> tuple:
    return (h.findtext(OAI + "identifier"), h.findtext(OAI + "datestamp"),
            h.get("status") == "deleted", tuple(s.text for s in h.findall(OAI + "setSpec")))


def rec_tuple(rec: Rec) -> tuple:
    return (oai_id(rec.id), iso(rec.datestamp), rec.gone is not None, tuple(record_sets(rec.id)))


LIMITS = Limits(threads=4, connection_limit=64, channel_timeout=30,
                max_request_body=64 * 1024, retry_after=10)


class Validating:
    """WSGI middleware of the tests: every XML answer must be schema-valid."""

    def __init__(self, app):
        self.app = app
        self.checked = 0
        self.failures: list[str] = []

    def __call__(self, environ, start_response):
        seen = {}

        def sr(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, dict(headers)
            return start_response(status, headers, exc_info)

        body = b"".join(self.app(environ, sr))
        if seen["headers"].get("Content-Type", "").startswith("text/xml"):
            plain = body
            coding = seen["headers"].get("Content-Encoding")
            if coding == "gzip":
                plain = gzip.decompress(body)
            elif coding == "deflate":
                plain = zlib.decompress(body)
            try:
                validate(plain)
                self.checked += 1
            except AssertionError as e:
                self.failures.append(str(e))
        return [body]
