"""Per-object decisions, as pure functions of values: retry or not, how long
to wait, give up or not. No I/O, no clock of their own: tests call them
with the values they want."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

TRANSIENT_ERRORS = frozenset({"timeout", "connect", "refused", "reset", "incomplete",
                              "truncated"})
TRANSIENT_STATUS = frozenset({"429", "502", "503", "504"})
# Errors that mean the host could not be reached at all (the circuit breaker's).
CONNECT_ERRORS = frozenset({"dns", "refused", "connect", "host-down", "denied-dns"})


def is_transient(status: str, error: str | None) -> bool:
    return (error in TRANSIENT_ERRORS) or status in TRANSIENT_STATUS


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value in seconds (delta or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def retry_delay(attempt: int, base: float, retry_after: float | None, cap: float,
                jitter: float | None = None) -> float:
    """Exponential backoff with jitter; a server's Retry-After, up to ``cap``,
    when it asks for longer."""
    j = random.uniform(0.5, 1.5) if jitter is None else jitter
    delay: float = base * (2 ** (attempt - 1)) * j
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def should_retry(status: str, error: str | None, attempt: int, retries: int,
                 stopping: bool) -> bool:
    return is_transient(status, error) and attempt <= retries and not stopping


@dataclass(frozen=True)
class Age:
    """What the give-up decision needs of an object's past."""

    since: int | None  # its first attempt
    ever_ok: bool
    given_up: bool


def give_up(age: Age, now: int, give_up_after: int | None, record_changed: bool) -> str:
    """``fetch``, ``given-up`` (already; skip quietly), ``give-up`` (now; note it)
    or ``revive`` (given up, but the record changed: try again).

    The protocol's termination strategy: an object that never answered for
    longer than ``give_up_after`` is no longer fetched until its record
    changes."""
    if age.given_up:
        return "revive" if record_changed else "given-up"
    if give_up_after is not None and not age.ever_ok and age.since is not None \
            and now - age.since > give_up_after and not record_changed:
        return "give-up"
    return "fetch"
