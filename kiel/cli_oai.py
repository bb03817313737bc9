"""``kiel oai serve`` and ``kiel oai index``: wiring only (see kiel.oai)."""

from __future__ import annotations

import os

import click

from kiel.cli_common import get_home, home_option, library_errors
from kiel.errors import KielError
from kiel.tist import iso


class OAIServeError(KielError):
    exit_status = 2


@click.group("oai")
def oai() -> None:
    """The OAI-PMH 2.0 data provider over the store (docs/oai.md).

    \b
    Example:
      kiel oai index --home /srv/kiel
      kiel oai serve --home /srv/kiel --bind 127.0.0.1:8080
    """


def _print_stats(stats) -> None:
    earliest = iso(stats.earliest) if stats.earliest is not None else "-"
    click.echo(f"index:    {stats.path}")
    click.echo(f"records:  {stats.records} ({stats.deleted} deleted), "
               f"{stats.sets} sets, {stats.skipped} directories skipped")
    click.echo(f"earliest: {earliest}")
    click.echo(f"seconds:  {stats.seconds}")


@oai.command("index")
@home_option
@library_errors
def index_cmd(home: str | None) -> None:
    """Rebuild the OAI index of the store (HOME/var/oai/current).

    The renewal refreshes it at the end of each run; run this after
    changing the store by hand, or before the first `kiel oai serve`.
    Serving goes on during the rebuild and switches to the new index when
    it is complete.

    \b
    Example:
      kiel oai index --home /srv/kiel
    """
    from kiel.oai import build

    _print_stats(build(get_home(home).root))


@oai.command("serve")
@home_option
@click.option("--bind", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Address to listen on ([::1]:8080 for IPv6).")
@library_errors
def serve_cmd(home: str | None, bind: str) -> None:
    """Serve the store over OAI-PMH 2.0 with waitress until interrupted.

    Builds the index first when there is none. The base URL announced in
    responses is the base_url setting of etc/kiel.conf; set it to the
    address harvesters use.

    \b
    Example:
      kiel oai serve --home /srv/kiel --bind 0.0.0.0:8080
      curl 'http://127.0.0.1:8080/oai?verb=Identify'
    """
    import waitress

    from kiel.oai import build, create_app
    from kiel.oai.index import CURRENT, oai_dir

    h = get_home(home)
    if not os.path.isdir(h.store):
        raise OAIServeError(f"{h.store}: no store here (is --home right? see 'kiel init')")
    if not os.path.lexists(os.path.join(oai_dir(h.root), CURRENT)):
        click.echo("no OAI index yet; building it")
        _print_stats(build(h.root))
    app = create_app(h.root)
    click.echo(f"serving {h.root} on http://{bind}/ (base URL {app.config.base_url}); "
               "Ctrl-C stops")
    try:
        # More threads than max_requests, so requests over the limit reach
        # the application and are answered 503 instead of waiting in line.
        waitress.serve(app, listen=bind, threads=app.config.max_requests + 4,
                       ident="kiel-oai", _quiet=True)
    except KeyboardInterrupt:
        click.echo("stopped")
    except (OSError, ValueError) as e:
        raise OAIServeError(f"cannot listen on {bind}: {e}") from None
