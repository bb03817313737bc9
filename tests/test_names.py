"""Names that cannot be forged (issue 11): a directory is reused only by its owner.

Stores are made by real renewals; the collisions an earlier cut form let
in are then planted as the files such a renewal wrote, and ``owner_matches``
and ``kiel verify`` must see them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kiel import records
from kiel.escape import escape
from kiel.names import owner_matches, same_record
from kiel.verify import verify

from kit.homes import record_dir, run, text, write_amf

VICTIM = "RePEc:aaa:wpaper:" + "v" * 300


def old_cut(value: str) -> str:
    """The cut as it was written before: 200 bytes, ``~`` and the hash."""
    return escape(value)[:-18][:200] + "~" + hashlib.sha256(value.encode()).hexdigest()[:16]


def test_same_record_follows_the_redist():
    assert same_record("RePEc:AAA:WPaper:1", "info:lib/RePEc:aaa:wpaper:1")
    assert not same_record("RePEc:aaa:wpaper:A", "RePEc:aaa:wpaper:a")  # the rest is exact
    assert not same_record("doi:X", "doi:x")
    assert not same_record(VICTIM, "RePEc:aaa:wpaper:" + old_cut(VICTIM.split(":", 3)[3]))


def test_object_directory_owner(tmp_path):
    d = tmp_path / escape("http://x.org/a")
    url = "http://x.org/a"
    assert owner_matches(str(d), url, "object") is None  # new
    d.mkdir()
    assert owner_matches(str(d), url, "object") is None  # empty (a crash before 00url)
    (d / ".kiel-tmp-0123456789ab").write_bytes(b"")
    assert owner_matches(str(d), url, "object") is None  # only a temporary file
    (d / "00url").write_text(url + "\n")
    assert owner_matches(str(d), url, "object") is True
    assert owner_matches(str(d), "http://x.org/b", "object") is False
    (d / "00url").unlink()
    (d / "1700000000_200_text-plain").write_bytes(b"x")
    assert owner_matches(str(d), url, "object") is False  # files, and no owner to read
    os.mkfifo(d / "00url")  # never opened for a blocking read
    assert owner_matches(str(d), url, "object") is False
    (d / "00url").unlink()
    (tmp_path / "elsewhere").write_text(url + "\n")
    (d / "00url").symlink_to(tmp_path / "elsewhere")  # never followed
    assert owner_matches(str(d), url, "object") is False
    link = tmp_path / "link"
    link.symlink_to(d)
    assert owner_matches(str(link), url, "object") is False


def test_record_directory_owner(home, tmp_path, clock):
    forger = "RePEc:aaa:wpaper:" + old_cut(VICTIM.split(":", 3)[3])
    src = write_amf(tmp_path / "in" / "a.xml", text(forger))
    assert run(home, src, clock=clock).new_versions == 1
    rdir = record_dir(home, forger)
    assert owner_matches(str(rdir), forger, "record") is True
    assert owner_matches(str(rdir), forger.replace("RePEc:aaa", "RePEc:AAA"), "record") is True
    assert owner_matches(str(rdir), VICTIM, "record") is False
    assert owner_matches(str(tmp_path / "none"), VICTIM, "record") is None
    # What the earlier cut let happen: the victim's record written into the
    # forger's directory, as a newer version with its notes line.
    (victim,) = records.read_file(str(write_amf(tmp_path / "v.xml", text(VICTIM))))
    (rdir / f"{int(clock()) + 500}.amf.xml").write_bytes(victim.xml)
    with open(rdir / "00notes", "a") as f:
        f.write(json.dumps({"event": "renewal", "tist": int(clock()) + 500, "id": VICTIM,
                            "version": f"{int(clock()) + 500}.amf.xml"}) + "\n")
    assert owner_matches(str(rdir), forger, "record") is False
    findings = [f for f in verify(home.root) if f.kind == "owner-collision"]
    assert [f.path for f in findings] == [os.path.relpath(rdir, home.store)]
    assert VICTIM in findings[0].detail and forger in findings[0].detail
    # an unreadable newest version is passed over for the newest readable one
    (rdir / f"{int(clock()) + 900}.amf.xml").write_bytes(b"<amf")
    assert owner_matches(str(rdir), VICTIM, "record") is True
    # versions none of which can be read prove nothing: refused
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1700000000.amf.xml").write_bytes(b"<amf")
    (bad / "00notes").write_text(json.dumps({"event": "renewal", "id": VICTIM}) + "\n")
    assert owner_matches(str(bad), VICTIM, "record") is False


def test_record_directory_without_versions_is_read_from_its_notes(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    (d / "00notes").write_text(json.dumps({"event": "renewal", "id": "doi:1"}) + "\n")
    assert owner_matches(str(d), "doi:1", "record") is True
    assert owner_matches(str(d), "doi:2", "record") is False


def test_verify_reports_two_urls_merged_into_one_object_directory(home, tmp_path, clock):
    rid = "RePEc:aaa:wpaper:7"
    run(home, write_amf(tmp_path / "in" / "a.xml", text(rid)), clock=clock)
    rdir = record_dir(home, rid)
    first = "http://example.org/" + "p" * 300
    second = "http://example.org/" + "q" * 300
    # the second URL's attempts in the first's directory (as when its cut
    # name could be forged; a directory cut the old way is url-mismatch now)
    obj = rdir / escape(first)
    obj.mkdir()
    (obj / "00url").write_text(first + "\n")
    lines = []
    for n, url in enumerate((first, second)):
        name = f"{1_700_000_100 + n}_000_none"
        (obj / name).write_bytes(b"")
        lines.append(json.dumps({"tist": 1_700_000_100 + n, "url": url, "status": "000",
                                 "type": "none", "size": 0, "file": name, "error": "dns"}))
    (obj / "00notes").write_text("\n".join(lines) + "\n")
    assert owner_matches(str(obj), second, "object") is False
    findings = [f for f in verify(home.root) if f.kind == "owner-collision"]
    assert [(f.path, f.expected, f.found) for f in findings] == [
        (os.path.relpath(obj / "00notes", home.store), first, second)]
    assert "line 2" in findings[0].detail


def test_clean_store_has_no_collision(home, tmp_path, clock):
    src = write_amf(tmp_path / "in" / "a.xml", text(VICTIM), text("doi:10.1/x"))
    run(home, src, clock=clock)
    clock.advance()
    Path(src).write_text(Path(src).read_text().replace("Title of", "New title of"))
    run(home, src, clock=clock)
    assert [f for f in verify(home.root) if f.kind == "owner-collision"] == []
    assert owner_matches(str(record_dir(home, VICTIM)), VICTIM, "record") is True
