"""The ``kiel`` command: parse options, call the library, print.

Exit statuses (docs/operations.md): 0 done; 1 done with input errors (or
problems found by verify, or a record not found by show); 2 usage or
configuration errors; 74 the store could not be written; 75 another renewal
holds the lock; 130 and 143 after SIGINT and SIGTERM.
"""

# ruff: noqa: E402 - a stop is handled before the modules below load (see _loading)

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from types import FrameType


def _stopped_while_loading(signum: int, _frame: FrameType | None) -> None:
    """A stop while kiel still loads: nothing has started and nothing is held,
    so the process ends at once and quietly, with the status a stopped run has."""
    os._exit(128 + signum)


def _is_the_kiel_command() -> bool:
    """Whether this process runs the kiel command (python -m kiel, or the
    console script), rather than a program that imports this module."""
    top = sys.modules.get("__main__")
    spec = getattr(top, "__spec__", None)
    return (getattr(spec, "name", None) == "kiel.__main__"
            or os.path.basename(getattr(top, "__file__", None) or "") == "kiel")


# Loading the modules below takes a good part of a second: a Ctrl-C or SIGTERM
# then must not end in a traceback. Once they are loaded, the default handlers
# are back, and renew installs its own.
_loading = _is_the_kiel_command()
if _loading:
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _stopped_while_loading)

import click

from kiel import __version__, renewal
from kiel import branches as branches_mod
from kiel import home as home_mod
from kiel import records as records_mod
from kiel import urls as urls_mod
from kiel.cli_common import get_home, home_option, library_errors, no_contact_warning
from kiel.cli_export import export
from kiel.cli_oai import oai
from kiel.cli_replicas import audit, replicate
from kiel.cli_tools import report, show, verify
from kiel.text import human
from kiel.tist import duration, iso

if _loading:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="kiel")
def main() -> None:
    """Kiel: a filesystem-only preservation archiver for AMF records.

    \b
    Example, a new home renewed nightly from cron:
      kiel init --home /srv/kiel
      kiel renew --home /srv/kiel /opt/amf/RePEc
    """


@main.command()
@home_option
@library_errors
def init(home: str | None) -> None:
    """Create etc/kiel.conf and etc/branches.xml in the home (never overwrites).

    \b
    Example:
      kiel init --home /srv/kiel
    """
    h = home_mod.locate(home)
    result = home_mod.init(h)
    for path in result.created:
        click.echo(f"created {path}")
    for path in result.kept:
        click.echo(f"kept    {path} (exists)")
    h.config()  # a kept kiel.conf with a mistake is reported now, not at 1:30 at night
    if warning := no_contact_warning(h):
        click.echo(warning, err=True)


@main.command("check-branches")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--records", "records_path", metavar="PATH", type=click.Path(exists=True),
              help="Also evaluate each branch on the records of these AMF files.")
@home_option
@library_errors
def check_branches(file: str | None, records_path: str | None, home: str | None) -> None:
    """Validate a branches file (default: etc/branches.xml of the home).

    Reports, with line numbers, a file that is not well-formed, a wrong root,
    a branch without xpath, an expression that does not compile, an absolute
    path, a duplicate, or a branch that fails on every record (each branch is
    evaluated on an empty AMF text: an undefined prefix, function or
    variable, or a number or boolean where URLs belong). Exit 0 only when all
    is valid, 1 when a problem was found, 2 when the file or home is missing.
    With --records, a branch that finds no URL in any record is a warning
    (exit 0: the sample may lack what it serves).

    \b
    Example:
      kiel check-branches --home /srv/kiel --records /opt/amf/RePEc/aaa
    """
    path = file or get_home(home).branches
    if not os.path.lexists(path):
        raise branches_mod.missing(path)
    result = branches_mod.check(path)
    for p in result.problems:
        click.echo(f"error: {p}", err=True)
    if result.ok:
        click.echo(f"{path}: {len(result.branches)} branches, all valid")
    if records_path and result.branches:
        counts = {b.xpath: 0 for b in result.branches}
        n = 0
        for f in records_mod.walk([records_path]):
            if isinstance(f, records_mod.Problem):
                click.echo(f"error: {f}", err=True)
                continue
            for item in records_mod.read_file(f):
                if not isinstance(item, records_mod.Record):
                    continue
                n += 1
                # The renewal's own URL finder: what it counts is what renew fetches.
                found = urls_mod.find(result.branches, records_mod.parse_stored(item.xml))
                for b in result.branches:
                    counts[b.xpath] += len(found.by_branch.get(b.xpath, ()))
        click.echo(f"on {n} records of {records_path}:")
        for b in result.branches:
            click.echo(f"  line {b.line}: {b.xpath!r} found {counts[b.xpath]} URLs")
        # A warning, not an error (exit 0): a branch may serve records the
        # sample does not hold, but a misspelt element finds nothing too.
        if n == 0:
            click.echo(f"warning: no records in {records_path}: no branch was evaluated",
                       err=True)
        for b in result.branches:
            if n and not counts[b.xpath]:
                click.echo(f"warning: line {b.line}: {b.xpath!r} found no URL in any of the "
                           f"{n} records: a misspelt element, or one these records do not use",
                           err=True)
    if not result.ok:
        sys.exit(1)


