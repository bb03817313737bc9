"""Workers: the threads that renew objects, one job at a time.

A job is one object of one record (a redirect target is a job of its own).
Every job ends exactly once: it lowers its record's count when it ends, or
hands that duty on, to its retry (put back on the scheduler's heap, never
slept on here) or to the callback of the shared fetch it follows. A job
that owns a shared fetch settles it on every exit path.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Callable

from kiel import ftp, objects, urls
from kiel.config import Config
from kiel.errors import StoreError
from kiel.fetch import Fetcher, Result
from kiel.notes import NotRegular
from kiel.renewal import policy
from kiel.renewal.record import RecordRenewal
from kiel.renewal.scheduler import Scheduler
from kiel.renewal.shared import Outcome, Owner, SharedFetches
from kiel.renewal.stats import Stats

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass
class ObjectJob:
    record: RecordRenewal
    target: urls.Target
    hop: int = 0
    attempt: int = 1
    od: objects.ObjectDir | None = None  # kept across retries
    owner: Owner | None = None  # this job fetches a shared URL for all its records
    headers: dict[str, str] | None = None  # a conditional request's validators


class HostHealth:
    """The run's circuit breaker: a host that failed to connect ``threshold``
    times in a row is not tried again in this run (``000 host-down``)."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._fails: Counter[str] = Counter()
        self._lock = threading.Lock()

    def down(self, host: str) -> bool:
        if self.threshold <= 0:
            return False
        with self._lock:
            return self._fails[host] >= self.threshold

    def record(self, host: str, error: str | None) -> None:
        with self._lock:
            if error in policy.CONNECT_ERRORS:
                self._fails[host] += 1
            elif error is None:
                self._fails.pop(host, None)


@dataclass
class Context:
    """What the workers share, each part owned by its module."""

    cfg: Config
    fetcher: Fetcher
    sched: Scheduler[ObjectJob]
    shared: SharedFetches
    stats: Stats
    hosts: HostHealth
    store_root: str
    clock: Callable[[], float]
    stopping: Callable[[], bool]
    fatal: Callable[[BaseException, str], None]
    failed: Callable[[], bool]
    report: Callable[[str, bool], None]
    log: Callable[[str], None]


