"""``kiel audit --repair``: restore each copy that does not agree.

A damaged copy is never deleted: it is moved to ``var/damaged/<tist>/<path>``
of the machine that held it, then the agreed content is put in its place.
On the front that is a rename and a copy under a hidden temporary name; on
a back, three rsync runs over exactly the paths concerned (``--files-from``):
the damaged copies (already fetched by the audit) are sent to
``var/damaged/<tist>/`` there, removed from their place by fetching them with
``--remove-source-files``, and the agreed content is sent in their place.
No other file is touched, so every other file keeps its inode and time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiel import store
from kiel.replica import FRONT, Replica
from kiel.replicas import rsync

if TYPE_CHECKING:
    from kiel.replicas.audit import Copy, Divergence


@dataclass(frozen=True)
class Repaired:
    path: str
    copy: str  # front, or a replica as written
    kept: str | None  # where the damaged copy now is, on that machine (None: it lacked it)
    restored: bool  # the agreed content is there now (else the copy was only moved aside)

    def __str__(self) -> str:
        if not self.restored:
            return f"{self.path}: moved aside on {self.copy} to {self.kept}"
        kept = f", damaged copy kept as {self.kept}" if self.kept else ""
        return f"{self.path}: restored on {self.copy}{kept}"


@dataclass(frozen=True)
class Failed:
    copy: str
    detail: str

    def __str__(self) -> str:
        return f"repair on {self.copy} failed: {self.detail}"


@dataclass(frozen=True)
class Target:
    replica: Replica


@dataclass
class _Plan:
    aside: list[tuple[str, str]]  # (path, a local file holding the damaged copy)
    place: list[tuple[str, str]]  # (path, a local file holding the agreed content)


def apply(root: str, work: str, rsync_bin: str, targets: dict[str, Target], damaged: str,
          found: Sequence[tuple[Divergence, dict[str, Copy]]],
          progress: Callable[[str], None] | None = None
          ) -> tuple[list[Repaired], list[Failed]]:
    plans: dict[str, _Plan] = {}
    for d, copies in found:
        if not d.decided:
            continue
        source = next((copies[n].local for n in d.agree if copies[n].local), None)
        for name in d.differ + d.lack:
            plan = plans.setdefault(name, _Plan([], []))
            local = copies[name].local
            if copies[name].key is not None and local is not None:
                plan.aside.append((d.path, local))
            if d.agree and copies[d.agree[0]].key is not None and source is not None:
                plan.place.append((d.path, source))
    repaired: list[Repaired] = []
    failed: list[Failed] = []
    # The front last: a replica's copy equal to the front's is read from the front.
    for name, plan in sorted(plans.items(), key=lambda np: np[0] == FRONT):
        if progress is not None:
            progress(f"{name}: repairing {len(plan.aside) + len(plan.place)} files")
        if name == FRONT:
            _front(root, damaged, plan)
        else:
            err = _replica(targets[name], rsync_bin, os.path.join(work, f"repair-{name_of(name)}"),
                           damaged, plan)
            if err is not None:
                failed.append(Failed(name, err))
                continue
        placed = {p for p, _ in plan.place}
        aside = {p for p, _ in plan.aside}
        for path in sorted(aside | placed):
            kept = os.path.join(damaged, path) if path in aside else None
            repaired.append(Repaired(path, name, kept, path in placed))
    repaired.sort(key=lambda r: (r.path, r.copy != FRONT, r.copy))
    return repaired, failed


def name_of(spec: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in spec)


def _front(root: str, damaged: str, plan: _Plan) -> None:
    for path, _ in plan.aside:
        dest = os.path.join(root, damaged, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(os.path.join(root, path), dest)
    for path, source in plan.place:
        _put(source, os.path.join(root, path))


def _put(source: str, dest: str) -> None:
    """A copy of ``source`` (file or link, with its time) appears at ``dest``
    whole, from a hidden temporary name (docs/contract.md, Safety)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = os.path.join(os.path.dirname(dest), store.tmp_name())
    if os.path.islink(source):
        os.symlink(os.readlink(source), tmp)
    else:
        shutil.copy2(source, tmp)
    os.rename(tmp, dest)


def _stage(source: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.islink(source):
        os.symlink(os.readlink(source), dest)
    else:
        try:
            os.link(source, dest)
        except OSError:
            shutil.copy2(source, dest)


def _replica(t: Target, rsync_bin: str, work: str, damaged: str, plan: _Plan) -> str | None:
    r = t.replica
    steps: list[tuple[list[str], list[str]]] = []
    if plan.aside:
        aside = os.path.join(work, "aside")
        for path, local in plan.aside:
            _stage(local, os.path.join(aside, damaged, path))
        kept = [os.path.join(damaged, p) for p, _ in plan.aside]
        # -O: the directories keep their times; only the listed files are sent.
        steps.append((rsync.argv(rsync_bin, r, "-O", aside + "/", r.url()), kept))
        steps.append((rsync.argv(rsync_bin, r, "--remove-source-files", r.url(),
                                 os.path.join(work, "removed") + "/"),
                      [p for p, _ in plan.aside]))
    if plan.place:
        good = os.path.join(work, "good")
        for path, source in plan.place:
            _stage(source, os.path.join(good, path))
        # -I: sent even where a damaged copy kept its size and time.
        steps.append((rsync.argv(rsync_bin, r, "-O", "-I", good + "/", r.url()),
                      [p for p, _ in plan.place]))
    for cmd, paths in steps:
        run = rsync.run(cmd, files_from=paths)
        if not run.ok:
            return run.error or f"rsync exit {run.status}"
    return None
