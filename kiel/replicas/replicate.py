"""``kiel replicate``: bring every replica up to date with the front's home.

The replicas are done at the same time (they are other machines), with two
rsync runs each, under the renewal lock (so the copy is the state between
two renewals, never half of one):

1. every replicated file the replica does not have yet
   (``--ignore-existing``): a version, an attempt file or a run summary,
   once on a replica, is never sent again, so damage to the front's copy
   (a truncated body, whose size changed) cannot travel to the backs;
2. the files Kiel itself replaces or appends to (``00notes``, ``00last``,
   ``00gone``, ``etc/kiel.conf``, ``etc/branches.xml``,
   ``var/branches-in-use.xml``), sent when their size or time changed.

Nothing is ever deleted on a replica (no ``--delete``). rsync writes each
file under a hidden temporary name and renames it when complete; a cut
transfer keeps what arrived in ``.kiel-partial/`` beside it (hidden: never
replicated, never compared), and the next run completes it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kiel.exits import ExitStatus
from kiel.home import Home, Lock
from kiel.replica import Replica
from kiel.replicas import rsync

DONE = "done"
UNREACHABLE = "unreachable"
FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    replica: Replica
    state: str  # done, unreachable, failed
    files: int  # files and links sent
    detail: str  # rsync's words when not done

    def __str__(self) -> str:
        if self.state == DONE:
            return f"{self.replica}: up to date, {self.files} files sent"
        if self.state == UNREACHABLE:
            return f"{self.replica}: unreachable: {self.detail}"
        return f"{self.replica}: not up to date: {self.detail}"


@dataclass(frozen=True)
class Replication:
    outcomes: tuple[Outcome, ...]

    @property
    def exit_status(self) -> int:
        states = {o.state for o in self.outcomes}
        if UNREACHABLE in states:
            return ExitStatus.ALERT
        if FAILED in states:
            return ExitStatus.PROBLEMS
        return ExitStatus.OK


Progress = Callable[[Replica, str, int], None]  # replica, step, files sent so far


def replicate(home: Home, replicas: Sequence[Replica], *, rsync_bin: str = "rsync",
              bwlimit: str | None = None, progress: Progress | None = None) -> Replication:
    """Every replica at once; an unreachable one is noted, the others are done."""
    children = rsync.Children()
    with Lock(home):
        return Replication(tuple(rsync.each(
            replicas, lambda r: _one(home, r, rsync_bin, bwlimit, progress, children), children)))


def _one(home: Home, replica: Replica, rsync_bin: str, bwlimit: str | None,
         progress: Progress | None, children: rsync.Children) -> Outcome:
    sent = 0

    def count(step: str) -> Callable[[rsync.Item], None]:
        def on_item(item: rsync.Item) -> None:
            nonlocal sent
            if item.content:
                sent += 1
                if progress is not None:
                    progress(replica, step, sent)
        return on_item

    extra = [f"--partial-dir={rsync.PARTIAL_DIR}", rsync.OUT_FORMAT]
    if bwlimit:
        extra.append(f"--bwlimit={bwlimit}")
    src = home.root.rstrip("/") + "/"
    steps = (("new files", ["--ignore-existing", *rsync.FILTERS]),
             # Times compared to the nanosecond (rsync 3.2.3 and later): a
             # 00last rewritten in the second it was last sent is still sent.
             ("notes and state", ["--modify-window=-1", *rsync.MUTABLE_FILTERS]))
    for step, args in steps:
        if progress is not None:
            progress(replica, step, sent)
        run = rsync.run(rsync.argv(rsync_bin, replica, *extra, *args, src, replica.url()),
                        count(step), children=children)
        if run.unreachable:
            return Outcome(replica, UNREACHABLE, sent, run.error or f"rsync exit {run.status}")
        if not run.ok:
            return Outcome(replica, FAILED, sent, run.error or f"rsync exit {run.status}")
    return Outcome(replica, DONE, sent, "")
