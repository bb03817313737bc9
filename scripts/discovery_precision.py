#!/usr/bin/env python3
"""Measure discovery's precision on every landing-page fixture.

    .venv/bin/python scripts/discovery_precision.py

Reads tests/fixtures/{landing,hosts,plain}/expected.json (each fixture's
page URL and the full texts it offers, checked by hand against its markup),
runs ``kiel.discovery.discover`` on each page and counts what it found: an
object in the expected list is right, any other is wrong (a page leading to
a wrong object), an expected one not found is missed. The plain-link rule,
the one rule that reads ordinary links, is counted on its own too. Exit 1
when any page leads to a wrong object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP))

from kiel.discovery import discover, plain_pdf_link  # noqa: E402

SETS = ("landing", "hosts", "plain")


def measure() -> tuple[str, int]:
    lines = [f"{'fixtures':10} {'pages':>5} {'found':>5} {'right':>5} {'wrong':>5} "
             f"{'missed':>6}"]
    wrong_pages: list[str] = []
    totals = [0, 0, 0, 0, 0]
    plain = [0, 0]  # pages where the plain-link rule took a link, of them right
    alone = [0, 0, 0]  # the rule alone on every page: pages, links taken, right
    alone_wrong: list[str] = []  # where it would be wrong, were it consulted
    for name in SETS:
        folder = TOP / "tests" / "fixtures" / name
        cases = json.loads((folder / "expected.json").read_text("utf-8"))
        row = [0, 0, 0, 0, 0]
        for fixture, case in sorted(cases.items()):
            expected = {url for _, url in case["expect"]}
            found = discover((folder / fixture).read_bytes(), case["page"],
                             "text/html; charset=utf-8")
            right = [f for f in found if f.url in expected]
            wrong = [f for f in found if f.url not in expected]
            row[0] += 1
            row[1] += len(found)
            row[2] += len(right)
            row[3] += len(wrong)
            row[4] += len(expected - {f.url for f in found})
            if wrong:
                wrong_pages.append(f"{name}/{fixture}: " + ", ".join(
                    f"{f.rule} {f.url}" for f in wrong))
            body = (folder / fixture).read_bytes()
            only = plain_pdf_link(body, case["page"], "text/html; charset=utf-8")
            alone[0] += 1
            if only is not None:
                alone[1] += 1
                alone[2] += only.url in expected
                if only.url not in expected:
                    alone_wrong.append(f"  {name}/{fixture}: {only.url}")
            for f in found:
                if f.rule == "plain_pdf_link":
                    plain[0] += 1
                    plain[1] += f.url in expected
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        lines.append(f"{name:10} {row[0]:5} {row[1]:5} {row[2]:5} {row[3]:5} {row[4]:6}")
    lines.append(f"{'all':10} {totals[0]:5} {totals[1]:5} {totals[2]:5} {totals[3]:5} "
                 f"{totals[4]:6}")
    precision = totals[2] / totals[1] if totals[1] else 1.0
    lines.append(f"precision {totals[2]}/{totals[1]} = {precision:.3f}; "
                 f"pages leading to a wrong object: {len(wrong_pages)}")
    lines.append(f"plain_pdf_link: took a link on {plain[0]} pages, right on {plain[1]}")
    lines.append(f"plain_pdf_link alone on every page: took a link on {alone[1]} of "
                 f"{alone[0]} pages, right on {alone[2]}")
    lines += alone_wrong
    lines += wrong_pages
    return "\n".join(lines), len(wrong_pages)


def main() -> int:
    text, wrong = measure()
    print(text)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
