"""An independent harvester (Sickle) against a real waitress server on 127.0.0.1.

The harvest must give exactly the records of the store (deleted ones
included) through several resumption tokens, in both formats, by set and by
date. Every response the server sends is validated against the schemas on
its way out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lxml import etree
from sickle import Sickle, oaiexceptions

from kiel import AMF_NS
from kiel.oai import build, create_app
from kiel.oai.server import Background
from kiel.redist import record_path, record_sets
from kiel.tist import iso

from kit.cli import SCRIPT as KIEL
from kit.oai import LIMITS, RECORDS, REPO, T0, Validating, expected, make_home, oai_id, validate


@pytest.fixture
def server(tmp_path):
    home = make_home(tmp_path / "home", page_size=3, max_requests=2)
    build(str(home))
    app = create_app(str(home))
    checked = Validating(app)
    srv = Background(checked, LIMITS)
    yield srv.url, home, app, checked
    srv.stop()
    assert not checked.failures, checked.failures[0]


def store_bytes(home: Path, rid: str, tist: int) -> bytes:
    return (home / "store" / record_path(rid) / f"{tist}.amf.xml").read_bytes()


def canonical(el) -> bytes:
    return etree.tostring(el, method="c14n2")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_harvest_everything_in_both_formats(server, method):
    url, home, _app, checked = server
    sickle = Sickle(url, max_retries=0, timeout=10, http_method=method)
    want = expected()
    for prefix in ("amf", "oai_dc"):
        got = list(sickle.ListRecords(metadataPrefix=prefix, ignore_deleted=False))
        assert [(r.header.identifier, r.header.datestamp, r.header.deleted,
                 r.header.setSpecs) for r in got] == [
            (oai_id(w.id), iso(w.datestamp), w.gone is not None, record_sets(w.id))
            for w in want]
        for rec, w in zip(got, want, strict=True):
            if w.gone is not None:
                assert getattr(rec, "metadata", None) is None
                continue
            meta = rec.xml.find(".//{http://www.openarchives.org/OAI/2.0/}metadata")[0]
            stored = store_bytes(home, w.id, w.datestamp)
            if prefix == "amf":
                parser = etree.XMLParser(resolve_entities=False, no_network=True)
                assert canonical(meta) == canonical(etree.fromstring(stored, parser))
            else:
                assert rec.metadata["title"] == [" ".join(w.versions[-1][1].split())]
                assert f"http://example.org/{w.id}" in rec.metadata["identifier"]
    assert checked.checked >= 8  # 4 pages of 3 for each format


def test_harvest_identifiers_by_set_and_dates(server):
    url, _home, _app, _checked = server
    sickle = Sickle(url, max_retries=0, timeout=10)
    for spec in ("RePEc", "RePEc:aaa", "RePEc:aaa:wpaper", "other"):
        got = [h.identifier for h in sickle.ListIdentifiers(
            metadataPrefix="oai_dc", set=spec, ignore_deleted=False)]
        assert got == [oai_id(w.id) for w in expected() if spec in record_sets(w.id)], spec
    got = [h.identifier for h in sickle.ListIdentifiers(
        metadataPrefix="amf", ignore_deleted=False,
        **{"from": iso(T0 + 86400), "until": iso(T0 + 86400 * 3)})]
    assert got == [oai_id(w.id) for w in expected() if T0 + 86400 <= w.datestamp <= T0 + 86400 * 3]
    # Sickle drops deleted records when asked: the flag must be right.
    live = [h.identifier for h in sickle.ListIdentifiers(metadataPrefix="amf",
                                                          ignore_deleted=True)]
    assert live == [oai_id(w.id) for w in expected() if w.gone is None]
    with pytest.raises(oaiexceptions.NoRecordsMatch):
        list(sickle.ListIdentifiers(metadataPrefix="amf", set="RePEc:zzz"))


def test_identify_sets_get_record(server):
    url, _home, _app, _checked = server
    sickle = Sickle(url, max_retries=0, timeout=10)
    ident = sickle.Identify()
    assert ident.repositoryName == "Test archive" and ident.deletedRecord == "persistent"
    specs = [s.setSpec for s in sickle.ListSets()]
    assert specs == sorted({s for r in RECORDS for s in record_sets(r.id)})
    rec = sickle.GetRecord(identifier=oai_id("RePEc:BME:wpaper:7"), metadataPrefix="amf")
    assert rec.header.setSpecs == ["RePEc", "RePEc:bme", "RePEc:bme:wpaper"]
    assert rec.xml.find(f".//{{{AMF_NS}}}title").text == "Mixed case archive"
    with pytest.raises(oaiexceptions.IdDoesNotExist):
        sickle.GetRecord(identifier=f"oai:{REPO}:nope", metadataPrefix="amf")
    with pytest.raises(oaiexceptions.BadResumptionToken):
        list(sickle.ListRecords(resumptionToken="forged.token"))


def test_503_over_http_with_retry_after(server):
    url, _home, app, _checked = server
    held = 0
    while app.slots.acquire(blocking=False):
        held += 1
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "?verb=Identify", timeout=10)
        assert held == 2 and e.value.code == 503
        assert e.value.headers["Retry-After"] == "10"
    finally:
        for _ in range(held):
            app.slots.release()
    with urllib.request.urlopen(url + "?verb=Identify", timeout=10) as r:
        assert r.status == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_index_and_serve(tmp_path):
    home = make_home(tmp_path / "home")
    env = {**os.environ, "KIEL_HOME": ""}
    out = subprocess.run([KIEL, "oai", "index", "--home", str(home)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"records:  {len(RECORDS)} (1 deleted), 11 sets, 0 directories skipped" in out.stdout
    port = _free_port()
    proc = subprocess.Popen([KIEL, "oai", "serve", "--home", str(home),
                             "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/oai?verb=ListIdentifiers&metadataPrefix=amf",
                        timeout=5) as r:
                    body = r.read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        root = validate(body)
        assert len(root.findall(".//{http://www.openarchives.org/OAI/2.0/}header")) == 3
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=10)
    assert b"serving " in out
    bad = subprocess.run([KIEL, "oai", "serve", "--home", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "no Kiel home at" in bad.stderr
