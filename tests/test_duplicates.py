"""Duplicate ids (issue 11): the record kept does not depend on the walk's order.

The case of the issue, as real files: a file under archive ``aaa``'s
directory claims ``RePEc:ZZZ:wpaper:1``, which archive ``zzz``'s own file
holds; case-folded, both are one record.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiel import records
from kiel.names import same_record

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'


def amf(path: Path, *ids: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f'<text id="{i}"><title>{i} in {path.parent.name}</title></text>\n'
                   for i in ids)
    path.write_text(HEAD + body + "</amf>\n")
    return path


@pytest.mark.parametrize("rel,rid,outside", [
    ("aaa/wpaper/a.xml", "RePEc:zzz:wpaper:1", "aaa"),
    ("aaa/wpaper/a.xml", "RePEc:AAA:wpaper:1", None),  # case-insensitive
    ("aaa/wpaper/a.xml", "info:lib/RePEc:zzz:wpaper:1", "aaa"),
    ("RePEc/aaa/wpaper/old/a.xml", "RePEc:zzz:wpaper:1", "aaa"),  # nearest archive dir
    ("RePEc/aaa/wpaper/a.xml", "RePEc:aaa:wpaper:1", None),
    ("mirror/RePEc/Aaa/wpaper/a.xml", "RePEc:zzz:wpaper:1", "Aaa"),
    ("aaa/wpaper/a.xml", "doi:10.1/x", None),  # not a handle
    ("a.xml", "RePEc:zzz:wpaper:1", None),  # in no archive directory
    ("collection/wpaper/a.xml", "RePEc:zzz:wpaper:1", None),
    ("mirror/aaa/a.xml", "RePEc:zzz:wpaper:1", None),  # aaa below a non-archive parent
])
def test_claimed_outside_archive(tmp_path, rel, rid, outside):
    root = tmp_path / "in"
    reason = records.claimed_outside_archive(str(root / rel), str(root), rid)
    if outside is None:
        assert reason is None
    else:
        adir = str(root / rel).split("/" + outside + "/")[0] + "/" + outside
        archive = rid.split(":")[-3].lower()
        assert reason == (f"handle of archive {archive} in {adir}, the directory of archive "
                          f"{outside.lower()}; skipped (setting archive_dirs)")


def test_the_input_root_may_be_the_archive_directory(tmp_path):
    root = tmp_path / "RePEc" / "aaa"
    assert records.claimed_outside_archive(str(root / "wpaper" / "a.xml"), str(root),
                                           "RePEc:zzz:wpaper:1") is not None
    # a file named as the input lies in no archive directory
    f = root / "wpaper" / "a.xml"
    assert records.claimed_outside_archive(str(f), str(f), "RePEc:zzz:wpaper:1") is None


def test_the_kept_record_does_not_depend_on_the_walk_order(tmp_path):
    root = tmp_path / "in"
    amf(root / "aaa" / "wpaper" / "a.xml", "RePEc:ZZZ:wpaper:1")  # first in a sorted walk
    amf(root / "zzz" / "wpaper" / "z.xml", "RePEc:zzz:wpaper:1")
    amf(root / "other" / "b.xml", "doi:1")
    amf(root / "other" / "a.xml", "doi:1", "doi:1")
    found = [records.occurrence(i.id, i.file, i.line, str(root))
             for p in records.walk([str(root)]) if isinstance(p, str)
             for i in records.read_file(p) if isinstance(i, records.Record)]
    groups: dict[str, list[records.Occurrence]] = {}
    for o in found:
        groups.setdefault(o.id.lower(), []).append(o)
    handle = groups["repec:zzz:wpaper:1"]
    assert same_record(handle[0].id, handle[1].id)
    doi = groups["doi:1"]
    assert len(doi) == 3
    for group, want in ((handle, str(root / "zzz" / "wpaper" / "z.xml")),
                        (doi, str(root / "other" / "a.xml"))):
        winners = set()
        for order in itertools.permutations(group):
            kept = order[0]
            for o in order[1:]:
                kept = records.preferred(kept, o)
            winners.add(kept)
        assert len(winners) == 1
        (kept,) = winners
        assert kept.file == want
    assert kept.line == 3  # of two in one file, the earlier line
    # sorting by the key gives the same answer as folding with preferred
    assert min(handle, key=records.preference_key).file.endswith("z.xml")
    # the aaa file's claim is also reported on its own with the archive rule
    (forged,) = [o for o in handle if "aaa" in o.file]
    assert not forged.in_archive
    assert records.claimed_outside_archive(forged.file, str(root), forged.id)


def test_duplicate_problem_names_both_occurrences():
    kept = records.Occurrence("RePEc:zzz:wpaper:1", "/in/zzz/z.xml", 3, True)
    other = records.Occurrence("RePEc:ZZZ:wpaper:1", "/in/aaa/a.xml", 7, False)
    assert records.preferred(other, kept) is kept
    p = records.duplicate_problem(kept, other)
    assert str(p) == ("/in/aaa/a.xml, line 7 (record RePEc:ZZZ:wpaper:1): duplicate id, also "
                      "at /in/zzz/z.xml, line 3, which is kept (in its archive's directory, "
                      "else the smaller path, then the earlier line); skipped")
    assert not p.fatal_for_file


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.text(alphabet="ab/.\u00e9", min_size=1, max_size=8),
                          st.integers(min_value=1, max_value=10**6)), min_size=2, max_size=6))
def test_preference_bytes_sort_as_the_rule(items):
    occ = [records.Occurrence("doi:1", "/in/" + f, line, inside) for inside, f, line in items]
    by_key = sorted(occ, key=records.preference_key)
    by_bytes = sorted(occ, key=records.preference_bytes)
    assert [records.preference_key(o) for o in by_key] == \
        [records.preference_key(o) for o in by_bytes]
