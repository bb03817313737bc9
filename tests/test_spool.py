"""The external sort behind a run's ordering: chunks spilled to disk merge right."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from kiel.spool import ExternalSort, merge, write_chunk


def test_many_chunks_merge_in_byte_order_and_leave_nothing(tmp_path):
    rng = random.Random(7)
    lines = [b"%012d\x00%s" % (rng.randrange(10**9), os.urandom(8).hex().encode())
             for _ in range(5000)]
    s = ExternalSort(str(tmp_path), chunk_bytes=4096)  # about 40 lines a chunk
    for line in lines:
        s.add(line)
    assert len(os.listdir(tmp_path)) == 1  # one sort directory with the spilled chunks
    assert list(s) == sorted(lines)
    assert os.listdir(tmp_path) == []  # cleaned up after the merge


def test_one_chunk_stays_in_memory(tmp_path):
    s = ExternalSort(str(tmp_path))
    for line in (b"b", b"a", b"c"):
        s.add(line)
    assert list(s) == [b"a", b"b", b"c"]
    assert not os.path.exists(tmp_path / "sort") and os.listdir(tmp_path) == []


def test_a_line_with_a_newline_is_refused(tmp_path):
    with pytest.raises(ValueError):
        ExternalSort(str(tmp_path)).add(b"a\nb")


def _lines(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [b"%012d\x00%s" % (rng.randrange(10**9), os.urandom(6).hex().encode()) for _ in range(n)]


@pytest.fixture
def few_open_files():
    """The process may open 64 files: far fewer than the chunks below."""
    import resource

    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, old[1]))
    try:
        yield 64
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def test_more_chunks_than_open_files_merge_in_passes(tmp_path, few_open_files):
    lines = _lines(20_000, 3)
    s = ExternalSort(str(tmp_path), chunk_bytes=4096)  # about 45 lines a chunk: 450 chunks
    for line in lines:
        s.add(line)
    (sortdir,) = os.listdir(tmp_path)
    assert len(os.listdir(tmp_path / sortdir)) > 4 * few_open_files
    assert list(s) == sorted(lines)
    assert os.listdir(tmp_path) == []


def test_chunk_files_merge_in_passes_and_leave_only_the_chunks(tmp_path, few_open_files):
    lines = [line + b"\n" for line in _lines(10_000, 4)]
    paths = [write_chunk(str(tmp_path), f"chunk-{i:06d}", lines[i:i + 30])
             for i in range(0, len(lines), 30)]
    assert len(paths) > 4 * few_open_files
    assert list(merge(paths)) == sorted(lines)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    # A reader that stops early leaves no intermediate file behind either.
    it = merge(paths)
    next(it)
    it.close()
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)


NOTHING = '<?xml version="1.0"?>\n<branches><branch xpath="nothing"/></branches>\n'

RENEW_WITH_SMALL_CHUNKS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
import kiel.spool
init = kiel.spool.ExternalSort.__init__
def small_chunks(self, workdir, chunk_bytes=None):
    init(self, workdir, 1024)  # a handful of records a chunk: hundreds of chunks
kiel.spool.ExternalSort.__init__ = small_chunks
from kiel.cli import main
main(sys.argv[1:])
"""


def test_renew_with_more_chunks_than_open_files(tmp_path):
    """RePEc's millions of records spill over a thousand chunks; under a 1 024
    open-files limit the run once ended with exit 74 (too many open files).
    Here the same with 1 KiB chunks, 1 500 records and 128 open files."""
    from kit.homes import make_home, text, write_amf

    h = make_home(tmp_path / "home")
    (h / "etc" / "branches.xml").write_text(NOTHING, encoding="utf-8")
    for f in range(15):
        write_amf(tmp_path / "in" / f"f{f:02d}.xml",
                  *[text(f"RePEc:aaa:wpaper:{f}-{i}") for i in range(100)])
    r = subprocess.run([sys.executable, "-c", RENEW_WITH_SMALL_CHUNKS, "renew", "--home", str(h),
                        str(tmp_path / "in")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    stored = [d for d, _, names in os.walk(h / "store") if "00last" in names]
    assert len(stored) == 1500
