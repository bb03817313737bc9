"""One error hierarchy for the library; the CLI maps it to messages and exits."""

from __future__ import annotations

from kiel.exits import ExitStatus


class KielError(Exception):
    """Base of every error the library raises on purpose."""

    exit_status: int = ExitStatus.USAGE


class ConfigError(KielError):
    """A setting or configuration file is wrong (names the file and line)."""

    exit_status = ExitStatus.USAGE


class BranchesError(KielError):
    """etc/branches.xml (or another branches file) is not valid."""

    exit_status = ExitStatus.USAGE


class LockHeld(KielError):
    """Another renewal holds the lock of this home."""

    exit_status = ExitStatus.LOCKED


class StoreError(KielError):
    """The store cannot be written (full disk, read-only, planted link)."""

    exit_status = ExitStatus.STORE


class NotFound(KielError):
    """A record or path asked for is not in the store."""

    exit_status = ExitStatus.PROBLEMS
