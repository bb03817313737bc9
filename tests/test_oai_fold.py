"""The fold of a long change log: the same base the provider's view gave
before it (the log laid over the old base), in memory bounded by sort
chunks, never by the log: a run that wrote a million versions leaves a
million lines, and the next run folds them."""

from __future__ import annotations

import os

from kiel.oai import index as index_mod
from kiel.oai.changes import ChangeLog, changes_dir
from kiel.oai.index import Entry, IndexCache, Overlay, fold, open_current, refresh, write_index
from kiel.redist import record_path, record_sets

T0 = 1_700_000_000


def rid(i: int) -> str:
    return f"RePEc:a{i % 4}a:s{i % 3}:{i}"


def view(home: str) -> dict[str, Entry]:
    """What the provider serves now: the base's rows, the log's entries over them."""
    served = IndexCache(home).get()
    rows = {e.id: e for e in (served.base.row(n) for n in range(served.base.count))}
    rows.update(served.overlay.ids)
    return rows


def base_rows(home: str) -> list[Entry]:
    base = open_current(home)
    return [base.row(n) for n in range(base.count)]


def test_a_long_log_folds_into_the_base_the_provider_showed(tmp_path, monkeypatch):
    home = str(tmp_path / "h")
    write_index(home, [Entry(T0 + i, rid(i), i % 9 == 0, tuple(record_sets(rid(i))), T0 + i)
                       for i in range(0, 300, 2)], chunk=16)
    # Two runs' segments: versions of known and new records, the same record
    # several times (the later line wins), gone and back, and a clock that
    # stepped back (a datestamp never moves back).
    with ChangeLog.open(home, now=lambda: T0 + 1000) as log:
        for i in range(0, 400, 3):
            log.append("version", rid(i), record_path(rid(i)), T0 + 500 + i)
        for i in range(0, 60, 4):
            log.append("gone", rid(i), record_path(rid(i)), T0 + 500 + i)
    clock = iter(range(T0 + 900, T0 + 2000))
    with ChangeLog.open(home, now=lambda: next(clock)) as log:
        for i in range(0, 60, 8):
            log.append("back", rid(i), record_path(rid(i)), T0 + 700 + i)
        for i in range(1, 120, 5):
            log.append("version", rid(i), record_path(rid(i)), T0 + 800 + i)
    want = view(home)
    lines = sum(1 for n in os.listdir(changes_dir(home)) for _ in
                open(os.path.join(changes_dir(home), n), "rb"))

    # Sort chunks of a few lines: the log crosses many of them.
    monkeypatch.setattr(index_mod, "FOLD_SORT_BYTES", 300)

    def no_overlay(self: Overlay) -> None:
        raise AssertionError("the fold read the whole log into memory (Overlay)")

    monkeypatch.setattr(Overlay, "refresh", no_overlay)
    stats = fold(home, chunk=7)
    monkeypatch.undo()

    got = base_rows(home)
    assert stats.folded == lines and stats.records == len(want)
    assert {e.id: e for e in got} == want
    assert [(e.datestamp, e.id.encode()) for e in got] == \
        sorted((e.datestamp, e.id.encode()) for e in want.values())
    assert IndexCache(home).get().overlay.ids == {}  # nothing left over the new base
    assert refresh(home) is None
    assert not [n for n in os.listdir(os.path.dirname(open_current(home).path))
                if n.startswith(".kiel-tmp")]


def test_a_torn_last_line_waits_for_the_next_fold(tmp_path):
    home = str(tmp_path / "h")
    write_index(home, [Entry(T0, rid(0), False, tuple(record_sets(rid(0))), T0)])
    with ChangeLog.open(home, now=lambda: T0 + 10) as log:
        log.append("version", rid(1), record_path(rid(1)), T0 + 5)
        path = log.path
    with open(path, "ab") as f:
        f.write(b"%d\tversion\t%d\t%s" % (T0 + 11, T0 + 6, rid(2).encode()))  # no newline yet
    fold(home)
    assert {e.id for e in base_rows(home)} == {rid(0), rid(1)}
    with open(path, "ab") as f:
        f.write(b"\n")
    fold(home)
    rows = {e.id: e for e in base_rows(home)}
    assert set(rows) == {rid(0), rid(1), rid(2)} and rows[rid(2)].datestamp == T0 + 11
