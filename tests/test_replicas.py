"""Replicas against real rsync daemons on 127.0.0.1: a front and two backs.

The front is a home renewed over several nights from a local HTTP server;
the backs are two modules of an rsync daemon the test starts. Every copy is
read back from disk: its bytes, its links, its inodes and times.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiel import home as home_mod

from kit.homes import Clock, run, set_config, text, write_amf
from kit.servers import wait_until

TIMEOUT = 120
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PDF2 = b"%PDF-1.5\n" + bytes(range(255, -1, -1)) * 40 + b"\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><head><title>t</title></head><body>page</body></html>\n"

# Outside CI a machine without rsync skips these tests; in CI (CI=true, where
# scripts/setup-env installs rsync) they run and a missing rsync fails them.
pytestmark = pytest.mark.skipif(shutil.which("rsync") is None and not os.environ.get("CI"),
                                reason="rsync is missing (scripts/setup-env installs it)")


def free_port() -> int:
    # An rsync daemon takes no port 0: a port the kernel just gave out is free.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    port: int
    backs: dict[str, Path]  # module -> its directory
    proc: subprocess.Popen[bytes] | None = None
    conf: Path | None = None

    def url(self, module: str) -> str:
        return f"rsync://127.0.0.1:{self.port}/{module}"

    def start(self) -> None:
        assert self.conf is not None
        self.proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={self.conf}",
                                      f"--port={self.port}", "--address=127.0.0.1"])
        proc = self.proc

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        if not wait_until(lambda: proc.poll() is not None or listening(), timeout=10) \
                or proc.poll() is not None:
            raise RuntimeError("the rsync daemon did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    backs = {"b1": tmp_path / "back1", "b2": tmp_path / "back2"}
    for back in backs.values():
        back.mkdir()
    conf = tmp_path / "rsyncd.conf"
    lines = [f"pid file = {tmp_path / 'rsyncd.pid'}", "use chroot = no", "munge symlinks = no",
             "read only = no", "uid = root", "gid = root", f"log file = {tmp_path / 'rsyncd.log'}"]
    for name, back in backs.items():
        lines += [f"[{name}]", f"path = {back}"]
    conf.write_text("\n".join(lines) + "\n")
    d = Daemon(free_port(), backs, conf=conf)
    d.start()
    yield d
    d.stop()


def kiel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiel", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, **(env or {})})


def tree(root: Path, top: tuple[str, ...] = ("etc", "store", "var/runs")) -> dict[str, object]:
    """Every file and link under ``top``: its bytes, or ('link', target)."""
    out: dict[str, object] = {}
    for t in top:
        base = root / t
        for dirpath, dirs, files in os.walk(base):
            for n in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                p = Path(dirpath) / n
                rel = str(p.relative_to(root))
                out[rel] = ("link", os.readlink(p)) if p.is_symlink() else p.read_bytes()
    if (root / "var" / "branches-in-use.xml").exists():
        out["var/branches-in-use.xml"] = (root / "var" / "branches-in-use.xml").read_bytes()
    return out


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file and link under ``root``."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files + dirs:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not os.path.isdir(p) or os.path.islink(p):
                out[os.path.relpath(p, root)] = (st.st_ino, st.st_mtime_ns)
    return out


@dataclass
class Site:
    home: home_mod.Home
    src: Path
    clock: Clock
    ids: tuple[str, ...]


@pytest.fixture
def site(home: home_mod.Home, httpserver, tmp_path: Path) -> Site:
    """A front renewed over three nights: versions, bodies, links to equal
    earlier bodies, a body that changed, a 404."""
    bodies = {"/a.pdf": PDF, "/b.pdf": PDF2, "/page": HTML}
    for path, body in bodies.items():
        httpserver.expect_request(path).respond_with_data(body, content_type="application/pdf")
    httpserver.expect_request("/missing.pdf").respond_with_data(b"no", status=404)
    a, b, page, miss = (httpserver.url_for(p) for p in ("/a.pdf", "/b.pdf", "/page",
                                                          "/missing.pdf"))
    clock = Clock()
    src = tmp_path / "in" / "records.xml"
    ids = ("RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "other-3")
    write_amf(src, text(ids[0], a, display=page), text(ids[1], b, miss), text(ids[2], a))
    run(home, src, clock=clock)
    clock.advance(86400)
    write_amf(src, text(ids[0], a, b, display=page), text(ids[1], b, miss), text(ids[2], a))
    run(home, src, clock=clock)
    clock.advance(86400)
    httpserver.clear()
    for path, body in {"/a.pdf": PDF2, "/b.pdf": PDF2, "/page": HTML}.items():
        httpserver.expect_request(path).respond_with_data(body, content_type="application/pdf")
    httpserver.expect_request("/missing.pdf").respond_with_data(b"no", status=404)
    run(home, src, clock=clock)
    return Site(home, src, clock, ids)


def configure(h: home_mod.Home, *replicas: str) -> None:
    set_config(h, replicas=" ".join(replicas))


# --- the setting ------------------------------------------------------------------

def test_the_setting_takes_daemons_and_ssh_destinations_and_names_a_wrong_one(home):
    from kiel.errors import ConfigError

    configure(home, "rsync://back1.example.org/kiel", "rsync://[::1]:8730/kiel/sub/dir",
              "kiel@back2.example.org:/srv/kiel", "back3:kiel")
    rs = home.config().replicas
    assert [(r.spec, r.daemon) for r in rs] == [
        ("rsync://back1.example.org/kiel", True), ("rsync://[::1]:8730/kiel/sub/dir", True),
        ("kiel@back2.example.org:/srv/kiel", False), ("back3:kiel", False)]
    assert [r.url("store/x") for r in rs] == [
        "rsync://back1.example.org/kiel/store/x", "rsync://[::1]:8730/kiel/sub/dir/store/x",
        "kiel@back2.example.org:/srv/kiel/store/x", "back3:kiel/store/x"]
    for wrong in ("/srv/local/path", "back::module", "rsync://host", "ftp://h/x"):
        set_config(home, replicas=wrong)
        with pytest.raises(ConfigError) as e:
            home.config()
        assert f"replicas = {wrong!r}: {wrong!r} is not a replica; write rsync://" in str(e.value)
    assert "# replicas = " in (Path(home.conf).read_text())


def test_the_ssh_form_runs_rsync_over_the_remote_shell(site, tmp_path):
    """No sshd here: RSYNC_RSH names a remote shell that runs the command on
    this machine, so rsync's own remote-shell transport is what is tested
    (the command line rsync builds for ssh, the server it starts)."""
    back = tmp_path / "ssh-back"
    back.mkdir()
    rsh = tmp_path / "rsh"
    log = tmp_path / "rsh.log"
    rsh.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nshift\nexec \"$@\"\n")
    rsh.chmod(0o755)
    configure(site.home, f"backhost:{back}")
    r = kiel("replicate", "--home", site.home.root, env={"RSYNC_RSH": str(rsh)})
    assert (r.returncode, r.stderr) == (0, "")
    assert tree(back) == tree(Path(site.home.root))
    assert log.read_text().startswith("backhost rsync --server")


# --- replicate --------------------------------------------------------------------

def test_replicate_copies_the_home_links_as_links_and_nothing_private(site, daemon):
    h = site.home
    front = Path(h.root)
    configure(h, daemon.url("b1"), daemon.url("b2"))
    (front / "var" / "log").mkdir(exist_ok=True)
    r = kiel("replicate", "--home", h.root)
    assert r.returncode == 0, r.stderr
    want = tree(front)
    assert r.stdout.splitlines() == [f"{daemon.url(b)}: up to date, {len(want)} files sent"
                                     for b in ("b1", "b2")]
    assert any(v[0] == "link" for v in want.values() if isinstance(v, tuple))
    for back in daemon.backs.values():
        assert tree(back) == want
        # locks, logs and work files stay on the front
        assert sorted(os.listdir(back / "var")) == ["branches-in-use.xml", "runs"]
        assert not list(back.rglob(".*"))
    # A second run sends nothing and touches nothing.
    before = {n: stamps(b) for n, b in daemon.backs.items()}
    r = kiel("replicate", "--home", h.root, "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert {n: stamps(b) for n, b in daemon.backs.items()} == before


def test_replicate_sends_only_the_night_and_never_deletes(site, daemon):
    h = site.home
    configure(h, daemon.url("b1"), daemon.url("b2"))
    assert kiel("replicate", "--home", h.root).returncode == 0
    b1 = daemon.backs["b1"]
    planted = b1 / "store" / "planted"
    planted.write_bytes(b"only on the back\n")
    site.clock.advance(86400)
    run(h, site.src, clock=site.clock)
    r = kiel("replicate", "--home", h.root)
    assert r.returncode == 0, r.stderr
    assert tree(b1) == {**tree(Path(h.root)), "store/planted": b"only on the back\n"}
    assert tree(daemon.backs["b2"]) == tree(Path(h.root))


def test_a_body_damaged_on_the_front_never_travels_to_the_backs(site, daemon):
    h = site.home
    configure(h, daemon.url("b1"))
    assert kiel("replicate", "--home", h.root).returncode == 0
    body = bodies(Path(h.root))[0]
    good = body.read_bytes()
    with open(body, "r+b") as f:
        f.truncate(100)
    r = kiel("replicate", "--home", h.root)
    assert r.returncode == 0, r.stderr
    rel = body.relative_to(h.root)
    assert (daemon.backs["b1"] / rel).read_bytes() == good


def bodies(root: Path) -> list[Path]:
    """The regular attempt files of 200 answers under ``root``, sorted."""
    return sorted(p for p in (root / "store").rglob("*_200_*")
                  if p.is_file() and not p.is_symlink())


def test_a_replica_down_is_an_alert_after_the_other_was_done(site, daemon):
    h = site.home
    down = f"rsync://127.0.0.1:{free_port()}/b1"
    configure(h, down, daemon.url("b2"), daemon.url("nomodule"))
    r = kiel("replicate", "--home", h.root, "--quiet")
    assert r.returncode == 69
    assert r.stdout == ""
    alerts = r.stderr.splitlines()
    assert len(alerts) == 2
    assert alerts[0].startswith(f"alert: replica {down} unreachable: rsync: [sender] failed to "
                                "connect to 127.0.0.1 (127.0.0.1): Connection refused")
    assert alerts[1].startswith(f"alert: replica {daemon.url('nomodule')} unreachable: "
                                "@ERROR: Unknown module 'nomodule'")
    assert tree(daemon.backs["b2"]) == tree(Path(h.root))


def test_replicate_refuses_while_a_renewal_runs(site, daemon):
    configure(site.home, daemon.url("b1"))
    with home_mod.Lock(site.home):
        r = kiel("replicate", "--home", site.home.root)
    assert r.returncode == 75
    assert "another renewal holds" in r.stderr and "renew.lock" in r.stderr
    assert not (daemon.backs["b1"] / "store").exists()


def test_a_replicate_killed_half_way_leaves_no_partial_file_and_the_next_completes_it(
        site, daemon):
    h = site.home
    configure(h, daemon.url("b1"))
    assert kiel("replicate", "--home", h.root).returncode == 0
    # A big run summary stands for any big new file: 3 MB at 1000 KiB/s.
    big = Path(h.root) / "var" / "runs" / "1800000000.json"
    big.write_bytes(os.urandom(3_000_000))
    back = daemon.backs["b1"] / "var" / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "kiel", "replicate", "--home", h.root,
                             "--bwlimit", "1000"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The big file arriving on the back under rsync's hidden temporary name.
    assert wait_until(lambda: proc.poll() is not None or any(
        p.name.startswith(".") and p.stat().st_size > 200_000 for p in back.iterdir()))
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)  # the front dies: kiel and its rsync at once
    proc.wait(10)
    # The daemon's receiver sees the connection end and keeps what arrived aside.
    assert wait_until((back / ".kiel-partial" / big.name).exists)
    assert not (back / big.name).exists()
    partial = (back / ".kiel-partial" / big.name).stat().st_size
    assert 0 < partial < 3_000_000
    r = kiel("replicate", "--home", h.root)
    assert r.returncode == 0, r.stderr
    assert (back / big.name).read_bytes() == big.read_bytes()
    assert not (back / ".kiel-partial").exists()
    assert tree(daemon.backs["b1"]) == tree(Path(h.root))


# --- audit and repair -------------------------------------------------------------

@pytest.fixture
def three(site, daemon) -> Site:
    """The front and two backs, all up to date."""
    configure(site.home, daemon.url("b1"), daemon.url("b2"))
    r = kiel("replicate", "--home", site.home.root)
    assert r.returncode == 0, r.stderr
    return site


def everything(daemon: Daemon, front: Path) -> dict[str, dict[str, object]]:
    return {"front": tree(front), **{n: tree(b) for n, b in daemon.backs.items()}}


def all_stamps(daemon: Daemon, front: Path) -> dict[str, dict[str, tuple[int, int]]]:
    return {"front": stamps(front / "store"),
            **{n: stamps(b / "store") for n, b in daemon.backs.items()}}


def damaged_dir(root: Path) -> Path:
    (d,) = (root / "var" / "damaged").iterdir()
    return d


def test_audit_of_agreeing_copies_says_so_and_changes_nothing(three, daemon):
    h = three.home
    front = Path(h.root)
    before = all_stamps(daemon, front)
    r = kiel("audit", "--home", h.root)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"audit: front, {daemon.url('b1')}, {daemon.url('b2')}: all copies agree\n"
    r = kiel("audit", "--home", h.root, "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert all_stamps(daemon, front) == before
    assert not (front / "var" / "damaged").exists()
    assert [n for n in os.listdir(front / "var") if n.startswith("audit-")] == []


def test_audit_finds_each_damage_and_repair_restores_it_from_the_copies_that_agree(
        three, daemon):
    h = three.home
    front = Path(h.root)
    b1, b2 = daemon.backs["b1"], daemon.backs["b2"]
    u1, u2 = daemon.url("b1"), daemon.url("b2")
    good = everything(daemon, front)
    assert good["front"] == good["b1"] == good["b2"]
    regular = [p.relative_to(front) for p in bodies(front)]
    links = sorted(p.relative_to(front) for p in (front / "store").rglob("*_200_*")
                   if p.is_symlink())
    versions = sorted(p.relative_to(front) for p in (front / "store").rglob("*.amf.xml"))
    flipped, truncated, version, link = regular[0], regular[1], versions[0], links[0]

    # A byte flipped on b1, its size and time kept.
    p = b1 / flipped
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    # A version deleted on b2.
    (b2 / version).unlink()
    # A body truncated on the front.
    with open(front / truncated, "r+b") as f:
        f.truncate(10)
    # A link replaced on b2 by a regular file with the bytes it pointed to.
    target = b2 / link
    content = target.read_bytes()
    target.unlink()
    target.write_bytes(content)

    before = all_stamps(daemon, front)
    lines = [
        f"{flipped}: agree front, {u2}; differ {u1} (matches its notes)",
        f"{link}: agree front, {u1}; differ {u2} (matches its notes)",
        f"{truncated}: agree {u1}, {u2}; differ front (matches its notes)",
        f"{version}: agree front, {u1}; lack {u2} (matches its notes)",
    ]
    r = kiel("audit", "--home", h.root)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == sorted(lines, key=lambda x: x.split(": agree")[0]) + [
        f"audit: front, {u1}, {u2}: 4 paths diverge"]
    assert all_stamps(daemon, front) == before  # a plain audit changes nothing

    r = kiel("audit", "--home", h.root, "--repair", "--quiet")
    assert r.returncode == 1, r.stderr
    kept = damaged_dir(front).relative_to(front)
    assert damaged_dir(b1).relative_to(b1) == kept == damaged_dir(b2).relative_to(b2)
    repairs = sorted([
        f"{flipped}: restored on {u1}, damaged copy kept as {kept / flipped}",
        f"{link}: restored on {u2}, damaged copy kept as {kept / link}",
        f"{truncated}: restored on front, damaged copy kept as {kept / truncated}",
        f"{version}: restored on {u2}",
    ], key=lambda x: x.split(": restored")[0])
    out = r.stdout.splitlines()
    assert out[:4] == sorted(lines, key=lambda x: x.split(": agree")[0])
    assert out[4:] == repairs
    # Every copy holds again what it held before the damage, byte for byte and link for link.
    assert everything(daemon, front) == good
    # The damaged copies, kept aside on the machine that held each.
    assert (b1 / kept / flipped).read_bytes() == bytes(data)
    assert (front / kept / truncated).read_bytes() == good["front"][str(truncated)][:10]
    assert not (b2 / kept / link).is_symlink()
    assert (b2 / kept / link).read_bytes() == content
    assert sorted(str(p.relative_to(b2 / kept)) for p in (b2 / kept).rglob("*")
                  if not p.is_dir()) == [str(link)]
    # Untouched files keep their inode and time; the repaired ones are the only news.
    after = all_stamps(daemon, front)
    touched = {"front": {str(truncated)}, "b1": {str(flipped)}, "b2": {str(link), str(version)}}
    for copy, names in touched.items():
        for name in names:
            before[copy].pop(name.removeprefix("store/"), None)
            after[copy].pop(name.removeprefix("store/"), None)
    assert after == before
    r = kiel("audit", "--home", h.root)
    assert (r.returncode, r.stdout) == (0, f"audit: front, {u1}, {u2}: all copies agree\n")


def test_three_disagreeing_copies_are_named_for_a_person_and_left_alone(three, daemon):
    h = three.home
    front = Path(h.root)
    b1, b2 = daemon.backs["b1"], daemon.backs["b2"]
    u1, u2 = daemon.url("b1"), daemon.url("b2")
    # A file no notes witness: three contents, or two and a copy missing.
    urls = sorted(p.relative_to(front) for p in (front / "store").rglob("00url"))
    three_ways, two_ways, majority = urls[0], urls[1], urls[2]
    for root, tag in ((front, b"front"), (b1, b"b1"), (b2, b"b2")):
        (root / three_ways).write_bytes(b"http://" + tag + b"/\n")
    (b1 / two_ways).write_bytes(b"http://elsewhere/\n")
    (b2 / two_ways).unlink()
    (front / majority).write_bytes(b"http://damaged/\n")
    held = everything(daemon, front)
    r = kiel("audit", "--home", h.root, "--repair")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == sorted([
        f"{three_ways}: agree nobody; differ front, {u1}, {u2} (no majority: a person must "
        "decide)",
        f"{two_ways}: agree nobody; differ front, {u1}; lack {u2} (no majority: a person must "
        "decide)",
        f"{majority}: agree {u1}, {u2}; differ front (majority)",
    ]) + [f"{majority}: restored on front, damaged copy kept as "
          f"{damaged_dir(front).relative_to(front) / majority}",
          f"audit: front, {u1}, {u2}: 3 paths diverge, 1 copies repaired"]
    now = everything(daemon, front)
    assert now["b1"] == held["b1"] and now["b2"] == held["b2"]
    assert now["front"] == {**held["front"], str(majority): held["b1"][str(majority)]}


def test_a_replica_down_during_the_audit_is_an_alert_after_the_other_was_compared(
        three, daemon):
    h = three.home
    front = Path(h.root)
    body = bodies(front)[0].relative_to(front)
    (daemon.backs["b2"] / body).write_bytes(b"not the body")
    down = f"rsync://127.0.0.1:{free_port()}/b1"
    configure(h, down, daemon.url("b2"))
    r = kiel("audit", "--home", h.root)
    assert r.returncode == 69
    # kiel.conf changed on the front since the last replicate: the backs follow it.
    assert r.stdout.splitlines() == [
        f"etc/kiel.conf: agree front; differ {daemon.url('b2')} (the front's state)",
        f"{body}: agree front; differ {daemon.url('b2')} (matches its notes)",
        f"audit: front, {daemon.url('b2')}: 2 paths diverge"]
    (alert,) = r.stderr.splitlines()
    assert alert.startswith(f"alert: replica {down} unreachable: rsync: [Receiver] failed to "
                            "connect to 127.0.0.1") or alert.startswith(
        f"alert: replica {down} unreachable: rsync: [sender] failed to connect to 127.0.0.1")


def test_files_only_on_a_back_are_reported_and_never_removed(three, daemon):
    h = three.home
    front = Path(h.root)
    b1, b2 = daemon.backs["b1"], daemon.backs["b2"]
    u1, u2 = daemon.url("b1"), daemon.url("b2")
    rdir = next(p for p in (front / "store").rglob("00last")).parent.relative_to(front)
    (b1 / rdir / "00gone").write_text("1700000000\n")  # the front's record came back
    (b1 / "store" / "stray").write_bytes(b"a file nobody wrote\n")
    (b2 / "store" / "stray").write_bytes(b"a file nobody wrote\n")
    (b1 / "store" / "lonely").write_bytes(b"one copy\n")
    news = front / "var" / "runs" / "1800000000.json"  # a run the backs were not sent yet
    news.write_bytes(b'{"tist": 1800000000}\n')
    r = kiel("audit", "--home", h.root, "--repair", "--quiet")
    assert r.returncode == 1, r.stderr
    kept = damaged_dir(b1).relative_to(b1)
    assert r.stdout.splitlines() == sorted([
        f"{rdir}/00gone: agree front, {u2}; differ {u1} (the front's state)",
        f"store/lonely: agree nobody; differ {u1}; lack front, {u2} (one copy only: a person "
        "must decide)",
        f"store/stray: agree {u1}, {u2}; lack front (all copies that have it)",
        f"var/runs/1800000000.json: agree front; lack {u1}, {u2} (not replicated yet)",
    ]) + sorted([f"{rdir}/00gone: moved aside on {u1} to {kept}/{rdir}/00gone",
                 "store/stray: restored on front",
                 f"var/runs/1800000000.json: restored on {u1}",
                 f"var/runs/1800000000.json: restored on {u2}"])
    assert not (b1 / rdir / "00gone").exists()
    assert (b1 / kept / rdir / "00gone").read_text() == "1700000000\n"
    assert (b1 / "store" / "lonely").read_bytes() == b"one copy\n"
    assert (front / "store" / "stray").read_bytes() == b"a file nobody wrote\n"
    for b in (b1, b2):
        assert (b / "var" / "runs" / news.name).read_bytes() == news.read_bytes()


# --- a replica is a complete home ---------------------------------------------------

def test_a_back_promoted_is_a_complete_home(three, daemon, httpserver):
    """The steps of docs/replicas.md, Promotion: the front is lost, the
    operator points --home at a back's directory and carries on."""
    h = three.home
    front = Path(h.root)
    back = daemon.backs["b1"]
    shutil.rmtree(front)  # the front's disk is gone
    home = str(back)
    r = kiel("verify", "--home", home, "--fixity")
    assert r.returncode == 0, r.stdout + r.stderr
    r = kiel("show", "--home", home, three.ids[0])
    assert r.returncode == 0 and three.ids[0] in r.stdout
    r = kiel("report", "--home", home)
    assert r.returncode == 0 and "\nrecords           3\n" in r.stdout
    r = kiel("oai", "index", "--home", home)
    assert r.returncode == 0, r.stderr
    three.clock.advance(86400)
    versions = sorted(back.rglob("*.amf.xml"))
    write_amf(three.src, text(three.ids[0], httpserver.url_for("/a.pdf")),
              text(three.ids[1], httpserver.url_for("/b.pdf")), text(three.ids[2], "/x"))
    r = kiel("renew", "--home", home, str(three.src), "--quiet")
    assert (r.returncode, r.stderr) == (0, "")
    assert len(sorted(back.rglob("*.amf.xml"))) > len(versions)
    r = kiel("verify", "--home", home, "--fixity")
    assert r.returncode == 0, r.stdout
    # The promoted home replicates to the other back like any front.
    with open(back / "etc" / "kiel.conf", "a") as f:
        f.write(f"replicas = {daemon.url('b2')}\n")
    r = kiel("replicate", "--home", home, "--quiet")
    assert (r.returncode, r.stderr) == (0, "")
    assert tree(daemon.backs["b2"]) == tree(back)