def _shard(_ctx: click.Context, _param: click.Parameter,
           value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("use K/N, e.g. 3/8") from None
    if not 1 <= k <= n:
        raise click.BadParameter("K must be between 1 and N")
    return k, n


def _duration(_ctx: click.Context, _param: click.Parameter,
              value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return duration(value)  # the grammar of kiel.conf (kiel.tist)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path())
@home_option
@click.option("--max-time", metavar="DURATION", callback=_duration,
              help="No record or attempt starts after this (90m, 6h); attempts under way "
                   "finish, unfinished records come first next time.")
@click.option("--only", metavar="PREFIX", help="Only records whose id starts with PREFIX.")
@click.option("--shard", metavar="K/N", callback=_shard,
              help="Only shard K of N (a stable hash of the record id).")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors (for cron).")
@click.option("--progress/--no-progress", default=None,
              help="Progress display (default: on when stderr is a terminal).")
@click.option("--allow-gone", is_flag=True,
              help="Mark records gone even when more than gone_max_share of the collection "
                   "would be (after a person checked the input).")
@click.option("--refresh", is_flag=True,
              help="Ask every URL unconditionally in this run (no If-None-Match or "
                   "If-Modified-Since), whatever the 'conditional' setting says.")
@library_errors
def renew(inputs: tuple[str, ...], home: str | None, max_time: float | None, only: str | None,
          shard: tuple[int, int] | None, quiet: bool, progress: bool | None,
          allow_gone: bool, refresh: bool) -> None:
    """Renew every record of the inputs: store new versions, fetch objects.

    INPUTS are AMF files or directories (default: the 'input' setting).

    \b
    Example, nightly from cron:
      30 1 * * *  kiel renew --home /srv/kiel --quiet --max-time 6h
    """
    h = get_home(home)
    # Said after the run's own errors, also under --quiet: cron mails it until a
    # person sets the contact, and a run that cannot start is not buried under it.
    warning = no_contact_warning(h)
    stop = renewal.Stop()
    show = progress if progress is not None else (sys.stderr.isatty() and not quiet)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.request("SIGINT" if signum == signal.SIGINT else "SIGTERM")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ProgressLine(enabled=show) as line:
            summary = renewal.renew(h, renewal.Options(
                inputs=tuple(os.path.abspath(p) for p in inputs), only=only, shard=shard,
                max_time=max_time, stop=stop, progress=line if show else None,
                allow_gone=allow_gone,
                config=dataclasses.replace(h.config(), conditional=False) if refresh else None))
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    for p in summary.problems:
        click.echo(f"error: {p}", err=True)
    if summary.repaired:
        click.echo(f"repair: {summary.repaired} records left in flight by a run that stopped "
                   "(a full disk, a crash) were checked and repaired; 'kiel verify' reports "
                   "them no more", err=True)
    if summary.alert:
        click.echo(f"alert: {summary.alert}", err=True)
    if warning:
        click.echo(warning, err=True)
    if not quiet:
        click.echo(format_summary(summary))
    sys.exit(summary.exit_status)


class ProgressLine:
    """The progress line of a run on a terminal (stderr).

    The renewal reports its counts when something happens; the newest report is
    always kept, and a timer redraws it at least every second while the run lasts,
    its clock moved on, so that the line never freezes on an old state. On leaving
    the block the timer stops and the newest state is drawn one last time, then
    the line is cleared for what the command prints next.
    """

    def __init__(self, enabled: bool = True, interval: float = 0.5):
        self.enabled = enabled
        self.interval = interval
        self._lock = threading.Lock()
        self._newest: tuple[renewal.Progress, float] | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __call__(self, p: renewal.Progress) -> None:
        """Keep the newest state (from any thread); the timer draws it."""
        with self._lock:
            self._newest = (p, time.monotonic())

    def __enter__(self) -> ProgressLine:
        if self.enabled:
            self._timer = threading.Thread(target=self._redraw, name="kiel-progress",
                                           daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None
        if self.enabled:
            self.draw()
            click.echo("\r\033[K", err=True, nl=False)

    def _redraw(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def draw(self) -> None:
        with self._lock:
            newest = self._newest
        if newest is None:
            return
        p, at = newest
        elapsed = p.elapsed + (time.monotonic() - at if p.phase != "done" else 0.0)
        rate = p.records_done / elapsed if elapsed else 0.0
        left = ""
        if p.max_time:
            left = f", {max(0, int(p.max_time - elapsed))}s of budget left"
        elif p.phase == "renew" and p.eta is not None:
            left = f", about {int(max(0.0, p.eta - (elapsed - p.elapsed)))}s left"
        click.echo(f"\r\033[K{p.phase}: {p.records_done}/{p.records_found} records, "
                   f"{p.objects_done}/{p.objects_total} objects, {p.fetching} fetching, "
                   f"{human(p.bytes_fetched)}, {rate:.1f} records/s{left}",
                   err=True, nl=False)


def format_summary(s: renewal.Summary) -> str:
    """The summary a cron mail or a terminal shows after a run."""
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(s.skipped.items())) or "none"
    classes = ", ".join(f"{k} {v}" for k, v in s.attempts_by_class.items()) or "none"
    errors = ", ".join(f"{k} {v}" for k, v in s.errors_by_kind.items()) or "none"
    rate = f"{s.records_renewed / s.duration:.1f}" if s.duration else "-"
    lines = [
        f"renewal {s.tist} ({iso(s.tist)}), {s.duration:.1f}s"
        + (f", interrupted: {s.interrupted}" if s.interrupted else ""),
        f"records:  {s.records_found} found, {s.records_renewed} renewed "
        f"({s.new_versions} new versions of which {s.virgin} virgin, {s.unchanged} unchanged), "
        f"skipped: {skipped}",
        f"input:    {s.input_errors} errors, {s.duplicates} duplicate ids, {s.refs} refs"
        + (f", {s.gone} gone, {s.back} back" if s.full_run else "")
        + (f", {s.gone_held} held back from gone" if s.gone_held else "")
        + (f", {s.damaged} damaged in the store" if s.damaged else "")
        + (f", {s.adopted} versions adopted" if s.adopted else ""),
        f"objects:  {s.objects} renewed, {s.attempts} attempts ({classes}); "
        f"{s.retries} retried, {s.shared} shared, {s.not_modified} not modified, "
        f"{s.given_up} given up, {s.host_down} host-down",
        f"errors:   {errors}",
        f"bytes:    {human(s.bytes_fetched)} fetched, {human(s.bytes_stored)} stored, "
        f"{human(s.bytes_linked)} saved by links",
        f"rate:     {rate} records/s",
        f"log:      {s.log}",
        f"summary:  {s.summary_file}",
    ]
    return "\n".join(lines)


# Commands that live in their own modules: the operator tools and OAI-PMH.
main.add_command(show)
main.add_command(verify)
main.add_command(report)
main.add_command(oai)
main.add_command(export)
main.add_command(replicate)
main.add_command(audit)
