"""Renewal at archive scale: shared URLs, 304, retries, FTP, budget, slices, ages."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from kiel import notes, renewal
from kiel.errors import LockHeld
from kiel.home import Lock

from kit.homes import attempts, object_dir, record_dir, run, set_config, text, write_amf


def notes_of(d: Path) -> list[dict]:
    return list(notes.entries(str(d / "00notes")))


class Counting:
    """A handler that counts its requests."""

    def __init__(self, body=b"body", content_type="text/plain", delay=0.0):
        self.body, self.content_type, self.delay = body, content_type, delay
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.paths.append(request.full_path.rstrip("?"))
        if self.delay:
            time.sleep(self.delay)
        return Response(self.body, content_type=self.content_type)


def test_shared_url_is_fetched_once(home, httpserver, tmp_path, clock):
    h = Counting(b"<html>journal</html>", "text/html")
    httpserver.expect_request("/journal").respond_with_handler(h)
    url = httpserver.url_for("/journal")
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(12)]
    src = write_amf(tmp_path / "a.xml", *[text(i, display=url) for i in ids])
    s = run(home, src, clock=clock)
    assert len(h.paths) == 1 and s.shared == 11
    reals = []
    for rid in ids:
        d = object_dir(home, rid, url)
        (name,) = attempts(d)
        assert name == f"{int(clock())}_200_text-html"
        assert (d / name).read_bytes() == b"<html>journal</html>"
        if (d / name).is_symlink():
            target = os.readlink(d / name)
            assert not os.path.isabs(target)
            assert not os.path.islink(os.path.realpath(d / name))
            assert notes_of(d)[0]["same_as"]
        else:
            reals.append(rid)
    assert len(reals) == 1


def test_shared_empty_body_stays_an_empty_file(home, httpserver, tmp_path, clock):
    h = Counting(b"", "text/plain")
    httpserver.expect_request("/empty").respond_with_handler(h)
    url = httpserver.url_for("/empty")
    src = write_amf(tmp_path / "a.xml", *[text(f"RePEc:aaa:wpaper:{i}", url) for i in range(3)])
    run(home, src, clock=clock)
    assert len(h.paths) == 1
    for i in range(3):
        d = object_dir(home, f"RePEc:aaa:wpaper:{i}", url)
        (name,) = attempts(d)
        assert not (d / name).is_symlink() and (d / name).stat().st_size == 0


def test_304_is_stored_as_a_link_to_the_200(home, httpserver, tmp_path, clock):
    seen = []

    def etagged(request):
        seen.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(b"%PDF-1.4\nbody", content_type="application/pdf", headers={"ETag": '"v1"'})

    httpserver.expect_request("/p.pdf").respond_with_handler(etagged)
    url = httpserver.url_for("/p.pdf")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    t1 = int(clock())
    clock.advance()
    s = run(home, src, clock=clock)
    t2 = int(clock())
    assert seen == [None, '"v1"'] and s.not_modified == 1
    d = object_dir(home, "RePEc:aaa:wpaper:1", url)
    link = d / f"{t2}_304_application-pdf"
    assert link.is_symlink() and os.readlink(link) == f"{t1}_200_application-pdf"
    assert link.read_bytes() == b"%PDF-1.4\nbody"
    set_config(home, conditional="no")
    clock.advance()
    run(home, src, clock=clock)
    assert seen[-1] is None


def test_retries_and_retry_after(home, httpserver, tmp_path, clock):
    set_config(home, retries=2, retry_delay=0.01)
    calls = []

    def flaky(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response(b"busy", status=503, headers={"Retry-After": "1"})
        if len(calls) == 2:
            return Response(b"slow", status=429)
        return Response(b"fine", content_type="text/plain")

    httpserver.expect_request("/f").respond_with_handler(flaky)
    url = httpserver.url_for("/f")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    s = run(home, src, clock=clock)
    assert len(calls) == 3 and s.retries == 2
    assert calls[1] - calls[0] >= 0.95  # Retry-After: 1 honoured
    d = object_dir(home, "RePEc:aaa:wpaper:1", url)
    assert attempts(d) == [f"{int(clock())}_200_text-plain"]  # only the final attempt is a file
    lines = notes_of(d)
    assert [ln["status"] for ln in lines] == ["503", "429", "200"]
    assert [ln["file"] is None for ln in lines] == [True, True, False]


def test_retry_after_is_capped(home, httpserver, tmp_path, clock):
    set_config(home, retries=1, retry_delay=0.01, retry_after_cap=0.2)
    httpserver.expect_request("/busy").respond_with_data(b"", status=503,
                                                         headers={"Retry-After": "3600"})
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", httpserver.url_for("/busy")))
    t = time.monotonic()
    run(home, src, clock=clock)
    assert time.monotonic() - t < 5
    d = object_dir(home, "RePEc:aaa:wpaper:1", httpserver.url_for("/busy"))
    assert [n.split("_", 1)[1] for n in attempts(d)] == ["503_text-plain"]


def test_ftp_success_missing_and_refused_login(home, tmp_path, clock, ftp_server):
    ok = ftp_server + "/pub/paper.pdf"
    missing = ftp_server + "/pub/none.pdf"
    refused = ftp_server.replace("ftp://", "ftp://user:wrong@") + "/pub/paper.pdf"
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", ok, missing, refused))
    run(home, src, clock=clock)
    t = int(clock())
    rid = "RePEc:aaa:wpaper:1"
    d = object_dir(home, rid, ok)
    assert attempts(d) == [f"{t}_226_application-pdf"]
    assert (d / attempts(d)[0]).read_bytes() == b"%PDF-1.4\nftp body\n%%EOF\n"
    assert notes_of(d)[0]["sha256"]
    assert attempts(object_dir(home, rid, missing)) == [f"{t}_550_none"]
    redacted = ftp_server.replace("ftp://", "ftp://user:***@") + "/pub/paper.pdf"
    d = object_dir(home, rid, redacted)
    assert attempts(d) == [f"{t}_530_none"]
    # the password never reaches names, notes or logs (the record itself is kept as published)
    for p in Path(home.root).rglob("*"):
        if p.is_file() and not p.is_symlink() and not p.name.endswith(".amf.xml"):
            assert b"wrong" not in p.read_bytes(), p
        assert "wrong" not in p.name


def test_max_time_ends_early_and_the_next_run_continues(home, httpserver, tmp_path, clock):
    set_config(home, concurrency=1)
    h = Counting(delay=0.4)
    httpserver.expect_request("/slow").respond_with_handler(h)
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(12)]
    url = {i: httpserver.url_for("/slow") + f"?{n}" for n, i in enumerate(ids)}
    src = write_amf(tmp_path / "a.xml", *[text(i, url[i]) for i in ids])
    s1 = run(home, src, clock=clock, max_time=1.0)
    assert s1.interrupted == "max-time"
    done1 = {i for i in ids if (record_dir(home, i) / "00last").exists()}
    assert 0 < len(done1) < len(ids)
    assert s1.records_renewed == len(done1)
    assert s1.skipped["max_time"] == len(ids) - len(done1)
    # records not finished have no 00last: they come first next time
    assert all(not (record_dir(home, i) / "00last").exists() for i in set(ids) - done1)
    clock.advance()
    h.paths.clear()
    run(home, src, clock=clock)
    # the next run serves first the records the first did not reach (virgin
    # first); a record's object may overtake the one before by one place
    undone = set(ids) - done1
    by_path = {"/slow?" + u.split("?")[1]: i for i, u in url.items()}
    fetched = [by_path[p] for p in h.paths]
    assert sorted(fetched) == sorted(ids)
    window = 1
    head = fetched[:max(1, len(undone) - window)]
    assert set(head) <= undone, (fetched, undone)
    tail = fetched[len(undone) + window:]
    assert not set(tail) & undone, (fetched, undone)


def test_only_and_shards_cover_the_collection_exactly_once(home, tmp_path, clock):
    ids = [f"RePEc:{a}:wpaper:{i}" for a in ("aaa", "bbb") for i in range(15)]
    src = write_amf(tmp_path / "a.xml", *[text(i) for i in ids])
    s = run(home, src, clock=clock, only="RePEc:bbb")
    assert s.records_renewed == 15
    assert all(record_dir(home, i).exists() == i.startswith("RePEc:bbb") for i in ids)
    seen: list[str] = []
    for k in (1, 2, 3):
        clock.advance()
        run(home, src, clock=clock, shard=(k, 3))
        seen += [i for i in ids if (record_dir(home, i) / "00last").exists() and
                 (record_dir(home, i) / "00last").read_text().startswith(str(int(clock())))]
    assert sorted(seen) == sorted(ids)
    assert sum(renewal.shard_of(i, 3) == 1 for i in ids) not in (0, len(ids))


def test_two_shards_run_at_once_and_a_full_run_waits(home, httpserver, tmp_path):
    h = Counting(delay=1.0)
    httpserver.expect_request("/slow").respond_with_handler(h)
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(8)]
    src = write_amf(tmp_path / "a.xml",
                    *[text(i, httpserver.url_for("/slow") + f"?{n}") for n, i in enumerate(ids)])
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                               "--shard", f"{k}/2", "--quiet", str(src)], env=env)
             for k in (1, 2)]
    # Once both shards fetch (each takes the lock shared), a full run is refused.
    deadline = time.monotonic() + 20
    while len(h.paths) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(LockHeld):
        with Lock(home):  # what a full run takes
            pass
    assert [p.wait(60) for p in procs] == [0, 0]
    assert all((record_dir(home, i) / "00last").exists() for i in ids)
    with Lock(home):
        pass


def test_give_up_after_stops_a_dead_link_and_a_record_change_revives_it(home, httpserver,
                                                                       tmp_path, clock):
    set_config(home, give_up_after="1d")
    dead = Counting(b"gone")
    httpserver.expect_request("/dead").respond_with_handler(
        lambda r: (dead(r), Response(b"gone", status=404))[1])
    url = httpserver.url_for("/dead")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    clock.advance(3600)
    run(home, src, clock=clock)  # failing for an hour only: tried again
    assert len(dead.paths) == 2
    clock.advance(2 * 86400)
    s = run(home, src, clock=clock)
    assert len(dead.paths) == 2 and s.given_up == 1
    d = object_dir(home, "RePEc:aaa:wpaper:1", url)
    events = [ln for ln in notes_of(d) if ln.get("event") == "given-up"]
    assert len(events) == 1 and events[0]["full_age"] > 86400
    clock.advance()
    run(home, src, clock=clock)
    assert len(dead.paths) == 2
    assert len([ln for ln in notes_of(d) if ln.get("event") == "given-up"]) == 1  # said once
    clock.advance()
    write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url, extra="<note>new</note>"))
    run(home, src, clock=clock)
    assert len(dead.paths) == 3
    assert notes_of(d)[-2]["event"] == "revived"


def test_per_host_limit_and_delay_between_request_starts(home, httpserver, tmp_path, clock):
    set_config(home, per_host=1, host_delay=0.3, concurrency=8)
    starts, active, peak = [], [0], [0]
    lock = threading.Lock()

    def slow(_request):
        with lock:
            starts.append(time.monotonic())
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Response(b"x")

    httpserver.expect_request("/p").respond_with_handler(slow)
    src = write_amf(tmp_path / "a.xml", *[text(f"RePEc:aaa:wpaper:{i}", httpserver.url_for("/p")
                                              + f"?{i}") for i in range(5)])
    run(home, src, clock=clock)
    assert len(starts) == 5 and peak[0] == 1  # one at a time on this host
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # host_delay spaces Kiel's request starts; the server sees the first one
    # late by its connection setup, so that gap may look a little shorter
    assert min(gaps[1:]) >= 0.28 and gaps[0] >= 0.2, gaps
