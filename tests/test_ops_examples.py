"""The command examples of docs/operations.md are what the commands print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent


def test_operations_examples_are_real_output():
    r = subprocess.run([sys.executable, str(TOP / "scripts" / "ops_examples.py"), "--check"],
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr
