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
