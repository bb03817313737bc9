"""The counts of one run, kept under one lock, and the summary built from them."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kiel.exits import ExitStatus
from kiel.renewal.policy import CONNECT_ERRORS
from kiel.replies import status_class

DENIED = "denied"  # the error of an attempt the network guard refused

MAX_LISTED_PROBLEMS = 1000


@dataclass
class Stats:
    """Counters shared by the threads of a run; change them through :meth:`add`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records_found: int = 0
    records_done: int = 0
    new_versions: int = 0
    virgin: int = 0
    unchanged: int = 0
    adopted: int = 0
    damaged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    input_errors: int = 0
    problems: list[str] = field(default_factory=list)
    refs: int = 0
    duplicates: int = 0
    gone: int = 0
    gone_held: int = 0
    back: int = 0
    objects_total: int = 0
    objects: int = 0
    attempts: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unreachable_hosts: Counter[str] = field(default_factory=Counter)
    denied_hosts: Counter[str] = field(default_factory=Counter)  # refused by the network guard
    retries: int = 0
    shared: int = 0
    not_modified: int = 0
    given_up: int = 0
    host_down: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    bytes_linked: int = 0
    repaired: int = 0  # records an earlier run left in flight, repaired by this one

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def problem(self, text: str, input_error: bool) -> None:
        with self.lock:
            if input_error:
                self.input_errors += 1
            if len(self.problems) < MAX_LISTED_PROBLEMS:
                self.problems.append(text)

    def attempt(self, status: str, error: str | None, host: str, *, retried: bool = False,
                fetched: int = 0, stored: int = 0, linked: int = 0) -> None:
        """One attempt; ``host`` is ``scheme://host:port`` (:func:`kiel.urls.host_of`),
        so that the reply is classed by what it means in its protocol (an FTP 550
        is a 4xx, not a 5xx), as ``kiel report`` counts it."""
        with self.lock:
            self.attempts += 1
            self.by_class[status_class(host, status)] += 1
            if error:
                self.errors[error] += 1
                if error in CONNECT_ERRORS:
                    self.unreachable_hosts[host] += 1
                elif error == DENIED:
                    self.denied_hosts[host] += 1
            if retried:
                self.retries += 1
            self.bytes_fetched += fetched
            self.bytes_stored += stored
            self.bytes_linked += linked

    def counts(self) -> dict[str, Any]:
        """Every counter, as JSON values (a worker process hands them over)."""
        with self.lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}

    def merge(self, counts: dict[str, Any]) -> None:
        """Add a worker process's :meth:`counts` to these."""
        with self.lock:
            for k, v in counts.items():
                cur = getattr(self, k)
                if isinstance(cur, Counter):
                    cur.update(v)
                elif isinstance(cur, list):
                    cur.extend(v[:max(0, MAX_LISTED_PROBLEMS - len(cur))])
                else:
                    setattr(self, k, cur + v)

    def connect_failures(self) -> int:
        return sum(n for e, n in self.errors.items() if e in CONNECT_ERRORS)

    def denied(self) -> int:
        """Attempts the network guard refused to dial (``000 denied``)."""
        return self.errors[DENIED]

    def alert(self, share: float, min_attempts: int) -> str | None:
        """A person is needed: ``share`` of the attempts (at least ``min_attempts``)
        could not connect or were refused by the network guard. Each cause is
        named in its own words: a denial is a setting (or a resolver's sinkhole
        answer), not a network that is down."""
        failures, denied = self.connect_failures(), self.denied()
        if self.attempts < min_attempts or failures + denied < share * self.attempts \
                or not failures + denied:
            return None

        def top(hosts: Counter[str]) -> str:
            return ", ".join(f"{h} ({n})" for h, n in hosts.most_common(3))

        def pct(n: int) -> str:
            return f"{n} of {self.attempts} attempts ({100 * n / self.attempts:.0f} %)"

        parts = []
        if failures:
            parts.append(f"{pct(failures)} could not connect; most affected: "
                         f"{top(self.unreachable_hosts)}")
        if denied:
            parts.append(f"{pct(denied)} were denied by the network guard (the address "
                         "dialled is in deny_networks or an always-refused kind, and not in "
                         "allow_networks; or the resolver answers with such addresses); "
                         f"most affected: {top(self.denied_hosts)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Summary:
    tist: int
    end: int
    duration: float
    full_run: bool
    records_found: int
    records_renewed: int
    new_versions: int
    virgin: int
    unchanged: int
    adopted: int
    damaged: int
    skipped: dict[str, int]
    input_errors: int
    problems: tuple[str, ...]
    refs: int
    duplicates: int
    gone: int
    gone_held: int  # records that would have been marked gone, held back
    back: int
    objects: int
    attempts: int
    attempts_by_class: dict[str, int]
    errors_by_kind: dict[str, int]
    retries: int
    shared: int
    not_modified: int
    given_up: int
    host_down: int
    bytes_fetched: int
    bytes_stored: int
    bytes_linked: int
    interrupted: str | None  # "SIGTERM", "SIGINT", "max-time", "worker-lost" or None
    alert: str | None  # a person is needed: most attempts could not connect or were denied
    log: str
    summary_file: str
    # The failure of our own disk that stopped the run (it exits 74), or None.
    failure: str | None = None
    # Records an earlier run left in flight when it stopped, repaired by this one.
    repaired: int = 0

    @property
    def exit_status(self) -> int:
        if self.failure:
            return ExitStatus.STORE
        if self.interrupted == "SIGINT":
            return ExitStatus.SIGINT
        if self.interrupted == "SIGTERM":
            return ExitStatus.SIGTERM
        if self.alert:
            return ExitStatus.ALERT
        if self.interrupted == "worker-lost":
            return ExitStatus.PROBLEMS
        return ExitStatus.PROBLEMS if self.input_errors or self.gone_held or self.damaged \
            else ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_status"] = int(self.exit_status)
        d["records_per_second"] = round(self.records_renewed / self.duration, 1) \
            if self.duration else None
        return d
