"""The incremental index: the change log, the fold, the rebuild as a repair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from kiel.oai import ChangeLog, build, create_app, fold, rebuild, refresh
from kiel.oai import index as index_mod
from kiel.oai.changes import changes_dir, read, segments
from kiel.redist import record_path
from kiel.tist import iso

from kit.oai import (
    OAI,
    RECORDS,
    T0,
    Client,
    Rec,
    amf_bytes,
    make_home,
    oai_id,
    write_record,
)


def listing(client: Client, **args) -> list[tuple[str | None, str | None, bool]]:
    out = []
    root = client.get(verb="ListIdentifiers", metadataPrefix="amf", **args)
    while True:
        for h in root.iter(OAI + "header"):
            out.append((h.findtext(OAI + "identifier"), h.findtext(OAI + "datestamp"),
                        h.get("status") == "deleted"))
        tok = root.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken")
        if tok is None or not tok.text:
            return out
        root = client.get(verb="ListIdentifiers", resumptionToken=tok.text)


def set_specs(client: Client) -> list[str | None]:
    """Every setSpec of ListSets, following the resumption tokens to the end."""
    out = []
    root = client.get(verb="ListSets")
    while True:
        out += [s.findtext(OAI + "setSpec") for s in root.iter(OAI + "set")]
        tok = root.find(f"{OAI}ListSets/{OAI}resumptionToken")
        if tok is None or not tok.text:
            return out
        root = client.get(verb="ListSets", resumptionToken=tok.text)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = make_home(tmp_path / "home")
    build(str(h))
    return h


def new_version(home: Path, rid: str, tist: int, title: str) -> None:
    d = home / "store" / record_path(rid)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{tist}.amf.xml").write_bytes(amf_bytes(rid, title))


def test_a_change_is_listed_the_moment_its_line_is_written(home):
    now = T0 + 10 * 86400
    # The provider answers on the same clock as the log (a change is never
    # dated before an answer already given: test_oai_changelog_hardening.py).
    client = Client(create_app(str(home), now=lambda: now))
    before = listing(client)
    new_version(home, "RePEc:aaa:wpaper:2", now - 5, "Two, again")
    new_version(home, "RePEc:zzz:wpaper:1", now - 5, "A new one")
    with ChangeLog.open(str(home), now=lambda: now) as log:
        log.append("version", "RePEc:aaa:wpaper:2", record_path("RePEc:aaa:wpaper:2"))
        log.append("version", "RePEc:zzz:wpaper:1", record_path("RePEc:zzz:wpaper:1"))
        # Listed while the segment is still open: no build in between.
        got = listing(client, **{"from": iso(now)})
        assert got == [(oai_id("RePEc:aaa:wpaper:2"), iso(now), False),
                       (oai_id("RePEc:zzz:wpaper:1"), iso(now), False)]
    full = listing(client)
    assert len(full) == len(before) + 1
    assert (oai_id("RePEc:aaa:wpaper:2"), iso(T0 + 100), False) not in full
    rec = client.get(verb="GetRecord", metadataPrefix="amf",
                     identifier=oai_id("RePEc:aaa:wpaper:2"))
    assert rec.findtext(f".//{OAI}datestamp") == iso(now)
    assert b"Two, again" in etree.tostring(rec)
    sets = set_specs(client)  # the new archive and its series, on whichever page
    assert "RePEc:zzz" in sets and "RePEc:zzz:wpaper" in sets

    # The fold makes the same list from a new base, and empties the log.
    stats = fold(str(home))
    assert stats.folded == 2
    assert listing(Client(create_app(str(home)))) == full
    assert refresh(str(home)) is None  # nothing left to fold
    fold(str(home))  # the base before held it too: the segment can go
    assert segments(str(home)) == []
    assert listing(Client(create_app(str(home)))) == full


def test_two_processes_append_whole_lines_to_one_segment(home):
    with ChangeLog.open(str(home)) as log:
        path = log.path
    code = ("import os,sys\n"
            "fd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND)\n"
            "for i in range(2000):\n"
            " os.write(fd,b'%d\\tversion\\t1\\tRePEc:p%s:s:%d\\n'"
            "%(1700000000+i,sys.argv[2].encode(),i))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, path, tag]) for tag in ("a", "b")]
    for p in procs:
        assert p.wait(60) == 0
    changes, end = read(str(home), os.path.basename(path), 0)
    assert end == os.path.getsize(path) and len(changes) == 4000
    assert {c.id for c in changes} == {f"RePEc:p{t}:s:{i}" for t in "ab" for i in range(2000)}


def test_a_torn_last_line_waits_for_its_end(home):
    with ChangeLog.open(str(home), now=lambda: T0 + 5) as log:
        log.append("gone", "RePEc:aaa:wpaper:3", record_path("RePEc:aaa:wpaper:3"))
        with open(log.path, "ab") as f:
            f.write(b"1700000009\tversion\t1700000100\tRePEc:aaa:wp")
        name = os.path.basename(log.path)
        changes, end = read(str(home), name, 0)
        assert [c.id for c in changes] == ["RePEc:aaa:wpaper:3"]
        with open(log.path, "ab") as f:
            f.write(b"aper:2\n")
        more, _end = read(str(home), name, end)
        assert [(c.id, c.datestamp) for c in more] == [("RePEc:aaa:wpaper:2", 1700000009)]


def test_rebuild_dates_a_change_the_log_lost_when_it_lists_it(home):
    client = Client(create_app(str(home), now=lambda: T0 + 6000))  # the rebuild's clock
    before = {i: (d, g) for i, d, g in listing(client)}
    # A version written by a process killed before its change-log line.
    new_version(home, "RePEc:aaa:wpaper:3", T0 + 5000, "Three, changed")
    assert listing(client) == [(i, *before[i]) for i, _d, _g in listing(client)]
    stats = rebuild(str(home), now=lambda: T0 + 7777)
    assert stats.changed == 1
    after = {i: (d, g) for i, d, g in listing(Client(create_app(str(home))))}
    assert after.pop(oai_id("RePEc:aaa:wpaper:3")) == (iso(T0 + 7777), False)
    before.pop(oai_id("RePEc:aaa:wpaper:3"))
    assert after == before  # nothing else moved


def test_a_killed_rebuild_resumes(home, monkeypatch):
    client = Client(create_app(str(home)))
    want = listing(client)
    real = index_mod._entry_at
    calls = {"n": 0}

    def dies_midway(store_root, record_dir):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # as a kill would stop it
        return real(store_root, record_dir)

    monkeypatch.setattr(index_mod, "_entry_at", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        rebuild(str(home), checkpoint=2)
    state = json.loads((home / "var" / "oai" / "rebuild" / "state.json").read_text())
    assert state["after"] and len(state["chunks"]) == 2
    monkeypatch.setattr(index_mod, "_entry_at", real)
    walked = []

    def counting(store_root, record_dir):
        walked.append(record_dir)
        return real(store_root, record_dir)

    monkeypatch.setattr(index_mod, "_entry_at", counting)
    stats = rebuild(str(home), checkpoint=2)
    assert stats.resumed and stats.records == len(RECORDS)
    assert len(walked) == len(RECORDS) - 4  # the first four were saved
    assert not (home / "var" / "oai" / "rebuild").exists()
    assert listing(Client(create_app(str(home)))) == want


def test_the_renewal_appends_as_it_goes_and_refresh_folds(tmp_path):
    h = make_home(tmp_path / "h", recs=[Rec("RePEc:aaa:wpaper:1", [(T0, "One")])])
    assert refresh(str(h)).records == 1  # no base yet: built from the store
    write_record(h / "store", Rec("RePEc:aaa:wpaper:2", [(T0 + 50, "Two")]))
    with ChangeLog.open(str(h), now=lambda: T0 + 60) as log:
        c = log.append("version", None, record_path("RePEc:aaa:wpaper:2"))
    assert (c.id, c.version, c.datestamp, c.kind) == ("RePEc:aaa:wpaper:2", T0 + 50, T0 + 60,
                                                      "version")
    assert os.listdir(changes_dir(str(h)))
    stats = refresh(str(h))
    assert stats is not None and stats.records == 2 and stats.folded == 1
    # A run that changed nothing costs no fold, and leaves no segment behind.
    with ChangeLog.open(str(h)) as log:
        pass
    assert refresh(str(h)) is None
    assert not os.path.exists(log.path)
    with pytest.raises(ValueError), ChangeLog.open(str(h)) as log:
        log.append("version", "bad\tid", "other/x")


def test_a_rebuild_killed_by_sigkill_resumes_where_it_stopped(tmp_path):
    import signal
    import time

    h = make_home(tmp_path / "h", recs=[], page_size=1000)
    for i in range(4000):
        rid = f"RePEc:a{i % 7:02d}:s{i % 5}:{i:05d}"
        d = h / "store" / record_path(rid)
        d.mkdir(parents=True)
        (d / f"{T0 + i}.amf.xml").write_bytes(amf_bytes(rid, f"Record {i}"))
    code = ("import sys; from kiel.oai import rebuild; rebuild(sys.argv[1], checkpoint=40)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(h)])
    state = h / "var" / "oai" / "rebuild" / "state.json"
    while not state.exists():
        assert proc.poll() is None, "the rebuild ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    saved = json.loads(state.read_text())
    assert saved["after"] and saved["chunks"]
    stats = rebuild(str(h))
    assert stats.resumed and stats.records == 4000 and stats.changed == 0
    got = listing(Client(create_app(str(h))))
    assert [d for _i, d, _g in got] == sorted(iso(T0 + i) for i in range(4000))
    assert len({i for i, _d, _g in got}) == 4000


def test_read_back_takes_the_newest_return_of_either_kind(tmp_path: Path) -> None:
    """A return is a ``back`` event or a renewal marked ``back``; a renewal
    without the mark, a ``gone`` event, and a torn last line are not."""
    from kiel.notes import EventNote, RenewalNote, dumps

    def renewal(tist: int, back: bool) -> bytes:
        return dumps(RenewalNote(tist, tist, "RePEc:aaa:wpaper:1", "in.amf:1", None, None,
                                 None, {}, [], {}, [], back=back).line())

    path = tmp_path / "00notes"
    path.write_bytes(renewal(T0, False))
    assert index_mod.read_back(str(tmp_path)) is None
    path.write_bytes(renewal(T0, False) + dumps(EventNote("back", T0 + 10).line())
                     + renewal(T0 + 20, True) + renewal(T0 + 30, False)
                     + dumps(EventNote("gone", T0 + 40).line())
                     + b'{"event":"back","tist":%d' % (T0 + 50))
    assert index_mod.read_back(str(tmp_path)) == T0 + 20
    path.write_bytes(dumps(EventNote("back", T0 + 60).line()) + renewal(T0 + 20, True))
    assert index_mod.read_back(str(tmp_path)) == T0 + 60
