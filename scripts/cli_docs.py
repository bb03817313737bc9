#!/usr/bin/env python3
"""Write docs/cli.md from the ``--help`` of ``kiel`` and every subcommand.

    scripts/cli_docs.py          rewrite docs/cli.md
    scripts/cli_docs.py --check  exit 1 when docs/cli.md differs from --help

The help is rendered at a fixed width (100 columns, the width the commands
ask for), so the file is the same on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

TOP = Path(__file__).resolve().parent.parent
DOC = TOP / "docs" / "cli.md"
WIDTH = 100

HEAD = """\
# Command reference

Generated from `--help` by `scripts/cli_docs.py`; do not edit by hand (a test
fails when this file and the commands' help differ: run the script again).
Exit statuses and what an operator sees are in
[operations.md](operations.md).
"""


def _walk(cmd: click.Command, ctx: click.Context, out: list[str]) -> None:
    path = ctx.command_path
    out.append(f"## `{path}`\n\n```\n$ {path} --help\n{cmd.get_help(ctx).rstrip()}\n```\n")
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            _walk(sub, click.Context(sub, info_name=name, parent=ctx, terminal_width=WIDTH,
                                     max_content_width=WIDTH), out)


def render() -> str:
    sys.path.insert(0, str(TOP))
    from kiel.cli import main

    out = [HEAD]
    settings = {**main.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    _walk(main, click.Context(main, info_name="kiel", **settings), out)
    return "\n".join(out)


def main() -> int:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(TOP)} differs from the commands' --help: "
                  "run scripts/cli_docs.py", file=sys.stderr)
            return 1
        return 0
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
