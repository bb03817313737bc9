"""What the readers print never drives the terminal.

A server, a deposit platform or a person with a shell chooses the bytes of
a ``Location`` value, a deposit's strings and the store's file names. ESC
(OSC 52 sets the clipboard, CSI 2J clears the screen), the C1 controls
U+009B (CSI) and U+0085 (NEL), raw bytes of names that are not UTF-8 and
bidirectional overrides are printed escaped by ``show``, ``verify`` and
``report``, in text and in JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug import Response

from kit.homes import Clock, record_dir, run, text, write_amf

RID = "RePEc:aaa:wpaper:1"
OSC52 = "\x1b]52;c;SGVsbG8=\x07"
# What no output may hold: C0 and C1 controls as bytes or as UTF-8, and the
# right-to-left override.
FORBIDDEN = [b"\x1b", b"\x07", b"\x9b", b"\x85", b"\xc2\x9b", b"\xc2\x85", b"\xe2\x80\xae"]


def kiel(root: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kiel", *args, "--home", root],
                          capture_output=True, timeout=60)


@pytest.fixture
def root(tmp_path: Path, home, httpserver) -> str:
    httpserver.expect_request("/old").respond_with_response(Response(
        b"", status=302, headers={"Location": "/new\x9b2J\x85" + OSC52}))
    httpserver.expect_request("/paper.pdf").respond_with_data(b"%PDF-1.4\n%%EOF\n",
                                                              content_type="application/pdf")
    src = write_amf(tmp_path / "in" / "a.xml",
                    text(RID, httpserver.url_for("/paper.pdf"), display=httpserver.url_for("/old")))
    run(home, src, clock=Clock())
    rdir = record_dir(home, RID)
    manifest = {
        "event": "manifest", "tist": 1_700_000_500, "platform": "zenodo" + OSC52,
        "domain": "zenodo.org\x9b2J", "deposit": "42\u202egpj.exe", "deposit_version": "1\x85",
        "strategy": "files", "file_count": 1, "total_size": 3, "bundle": None,
        "bundle_file": None, "api": [], "fingerprint": "f", "unchanged": False, "failure": None,
        "mismatches": 1,
        "files": [{"path": "data\x1b[2J.csv", "size": 3, "url": "http://x/d", "declared":
                   {"md5": "a"}, "found": {"md5": "b\x9b"}, "found_size": 3, "file": None,
                   "status": "mismatch", "algorithm": "md5", "error": "boom\x1b[31m"}],
    }
    with open(rdir / "00notes", "a", encoding="utf-8") as f:
        f.write(json.dumps(manifest) + "\n")
    # Names a person planted: OSC 52, and a name that is not UTF-8 with CSI.
    os.close(os.open(os.fsencode(rdir) + b"/" + OSC52.encode(), os.O_CREAT | os.O_WRONLY))
    os.close(os.open(os.fsencode(rdir) + b"/x\x9b2J", os.O_CREAT | os.O_WRONLY))
    return home.root


@pytest.mark.parametrize("args", [("show", RID), ("show", "--json", RID), ("verify",),
                                  ("report",), ("report", "--json")])
def test_nothing_printed_drives_the_terminal(root, args):
    r = kiel(root, *args)
    assert r.stderr == b"", r.stderr
    for bad in FORBIDDEN:
        assert bad not in r.stdout, (args, bad, r.stdout)
    assert r.returncode in (0, 1)


def test_the_escaped_values_are_shown(root):
    out = kiel(root, "show", RID).stdout.decode()
    # The redirect target is a URL Kiel resolved: its bytes are percent-encoded.
    assert "redirect -> http://localhost:" in out and "/new%C2%9B2J%C2%85%1B%5D52;c;" in out
    assert "zenodo\\x1b]52;c;SGVsbG8=\\x07 zenodo.org\\x9b2J 42\\u202egpj.exe" in out
    assert "mismatch    data\\x1b[2J.csv  3 B  md5 expected a found b\\x9b  error boom\\x1b[31m" \
        in out
    shown = json.loads(kiel(root, "show", "--json", RID).stdout)
    assert shown["deposits"][0]["files"][0]["path"] == "data\x1b[2J.csv"  # same value, escaped
    v = kiel(root, "verify").stdout.decode()
    assert "breach bad-name: RePEc/aaa/wpaper/1/\\x1b]52;c;SGVsbG8=\\x07: not a version" in v
    assert "breach bad-name: RePEc/aaa/wpaper/1/x\\x9b2J: not a version" in v


def test_printable_escapes_c0_c1_surrogates_and_bidi():
    from kiel.text import printable, printable_json

    assert printable("a\x1b[2Jb\x9b\x85\x7f") == "a\\x1b[2Jb\\x9b\\x85\\x7f"
    assert printable("x\udc9by") == "x\\x9by"  # a non-UTF-8 byte of a file name
    assert printable("\u202eabc\u2028") == "\\u202eabc\\u2028"
    assert printable("café ü 日本") == "café ü 日本"
    doc = json.dumps({"k": "a\x9b\u202e\x1b"}, ensure_ascii=False, indent=2)
    assert json.loads(printable_json(doc)) == {"k": "a\x9b\u202e\x1b"}
