"""The readers (show, report, verify) on stores with planted files.

Each store is made by real renewals against a server on 127.0.0.1, then
damaged by hand as an attacker with a shell would: links out of the store,
sparse files of gigabytes, FIFOs. The commands run as an operator runs
them, in a child process (with an address-space limit where memory is the
point), and their exact exit status and output are asserted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiel import home as home_mod
from kiel.store import parse_attempt

from kit.homes import Clock, object_dir, record_dir, run, text, write_amf

PDF = b"%PDF-1.4\n" + b"p" * 2000 + b"\n%%EOF\n"
OTHER = b"%PDF-1.4\n" + b"o" * 1000 + b"\n%%EOF\n"
R1, R2 = "RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"
GiB = 2**30


def kiel(home: Store, *args: str, limit_as: int | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``kiel ARGS --home HOME`` in a child process, optionally under an
    address-space limit (``ulimit -v``)."""
    pre = ""
    if limit_as is not None:
        pre = ("import resource; resource.setrlimit(resource.RLIMIT_AS, "
               f"({limit_as}, {limit_as})); ")
    code = pre + "import sys; from kiel.cli import main; sys.argv[0] = 'kiel'; main()"
    return subprocess.run([sys.executable, "-c", code, *args, "--home", home.root],
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Store:
    """A home renewed once: two records, each with one PDF."""

    root: str
    store: str
    paper_url: str
    other_url: str


@pytest.fixture
def store(tmp_path: Path, home: home_mod.Home, httpserver) -> Store:
    httpserver.expect_request("/paper.pdf").respond_with_data(PDF,
                                                              content_type="application/pdf")
    httpserver.expect_request("/other.pdf").respond_with_data(OTHER,
                                                              content_type="application/pdf")
    src = write_amf(tmp_path / "in" / "a.xml", text(R1, httpserver.url_for("/paper.pdf")),
                    text(R2, httpserver.url_for("/other.pdf")))
    run(home, src, clock=Clock())
    return Store(home.root, home.store, httpserver.url_for("/paper.pdf"),
                 httpserver.url_for("/other.pdf"))


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def replace_with_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


# --- a planted 00notes --------------------------------------------------------------

def test_record_notes_linked_to_a_3_gib_sparse_file(store, tmp_path):
    """report died with MemoryError reading the target as one line; report,
    show and verify stopped the whole walk with exit 74. Now each names the
    link and goes on with the next record."""
    notes = record_dir(store, R1) / "00notes"
    replace_with_link(notes, sparse(tmp_path / "huge", 3 * GiB))

    r = kiel(store, "report", limit_as=GiB)
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    assert r.returncode == 1, r.stderr
    assert f"unreadable        {notes}: not a regular file (a symbolic link), skipped\n" \
        in r.stdout
    assert "records           2\n" in r.stdout and "objects           2" in r.stdout

    s = kiel(store, "show", R1, limit_as=GiB)
    assert s.returncode == 1, s.stderr
    assert f"unreadable {notes}: not a regular file (a symbolic link), skipped\n" in s.stdout
    assert store.paper_url in s.stdout  # its objects are still shown

    v = kiel(store, "verify", limit_as=GiB)
    assert v.returncode == 1, v.stderr
    assert "breach not-regular: RePEc/aaa/wpaper/1/00notes: 00notes is not a regular file" \
        in v.stdout
    assert "breach link-absolute: RePEc/aaa/wpaper/1/00notes" in v.stdout
    assert v.stdout.splitlines()[-2].startswith("checked 2 records, 2 versions, 2 objects")


def test_object_notes_linked_out_of_the_store_is_skipped(store, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"tist": 1, "url": "x", "status": "200"}) + "\n")
    notes = object_dir(store, R1, store.paper_url) / "00notes"
    replace_with_link(notes, outside)
    for args in (("report",), ("show", R1), ("verify",)):
        r = kiel(store, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr == "", args
    s = kiel(store, "show", R1)
    assert f"unreadable {notes}: not a regular file (a symbolic link), skipped\n" in s.stdout
    r = kiel(store, "report")
    assert f"{notes}: not a regular file (a symbolic link), skipped" in r.stdout
    assert "records           2\n" in r.stdout


def test_a_notes_line_of_a_gigabyte_is_skipped_in_bounded_memory(store):
    """A regular 00notes grown to 1 GiB of zeros (one line, no newline but
    the file's end): read in bounded pieces, the line skipped and named."""
    notes = object_dir(store, R2, store.other_url) / "00notes"
    with open(notes, "r+b") as f:
        f.truncate(GiB)
    r = kiel(store, "report", limit_as=768 * 2**20)
    assert r.returncode == 0, r.stderr
    assert "objects           2" in r.stdout
    v = kiel(store, "verify", limit_as=768 * 2**20)
    assert "MemoryError" not in v.stderr
    assert v.returncode == 1
    assert f"breach notes-unparseable: {notes.relative_to(store.store)}: line 2 is longer " \
        "than 64 MiB: skipped unread\n" in v.stdout


def test_linked_00url_never_prints_the_outside_file(store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    url = object_dir(store, R1, store.paper_url) / "00url"
    replace_with_link(url, secret)
    for args in (("show", R1), ("show", "--json", R1), ("verify",), ("report",)):
        r = kiel(store, *args)
        assert "TOP-SECRET-CONTENT" not in r.stdout + r.stderr, args
        assert r.returncode == 1, (args, r.stdout, r.stderr)
    s = kiel(store, "show", R1)
    assert f"unreadable {url}: not a regular file (a symbolic link), skipped" in s.stdout
    v = kiel(store, "verify")
    assert f"breach not-regular: {url.relative_to(store.store)}: 00url is not a regular " \
        "file" in v.stdout


# --- verify --fixity and deposit files ---------------------------------------------

def _manifest_naming(store: Store, rel_file: str, body: bytes) -> None:
    """A manifest note (as the renewal writes one) naming ``rel_file`` as a
    deposit file whose declared sha256 is the body's."""
    entry = {
        "event": "manifest", "tist": 1_700_000_500, "platform": "zenodo",
        "domain": "zenodo.org", "deposit": "42", "deposit_version": "1",
        "strategy": "files", "file_count": 1, "total_size": len(body), "bundle": None,
        "bundle_file": None, "api": [], "fingerprint": "f", "unchanged": False,
        "failure": None, "mismatches": 0,
        "files": [{"path": "data.pdf", "size": len(body), "url": "http://x/data.pdf",
                   "media_type": None, "declared": {"sha256": hashlib.sha256(body).hexdigest()},
                   "found": {"sha256": hashlib.sha256(body).hexdigest()},
                   "found_size": len(body), "file": rel_file, "status": "ok",
                   "algorithm": "sha256", "error": None}],
    }
    with open(record_dir(store, R1) / "00notes", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _deposit_attempt(store: Store) -> tuple[Path, str]:
    d = object_dir(store, R1, store.paper_url)
    (name,) = [n for n in os.listdir(d) if parse_attempt(n)]
    return d / name, f"{d.name}/{name}"


def test_fixity_passes_a_deposit_file_stored_in_the_store(store):
    _, rel = _deposit_attempt(store)
    _manifest_naming(store, rel, PDF)
    r = kiel(store, "verify", "--fixity")
    assert r.returncode == 0, r.stdout
    assert "fixity: 5 passed, 0 failed, 0 not checked\n" in r.stdout


def test_fixity_never_counts_an_outside_copy_as_passed(store, tmp_path):
    attempt, rel = _deposit_attempt(store)
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(PDF)
    replace_with_link(attempt, copy)
    _manifest_naming(store, rel, PDF)
    r = kiel(store, "verify", "--fixity")
    assert r.returncode == 1
    assert (f"breach link-outside: RePEc/aaa/wpaper/1/{rel}: zenodo 42 data.pdf: leads to "
            f"{copy}, outside the store: not hashed\n") in r.stdout
    assert "fixity: 3 passed, 0 failed, 1 not checked\n" in r.stdout


@pytest.mark.parametrize("target", ["sparse", "/proc/kcore", "/dev/zero"])
def test_fixity_never_reads_a_huge_or_endless_target(store, tmp_path, target):
    attempt, rel = _deposit_attempt(store)
    if target == "sparse":
        goal = str(sparse(tmp_path / "disk.img", 200 * GiB))
    elif not os.path.exists(target):
        pytest.skip(f"{target} does not exist on this machine")
    else:
        goal = target
    replace_with_link(attempt, Path(goal))
    _manifest_naming(store, rel, PDF)
    r = kiel(store, "verify", "--fixity", timeout=30)
    assert r.returncode == 1
    assert f"breach link-outside: RePEc/aaa/wpaper/1/{rel}: zenodo 42 data.pdf: leads to " \
        f"{goal}, outside the store: not hashed\n" in r.stdout


def test_fixity_refuses_a_link_inside_the_store_to_a_fifo(store):
    attempt, rel = _deposit_attempt(store)
    fifo = record_dir(store, R1) / "planted-fifo"
    os.mkfifo(fifo)
    replace_with_link(attempt, Path("../planted-fifo"))
    _manifest_naming(store, rel, PDF)
    r = kiel(store, "verify", "--fixity", timeout=30)
    assert r.returncode == 1
    assert f"breach not-regular: RePEc/aaa/wpaper/1/{rel}: zenodo 42 data.pdf: a FIFO, not a " \
        "regular file: not hashed\n" in r.stdout


# --- hard links --------------------------------------------------------------------

def test_kiel_never_appends_through_a_hard_link(tmp_path, home, httpserver):
    """An object's 00notes hard-linked to a file outside the store, and
    record 2's 00notes hard-linked as record 1's: a renewal writes into
    neither (the object and the record are reported), verify names both."""
    httpserver.expect_request("/paper.pdf").respond_with_data(PDF,
                                                              content_type="application/pdf")
    httpserver.expect_request("/other.pdf").respond_with_data(OTHER,
                                                              content_type="application/pdf")
    paper, other = httpserver.url_for("/paper.pdf"), httpserver.url_for("/other.pdf")
    src = write_amf(tmp_path / "in" / "a.xml", text(R1, paper), text(R2, other))
    clock = Clock()
    run(home, src, clock=clock)

    outside = Path(home.root) / "outside.txt"  # the same file system as the store
    outside.write_bytes(b"an operator's file\n")
    obj_notes = object_dir(home, R1, paper) / "00notes"
    obj_notes.unlink()
    os.link(outside, obj_notes)
    r1_notes, r2_notes = record_dir(home, R1) / "00notes", record_dir(home, R2) / "00notes"
    r1_notes.unlink()
    os.link(r2_notes, r1_notes)
    r2_before = r2_notes.read_bytes()

    clock.advance(86400)
    src.write_text(src.read_text().replace("Title of", "New title of"))
    result = run(home, src, clock=clock)
    assert outside.read_bytes() == b"an operator's file\n"
    assert r2_notes.read_bytes().count(R1.encode()) == r2_before.count(R1.encode())
    assert any("2 names share this file" in p for p in result.problems), result.problems

    v = kiel(Store(home.root, home.store, paper, other), "verify")
    assert v.returncode == 1
    for path in (obj_notes, r1_notes, r2_notes):
        assert f"breach hard-link: {path.relative_to(home.store)}: 2 names share this file" \
            in v.stdout, v.stdout
