"""The benchmark's notes history (bench/harness.py ``add_history``): lines a
renewal reads as its own, the object's age carried forward."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

from kiel import notes, objects

_BENCH = os.path.join(os.path.dirname(__file__), os.pardir, "bench")
sys.path.insert(0, _BENCH)
_spec = importlib.util.spec_from_file_location("bench_harness", os.path.join(_BENCH, "harness.py"))
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules["bench_harness"] = harness
_spec.loader.exec_module(harness)

T = 1795981850
URL = "http://127.0.0.11:18480/h/a.html"


def _line(**kw):
    d = {"tist": T, "url": URL, "status": "200", "type": "text-html",
         "declared_type": "text/html", "size": 100, "sha256": "a" * 64, "sha1": "b" * 40,
         "file": f"{T}_200_text-html", "link": None, "location": None, "error": None,
         "elapsed": 0.01, "headers": None, "attempt": 1, "etag": '"x-64"',
         "last_modified": "Sun, 29 Nov 2026 19:50:31 GMT", "since": T, "ever_ok": True}
    d.update(kw)
    return json.dumps(d, separators=(",", ":")) + "\n"


def _store(tmp_path):
    rdir = tmp_path / "home" / "store" / "RePEc" / "aaa" / "s" / "1"
    odir = rdir / "http%3A%2F%2F127.0.0.11%3A18480%2Fh%2Fa.html"
    gone = rdir / "http%3A%2F%2F127.0.0.12%3A18480%2Fh%2Fb.html"
    odir.mkdir(parents=True)
    gone.mkdir()
    (odir / "00notes").write_text(
        _line() + _line(tist=T + 8, status="304", declared_type=None,
                        file=f"{T + 8}_304_text-html", link=f"{T}_200_text-html"))
    (gone / "00notes").write_text(
        _line(url=URL.replace("a.html", "b.html"), status="404", ever_ok=False, etag=None)
        .replace(',"etag":null', ""))
    renewal = {"event": "renewal", "tist": T, "end": T, "id": "RePEc:aaa:s:1", "source": "x:1",
               "version": f"{T}.amf.xml", "version_sha256": "c" * 64, "current": f"{T}.amf.xml",
               "urls": {}, "skipped": [], "objects": {}, "errors": []}
    (rdir / "00notes").write_text(json.dumps(renewal, separators=(",", ":")) + "\n")
    return tmp_path / "home", rdir, odir, gone


def test_history_is_read_as_kiel_wrote_it(tmp_path):
    home, rdir, odir, gone = _store(tmp_path)
    before = (odir / "00notes").read_bytes()
    h = harness.add_history(str(home), 40)
    assert (h.objects, h.records) == (2, 1)
    since = T - 40 * harness.DAY

    lines = list(notes.read(str(odir / "00notes")))
    assert len(lines) == 42 and all(x.entry is not None for x in lines)
    attempts = [notes.parse_attempt(x.entry) for x in lines]
    assert [a.tist for a in attempts[:3]] == [since, since + harness.DAY, since + 2 * harness.DAY]
    assert [a.status for a in attempts[:4]] == ["200", "304", "200", "304"]
    assert attempts[1].link == attempts[0].file and attempts[1].sha256 == attempts[0].sha256
    assert attempts[2].sha256 != attempts[0].sha256
    assert all(a.since == since and a.ever_ok for a in attempts)
    # The newest lines are the renewal's own, only their age moved back.
    assert (odir / "00notes").read_bytes().endswith(
        before.replace(b'"since":%d' % T, b'"since":%d' % since))

    # What a renewal reads of the past: the newest body, the first attempt.
    od = objects.ObjectDir(str(odir), URL)
    objects._read_past(od)
    assert od.since == since and od.ever_ok and od.body is not None
    assert od.body.status == "304" and od.body.tist == T + 8

    g = [notes.parse_attempt(e) for e in notes.entries(str(gone / "00notes"))]
    assert len(g) == 41 and g[-1].status == "404" and g[-1].ever_ok and g[-1].since == since
    assert all(a.etag for a in g[:-1])

    r = [notes.parse_renewal(e) for e in notes.entries(str(rdir / "00notes"))]
    assert len(r) == 41 and all(x is not None for x in r)
    assert r[0].version == f"{since}.amf.xml" and r[1].version is None
    assert r[-1].tist == T and r[-2].tist == T - harness.DAY


def test_histories_stack(tmp_path):
    home, _, odir, _ = _store(tmp_path)
    harness.add_history(str(home), 10)
    harness.add_history(str(home), 20)
    attempts = [notes.parse_attempt(e) for e in notes.entries(str(odir / "00notes"))]
    tists = [a.tist for a in attempts]
    assert len(attempts) == 32 and tists == sorted(tists) and len(set(tists)) == 32
    assert tists[0] == T - 30 * harness.DAY
    assert {a.since for a in attempts} == {T - 30 * harness.DAY}
