"""The renewal engine's guarantees under concurrency, damage and crashes.

Each test is a defect the earlier engine had, reproduced against real local
servers and real files: a record renewed twice, runs that hung when a
shared fetch failed, damaged store files that blocked the run, retries
that slept in a worker, runs that ran out of file descriptors, bodies
larger than the free disk, versions a crash left unnoted, and notes
re-read from their first line at every renewal.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from kiel import notes
from kiel.verify import verify

from kit.cli import renew
from kit.homes import make_home, text, write_amf
from kit.servers import Answer, Site, wait_until


def renewal_lines(rdir: Path) -> list[dict]:
    return [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "renewal"]


def test_a_record_sharing_a_redirecting_page_is_renewed_once(tmp_path, httpserver):
    """Twelve records whose display page is one URL answering 302: each record
    is renewed exactly once (the follow-up job used to be queued before the
    record's count was raised, so a record could finish twice)."""
    httpserver.expect_request("/page").respond_with_data(
        b"", status=302, headers={"Location": httpserver.url_for("/landing")})
    httpserver.expect_request("/landing").respond_with_data(b"<html>x</html>",
                                                            content_type="text/html")
    home = make_home(tmp_path / "h", "per_host = 4\n")
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(12)]
    src = write_amf(tmp_path / "a.xml",
                    *[text(i, display=httpserver.url_for("/page")) for i in ids])
    for n in range(6):
        r = renew(home, str(src))
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "Semaphore" not in r.stderr
        summary = json.loads(sorted(Path(home, "var", "runs").glob("*.json"),
                                    key=os.path.getmtime)[-1].read_text())
        assert summary["records_renewed"] == 12, (n, summary)
        for i in ids:
            assert len(renewal_lines(record_dir_of(home, i))) == n + 1, (n, i)
    assert not [f for f in verify(str(home)) if f.severity == "breach"]


def record_dir_of(home: Path, rid: str) -> Path:
    from kiel.redist import record_path

    return home / "store" / record_path(rid)


@pytest.mark.parametrize("max_time", [None, "1h"])
def test_a_shared_fetch_whose_owner_hits_a_planted_link_releases_its_followers(
        tmp_path, httpserver, max_time):
    """Eight records share one URL; the first record's object directory holds a
    planted symbolic link as ``00notes``. The run ends, every other record is
    renewed, and the damage is reported."""
    httpserver.expect_request("/shared").respond_with_data(b"shared body",
                                                           content_type="text/plain")
    home = make_home(tmp_path / "h", "per_host = 1\nconcurrency = 2\n")
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(8)]
    url = httpserver.url_for("/shared")
    src = write_amf(tmp_path / "a.xml", *[text(i, url) for i in ids])
    from kiel.escape import escape

    odir = record_dir_of(home, ids[0]) / escape(url)
    odir.mkdir(parents=True)
    outside = tmp_path / "outside-notes"
    outside.write_bytes(b"")
    os.symlink(outside, odir / "00notes")
    args = [str(src)] + (["--max-time", max_time] if max_time else [])
    r = renew(home, *args, timeout=60)
    assert r.returncode == 1, r.stderr  # damage in the store needs a person
    assert "a symbolic link" in r.stderr
    assert outside.read_bytes() == b""  # never written through
    for i in ids:
        assert (record_dir_of(home, i) / "00last").exists(), i
    summary = json.loads(sorted(Path(home, "var", "runs").glob("*.json"))[-1].read_text())
    assert summary["records_renewed"] == 8


@pytest.mark.parametrize("max_time", [None, "1h"])
def test_a_shared_fetch_whose_owner_hits_a_full_disk_ends_the_run(tmp_path, httpserver,
                                                                  max_time):
    """The owner of a shared URL cannot write its note: the run stops with 74
    (never hangs, never exits 0), the lock is free, and the next run completes.
    The slow answer lets the other records reach the URL while its owner waits."""

    def slow(_request):
        time.sleep(0.5)
        return Response(b"shared body", content_type="text/plain")

    httpserver.expect_request("/shared").respond_with_handler(slow)
    home = make_home(tmp_path / "h", "per_host = 4\nconcurrency = 4\n")
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(8)]
    src = write_amf(tmp_path / "a.xml", *[text(i, httpserver.url_for("/shared")) for i in ids])
    args = [str(src)] + (["--max-time", max_time] if max_time else [])
    r = renew(home, *args, env={"KIEL_FAULT": "notes.before@1:enospc"}, timeout=60)
    assert r.returncode == 74, (r.returncode, r.stderr)
    assert "No space left on device" in r.stderr
    r = renew(home, str(src), timeout=60)
    assert r.returncode == 0, r.stderr
    for i in ids:
        assert (record_dir_of(home, i) / "00last").exists(), i
    assert not [f for f in verify(str(home)) if f.severity == "breach"]


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_dir(path: Path) -> None:
    path.mkdir()


