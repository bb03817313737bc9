"""scripts/demo prints the same summary on every run, the one the README shows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
# The summary lines that do not hold a time, a rate or a temporary path.
STABLE = ("records:", "input:", "objects:", "errors:")


def second_summary(out: str) -> list[str]:
    tail = out[out.index("--- second renewal"):]
    return [line for line in tail.splitlines() if line.startswith(STABLE)]


def demo_in_private_network() -> str:
    # The demo's public samples name hosts on the Internet: in a network
    # namespace of its own, with only a loopback, none of them resolves, on
    # every machine alike.
    cmd = f"ip link set lo up && exec {sys.executable} {TOP / 'scripts' / 'demo.py'}"
    r = subprocess.run(["unshare", "--net", "sh", "-c", cmd], capture_output=True, text=True,
                       timeout=240, check=False)
    if r.returncode != 0 and "unshare" in r.stderr:
        pytest.skip(f"no private network namespace here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="unshare and ip are needed for a private network namespace")
def test_the_demo_summary_is_the_same_on_every_run_and_in_the_readme():
    runs = [second_summary(demo_in_private_network()) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    readme = (TOP / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(renewal \d+ .*?)```", readme, re.S)
    assert block is not None
    assert [line for line in block.group(1).splitlines() if line.startswith(STABLE)] == runs[0]
