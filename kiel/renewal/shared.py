"""URLs linked by several records: fetched once per run, linked by the rest.

The first record to reach a shared URL owns its fetch; the others follow.
Each shared URL has one :class:`asyncio.Future` on the run's loop: the
owner resolves it with its outcome, or fails it, on every exit path (a job
that ends without resolving it fails it: :func:`kiel.renewal.worker.end`),
and each follower's callback runs exactly once, on the loop.
No record waits on a shared fetch for ever.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from dataclasses import dataclass

from kiel.attempt import Result
from kiel.discovery import PageReading


@dataclass(frozen=True)
class Outcome:
    """The owner's attempt, as a follower links to it."""

    result: Result
    name: str  # the owner's attempt file name
    real: str | None  # the regular file that holds the body (None: empty or 000)
    same_as: str  # the owner's object directory, relative to the store
    reading: PageReading | None = None  # what the page offers, when it was searched


class Abandoned(Exception):
    """The owner's fetch ended without an attempt to share (stop, failure)."""


class Owner:
    """The right, and the duty, to settle one shared URL's future."""

    def __init__(self, url: str, future: Future[Outcome]):
        self.url = url
        self.future = future

    def resolve(self, outcome: Outcome) -> None:
        if not self.future.done():
            self.future.set_result(outcome)

    def fail(self, reason: str) -> None:
        if not self.future.done():
            self.future.set_exception(Abandoned(reason))
            self.future.exception()  # read: a URL nobody follows logs no warning


class SharedFetches:
    def __init__(self, urls: frozenset[str] | set[str]):
        self._urls = frozenset(urls)
        self._futures: dict[str, Future[Outcome]] = {}

    def role(self, url: str, always: bool = False) -> Owner | Future[Outcome] | None:
        """None: not shared. An :class:`Owner`: fetch it and settle. A future:
        follow it (``add_done_callback``). ``always``: shared whoever links it,
        though the scan did not see it twice (a deposit's API and files, which
        only the run finds)."""
        if url not in self._urls and not always:
            return None
        f = self._futures.get(url)
        if f is None:
            f = self._futures[url] = asyncio.get_running_loop().create_future()
            return Owner(url, f)
        return f
