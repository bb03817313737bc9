"""What a run tells: every summary field, the JSON and log files, progress on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from werkzeug import Response

from kit.homes import make_home, run, set_config, text, write_amf
from kit.servers import wait_until

PDF = b"%PDF-1.4\n" + b"p" * 5000


def test_every_summary_field(home, httpserver, tmp_path, clock):
    set_config(home, retries=1, retry_delay=0.01, max_body=100_000)
    httpserver.expect_request("/a.pdf").respond_with_data(PDF, content_type="application/pdf")
    httpserver.expect_request("/shared").respond_with_data(b"<html>j</html>",
                                                           content_type="text/html")
    httpserver.expect_request("/404").respond_with_data(b"no", status=404)
    httpserver.expect_request("/big").respond_with_data(b"b" * 200_000)
    calls = []

    def flaky(_r):
        calls.append(1)
        return Response(b"later", status=503) if len(calls) == 1 else Response(b"ok")

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    u = httpserver.url_for
    src = write_amf(tmp_path / "in" / "a.xml",
                    text("RePEc:aaa:wpaper:1", u("/a.pdf"), u("/404"), display=u("/shared")),
                    text("RePEc:aaa:wpaper:2", u("/big"), "http://127.0.0.1:1/refused",
                         display=u("/shared")),
                    text("RePEc:aaa:wpaper:3", u("/flaky"), "mailto:x@y"),
                    text(None), '<text ref="RePEc:zzz:wpaper:9"/>')
    s = run(home, src, clock=clock)
    assert s.records_found == 3 and s.records_renewed == 3
    assert (s.new_versions, s.virgin, s.unchanged) == (3, 3, 0)
    assert s.input_errors == 1 and s.refs == 1 and s.duplicates == 0
    assert s.objects == 7
    # 7 final attempts, and 2 retried: the 503 and the refused connection
    assert s.attempts == 9
    assert s.attempts_by_class == {"000": 3, "2xx": 4, "4xx": 1, "5xx": 1}
    assert s.errors_by_kind == {"refused": 2, "too-large": 1}
    assert s.retries == 2 and s.shared == 1 and s.not_modified == 0 and s.given_up == 0
    fetched = len(PDF) + len(b"<html>j</html>") + len(b"no") + len(b"ok")
    assert s.bytes_fetched == fetched
    assert s.bytes_stored == fetched
    assert s.bytes_linked == len(b"<html>j</html>")  # the shared page, linked once
    assert s.interrupted is None and s.exit_status == 1 and s.duration > 0
    clock.advance()
    s2 = run(home, src, clock=clock)
    assert (s2.new_versions, s2.unchanged) == (0, 3)
    assert s2.bytes_stored == 0  # nothing changed: every body is a link
    assert s2.bytes_linked >= len(PDF)
    data = json.loads(Path(s2.summary_file).read_text())
    for field in ("records_found", "records_renewed", "new_versions", "unchanged", "skipped",
                  "input_errors", "attempts_by_class", "errors_by_kind", "bytes_fetched",
                  "bytes_stored", "bytes_linked", "duration", "records_per_second",
                  "exit_status"):
        assert field in data, field
    assert data["unchanged"] == 3
    assert Path(s2.log).exists() and "renewal ends" in Path(s2.log).read_text()


def test_skipped_records_are_counted_with_their_reason(home, tmp_path, clock):
    set_config(home, record_interval="1h")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"), text("RePEc:aaa:wpaper:2"))
    run(home, src, clock=clock)
    clock.advance(60)
    s = run(home, src, clock=clock)
    assert s.skipped == {"record_interval": 2} and s.records_renewed == 0
    clock.advance(3600)
    s = run(home, src, clock=clock)
    assert s.skipped == {} and s.records_renewed == 2


def test_progress_on_a_terminal_and_none_without(tmp_path, httpserver):
    def slow(_r):
        time.sleep(0.1)
        return Response(b"x")

    httpserver.expect_request("/s").respond_with_handler(slow)
    h = make_home(tmp_path / "h")
    src = write_amf(tmp_path / "a.xml", *[text(f"RePEc:aaa:wpaper:{i}", httpserver.url_for("/s")
                                              + f"?{i}") for i in range(30)])
    # stderr on a real terminal (a pty): progress is shown
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", str(h), str(src)],
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait(60)
    os.close(master)
    assert p.returncode == 0
    assert b"records" in seen and b"objects" in seen and b"fetching" in seen \
        and b"records/s" in seen
    # the truth: fetches under way are at most the workers (16), never the queue;
    # objects done never exceed the objects known, and the ETA counts objects left
    import re
    shown = re.findall(rb"(\d+)/(\d+) objects, (\d+) fetching", seen)
    assert shown and all(int(f) <= 16 for _, _, f in shown), shown
    assert all(int(d) <= int(t) for d, t, _ in shown), shown
    assert int(shown[-1][1]) == 30
    # without a terminal (cron): no progress at all
    r = subprocess.run([sys.executable, "-m", "kiel", "renew", "--home", str(h), str(src)],
                       capture_output=True)
    assert r.returncode == 0 and r.stderr == b""
    assert b"records:" in r.stdout


def records_line(s) -> str:
    from kiel.cli import format_summary

    return format_summary(s).splitlines()[1]


def test_records_of_an_input_file_that_fails_later_are_counted_as_skipped(home, tmp_path,
                                                                           clock):
    write_amf(tmp_path / "in" / "a.xml", text("RePEc:aaa:wpaper:1"))
    bad = write_amf(tmp_path / "in" / "b.xml", *[text(f"RePEc:bbb:wpaper:{i}")
                                                  for i in range(4)])
    bad.write_bytes(bad.read_bytes()[:-40])  # cut inside its last record
    s = run(home, tmp_path / "in", clock=clock)
    assert records_line(s) == ("records:  4 found, 1 renewed (1 new versions of which 1 "
                               "virgin, 0 unchanged), skipped: input_file_failed 3")
    assert s.exit_status == 1 and s.input_errors == 1
    assert s.records_found == s.records_renewed + sum(s.skipped.values())
    log = Path(s.log).read_text()
    assert f"record RePEc:bbb:wpaper:0 ({bad}:" in log
    assert "not renewed, its input file failed later" in log


@pytest.mark.parametrize("processes", [1, 2])
def test_after_sigterm_found_is_renewed_plus_skipped(home, httpserver, tmp_path, processes):
    import re
    import signal

    hits = []

    def slow(request):
        hits.append(request.full_path)
        time.sleep(0.5)
        return Response(b"slow body", content_type="text/plain")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    set_config(home, concurrency=2, processes=processes)
    src = write_amf(tmp_path / "a.xml", *[text(f"RePEc:aaa:wpaper:{n}",
                                               httpserver.url_for("/slow") + f"?{n}")
                                          for n in range(40)])
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                          "--no-progress", str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: len(hits) >= 6, timeout=60)  # fetching, records under way
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 143, err
    m = re.search(r"^records:  (\d+) found, (\d+) renewed \(\d+ new versions of which \d+ "
                  r"virgin, \d+ unchanged\), skipped: (.*)$", out, re.M)
    assert m, out
    found, renewed = int(m[1]), int(m[2])
    skipped = {k: int(v) for k, v in (part.split(" ") for part in m[3].split(", "))}
    assert found == 40 and 0 < renewed < 40
    assert set(skipped) == {"interrupted"}, skipped
    assert found == renewed + skipped["interrupted"], out
    data = json.loads(max(Path(home.var, "runs").glob("*.json"),
                          key=lambda f: f.stat().st_mtime).read_text())
    assert data["records_found"] == data["records_renewed"] + sum(data["skipped"].values())
    assert ("renewing in 2 worker processes" in Path(data["log"]).read_text()) == \
        (processes == 2)


def test_a_duplicate_id_is_counted_as_skipped(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"), text("RePEc:aaa:wpaper:1"),
                    text("RePEc:aaa:wpaper:2"))
    s = run(home, src, clock=clock)
    assert records_line(s) == ("records:  3 found, 2 renewed (2 new versions of which 2 "
                               "virgin, 0 unchanged), skipped: duplicate 1")
    assert s.duplicates == 1
