"""What a running renewal is writing, as ``verify`` sees it from outside.

A renewal writes a record's files one after another: a body under a
temporary name, then its final name, then the notes line that names it; a
version, then (when the record is done) the renewal line. Between two such
steps the store looks damaged to a reader (a file no notes line names yet),
and is not. Two things on disk tell such a moment from damage:

- a temporary name carries the host and the process that made it
  (:func:`kiel.store.tmp_abandoned` says whether that process is gone);
- each run notes the records it starts and ends in its journal,
  ``var/run-<tist>[-shard-K-of-N]-<pid>/journal`` (kiel/renewal/journal.py):
  a record started and not ended by a live process is being written.

The journals are read only when a finding needs them, and then only the
bytes added since the last read, so a verify of a quiet store pays one
``listdir`` of ``var/`` per such finding.
"""

from __future__ import annotations

import os

from kiel.notes import NotRegular, open_regular
from kiel.store import pid_alive
from kiel.workdir import JOURNAL, pid_of


class InFlight:
    """The records live renewals of one home are writing (see module doc)."""

    def __init__(self, var_dir: str):
        self.var = var_dir
        self._read: dict[str, int] = {}  # work directory -> journal bytes read
        self._open: dict[str, set[str]] = {}  # work directory -> records started, not ended
        self._pids: dict[str, int] = {}

    def holds(self, rel: str) -> bool:
        """Whether a live renewal has started the record at ``store/<rel>``
        and not ended it."""
        if self._has(rel):
            return True
        self.refresh()
        return self._has(rel)

    def _has(self, rel: str) -> bool:
        return any(rel in records and pid_alive(self._pids[d])
                   for d, records in self._open.items())

    def refresh(self) -> None:
        try:
            names = os.listdir(self.var)
        except OSError:
            names = []
        live = set()
        for name in names:
            pid = pid_of(name)
            if pid is None or not pid_alive(pid):
                continue
            live.add(name)
            self._pids[name] = pid
            self._read_more(name)
        for gone in set(self._open) - live:
            del self._open[gone]
            self._read.pop(gone, None)

    def _read_more(self, name: str) -> None:
        start = self._read.get(name, 0)
        try:
            fd = open_regular(os.path.join(self.var, name, JOURNAL), os.O_RDONLY)
        except (OSError, NotRegular):
            return
        try:
            data = os.pread(fd, max(0, os.fstat(fd).st_size - start), start)
        finally:
            os.close(fd)
        whole = data[: data.rfind(b"\n") + 1]  # a line being written waits
        records = self._open.setdefault(name, set())
        for raw in whole.splitlines():
            rel = raw[1:].decode("utf-8", "surrogateescape")
            if raw[:1] == b"+":
                records.add(rel)
            elif raw[:1] == b"-":
                records.discard(rel)
        self._read[name] = start + len(whole)
