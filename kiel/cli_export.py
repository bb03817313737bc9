"""``kiel export``: parse the options, call :mod:`kiel.export`, print."""

from __future__ import annotations

import click

from kiel import export as _export
from kiel.cli_common import get_home, home_option, library_errors
from kiel.text import human


@click.command("export")
@click.argument("prefixes", nargs=-1, metavar="[PREFIX]...")
@click.option("--output", "-o", "output", required=True, metavar="OUT",
              help="The file to write: OUT ending .warc.gz is a WARC 1.1 file (one gzip "
                   "member per record), OUT ending .wacz a WACZ 1.1.1 package. Never "
                   "replaced when it exists.")
@click.option("--from", "since", metavar="WHEN",
              help="Only attempts and versions from WHEN on (a tist, or an ISO 8601 date "
                   "or time, UTC unless it says).")
@click.option("--until", "until", metavar="WHEN",
              help="Only attempts and versions up to WHEN, inclusive (a date: its whole "
                   "day).")
@home_option
@library_errors
def export(prefixes: tuple[str, ...], output: str, since: str | None, until: str | None,
           home: str | None) -> None:
    """Write the store as WARC or WACZ, for pywb, ReplayWeb.page and other
    web-archive tools.

    Every attempt that got an answer becomes a response (its body as
    stored, its header fields as received) or a revisit (a link to an
    earlier body); every record version a resource record; metadata
    records tie them to their record. PREFIX restricts the export to
    record ids or id prefixes (RePEc:eee, RePEc/eee) as for verify; none
    means the whole store. The mapping is in docs/export.md. Exit status
    0 when all was written, 1 when store files had to be left out (listed).

    \b
    Example, what the last night added:
      kiel export --home /srv/kiel --from 2025-11-22 --until 2025-11-22 \\
        -o /srv/exports/kiel-2025-11-22.warc.gz
    """
    h = get_home(home)
    sel = _export.Selection(
        prefixes=prefixes,
        since=_export.parse_when(since) if since else None,
        before=_export.parse_when(until, end=True) if until else None)
    s = _export.export(h.root, output, sel)
    for p in s.problems:
        click.echo(f"not exported: {p}")
    if s.problem_count > len(s.problems):
        click.echo(f"... and {s.problem_count - len(s.problems)} more")
    click.echo(f"wrote {s.output} ({human(s.bytes)}): {_n(s.records, 'record')}, "
               f"{_n(s.versions, 'version')}, {_n(s.responses, 'response')} "
               f"({_n(s.redirects, 'redirect')}), {_n(s.revisits, 'revisit')}, "
               f"{_n(s.metadata, 'metadata record')}; "
               f"{_n(s.no_answer, 'attempt')} without an answer noted, "
               f"{s.not_written} without a file")
    if s.format == "wacz":
        click.echo(f"pages listed: {s.pages}")
    if s.problem_count:
        raise SystemExit(1)


def _n(n: int, one: str) -> str:
    return f"{n} {one if n == 1 else one + 's'}"
