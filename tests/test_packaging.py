"""What setup.cfg promises the test suite and the packages Kiel subclasses."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

TOP = Path(__file__).resolve().parent.parent


def test_every_test_has_a_time_limit(request: pytest.FixtureRequest):
    # pytest-timeout is loaded and setup.cfg gives every test a generous limit.
    assert request.config.pluginmanager.hasplugin("timeout")
    limit = float(request.config.getini("timeout"))
    assert 60 <= limit <= 600


def test_a_hung_test_fails_at_its_time_limit(tmp_path: Path):
    (tmp_path / "test_hang.py").write_text(
        "import time\n\ndef test_hangs():\n    time.sleep(600)\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", str(TOP / "setup.cfg"), "--rootdir", str(tmp_path),
                        "-o", "timeout=2", str(tmp_path / "test_hang.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Timeout" in r.stdout and "1 failed" in r.stdout


def test_waitress_is_pinned_to_the_major_version_subclassed():
    # kiel/oai/server.py subclasses waitress internals: a new major version
    # may change them, so setup.cfg admits only the one the tests ran on.
    (req,) = [Requirement(r) for r in requires("kiel") or () if r.startswith("waitress")]
    major = int(version("waitress").split(".")[0])
    assert req.specifier.contains(f"{major}.0") and req.specifier.contains(f"{major}.99")
    assert not req.specifier.contains(f"{major + 1}.0")


APT_LOCKED = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 "
              "(unattended-upgr)\nE: Unable to acquire the dpkg frontend lock "
              "(/var/lib/dpkg/lock-frontend), is another process using it?\n")


def test_setup_env_waits_for_the_dpkg_lock_and_says_what_to_do(tmp_path: Path):
    # The real dpkg lock of a shared machine cannot be held for a test: apt-get
    # here is a stand-in that logs its arguments and answers as apt does when
    # another process keeps the lock past the timeout it was given.
    import os
    import shutil
    import stat

    (tmp_path / "scripts").mkdir()
    shutil.copy(TOP / "scripts" / "setup-env", tmp_path / "scripts" / "setup-env")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "apt-calls"
    stubs = {
        "apt-get": (f'echo "$*" >> {calls}\n'
                    f'case "$*" in *install*) printf %s "{APT_LOCKED}" >&2; exit 100;; esac\n'),
        "id": "echo 0\n",  # as root, as CI runs
        "ldconfig": "echo 'libmagic.so.1 (libc6,x86-64) => /usr/lib/libmagic.so.1'\n",
    }
    for name, body in stubs.items():
        (bin_ / name).write_text("#!/bin/sh\n" + body, encoding="utf-8")
        (bin_ / name).chmod(stat.S_IRWXU)
    for tool in ("dirname", "grep", "mktemp", "cat", "rm", "touch", "sh"):
        where = shutil.which(tool)
        assert where, tool
        os.symlink(where, bin_ / tool)  # rsync, chromium, ip, openssl, npm left out: apt must run
    os.symlink(sys.executable, bin_ / "python3")
    bash = shutil.which("bash")
    assert bash
    r = subprocess.run([bash, str(tmp_path / "scripts" / "setup-env"), "--test"],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": str(bin_), "KIEL_APT_LOCK_WAIT": "7"})
    assert r.returncode == 1
    assert calls.read_text().splitlines() == [
        "-o DPkg::Lock::Timeout=7 update -qq",
        "-o DPkg::Lock::Timeout=7 install -y -qq rsync chromium iproute2 openssl npm"]
    assert r.stderr == APT_LOCKED + (
        "setup-env: another process held the apt/dpkg lock for 7s (see above: apt names it); "
        "let it finish and run this again, or set KIEL_APT_LOCK_WAIT to wait longer\n")
    assert not (tmp_path / ".venv").exists()
