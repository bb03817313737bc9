"""The change log against bad lines, planted files and a clock that steps back.

Stores are made by the real renewal; the provider is the real WSGI
application, called as a server calls it; ``kiel oai index`` and
``kiel renew`` run as an operator runs them, in a child process.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

from lxml import etree

from kiel.oai import build, create_app
from kiel.oai.changes import changes_dir
from kiel.tist import iso

from kit.homes import Clock, record_dir, run, text, write_amf

OAI = "{http://www.openarchives.org/OAI/2.0/}"
IDS = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"]


def ask(app, **args: str) -> tuple[str, etree._Element | bytes]:
    """One request to the WSGI application: (status, parsed document or body)."""
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": urlencode(args), "PATH_INFO": "/oai",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "wsgi.input": io.BytesIO(b""),
           "CONTENT_LENGTH": "0", "wsgi.url_scheme": "http"}
    got: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"] = status

    data = b"".join(app(env, start_response))
    if not got["status"].startswith("200"):
        return got["status"], data
    return got["status"], etree.fromstring(data)


def identifiers(app, **args: str) -> list[tuple[str, str]]:
    status, root = ask(app, verb="ListIdentifiers", metadataPrefix="oai_dc", **args)
    assert status == "200 OK", root
    assert isinstance(root, etree._Element)
    return [(h.findtext(OAI + "identifier") or "", h.findtext(OAI + "datestamp") or "")
            for h in root.iter(OAI + "header")]


def kiel(root: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiel", *args, "--home", root],
                          capture_output=True, text=True, timeout=timeout)


def renewed_home(home, tmp_path: Path, clock: Clock) -> Path:
    src = write_amf(tmp_path / "in" / "a.xml", *(text(i) for i in IDS))
    run(home, src, clock=clock)
    build(home.root)
    return src


def segment(home, name: str, data: bytes) -> None:
    top = changes_dir(home.root)
    os.makedirs(top, exist_ok=True)
    with open(os.path.join(top, name), "wb") as f:
        f.write(data)


# --- one bad line --------------------------------------------------------------

def test_a_20_digit_datestamp_is_dropped_on_read(home, tmp_path):
    clock = Clock()
    renewed_home(home, tmp_path, clock)
    t1 = int(clock.t)
    segment(home, f"{t1 + 5}-1-aaaaaa.log",
            b"99999999999999999999\tversion\t1700000000\tRePEc:aaa:wpaper:1\n"
            b"+1700000100\tversion\t1700000000\tRePEc:aaa:wpaper:1\n"
            b"1700000100\tversion\t-1\tRePEc:aaa:wpaper:1\n"
            b"1700000100\tversion\t99999999999999999999\tRePEc:aaa:wpaper:1\n"
            b"1_700_000_100\tgone\t1700000000\tRePEc:aaa:wpaper:2\n")
    app = create_app(home.root, now=clock)
    want = [(f"oai:kiel.example.org:{i}", iso(t1)) for i in IDS]
    assert identifiers(app) == want
    r = kiel(home.root, "oai", "index")
    assert r.returncode == 0, r.stderr
    assert identifiers(create_app(home.root, now=clock)) == want


# --- planted files -------------------------------------------------------------

def test_a_fifo_named_like_a_segment_hangs_nothing(home, tmp_path):
    clock = Clock()
    src = renewed_home(home, tmp_path, clock)
    os.mkfifo(os.path.join(changes_dir(home.root), "1700000001-1-ffffff.log"))
    r = kiel(home.root, "oai", "index")
    assert r.returncode == 0, r.stderr
    assert len(identifiers(create_app(home.root, now=clock))) == 2
    # The renewal's final fold reads the log too.
    write_amf(src, *(text(i, extra="<abstract>new</abstract>") for i in IDS))
    r = kiel(home.root, "renew", str(src), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(identifiers(create_app(home.root))) == 2


def test_a_link_named_like_a_segment_is_not_read(home, tmp_path):
    clock = Clock()
    renewed_home(home, tmp_path, clock)
    outside = tmp_path / "outside.log"
    outside.write_bytes(b"1800000000\tgone\t0\tRePEc:aaa:wpaper:1\n")
    os.symlink(outside, os.path.join(changes_dir(home.root), "1700000001-1-eeeeee.log"))
    assert [d for _, d in identifiers(create_app(home.root, now=clock))] == [iso(int(clock.t))] * 2


# --- a clock that steps back --------------------------------------------------

def _response_date(app) -> str:
    status, root = ask(app, verb="Identify")
    assert isinstance(root, etree._Element)
    return root.findtext(OAI + "responseDate") or ""


def _title(app, rid: str) -> str:
    status, root = ask(app, verb="GetRecord", metadataPrefix="oai_dc",
                       identifier=f"oai:kiel.example.org:{rid}")
    assert status == "200 OK" and isinstance(root, etree._Element), root
    return root.findtext(".//{http://purl.org/dc/elements/1.1/}title") or ""


def test_a_clock_step_back_never_hides_a_new_version(home, tmp_path):
    """After a 120 s step back, a renewal stores a new version of record 1:
    the provider serves it, an incremental harvest from the last
    responseDate lists it, and a later run on the right clock keeps it."""
    clock = Clock()
    src = tmp_path / "in" / "a.xml"
    write_amf(src, text(IDS[0], display=None), text(IDS[1]))
    run(home, src, clock=clock)  # its final fold builds the base
    clock.advance(30)
    # A renewal that changed nothing leaves a segment (of the second before).
    run(home, src, clock=clock)
    app = create_app(home.root, now=clock)
    clock.advance(5)
    last_harvest = _response_date(app)
    assert _title(app, IDS[0]) == f"Title of {IDS[0]}"

    clock.t -= 120  # the clock steps back 120 s
    write_amf(src, text(IDS[0], extra="<abstract>revised</abstract>"), text(IDS[1]))
    r = run(home, src, clock=clock)
    assert r is not None
    got = identifiers(app, **{"from": last_harvest})
    assert [i for i, _ in got] == [f"oai:kiel.example.org:{IDS[0]}"]
    assert got[0][1] >= last_harvest
    status, rec = ask(app, verb="GetRecord", metadataPrefix="amf",
                      identifier=f"oai:kiel.example.org:{IDS[0]}")
    assert b"revised" in etree.tostring(rec)

    clock.t += 500  # back on the right clock: a run that changes nothing
    run(home, src, clock=clock)
    fresh = create_app(home.root, now=clock)
    status, rec = ask(fresh, verb="GetRecord", metadataPrefix="amf",
                      identifier=f"oai:kiel.example.org:{IDS[0]}")
    assert b"revised" in etree.tostring(rec)
    assert [i for i, _ in identifiers(fresh, **{"from": last_harvest})] == \
        [f"oai:kiel.example.org:{IDS[0]}"]


def test_a_rebuild_reads_a_gigabyte_of_notes_in_bounded_memory(home, tmp_path):
    """A record's 00notes grown to 1 GiB (sparse, one endless line): the
    rebuild reads it as every reader does, a line at a time and bounded."""
    renewed_home(home, tmp_path, Clock())
    with open(record_dir(home, IDS[0]) / "00notes", "r+b") as f:
        f.truncate(2**30)
    limit = 768 * 2**20
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, "
            f"({limit}, {limit})); from kiel.cli import main; sys.argv[0] = 'kiel'; main()")
    r = subprocess.run([sys.executable, "-c", code, "oai", "index", "--rebuild", "--home",
                        home.root], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "records:  2 (0 deleted)" in r.stdout


def test_segments_of_older_versions_are_read_first(home, tmp_path):
    """A store upgraded with segments named by the clock (``<tist>-...``):
    they are older than every numbered one, whatever their tist says."""
    from kiel.oai.changes import ChangeLog, ordered

    clock = Clock()
    renewed_home(home, tmp_path, clock)
    t = int(clock.t)
    # An old segment whose clock ran ahead, naming version t of record 1...
    segment(home, f"{t + 900}-1-abcdef.log",
            b"%d\tversion\t%d\t%s\n" % (t + 900, t, IDS[0].encode()))
    # ... and the change a numbered segment writes later, on the right clock.
    with ChangeLog.open(home.root, now=lambda: t + 10) as log:
        log.append("gone", IDS[0], "RePEc/aaa/wpaper/1", version=t)
    names = ordered(os.listdir(changes_dir(home.root)))
    assert names[0] == f"{t + 900}-1-abcdef.log" and names[1].startswith("n")
    app = create_app(home.root, now=clock)
    status, root = ask(app, verb="GetRecord", metadataPrefix="oai_dc",
                       identifier=f"oai:kiel.example.org:{IDS[0]}")
    assert isinstance(root, etree._Element)
    header = root.find(f".//{OAI}header")
    assert header is not None and header.get("status") == "deleted"
    assert header.findtext(OAI + "datestamp") == iso(t + 900)  # never earlier than served
