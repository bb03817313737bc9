"""``kiel audit``: compare the content of every copy, decide which agree.

The content of a back's files is compared where it lies: rsync's checksum
mode (``--checksum --dry-run``) from the front to each back computes each
file's checksum on its own machine and lists the files whose content
differs or that the back lacks; a second listing, the other way with
``--ignore-existing``, names the files only the back holds. Only those
paths are then fetched from the backs (into a work directory of the
front's ``var/``), so an audit ships checksums and names, not the archive.
Every object body and version of the front is also hashed against the
sha256 its notes recorded (``kiel.verify`` with fixity).

Which copies agree, per path (docs/replicas.md, Who is right):

- a file Kiel replaces (``00last``, ``00gone``, ``etc/kiel.conf``,
  ``etc/branches.xml``, ``var/branches-in-use.xml``) is the front's state:
  the backs follow the front, whatever their number;
- a body or version whose notes name a sha256 (or a link target): the
  copies that match the notes, however few;
- a ``00notes`` whose copies are each the beginning of the longest: the
  longest (notes only grow; a shorter copy is behind or cut);
- anything else: the content two of the three copies share, or the one
  content of all copies that have it, when two at least do, or the front's
  when only the front has it (not replicated yet). Otherwise nobody:
  nothing is changed and the path is named for a person.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kiel import notes, store
from kiel.exits import ExitStatus
from kiel.home import Home, Lock
from kiel.replica import FRONT, Replica
from kiel.replicas import rsync
from kiel.replicas.repair import Failed, Repaired, Target, apply
from kiel.tist import now as _now

Key = tuple[str, str]  # ("file", sha256) or ("link", target) or ("other", what)


@dataclass(frozen=True)
class Copy:
    """What one copy holds at a path, and where its content can be read here."""

    key: Key | None  # None: the copy lacks the path
    local: str | None  # a path on this machine holding the same content


@dataclass(frozen=True)
class Divergence:
    path: str  # relative to the home
    agree: tuple[str, ...]
    differ: tuple[str, ...]
    lack: tuple[str, ...]
    basis: str  # why these agree, or why nobody does
    decided: bool

    def __str__(self) -> str:
        parts = [f"agree {', '.join(self.agree) if self.agree else 'nobody'}"]
        if self.differ:
            parts.append(f"differ {', '.join(self.differ)}")
        if self.lack:
            parts.append(f"lack {', '.join(self.lack)}")
        why = self.basis if self.decided else f"{self.basis}: a person must decide"
        return f"{self.path}: {'; '.join(parts)} ({why})"


@dataclass(frozen=True)
class Unreachable:
    replica: Replica
    detail: str

    def __str__(self) -> str:
        return f"replica {self.replica} unreachable: {self.detail}"


@dataclass(frozen=True)
class Audit:
    copies: tuple[str, ...]  # front and every replica reached
    divergences: tuple[Divergence, ...]
    unreachable: tuple[Unreachable, ...]
    repaired: tuple[Repaired, ...] = ()
    failed: tuple[Failed, ...] = ()
    damaged_dir: str | None = None  # var/damaged/<tist>, relative to each home

    @property
    def exit_status(self) -> int:
        if self.unreachable:
            return ExitStatus.ALERT
        if self.divergences or self.failed:
            return ExitStatus.PROBLEMS
        return ExitStatus.OK


Progress = Callable[[str], None]


@dataclass
class _Listing:
    """What the listings said of one replica: the paths to look at closer."""

    replica: Replica
    name: str
    paths: set[str] = field(default_factory=set)
    fetched: str = ""  # the local directory its copies of those paths were fetched into
    down: str | None = None


def audit(home: Home, replicas: Sequence[Replica], *, repair: bool = False,
          rsync_bin: str = "rsync", progress: Progress | None = None,
          now: Callable[[], int] = _now) -> Audit:
    """Compare the front with each replica; with ``repair``, restore the
    copies that do not agree. Holds the renewal lock throughout."""
    with Lock(home):
        tist = now()
        work = os.path.join(home.var, f"audit-{tist}-{os.getpid()}")
        os.makedirs(work)
        try:
            return _Auditor(home, replicas, rsync_bin, progress, tist, work).run(repair)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


class _Auditor:
    def __init__(self, home: Home, replicas: Sequence[Replica], rsync_bin: str,
                 progress: Progress | None, tist: int, work: str):
        self.home = home
        self.root = home.root.rstrip("/") + "/"
        self.rsync = rsync_bin
        self.progress = progress
        self.tist = tist
        self.work = work
        self.listings = [_Listing(r, r.spec, fetched=os.path.join(work, f"r{i}"))
                         for i, r in enumerate(replicas)]
        self.winners: dict[str, Copy] = {}  # decided 00notes: the copy that won
        self.children = rsync.Children()

    # --- looking ------------------------------------------------------------------

    def run(self, repair: bool) -> Audit:
        from kiel.verify import verify

        def front() -> set[str]:
            _say(self.progress, "front: hashing bodies and versions against their notes")
            return {f"store/{f.path}" for f in verify(self.home.root, fixity=True)
                    if f.kind == "fixity-failed"}

        # The front's hashing and each replica's listings at the same time:
        # each replica computes its checksums on its own disk.
        jobs: list[Callable[[], set[str] | None]] = [front]
        jobs += [functools.partial(self._list, li) for li in self.listings]
        front_bad = rsync.each(jobs, lambda job: job(), self.children)[0] or set()
        up = [li for li in self.listings if li.down is None]
        rsync.each(up, self._fetch, self.children)
        up = [li for li in self.listings if li.down is None]
        paths = set(front_bad).union(*(li.paths for li in up))
        # Notes first: the witness of a body is read from the notes that won.
        order = sorted(paths, key=lambda p: (os.path.basename(p) != notes.NOTES, p))
        found: list[tuple[Divergence, dict[str, Copy]]] = []
        for path in order:
            copies = self._copies(path, up)
            d = self._decide(path, copies)
            if d is not None:
                found.append((d, copies))
        found.sort(key=lambda dc: dc[0].path)
        repaired: list[Repaired] = []
        failed: list[Failed] = []
        damaged = os.path.join("var", "damaged", str(self.tist))
        if repair and any(d.decided for d, _ in found):
            targets = {li.name: Target(li.replica) for li in up}
            repaired, failed = apply(self.root, self.work, self.rsync, targets, damaged, found,
                                     self.progress)
        down = tuple(Unreachable(li.replica, li.down) for li in self.listings
                     if li.down is not None)
        return Audit((FRONT, *(li.name for li in up)), tuple(d for d, _ in found), down,
                     tuple(repaired), tuple(failed), damaged if repaired else None)

    def _list(self, li: _Listing) -> set[str] | None:
        """The paths whose copy on the replica differs, is missing, or is
        the replica's alone."""
        r = li.replica
        _say(self.progress, f"{r}: comparing checksums")
        forward = rsync.argv(self.rsync, r, "--checksum", "--dry-run", rsync.OUT_FORMAT,
                             *rsync.FILTERS, self.root, r.url())
        back = rsync.argv(self.rsync, r, "--ignore-existing", "--dry-run", rsync.OUT_FORMAT,
                          *rsync.FILTERS, r.url(), self.root)
        for cmd in (forward, back):
            run = rsync.run(cmd, lambda item: li.paths.add(item.path)
                            if item.content and _relative(item.path) else None,
                            children=self.children)
            if not run.ok:
                li.down = run.error or f"rsync exit {run.status}"
                return None
        return None

    def _fetch(self, li: _Listing) -> None:
        """The replica's copies of the paths its listings named (a path it
        lacks is simply not fetched)."""
        os.makedirs(li.fetched)
        if not li.paths:
            return
        _say(self.progress, f"{li.replica}: fetching {len(li.paths)} files that differ")
        cmd = rsync.argv(self.rsync, li.replica, li.replica.url(), li.fetched + "/")
        run = rsync.run(cmd, files_from=sorted(li.paths), children=self.children)
        if run.unreachable:
            li.down = run.error or f"rsync exit {run.status}"

    def _copies(self, path: str, up: Iterable[_Listing]) -> dict[str, Copy]:
        front = _look(os.path.join(self.root, path))
        out = {FRONT: front}
        for li in up:
            if path in li.paths:
                out[li.name] = _look(os.path.join(li.fetched, path))
            else:
                # Not listed: rsync found its content equal to the front's
                # (or, where the front lacks it, the replica lacks it too).
                out[li.name] = front
        return out

    # --- deciding -----------------------------------------------------------------

    def _decide(self, path: str, copies: dict[str, Copy]) -> Divergence | None:
        keys = {c.key for c in copies.values()}
        witness = self._witness(path)
        if len(keys) == 1 and (witness is None or witness in keys):
            return None  # all agree (a body all of whose copies fail is not this)
        present = {n: c for n, c in copies.items() if c.key is not None}
        win: Key | None
        if rsync.mutable(path) and os.path.basename(path) != notes.NOTES:
            win, basis = copies[FRONT].key, "the front's state"
        elif witness is not None:
            if not any(c.key == witness for c in present.values()):
                return self._nobody(path, copies, "no copy matches its notes")
            win, basis = witness, "matches its notes"
        elif os.path.basename(path) == notes.NOTES and len(present) > 1 and \
                (longest := _longest(present)):
            win, basis = longest, "the others are its beginning"
        else:
            counts = Counter(c.key for c in present.values()).most_common()
            if len(counts) == 1 and counts[0][1] == 1 and FRONT in present:
                # Everything starts on the front: a file only it holds is
                # one the backs have not been sent yet.
                win, basis = counts[0][0], "not replicated yet"
            elif len(counts) == 1 and counts[0][1] == 1:
                return self._nobody(path, copies, "one copy only")
            elif len(counts) == 1:
                win, basis = counts[0][0], "all copies that have it"
            elif counts[0][1] >= 2 and counts[0][1] > counts[1][1]:
                win, basis = counts[0][0], "majority"
            else:
                return self._nobody(path, copies, "no majority")
        d = Divergence(path, tuple(n for n, c in copies.items() if c.key == win),
                       tuple(n for n, c in copies.items() if c.key is not None and c.key != win),
                       tuple(n for n, c in copies.items() if c.key is None and win is not None),
                       basis, True)
        if os.path.basename(path) == notes.NOTES:
            self.winners[path] = next(copies[n] for n in d.agree)
        return d

    @staticmethod
    def _nobody(path: str, copies: dict[str, Copy], why: str) -> Divergence:
        return Divergence(path, (), tuple(n for n, c in copies.items() if c.key is not None),
                          tuple(n for n, c in copies.items() if c.key is None), why, False)

    def _witness(self, path: str) -> Key | None:
        """What the notes recorded of a body or version when it was written."""
        name = os.path.basename(path)
        is_attempt = store.parse_attempt(name) is not None
        if not path.startswith("store/") or not (is_attempt or store.VERSION_RE.match(name)):
            return None
        notes_rel = os.path.join(os.path.dirname(path), notes.NOTES)
        won = self.winners.get(notes_rel)
        source = won.local if won is not None else os.path.join(self.root, notes_rel)
        if source is None or not os.path.isfile(source) or os.path.islink(source):
            return None
        found: Key | None = None
        for line in notes.read(source):
            if line.entry is None:
                continue
            if is_attempt:
                a = notes.parse_attempt(line.entry)
                if a is not None and a.file == name:
                    found = ("link", a.link) if a.link else \
                        (("file", a.sha256) if a.sha256 else None)
            else:
                r = notes.parse_renewal(line.entry)
                if r is not None and r.version == name and r.version_sha256:
                    found = ("file", r.version_sha256)
        return found


def _relative(path: str) -> bool:
    """A path a listing may name: relative, without ``..`` (rsync itself
    refuses others; a back is another machine, so Kiel checks again)."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def _look(path: str) -> Copy:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Copy(None, None)
    if os.path.islink(path):
        return Copy(("link", os.readlink(path)), path)
    if os.path.isfile(path):
        return Copy(("file", store.sha256_file(path)), path)
    return Copy(("other", notes.kind_of(st.st_mode)), path)


def _longest(present: dict[str, Copy]) -> Key | None:
    """The key of the longest copy when every other copy is its beginning."""
    datas: list[tuple[bytes, Key]] = []
    for c in present.values():
        if c.key is None or c.key[0] != "file" or c.local is None:
            return None
        with open(c.local, "rb") as f:
            datas.append((f.read(), c.key))
    datas.sort(key=lambda dk: len(dk[0]))
    longest = datas[-1][0]
    if all(longest.startswith(d) for d, _ in datas):
        return datas[-1][1]
    return None

