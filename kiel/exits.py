"""Exit statuses: the one place that maps outcomes to the numbers a shell sees.

Only ``kiel.cli`` exits; the library returns outcomes and raises
:class:`kiel.errors.KielError`, each of which names its status here.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    PROBLEMS = 1  # done, with input errors, problems found, or a record not found
    USAGE = 2  # a usage or configuration error
    ALERT = 69  # EX_UNAVAILABLE: a large share of attempts could not connect
    STORE = 74  # EX_IOERR: the store could not be written
    LOCKED = 75  # EX_TEMPFAIL: another renewal holds the lock
    SIGINT = 130
    SIGPIPE = 141  # the reader of our output went away (kiel verify | head)
    SIGTERM = 143
