"""What every click command shares: ``--home``, and library errors as exits."""

from __future__ import annotations

import functools

import click

from kiel.errors import KielError
from kiel.home import Home, locate

home_option = click.option(
    "--home", "home", metavar="DIR", envvar="KIEL_HOME", default=None,
    help="The Kiel home (default: $KIEL_HOME, else your home directory).",
)


def get_home(home: str | None) -> Home:
    return locate(home)


class KielClickError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def library_errors(fn):
    """Turn a :class:`KielError` into a clear message and its exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KielError as e:
            raise KielClickError(str(e), e.exit_status) from None

    return wrapper
