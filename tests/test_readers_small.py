"""Small things an operator meets with show, verify and report: a home
without a store, a prefix that matches nothing, a pipe closed early, and
deposit counts that must read the same in show and in report. Each asserts
the exact output and exit status of the real command, run in a child
process as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiel import home as home_mod

from kit.homes import Clock, make_home, record_dir, run, text, write_amf

RID = "RePEc:aaa:wpaper:1"


def kiel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiel", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [["show", RID], ["verify"], ["report"],
                                  ["oai", "index"]])
def test_a_home_without_store_is_a_wrong_home_for_every_reader(tmp_path: Path, args):
    home = make_home(tmp_path / "home")
    os.rmdir(home / "store")
    r = kiel(*args, "--home", str(home))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == ""
    if args[0] != "oai":
        assert r.stderr == (f"Error: {home}/store: no store here (is --home or KIEL_HOME "
                            "right? see 'kiel init')\n")
    assert not (home / "store").exists()


@pytest.fixture
def renewed(tmp_path: Path) -> home_mod.Home:
    h = home_mod.Home(str(make_home(tmp_path / "home")))
    src = write_amf(tmp_path / "in" / "a.xml", text(RID), text("RePEc:aaa:wpaper:2"))
    run(h, src, clock=Clock())
    return h


@pytest.mark.parametrize("command", ["verify", "report"])
def test_a_prefix_that_matches_nothing_says_so(renewed, command):
    r = kiel(command, "RePEc:zzz", "--home", renewed.root)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == ("Error: no record in the store matches 'RePEc:zzz' (no record "
                        "directory under store/RePEc/zzz): give a record id prefix such as "
                        "RePEc:aaa or a store path such as RePEc/aaa\n")
    ok = kiel(command, "RePEc:aaa", "--home", renewed.root)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("args", [["verify"], ["report"], ["show", RID],
                                  ["show", "--json", RID], ["report", "--json"]])
def test_a_pipe_closed_early_is_a_quiet_exit(renewed, args):
    """``kiel verify | head -1``: the reader goes away; no 'Broken pipe'."""
    # Many records make the output longer than a pipe's buffer.
    notes = record_dir(renewed, RID) / "00notes"
    with open(notes, "a", encoding="utf-8") as f:
        for i in range(3000):
            f.write(f"not json {i}\n")
    cmd = " ".join([sys.executable, "-m", "kiel", *args, "--home", renewed.root])
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -c 10 >/dev/null; "
                        'echo "status ${PIPESTATUS[0]}" >&2'],
                       capture_output=True, text=True, timeout=60)
    if args == ["verify"]:  # 3000 findings: far more than a pipe holds
        assert r.stderr == "status 141\n"
    else:  # an output the pipe may hold whole ends as usual
        assert r.stderr in ("status 141\n", "status 0\n", "status 1\n"), r.stderr


def test_show_and_report_count_deposit_files_alike(renewed):
    """Three files noted failed (as after a night the platform could not be
    reached): show says 3 failed, and so does report."""
    files = [{"path": f"f{i}.csv", "size": 10, "url": f"http://x/f{i}", "declared": {},
              "found": {}, "found_size": None, "file": None, "status": "failed",
              "algorithm": None, "error": "304"} for i in range(3)]
    files.append({"path": "ok.csv", "size": 4, "url": "http://x/ok", "declared": {},
                  "found": {"sha256": "0" * 64}, "found_size": 4, "file": None,
                  "status": "unchecked", "algorithm": None, "error": None})
    note = {"event": "manifest", "tist": 1_700_000_100, "platform": "dataverse",
            "domain": "dv.example.org", "deposit": "doi:10.5/X", "deposit_version": "1.0",
            "strategy": "files", "file_count": 4, "total_size": 34, "bundle": None,
            "bundle_file": None, "api": [], "fingerprint": "f", "unchanged": False,
            "failure": None, "mismatches": 0, "files": files}
    with open(record_dir(renewed, RID) / "00notes", "a", encoding="utf-8") as f:
        f.write(json.dumps(note) + "\n")
    s = kiel("show", RID, "--home", renewed.root)
    assert ("  dataverse dv.example.org doi:10.5/X  2023-11-14T22:15:00Z  version 1.0  files, "
            "4 files, 34 B (3 failed, 1 unchecked)\n") in s.stdout
    r = kiel("report", "--home", renewed.root)
    assert ("deposits          1  (1 files, 4 B preserved, 0 mismatched, 3 failed; "
            "0 deposits failed whole)\n") in r.stdout
