#!/usr/bin/env python3
"""Write the command examples of docs/operations.md from real runs.

    .venv/bin/python scripts/ops_examples.py          rewrite the examples
    .venv/bin/python scripts/ops_examples.py --check  exit 1 when one differs

Each example sits between ``<!-- example NAME: ... -->`` and
``<!-- end example -->`` in docs/operations.md. The commands run here, in a
fresh temporary directory, with the real ``kiel``; their output is shown as
an operator would see it, the temporary paths written as /srv/kiel (the
home) and /srv/amf (the inputs), so the page is the same on every machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(TOP, "docs", "operations.md")
BLOCK = re.compile(r"(<!-- example (?P<name>[a-z-]+):[^\n]*-->\n)(?P<body>.*?)"
                   r"(<!-- end example -->)", re.S)

BAD_BRANCHES = """<branches>
  <branch xpath="displaypage"/>
  <branch xpath="file/url"/>
  <branch xpath="/amf/text/file/url"/>
  <branch xpath="file[url"/>
  <branch xpath="foo:bar"/>
  <branch xpath="count(file)"/>
</branches>
"""


class Sandbox:
    """A temporary directory with a home (``home``) and inputs (``amf``)."""

    def __init__(self, root: str):
        self.root = root
        self.home = os.path.join(root, "home")
        self.amf = os.path.join(root, "amf")
        self.out: list[str] = []

    def show(self, text: str) -> str:
        return text.replace(self.home, "/srv/kiel").replace(self.amf, "/srv/amf")

    def kiel(self, *args: str, status: bool = False) -> None:
        """Run ``kiel ARGS`` in the sandbox and write what the operator sees."""
        # One pipe for both streams: the order a terminal shows (click flushes
        # each line it writes).
        r = subprocess.run([sys.executable, "-m", "kiel", *args], cwd=self.root,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": TOP})
        line = "$ kiel " + " ".join(shlex.quote(a) for a in args)
        self.out.append(self.show(line + ('; echo "exit $?"' if status else "")))
        if r.stdout:
            self.out.append(self.show(r.stdout.rstrip("\n")))
        if status:
            self.out.append(f"exit {r.returncode}")

    def cat(self, name: str) -> None:
        self.out.append(f"$ cat {name}")
        with open(os.path.join(self.root, name), encoding="utf-8") as f:
            self.out.append(f.read().rstrip("\n"))

    def conf(self, line: str) -> None:
        with open(os.path.join(self.home, "etc", "kiel.conf"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def init(self) -> None:
        subprocess.run([sys.executable, "-m", "kiel", "init", "--home", self.home], check=True,
                       capture_output=True, env={**os.environ, "PYTHONPATH": TOP})


def config_mistakes(s: Sandbox) -> None:
    s.init()
    s.conf("contact = mailto:archive@example.org")
    s.conf("max_body = 2 G")
    s.kiel("renew", "--home", s.home)
    path = os.path.join(s.home, "etc", "kiel.conf")
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("max_body = 2 G\n", "max_body = 2 GiB\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "read_timeout = 30 sec\n")
    s.kiel("verify", "--home", s.home)


def empty_contact(s: Sandbox) -> None:
    s.kiel("init", "--home", s.home)


def check_branches(s: Sandbox) -> None:
    """The demo's home and inputs (scripts/demo), then a broken file."""
    s.init()
    os.makedirs(s.amf)
    with open(os.path.join(TOP, "samples", "demo", "records.amf.xml.in"), encoding="utf-8") as f:
        demo = f.read().replace("@BASE@", "http://127.0.0.1:8080")
    with open(os.path.join(s.amf, "demo.amf.xml"), "w", encoding="utf-8") as f:
        f.write(demo)
    shutil.copytree(os.path.join(TOP, "samples", "amf"), os.path.join(s.amf, "public"))
    s.kiel("check-branches", "--home", s.home, "--records", s.amf)
    s.out.append("")
    with open(os.path.join(s.root, "bad-branches.xml"), "w", encoding="utf-8") as f:
        f.write(BAD_BRANCHES)
    s.cat("bad-branches.xml")
    s.kiel("check-branches", "bad-branches.xml", status=True)


EXAMPLES: dict[str, Callable[[Sandbox], None]] = {
    "config-mistakes": config_mistakes,
    "empty-contact": empty_contact,
    "check-branches": check_branches,
}


def render(name: str) -> str:
    with tempfile.TemporaryDirectory(prefix="kiel-example-") as root:
        s = Sandbox(os.path.realpath(root))
        EXAMPLES[name](s)
        return "```\n" + "\n".join(s.out) + "\n```\n"


def rewrite(doc: str) -> str:
    seen = set()

    def one(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in EXAMPLES:
            raise SystemExit(f"docs/operations.md: no example named {name!r} here")
        seen.add(name)
        return m.group(1) + render(name) + m.group(4)

    new = BLOCK.sub(one, doc)
    missing = set(EXAMPLES) - seen
    if missing:
        raise SystemExit(f"docs/operations.md: no place for the examples {sorted(missing)}")
    return new


def main() -> int:
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    new = rewrite(doc)
    if "--check" in sys.argv[1:]:
        if new != doc:
            print("docs/operations.md: an example differs from what the commands print now; "
                  "run .venv/bin/python scripts/ops_examples.py", file=sys.stderr)
            return 1
        return 0
    if new != doc:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(new)
        print("wrote docs/operations.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
