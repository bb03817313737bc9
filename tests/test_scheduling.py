"""Who waits for whom in a renewal: a host that asks for a pause, a slow
host, a slow shared URL, a page that offers thousands of links, a landing
page shared by several records. Real servers on 127.0.0.1; the files on disk
and the requests the servers saw are the test (docs/hardening.md)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kiel import notes

from kit.homes import minimal_pdf, object_dir, record_dir, run, set_config, text, write_amf
from kit.servers import Answer, Site

PDF = minimal_pdf("the full text")


def lines(d: Path) -> list[dict]:
    return [e for e in notes.entries(str(d / "00notes")) if "status" in e]


def renewal_line(home, rid: str) -> dict:
    return [e for e in notes.entries(str(record_dir(home, rid) / "00notes"))
            if e.get("event") == "renewal"][-1]


def ok(body: bytes = b"fine\n", ctype: str = "text/plain") -> Answer:
    return 200, [("Content-Type", ctype)], body


def test_retry_after_pauses_the_whole_host_not_the_others(home, tmp_path, clock):
    """A 503 with ``Retry-After: 3``: no request reaches that host for three
    seconds (the other objects of the host wait too), while another host's
    objects are fetched; then everything is fetched."""
    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()
    answered_503: list[float] = []

    def busy_host(host: str, path: str) -> Answer:
        with lock:
            arrivals.append((time.monotonic(), path))
            first = path == "/busy" and not answered_503
            if first:
                answered_503.append(time.monotonic())
        if first:
            return 503, [("Retry-After", "3"), ("Content-Type", "text/plain")], b"busy\n"
        return ok(path.encode())

    a = Site(busy_host)
    b = Site(lambda host, path: ok(path.encode()))
    try:
        set_config(home, per_host=1, retries=1, retry_delay=0, retry_after_cap=10)
        recs = [text("RePEc:aaa:wpaper:0", a.url("/busy"))]
        recs += [text(f"RePEc:aaa:wpaper:{n + 1}", a.url(f"/a{n}")) for n in range(6)]
        recs += [text(f"RePEc:bbb:wpaper:{n}", b.url(f"/b{n}")) for n in range(6)]
        s = run(home, write_amf(tmp_path / "in.xml", *recs), clock=clock)
        assert s.input_errors == 0
        t503 = answered_503[0]
        during = [p for t, p in arrivals if t503 + 0.2 < t < t503 + 2.7]
        assert during == [], f"requests to a host that asked for 3 s of rest: {during}"
        assert sorted(p for _, p in arrivals) == sorted(["/busy", "/busy"] +
                                                        [f"/a{n}" for n in range(6)])
        assert len(b.requests) == 6  # the other host was not paused
        busy = lines(object_dir(home, "RePEc:aaa:wpaper:0", a.url("/busy")))
        assert [e["status"] for e in busy] == ["503", "200"]
    finally:
        a.close()
        b.close()


def _held_until(event: threading.Event, waited: list[bool], timeout: float = 10.0):
    """An answer that is sent only once ``event`` is set (or after ``timeout``):
    a slow host whose slowness ends when the test has seen what it waits for."""
    def answer(host: str, path: str) -> Answer:
        waited.append(event.wait(timeout))
        return ok(path.encode())
    return answer


class SlowAndFast:
    """A slow site whose answers wait until a fast site has answered ``n``
    requests (at most 10 s): the test reads, from ``waited``, whether the fast
    requests came while the slow ones were still being answered."""

    def __init__(self, n: int):
        self.fast_seen = threading.Event()
        self.waited: list[bool] = []
        self.fast_paths: list[str] = []
        self.slow = Site(_held_until(self.fast_seen, self.waited))
        self.fast = Site(self._fast_answer)
        self.n = n

    def _fast_answer(self, host: str, path: str) -> Answer:
        self.fast_paths.append(path)
        if len(self.fast_paths) == self.n:
            self.fast_seen.set()
        return ok(path.encode())

    def close(self) -> None:
        self.fast_seen.set()
        self.slow.close()
        self.fast.close()


def test_a_slow_host_does_not_hold_the_records_of_a_fast_one(home, tmp_path, clock):
    """40 objects of a slow host come first in the input, 10 records of a fast
    host after them: the fast host's objects are fetched while the slow host
    is still answering (its answers wait until they are), not after."""
    sites = SlowAndFast(10)
    slow, fast, fast_paths, waited = sites.slow, sites.fast, sites.fast_paths, sites.waited
    try:
        set_config(home, concurrency=4, per_host=2, processes=1, read_timeout=30)
        recs = [text(f"RePEc:aaa:slow:{n}", *[slow.url(f"/s{n}/{k}") for k in range(4)])
                for n in range(10)]
        recs += [text(f"RePEc:bbb:fast:{n}", fast.url(f"/f{n}")) for n in range(10)]
        s = run(home, write_amf(tmp_path / "in.xml", *recs), clock=clock)
        assert s.input_errors == 0
        assert len(fast_paths) == 10 and len(slow.requests) == 40
        assert waited and all(waited), \
            "the slow host's answers timed out: the fast records waited behind them"
    finally:
        sites.close()


def test_a_slow_shared_url_does_not_hold_unrelated_records(home, tmp_path, clock):
    """40 records share one slow URL; 20 unrelated records come after them in
    the input. They are renewed while the shared URL is still answering."""
    sites = SlowAndFast(20)
    slow, fast, fast_paths, waited = sites.slow, sites.fast, sites.fast_paths, sites.waited
    try:
        set_config(home, concurrency=4, processes=1, read_timeout=30)
        shared = slow.url("/shared.pdf")
        recs = [text(f"RePEc:aaa:shared:{n}", shared) for n in range(40)]
        recs += [text(f"RePEc:bbb:other:{n}", fast.url(f"/o{n}")) for n in range(20)]
        s = run(home, write_amf(tmp_path / "in.xml", *recs), clock=clock)
        assert s.input_errors == 0
        assert len(slow.requests) == 1 and len(fast_paths) == 20
        assert waited == [True], "the unrelated records waited for the shared URL"
        for n in range(40):  # and each record has the shared body
            d = object_dir(home, f"RePEc:aaa:shared:{n}", shared)
            (line,) = lines(d)
            assert (d / line["file"]).read_bytes() == b"/shared.pdf"
    finally:
        sites.close()


def _page_of_links(n: int) -> bytes:
    metas = "".join(f'<meta name="citation_pdf_url" content="/f/{i}.pdf">' for i in range(n))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>A paper</title>'
            f'{metas}</head><body><h1>A paper</h1></body></html>').encode()


def _links_site(n: int, pdf_wait: float = 0.0) -> Site:
    page = _page_of_links(n)

    def answer(host: str, path: str) -> Answer:
        if path == "/paper":
            return ok(page, "text/html")
        if pdf_wait:
            time.sleep(pdf_wait)  # the server is slow, not the test waiting
        return ok(PDF, "application/pdf")
    return Site(answer)


def test_a_page_of_thousands_of_links_adds_at_most_max_discovered(home, tmp_path, clock):
    """A landing page offering 2 000 full texts: the first ``max_discovered``
    (20 by default) are fetched; the page's line counts the rest, the record's
    notes name the setting."""
    site = _links_site(2000)
    try:
        rid = "RePEc:aaa:wpaper:1"
        page = site.url("/paper")
        run(home, write_amf(tmp_path / "in.xml", text(rid, display=page)), clock=clock)
        dirs = [d for d in record_dir(home, rid).iterdir() if d.is_dir()]
        assert len(dirs) == 1 + 20
        assert len(site.requests) == 1 + 20
        (pline,) = lines(object_dir(home, rid, page))
        assert len(pline["discovered"]) == 20 and pline["discovered_more"] == 2000 - 20
        assert any("max_discovered" in e for e in renewal_line(home, rid)["errors"])
    finally:
        site.close()


def test_what_a_record_adds_stops_at_max_objects(home, tmp_path, clock):
    site = _links_site(300)
    try:
        set_config(home, max_discovered=1000, max_objects=50)
        rid = "RePEc:aaa:wpaper:2"
        page = site.url("/paper")
        run(home, write_amf(tmp_path / "in.xml", text(rid, display=page)), clock=clock)
        dirs = [d for d in record_dir(home, rid).iterdir() if d.is_dir()]
        assert len(dirs) == 50
        errors = renewal_line(home, rid)["errors"]
        assert sum("max_objects" in e for e in errors) == 1
    finally:
        site.close()


def test_max_time_stops_the_objects_a_page_added(home, tmp_path, clock):
    """With no bound on discovery, a page of 3 000 links on a slow server and
    ``--max-time 2``: the run ends soon after two seconds, the record not
    finished (no ``00last``: it comes first next time), the attempts made kept."""
    site = _links_site(3000, pdf_wait=0.2)
    try:
        set_config(home, max_discovered=100000, max_objects=100000, processes=1)
        rid = "RePEc:aaa:wpaper:3"
        page = site.url("/paper")
        t0 = time.monotonic()
        s = run(home, write_amf(tmp_path / "in.xml", text(rid, display=page)), clock=clock,
                max_time=2.0)
        took = time.monotonic() - t0
        assert took < 15, f"--max-time 2 took {took:.1f} s"
        assert s.interrupted == "max-time"
        rdir = record_dir(home, rid)
        assert not (rdir / "00last").exists()
        fetched = [d for d in rdir.iterdir() if d.is_dir() and lines(d)]
        assert 1 < len(fetched) < 500
        for d in fetched:  # what was fetched is kept whole
            (line,) = lines(d)
            assert (d / line["file"]).stat().st_size == line["size"]
    finally:
        site.close()


def test_records_sharing_a_landing_page_all_get_its_full_text(home, tmp_path, clock):
    """Ten records name one landing page: each gets the page and the full text
    it offers (fetched once, linked by the others), each page line notes it."""
    hits: dict[str, int] = {}

    def answer(host: str, path: str) -> Answer:
        hits[path] = hits.get(path, 0) + 1
        if path == "/landing":
            return ok(b'<!DOCTYPE html><html><head><title>P</title><meta name="citation_pdf_url"'
                      b' content="/full.pdf"></head><body>P</body></html>', "text/html")
        return ok(PDF, "application/pdf")

    site = Site(answer)
    try:
        page, full = site.url("/landing"), site.url("/full.pdf")
        rids = [f"RePEc:aaa:wpaper:{n}" for n in range(10)]
        s = run(home, write_amf(tmp_path / "in.xml", *[text(r, display=page) for r in rids]),
                clock=clock)
        assert s.input_errors == 0
        assert hits == {"/landing": 1, "/full.pdf": 1}
        for rid in rids:
            (pline,) = lines(object_dir(home, rid, page))
            assert pline["discovered"] == [{"url": full, "rule": "citation_pdf_url"}], rid
            fdir = object_dir(home, rid, full)
            (fline,) = lines(fdir)
            assert fline["via"] == {"url": page, "rule": "citation_pdf_url"}
            assert (fdir / fline["file"]).read_bytes() == PDF
            assert renewal_line(home, rid)["urls"]["(discovered)"] == [full]
    finally:
        site.close()
