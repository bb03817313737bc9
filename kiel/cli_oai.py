"""``kiel oai serve`` and ``kiel oai index``: wiring only (see kiel.oai)."""

from __future__ import annotations

import os
import re
from typing import Any

import click

from kiel.cli_common import get_home, home_option, library_errors
from kiel.errors import KielError
from kiel.home import Home
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


def _print_stats(stats: Any) -> None:
    earliest = iso(stats.earliest) if stats.earliest is not None else "-"
    click.echo(f"index:    {stats.path}")
    click.echo(f"records:  {stats.records} ({stats.deleted} deleted), "
               f"{stats.sets} sets, {stats.skipped} directories skipped")
    click.echo(f"earliest: {earliest}")
    if stats.changed:
        click.echo(f"repaired: {stats.changed} records listed anew, dated now")
    if stats.resumed:
        click.echo("resumed:  continued the walk of an interrupted rebuild")
    click.echo(f"seconds:  {stats.seconds}")


def _existing_home(home: str | None) -> Home:
    h = get_home(home)
    if not os.path.isdir(h.store):
        raise OAIServeError(f"{h.store}: no store here (is --home right? see 'kiel init')")
    return h


@oai.command("index")
@home_option
@click.option("--rebuild", is_flag=True,
              help="Walk the whole store (a repair); resumes an interrupted rebuild.")
@library_errors
def index_cmd(home: str | None, rebuild: bool) -> None:
    """Bring the OAI index up to date (HOME/var/oai/current).

    The renewal adds its changes to the index as it makes them; without
    --rebuild this folds them into the base (cheap, no walk of the store),
    or builds the base when there is none. --rebuild walks the store: run
    it after changing the store by hand. Serving goes on meanwhile.

    \b
    Example:
      kiel oai index --home /srv/kiel
      kiel oai index --home /srv/kiel --rebuild
    """
    # The provider is loaded only by the commands that use it (not a cycle).
    from kiel.oai import fold
    from kiel.oai import rebuild as do_rebuild

    h = _existing_home(home)
    _print_stats(do_rebuild(h.root) if rebuild else fold(h.root))


_BIND = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``; raises OAIServeError with what is accepted."""
    m = _BIND.match(bind.strip())
    port = int(m.group("port")) if m else -1
    if not m or not 0 < port < 65536:
        raise OAIServeError(f"--bind {bind}: expected HOST:PORT with a port from 1 to 65535 "
                            "(for example 127.0.0.1:8080 or [::1]:8080)")
    return m.group("v6") or m.group("host"), port


@oai.command("serve")
@home_option
@click.option("--bind", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Address to listen on ([::1]:8080 for IPv6).")
@library_errors
def serve_cmd(home: str | None, bind: str) -> None:
    """Serve the store over OAI-PMH 2.0 with waitress until interrupted.

    Builds the index first when there is none. The base URL announced in
    responses is the base_url setting of etc/kiel.conf when it is set,
    else the address each request came to.

    \b
    Example:
      kiel oai serve --home /srv/kiel --bind 0.0.0.0:8080
      curl 'http://127.0.0.1:8080/oai?verb=Identify'
    """
    # The provider and its server are loaded only here (not a cycle).
    from kiel.oai import create_app, fold
    from kiel.oai.app import RETRY_AFTER
    from kiel.oai.index import CURRENT, oai_dir
    from kiel.oai.server import Limits, make_server

    host, port = parse_bind(bind)
    h = _existing_home(home)
    if not os.path.lexists(os.path.join(oai_dir(h.root), CURRENT)):
        click.echo("no OAI index yet; building it")
        _print_stats(fold(h.root))
    app = create_app(h.root)
    c = app.config
    # Threads for the requests at work and those waiting for a slot, so a
    # waiting request holds a thread rather than a place in an unseen queue.
    limits = Limits(threads=c.max_requests + 2 * c.max_requests + 4,
                    connection_limit=c.connection_limit, channel_timeout=c.channel_timeout,
                    max_request_body=c.max_request_body, retry_after=RETRY_AFTER)
    try:
        server = make_server(app, host, port, limits)
    except (OSError, ValueError) as e:
        raise OAIServeError(f"cannot listen on {bind}: {getattr(e, 'strerror', None) or e}") \
            from None
    where = f"http://{bind}/"
    click.echo(f"serving {h.root} on {where} (base URL "
               f"{app.fixed_base or 'from each request'}); Ctrl-C stops")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()
        server.task_dispatcher.shutdown()
