"""``kiel show``, ``kiel verify``, ``kiel report``: read the store, print.

Thin on purpose: parse the options, call :mod:`kiel.show`,
:mod:`kiel.verify` or :mod:`kiel.report`, print what they return.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from kiel import report as _report
from kiel import show as _show
from kiel import verify as _verify
from kiel.cli_common import KielClickError, get_home, home_option, library_errors
from kiel.text import printable, printable_json, printable_lines
from kiel.tist import now


@click.command("show")
@click.argument("record")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@home_option
@library_errors
def show(record: str, as_json: bool, home: str | None) -> None:
    """Show what the store holds about one RECORD.

    RECORD is a record id or a record directory. Prints the versions (the
    current one marked), 00last, 00gone, and for each object its URL and
    the timeline of its attempts: date, status, type, size, link target,
    redirect target, error. Exit status 1 when there is no such record, or
    when a store file was skipped as not a regular file (it is named).

    \b
    Example:
      kiel show RePEc:aaa:wpaper:1
      kiel show --json ~/store/RePEc/aaa/wpaper/1
    """
    view = _show.show(get_home(home).root, record)
    click.echo(printable_json(view.to_json()) if as_json
               else printable_lines(_show.format_text(view)), nl=as_json)
    if view.unreadable:
        raise SystemExit(1)  # a store file skipped: damage a person must look at


@click.command("verify")
@click.argument("prefix", required=False)
@click.option("--fixity", is_flag=True,
              help="Also re-hash every attempt file (and versions whose notes carry a "
                   "sha256) and compare with the notes.")
@click.option("--repair", is_flag=True,
              help="Remove leftover temporary files (.kiel-tmp-*), and nothing else.")
@home_option
@library_errors
def verify(prefix: str | None, fixity: bool, repair: bool, home: str | None) -> None:
    """Check the store against the on-disk contract.

    Lists every breach with its path: unparseable names, absolute,
    dangling, chained or escaping links, malformed 00last, notes lines that
    do not parse or name missing files, files no notes line names, leftover
    temporary files. PREFIX restricts the walk to a record id prefix
    (RePEc:eee) or a store path (RePEc/eee). Exit status 0 when clean, 1
    when a breach was found (warnings alone leave it 0) or PREFIX matches
    no record, 2 when the home has no store.

    \b
    Example:
      kiel verify --fixity RePEc:aaa
    """
    result = _verify.verify(get_home(home).root, prefix, fixity=fixity, repair=repair)
    for finding in result:
        click.echo(printable(str(finding)))
        values = [f"{k} {v}" for k, v in (("expected", finding.expected),
                                            ("found", finding.found)) if v is not None]
        if values:
            click.echo(printable("    " + ", ".join(values)))
    s = result.summary
    click.echo(f"checked {_n(s.records, 'record', 'records')}, "
               f"{_n(s.versions, 'version', 'versions')}, {_n(s.objects, 'object', 'objects')}, "
               f"{_n(s.attempt_files, 'attempt file', 'attempt files')} "
               f"({_n(s.links, 'link', 'links')})")
    if fixity:
        click.echo(f"fixity: {s.fixity_passed} passed, {s.fixity_failed} failed, "
                   f"{s.fixity_not_checked} not checked")
    click.echo(f"{_n(s.breaches, 'breach', 'breaches')}, "
               f"{_n(s.warnings, 'warning', 'warnings')}"
               + (f", {s.repaired} repaired" if repair else ""))
    if not s.clean:
        raise SystemExit(1)


def _n(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@click.command("report")
@click.argument("prefix", required=False)
@click.option("--html", "html_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write one self-contained HTML page with charts to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@home_option
@library_errors
def report(prefix: str | None, html_file: str | None, as_json: bool,
               home: str | None) -> None:
    """Say what the archive holds and how its links age.

    Counts records, versions, objects and attempts; the status of each
    object's newest attempt; bytes stored against bytes plain copies would
    take; the hosts that fail most; the store's growth per night (bytes and
    inodes) and the days its filesystem lasts at that pace. PREFIX restricts
    it as for verify.

    \b
    Example:
      kiel report --html /var/www/kiel/report.html
    """
    h = get_home(home)
    if html_file:
        # Found before the walk, which may take minutes on a large store.
        problem = _report.unwritable(html_file)
        if problem:
            raise KielClickError(f"cannot write the report to {html_file}: {problem}", 2)
    r = _report.report(h.root, prefix)
    if as_json:
        click.echo(printable_json(json.dumps(asdict(r), indent=2)))
    else:
        click.echo(printable_lines(_report.format_text(r)), nl=False)
    if html_file:
        try:
            _report.write_html(html_file, _report.render_html(r, now()))
        except OSError as e:
            raise KielClickError(f"cannot write the report to {html_file}: "
                                 f"{e.strerror or e}", 2) from None
        if not as_json:
            click.echo(f"wrote {html_file}")
    if r.unreadable:
        raise SystemExit(1)  # a store file skipped: damage a person must look at
