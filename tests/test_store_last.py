"""``00last`` replaced within ``store.recycling()``: the inode replaced is
kept and renamed, rewritten, into place as the next record's ``00last``,
so a renewal frees no block per record (on ext4 with ``discard`` a freed
block costs a synchronous discard); every replacement stays one
``rename(2)`` of a whole file, and nothing is left behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kiel import store


def hidden(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if store.is_tmp(p.name))


def records(root: Path, n: int) -> list[Path]:
    dirs = []
    for i in range(n):
        d = root / f"r{i}"
        d.mkdir(parents=True)
        (d / store.LAST).write_bytes(b"100 %d\n" % i)
        dirs.append(d)
    return dirs


def test_replaced_inode_becomes_the_next_records_00last(tmp_path):
    dirs = records(tmp_path, 5)
    old = [os.stat(d / store.LAST).st_ino for d in dirs]
    with store.recycling():
        for i, d in enumerate(dirs):
            store.write_last(str(d), 1000 + i, 2000 + i)
            # Between two records the one spare is the inode just replaced.
            (spare,) = hidden(tmp_path)
            assert spare.parent == d and os.stat(spare).st_ino == old[i]
    for i, d in enumerate(dirs):
        assert (d / store.LAST).read_bytes() == b"%d %d\n" % (1000 + i, 2000 + i)
        assert os.stat(d / store.LAST).st_nlink == 1
    new = [os.stat(d / store.LAST).st_ino for d in dirs]
    assert new[1:] == old[:-1]  # each record got the inode the one before gave up
    assert hidden(tmp_path) == []  # the last spare is removed on leaving
    assert store.read_last(str(dirs[3])) == store.Last(1003, 2003)


def test_longer_old_content_is_cut(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / store.LAST).write_bytes(b"1 2\n" + b"x" * 100)  # longer than what replaces it
    with store.recycling():
        store.write_last(str(a), 5, 6)
        store.write_last(str(b), 7, 8)  # a new record: no 00last before
        store.write_last(str(a), 9, 10)
    assert (b / store.LAST).read_bytes() == b"7 8\n"  # the 104-byte inode, cut
    assert (a / store.LAST).read_bytes() == b"9 10\n"
    assert hidden(tmp_path) == []


def test_outside_recycling_nothing_is_kept(tmp_path):
    dirs = records(tmp_path, 2)
    for d in dirs:
        store.write_last(str(d), 1, 2)
        assert hidden(tmp_path) == []
    assert [(d / store.LAST).read_bytes() for d in dirs] == [b"1 2\n"] * 2


def test_a_hard_link_snapshot_is_never_written(tmp_path):
    """A store snapshot made with hard links (``cp -al``) shares the old
    ``00last``: that inode is given up, never rewritten."""
    dirs = records(tmp_path / "store", 3)
    snap = tmp_path / "snapshot"
    snap.mkdir()
    os.link(dirs[0] / store.LAST, snap / "00last")
    with store.recycling():
        for d in dirs:
            store.write_last(str(d), 7, 8)
    assert (snap / "00last").read_bytes() == b"100 0\n"
    assert os.stat(snap / "00last").st_nlink == 1
    for d in dirs:
        assert (d / store.LAST).read_bytes() == b"7 8\n"
    assert hidden(tmp_path) == []


def test_a_planted_link_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    dirs = records(tmp_path / "store", 2)
    (dirs[0] / store.LAST).unlink()
    os.symlink(outside, dirs[0] / store.LAST)
    with store.recycling():
        for d in dirs:
            store.write_last(str(d), 3, 4)
    assert outside.read_bytes() == b"precious\n"
    for d in dirs:
        assert not (d / store.LAST).is_symlink()
        assert (d / store.LAST).read_bytes() == b"3 4\n"
    assert hidden(tmp_path) == []


def test_a_planted_fifo_is_never_opened(tmp_path):
    """A FIFO put in place of ``00last`` after the scan read it: replaced by
    a regular file, and nothing blocks on it when its inode comes round as
    the spare."""
    dirs = records(tmp_path / "store", 2)
    (dirs[0] / store.LAST).unlink()
    os.mkfifo(dirs[0] / store.LAST)
    with store.recycling():
        for d in dirs:
            store.write_last(str(d), 5, 6)
    for d in dirs:
        assert (d / store.LAST).read_bytes() == b"5 6\n"
    assert hidden(tmp_path) == []


def test_sync_and_nesting(tmp_path):
    dirs = records(tmp_path, 3)
    with store.recycling():
        with store.recycling():
            store.write_last(str(dirs[0]), 1, 2, sync=True)
        assert len(hidden(tmp_path)) == 1  # the inner exit keeps the spare
        store.write_last(str(dirs[1]), 3, 4, sync=True)
    assert hidden(tmp_path) == []
    assert (dirs[1] / store.LAST).read_bytes() == b"3 4\n"


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no second file system (/dev/shm)")
def test_another_file_system_falls_back_to_a_new_file(tmp_path):
    """Record directories on two file systems: the spare cannot be renamed
    across (EXDEV); the record gets a new file and nothing is left."""
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        a = records(Path(shm), 1)[0]
        b = records(tmp_path, 1)[0]
        with store.recycling():
            store.write_last(str(a), 1, 2)
            store.write_last(str(b), 3, 4)
        assert (b / store.LAST).read_bytes() == b"3 4\n"
        assert hidden(Path(shm)) == [] and hidden(tmp_path) == []


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_leaves_the_parents_spare_alone(tmp_path):
    dirs = records(tmp_path, 4)
    with store.recycling():
        store.write_last(str(dirs[0]), 1, 2)
        (spare,) = hidden(tmp_path)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child ends in os._exit
            code = 1
            try:
                store.write_last(str(dirs[2]), 5, 6)  # not within recycling here
                with store.recycling():
                    store.write_last(str(dirs[3]), 7, 8)
                code = 0 if spare.exists() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert spare.exists()
        store.write_last(str(dirs[1]), 3, 4)
    assert [(d / store.LAST).read_bytes() for d in dirs] == [b"1 2\n", b"3 4\n", b"5 6\n",
                                                             b"7 8\n"]
    assert hidden(tmp_path) == []
