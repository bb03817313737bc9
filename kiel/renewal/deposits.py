"""Deposits: a record's link to a data platform, resolved into its files.

A URL that names a deposit (Zenodo, Dataverse, Figshare, Dryad, OSF,
archive.org; :mod:`kiel.platforms`) starts a :class:`Deposit`: the
platform's API answers are fetched as objects of the record, one step at a
time, until they resolve into a manifest or a named failure; then every
file of the manifest is fetched as an object too, checked against the
checksums the platform declares, and one manifest line goes to the record's
``00notes`` (docs/datasets.md). A manifest unchanged since the last
renewal costs its API requests and that one line.

Each job a deposit queues is a job of its record (the record's count rises
before it is queued), and tells the deposit when it ends, fetched or not,
so the manifest line is written before the record's own line, once.
"""

from __future__ import annotations

import os
import threading
import time
from asyncio import Future
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kiel import notes, platforms, urls
from kiel.objects import Written
from kiel.platforms import Answer, DepositRef, FileOutcome, Manifest, ManifestFile, Step
from kiel.renewal.record import RecordRenewal

# Files of one deposit queued at a time: what is stored can pass
# max_total_size by at most this many bodies before the rest is held back.
WINDOW = 4

Role = Literal["api", "file"]  # a deposit job: one of its API answers, or one of its files
Enqueue = Callable[[RecordRenewal, urls.Target, "Deposit", Role, str | None], bool]
# Run work off the event loop, then hear its outcome on the loop; the record
# (and the run) stay open until it is heard (kiel.renewal.worker.Worker.off_loop).
OffLoop = Callable[[RecordRenewal, Callable[[], Any], Callable[["Future[Any]"], None]], None]


