"""The counts of one run, kept under one lock, and the summary built from them.

The counts are named once, in :class:`Counts` (as the summary file states
them); :class:`Stats` keeps them while the run goes, changed through its
methods only, and hands out a :class:`Counts` snapshot; a :class:`Summary`
is that snapshot with what the run says of itself."""

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


@dataclass(frozen=True, kw_only=True)
class Counts:
    """What a run counted, as its summary states it."""

    records_found: int = 0
    records_renewed: int = 0
    new_versions: int = 0
    virgin: int = 0
    unchanged: int = 0
    adopted: int = 0
    damaged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # found, not renewed: why
    input_errors: int = 0
    problems: tuple[str, ...] = ()
    refs: int = 0
    duplicates: int = 0
    gone: int = 0
    gone_held: int = 0  # records that would have been marked gone, held back
    back: int = 0
    objects: int = 0
    attempts: int = 0
    attempts_by_class: dict[str, int] = field(default_factory=dict)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    shared: int = 0
    not_modified: int = 0
    given_up: int = 0
    host_down: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    bytes_linked: int = 0
    repaired: int = 0  # records an earlier run left in flight, repaired by this one


# The counts kept by name: Counts' whole numbers, and the ones only the
# progress line and the alert read.
_TALLIES = frozenset(f.name for f in fields(Counts) if f.type in ("int", int))
_EXTRA = frozenset({"objects_total"})  # objects known so far (the progress line)
_BY = ("skipped", "attempts_by_class", "errors_by_kind", "unreachable_hosts", "denied_hosts")


class Stats:
    """The counts of a run while it goes, shared by its parts under one lock;
    changed through the methods only, read as :meth:`snapshot` or :meth:`get`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n: Counter[str] = Counter()
        self._by: dict[str, Counter[str]] = {name: Counter() for name in _BY}
        self._problems: list[str] = []

    def add(self, **counts: int) -> None:
        for k in counts:
            if k not in _TALLIES and k not in _EXTRA:
                raise KeyError(f"no count named {k}")
        with self._lock:
            self._n.update(counts)

    def get(self, name: str) -> int:
        """One whole-number count (:class:`Counts`' names, and ``objects_total``)."""
        with self._lock:
            return self._n[name]

    def skip(self, reason: str, n: int = 1) -> None:
        """Records found and not renewed, by reason."""
        if n:
            with self._lock:
                self._by["skipped"][reason] += n

    def skipped(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by["skipped"])

    def problem(self, text: str, input_error: bool) -> None:
        with self._lock:
            if input_error:
                self._n["input_errors"] += 1
            if len(self._problems) < MAX_LISTED_PROBLEMS:
                self._problems.append(text)

    def attempt(self, status: str, error: str | None, host: str, *, retried: bool = False,
                fetched: int = 0, stored: int = 0, linked: int = 0) -> None:
        """One attempt; ``host`` is ``scheme://host:port`` (:func:`kiel.urls.host_of`),
        so that the reply is classed by what it means in its protocol (an FTP 550
        is a 4xx, not a 5xx), as ``kiel report`` counts it."""
        with self._lock:
            n = self._n
            n["attempts"] += 1
            self._by["attempts_by_class"][status_class(host, status)] += 1
            if error:
                self._by["errors_by_kind"][error] += 1
                if error in CONNECT_ERRORS:
                    self._by["unreachable_hosts"][host] += 1
                elif error == DENIED:
                    self._by["denied_hosts"][host] += 1
            if retried:
                n["retries"] += 1
            n["bytes_fetched"] += fetched
            n["bytes_stored"] += stored
            n["bytes_linked"] += linked

    def snapshot(self, *, problems: tuple[str, ...] = ()) -> Counts:
        """The counts now (``problems``: more to list after the ones counted)."""
        with self._lock:
            return Counts(
                **{k: self._n[k] for k in _TALLIES},
                skipped=dict(self._by["skipped"]),
                attempts_by_class=dict(sorted(self._by["attempts_by_class"].items())),
                errors_by_kind=dict(sorted(self._by["errors_by_kind"].items())),
                problems=tuple(self._problems) + problems)

    def counts(self) -> dict[str, Any]:
        """Every count, as JSON values (a worker process hands them over)."""
        with self._lock:
            return {"n": dict(self._n), "by": {k: dict(v) for k, v in self._by.items()},
                    "problems": list(self._problems)}

    def merge(self, counts: dict[str, Any]) -> None:
        """Add a worker process's :meth:`counts` to these."""
        with self._lock:
            self._n.update(counts["n"])
            for k, v in counts["by"].items():
                self._by[k].update(v)
            room = max(0, MAX_LISTED_PROBLEMS - len(self._problems))
            self._problems.extend(counts["problems"][:room])

    def connect_failures(self) -> int:
        with self._lock:
            return sum(n for e, n in self._by["errors_by_kind"].items() if e in CONNECT_ERRORS)

    def denied(self) -> int:
        """Attempts the network guard refused to dial (``000 denied``)."""
        with self._lock:
            return self._by["errors_by_kind"][DENIED]

    def alert(self, share: float, min_attempts: int) -> str | None:
        """A person is needed: ``share`` of the attempts (at least ``min_attempts``)
        could not connect or were refused by the network guard. Each cause is
        named in its own words: a denial is a setting (or a resolver's sinkhole
        answer), not a network that is down."""
        failures, denied, attempts = self.connect_failures(), self.denied(), self.get("attempts")
        if attempts < min_attempts or failures + denied < share * attempts \
                or not failures + denied:
            return None
        with self._lock:
            unreachable = Counter(self._by["unreachable_hosts"])
            refused = Counter(self._by["denied_hosts"])

        def top(hosts: Counter[str]) -> str:
            return ", ".join(f"{h} ({n})" for h, n in hosts.most_common(3))

        def pct(n: int) -> str:
            return f"{n} of {attempts} attempts ({100 * n / attempts:.0f} %)"

        parts = []
        if failures:
            parts.append(f"{pct(failures)} could not connect; most affected: "
                         f"{top(unreachable)}")
        if denied:
            parts.append(f"{pct(denied)} were denied by the network guard (the address "
                         "dialled is in deny_networks or an always-refused kind, and not in "
                         "allow_networks; or the resolver answers with such addresses); "
                         f"most affected: {top(refused)}")
        return "; ".join(parts)


@dataclass(frozen=True, kw_only=True)
class Summary(Counts):
    """A run's counts, and what the run says of itself (``var/runs/<tist>.json``)."""

    tist: int
    end: int
    duration: float
    full_run: bool
    interrupted: str | None  # "SIGTERM", "SIGINT", "max-time", "worker-lost" or None
    alert: str | None  # a person is needed: most attempts could not connect or were denied
    log: str
    summary_file: str
    # The failure of our own disk that stopped the run (it exits 74), or None.
    failure: str | None = None

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
