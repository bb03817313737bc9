"""``kiel replicate`` and ``kiel audit``: the front and its back machines."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import click

from kiel.cli_common import get_home, home_option, library_errors
from kiel.errors import ConfigError
from kiel.home import Home
from kiel.replica import Replica


class _Stopped(Exception):
    def __init__(self, signum: int):
        self.status = 130 if signum == signal.SIGINT else 143


@contextmanager
def _signals() -> Iterator[None]:
    """SIGINT and SIGTERM end the command through its ``finally`` blocks, so
    the rsync child is ended and the lock released (exit 130 or 143)."""
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Stopped(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped as e:
        click.echo("\r\033[K" if sys.stderr.isatty() else "", err=True, nl=False)
        click.echo("stopped by a signal", err=True)
        sys.exit(e.status)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _replicas(h: Home) -> tuple[Replica, ...]:
    replicas = h.config().replicas
    if not replicas:
        raise ConfigError(f"{h.conf}: no replicas: set 'replicas' to the rsync destinations of "
                          "the back machines (docs/replicas.md)")
    return replicas


def _show(quiet: bool, progress: bool | None) -> bool:
    return progress if progress is not None else (sys.stderr.isatty() and not quiet)


def _printer(show: bool) -> Callable[[str], None] | None:
    if not show:
        return None
    state = {"last": 0.0}

    def say(text: str) -> None:
        now = time.monotonic()
        if now - state["last"] < 0.2:
            return
        state["last"] = now
        click.echo(f"\r\033[K{text}", err=True, nl=False)

    return say


def _clear(show: bool) -> None:
    if show:
        click.echo("\r\033[K", err=True, nl=False)


quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="Print only what a person must read (for cron).")
progress_option = click.option("--progress/--no-progress", default=None,
                               help="Progress display (default: on when stderr is a terminal).")


@click.command()
@home_option
@click.option("--bwlimit", metavar="RATE",
              help="Bandwidth limit, as rsync's --bwlimit (e.g. 10m: 10 MiB/s).")
@quiet_option
@progress_option
@library_errors
def replicate(home: str | None, bwlimit: str | None, quiet: bool,
              progress: bool | None) -> None:
    """Bring every replica up to date with this home (rsync; nothing deleted).

    Sends store/, etc/, var/runs/ and var/branches-in-use.xml to each
    destination of the 'replicas' setting. Exit 0 when every replica is up to
    date, 69 with one alert line per unreachable replica (after the others were
    done), 1 when a transfer failed otherwise, 75 while a renewal runs.

    \b
    Example, nightly from cron after the renewal:
      30 1 * * *  kiel renew --home /srv/kiel -q; kiel replicate --home /srv/kiel -q
    """
    from kiel.replicas.replicate import DONE, UNREACHABLE
    from kiel.replicas.replicate import replicate as run

    h = get_home(home)
    replicas = _replicas(h)
    show = _show(quiet, progress)
    say = _printer(show)
    with _signals():
        try:
            result = run(h, replicas, bwlimit=bwlimit, progress=(
                (lambda r, step, n: say(f"{r}: {step}, {n} files sent")) if say else None))
        finally:
            _clear(show)
    for o in result.outcomes:
        if o.state == UNREACHABLE:
            click.echo(f"alert: replica {o.replica} unreachable: {o.detail}", err=True)
        elif o.state != DONE:
            click.echo(f"error: {o}", err=True)
        elif not quiet:
            click.echo(str(o))
    sys.exit(result.exit_status)


@click.command()
@home_option
@click.option("--repair", is_flag=True,
              help="Restore each copy that does not agree; the damaged copy is kept in "
                   "var/damaged/<tist>/ on its machine.")
@quiet_option
@progress_option
@library_errors
def audit(home: str | None, repair: bool, quiet: bool, progress: bool | None) -> None:
    """Compare every file of this home and of each replica, byte for byte.

    Checksums are computed where each file lies (rsync --checksum); every body
    and version is also checked against the sha256 of its notes. One line per
    path whose copies diverge: the copies that agree, those that differ or lack
    it. A plain audit changes nothing. Exit 0 when all copies agree, 1 when any
    diverge, 69 with one alert line per unreachable replica, 75 while a renewal
    runs.

    \b
    Example, weekly from cron, after that night's replicate:
      30 5 * * 0  kiel audit --home /srv/kiel -q
    """
    from kiel.replicas.audit import audit as run

    h = get_home(home)
    replicas = _replicas(h)
    show = _show(quiet, progress)
    say = _printer(show)
    with _signals():
        try:
            result = run(h, replicas, repair=repair, progress=say)
        finally:
            _clear(show)
    for d in result.divergences:
        click.echo(str(d))
    for r in result.repaired:
        click.echo(str(r))
    for f in result.failed:
        click.echo(f"error: {f}", err=True)
    for u in result.unreachable:
        click.echo(f"alert: {u}", err=True)
    if not quiet:
        copies = ", ".join(result.copies)
        if result.divergences:
            click.echo(f"audit: {copies}: {len(result.divergences)} paths diverge"
                       + (f", {len(result.repaired)} copies repaired" if repair else ""))
        else:
            click.echo(f"audit: {copies}: all copies agree")
    sys.exit(result.exit_status)
