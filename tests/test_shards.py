"""Shards and the renewal lock, with real processes: only shards of one N run
together; a refused run names the running holders and never a process that is
gone; temporary files belong to the process that made them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiel.errors import LockHeld
from kiel.home import Home, Lock, clean_abandoned, tmp_abandoned, tmp_name, tmp_owner

from kit.homes import make_home, text, write_amf

HOLD = """
import sys
from kiel.home import Home, Lock
shard = tuple(int(x) for x in sys.argv[2].split("/")) if sys.argv[2] != "full" else None
with Lock(Home(sys.argv[1]), shard):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


class Holder:
    """A process that holds the lock of a home as a renewal would."""

    def __init__(self, home: Path, shard: str):
        self.p = subprocess.Popen([sys.executable, "-c", HOLD, str(home), shard],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert self.p.stdin and self.p.stdout and self.p.stderr
        line = self.p.stdout.readline()
        if line != "held\n":
            self.p.kill()
            raise AssertionError(f"{shard}: {line!r} {self.p.stderr.read()}")
        self.pid = self.p.pid

    def end(self) -> None:
        assert self.p.stdin and self.p.stdout and self.p.stderr
        self.p.stdin.close()
        self.p.wait(timeout=10)
        self.p.stdout.close()
        self.p.stderr.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "h")


def renew(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    src = home.parent / "in.xml"
    if not src.exists():
        write_amf(src, text("RePEc:aaa:wpaper:1"))
    return subprocess.run([sys.executable, "-m", "kiel", "renew", "--home", str(home), *args,
                           str(src)], capture_output=True, text=True, timeout=60, check=False)


def test_shards_of_one_n_run_together_another_n_exits_75(home: Path):
    a, b = Holder(home, "1/2"), Holder(home, "2/2")
    try:
        r = renew(home, "--shard", "1/3")
        assert r.returncode == 75
        lock = home / "var" / "renew.lock"
        assert r.stderr.startswith(
            f"Error: another renewal holds {lock}: shard 1/2 (pid {a.pid} on ")
        assert f"shard 2/2 (pid {b.pid} on " in r.stderr
        assert r.stderr.rstrip().endswith(
            "; only shards of one N run together, so shard 1/3 waits until they end "
            "(exit 75: run it again later)")
        # The same shard twice: refused, naming the one running.
        r = renew(home, "--shard", "2/2")
        assert r.returncode == 75 and f"shard 2/2 (pid {b.pid} on " in r.stderr
        # A full run waits for every shard, and names them.
        r = renew(home)
        assert r.returncode == 75
        assert f"shard 1/2 (pid {a.pid} on " in r.stderr
        assert f"shard 2/2 (pid {b.pid} on " in r.stderr
    finally:
        a.end()
        b.end()
    # Once they ended, the other N runs.
    r = renew(home, "--shard", "1/3")
    assert r.returncode == 0, r.stderr


def test_a_refused_run_never_names_a_process_that_is_gone(home: Path):
    # A full run ran and ended: renew.lock still holds its pid.
    full = Holder(home, "full")
    gone = full.pid
    full.end()
    assert json.loads((home / "var" / "renew.lock").read_text())["pid"] == gone
    shard = Holder(home, "1/2")
    try:
        with pytest.raises(LockHeld) as e:
            Lock(Home(str(home))).acquire()
        assert f"pid {gone} " not in str(e.value)
        assert f"shard 1/2 (pid {shard.pid} on " in str(e.value)
    finally:
        shard.end()
    # The shard ended too: nobody holds anything, a full run takes the lock.
    with Lock(Home(str(home))):
        pass


def test_a_full_run_is_named_when_it_holds_the_lock(home: Path):
    full = Holder(home, "full")
    try:
        r = renew(home, "--shard", "1/2")
        assert r.returncode == 75
        assert f"holds {home}/var/renew.lock: full run (pid {full.pid} on " in r.stderr
    finally:
        full.end()


MAKE_TMP = """
import os, sys
from kiel.home import tmp_name
path = os.path.join(sys.argv[1], tmp_name())
open(path, "w").write("half a body")
print(path, flush=True)
sys.stdin.read()
"""


def test_temporary_files_belong_to_their_process(tmp_path: Path):
    p = subprocess.Popen([sys.executable, "-c", MAKE_TMP, str(tmp_path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdin and p.stdout
    path = p.stdout.readline().strip()
    name = os.path.basename(path)
    owner = tmp_owner(name)
    assert owner is not None and owner[1] == p.pid
    mine = tmp_path / tmp_name()
    mine.write_text("mine")
    old_style = tmp_path / ".kiel-tmp-5f3a9c0e1b2d"  # older versions: no owner in the name
    old_style.write_text("x")
    os.utime(old_style, (0, 0))
    assert clean_abandoned(str(tmp_path)) == [old_style.name]
    assert os.path.exists(path) and mine.exists()  # a running process's files stay
    p.stdin.close()
    p.wait(timeout=10)
    p.stdout.close()
    assert tmp_abandoned(path) and not tmp_abandoned(str(mine))
    assert clean_abandoned(str(tmp_path)) == [name]
    assert mine.exists()


def test_another_hosts_temporary_files_wait_a_day(tmp_path: Path):
    other = tmp_path / ".kiel-tmp-elsewhere.example-1-00ff00ff00ff"
    other.write_text("x")
    assert not tmp_abandoned(str(other))  # its process cannot be probed from here
    os.utime(other, (os.stat(other).st_atime, os.stat(other).st_mtime - 2 * 86400))
    assert tmp_abandoned(str(other))
