"""The deposit ``manifest`` notes line is a typed line of kiel.notes.

One writer (``ManifestRecord.line``) and one reader (``notes.parse_manifest``,
``notes.manifest_records``), like the attempt, renewal and event lines. The
bytes written for fixed manifests are those Kiel has always written
(tests/fixtures/manifest_lines.jsonl, made before the line had a type).
"""

from __future__ import annotations

import json
from pathlib import Path

from kiel import notes
from kiel.platforms import (
    Failure,
    FileOutcome,
    Manifest,
    ManifestFile,
    Verdict,
    failure_note,
    manifest_note,
)

GOLDEN = Path(__file__).parent / "fixtures" / "manifest_lines.jsonl"

FILES = (
    ManifestFile("data/a.csv", 3, "https://zenodo.org/api/files/1/a.csv", md5="a" * 32,
                 media_type="text/csv"),
    ManifestFile("b.bin", 5, "https://user:secret@example.org/b.bin", sha256="B" * 64),
    ManifestFile("c\udc80.txt", None, "https://zenodo.org/c"),
    ManifestFile("d.pdf", 7, "https://zenodo.org/d", sha1="d" * 40, access="restricted"),
    ManifestFile("e.dat", 9, "https://zenodo.org/e"),
    ManifestFile("ü/f.nc", 11, "https://zenodo.org/f", sha256="f" * 64),
)
OUTCOMES = {
    "data/a.csv": FileOutcome(Verdict("ok", "md5"), 3, {"md5": "a" * 32, "sha256": "1" * 64,
                                                        "crc": "x"}, "o/1/a"),
    "b.bin": FileOutcome(Verdict("mismatch", "sha256"), 5, {"sha256": "2" * 64}, "o/2/b"),
    "c\udc80.txt": FileOutcome(None, error="connect failed: https://u:pw@zenodo.org/c"),
    "ü/f.nc": FileOutcome(Verdict("unchecked"), 11, {}, "o/3/f"),
}


def manifest(strategy: str = "fileset", bundle: str | None = None) -> Manifest:
    return Manifest("zenodo", "zenodo.org", "123", "v2", strategy, FILES, bundle,
                    ("https://zenodo.org/api/records/123", "https://a:b@zenodo.org/api/x"))


def lines() -> list[bytes]:
    """The lines of every shape: files, bundle, unchanged (with and without
    ``same_as``) and a failure."""
    return [notes.dumps(e) for e in (
        manifest_note(manifest(), OUTCOMES, 1_700_000_000),
        manifest_note(manifest("bundle", "https://zenodo.org/b.zip"), {}, 1_700_000_100,
                      bundle=FileOutcome(None, 40, {}, "o/9/b.zip")),
        manifest_note(manifest(), OUTCOMES, 1_700_000_200, unchanged=True,
                      same_as=1_700_000_000),
        manifest_note(manifest(), OUTCOMES, 1_700_000_300, unchanged=True),
        failure_note(Failure("platform-404", "gone: https://x:y@zenodo.org/api/records/9",
                             "zenodo", "zenodo.org", "9", ("https://zenodo.org/api/9",)),
                     1_700_000_400),
    )]


def test_the_lines_are_the_bytes_always_written():
    assert lines() == GOLDEN.read_bytes().splitlines(keepends=True)


def test_one_typed_line_one_writer_one_reader():
    written = lines()
    recs = notes.manifest_records(json.loads(line) for line in written)
    assert [type(r) for r in recs] == [notes.ManifestRecord] * 5
    first, bundle, same, again, failed = recs
    assert [f.status for f in first.files] == ["ok", "mismatch", "failed", "restricted",
                                               "not-fetched", "unchecked"]
    assert first.files[0].media_type == "text/csv" and first.files[0].found == {
        "md5": "a" * 32, "sha256": "1" * 64}
    assert first.files[1].url == "https://user:***@example.org/b.bin"
    assert first.files[2].path == "c\\udc80.txt"
    assert bundle.bundle_file == "o/9/b.zip" and bundle.strategy == "bundle"
    assert same.same_as == first.tist and same.files is first.files
    assert again.unchanged and again.same_as is None and len(again.files) == 6
    assert failed.failure == "platform-404" and failed.files == ()
    # Written back, a record read is the line it was read from.
    for rec, line in zip(recs, written, strict=True):
        if rec.same_as is None:
            assert notes.dumps(rec.line()) == line
    assert notes.parse_manifest({"event": "manifest", "tist": "x"}) is None