def _make_device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # like /dev/null


KINDS = {"fifo": (_make_fifo, "a FIFO"), "directory": (_make_dir, "a directory"),
         "device": (_make_device, "a device")}


@pytest.mark.parametrize("where", ["00last", "version", "object-notes", "record-notes"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_damaged_store_file_skips_its_record_and_the_run_goes_on(tmp_path, httpserver,
                                                                    where, kind):
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    httpserver.expect_request("/a").respond_with_data(b"a body", content_type="text/plain")
    home = make_home(tmp_path / "h")
    ids = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2"]
    url = httpserver.url_for("/a")
    src = write_amf(tmp_path / "a.xml", *[text(i, url + f"?{n}") for n, i in enumerate(ids)])
    assert renew(home, str(src)).returncode == 0
    write_amf(tmp_path / "a.xml", *[text(i, url + f"?{n}", extra="<note>v2</note>")
                                    for n, i in enumerate(ids)])
    rdir = record_dir_of(home, ids[0])
    from kiel.escape import escape

    if where == "00last":
        target = rdir / "00last"
    elif where == "version":
        target = rdir / f"{int(time.time()) + 10_000}.amf.xml"  # the newest version
    elif where == "record-notes":
        target = rdir / "00notes"
    else:
        target = rdir / escape(url + "?0") / "00notes"
    if target.exists():
        target.unlink()
    make, words = KINDS[kind]
    make(target)
    r = renew(home, str(src), timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert str(target) in r.stderr and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # the other record was renewed: its new version is there
    other = record_dir_of(home, ids[1])
    assert len([n for n in os.listdir(other) if n.endswith(".amf.xml")]) == 2
    # and the damaged file is as it was
    assert stat.S_IFMT(os.lstat(target).st_mode) != stat.S_IFREG


def test_a_retry_waits_without_holding_a_worker_or_its_host(tmp_path, httpserver):
    """A URL answering 503 with Retry-After: 2 is retried after 2 s; meanwhile
    the objects of another host are fetched (with one worker, a worker
    sleeping on the retry used to hold them all back). The host that asked
    for rest gets it: its own other objects wait (tests/test_scheduling.py)."""
    hits: list[str] = []
    lock = threading.Lock()

    def flaky(request):
        with lock:
            hits.append(request.path)
            first = hits.count("/flaky") == 1
        if first:
            return Response(b"busy", status=503, headers={"Retry-After": "2"})
        return Response(b"ok now", content_type="text/plain")

    def plain(host: str, path: str) -> Answer:
        with lock:
            hits.append(path)
        return 200, [("Content-Type", "text/plain")], b"plain " + path.encode()

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    other = Site(plain)
    try:
        home = make_home(tmp_path / "h", "concurrency = 1\nprocesses = 1\nretries = 1\n"
                         "retry_delay = 0\nretry_after_cap = 5\n")
        src = write_amf(tmp_path / "a.xml",
                        text("RePEc:aaa:wpaper:0", httpserver.url_for("/flaky")),
                        *[text(f"RePEc:aaa:wpaper:{n + 1}", other.url(f"/p{n}"))
                          for n in range(10)])
        r = renew(home, str(src))
    finally:
        other.close()
    assert r.returncode == 0, r.stderr
    assert hits[0] == "/flaky" and hits.count("/flaky") == 2
    # every object of the other host came before the retry
    assert hits[-1] == "/flaky", hits
    odir = [d for d in record_dir_of(home, "RePEc:aaa:wpaper:0").iterdir() if d.is_dir()][0]
    lines = list(notes.entries(str(odir / "00notes")))
    assert [e["status"] for e in lines] == ["503", "200"]
    assert lines[0].get("retried") and lines[1]["attempt"] == 2


def _body_of_path(host: str, path: str) -> Answer:
    return 200, [("Content-Type", "text/plain")], b"body of " + path.encode()


def test_a_run_fits_a_small_open_files_limit(tmp_path):
    """240 objects on 60 origins (keep-alive servers) under ``ulimit -n 128``
    with no room to raise it: the run completes, nothing blamed on the store."""
    servers = [Site(_body_of_path) for _ in range(60)]  # keep-alive, HTTP/1.1
    try:
        home = make_home(tmp_path / "h")
        texts = [text(f"RePEc:aaa:wpaper:{n}",
                      *[f"http://127.0.0.1:{servers[(n * 4 + k) % 60].port}/o{n}-{k}"
                        for k in range(4)]) for n in range(60)]
        src = write_amf(tmp_path / "a.xml", *texts)

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

        r = renew(home, str(src), preexec=limit, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        summary = json.loads(sorted(Path(home, "var", "runs").glob("*.json"))[-1].read_text())
        assert summary["attempts_by_class"] == {"2xx": 240}, summary
    finally:
        for s in servers:
            s.close()


def test_a_body_larger_than_the_free_disk_fails_that_attempt_and_the_archive_goes_on(
        tmp_path, httpserver, mountable):
    httpserver.expect_request("/big").respond_with_data(b"%PDF-1.4\n" + b"x" * 3_000_000,
                                                        content_type="application/pdf")
    httpserver.expect_request("/small").respond_with_data(b"small", content_type="text/plain")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        home = make_home(mnt / "h")
        src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:0", httpserver.url_for("/big")),
                        *[text(f"RePEc:aaa:wpaper:{n}", httpserver.url_for("/small") + f"?{n}")
                          for n in range(1, 6)])
        for _ in range(2):  # every run, not only the first, renews everything
            r = renew(home, str(src))
            assert r.returncode == 0, (r.returncode, r.stderr)
        for n in range(6):
            assert (record_dir_of(home, f"RePEc:aaa:wpaper:{n}") / "00last").exists(), n
        odir = [d for d in record_dir_of(home, "RePEc:aaa:wpaper:0").iterdir() if d.is_dir()][0]
        lines = list(notes.entries(str(odir / "00notes")))
        assert [(e["status"], e["error"]) for e in lines] == [("000", "no-space")] * 2
        assert not list(mnt.rglob(".kiel-tmp-*"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_a_version_a_crash_left_unnoted_is_adopted(tmp_path):
    """SIGKILL between writing a version and noting it: the next renewal names
    the version in the notes (with its sha256), so verify and fixity cover it."""
    home = make_home(tmp_path / "h")
    rid = "RePEc:aaa:wpaper:1"
    src = write_amf(tmp_path / "a.xml", text(rid))
    r = renew(home, str(src), env={"KIEL_FAULT": "publish.linked@1"})
    assert r.returncode == -9
    rdir = record_dir_of(home, rid)
    (v1,) = [n for n in os.listdir(rdir) if n.endswith(".amf.xml")]
    time.sleep(1.1)
    write_amf(tmp_path / "a.xml", text(rid, extra="<note>second</note>"))
    r = renew(home, str(src))
    assert r.returncode == 0, r.stderr
    adopted = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "adopted"]
    assert [e["version"] for e in adopted] == [v1]
    assert len(adopted[0]["version_sha256"]) == 64
    assert not [f for f in verify(str(home), fixity=True) if f.severity == "breach"]
    # fixity covers the adopted version: a flipped byte is found
    data = bytearray((rdir / v1).read_bytes())
    data[-3] ^= 1
    (rdir / v1).write_bytes(bytes(data))
    found = [f for f in verify(str(home), fixity=True) if f.severity == "breach"]
    assert any(v1 in str(f) for f in found), found


def _read_bytes_of_renewal(home: Path, src: Path) -> int:
    """Bytes the renewal process read (``rchar`` of /proc/<pid>/io)."""
    code = ("import sys, runpy; sys.argv = ['kiel', 'renew', '--home', sys.argv[1], "
            "'--no-progress', '--quiet', sys.argv[2]];\n"
            "try:\n    runpy.run_module('kiel', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
            "print(io['rchar'], code)")
    r = subprocess.run([sys.executable, "-c", code, str(home), str(src)], capture_output=True,
                       text=True, timeout=120)
    rchar, status = r.stdout.split()[-2:]
    assert status in ("0", "None"), r.stderr
    return int(rchar)


def test_a_renewal_reads_the_end_of_the_notes_not_the_whole_history(tmp_path, httpserver):
    """Ten years of nightly attempts (3 650 lines, about 2 MB here) cost a
    renewal no more reading than one night's."""
    httpserver.expect_request("/a").respond_with_data(
        b"body", content_type="text/plain", headers={"ETag": '"v1"'})
    home = make_home(tmp_path / "h")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", httpserver.url_for("/a")))
    assert renew(home, str(src)).returncode == 0
    odir = [d for d in record_dir_of(home, "RePEc:aaa:wpaper:1").iterdir() if d.is_dir()][0]
    before = _read_bytes_of_renewal(home, src)
    # Prepend ten years of history: older lines than any real one.
    first = (odir / "00notes").read_bytes()
    line = json.loads(first.splitlines()[0])
    old = []
    for day in range(3650):
        e = dict(line, tist=line["tist"] - (3650 - day) * 86400, file=None, status="000",
                 error="timeout", detail="x" * 400)
        old.append(json.dumps(e).encode() + b"\n")
    (odir / "00notes").write_bytes(b"".join(old) + first)
    assert (odir / "00notes").stat().st_size > 1_500_000
    after = _read_bytes_of_renewal(home, src)
    assert after - before < 200_000, (before, after)
    # and the renewal still used what the newest lines say: a conditional GET
    last = list(notes.entries(str(odir / "00notes")))[-1]
    assert last["status"] in ("200", "304")


def test_a_body_equal_to_an_earlier_one_links_to_it(home, httpserver, tmp_path, clock):
    """A, then B, then A again: the third body is a link to the first file,
    though the renewal reads only the newest lines of the notes."""
    from kit.homes import object_dir, run

    bodies = [b"version A " * 50, b"version B " * 50, b"version A " * 50]
    url = httpserver.url_for("/flip")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    names = []
    for body in bodies:
        httpserver.clear()
        httpserver.expect_request("/flip").respond_with_data(body, content_type="text/plain")
        run(home, src, clock=clock)
        clock.advance(86400)
        d = object_dir(home, "RePEc:aaa:wpaper:1", url)
        names = sorted(n for n in os.listdir(d) if n[0] != "0")
    first, second, third = names
    assert not os.path.islink(d / first) and not os.path.islink(d / second)
    assert os.readlink(d / third) == first


def test_a_new_object_directory_appears_whole_or_not_at_all(tmp_path, httpserver):
    """A new object directory is built under a hidden name and renamed into
    place complete (00url, the body, 00notes). A SIGKILL just before the
    rename leaves only the hidden directory, which the next run removes; the
    record's objects then appear whole."""
    httpserver.expect_request("/a.pdf").respond_with_data(b"%PDF-1.4 a",
                                                         content_type="application/pdf")
    httpserver.expect_request("/b.pdf").respond_with_data(b"%PDF-1.4 b",
                                                         content_type="application/pdf")
    home = make_home(tmp_path / "h")
    rid = "RePEc:aaa:wpaper:1"
    src = write_amf(tmp_path / "a.xml", text(rid, httpserver.url_for("/a.pdf"),
                                             httpserver.url_for("/b.pdf")))
    r = renew(home, str(src), env={"KIEL_FAULT": "objdir.built@2"})
    assert r.returncode == -9, r.stderr
    rdir = record_dir_of(home, rid)
    hidden = [n for n in os.listdir(rdir) if n.startswith(".kiel-tmp-")]
    objects = [n for n in os.listdir(rdir) if (rdir / n).is_dir() and n not in hidden]
    assert len(hidden) == 1 and (rdir / hidden[0]).is_dir()
    assert sorted(os.listdir(rdir / hidden[0]))[:2] == ["00notes", "00url"]
    for n in objects:  # the one renamed before the kill is complete
        names = os.listdir(rdir / n)
        assert "00url" in names and "00notes" in names and len(names) == 3, names
    # The worker processes die with the run's parent, a moment after it: until
    # then, verify rightly reads the hidden directory as being written.
    assert wait_until(lambda: "in-flight" not in [f.kind for f in verify(str(home))], 10)
    assert [f.kind for f in verify(str(home))].count("tmp-leftover") >= 1
    r = renew(home, str(src))
    assert r.returncode == 0, r.stderr
    assert not [n for n in os.listdir(rdir) if n.startswith(".kiel-tmp-")]
    assert len([n for n in os.listdir(rdir) if (rdir / n).is_dir()]) == 2
    assert not [f for f in verify(str(home)) if f.severity == "breach"]


def test_verify_repair_removes_a_hidden_directory_a_crash_left(tmp_path, httpserver):
    httpserver.expect_request("/a.pdf").respond_with_data(b"%PDF-1.4 a",
                                                         content_type="application/pdf")
    home = make_home(tmp_path / "h")
    rid = "RePEc:aaa:wpaper:1"
    src = write_amf(tmp_path / "a.xml", text(rid, httpserver.url_for("/a.pdf")))
    assert renew(home, str(src), env={"KIEL_FAULT": "objdir.built@1"}).returncode == -9
    rdir = record_dir_of(home, rid)
    (hidden,) = [n for n in os.listdir(rdir) if n.startswith(".kiel-tmp-")]
    r = subprocess.run([sys.executable, "-m", "kiel", "verify", "--home", str(home), "--repair"],
                       capture_output=True, text=True)
    assert not (rdir / hidden).exists(), r.stdout + r.stderr
