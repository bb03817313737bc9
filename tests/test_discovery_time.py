"""A landing page that costs seconds to read, within the byte, element and
attribute budgets: it is read off the event loop, within discovery_timeout,
and a stop does not wait for it (docs/discovery.md, Bounded). Real bytes, a
real server on 127.0.0.1, a real ``kiel renew``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kiel import config, htmlparse, notes, store
from kiel.discovery import read_page
from kiel.errors import ConfigError

from kit import cli
from kit import servers as hs
from kit.homes import minimal_pdf, object_dir, record_dir, set_config, text, write_amf

HEAD = b"<!DOCTYPE html><html><head><title>A paper</title>"
PDF_META = b'<meta name="citation_pdf_url" content="x.pdf">'  # beside the page


def slow_page() -> bytes:
    """Under the 4 MiB, 100 000-element and 64-attribute budgets (nothing is
    cut), yet seconds of work: one JSON-LD script naming the page's PDF
    450 000 times, each name resolved in turn by the readers."""
    media = b",".join([b'"x.pdf"'] * 450_000)
    body = (HEAD + PDF_META + b'<script type="application/ld+json">{"@type": '
            b'"ScholarlyArticle", "encoding": [' + media + b"]}</script></head><body>"
            b"<p>An abstract.</p></body></html>")
    assert len(body) < htmlparse.MAX_BYTES
    assert htmlparse.bound(body) == (body, [])
    return body


def light_page() -> bytes:
    return HEAD + PDF_META + b"</head><body><p>An abstract.</p></body></html>"


def page_lines(home, rid: str, url: str) -> list[dict]:
    return [e for e in notes.entries(str(object_dir(home, rid, url) / "00notes"))
            if "status" in e]


def test_the_slow_page_costs_seconds_in_one_reading() -> None:
    """What the tests below rely on: the page is slow to read, and a
    budget gives it up within its time."""
    body = slow_page()
    started = time.thread_time()
    r = read_page(body, "https://j.example.org/a/1", "text/html")
    spent = time.thread_time() - started
    assert [f.rule for f in r.found] == ["citation_pdf_url"] and r.given_up is None
    assert spent > 1.0, spent
    started = time.thread_time()
    r = read_page(body, "https://j.example.org/a/1", "text/html",
                  budget=htmlparse.Budget(0.2))
    assert time.thread_time() - started < 0.5
    assert r.found == () and r.given_up == ("given up: reading it took more than 0.2 s of "
                                            "processor time (discovery_timeout)")
    assert r.fields() == {"dropped": [f"page: {r.given_up}"]}


def test_a_page_over_its_time_is_given_up_and_the_run_goes_on(home, tmp_path: Path) -> None:
    set_config(home, discovery_timeout="0.2")
    srv = hs.HostileServer()
    try:
        slow = srv.route("/a/1", hs.good(slow_page(), "text/html"))
        light = srv.route("/b/1", hs.good(light_page(), "text/html"))
        srv.route("/a/x.pdf", hs.good(minimal_pdf()))
        srv.route("/b/x.pdf", hs.good(minimal_pdf()))
        pdf = srv.route("/c/1.pdf", hs.good(minimal_pdf("record three")))
        ids = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "RePEc:aaa:wpaper:3"]
        src = write_amf(tmp_path / "a.xml", text(ids[0], display=slow),
                        text(ids[1], display=light), text(ids[2], pdf))
        started = time.monotonic()
        p = cli.kiel("renew", "--no-progress", src, home=home, timeout=120)
        assert p.returncode == 0, p.stderr
        assert time.monotonic() - started < 60
        (line,) = page_lines(home, ids[0], slow)
        assert line["status"] == "200" and line["size"] == len(slow_page())  # the body kept
        assert line["dropped"] == ["page: given up: reading it took more than 0.2 s of "
                                   "processor time (discovery_timeout)"]
        assert "discovered" not in line and "searched" not in line
        assert srv.requests.get("/a/x.pdf") is None  # nothing taken from the slow page
        # the other records: a light page read within the same budget, a PDF stored
        (line,) = page_lines(home, ids[1], light)
        assert line["discovered"] == [{"url": srv.url("/b/x.pdf"),
                                       "rule": "citation_pdf_url"}]
        assert [e["status"] for e in page_lines(home, ids[2], pdf)] == ["200"]
        for rid in ids:
            assert (record_dir(home, rid) / "00last").exists(), rid
        log = "".join(p.read_text() for p in Path(home.var, "log").glob("*.log"))
        assert f"discovery: {slow}: given up: reading it took more than 0.2 s" in log
        hs.assert_clean(home.root)
    finally:
        srv.close()


@pytest.mark.parametrize("processes", [1, 2])  # the loop in kiel renew itself, or in workers
def test_sigterm_while_a_page_is_read_ends_the_run_at_once(home, tmp_path: Path,
                                                           processes: int) -> None:
    set_config(home, processes=processes)
    page = slow_page()
    srv = hs.HostileServer()
    try:
        slow = srv.route("/a/1", hs.good(page, "text/html"))
        srv.route("/a/x.pdf", hs.good(minimal_pdf()))
        rid = "RePEc:aaa:wpaper:1"
        src = write_amf(tmp_path / "a.xml", text(rid, display=slow))
        proc = subprocess.Popen(cli.argv("renew", "--no-progress", str(src), home=home),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        odir = object_dir(home, rid, slow)

        def body_stored() -> bool:  # the whole page on disk, under its temporary name
            for dirpath, _dirs, files in os.walk(record_dir(home, rid)):
                for n in files:
                    try:
                        if store.is_tmp(n) and os.path.getsize(os.path.join(dirpath, n)) \
                                == len(page):
                            return True
                    except OSError:
                        pass
            return False

        assert hs.wait_until(lambda: srv.body_bytes.get("/a/1") == len(page), timeout=60)
        assert hs.wait_until(body_stored, timeout=30)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("kiel renew still running 30 s after SIGTERM")
        elapsed = time.monotonic() - t
        assert proc.returncode == 143, err
        # The page costs seconds to read: the run did not wait for it.
        assert elapsed < 2.0, elapsed
        (line,) = page_lines(home, rid, slow)
        # The attempt is noted: its body kept and the page noted as not read
        # (or, had the stop come before the fetch ended, 000 interrupted).
        assert "discovered" not in line, line
        if line["status"] == "200":
            assert line["dropped"] == ["page: not read: the run was stopping"]
            assert (odir / line["file"]).read_bytes() == page
        else:
            assert (line["status"], line.get("error")) == ("000", "interrupted"), line
        assert srv.requests.get("/a/x.pdf") is None
        rdir = record_dir(home, rid)
        assert not (rdir / "00last").exists()  # it comes first in the next run
        last = list(notes.entries(str(rdir / "00notes")))[-1]
        assert last["event"] == "renewal" and last.get("interrupted"), last
        summary = sorted(Path(home.var, "runs").glob("*.json"))[-1]
        assert json.loads(summary.read_text())["interrupted"] == "SIGTERM"
        hs.assert_clean(home.root)  # no temporary file left, none under a final name
        # The next run reads the page to its end (within discovery_timeout).
        again = cli.kiel("renew", "--no-progress", src, home=home, timeout=120)
        assert again.returncode == 0, again.stderr
        assert page_lines(home, rid, slow)[-1]["discovered"] == [
            {"url": srv.url("/a/x.pdf"), "rule": "citation_pdf_url"}]
        assert (rdir / "00last").exists()
    finally:
        srv.close()


def test_discovery_timeout_is_a_duration_above_zero(tmp_path: Path) -> None:
    path = tmp_path / "kiel.conf"
    path.write_text("[kiel]\ndiscovery_timeout = 500ms\n", encoding="utf-8")
    assert config.load(str(path)).discovery_timeout == 0.5
    assert config.defaults().discovery_timeout == 10.0
    path.write_text("[kiel]\ndiscovery_timeout = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2: .*discovery_timeout.*must be more than 0"):
        config.load(str(path))
