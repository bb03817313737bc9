"""Records against damage in one place: an oversized record among good ones,
a record directory that is a file, a ``00gone`` that is a directory, and a
wall clock that steps back while a record is renewed.

Real files and real ``kiel renew`` runs; the oversized records are real
bytes streamed through the reader.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from werkzeug import Response

from kiel import notes
from kiel.home import Home
from kiel.verify import verify

from kit.cli import kiel, renew
from kit.homes import Clock, make_home, record_dir, run, set_config, text, write_amf

IDS = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "RePEc:aaa:wpaper:3"]


def versions(rdir: Path) -> list[str]:
    return sorted(n for n in os.listdir(rdir) if n.endswith(".amf.xml"))


def snapshot(path: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every name under ``path`` (itself included): its file type and bytes."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, Path(p).read_bytes()
                                              if os.path.isfile(p) else None)
    st = os.lstat(path)
    out["."] = (st.st_mode, path.read_bytes() if path.is_file() else None)
    return out


def last_summary(home: Path) -> dict:
    """The summary of the newest run (two runs in one second: ``<tist>-1.json``)."""
    runs = sorted((home / "var" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(runs[-1].read_text())


# --- a record directory that is a file, a 00gone that is a directory --------------------

DAMAGE = ["record-dir-is-a-file", "new-record-dir-is-a-file", "series-dir-is-a-file",
          "gone-is-a-directory"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_record_directory_that_is_a_file_or_a_gone_that_is_a_directory_skips_one_record(
        tmp_path, damage):
    """Each used to stop the whole run with exit 74 (``Not a directory``, ``Is a
    directory``); a 00gone directory even got a version written beside it
    first. Now the record is reported and skipped, counted as damaged, its
    path left byte for byte as it was; every other record is renewed, and
    ``verify`` names the damage."""
    home = make_home(tmp_path / "h")
    src = write_amf(tmp_path / "in" / "a.xml", *[text(i) for i in IDS])
    assert renew(home, str(src)).returncode == 0
    ids = list(IDS)
    if damage == "record-dir-is-a-file":
        target = record_dir(Home(str(home)), IDS[0])
        shutil.rmtree(target)
        target.write_bytes(b"an operator's note, not a record directory\n")
        words, finding = "a regular file where the record directory belongs", \
            "a file where a record directory belongs"
    elif damage == "new-record-dir-is-a-file":
        ids.append("RePEc:aaa:wpaper:4")
        target = record_dir(Home(str(home)), ids[-1])
        target.write_bytes(b"planted\n")
        words, finding = "a regular file where the record directory belongs", \
            "a file where a record directory belongs"
    elif damage == "series-dir-is-a-file":
        ids.append("RePEc:bbb:wpaper:1")
        target = record_dir(Home(str(home)), ids[-1]).parent
        target.parent.mkdir(parents=True)
        target.write_bytes(b"planted\n")
        words, finding = "a regular file where a directory of the store belongs", \
            "a file where a directory belongs"
    else:
        target = record_dir(Home(str(home)), IDS[0]) / "00gone"
        target.mkdir()
        (target / "kept").write_bytes(b"whatever a person put here\n")
        words, finding = "a directory where a regular file belongs", "00gone is not a regular"
    damaged = target if damage != "gone-is-a-directory" else target.parent
    before = snapshot(damaged)
    # every record has a new version to store
    write_amf(src, *[text(i, extra="<note>v2</note>") for i in ids])
    r = renew(home, str(src), timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert f"{target}: {words}" in r.stderr, r.stderr
    assert len([ln for ln in r.stderr.splitlines() if str(target) in ln]) == 1, r.stderr
    summary = last_summary(home)
    assert summary["damaged"] == 1 and summary["skipped"] == {"damaged": 1}, summary
    assert summary["exit_status"] == 1
    # nothing of the damaged path changed
    assert snapshot(damaged) == before
    # every other record was renewed
    hurt = IDS[0] if damage in ("record-dir-is-a-file", "gone-is-a-directory") else ids[-1]
    for i in ids:
        if i == hurt:
            continue
        rdir = record_dir(Home(str(home)), i)
        assert len(versions(rdir)) == (2 if i in IDS else 1), i
        assert (rdir / "00last").is_file()
    # verify reports it too
    v = kiel("verify", home=home)
    assert v.returncode == 1
    rel = os.path.relpath(target, home / "store")
    assert any(rel in ln and finding in ln for ln in v.stdout.splitlines()), v.stdout
    # and the next run says the same, still without stopping
    r2 = renew(home, str(src), timeout=60)
    assert r2.returncode == 1 and f"{target}: {words}" in r2.stderr, r2.stderr
    assert snapshot(damaged) == before


# --- a clock that steps back during a renewal ----------------------------------------------

def test_a_clock_step_back_during_a_renewal_never_ends_before_it_starts(home, httpserver,
                                                                        tmp_path):
    """The wall clock steps back 120 s while the record's object is fetched
    (the run's clock is the one the test moves; the renewal runs in this
    process). ``00last`` and the renewal line used to end 120 s before they
    started, a ``last-malformed`` breach of ``verify``; now the end is the start."""
    clock = Clock()
    set_config(home, processes=1)
    stepped: list[float] = []

    def step_back(_request):
        clock.t -= 120
        stepped.append(clock.t)
        return Response(b"%PDF-1.4\nbody\n", content_type="application/pdf")

    httpserver.expect_request("/paper.pdf").respond_with_handler(step_back)
    src = write_amf(tmp_path / "a.xml", text(IDS[0], httpserver.url_for("/paper.pdf")),
                    text(IDS[1]))
    start = int(clock.t)
    s = run(home, src, clock=clock)
    assert stepped, "the object was never fetched"
    assert s.records_renewed == 2
    rdir = record_dir(home, IDS[0])
    t0, t1 = map(int, (rdir / "00last").read_text().split())
    assert t0 == start and t1 >= t0, (t0, t1)
    (line,) = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "renewal"]
    assert (line["tist"], line["end"]) == (t0, t1)
    assert not [f for f in verify(home.root) if f.kind == "last-malformed"]
    assert not [f for f in verify(home.root) if f.severity == "breach"]
    # a record whose renewal saw no step keeps the clock's own end
    other = (record_dir(home, IDS[1]) / "00last").read_text().split()
    assert int(other[0]) <= int(other[1])