def test_sigterm_ends_replicate_and_its_rsync_and_frees_the_lock(site, daemon):
    h = site.home
    configure(h, daemon.url("b1"), daemon.url("b2"))
    big = Path(h.root) / "var" / "runs" / "1800000000.json"
    big.write_bytes(os.urandom(3_000_000))
    backs = [b / "var" / "runs" for b in daemon.backs.values()]
    proc = subprocess.Popen([sys.executable, "-m", "kiel", "replicate", "--home", h.root,
                             "--bwlimit", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # Both transfers under way: each back holds rsync's hidden temporary name.
    assert wait_until(lambda: proc.poll() is not None or all(
        b.is_dir() and any(p.name.startswith(".") for p in b.iterdir()) for b in backs),
        timeout=60)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)  # to kiel alone, as cron or systemd would
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip().endswith("stopped by a signal")
    # Both transfers ended with it: each back keeps its partial aside, no final name.
    for b in backs:
        assert wait_until((b / ".kiel-partial" / big.name).exists)
        assert not (b / big.name).exists()
    with home_mod.Lock(h):  # released: a renewal may start
        pass
    r = kiel("replicate", "--home", h.root, "--quiet")
    assert (r.returncode, r.stderr) == (0, "")
    for b in backs:
        assert (b / big.name).read_bytes() == big.read_bytes()
