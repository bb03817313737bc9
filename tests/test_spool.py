"""The external sort behind a run's ordering: chunks spilled to disk merge right."""

from __future__ import annotations

import os
import random

from kiel.spool import ExternalSort


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
    import pytest

    with pytest.raises(ValueError):
        ExternalSort(str(tmp_path)).add(b"a\nb")