class Worker:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    # -- the loop ------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            got = self.ctx.sched.get()
            if got is None:
                return
            host, job = got
            try:
                self.run(job)
            finally:
                self.ctx.sched.done(host)

    def run(self, job: ObjectJob) -> None:
        """One job, ended (or handed on) on every path."""
        handed = False
        try:
            if not self.ctx.failed():
                handed = self._process(job)
        except BaseException as e:  # noqa: BLE001 - sorted by _trouble
            self._trouble(job.record, job.target.name, e)
        finally:
            if not handed:
                end(job, "the fetch ended without an attempt")

    def _trouble(self, rec: RecordRenewal, name: str, e: BaseException) -> None:
        """Damage in one place skips one object; our own disk failing stops the run."""
        if isinstance(e, objects.Collision):
            rec.error(f"{name}: {e}; refused, the directory belongs to another URL")
            self.ctx.report(f"record {rec.id}: {e}; refused", False)
        elif isinstance(e, NotRegular):
            self.ctx.stats.add(damaged=1)
            rec.error(f"{name}: {e.filename}: {e.what} where a regular file belongs; skipped")
            self.ctx.report(f"{e.filename}: {e.what} where a regular file belongs; object "
                            f"skipped (record {rec.id})", False)
        elif isinstance(e, OSError) and e.errno == errno.ELOOP:
            rec.error(f"{name}: {e.filename}: a symbolic link where Kiel writes; not followed")
            self.ctx.report(f"{e.filename}: a symbolic link where Kiel writes; not followed",
                            False)
        elif isinstance(e, (OSError, StoreError)):
            self.ctx.fatal(e, rec.dir)
        elif isinstance(e, Exception):
            rec.error(f"{name}: internal error {type(e).__name__}: {e}")
            self.ctx.log(f"internal error on {name}: {type(e).__name__}: {e}")
        else:
            raise e

    # -- one object ------------------------------------------------------------------

    def _process(self, job: ObjectJob) -> bool:
        """True when the job was handed on (a retry, a shared fetch to follow)."""
        ctx = self.ctx
        rec = job.record
        url = job.target.fetch
        if job.od is None:
            od = objects.open_dir(rec.dir, job.target.name, repair=rec.repair)
            rec.object_dir(job.target.name, os.path.basename(od.path))
            ctx.stats.add(objects=1)
            now = int(ctx.clock())
            decision = policy.give_up(policy.Age(od.since, od.ever_ok, od.given_up), now,
                                      ctx.cfg.give_up_after, rec.changed)
            if decision == "given-up":
                ctx.stats.add(given_up=1)
                return False
            if decision == "give-up":
                objects.note_event(od, "given-up", now, full_age=now - (od.since or now),
                                   control_age=now - (od.newest_tist or now),
                                   reason="every attempt failed for longer than give_up_after")
                ctx.stats.add(given_up=1)
                return False
            if decision == "revive":
                objects.note_event(od, "revived", now, reason="the record has a new version")
            role = ctx.shared.role(url)
            if isinstance(role, Future):
                role.add_done_callback(partial(self._follow, job, od))
                return True
            job.owner = role
            job.od = od
            body = od.body_file()
            if ctx.cfg.conditional and body is not None:
                job.headers = od.validators() or None
        od = job.od
        host = urls.host_of(url)
        res = self._attempt(job, host)
        if policy.should_retry(res.status, res.error, job.attempt, ctx.cfg.retries,
                               ctx.stopping()):
            objects.note_retry(od, res, job.attempt)
            ctx.stats.attempt(res.status, res.error, host, retried=True)
            delay = policy.retry_delay(job.attempt, ctx.cfg.retry_delay,
                                       policy.retry_after_seconds(res.retry_after, time.time()),
                                       ctx.cfg.retry_after_cap)
            job.attempt += 1
            ctx.sched.put_at(host, job, time.monotonic() + delay)
            return True
        link_to = None
        keep_type = None
        if res.status == "304" and od.body is not None:
            link_to = od.body_file()
            if link_to:
                # The link shows the confirmed body: the notes carry its size, hashes
                # and the validators that will confirm it again.
                b = od.body
                keep_type = b.type
                res = dataclasses.replace(res, size=b.size, sha256=b.sha256, sha1=b.sha1,
                                          etag=res.etag or b.etag,
                                          last_modified=res.last_modified or b.last_modified)
            ctx.stats.add(not_modified=1)
        written = objects.record(od, res, sync=ctx.cfg.sync, attempt=job.attempt,
                                 link_to=link_to, keep_type=keep_type)
        fetched = res.size if res.status != "304" else 0
        ctx.stats.attempt(res.status, res.error, host, fetched=fetched,
                          stored=0 if written.link else res.size,
                          linked=res.size if written.link else 0)
        self._log_failure(rec, job.target.name, res)
        if job.owner is not None:
            real = written.real if (res.size or res.status == "304") and \
                os.path.isfile(written.real) else None
            job.owner.resolve(Outcome(res, written.name, real,
                                      os.path.relpath(od.path, ctx.store_root)))
        self._redirect(job, res)
        return False

    def _attempt(self, job: ObjectJob, host: str) -> Result:
        ctx = self.ctx
        url = job.target.fetch
        started = ctx.clock()
        assert job.od is not None
        if ctx.hosts.down(host):
            ctx.stats.add(host_down=1)
            return _failed(url, started, "host-down",
                           f"{host} failed to connect {ctx.hosts.threshold} times in this run; "
                           "not tried again before the next run")
        try:
            if url.startswith("ftp://"):
                res = ftp.fetch(url, job.od.path, ctx.fetcher.limits, started)
            else:
                res = ctx.fetcher.fetch(url, job.od.path, job.headers, started)
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, OSError) and cause.errno in NO_SPACE:
                # This body does not fit; smaller ones may. The store itself failing
                # (the attempt's own note below) still stops the run.
                return _failed(url, started, "no-space", str(e))
            raise
        ctx.hosts.record(host, res.error)
        return res

    def _log_failure(self, rec: RecordRenewal, name: str, res: Result) -> None:
        if res.status == "000" or res.status[:1] in ("4", "5"):
            self.ctx.log(f"failed: {name} {res.status} {res.error or ''} (record {rec.id})")

    def _redirect(self, job: ObjectJob, res: Result) -> None:
        """Follow a redirect as its own object in the same record directory."""
        if not (res.location and res.status.startswith("3")):
            return
        rec = job.record
        target = urls.classify(res.location)
        if isinstance(target, str):
            rec.error(f"{job.target.name}: redirect to {urls.redact(res.location)} not "
                      f"followed: {target}")
            return
        if job.hop + 1 > self.ctx.cfg.max_redirects:
            rec.error(f"{job.target.name}: more than {self.ctx.cfg.max_redirects} redirects; "
                      f"{target.name} not fetched")
            return
        if not rec.claim(target.name):
            rec.error(f"{job.target.name}: redirect to {target.name}, already fetched for "
                      "this record (loop ends the chain)")
            return
        rec.add_urls("(redirect)", target.name)
        self.ctx.stats.add(objects_total=1)
        # The count rises before the job is queued: a worker may take it at once.
        rec.expect()
        self.ctx.sched.put(urls.host_of(target.fetch), ObjectJob(rec, target, job.hop + 1))

    # -- following a shared fetch ------------------------------------------------------

    def _follow(self, job: ObjectJob, od: objects.ObjectDir, fut: Future[Outcome]) -> None:
        """Give a record the attempt another record made of the same URL. Runs
        once, in whichever thread settles the future; ends the job."""
        rec = job.record
        try:
            exc = fut.exception()
            if exc is not None:
                rec.error(f"{job.target.name}: not fetched, the shared fetch failed: {exc}")
                return
            o = fut.result()
            res = o.result
            parsed = _parse_name(o.name)
            copy = dataclasses.replace(res, started=float(parsed[0]),
                                       size=res.size if o.real else 0,
                                       sha256=res.sha256 if o.real else None,
                                       sha1=res.sha1 if o.real else None, tmp_path=None)
            written = objects.record(od, copy, sync=self.ctx.cfg.sync, link_to=o.real,
                                     same_as=o.same_as, keep_type=parsed[2])
            self.ctx.stats.add(shared=1)
            self.ctx.stats.attempt(parsed[1], res.error, urls.host_of(job.target.fetch),
                                   linked=res.size if written.link else 0)
            self._redirect(job, res)
        except BaseException as e:  # noqa: BLE001 - sorted by _trouble
            self._trouble(rec, job.target.name, e)
        finally:
            rec.done()


def end(job: ObjectJob, reason: str) -> None:
    """End a job that will not run (again): settle its shared fetch, count down."""
    if job.owner is not None:
        job.owner.settle(reason)
    job.record.done()


def _failed(url: str, started: float, error: str, detail: str) -> Result:
    return Result(url, started, "000", "none", None, 0, None, None, None, None, error, detail,
                  0.0)


def _parse_name(name: str) -> tuple[int, str, str]:
    t, status, type_ = name.split("_", 2)
    return int(t), status, type_
