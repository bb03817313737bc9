"""Workers: the coroutines that renew objects, one job at a time each,
all on the run's one event loop.

A job is one object of one record (a redirect target is a job of its own).
A job joins the run in one place, :meth:`Worker.queue`, which raises its
record's count; the follow-ups of an attempt (the full texts its page
offers, its redirect's target) are made by steps that return jobs, and
queued there. Every job ends exactly once: it lowers its record's count
when it ends, or hands that duty on, to its retry (put back on the
scheduler's timer, never slept on here) or to the callback of the shared
fetch it follows. A job that owns a shared fetch settles it on every exit
path. A worker waits on the fetch, on the reading of a landing page (in a
thread of its own), and on the next job: a stop cancels it there, and the
attempt in flight is noted as ``000 interrupted``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import threading
import time
from asyncio import Future
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from kiel import discovery, objects, platforms, urls
from kiel.attempt import Result
from kiel.config import Config
from kiel.errors import StoreError
from kiel.fetch import Fetcher
from kiel.notes import NotRegular
from kiel.renewal import deposits, policy
from kiel.renewal.deposits import Deposit, today
from kiel.renewal.facts import Control, RunFacts
from kiel.renewal.record import RecordRenewal
from kiel.renewal.scheduler import Scheduler
from kiel.renewal.shared import Outcome, Owner, SharedFetches
from kiel.renewal.stats import Stats

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class Discovery:
    """A job's place in discovery (docs/discovery.md)."""

    search: bool = False  # its branch asks for discovery: a page it fetches is read
    depth: int = 0  # steps of discovery from an object the record names
    via: dict[str, str] | None = None  # the page and rule that led to it (a full text)


NAMED = Discovery()


@dataclass(frozen=True)
class DepositPart:
    """The deposit a job serves (docs/datasets.md): one of its API answers,
    or one of its files."""

    deposit: Deposit
    role: Literal["api", "file"]
    key: str  # the URL the deposit asked for (before redirects)
    accept: str | None = None  # the API's media type


@dataclass
class ObjectJob:
    """One object of one record to renew. What it is stays as made: an object
    the record names, a full text a page offers (``discovery.via``), a
    redirect's target (``hop`` > 0), a deposit's API answer or file (``part``);
    the rest is how far its attempts went."""

    record: RecordRenewal
    target: urls.Target
    discovery: Discovery = NAMED
    part: DepositPart | None = None
    hop: int = 0  # redirects followed to reach it
    # Its attempts: kept across retries.
    attempt: int = 1
    od: objects.ObjectDir | None = None
    owner: Owner | None = None  # this job fetches a shared URL for all its records
    headers: dict[str, str] | None = None  # a conditional request's validators
    damaged: dict[str, object] | None = None  # its stored body lost its noted size
    told: bool = False  # its record (and deposit) heard how it ended

    def follow(self, target: urls.Target) -> ObjectJob:
        """The job for the target of this job's redirect: the same object, one hop on."""
        return ObjectJob(self.record, target, self.discovery, self.part, self.hop + 1)

    def tell(self, written: objects.Written | None, object_dir: str | None,
             error: str | None = None, res: Result | None = None) -> None:
        """Tell the job's record (and deposit) how it ended: once, whatever the path."""
        if self.told:
            return
        self.told = True
        part = self.part
        key = part.key if part is not None else self.target.fetch
        self.record.ended(key, written, object_dir, error)  # a deposit may watch it
        if part is None:
            return
        if part.role == "api":
            part.deposit.answered(key, written, res.status if res else "000",
                                  res.location if res else None)
        else:
            part.deposit.file_done(key, written, object_dir, error)


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
    """What the workers share, each part owned by its module: the run's facts
    and control (kiel/renewal/facts.py), the fetcher, the scheduler, the shared
    fetches, the counts and the circuit breaker."""

    facts: RunFacts
    control: Control
    fetcher: Fetcher
    sched: Scheduler[ObjectJob]
    shared: SharedFetches
    stats: Stats
    hosts: HostHealth
    deposits: bool = True  # resolve links to data platforms (docs/datasets.md)
    # Work off the loop not heard yet (Worker.off_loop): the loop waits for it.
    background: set[asyncio.Future[Any]] = dataclasses.field(default_factory=set)
    capped: set[str] = dataclasses.field(default_factory=set)  # records at max_objects

    @property
    def cfg(self) -> Config:
        return self.facts.cfg


