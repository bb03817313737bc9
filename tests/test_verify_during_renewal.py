"""``kiel verify`` while a renewal runs tells files being written from damage.

A real ``kiel renew`` runs in a child process against a server on
127.0.0.1 that sends the head and half the body of one PDF, then waits
until the test lets it go on. While it waits, the record's new version has
no renewal line yet (that line ends the record) and the body streams into
a temporary file: a plain ``verify`` reports them as in flight, never as
breaches. Once the renewal is done, the same verify finds nothing; and the
same files left by a renewal that is gone are breaches again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiel.home import Home

from kit.homes import make_home, record_dir, text, write_amf

BODY = b"%PDF-1.4\n" + b"x" * 20000 + b"\n%%EOF\n"
RID = "RePEc:aaa:wpaper:1"


class Held:
    """/slow.pdf sends its head and half its body, then waits for ``go``."""

    def __init__(self) -> None:
        self.half_sent = threading.Event()
        self.go = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                if self.path == "/slow.pdf":
                    self.wfile.write(BODY[: len(BODY) // 2])
                    self.wfile.flush()
                    outer.half_sent.set()
                    outer.go.wait(30)
                    self.wfile.write(BODY[len(BODY) // 2:])
                else:
                    self.wfile.write(BODY)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.go.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Held()
    yield s
    s.close()


def kiel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiel", *args], capture_output=True,
                          text=True, timeout=60)


def test_verify_during_a_renewal_reports_no_false_breach(tmp_path: Path, server):
    home = make_home(tmp_path / "home", "total_timeout = 40\nread_timeout = 40\n")
    src = write_amf(tmp_path / "in" / "a.xml",
                    text(RID, server.url("/fast.pdf"), server.url("/slow.pdf")))
    renewal = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", str(home),
                                str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.half_sent.wait(30), "the renewal never asked for /slow.pdf"
        rdir = record_dir(Home(str(home)), RID)
        assert any(n.endswith(".amf.xml") for n in os.listdir(rdir))
        during = kiel("verify", "--home", str(home))
        assert not [x for x in during.stdout.splitlines() if x.startswith("breach")], \
            during.stdout
        assert during.returncode == 0, during.stdout + during.stderr
        assert during.stdout.endswith("0 breaches, 3 warnings\n")
        assert "warning in-flight: RePEc/aaa/wpaper/1/1" in during.stdout  # the version
        assert "temporary file of a running process" in during.stdout
    finally:
        server.go.set()
        out, err = renewal.communicate(timeout=60)
    assert renewal.returncode == 0, out + err
    after = kiel("verify", "--home", str(home))
    assert after.returncode == 0 and after.stdout.endswith("0 breaches, 0 warnings\n"), \
        after.stdout


def test_the_same_files_left_by_a_renewal_that_is_gone_are_breaches(tmp_path: Path, server):
    """A journal naming the record, of a process that no longer runs (a
    crash): the version without its renewal line is a breach again."""
    server.go.set()
    home = make_home(tmp_path / "home")
    src = write_amf(tmp_path / "in" / "a.xml", text(RID, server.url("/fast.pdf")))
    assert kiel("renew", "--home", str(home), str(src)).returncode == 0
    rdir = record_dir(Home(str(home)), RID)
    version = sorted(n for n in os.listdir(rdir) if n.endswith(".amf.xml"))[-1]
    # As a renewal killed before its renewal line leaves it: a version no line names.
    (rdir / "9999999999.amf.xml").write_bytes((rdir / version).read_bytes())
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    work = home / "var" / f"run-1700000000-{dead_pid.pid}"
    work.mkdir()
    (work / "journal").write_text(f"+{rdir.relative_to(home / 'store')}\n")
    r = kiel("verify", "--home", str(home))
    assert r.returncode == 1
    assert "breach file-without-notes: RePEc/aaa/wpaper/1/9999999999.amf.xml" in r.stdout
