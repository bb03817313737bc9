"""Full disks, read-only stores and planted links: nothing is lost or leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiel import notes
from kiel.verify import verify

from kit.cli import renew
from kit.homes import make_home, record_dir, run, text, write_amf


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and "var" not in p.relative_to(root).parts:
            out[str(p.relative_to(root))] = p.read_bytes()
        elif p.is_symlink():
            out[str(p.relative_to(root))] = os.readlink(p).encode()
    return out


@pytest.fixture
def site(httpserver):
    httpserver.expect_request("/a.pdf").respond_with_data(b"%PDF-1.4\n" + b"a" * 200_000,
                                                          content_type="application/pdf")
    httpserver.expect_request("/b.html").respond_with_data(b"<html>b</html>",
                                                           content_type="text/html")
    return httpserver


# Where mounting is refused, the injected-ENOSPC test below covers the same steps.
def test_real_full_disk_stops_cleanly_and_the_next_run_completes(tmp_path, site, mountable):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], check=True)
    try:
        home = mnt / "home"
        make_home(home)
        src = write_amf(tmp_path / "in" / "a.xml",
                        text("RePEc:aaa:wpaper:0", site.url_for("/b.html")))
        assert renew(home, str(src)).returncode == 0
        before = files_of(home)
        many = [text(f"RePEc:aaa:wpaper:{i}", site.url_for("/a.pdf") + f"?{i}",
                     display=site.url_for("/b.html")) for i in range(8)]
        write_amf(tmp_path / "in" / "a.xml", *many)
        r = renew(home, str(src))
        assert r.returncode == 74, (r.returncode, r.stdout, r.stderr)
        assert "No space left on device" in r.stderr and "the run stopped" in r.stderr
        after = files_of(home)
        for rel, data in before.items():
            if not rel.endswith(("00last", "00notes")):
                assert after[rel] == data, rel
        # nothing half-written under a final name: every final body is complete
        for p in (home / "store").rglob("*_200_application-pdf"):
            assert p.stat().st_size == 200_009, p
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        r = renew(home, str(src))
        assert r.returncode == 0, r.stderr
        assert all((record_dir_of(home, f"RePEc:aaa:wpaper:{i}") / "00last").exists()
                   for i in range(8))
        breaches = [str(f) for f in verify(str(home)) if f.kind != "notes-torn"]
        assert not breaches, breaches
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def record_dir_of(home: Path, rid: str) -> Path:
    from kiel.redist import record_path
    return home / "store" / record_path(rid)


STEPS = ["write.tmp@1", "publish.before@1", "publish.linked@1", "symlink.before@1",
         "replace.tmp@1", "notes.before@1", "notes.before@3"]


@pytest.mark.parametrize("step", ["body.chunk@1", "body.chunk@2"])
def test_injected_enospc_in_a_body_fails_that_attempt_only(tmp_path, site, step):
    """A body that does not fit is a 000 no-space attempt; the run goes on."""
    home = tmp_path / "home"
    make_home(home)
    src = write_amf(tmp_path / "in" / "a.xml",
                    text("RePEc:aaa:wpaper:1", site.url_for("/a.pdf"),
                         display=site.url_for("/b.html")),
                    text("RePEc:aaa:wpaper:2", site.url_for("/a.pdf") + "?2"))
    r = renew(home, str(src), "--quiet", env={"KIEL_FAULT": f"{step}:enospc"})
    assert r.returncode == 0, (step, r.returncode, r.stderr)
    found = [e for p in (home / "store").rglob("00notes") for e in notes.entries(str(p))
             if e.get("error") == "no-space"]
    assert len(found) == 1 and found[0]["status"] == "000", found
    assert found[0]["file"].endswith("_000_none")
    for i in (1, 2):
        assert (record_dir_of(home, f"RePEc:aaa:wpaper:{i}") / "00last").exists()
    assert not list((home / "store").rglob(".kiel-tmp-*"))
    breaches = [str(f) for f in verify(str(home)) if f.kind != "notes-torn"]
    assert not breaches, (step, breaches)


@pytest.mark.parametrize("step", STEPS)
def test_injected_enospc_at_each_write_step(tmp_path, site, step):
    home = tmp_path / "home"
    make_home(home)
    src = write_amf(tmp_path / "in" / "a.xml",
                    text("RePEc:aaa:wpaper:1", site.url_for("/a.pdf"),
                         display=site.url_for("/b.html")))
    assert renew(home, str(src)).returncode == 0
    before = files_of(home)
    write_amf(tmp_path / "in" / "a.xml",
              text("RePEc:aaa:wpaper:1", site.url_for("/a.pdf"), display=site.url_for("/b.html"),
                   extra="<note>changed</note>"),
              text("RePEc:aaa:wpaper:2", site.url_for("/a.pdf") + "?2"))
    r = renew(home, str(src), env={"KIEL_FAULT": f"{step}:enospc"})
    assert r.returncode == 74, (step, r.returncode, r.stderr)
    assert "No space left on device (injected" in r.stderr
    after = files_of(home)
    for rel, data in before.items():
        if not rel.endswith(("00last", "00notes")):
            assert after[rel] == data, (step, rel)
        else:
            assert after[rel].startswith(data) or rel.endswith("00last"), (step, rel)
    r = renew(home, str(src))
    assert r.returncode == 0, (step, r.stderr)
    assert not list((home / "store").rglob(".kiel-tmp-*"))
    breaches = [str(f) for f in verify(str(home)) if f.kind != "notes-torn"]
    assert not breaches, (step, breaches)


def test_planted_link_pointing_outside_is_never_written_through(home, tmp_path, site, clock):
    outside = tmp_path / "outside"
    outside.mkdir()
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", site.url_for("/b.html")))
    # an attacker (or a mistake) plants a link where a record directory would go
    (Path(home.store) / "RePEc" / "aaa").mkdir(parents=True)
    os.symlink(outside, Path(home.store) / "RePEc" / "aaa" / "wpaper")
    s = run(home, src, clock=clock)
    assert list(outside.iterdir()) == []
    assert s.records_renewed == 0
    assert any("outside the store" in p for p in s.problems)


def test_planted_link_as_object_file_name_is_not_followed(home, tmp_path, site, clock):
    from kiel.escape import escape
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", site.url_for("/b.html")))
    run(home, src, clock=clock)
    odir = record_dir(home, "RePEc:aaa:wpaper:1") / escape(site.url_for("/b.html"))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.unlink(odir / "00notes")
    os.symlink(victim, odir / "00notes")
    clock.advance()
    s = run(home, src, clock=clock)
    assert victim.read_text() == "precious"
    # reported and skipped; the run goes on, and exits 1: damage needs a person
    assert s.exit_status == 1 and s.interrupted is None and s.damaged == 1
    assert any("symbolic link" in p for p in s.problems)


# A read-only mount: root can write anything else.
def test_read_only_store_fails_cleanly(tmp_path, site, mountable):
    home = tmp_path / "home"
    make_home(home)
    src = write_amf(tmp_path / "in" / "a.xml", text("RePEc:aaa:wpaper:1", site.url_for("/b.html")))
    assert renew(home, str(src)).returncode == 0
    before = files_of(home)
    write_amf(tmp_path / "in" / "a.xml", text("RePEc:aaa:wpaper:1", site.url_for("/b.html"),
                                              extra="<x/>"))
    subprocess.run(["mount", "--bind", str(home / "store"), str(home / "store")], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(home / "store")], check=True)
        r = renew(home, str(src))
        assert r.returncode == 74, (r.returncode, r.stderr)
        assert "Read-only file system" in r.stderr
    finally:
        subprocess.run(["umount", str(home / "store")], check=True)
    assert files_of(home) == {**before, **{k: v for k, v in files_of(home).items()
                                           if k.startswith("var")}}


def test_a_full_disk_while_scanning_or_indexing_is_exit_74_with_a_message(tmp_path, mountable):
    """The run's work files (the scan's sort) and the OAI-PMH index live in
    var/: a full disk there is the store's trouble (74, one clear line), never
    a traceback read as input errors (1)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], check=True)
    try:
        home = mnt / "home"
        make_home(home)
        # records enough for the scan to spill a 1 MiB chunk of its sort to var/
        abstract = "<abstract>" + "x" * 2000 + "</abstract>"
        src = write_amf(tmp_path / "in" / "a.xml",
                        *[text(f"RePEc:aaa:wpaper:{i}", extra=abstract) for i in range(800)])
        filler = mnt / "filler"
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler.write_bytes(b"\0" * (free - 256 * 1024))
        r = renew(home, str(src))
        assert r.returncode == 74, (r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
        assert "cannot write the run's work files" in r.stderr
        assert "No space left on device" in r.stderr
        assert not list((home / "store").rglob("*.amf.xml"))  # nothing half done
        # room for the store, then none for the index
        filler.unlink()
        assert renew(home, str(src)).returncode == 0
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler.write_bytes(b"\0" * (free - 8 * 1024))
        r = subprocess.run([sys.executable, "-m", "kiel", "oai", "index", "--rebuild",
                            "--home", str(home)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 74, (r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and "No space left on device" in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_a_run_stopped_by_a_completely_full_disk_says_so_and_the_next_repairs(
        tmp_path, httpserver, mountable):
    """The summary and the log say how the run ended (room for them is reserved
    at its start), and the next run says it repaired what the stopped one left."""
    import json

    from werkzeug import Response

    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    filler = mnt / "filler"
    full = []

    def fill_then_answer(_request):
        if not full:  # the first run has started (its reserve is taken): fill the disk
            with open(filler, "ab") as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
                except OSError as e:
                    full.append((e.strerror, os.statvfs(mnt).f_bavail))
        return Response(b"%PDF-1.4\n" + b"a" * 50_000, content_type="application/pdf")

    httpserver.expect_request("/a.pdf").respond_with_handler(fill_then_answer)
    try:
        home = mnt / "home"
        make_home(home)
        src = write_amf(tmp_path / "in" / "a.xml",
                        text("RePEc:aaa:wpaper:1", httpserver.url_for("/a.pdf")))
        r = renew(home, "--quiet", str(src))
        assert full == [("No space left on device", 0)]
        assert r.returncode == 74, (r.returncode, r.stderr)
        (summary_file,) = (home / "var" / "runs").glob("*.json")
        summary = json.loads(summary_file.read_text())
        failure = summary["failure"]
        assert "No space left on device; the run stopped, nothing already stored was " \
               "touched; the records it left in flight are reported by 'kiel verify' until " \
               "the next run repairs them" in failure
        assert r.stderr == f"Error: {failure}\n"
        assert summary["exit_status"] == 74 and summary["problems"] == [failure]
        assert summary["records_found"] == 1 and summary["skipped"] == {"run_failed": 1}
        (log,) = (home / "var" / "log").glob("*.log")
        lines = log.read_text().splitlines()
        assert lines[-2].endswith(f" renewal failed (exit 74): {failure}")
        assert '"exit_status": 74' in lines[-1] and " renewal ends: " in lines[-1]
        assert not list((home / "var").glob("reserve-*"))  # freed for these
        breaches = [f for f in verify(str(home)) if f.kind != "notes-torn"]
        assert breaches
        filler.unlink()
        r = renew(home, "--quiet", str(src))
        assert (r.returncode, r.stderr) == (0, (
            "repair: 1 records left in flight by a run that stopped (a full disk, a crash) "
            "were checked and repaired; 'kiel verify' reports them no more\n"))
        assert not [f for f in verify(str(home)) if f.kind != "notes-torn"]
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_a_reserve_left_by_a_killed_run_is_removed_by_the_next_on_its_host(tmp_path):
    import socket

    home = make_home(tmp_path / "h")
    host = socket.gethostname().replace("-", "_")
    p = subprocess.Popen(["true"])
    p.wait()  # a process id that has ended
    stale = home / "var" / f"reserve-{host}-{p.pid}"
    other = home / "var" / f"reserve-elsewhere-{p.pid}"  # another machine's run: not ours
    stale.write_bytes(b"\0" * 16384)
    other.write_bytes(b"\0" * 16384)
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"))
    assert renew(home, str(src)).returncode == 0
    assert sorted(f.name for f in (home / "var").glob("reserve-*")) == [other.name]
