"""docs/cli.md is the commands' --help, generated: it must not drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from kiel.cli import main

TOP = Path(__file__).resolve().parent.parent


def test_docs_cli_md_is_the_help_of_every_command():
    r = subprocess.run([sys.executable, str(TOP / "scripts" / "cli_docs.py"), "--check"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr


def test_every_command_and_subcommand_is_in_docs_cli_md():
    doc = (TOP / "docs" / "cli.md").read_text(encoding="utf-8")
    paths = ["kiel"]
    for name, cmd in main.commands.items():
        paths.append(f"kiel {name}")
        paths += [f"kiel {name} {sub}" for sub in getattr(cmd, "commands", {})]
    for path in paths:
        assert f"## `{path}`" in doc and f"$ {path} --help" in doc, path
        r = CliRunner().invoke(main, [*path.split()[1:], "--help"], prog_name="kiel",
                                terminal_width=100)
        assert r.exit_code == 0, path
        # The usage line and every option shown by --help appear in the doc.
        assert r.output.splitlines()[0] in doc, path
