"""One error hierarchy for the library; the CLI maps it to messages and exits."""

from __future__ import annotations


class KielError(Exception):
    """Base of every error the library raises on purpose."""

    exit_status = 2


class ConfigError(KielError):
    """A setting or configuration file is wrong (names the file and line)."""

    exit_status = 2


class BranchesError(KielError):
    """etc/branches.xml (or another branches file) is not valid."""

    exit_status = 2


class LockHeld(KielError):
    """Another renewal holds the lock of this home."""

    exit_status = 75  # EX_TEMPFAIL, as docs/contract.md fixes


class StoreError(KielError):
    """The store cannot be written (full disk, read-only, planted link)."""

    exit_status = 74  # EX_IOERR


class NotFound(KielError):
    """A record or path asked for is not in the store."""

    exit_status = 1
