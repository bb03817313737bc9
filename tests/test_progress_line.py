"""The progress line of ``kiel renew`` on a real terminal tells the truth while the run lasts.

A pseudo-terminal is stderr; the records are fetched from a local server that
holds the last record's answer until the test has seen the line count every
other record as done. While it waits, nothing happens in the renewal: the line
is redrawn by its timer. When the run ends, its final state is drawn.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

from werkzeug import Request, Response

from kit.homes import make_home, text, write_amf

N = 6
LINE = re.compile(rb"\r\x1b\[K(\w+): (\d+)/(\d+) records")


class Terminal:
    """What a process wrote to the pty, read as it comes."""

    def __init__(self, master: int):
        self.master = master
        self.seen = b""

    def read_until(self, done, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if done(self.seen):
                return True
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed its end
                    return done(self.seen)
                if not chunk:
                    return done(self.seen)
                self.seen += chunk
        return done(self.seen)

    def lines(self) -> list[tuple[bytes, int, int]]:
        return [(m[1], int(m[2]), int(m[3])) for m in LINE.finditer(self.seen)]


def test_the_line_counts_records_as_they_end_and_draws_the_last_state(tmp_path, httpserver):
    release = threading.Event()

    def answer(request: Request) -> Response:
        if request.args.get("n") == str(N - 1):
            release.wait(30)  # the last record: held until the test has looked
        return Response(b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")

    httpserver.expect_request("/p.pdf").respond_with_handler(answer)
    # The held answer comes within the read timeout.
    # One process: the test server answers one request at a time, so the held
    # answer must be the last one asked, after the five others were answered.
    h = make_home(tmp_path / "h", "read_timeout = 30\ntotal_timeout = 60\nprocesses = 1\n")
    src = write_amf(tmp_path / "a.xml", *[
        text(f"RePEc:aaa:wpaper:{i}", httpserver.url_for("/p.pdf") + f"?n={i}")
        for i in range(N)])
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", str(h), str(src)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    term = Terminal(master)
    try:
        # While the last record is held, the line says that all the others are done.
        waiting = (b"renew", N - 1, N)
        assert term.read_until(lambda _s: waiting in term.lines(), 30), term.seen[-400:]
        assert p.poll() is None  # the run is still going
        # Nothing moves in the renewal now; the timer redraws the line all the same.
        drawn = len(term.lines())
        assert term.read_until(lambda _s: len(term.lines()) >= drawn + 2, 5), term.seen[-400:]
        assert term.lines()[-1] == waiting
        assert p.poll() is None
        release.set()
        term.read_until(lambda _s: False, 60)  # to the end: the child closes the pty
        out, _ = p.communicate(timeout=60)
    finally:
        release.set()
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert p.returncode == 0, out
    # The final state is drawn before the line is cleared for the summary.
    last = term.lines()[-1]
    assert last[1:] == (N, N), term.seen[-400:]
    assert term.seen.endswith(b"\r\x1b[K")
    assert f"{N} renewed".encode() in out
