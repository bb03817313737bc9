"""What every part of a renewal shares: the run's fixed facts, made whole
before anything starts, and its control (the stop, a failure of our own
disk, the problems reported), with one owner.

The parts get these values, not callbacks into the run: a worker asks
``control.stopping()`` of the one :class:`Control`, and reads the run's
clock and settings from its :class:`RunFacts`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kiel.branches import Branch
from kiel.config import Config
from kiel.errors import StoreError
from kiel.home import Home
from kiel.renewal.log import RunLog
from kiel.renewal.options import Options
from kiel.renewal.stats import Stats


class Changes(Protocol):
    """The OAI-PMH change log as the renewal appends to it (kiel.oai.ChangeLog,
    which the run opens; the renewal does not import the readers)."""

    def append(self, kind: str, record_id: str | None, rel: str,
               version: int | None = None) -> object: ...


@dataclass(frozen=True)
class RunFacts:
    """A run's fixed facts."""

    home: Home
    cfg: Config
    opt: Options
    clock: Callable[[], float]  # the wall clock the run stamps with
    t0: float  # time.monotonic() at the start: durations and --max-time
    tist: int  # the run's timestamp: its log's and summary's names
    inputs: tuple[str, ...]  # the AMF files and directories read
    branches: tuple[Branch, ...]  # etc/branches.xml, compiled
    branches_bytes: bytes  # etc/branches.xml as it was read
    full_run: bool  # every record of the inputs (no --only, no --shard)
    suffix: str  # "" or "-shard-K-of-N": the log's and summary's names
    log: RunLog
    changes: Changes  # the OAI-PMH change log, appended as records change

    @property
    def store_root(self) -> str:
        return self.home.store

    def now(self) -> int:
        return int(self.clock())

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def out_of_time(self) -> bool:
        """``--max-time`` has passed."""
        return self.opt.max_time is not None and self.elapsed() > self.opt.max_time


class Control:
    """The run's stop and failure, and its problems: one owner for every part
    (the planner, the workers, the deposits, the worker processes)."""

    def __init__(self, stop: threading.Event | None, stats: Stats, log: RunLog):
        self._stop = stop
        self._stats = stats
        self._log = log
        self._fatal: StoreError | None = None
        self._lock = threading.Lock()

    @property
    def failure(self) -> StoreError | None:
        """The failure of our own disk that stopped the run, or None."""
        return self._fatal

    def stopping(self) -> bool:
        """A stop was asked for (a signal), or our own disk failed."""
        return self._fatal is not None or (self._stop is not None and self._stop.is_set())

    def failed(self) -> bool:
        return self._fatal is not None

    def fatal(self, e: BaseException, where: str) -> None:
        """Our own disk failed: stop the run cleanly; nothing half-written stays."""
        with self._lock:
            if self._fatal is not None:
                return
            if isinstance(e, StoreError):
                text = str(e)
            elif isinstance(e, OSError):
                text = f"{e.filename or where}: {e.strerror or e}"
            else:
                text = f"{where}: {e}"
            self._fatal = StoreError(text + "; the run stopped, nothing already stored was "
                                     "touched; the records it left in flight are reported by "
                                     "'kiel verify' until the next run repairs them")

    def failed_in_worker(self, text: str) -> None:
        """A worker process's disk failure, as it reported it."""
        with self._lock:
            if self._fatal is None:
                self._fatal = StoreError(text)

    def report(self, text: str, input_error: bool) -> None:
        """A problem a person should read: counted, listed, logged."""
        self._stats.problem(text, input_error)
        self._log.write("problem: " + text)
