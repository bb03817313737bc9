"""The OAI-PMH provider through its WSGI interface: index, verbs, errors.

Stores are written by hand, file by file, in the layout of docs/contract.md, so
every expected answer is known exactly. Every response is validated against
the OAI-PMH schema (and each oai_dc record against oai_dc.xsd).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from lxml import etree

from kiel import AMF_NS
from kiel.oai import build, create_app, rebuild
from kiel.oai.app import RETRY_AFTER
from kiel.oai.index import CURRENT, Entry, oai_dir, open_current, write_index
from kiel.redist import record_path, record_sets
from kiel.tist import iso

from kit.oai import (
    DC,
    OAI,
    OAI_DC,
    RECORDS,
    REPO,
    T0,
    Client,
    Rec,
    error_codes,
    expected,
    harvest,
    header_tuple,
    make_home,
    oai_id,
    rec_tuple,
    request_attrs,
    validate,
    write_record,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = make_home(tmp_path / "home")
    build(str(h))
    return h


@pytest.fixture
def client(home: Path) -> Client:
    return Client(create_app(str(home)))


# --- the index ---------------------------------------------------------------------

def test_index_holds_every_record_sorted(tmp_path):
    h = make_home(tmp_path / "h")
    (h / "store" / "other" / "no-version-yet").mkdir(parents=True)
    stats = build(str(h))
    assert (stats.records, stats.deleted, stats.skipped) == (len(RECORDS), 1, 1)
    assert stats.earliest == expected()[0].datestamp == T0 + 100
    lines = (Path(stats.path) / "records").read_bytes().splitlines()
    assert lines == sorted(lines)
    want = [b"%010d\t%s\t%s\t%d\t%s" % (r.datestamp, r.id.encode(), b"d" if r.gone else b"-",
                                        r.versions[-1][0], " ".join(record_sets(r.id)).encode())
            for r in expected()]
    assert lines == want
    index = open_current(str(h))
    assert index.set_specs == sorted({s for r in RECORDS for s in record_sets(r.id)})
    view = index.view("RePEc:aaa")
    assert [r.id for r in view.rows(0, len(view))] == [
        r.id for r in expected() if r.id.startswith("RePEc:aaa:")]


def test_external_sort_gives_the_same_index(tmp_path):
    h = make_home(tmp_path / "h")
    small = build(str(h), chunk=2)
    a = {n: (Path(small.path) / n).read_bytes() for n in ("records", "offsets", "postings", "sets")}
    big = build(str(h))
    b = {n: (Path(big.path) / n).read_bytes() for n in ("records", "offsets", "postings", "sets")}
    assert a == b and small.path != big.path


def test_rebuild_swaps_atomically_and_keeps_one_previous(tmp_path):
    h = make_home(tmp_path / "h")
    top = Path(oai_dir(str(h)))
    first = build(str(h)).path
    (top / ".kiel-tmp-leftover").mkdir()
    second = build(str(h)).path
    third = build(str(h)).path
    gens = sorted(p.name for p in top.iterdir() if p.name.startswith("index-"))
    assert gens == sorted([Path(second).name, Path(third).name])
    assert os.readlink(top / CURRENT) == Path(third).name
    assert not (top / ".kiel-tmp-leftover").exists() and Path(first).name not in gens


def test_write_index_from_entries(tmp_path):
    h = tmp_path / "h"
    entries = [Entry(T0 + (i % 7), f"RePEc:a{i % 3}a:s:{i}", i % 5 == 0,
                     tuple(record_sets(f"RePEc:a{i % 3}a:s:{i}"))) for i in range(50)]
    stats = write_index(str(h), reversed(entries + [None]), chunk=8)
    # sets: RePEc, 3 archives, 3 series
    assert (stats.records, stats.skipped, stats.deleted, stats.sets) == (50, 1, 10, 7)
    index = open_current(str(h))
    keys = [index.key(i) for i in range(index.count)]
    assert keys == sorted((e.datestamp, e.id.encode()) for e in entries)
    assert len(index.view("RePEc:a1a")) == len([e for e in entries if "a1a" in e.id])


# --- Identify, formats, sets --------------------------------------------------------

def test_identify(client):
    root = client.get(verb="Identify")
    ident = root.find(OAI + "Identify")
    assert ident.findtext(OAI + "repositoryName") == "Test archive"
    assert ident.findtext(OAI + "baseURL") == "http://127.0.0.1/oai"
    assert ident.findtext(OAI + "adminEmail") == "oai@example.org"
    assert ident.findtext(OAI + "earliestDatestamp") == iso(T0 + 100)
    assert ident.findtext(OAI + "deletedRecord") == "persistent"
    assert ident.findtext(OAI + "granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert request_attrs(root) == {"verb": "Identify"}
    assert root.findtext(OAI + "request") == "http://127.0.0.1/oai"


def test_post_answers_as_get(client):
    a = client.post(verb="ListIdentifiers", metadataPrefix="amf", set="RePEc:aaa")
    b = client.get(verb="ListIdentifiers", metadataPrefix="amf", set="RePEc:aaa")
    assert ([header_tuple(h) for h in a.iter(OAI + "header")]
            == [header_tuple(h) for h in b.iter(OAI + "header")])
    assert request_attrs(a) == {"verb": "ListIdentifiers", "metadataPrefix": "amf",
                                "set": "RePEc:aaa"}


def test_list_metadata_formats(client):
    root = client.get(verb="ListMetadataFormats")
    prefixes = [m.findtext(OAI + "metadataPrefix") for m in root.iter(OAI + "metadataFormat")]
    assert prefixes == ["oai_dc", "amf"]
    root = client.get(verb="ListMetadataFormats", identifier=oai_id("RePEc:aaa:wpaper:2"))
    assert len(list(root.iter(OAI + "metadataFormat"))) == 2


def test_list_sets_pages_through_the_hierarchy(client):
    sets, tokens = harvest(client, "ListSets")
    specs = [s.findtext(OAI + "setSpec") for s in sets]
    assert specs == sorted({s for r in RECORDS for s in record_sets(r.id)})
    assert "RePEc:bme:wpaper" in specs and "other" in specs
    assert len(specs) == 11
    assert [t.get("cursor") for t in tokens] == ["0", "3", "6", "9"]
    assert tokens[-1].text is None and tokens[-1].get("completeListSize") == str(len(specs))


# --- lists -----------------------------------------------------------------------

def test_list_identifiers_whole_repository_through_tokens(client):
    headers, tokens = harvest(client, "ListIdentifiers", metadataPrefix="oai_dc")
    assert [header_tuple(h) for h in headers] == [rec_tuple(r) for r in expected()]
    # 10 records, 3 a page: 4 pages, each with a token, the last one empty.
    assert [t.get("cursor") for t in tokens] == ["0", "3", "6", "9"]
    assert {t.get("completeListSize") for t in tokens} == {"10"}
    assert tokens[-1].text is None


def test_same_datestamp_is_not_split_or_repeated_across_pages(tmp_path):
    recs = [Rec(f"RePEc:aaa:same:{i:02d}", [(T0, f"r{i}")]) for i in range(7)]
    h = make_home(tmp_path / "h", recs, page_size=2)
    build(str(h))
    headers, _t = harvest(Client(create_app(str(h))), "ListIdentifiers", metadataPrefix="amf")
    assert [header_tuple(x)[0] for x in headers] == [oai_id(r.id) for r in recs]


def test_sets_parent_gives_children(client):
    for spec in ("RePEc", "RePEc:aaa", "RePEc:aaa:wpaper", "RePEc:bme", "other"):
        headers, _t = harvest(client, "ListIdentifiers", metadataPrefix="amf", set=spec)
        assert [header_tuple(h) for h in headers] == [
            rec_tuple(r) for r in expected() if spec in record_sets(r.id)], spec


def test_from_until_day_and_second_granularity(client):
    day1 = iso(T0 + 86400)[:10]
    headers, _t = harvest(client, "ListIdentifiers", metadataPrefix="amf", until=day1)
    last = int(T0 // 86400 * 86400 + 2 * 86400 - 1)  # the end of the next UTC day
    assert [header_tuple(h) for h in headers] == [
        rec_tuple(r) for r in expected() if r.datestamp <= last]
    headers, _t = harvest(client, "ListIdentifiers", metadataPrefix="amf",
                          **{"from": iso(T0 + 100), "until": iso(T0 + 300)})
    assert [header_tuple(h)[0] for h in headers] == [
        oai_id(r.id) for r in expected() if T0 + 100 <= r.datestamp <= T0 + 300]
    root = client.get(verb="ListIdentifiers", metadataPrefix="amf", set="RePEc:aaa",
                      **{"from": iso(T0 + 100)})
    tok = root.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken")
    assert tok.get("completeListSize") == "5" and tok.get("cursor") == "0"


def test_list_records_amf_is_the_stored_bytes(client, home):
    status, _h, data = client.raw(urlencode({"verb": "ListRecords", "metadataPrefix": "amf",
                                             "set": "RePEc:aaa:wpaper"}))
    validate(data)
    stored = (home / "store" / record_path("RePEc:aaa:wpaper:1")
              / f"{T0 + 500}.amf.xml").read_bytes()
    amf_element = stored.split(b"\n", 1)[1].rstrip(b"\n")
    assert b"<metadata>" + amf_element + b"</metadata>" in data
    assert b"Growth &amp; &lt;Trade&gt;" in amf_element


def test_list_records_oai_dc(client):
    records, _t = harvest(client, "ListRecords", metadataPrefix="oai_dc")
    assert len(records) == len(RECORDS)
    first = next(r for r in records
                 if r.findtext(f"{OAI}header/{OAI}identifier") == oai_id("RePEc:aaa:wpaper:1"))
    dc = first.find(f"{OAI}metadata/{OAI_DC}dc")
    values = [(e.tag.replace(DC, ""), e.text) for e in dc]
    assert values == [
        ("title", "Growth & <Trade>"), ("creator", "Ada Lovelace"),
        ("subject", "trade, growth"), ("description", "An abstract."), ("type", "Text"),
        ("identifier", "RePEc:aaa:wpaper:1"),
        ("identifier", "http://example.org/RePEc:aaa:wpaper:1"),
    ]  # no dc:relation: the version links no file, whatever was fetched (case 4)
    deleted = [r for r in records if r.find(OAI + "header").get("status") == "deleted"]
    assert [r.findtext(f"{OAI}header/{OAI}identifier") for r in deleted] == [
        oai_id("RePEc:aaa:wpaper:4")]
    assert deleted[0].find(OAI + "metadata") is None


def test_get_record_both_formats_and_deleted(client, home):
    root = client.get(verb="GetRecord", metadataPrefix="amf", identifier=oai_id("info:x/y z"))
    header = root.find(f"{OAI}GetRecord/{OAI}record/{OAI}header")
    assert header_tuple(header) == rec_tuple(RECORDS[7])
    assert oai_id("info:x/y z") == f"oai:{REPO}:info:x/y%20z"
    root = client.get(verb="GetRecord", metadataPrefix="oai_dc",
                      identifier=oai_id("urn:\u00e9t\u00e9:1"))
    assert root.findtext(f".//{DC}title") == "Non-ASCII id"
    root = client.get(verb="GetRecord", metadataPrefix="amf",
                      identifier=oai_id("RePEc:aaa:wpaper:4"))
    rec = root.find(f"{OAI}GetRecord/{OAI}record")
    assert rec.find(OAI + "header").get("status") == "deleted"
    assert rec.findtext(f"{OAI}header/{OAI}datestamp") == iso(T0 + 86400 * 3)
    assert rec.find(OAI + "metadata") is None


def test_get_record_reads_the_store_not_the_index(client, home):
    new = Rec("RePEc:aaa:wpaper:99", [(T0 + 9999, "Added after the index")])
    write_record(home / "store", new)
    root = client.get(verb="GetRecord", metadataPrefix="amf", identifier=oai_id(new.id))
    assert root.findtext(f".//{{{AMF_NS}}}title") == "Added after the index"
    # The lists follow the index: the new record appears once it is rebuilt.
    ids = [header_tuple(h)[0] for h in harvest(client, "ListIdentifiers", metadataPrefix="amf")[0]]
    assert oai_id(new.id) not in ids
    build(str(home))
    ids = [header_tuple(h)[0] for h in harvest(client, "ListIdentifiers", metadataPrefix="amf")[0]]
    assert oai_id(new.id) in ids


def test_a_record_back_unchanged_moves_forward(client, home):
    # Gone and back without a new version: its datestamp is the return, so
    # a harvester that saw the deletion sees the record again. The store
    # changed behind the provider's back, so the rebuild lists it anew,
    # dated when it does so.
    d = home / "store" / record_path("RePEc:aaa:wpaper:4")
    (d / "00gone").unlink()
    back = T0 + 86400 * 5
    with open(d / "00notes", "a") as f:
        f.write(f'{{"event":"back","tist":{back},"id":"RePEc:aaa:wpaper:4"}}\n')
    stats = rebuild(str(home), now=lambda: back + 7)
    assert stats.changed == 1
    root = client.get(verb="ListRecords", metadataPrefix="amf", **{"from": iso(back)})
    assert [header_tuple(h) for h in root.iter(OAI + "header")] == [
        (oai_id("RePEc:aaa:wpaper:4"), iso(back + 7), False,
         tuple(record_sets("RePEc:aaa:wpaper:4")))]
    assert root.findtext(f".//{{{AMF_NS}}}title") == "Four"
    got = client.get(verb="GetRecord", metadataPrefix="oai_dc",
                     identifier=oai_id("RePEc:aaa:wpaper:4"))
    assert got.findtext(f".//{OAI}datestamp") == iso(back + 7)
    assert got.findtext(f".//{DC}title") == "Four"
    # With the index lost, the datestamp comes from the notes: the return.
    shutil.rmtree(home / "var" / "oai")
    rebuild(str(home))
    got = Client(create_app(str(home))).get(verb="GetRecord", metadataPrefix="oai_dc",
                                            identifier=oai_id("RePEc:aaa:wpaper:4"))
    assert got.findtext(f".//{OAI}datestamp") == iso(back)


def test_token_survives_restart_and_rebuild(client, home):
    root = client.get(verb="ListRecords", metadataPrefix="amf")
    token = root.find(f"{OAI}ListRecords/{OAI}resumptionToken").text
    build(str(home))
    again = Client(create_app(str(home))).get(verb="ListRecords", resumptionToken=token)
    ids = [h.findtext(OAI + "identifier") for h in again.iter(OAI + "header")]
    assert ids == [oai_id(r.id) for r in expected()[3:6]]
    cursor = again.find(f"{OAI}ListRecords/{OAI}resumptionToken").get("cursor")
    assert cursor == "3"


# --- errors ------------------------------------------------------------------------

def _only_error(root, code):
    assert error_codes(root) == [code], etree.tostring(root)
    return root


@pytest.mark.parametrize("query", ["", "verb=Nonsense", "verb=Identify&verb=Identify",
                                   "verb=listrecords&metadataPrefix=amf"])
def test_bad_verb(client, query):
    root = _only_error(client.query(query), "badVerb")
    assert request_attrs(root) == {}


@pytest.mark.parametrize("args", [
    {"verb": "Identify", "metadataPrefix": "amf"},
    {"verb": "ListRecords"},
    {"verb": "GetRecord", "metadataPrefix": "amf"},
    {"verb": "GetRecord", "identifier": oai_id("RePEc:aaa:wpaper:2")},
    {"verb": "ListIdentifiers", "metadataPrefix": "amf", "from": "2023-13-01"},
    {"verb": "ListIdentifiers", "metadataPrefix": "amf", "from": "2023-11-14T22:13:20"},
    {"verb": "ListIdentifiers", "metadataPrefix": "amf", "from": "2023-11-14",
     "until": "2023-11-15T00:00:00Z"},
    {"verb": "ListIdentifiers", "metadataPrefix": "amf", "from": "2023-11-15",
     "until": "2023-11-14"},
    {"verb": "ListIdentifiers", "metadataPrefix": "amf", "set": ""},
    {"verb": "ListRecords", "metadataPrefix": "amf", "resumptionToken": "x"},
    {"verb": "ListSets", "set": "RePEc"},
])
def test_bad_argument(client, args):
    root = _only_error(client.get(**args), "badArgument")
    assert request_attrs(root) == {}


def test_bad_argument_repeated(client):
    _only_error(client.query("verb=ListRecords&metadataPrefix=amf&metadataPrefix=amf"),
                "badArgument")
    _only_error(client.query("verb=ListRecords&metadataPrefix=%FF"), "badArgument")


def test_bad_resumption_token(client):
    root = client.get(verb="ListIdentifiers", metadataPrefix="amf")
    token = root.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken").text
    payload, mac = token.split(".")
    forged = ("B" if payload[0] != "B" else "C") + payload[1:] + "." + mac
    for bad in ("garbage", forged, token + "x", token[:-2], "." + mac):
        root = _only_error(client.get(verb="ListIdentifiers", resumptionToken=bad),
                           "badResumptionToken")
        assert request_attrs(root) == {"verb": "ListIdentifiers", "resumptionToken": bad}
    # A token of one verb is not one of another.
    _only_error(client.get(verb="ListRecords", resumptionToken=token), "badResumptionToken")
    _only_error(client.get(verb="ListSets", resumptionToken=token), "badResumptionToken")


def test_cannot_disseminate_format(client):
    _only_error(client.get(verb="ListRecords", metadataPrefix="marc"), "cannotDisseminateFormat")
    _only_error(client.get(verb="ListIdentifiers", metadataPrefix="marc"),
                "cannotDisseminateFormat")
    _only_error(client.get(verb="GetRecord", metadataPrefix="marc",
                           identifier=oai_id("RePEc:aaa:wpaper:2")), "cannotDisseminateFormat")


def test_id_does_not_exist(client):
    for ident in (oai_id("RePEc:aaa:wpaper:404"), "oai:other.repo:RePEc:aaa:wpaper:2",
                  oai_id("repec:AAA:wpaper:2"), "RePEc:aaa:wpaper:2", f"oai:{REPO}:"):
        _only_error(client.get(verb="GetRecord", metadataPrefix="amf", identifier=ident),
                    "idDoesNotExist")
    _only_error(client.get(verb="ListMetadataFormats", identifier=oai_id("nope")),
                "idDoesNotExist")
    root = client.get(verb="GetRecord", metadataPrefix="marc", identifier=oai_id("nope"))
    assert sorted(error_codes(root)) == ["cannotDisseminateFormat", "idDoesNotExist"]


def test_no_records_match(client):
    _only_error(client.get(verb="ListRecords", metadataPrefix="amf", **{"from": "2099-01-01"}),
                "noRecordsMatch")
    _only_error(client.get(verb="ListIdentifiers", metadataPrefix="amf", set="RePEc:zzz"),
                "noRecordsMatch")
    _only_error(client.get(verb="ListIdentifiers", metadataPrefix="amf", until="1990-01-01"),
                "noRecordsMatch")


def test_no_metadata_formats_for_a_deleted_record(client):
    _only_error(client.get(verb="ListMetadataFormats", identifier=oai_id("RePEc:aaa:wpaper:4")),
                "noMetadataFormats")


def test_no_set_hierarchy_in_an_empty_repository(tmp_path):
    h = make_home(tmp_path / "h", recs=[])
    build(str(h))
    c = Client(create_app(str(h)))
    _only_error(c.get(verb="ListSets"), "noSetHierarchy")
    _only_error(c.get(verb="ListIdentifiers", metadataPrefix="amf", set="RePEc"),
                "noSetHierarchy")
    _only_error(c.get(verb="ListRecords", metadataPrefix="amf"), "noRecordsMatch")
    assert c.get(verb="Identify").findtext(f".//{OAI}earliestDatestamp") == iso(0)


# --- HTTP-level answers -------------------------------------------------------------

def test_method_not_allowed(client):
    status, headers, _d = client.raw("verb=Identify", method="PUT")
    assert status.startswith("405") and headers["Allow"] == "GET, POST"


def test_503_with_retry_after_when_full(home):
    app = create_app(str(home))
    client = Client(app)
    held = 0
    while app.slots.acquire(blocking=False):  # every slot busy, as with slow requests
        held += 1
    try:
        status, headers, _d = client.raw("verb=Identify")
        assert held == 4 and status.startswith("503")
        assert headers["Retry-After"] == str(RETRY_AFTER)
    finally:
        for _ in range(held):
            app.slots.release()
    assert client.raw("verb=Identify")[0] == "200 OK"


def test_503_before_the_first_index(tmp_path):
    h = make_home(tmp_path / "h")
    status, headers, data = Client(create_app(str(h))).raw("verb=Identify")
    assert status.startswith("503") and "Retry-After" in headers
    assert b"kiel oai index" in data


def test_concurrent_requests_all_answered(home):
    app = create_app(str(home))
    client = Client(app)
    results = []

    def run():
        for _ in range(20):
            results.append(client.raw("verb=ListIdentifiers&metadataPrefix=amf")[0])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and set(results) <= {"200 OK", "503 Service Unavailable"}
    assert "200 OK" in results


def test_build_that_cannot_write_is_a_store_error(tmp_path):
    from kiel.errors import StoreError

    h = make_home(tmp_path / "h")
    Path(oai_dir(str(h))).write_text("a file where the index directory belongs\n")
    with pytest.raises(StoreError, match="cannot write the OAI index"):
        build(str(h))
