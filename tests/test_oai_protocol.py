"""What harvesters expect beyond the first round: hostile arguments, a token's
list to its end, compression, Identify descriptions, named sets, a page for
browsers (issue 15, cases 5 and 7 and "What harvesters and peers expect")."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from lxml import etree
from sickle import Sickle

from kiel.oai import ChangeLog, build, create_app
from kiel.oai.app import choose_encoding
from kiel.oai.server import Background
from kiel.redist import record_path

from kit.oai import (
    LIMITS,
    OAI,
    RECORDS,
    Client,
    Validating,
    error_codes,
    expected,
    make_home,
    oai_id,
    request_attrs,
    validate,
)

HOSTILE = [
    "verb=GetRecord&metadataPrefix=amf&identifier=oai:test.kiel:RePEc:aaa:wpaper:2%01",
    "verb=GetRecord&metadataPrefix=amf&identifier=oai:test.kiel:%0B",
    "verb=ListIdentifiers&metadataPrefix=amf&set=RePEc%01",
    "verb=ListIdentifiers&metadataPrefix=amf&set=%EF%BF%BE",
    "verb=ListIdentifiers&resumptionToken=abc%00def",
    "verb=ListIdentifiers&metadataPrefix=amf&set=RePEc:",
    "verb=ListIdentifiers&metadataPrefix=amf&set=not%20a%20setspec!",
    "verb=ListRecords&metadataPrefix=a%22%3C%26%3E%27b",
    "verb=GetRecord&metadataPrefix=amf&identifier=%zz",
    "verb=GetRecord&metadataPrefix=amf&identifier=oai:test.kiel:a%20b",
    "verb=Identify&x%01y=1",
    "verb=%01",
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = make_home(tmp_path / "home", page_size=3)
    build(str(h))
    return h


@pytest.fixture
def client(home: Path) -> Client:
    return Client(create_app(str(home)))


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_arguments_are_bad_arguments_never_echoed(client, query):
    status, _h, data = client.raw(query)
    assert status == "200 OK"
    root = validate(data)  # well-formed and schema-valid
    assert set(error_codes(root)) <= {"badArgument", "badVerb"} and error_codes(root)
    assert request_attrs(root) == {}
    for needle in (b"\x01", b"\x0b", b"\x00", "\ufffe".encode(), b"%zz", b"a\"<&>'b"):
        assert needle not in data


def test_a_tokens_list_continues_to_its_end_when_the_rest_moved_past_until(home, client):
    until = expected()[-1].datestamp
    args = {"verb": "ListIdentifiers", "metadataPrefix": "amf", "until": _iso(until)}
    first = client.get(**args)
    token = first.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken").text
    # Every record not yet sent is renewed now: its datestamp moves past until.
    sent = {h.findtext(OAI + "identifier") for h in first.iter(OAI + "header")}
    with ChangeLog.open(str(home), now=lambda: until + 100) as log:
        for r in RECORDS:
            if oai_id(r.id) not in sent:
                log.append("gone" if r.gone else "version", r.id, record_path(r.id))
    root = client.get(verb="ListIdentifiers", resumptionToken=token)
    assert error_codes(root) == []
    body = root.find(OAI + "ListIdentifiers")
    # The last item still in the list, again (the schema wants one), and the end.
    last = list(first.iter(OAI + "header"))[-1]
    assert [etree.tostring(h) for h in body.findall(OAI + "header")] == [etree.tostring(last)]
    tok = body.find(OAI + "resumptionToken")
    assert tok.text is None and (tok.get("cursor"), tok.get("completeListSize")) == ("2", "3")
    # A new harvest from after until sees them all, once.
    later = client.get(verb="ListIdentifiers", metadataPrefix="amf", **{"from": _iso(until + 1)})
    got = [h.findtext(OAI + "identifier") for h in later.iter(OAI + "header")]
    assert len(got) == 3 and not set(got) & sent


def test_sickle_finishes_a_list_whose_rest_moved_past_until(home):
    until = expected()[-1].datestamp
    checked = Validating(create_app(str(home)))
    with Background(checked, LIMITS) as server:
        it = Sickle(server.url, max_retries=0, timeout=10).ListIdentifiers(
            metadataPrefix="amf", until=_iso(until), ignore_deleted=False)
        first = [next(it) for _ in range(3)]
        with ChangeLog.open(str(home), now=lambda: until + 100) as log:
            for r in RECORDS:
                if oai_id(r.id) not in {h.identifier for h in first}:
                    log.append("version", r.id, record_path(r.id))
        rest = list(it)  # no exception: the list ends
    assert [h.identifier for h in rest] == [first[-1].identifier]
    assert checked.checked >= 2 and not checked.failures


def _iso(t: int) -> str:
    from kiel.tist import iso

    return iso(t)


@pytest.mark.parametrize("accept,coding", [("gzip", "gzip"), ("deflate", "deflate"),
                                           ("gzip;q=0.5, deflate", "deflate"),
                                           ("gzip;q=0, deflate;q=0", None), ("", None),
                                           ("*", "gzip"), ("br", None)])
def test_compression_by_accept_encoding(client, accept, coding):
    assert choose_encoding(accept) == coding
    env_app = client.app
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = status, dict(headers)

    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": "verb=ListRecords&metadataPrefix=oai_dc",
           "PATH_INFO": "/oai", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
           "HTTP_ACCEPT_ENCODING": accept, "wsgi.url_scheme": "http"}
    data = b"".join(env_app(env, start_response))
    assert got["headers"].get("Content-Encoding") == coding
    assert got["headers"]["Vary"] == "Accept-Encoding"
    assert int(got["headers"]["Content-Length"]) == len(data)
    plain = {"gzip": gzip.decompress, "deflate": zlib.decompress, None: bytes}[coding](data)
    _s, _h, want = client.raw("verb=ListRecords&metadataPrefix=oai_dc")
    # Same document but for the responseDate, which may tick.
    assert plain.split(b"</responseDate>")[1] == want.split(b"</responseDate>")[1]


def test_identify_declares_compression_and_describes_the_repository(tmp_path):
    h = make_home(tmp_path / "h")
    with open(h / "etc" / "kiel.conf", "a") as f:
        f.write("friends = http://a.example.org/oai, http://b.example.org/oai\n")
    build(str(h))
    root = Client(create_app(str(h))).get(verb="Identify")
    ident = root.find(OAI + "Identify")
    assert [c.text for c in ident.findall(OAI + "compression")] == ["gzip", "deflate"]
    oi = "{http://www.openarchives.org/OAI/2.0/oai-identifier}"
    desc = ident.find(f"{OAI}description/{oi}oai-identifier")
    assert desc.findtext(oi + "repositoryIdentifier") == "test.kiel"
    assert desc.findtext(oi + "sampleIdentifier").startswith("oai:test.kiel:")
    fr = "{http://www.openarchives.org/OAI/2.0/friends/}"
    assert [u.text for u in ident.iter(fr + "baseURL")] == ["http://a.example.org/oai",
                                                             "http://b.example.org/oai"]
    g = make_home(tmp_path / "g")
    with open(g / "etc" / "kiel.conf", "a") as f:
        f.write("repository_identifier = RePEc\n")  # not a domain name
    build(str(g))
    plain = Client(create_app(str(g))).get(verb="Identify")
    assert list(plain.iter(fr + "friends")) == []
    assert list(plain.iter(oi + "oai-identifier")) == []


def test_list_sets_paged_with_names_from_a_file(tmp_path):
    h = make_home(tmp_path / "h", page_size=4)
    (h / "etc" / "sets.txt").write_text("# names of RePEc archives\n"
                                        "RePEc:aaa\tAAA Working Papers\nbad spec!\tNo\n")
    with open(h / "etc" / "kiel.conf", "a") as f:
        f.write("set_names = etc/sets.txt\n")
    build(str(h))
    client = Client(create_app(str(h)))
    root = client.get(verb="ListSets")
    sets = root.find(OAI + "ListSets")
    assert len(sets.findall(OAI + "set")) == 4
    assert sets.find(OAI + "resumptionToken").text
    named = [s for s in root.iter(OAI + "set") if s.findtext(OAI + "setSpec") == "RePEc:aaa"]
    assert named[0].findtext(OAI + "setName") == "AAA Working Papers"
    dc = named[0].find(f"{OAI}setDescription/{{http://www.openarchives.org/OAI/2.0/oai_dc/}}dc")
    assert dc.findtext("{http://purl.org/dc/elements/1.1/}title") == "AAA Working Papers"
    unnamed = [s for s in root.iter(OAI + "set") if s.findtext(OAI + "setSpec") != "RePEc:aaa"]
    assert all(s.find(OAI + "setDescription") is None for s in unnamed)


def test_a_browser_gets_a_stylesheet_from_the_provider(client):
    _s, _h, data = client.raw("verb=Identify")
    assert b'<?xml-stylesheet type="text/xsl" href="kiel-oai.xsl"?>' in data
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "PATH_INFO": "/oai/kiel-oai.xsl",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    got = {}
    xsl = b"".join(client.app(env, lambda s, h: got.update(status=s, headers=dict(h))))
    assert got["status"] == "200 OK" and got["headers"]["Content-Type"].startswith("text/xsl")
    # The page a browser would show: the stylesheet applied to a real answer.
    transform = etree.XSLT(etree.fromstring(xsl))
    _s, _h, listing = client.raw("verb=ListIdentifiers&metadataPrefix=oai_dc")
    html = str(transform(etree.fromstring(listing)))
    assert "ListIdentifiers" in html and "next page" in html
    assert oai_id(expected()[0].id) in html
