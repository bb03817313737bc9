"""Inputs (issue 11): bounded parsing, only regular files, links kept in the tree.

Real bytes in real files: small ``.xml.gz`` bombs read in a child process
under an address-space limit, a real FIFO, real symbolic links.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from kiel import records

HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'
GOOD = b'<text id="RePEc:aaa:wpaper:1"><title>t</title></text>\n'
MiB = 1024 * 1024


def gzip_bomb(path: Path, head: bytes, filler: bytes, size: int) -> Path:
    """A gzip file of ``head`` and ``size`` bytes of ``filler``, never held whole."""
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    chunk = filler * (MiB // len(filler))
    with open(path, "wb") as f:
        f.write(c.compress(head))
        f.writelines(c.compress(chunk) for _ in range(size // len(chunk)))
        f.write(c.flush())
    return path


# The child reads one file under a 1 GiB address-space limit (so an unbounded
# parser fails fast instead of taking the machine) and reports its peak RSS.
CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from kiel import records
    items = list(records.read_file(sys.argv[1]))
    out = [str(i) for i in items if isinstance(i, records.Problem)]
    ids = [i.id for i in items if isinstance(i, records.Record)]
    # VmHWM, not ru_maxrss: a child forked from a large pytest keeps the
    # parent's high-water mark in ru_maxrss across exec; VmHWM is its own.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    peak = int(hwm.split()[1]) * 1024
    print(json.dumps({"problems": out, "records": ids, "peak": peak}))
""")

BOMB = 160 * MiB  # decompressed; each file is well under 1 MB on disk


@pytest.mark.parametrize("kind,opening,filler", [
    ("attribute", b'<text id="RePEc:ccc:wpaper:bomb" title="', b"A"),
    ("comment", b"<!--", b"-A"),
    ("pi", b"<?bomb ", b"A"),
    ("cdata", b'<text id="RePEc:ccc:wpaper:cd"><abstract><![CDATA[', b"A]"),
])
def test_small_gzip_bombs_keep_memory_bounded(tmp_path, kind, opening, filler):
    path = gzip_bomb(tmp_path / f"{kind}.xml.gz", HEAD + GOOD + opening, filler, BOMB)
    assert path.stat().st_size < MiB
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    # the default max_record is 16 MiB: the parser never holds much more
    assert result["peak"] < 96 * MiB, result
    (problem,) = result["problems"]
    if kind == "cdata":  # the record's start tag was read: it is named
        assert problem.startswith(f"{path}, line 4 (record RePEc:ccc:wpaper:cd): record "
                                  "larger than 16 MiB"), problem
    elif kind == "attribute":  # its start tag never ends; its id is read from it
        assert problem.startswith(f"{path}, line 4 (record RePEc:ccc:wpaper:bomb): record "
                                  "larger than 16 MiB (setting max_record): its start tag "
                                  "does not end within it"), problem
    else:  # nothing after the good record on line 3 ever ended
        assert problem.startswith(f"{path}, line 3: nothing ends within 16 MiB"), problem
    assert "16 MiB" in problem and "max_record" in problem
    # passed over to the end of the file, never held: the good record before it is kept
    assert problem.endswith("and the file ends inside it; skipped, the records before it "
                            "are read"), problem
    assert result["records"] == ["RePEc:aaa:wpaper:1"]


def test_file_over_max_input_file_is_skipped_with_its_name(tmp_path):
    many = b"".join(b'<text id="RePEc:aaa:wpaper:%d"><title>t</title><abstract>%s</abstract>'
                    b"</text>\n" % (i, b"x" * 500) for i in range(2_000))
    plain = tmp_path / "many.xml"
    plain.write_bytes(HEAD + many + b"</amf>\n")
    packed = tmp_path / "many.xml.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert packed.stat().st_size < MiB < plain.stat().st_size
    for path in (plain, packed):
        items = list(records.read_file(str(path), max_input_file=MiB))
        last = items[-1]
        assert isinstance(last, records.Problem) and last.fatal_for_file
        assert str(last).startswith(f"{path}")
        assert "file larger than 1 MiB (setting max_input_file)" in str(last)
        # under the limit, the same file is read whole
        ok = list(records.read_file(str(path), max_input_file=2 * MiB))
        assert len(ok) == 2_000 and all(isinstance(i, records.Record) for i in ok)