@dataclass
class Deposit:
    """One deposit of one record in one renewal."""

    record: RecordRenewal
    ref: DepositRef
    limits: platforms.Limits
    today: str
    enqueue: Enqueue  # (record, target, deposit, role, accept) -> queued
    now: Callable[[], int]
    answers: dict[str, Answer] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)  # API URLs asked, not answered
    manifest: Manifest | None = None
    files_left: int = 0
    outcomes: dict[str, FileOutcome] = field(default_factory=dict)
    bundle: FileOutcome | None = None
    done: bool = False
    previous: platforms.ManifestRecord | None = None  # the deposit's last manifest note
    parsed: dict[str, Any] = field(default_factory=dict)  # API bodies, parsed once
    api_bytes: int = 0  # what the API answers cost so far (Limits.max_api_bytes)
    pending: list[str] = field(default_factory=list)  # file URLs not queued yet
    by_url: dict[str, list[ManifestFile]] = field(default_factory=dict)
    flying: set[str] = field(default_factory=set)  # file URLs queued, not ended
    stored: int = 0  # bytes of the files stored so far (against max_total_size)
    stopping: Callable[[], bool] | None = None  # the run is stopping: leave a bundle unread
    off_loop: OffLoop | None = None  # where a bundle is checked (None: in place)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> None:
        # The last manifest lets a helper skip the listing of an unchanged version.
        self.previous = platforms.previous(self.record.dir, self.ref.platform, self.ref.domain,
                                           self.ref.deposit_id)
        self._next(platforms.start(self.ref, self.limits, self.today, self.previous))

    # -- API answers -----------------------------------------------------------------

    def answered(self, url: str, written: Written | None, status: str,
                 location: str | None) -> None:
        """An API job ended: its answer (the stored body), or None when not fetched.

        The answers of one deposit together stay within ``max_api_bytes``
        (their bytes, and what parsing them costs): past it the deposit ends
        in a named failure. Each body is parsed once; its bytes are dropped
        then, so a listing of many pages is not held, nor read again."""
        body = b""
        with self._lock:
            left = self.limits.max_api_bytes - self.api_bytes
        if written is not None and os.path.isfile(written.real):
            with open(written.real, "rb") as f:
                body = f.read(max(left, 0) + 1)
        cost = len(body) + 64 * (body.count(b"{") + body.count(b"["))
        if status == "304":
            status = "200"  # the body confirmed is the body of the 200
        with self._lock:
            self.api_bytes += cost
            over = self.api_bytes > self.limits.max_api_bytes
            self.answers[url] = Answer(status, b"" if over else body, location)
            self.waiting.discard(url)
            if self.done or (self.waiting and not over):
                return
        del body
        if over:
            self._note(platforms.failure_note(platforms.Failure(
                "platform-error", f"the API answers of this deposit pass "
                f"{self.limits.max_api_bytes} bytes together (max_api_bytes) at {url}; "
                "the listing is not read further", self.ref.platform, self.ref.domain,
                self.ref.deposit_id, tuple(self.answers)), self.now()))
            return
        step = platforms.advance(self.ref, self.answers, self.limits, self.today,
                                 self.previous, self.parsed)
        with self._lock:
            for u, a in self.answers.items():  # only a 200 not parsed yet is read again
                if a.body and (u in self.parsed or a.status != "200"):
                    self.answers[u] = Answer(a.status, b"", a.location)
        self._next(step)

    def _api_of_record(self, url: str) -> Callable[[Written | None, str | None, str | None],
                                                   None]:
        def heard(written: Written | None, _dir: str | None, _error: str | None) -> None:
            if written is None:
                self.answered(url, None, "000", None)
            else:
                self.answered(url, written, written.note.status, written.note.location)
        return heard

    def _file_of_record(self, url: str) -> Callable[[Written | None, str | None, str | None],
                                                    None]:
        def heard(written: Written | None, object_dir: str | None, error: str | None) -> None:
            self.file_done(url, written, object_dir, error)
        return heard

    def _next(self, step: Step | Manifest | platforms.Failure) -> None:
        if isinstance(step, Step):
            asks = []
            with self._lock:
                for req in step.requests:
                    if req.url not in self.answers and req.url not in self.waiting:
                        self.waiting.add(req.url)
                        asks.append(req)
            for req in asks:
                target = urls.classify(req.url)
                if isinstance(target, str):
                    # Not a URL Kiel fetches: answered as nothing, the helper decides.
                    self.answered(req.url, None, "000", None)
                elif not self.enqueue(self.record, target, self, "api", req.accept):
                    # An object of the record already: its answer, once its job ends.
                    self.record.watch(target.fetch, self._api_of_record(req.url))
            return
        if isinstance(step, platforms.Failure):
            self._note(platforms.failure_note(step, self.now()))
            return
        self._manifest(step)

    # -- the files -----------------------------------------------------------------------

    def _manifest(self, m: Manifest) -> None:
        prev = self.previous  # read once, at begin
        redo = platforms.again(prev, m)
        if redo == ():
            assert prev is not None
            self._note(platforms.manifest_note(m, platforms.carried(prev), self.now(),
                                               unchanged=True, same_as=prev.listed_at
                                               if prev.files else None))
            return
        fetch = tuple(dict.fromkeys(m.fetch))
        with self._lock:
            self.manifest = m
            for f in m.files:
                self.by_url.setdefault(f.url, []).append(f)
            if redo is not None and prev is not None:
                # The same deposit state: what settled is carried over, the rest asked again.
                fetch = tuple(dict.fromkeys(redo))
                asked, before = set(redo), platforms.carried(prev)
                for f in m.files:
                    out = before.get(f.path)
                    if f.url not in asked and out is not None:
                        self.outcomes[f.path] = out
            self.files_left = len(fetch)
            self.pending = list(fetch)
        if not fetch:
            self._finish()
            return
        self._pump()

    def _pump(self) -> None:
        """Queue the next files, :data:`WINDOW` at a time, while what is stored
        stays within ``max_total_size``: the sizes served count, not only
        the sizes declared (a platform may understate them)."""
        while True:
            with self._lock:
                if not self.pending or len(self.flying) >= WINDOW:
                    return
                url = self.pending.pop(0)
                stored, limit = self.stored, self.limits.max_total_size
                stop = stored > limit or (self.stopping is not None and self.stopping())
                if not stop:
                    self.flying.add(url)
            if stop:
                why = "the run is stopping" if stored <= limit else \
                    f"the files stored so far hold {stored} bytes, over max_total_size ({limit})"
                self._settle(url, FileOutcome(None, error=f"not fetched: {why}"))
                continue
            target = urls.classify(url)
            if isinstance(target, str):
                with self._lock:
                    self.flying.discard(url)
                self._settle(url, FileOutcome(None, error=f"not fetched: {target}"))
            elif not self.enqueue(self.record, target, self, "file", None):
                # The record's own link or discovery fetches it: the deposit
                # judges the body that job stores, once it ends (it holds no
                # place in the window: that job is the record's).
                with self._lock:
                    self.flying.discard(url)
                self.record.watch(target.fetch, self._file_of_record(url))

    def _settle(self, url: str, outcome: FileOutcome | None) -> None:
        """One file of the manifest has its outcome (None: a bundle, noted
        already); the last one writes the note."""
        with self._lock:
            if outcome is not None:  # two paths may name one URL: one fetch, both judged
                for f in self.by_url.get(url, ()):
                    self.outcomes[f.path] = outcome
            self.files_left -= 1
            last = self.files_left == 0
        if last:
            self._finish()

    def _file_of(self, url: str) -> ManifestFile | None:
        files = self.by_url.get(url)
        return files[0] if files else None

    def file_done(self, url: str, written: Written | None, object_dir: str | None = None,
                  error: str | None = None) -> None:
        """A file job ended: check what it stored against the manifest."""
        m = self.manifest
        assert m is not None
        rel = None
        if written is not None and object_dir is not None:
            rel = os.path.relpath(os.path.join(object_dir, written.name), self.record.dir)
        # A 304 links the body an earlier attempt stored: that body is judged
        # as a 200's would be (re-hashed), so a night without the API, after
        # which every file is asked conditionally, does not leave them failed.
        ok = written is not None and written.note.status in ("200", "304") \
            and os.path.isfile(written.real)
        size = 0
        outcome: FileOutcome | None = None
        if m.strategy == "bundle" and url == m.bundle_url:
            if ok and written is not None:
                path = written.real

                def check() -> tuple[int, dict[str, str], dict[str, FileOutcome]]:
                    size, found = platforms.digest_file(path, ("sha256", "sha1"))
                    inside = platforms.check_bundle(path, m,
                                                    max_total=self.limits.max_total_size,
                                                    stop=self.stopping)
                    return size, found, inside

                def checked(result: tuple[int, dict[str, str], dict[str, FileOutcome]]
                            ) -> None:
                    size, found, inside = result
                    with self._lock:
                        self.outcomes.update(inside)
                        self.flying.discard(url)
                        self.stored += size
                    self.bundle = FileOutcome(None, size, found, rel)
                    self._settle(url, None)
                    self._pump()

                if self.off_loop is None:
                    checked(check())
                else:
                    # Inflating and hashing take seconds a GiB: a thread of their
                    # own, so the other transfers go on meanwhile.
                    self.off_loop(self.record, check, lambda f: checked(f.result()))
                return
            self.bundle = FileOutcome(None, error=error or _failed(written))
        else:
            f = self._file_of(url)
            if f is not None and ok and written is not None:
                size, found = platforms.digest_file(
                    written.real, ("sha256", "sha1") + platforms.needed(f))
                outcome = FileOutcome(platforms.check(f, size, found), size, found, rel)
            else:
                outcome = FileOutcome(None, error=error or _failed(written))
        with self._lock:
            self.flying.discard(url)
            self.stored += size
        self._settle(url, outcome)
        self._pump()

    def _finish(self) -> None:
        m = self.manifest
        assert m is not None
        self._note(platforms.manifest_note(m, dict(self.outcomes), self.now(), self.bundle))

    def _note(self, line: dict[str, object]) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
        notes.append(os.path.join(self.record.dir, notes.NOTES), line)


def _failed(written: Written | None) -> str:
    if written is None:
        return "not fetched"
    n = written.note
    return f"{n.status} {n.error or ''}".strip()


def today(clock: Callable[[], float]) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(clock()))
