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
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug import Response

from kiel import notes, records
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


# --- one record over max_record ----------------------------------------------------------

MiB = 1024 * 1024
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'


def good(n: int) -> bytes:
    return b'<text id="RePEc:aaa:wpaper:%d"><title>t%d</title></text>\n' % (n, n)


def gzip_of(path: Path, *parts: bytes | tuple[bytes, int]) -> Path:
    """A gzip file of ``parts``; a ``(filler, size)`` part is ``size`` bytes of
    ``filler``, compressed as it comes (never held whole here either)."""
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        for part in parts:
            if isinstance(part, bytes):
                f.write(c.compress(part))
                continue
            filler, size = part
            chunk = filler * (MiB // len(filler))
            f.writelines(c.compress(chunk) for _ in range(size // len(chunk)))
        f.write(c.flush())
    return path


# The child reads one file under a 1 GiB address-space limit and reports what
# it read and its peak resident memory (VmHWM: its own, not its parent's).
CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from kiel import records
    out = []
    for i in records.read_file(sys.argv[1], max_record=int(sys.argv[2])):
        if isinstance(i, records.Problem):
            out.append({"problem": str(i), "fatal": i.fatal_for_file, "id": i.id,
                        "skipped_record": getattr(i, "skipped_record", None),
                        "partial": getattr(i, "partial", None)})
        else:
            out.append({"record": i.id, "line": i.line})
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(json.dumps({"items": out, "peak": int(hwm.split()[1]) * 1024}))
""")


def read_in_child(path: Path, max_record: int = 16 * MiB) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_record)],
                          capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


BIG = 160 * MiB  # decompressed; ten times max_record, each file under 1 MB on disk


@pytest.mark.parametrize("kind,opening,filler,closing", [
    # a huge abstract: text
    ("text", b'<text id="RePEc:ccc:wpaper:huge"><abstract>', b"abstract ",
     b"</abstract></text>\n"),
    # markup that looks like the record's end where it is not: in a comment,
    # a CDATA section, a processing instruction; a '>' and '/>' in an attribute value
    ("markup", b'<text id="RePEc:ccc:wpaper:huge"><abstract>',
     b'<!-- </text> --><![CDATA[</text>]]><?pi </text>?><p a="/>x>" b=\'"\'><q/></p>\n',
     b"</abstract></text>\n"),
    # a start tag that never ends within max_record: a huge attribute
    ("attribute", b'<text id="RePEc:ccc:wpaper:huge" title="', b"A",
     b'"><title>t</title></text>\n'),
])
def test_one_record_over_max_record_is_skipped_alone_in_bounded_memory(tmp_path, kind, opening,
                                                                       filler, closing):
    """A record of 160 MiB between two good ones used to end its file: the good
    records were skipped with it. Now the record alone is skipped, passed over
    as it streams (peak memory under 96 MiB under a 1 GiB address-space
    limit), named with file, line and id; the records before and after it are read.

    Dense markup costs libxml2 a tree some twenty times its bytes before
    ``max_record`` is reached (as it always did): that case reads 32 MiB with
    ``max_record`` at 2 MiB, still far past the limit."""
    size, limit = (32 * MiB, 2 * MiB) if kind == "markup" else (BIG, 16 * MiB)
    path = gzip_of(tmp_path / f"{kind}.xml.gz", HEAD, good(1), b"\n", opening, (filler, size),
                   closing, good(2), b"</amf>\n")
    assert path.stat().st_size < MiB
    result = read_in_child(path, limit)
    assert result["peak"] < 96 * MiB, result["peak"]
    first, problem, second = result["items"]
    assert first == {"record": "RePEc:aaa:wpaper:1", "line": 3}
    # a text node stops libxml2 at 10 000 000 bytes, before max_record
    what = ("record too large: a text in it is longer than 10 000 000 bytes" if kind == "text"
            else f"record larger than {limit // MiB} MiB (setting max_record)")
    assert problem["problem"].startswith(f"{path}, line 5 (record RePEc:ccc:wpaper:huge): "
                                         + what), problem
    assert problem["problem"].endswith("; skipped, the records around it are read"), problem
    assert problem["id"] == "RePEc:ccc:wpaper:huge" and problem["skipped_record"]
    assert not problem["fatal"] and not problem["partial"]
    per_chunk = MiB // len(filler)  # as gzip_of writes it
    lines = size // (per_chunk * len(filler)) * per_chunk * filler.count(b"\n")
    assert second == {"record": "RePEc:aaa:wpaper:2", "line": 6 + lines}, (second, lines)


@pytest.mark.parametrize("kind,opening,filler", [
    ("record", b'<text id="RePEc:ccc:wpaper:huge"><abstract>', b"abstract "),
    ("attribute", b'<text id="RePEc:ccc:wpaper:huge" title="', b"A"),
    ("comment", b"<!--", b"-A"),
])
def test_unterminated_garbage_to_the_end_of_the_file_keeps_the_records_before_it(
        tmp_path, kind, opening, filler):
    """160 MiB that never end: the records before them are read (the whole file
    was skipped before), and the problem says that the file ends inside it,
    so that no record is marked gone by that run."""
    path = gzip_of(tmp_path / f"{kind}.xml.gz", HEAD, good(1), good(2), opening, (filler, BIG))
    result = read_in_child(path)
    assert result["peak"] < 96 * MiB, result["peak"]
    *recs, problem = result["items"]
    assert recs == [{"record": "RePEc:aaa:wpaper:1", "line": 3},
                    {"record": "RePEc:aaa:wpaper:2", "line": 4}]
    assert problem["problem"].endswith("and the file ends inside it; skipped, the records "
                                       "before it are read"), problem
    assert problem["partial"] and not problem["fatal"]
    if kind == "comment":
        assert problem["problem"].startswith(f"{path}, line 4: nothing ends within 16 MiB")
    else:
        assert problem["problem"].startswith(f"{path}, line 5 (record RePEc:ccc:wpaper:huge)")


def test_oversized_records_keep_the_files_own_declarations_and_lines(tmp_path):
    """After a skipped record the file is read on as it was written: its
    encoding (ISO-8859-1), its internal subset, its namespace prefix; line
    numbers are the file's; two oversized records on one line are both
    skipped alone; a file that is not well-formed after the skip is still
    skipped whole, as any such file."""
    big = b'<amf:text id="RePEc:aaa:wpaper:big%d"><amf:abstract>' + b"x" * (2 * MiB) \
        + b"</amf:abstract></amf:text>"
    data = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            b'<!DOCTYPE amf:amf [\n<!ENTITY e "a>b">\n]>\n'
            b'<amf:amf xmlns:amf="http://amf.openlib.org">\n'
            b'<amf:text id="RePEc:aaa:wpaper:1"><amf:title>caf\xe9</amf:title></amf:text>\n'
            + big % 1 + big % 2 + b"\n"
            b'<amf:text id="RePEc:aaa:wpaper:2"><amf:title>na\xefve</amf:title></amf:text>\n'
            b"</amf:amf>\n")
    path = tmp_path / "latin1.xml"
    path.write_bytes(data)
    items = list(records.read_file(str(path), max_record=MiB))
    assert [type(i).__name__ for i in items] == ["Record", "Problem", "Problem", "Record"]
    assert [(i.id, i.line) for i in items] == [("RePEc:aaa:wpaper:1", 6),
                                                ("RePEc:aaa:wpaper:big1", 7),
                                                ("RePEc:aaa:wpaper:big2", 7),
                                                ("RePEc:aaa:wpaper:2", 8)]
    assert "na\u00efve" in items[3].xml.decode("utf-8")
    # the same records within the limit are read as they always were
    whole = list(records.read_file(str(path), max_record=4 * MiB))
    assert [i.id for i in whole] == ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:big1",
                                     "RePEc:aaa:wpaper:big2", "RePEc:aaa:wpaper:2"]
    assert whole[3].xml == items[3].xml
    # not well-formed after the skip: the file is skipped whole, as before
    path.write_bytes(data.replace(b"na\xefve</amf:title>", b"x</amf:titel>"))
    *_, last = records.read_file(str(path), max_record=MiB)
    assert isinstance(last, records.Problem) and last.fatal_for_file
    assert last.line == 8 and "not well-formed" in last.reason


# Pieces of a record's body: plain markup, and markup holding what looks like
# a record's end (in a comment, a CDATA section, a PI, an attribute value).
BODY = [b"<title>t</title>", b"<abstract>" + b"w " * 500 + b"</abstract>",
        b"<!-- </text> -->", b"<![CDATA[ </text> <x> ]]>", b"<?pi </text> ?>",
        b'<file a="/>x>" b=\'"\'><url>u</url></file>', b"<e/>\n", b"\n"]
SEPARATORS = [b"", b"\n", b"<!-- </text> -->\n", b"  \n\n", b"<?pi x?>"]


@st.composite
def amf_files(draw) -> tuple[bytes, str]:
    """An AMF file of 1 to 8 records, some far over 32 KiB, with or without a prefix."""
    prefix = draw(st.sampled_from(["", "amf:"]))
    parts = [b'<?xml version="1.0" encoding="UTF-8"?>\n',
             f'<{prefix}amf xmlns{":amf" if prefix else ""}="http://amf.openlib.org">'
             .encode()]
    for i in range(draw(st.integers(1, 8))):
        parts.append(draw(st.sampled_from(SEPARATORS)))
        body = draw(st.lists(st.sampled_from(BODY), max_size=12))
        repeat = draw(st.sampled_from([1, 1, 40, 200]))  # 200: some 200 KiB
        parts.append(f'<{prefix}text id="RePEc:aaa:wpaper:{i}">'.encode()
                     + b"".join(body) * repeat + f"</{prefix}text>".encode())
    parts.append(f"\n</{prefix}amf>\n".encode())
    text_ = b"".join(parts)
    if prefix:  # the body's own elements take the prefix too
        for tag in (b"title", b"abstract", b"file", b"url", b"e"):
            text_ = text_.replace(b"<" + tag, b"<amf:" + tag).replace(b"</" + tag, b"</amf:" + tag)
    return text_, prefix


@settings(max_examples=60, deadline=None)
@given(amf_files(), st.sampled_from([7, 333, 64 * 1024]))
def test_what_is_read_around_skipped_records_is_what_a_whole_read_gives(tmp_path_factory, f,
                                                                       chunk):
    """(hypothesis) With ``max_record`` at 32 KiB, every record the reader
    yields is byte for byte and line for line what reading the file whole
    gives, and every other record is named by a problem that is not fatal;
    also when the file comes in pieces of 7 or 333 bytes (end tags, comments
    and attribute values cut anywhere)."""
    data, _prefix = f
    path = tmp_path_factory.mktemp("amf") / "a.xml"
    path.write_bytes(data)
    whole = {r.id: r for r in records.read_file(str(path), max_record=64 * MiB)}
    assert all(isinstance(r, records.Record) for r in whole.values())
    saved = records._CHUNK
    records._CHUNK = chunk
    try:
        got = list(records.read_file(str(path), max_record=32 * 1024))
    finally:
        records._CHUNK = saved
    problems = [i for i in got if isinstance(i, records.Problem)]
    assert not [p for p in problems if p.fatal_for_file or p.partial], problems
    read = {r.id: r for r in got if isinstance(r, records.Record)}
    for rid, r in read.items():
        assert (r.line, r.xml) == (whole[rid].line, whole[rid].xml), rid
    skipped = {p.id for p in problems}
    assert set(whole) == set(read) | skipped and not set(read) & skipped
    # only records near the limit or over it (markup between records counts too)
    assert all(len(whole[rid].xml) > 16 * 1024 for rid in skipped)


def big_text(rid: str, size: int) -> str:
    return f'<text id="{rid}"><title>big</title><abstract>{"x" * size}</abstract></text>'


def test_renew_renews_the_records_around_an_oversized_one(tmp_path):
    """A real ``kiel renew`` (max_record = 1 MiB): the records before and after
    an oversized record get their new versions; the oversized one is named
    (file, line, id), exit 1 as for other bad records, its directory (stored
    when it was small) left as it was and not marked gone. Garbage running
    to the end of a file keeps the records before it, and that run marks
    no record gone."""
    home = make_home(tmp_path / "h", "max_record = 1MiB\n")
    ids = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:big", "RePEc:aaa:wpaper:2"]
    src = tmp_path / "in" / "a.xml"
    write_amf(src, text(ids[0]), text(ids[1]), text(ids[2]))
    other = write_amf(tmp_path / "in" / "b.xml", text("RePEc:bbb:wpaper:9"))
    assert renew(home, str(src.parent)).returncode == 0
    h = Home(str(home))
    big_dir = record_dir(h, ids[1])
    before = snapshot(big_dir)
    write_amf(src, text(ids[0], extra="<note>v2</note>"), big_text(ids[1], 2 * MiB),
              text(ids[2], extra="<note>v2</note>"))
    r = renew(home, str(src.parent), timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert (f"{src}, line 4 (record {ids[1]}): record larger than 1 MiB (setting max_record); "
            "skipped, the records around it are read") in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "file skipped" not in r.stderr
    for i in (ids[0], ids[2]):
        assert len(versions(record_dir(h, i))) == 2, i
    assert snapshot(big_dir) == before
    assert not (big_dir / "00gone").exists()
    assert last_summary(home)["input_errors"] == 1
    # garbage to the end of the file, and b.xml's record gone from the input:
    # the records before the garbage are renewed, nothing is marked gone
    other.unlink()
    data = src.read_bytes().replace(b"</amf>", b"")
    src.write_bytes(data.replace(b"<note>v2</note>", b"<note>v3</note>")
                    + b'<text id="RePEc:aaa:wpaper:3" title="' + b"A" * (2 * MiB))
    r = renew(home, str(src.parent), timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert (f"{src}, line 7 (record RePEc:aaa:wpaper:3): record larger than 1 MiB (setting "
            "max_record): its start tag does not end within it, and the file ends inside "
            "it; skipped, the records before it are read") in r.stderr, r.stderr
    for i in (ids[0], ids[2]):
        assert len(versions(record_dir(h, i))) == 3, i
    assert not (record_dir(h, "RePEc:bbb:wpaper:9") / "00gone").exists()
    assert snapshot(big_dir) == before
    assert not [f for f in verify(str(home)) if f.severity == "breach"]


# --- a record directory that is a file, a 00gone that is a directory --------------------

DAMAGE = ["record-dir-is-a-file", "new-record-dir-is-a-file", "series-dir-is-a-file",
          "gone-is-a-directory", "unnoted-version-is-a-directory", "unnoted-version-is-a-fifo"]


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
    elif damage == "gone-is-a-directory":
        target = record_dir(Home(str(home)), IDS[0]) / "00gone"
        target.mkdir()
        (target / "kept").write_bytes(b"whatever a person put here\n")
        words, finding = "a directory where a regular file belongs", "00gone is not a regular"
    else:
        # a version no notes line names, older than the newest: the renewal
        # adopts (hashes) it; a FIFO there used to hang the run, a directory
        # stopped it with exit 74
        rdir = record_dir(Home(str(home)), IDS[0])
        (v1,) = versions(rdir)
        t1 = int(v1.split(".")[0])
        target = rdir / f"{t1 + 5000}.amf.xml"
        if damage.endswith("directory"):
            target.mkdir()
            words = "a directory where a regular file belongs"
        else:
            os.mkfifo(target)
            words = "a FIFO where a regular file belongs"
        shutil.copy(rdir / v1, rdir / f"{t1 + 9000}.amf.xml")
        finding = "not-regular"
    damaged = target if damage in ("record-dir-is-a-file", "new-record-dir-is-a-file",
                                   "series-dir-is-a-file") else target.parent
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
    hurt = ids[-1] if damage in ("new-record-dir-is-a-file", "series-dir-is-a-file") else IDS[0]
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


@pytest.mark.parametrize("damage", ["directory", "fifo", "hard-link"])
def test_a_record_gone_from_the_input_with_damaged_notes_is_reported_not_a_stop(tmp_path,
                                                                                 damage):
    """Two records leave the input; one's ``00notes`` is a directory, a FIFO
    or a second name of an outside file. The gone check used to write its
    ``00gone`` and then stop the run with exit 74 at its notes; now that
    record is reported and left as it is, and the other is marked gone."""
    home = make_home(tmp_path / "h")
    src = write_amf(tmp_path / "in" / "a.xml", *[text(i) for i in IDS])
    assert renew(home, str(src)).returncode == 0
    h = Home(str(home))
    rdir = record_dir(h, IDS[0])
    target = rdir / "00notes"
    outside = tmp_path / "outside.txt"
    if damage == "directory":
        target.unlink()
        target.mkdir()
        words = "a directory"
    elif damage == "fifo":
        target.unlink()
        os.mkfifo(target)
        words = "a FIFO"
    else:
        outside.write_bytes(b"someone else's file\n")
        target.unlink()
        os.link(outside, target)
        words = "a hard link (2 names share this file)"
    before = snapshot(rdir)
    write_amf(src, text(IDS[2]))
    r = renew(home, str(src), timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert (f"{target}: {words} where a regular file belongs; RePEc/aaa/wpaper/1 not marked "
            "gone (the record directory needs a person)") in r.stderr, r.stderr
    assert snapshot(rdir) == before
    if damage == "hard-link":
        assert outside.read_bytes() == b"someone else's file\n"
    assert (record_dir(h, IDS[1]) / "00gone").is_file()
    summary = last_summary(home)
    assert summary["gone"] == 1 and summary["damaged"] == 1, summary


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