def test_record_over_max_record_names_file_line_and_id(tmp_path):
    big = b'<text id="RePEc:aaa:wpaper:big"><abstract>' + b"x" * (2 * MiB) + b"</abstract></text>\n"
    path = tmp_path / "big.xml"
    path.write_bytes(HEAD + GOOD + big + GOOD.replace(b":1", b":2") + b"</amf>\n")
    # the record is skipped alone, passed over without being held; the records
    # around it are read (the whole file was skipped before)
    first, problem, second = records.read_file(str(path), max_record=MiB)
    assert isinstance(problem, records.Problem) and not problem.fatal_for_file
    assert str(problem) == (f"{path}, line 4 (record RePEc:aaa:wpaper:big): record larger "
                            "than 1 MiB (setting max_record); skipped, the records around it "
                            "are read")
    assert problem.skipped_record and problem.id == "RePEc:aaa:wpaper:big"
    assert [first.id, second.id] == ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"]
    assert (first.line, second.line) == (3, 5)
    # within the limit it is a record like any other
    assert [i.id for i in records.read_file(str(path), max_record=4 * MiB)] == [
        "RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:big", "RePEc:aaa:wpaper:2"]


def test_comments_between_records_are_freed_and_bounded(tmp_path):
    # 2 MiB of small comments between two records: freed with the records,
    # and counted like any markup between the ends of two records
    comments = b"<!-- c -->\n" * (2 * MiB // 11)
    path = tmp_path / "comments.xml"
    path.write_bytes(HEAD + GOOD + comments + GOOD.replace(b":1", b":2") + b"</amf>\n")
    items = list(records.read_file(str(path), max_record=4 * MiB))
    assert [i.id for i in items] == ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"]
    first, problem, second = records.read_file(str(path), max_record=MiB)
    assert str(problem).startswith(f"{path}, line 3: nothing ends within 1 MiB")
    assert isinstance(problem, records.Problem) and not problem.fatal_for_file
    assert [first.id, second.id] == ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"]


# --- only regular files --------------------------------------------------------------

SCAN = textwrap.dedent("""
    import sys
    from kiel import records
    for p in records.walk(sys.argv[1:]):
        if isinstance(p, records.Problem):
            print("problem", p)
            continue
        for item in records.read_file(p):
            print(type(item).__name__, item)
""")


def scan(*paths: Path) -> list[str]:
    """Walk and read in a child: a reader blocked on a FIFO fails the test, not the suite."""
    done = subprocess.run([sys.executable, "-c", SCAN, *map(str, paths)], capture_output=True,
                          text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_fifo_in_the_input_tree_is_reported_never_opened(tmp_path):
    tree = tmp_path / "in"
    tree.mkdir()
    os.mkfifo(tree / "a-fifo.xml")
    (tree / "b-good.xml").write_bytes(HEAD + GOOD + b"</amf>\n")
    lines = scan(tree)
    assert lines[0] == f"problem {tree / 'a-fifo.xml'}: not a regular file (a FIFO); skipped"
    assert lines[1].startswith("Record ") and len(lines) == 2


def test_fifo_named_directly_or_swapped_in_after_the_walk_is_refused(tmp_path):
    fifo = tmp_path / "named.xml"
    os.mkfifo(fifo)
    assert scan(fifo) == [f"problem {fifo}: not a regular file (a FIFO); skipped"]
    # read_file itself never blocks: O_NONBLOCK, then fstat on the open descriptor
    code = "import sys; from kiel import records; print(*records.read_file(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(fifo)],
                          capture_output=True, text=True, timeout=20, check=False)
    assert done.stdout.strip() == f"{fifo}: not a regular file (a FIFO); skipped"


def test_renewal_goes_on_past_a_fifo(tmp_path):
    from kit.homes import make_home

    home = make_home(tmp_path / "home")
    tree = tmp_path / "in"
    tree.mkdir()
    os.mkfifo(tree / "fifo.xml")
    (tree / "good.xml").write_bytes(HEAD + GOOD + b"</amf>\n")
    done = subprocess.run([sys.executable, "-m", "kiel", "renew", "--home", str(home), "-q",
                           str(tree)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1  # input errors, reported; the good record is stored
    assert f"{tree / 'fifo.xml'}: not a regular file (a FIFO); skipped" in done.stderr
    assert os.listdir(home / "store" / "RePEc" / "aaa" / "wpaper" / "1")


def test_links_leaving_the_input_tree_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.xml").write_bytes(HEAD + GOOD.replace(b":1", b":9") + b"</amf>\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "more.xml").write_bytes(HEAD + GOOD.replace(b":1", b":8") + b"</amf>\n")
    tree = tmp_path / "in"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "real.xml").write_bytes(HEAD + GOOD + b"</amf>\n")
    (tree / "d" / "loop").symlink_to("..")  # inside, a directory: read once, no loop
    (tree / "inside.xml").symlink_to("d/real.xml")  # inside: followed
    (tree / "leak.xml").symlink_to(outside / "secret.xml")
    (tree / "leakdir").symlink_to(outside / "sub")
    (tree / "dangling.xml").symlink_to(tmp_path / "nothing")

    found = list(records.walk([str(tree)]))
    paths = [p for p in found if isinstance(p, str)]
    problems = {p.file: p.reason for p in found if isinstance(p, records.Problem)}
    assert paths == [str(tree / "d" / "real.xml"), str(tree / "inside.xml")]
    assert problems == {
        str(tree / "dangling.xml"): "symbolic link to nothing; skipped",
        str(tree / "leak.xml"): f"symbolic link leaves the input tree (to {outside}/secret.xml);"
                                " not followed (setting follow_outside_links)",
        str(tree / "leakdir"): f"symbolic link leaves the input tree (to {outside}/sub); "
                               "not followed (setting follow_outside_links)",
    }
    # the operator may allow it
    allowed = [p for p in records.walk([str(tree)], follow_outside_links=True)
               if isinstance(p, str)]
    assert allowed == [str(tree / "d" / "real.xml"), str(tree / "inside.xml"),
                       str(tree / "leak.xml"), str(tree / "leakdir" / "more.xml")]


def test_walk_order_is_sorted_names_whatever_the_creation_order(tmp_path):
    tree = tmp_path / "in"
    for rel in ("b/z.xml", "a.xml", "b.xml", "a/y.xml.gz", "A.XML", "c.txt", ".hidden.xml",
                ".dir/x.xml"):
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    got = [os.path.relpath(p, tree) for p in records.walk([str(tree)]) if isinstance(p, str)]
    # hidden files are skipped, hidden directories walked (as before)
    assert got == [".dir/x.xml", "A.XML", "a/y.xml.gz", "a.xml", "b/z.xml", "b.xml"]


def test_comments_before_the_root_count_towards_max_record(tmp_path):
    # they cannot be dropped as they come: a stream of them is bounded like a record
    path = tmp_path / "prolog.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n' + b"<!-- c -->\n" * (MiB // 11 + 1)
                     + HEAD.split(b"\n", 1)[1] + GOOD + b"</amf>\n")
    (problem,) = records.read_file(str(path), max_record=MiB // 2)
    assert isinstance(problem, records.Problem) and problem.fatal_for_file
    assert str(problem) == (f"{path}: nothing ends within 512 KiB after the start "
                            "(setting max_record): an unterminated or oversized attribute, "
                            "comment, processing instruction, CDATA section or record")
    assert [r.id for r in records.read_file(str(path), max_record=2 * MiB)] == [
        "RePEc:aaa:wpaper:1"]
