"""What every click command shares: ``--home``, and library errors as exits."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import click

from kiel.errors import KielError
from kiel.exits import ExitStatus
from kiel.home import Home, open_home
from kiel.text import printable

home_option = click.option(
    "--home", "home", metavar="DIR", envvar="KIEL_HOME", default=None,
    help="The Kiel home (default: $KIEL_HOME, else your home directory).",
)


def get_home(home: str | None) -> Home:
    """The home of ``--home``: it must exist and its kiel.conf must parse."""
    return open_home(home)


def no_contact_warning(h: Home) -> str | None:
    """An empty ``contact`` leaves the User-Agent naming no one a site owner
    could write to before blocking the archive. Never an error."""
    if h.config().contact:
        return None
    return (f"warning: {h.conf}: contact is empty, so the User-Agent names no one "
            "site owners can reach; set it, e.g. contact = mailto:archive@example.org")


_P = ParamSpec("_P")
_R = TypeVar("_R")


class KielClickError(click.ClickException):
    """A message and its exit status (docs/operations.md)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it per class


def library_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn a :class:`KielError` into a clear message and its exit status."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            try:
                return fn(*args, **kwargs)
            finally:
                sys.stdout.flush()  # a closed pipe shows here, not at exit
        except BrokenPipeError:
            _quiet_exit()
        except KielError as e:
            raise KielClickError(printable(str(e)), e.exit_status) from None
        except OSError as e:
            # The last net under every command: a file the library did not
            # expect to fail becomes one line naming it, never a traceback.
            where = f"{e.filename}: " if e.filename else ""
            raise KielClickError(printable(f"{where}{e.strerror or e}"), 74) from None

    return wrapper


def _quiet_exit() -> NoReturn:
    """The reader of our output went away (``kiel verify | head``): stop
    without a word, as a command killed by SIGPIPE does. Standard output is
    pointed at /dev/null first, so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise SystemExit(ExitStatus.SIGPIPE)