class Worker:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    # -- the loop ------------------------------------------------------------------

    async def loop(self) -> None:
        while True:
            got = await self.ctx.sched.get()
            if got is None:
                return
            host, job = got
            try:
                await self.run(job)
            finally:
                self.ctx.sched.done(host)

    async def run(self, job: ObjectJob) -> None:
        """One job, ended (or handed on) on every path."""
        handed = False
        try:
            if not self.ctx.control.failed():
                handed = await self._process(job)
        except BaseException as e:  # noqa: BLE001 - sorted by _trouble
            self._trouble(job.record, job.target.name, e)
        finally:
            if not handed:
                end(job, "the fetch ended without an attempt")

    def _trouble(self, rec: RecordRenewal, name: str, e: BaseException) -> None:
        """Damage in one place skips one object; our own disk failing stops the run."""
        if isinstance(e, objects.Collision):
            rec.error(f"{name}: {e}; refused, the directory belongs to another URL")
            self.ctx.control.report(f"record {rec.id}: {e}; refused", False)
        elif isinstance(e, NotRegular):
            self.ctx.stats.add(damaged=1)
            rec.error(f"{name}: {e.filename}: {e.what} where a regular file belongs; skipped")
            self.ctx.control.report(f"{e.filename}: {e.what} where a regular file belongs; object "
                            f"skipped (record {rec.id})", False)
        elif isinstance(e, OSError) and e.errno == errno.ELOOP:
            rec.error(f"{name}: {e.filename}: a symbolic link where Kiel writes; not followed")
            self.ctx.control.report(
                f"{e.filename}: a symbolic link where Kiel writes; not followed", False)
        elif isinstance(e, (OSError, StoreError)):
            self.ctx.control.fatal(e, rec.dir)
        elif isinstance(e, Exception):
            rec.error(f"{name}: internal error {type(e).__name__}: {e}")
            self.ctx.facts.log.write(f"internal error on {name}: {type(e).__name__}: {e}")
        else:
            raise e

    # -- one object ------------------------------------------------------------------

    async def _process(self, job: ObjectJob) -> bool:
        """True when the job was handed on (a retry, a shared fetch to follow)."""
        ctx = self.ctx
        rec = job.record
        url = job.target.fetch
        if job.od is None:
            od = objects.open_dir(rec.dir, job.target.name, repair=rec.repair)
            job.od = od  # released when the job ends, whichever way
            rec.object_dir(job.target.name, od.name)
            ctx.stats.add(objects=1)
            now = int(ctx.facts.clock())
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
            # A URL only the run finds (a deposit's, a page's full text) is
            # shared whoever reaches it: records that share a landing page share
            # what it offers too.
            role = ctx.shared.role(url, always=job.part is not None or
                                   job.discovery.via is not None)
            if isinstance(role, Future):
                role.add_done_callback(partial(self._follow, job, od))
                return True
            job.owner = role
            job.damaged = od.drop_damaged_body()
            if job.damaged is not None:
                ctx.facts.log.write(
                    f"damaged: {od.name}/{job.damaged['file']} has {job.damaged['size']} "
                    f"bytes, its notes say {job.damaged['noted']}; asked unconditionally "
                    f"(record {rec.id})")
            body = od.body_file()
            headers = od.validators() if ctx.cfg.conditional and body is not None else {}
            if job.part is not None and job.part.accept:
                headers["Accept"] = job.part.accept
            job.headers = headers or None
        od = job.od
        host = urls.host_of(url)
        res = await self._attempt(job, host)
        self._pause_host(host, res)
        via = job.discovery.via
        extra: dict[str, object] = {"via": via} if via else {}
        if job.damaged is not None:
            extra["damaged"] = job.damaged
        if policy.should_retry(res.status, res.error, job.attempt, ctx.cfg.retries,
                               ctx.control.stopping()):
            objects.note_retry(od, res, job.attempt, extra)
            ctx.stats.attempt(res.status, res.error, host, retried=True)
            delay = policy.retry_delay(job.attempt, ctx.cfg.retry_delay,
                                       policy.retry_after_seconds(res.retry_after, time.time()),
                                       ctx.cfg.retry_after_cap)
            job.attempt += 1
            ctx.sched.put_later(host, job, delay)
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
        reading = await self._discover(job, od, res)
        reading = self._bounded(job, reading, extra)
        found = reading.found if reading is not None else None
        if reading is not None:
            extra.update(reading.fields())
        written = objects.record(od, res, sync=ctx.cfg.sync, attempt=job.attempt,
                                 link_to=link_to, keep_type=keep_type, extra=extra)
        if res.error == "interrupted":
            rec.interrupt()  # cut by a stop: no 00last, first in line next time
        fetched = res.size if res.status != "304" else 0
        ctx.stats.attempt(res.status, res.error, host, fetched=fetched,
                          stored=0 if written.link else res.size,
                          linked=res.size if written.link else 0)
        self._log_failure(rec, job.target.name, res)
        if job.owner is not None:
            real = written.real if (res.size or res.status == "304") and \
                os.path.isfile(written.real) else None
            job.owner.resolve(Outcome(res, written.name, real,
                                      os.path.relpath(od.path, ctx.facts.store_root), reading))
        self._go_on(job, res, written, od.path, found)
        return False

    def _go_on(self, job: ObjectJob, res: Result, written: objects.Written, where: str,
               found: tuple[discovery.Found, ...] | None) -> None:
        """After an attempt is written (or linked): its follow-ups, made by the
        steps that claim them in the record (``_discovered``, ``_redirect``),
        queued here; the job's deposit told how it ended, unless a redirect's
        target will tell it (an API answer's helper follows its own redirects)."""
        follow_ups = self._discovered(job, found or ())
        api = job.part is not None and job.part.role == "api"
        hop = None if api else self._redirect(job, res)
        if hop is None:
            job.tell(written, where, res=res)
        else:
            job.told = True  # the file's outcome is the target's: the new job tells it
            follow_ups.append(hop)
        for nxt in follow_ups:
            self.queue(nxt)

    def off_loop(self, rec: RecordRenewal, work: Callable[[], Any],
                 then: Callable[[Future[Any]], None]) -> None:
        """Run ``work`` in a thread (the loop goes on), then ``then`` with its
        future, on the loop. The record and the run stay open until then: the
        record's count holds one more, the scheduler one more pending."""
        loop = asyncio.get_running_loop()
        rec.expect()
        self.ctx.sched.begin_work()
        fut = loop.run_in_executor(None, work)
        self.ctx.background.add(fut)

        def heard(f: Future[Any]) -> None:
            self.ctx.background.discard(f)
            try:
                then(f)
            except BaseException as e:  # noqa: BLE001 - sorted by _trouble
                self._trouble(rec, "a bundle's check", e)
            finally:
                self.ctx.sched.end_work()
                rec.done()

        fut.add_done_callback(heard)

    def queue(self, job: ObjectJob) -> None:
        """The one way a job joins the run. Its record's count rises before the
        job is queued (a worker may take it at once); it falls once, when the job
        ends (:func:`end`, or :meth:`_follow` for a job that follows a shared
        fetch), or when its retry or its shared fetch takes the duty on."""
        job.record.expect()
        self.ctx.sched.put(urls.host_of(job.target.fetch), job)

    # -- discovery ---------------------------------------------------------------------

    async def _discover(self, job: ObjectJob, od: objects.ObjectDir,
                        res: Result) -> discovery.PageReading | None:
        """What a landing page offers (docs/discovery.md): searched on a 200 HTML
        body; on a 304, what the page it confirms offered, or its stored body
        searched again when the rules or settings changed since it was searched."""
        cfg = self.ctx.cfg
        if not job.discovery.search or job.discovery.depth >= cfg.discovery_depth:
            return None
        searched = discovery.searched_field(job.discovery.search, cfg.discovery_depth)
        if res.status == "304" and od.body is not None:
            b = od.body
            offered = b.extra.get("discovered")
            if isinstance(offered, list) and b.extra.get("searched") == searched:
                return discovery.PageReading(tuple(
                    discovery.Found(str(d["url"]), str(d["rule"])) for d in offered
                    if isinstance(d, dict) and "url" in d and "rule" in d), searched=searched)
            stored = od.body_file()
            if stored is None or not discovery.is_page("200", b.type, b.declared_type):
                return None
            return await self._search(job, stored, b.declared_type, b.headers or (), searched)
        if res.tmp_path is None or not discovery.is_page(res.status, res.type,
                                                         res.declared_type):
            return None
        return await self._search(job, res.tmp_path, res.declared_type, res.headers, searched)

    async def _search(self, job: ObjectJob, path: str, declared_type: str | None,
                      headers: discovery.Headers, searched: str) -> discovery.PageReading:
        # One read of the page serves both readers of its markup. It is read
        # off the loop, within discovery_timeout: a stop cancels this wait at
        # once, and the attempt is still noted (its body kept, the page noted
        # as not read, the record as interrupted: it comes first next time).
        found = await discovery.read_page_off_loop(
            path, job.target.fetch, declared_type, headers, self.ctx.cfg.discovery_timeout)
        if found.given_up == discovery.STOPPED:
            job.record.interrupted = True
            return found
        if found.given_up is not None:
            self.ctx.facts.log.write(f"discovery: {job.target.name}: {found.given_up} "
                         f"(record {job.record.id})")
            return found
        if self.ctx.deposits:
            ref = platforms.match_links(job.target.fetch, found.identity)
            if ref is not None:
                self.start_deposit(job.record, ref)
        return dataclasses.replace(found, searched=searched)

    def _bounded(self, job: ObjectJob, reading: discovery.PageReading | None,
                 extra: dict[str, object]) -> discovery.PageReading | None:
        """At most ``max_discovered`` of what one page offers (most trusted
        first); the rest is counted on the page's line (``discovered_more``) and
        named in the record's."""
        cap = self.ctx.cfg.max_discovered
        if reading is None or len(reading.found) <= cap:
            return reading
        more = len(reading.found) - cap
        extra["discovered_more"] = more
        job.record.error(f"{job.target.name}: the page offers {len(reading.found)} full "
                         f"texts; the first {cap} taken (setting max_discovered)")
        return dataclasses.replace(reading, found=reading.found[:cap])

    def _room(self, rec: RecordRenewal, name: str) -> bool:
        """True while the record may take one more object (``max_objects``):
        what its pages, redirects and deposits add is bounded too."""
        cap = self.ctx.cfg.max_objects
        if len(rec.objects) < cap:
            return True
        if rec.id not in self.ctx.capped:  # named once per record
            self.ctx.capped.add(rec.id)
            rec.error(f"{name}: the record has {cap} objects (setting max_objects); this "
                      "and any further object not fetched")
            self.ctx.facts.log.write(
                f"record {rec.id}: {cap} objects reached (setting max_objects); "
                "further objects not fetched")
        return False

    def _discovered(self, job: ObjectJob,
                    found: tuple[discovery.Found, ...]) -> list[ObjectJob]:
        rec = job.record
        out: list[ObjectJob] = []
        for f in found:
            target = urls.classify(f.url)
            if isinstance(target, str) or target.name in rec.objects:
                continue  # not fetched, or an object of the record already: one object
            if not self._room(rec, target.name) or not rec.claim(target.name):
                continue
            rec.add_urls("(discovered)", target.name)
            self.ctx.stats.add(objects_total=1)
            out.append(ObjectJob(rec, target, Discovery(
                job.discovery.search, job.discovery.depth + 1,
                discovery.via_field(job.target.name, f.rule))))
        return out

    # -- deposits ------------------------------------------------------------------------

    def start_deposit(self, rec: RecordRenewal, ref: platforms.DepositRef) -> None:
        """Resolve a deposit the record links to (once per record and renewal)."""
        if not rec.claim(f"deposit:{ref.platform}:{ref.domain}:{ref.deposit_id}"):
            return
        d = Deposit(rec, ref, platforms.limits_from(self.ctx.cfg), today(self.ctx.facts.clock),
                    self._enqueue, lambda: int(self.ctx.facts.clock()),
                    stopping=self.ctx.control.stopping, off_loop=self.off_loop)
        d.begin()

    def _enqueue(self, rec: RecordRenewal, target: urls.Target, deposit: Deposit,
                 role: deposits.Role, accept: str | None) -> bool:
        if target.name in rec.objects or not self._room(rec, target.name) \
                or not rec.claim(target.name):
            return False
        rec.add_urls(f"(deposit {role})", target.name)
        self.ctx.stats.add(objects_total=1)
        self.queue(ObjectJob(rec, target, part=DepositPart(deposit, role, target.fetch, accept)))
        return True

    async def _attempt(self, job: ObjectJob, host: str) -> Result:
        ctx = self.ctx
        url = job.target.fetch
        started = ctx.facts.clock()
        assert job.od is not None
        if ctx.hosts.down(host):
            ctx.stats.add(host_down=1)
            return _failed(url, started, "host-down",
                           f"{host} failed to connect {ctx.hosts.threshold} times in this run; "
                           "not tried again before the next run")
        try:
            if url.startswith("ftp://"):
                res = await ctx.fetcher.afetch_ftp(url, job.od.path, started)
            else:
                res = await ctx.fetcher.afetch(url, job.od.path, job.headers, started)
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, OSError) and cause.errno in NO_SPACE:
                # This body does not fit; smaller ones may. The store itself failing
                # (the attempt's own note below) still stops the run.
                return _failed(url, started, "no-space", str(e))
            raise
        ctx.hosts.record(host, res.error)
        return res

    def _pause_host(self, host: str, res: Result) -> None:
        """A host that asks for a pause (``Retry-After`` on a 429 or 503) gets it,
        for all its objects, up to ``retry_after_cap``."""
        if res.retry_after and res.status in ("429", "503"):
            wait = policy.retry_after_seconds(res.retry_after, time.time())
            if wait:
                self.ctx.sched.pause(host, min(wait, self.ctx.cfg.retry_after_cap))

    def _log_failure(self, rec: RecordRenewal, name: str, res: Result) -> None:
        if res.status == "000" or res.status[:1] in ("4", "5"):
            self.ctx.facts.log.write(
                f"failed: {name} {res.status} {res.error or ''} (record {rec.id})")

    def _redirect(self, job: ObjectJob, res: Result) -> ObjectJob | None:
        """A redirect's target, as its own object in the same record directory
        (claimed in the record, not queued); None when it is not followed."""
        if not (res.location and res.status.startswith("3")):
            return None
        rec = job.record
        target = urls.classify(res.location)
        if isinstance(target, str):
            rec.error(f"{job.target.name}: redirect to {urls.redact(res.location)} not "
                      f"followed: {target}")
            return None
        if job.hop + 1 > self.ctx.cfg.max_redirects:
            rec.error(f"{job.target.name}: more than {self.ctx.cfg.max_redirects} redirects; "
                      f"{target.name} not fetched")
            return None
        if target.name in rec.objects:
            rec.error(f"{job.target.name}: redirect to {target.name}, already fetched for "
                      "this record (loop ends the chain)")
            return None
        if not self._room(rec, target.name) or not rec.claim(target.name):
            return None
        rec.add_urls("(redirect)", target.name)
        self.ctx.stats.add(objects_total=1)
        if job.part is None and self.ctx.deposits:
            ref = platforms.match(target.fetch)  # a DOI that leads to a deposit
            if ref is not None:
                self.start_deposit(rec, ref)
        return job.follow(target)

    # -- following a shared fetch ------------------------------------------------------

    def _follow(self, job: ObjectJob, od: objects.ObjectDir, fut: Future[Outcome]) -> None:
        """Give a record the attempt another record made of the same URL. Runs
        once, on the loop, after the owner settled the future; ends the job."""
        rec = job.record
        try:
            exc = fut.exception()
            if exc is not None:
                if self.ctx.control.stopping() or self.ctx.control.failed() or self.ctx.sched.held:
                    rec.interrupt()  # cut short: no 00last, first next time
                rec.error(f"{job.target.name}: not fetched, the shared fetch failed: {exc}")
                return
            o = fut.result()
            res = o.result
            parsed = _parse_name(o.name)
            copy = dataclasses.replace(res, started=float(parsed[0]),
                                       size=res.size if o.real else 0,
                                       sha256=res.sha256 if o.real else None,
                                       sha1=res.sha1 if o.real else None, tmp_path=None)
            via = job.discovery.via
            extra: dict[str, object] = {"via": via} if via else {}
            # What the shared page offers, this record takes too (if its branch
            # asks for discovery at this depth).
            reading = o.reading if job.discovery.search and \
                job.discovery.depth < self.ctx.cfg.discovery_depth else None
            reading = self._bounded(job, reading, extra)
            if reading is not None:
                extra.update(reading.fields())
            written = objects.record(od, copy, sync=self.ctx.cfg.sync, link_to=o.real,
                                     same_as=o.same_as, keep_type=parsed[2], extra=extra)
            self.ctx.stats.add(shared=1)
            self.ctx.stats.attempt(parsed[1], res.error, urls.host_of(job.target.fetch),
                                   linked=res.size if written.link else 0)
            self._go_on(job, res, written, od.path, reading.found if reading else None)
        except BaseException as e:  # noqa: BLE001 - sorted by _trouble
            self._trouble(rec, job.target.name, e)
        finally:
            objects.release(od)
            rec.done()


def end(job: ObjectJob, reason: str) -> None:
    """End a job that will not run (again): settle its shared fetch, tell its
    deposit, count down."""
    try:
        if job.owner is not None:
            job.owner.fail(reason)  # a no-op once resolved
        if job.od is not None:
            objects.release(job.od)
        job.tell(None, None, reason)
    finally:
        job.record.done()


def _failed(url: str, started: float, error: str, detail: str) -> Result:
    return Result(url, started, "000", "none", None, 0, None, None, None, None, error, detail,
                  0.0)


def _parse_name(name: str) -> tuple[int, str, str]:
    t, status, type_ = name.split("_", 2)
    return int(t), status, type_
