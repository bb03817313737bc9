"""The orchestrator: one renewal, read as the protocol reads.

scan the inputs; plan the records, oldest first; renew each record (its
version, then its objects on the workers); mark what is gone; refresh the
OAI-PMH index. Each step lives in its own module; this one owns the run's
lifetime: the lock, the work directory, the workers, and the guarantee
that every record started is finished or reported, on every exit path.
Nothing here prints or exits: the run returns a :class:`Summary`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kiel import branches as branches_mod
from kiel import netguard, platforms, store
from kiel.errors import ConfigError, StoreError
from kiel.escape import inside
from kiel.fetch import CLIENTS_PER_THREAD, Fetcher, Limits, user_agent
from kiel.home import Home, Lock
from kiel.notes import NotRegular
from kiel.renewal import fds, journal, processes
from kiel.renewal import record as record_mod
from kiel.renewal.facts import Control, RunFacts
from kiel.renewal.gone import mark_gone
from kiel.renewal.log import Reserve, RunLog, unique_path
from kiel.renewal.options import Options, Progress, Stop
from kiel.renewal.plan import Planned, plan
from kiel.renewal.scan import InputRules, Scanned, Selection, scan
from kiel.renewal.scheduler import Scheduler
from kiel.renewal.shared import SharedFetches
from kiel.renewal.stats import Stats, Summary
from kiel.renewal.worker import Context, Discovery, HostHealth, ObjectJob, Worker, end

# Records in flight at most (their objects queued, running, or waiting on a
# slow host or a shared fetch), whatever the lookahead: a record in flight
# costs a few kilobytes.
RECORDS_IN_FLIGHT = 1024


class Slots:
    """The records in flight, bounded; released from the loop, waited on by the planner."""

    def __init__(self, n: int):
        self.free = n
        self._waiter: asyncio.Future[None] | None = None

    def take(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        handle = loop.call_later(timeout, self._wake)
        try:
            await fut
        finally:
            handle.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def release(self) -> None:
        self.free += 1
        self._wake()


async def _aiter(items: Iterable[Planned]) -> AsyncIterator[Planned]:
    for p in items:
        yield p


def renew(home: Home, options: Options | None = None) -> Summary:
    """One renewal of every record in the inputs (see the module doc)."""
    opt = options or Options()
    cfg = opt.config or home.config()
    t0 = time.monotonic()
    tist = int(opt.clock())
    if opt.shard:
        k, n = opt.shard
        if not (1 <= k <= n):
            raise ConfigError(f"--shard {k}/{n}: K must be between 1 and N")
    try:
        with open(home.branches, "rb") as f:
            branches_bytes = f.read()
    except OSError:
        branches_bytes = b""  # load() says what is wrong with the file, in its words
    branches = branches_mod.load(home.branches)
    inputs = opt.inputs or tuple(home.resolve_input(p) for p in cfg.input)
    if not inputs:
        raise ConfigError(f"no input: name AMF files or directories on the command line "
                          f"or in the 'input' setting of {home.conf}")
    try:
        for d in (home.store, os.path.join(home.var, "log"), os.path.join(home.var, "runs")):
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{e.filename}: cannot create: {e.strerror}") from None
    from kiel.oai import ChangeLog

    suffix = "" if opt.shard is None else f"-shard-{opt.shard[0]}-of-{opt.shard[1]}"
    with Lock(home, opt.shard), \
            ChangeLog.open(home.root, now=opt.clock, sync=cfg.sync) as changes:
        # What harvesters must see is appended as it happens (docs/oai.md).
        try:
            # Room for how the run ends, taken before anything else is written.
            reserve = Reserve(home.var)
        except OSError as e:
            raise StoreError(f"{e.filename or home.var}: no room for the run's summary "
                             f"and log: {e.strerror or e}; nothing was touched") from None
        try:
            log_path = unique_path(os.path.join(home.var, "log"), f"{tist}{suffix}", ".log")
            log = RunLog(log_path)
        except OSError as e:
            reserve.free()
            raise StoreError(f"{e.filename}: cannot create the run log: {e.strerror}") from None
        facts = RunFacts(home, cfg, opt, opt.clock, t0, tist, inputs, branches, branches_bytes,
                         opt.only is None and opt.shard is None, suffix, log, changes)
        return Renewal(facts).run(reserve)


@dataclass
class Flight:
    """The renewing phase's parts, made for one event loop: the records in
    flight and the jobs of their objects."""

    journal: journal.Journal  # the records in flight, for the next run's repair
    dirty: set[str]  # records an earlier run left in flight: repaired as they start
    sched: Scheduler[ObjectJob]
    starter: Worker  # queues a record's first jobs and starts its deposits
    inflight: Slots


class Renewal:
    """One run, made from its facts; its parts get values, not callbacks."""

    def __init__(self, facts: RunFacts):
        self.facts = facts
        self.home = facts.home
        self.opt = facts.opt
        self.cfg = facts.cfg
        self.log = facts.log
        self.store_root = facts.home.store
        self.stats = Stats()
        self.control = Control(facts.opt.stop, self.stats, facts.log)
        self.interrupted: str | None = None
        self.lost_worker = False  # a worker process ended without its counts
        self._safe_parents: set[str] = set()
        self._real_store = os.path.realpath(facts.home.store)

    # -- small services the parts share ----------------------------------------------

    def now(self) -> int:
        return self.facts.now()

    def report(self, text: str, input_error: bool) -> None:
        self.control.report(text, input_error)

    def stopping(self) -> bool:
        return self.control.stopping()

    def fatal(self, e: BaseException, where: str) -> None:
        self.control.fatal(e, where)

    # -- the run -------------------------------------------------------------------------

    def run(self, reserve: Reserve) -> Summary:
        facts = self.facts
        log_path = self.log.path
        self.log.write(f"renewal starts: inputs {list(facts.inputs)}, only={self.opt.only}, "
                       f"shard={self.opt.shard}, max_time={self.opt.max_time}")
        workdir = os.path.join(self.home.var,
                               f"run-{facts.tist}{facts.suffix}-{os.getpid()}")
        dirty, dead = journal.unfinished(self.home.var)
        if dirty:
            self.log.write(f"repair: {len(dirty)} records were in flight when a run ended "
                           "without finishing; their object directories are checked")
        failure: StoreError | None = None
        try:
            self._archive_branches()
            with journal.Journal(workdir) as jr:
                scanned = self._scan(workdir)
                self._renew(scanned, workdir, jr, dirty)
                if facts.full_run and self.control.failure is None:
                    self._gone(scanned, workdir)
                else:
                    scanned.seen.cleanup()
            if self.control.failure is not None:
                raise self.control.failure
            if facts.full_run:
                journal.remove(dead)  # repaired, or no longer in the input
            self._remember_branches()
            self._refresh_oai_index()
        except StoreError as e:
            failure = e
            raise
        except OSError as e:
            failure = StoreError(f"{e.filename or self.home.var}: {e.strerror or e}")
            raise failure from None
        finally:
            self._clean_workdir(workdir)
            # The reserve is freed for the summary and the log's last lines: they
            # say how the run ended, a failure of its own disk included.
            reserve.free()
            end_t = self.now()
            summary = self._summary(end_t, log_path, facts.suffix, failure)
            last = ["renewal ends: " + json.dumps(summary.to_json(), sort_keys=True)]
            if failure is not None:
                last.insert(0, f"renewal failed (exit {int(summary.exit_status)}): {failure}")
            self.log.write_last(*last)
            self.log.close()
        return summary

    def _clean_workdir(self, workdir: str) -> None:
        """Remove the run's work files. After a store failure the journal stays:
        the records it names as in flight are repaired by the next run."""
        if self.control.failure is None and not self.lost_worker:
            shutil.rmtree(workdir, ignore_errors=True)
            return
        try:
            names = os.listdir(workdir)
        except OSError:
            return
        for name in names:
            if name != journal.JOURNAL:
                shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)

    # -- scan and plan ---------------------------------------------------------------------

    def _scan(self, workdir: str) -> Scanned:
        facts = self.facts
        s = scan(facts.inputs, facts.branches, self.store_root, workdir,
                 Selection(self.opt.only, self.opt.shard), now=self.now(),
                 interval=self.cfg.record_interval, full_run=facts.full_run, report=self.report,
                 stopping=self.stopping, log=self.log.write,
                 tick=(lambda _n: self._progress("scan")) if self.opt.progress else None,
                 rules=InputRules(self.cfg.max_input_file, self.cfg.max_record,
                                  self.cfg.follow_outside_links, self.cfg.archive_dirs))
        self.stats.add(records_found=s.records_found, refs=s.refs, damaged=s.damaged,
                       objects_total=s.objects_total)
        for reason, n in s.skipped.items():
            self.stats.skip(reason, n)
        return s

    def skip(self, reason: str, n: int = 1) -> None:
        """Records found and not renewed, by reason: every summary has
        found = renewed + the sum of skipped."""
        self.stats.skip(reason, n)

    def _dropped(self, rid: str, src: str) -> None:
        """A record read before its file failed: found, then dropped with the file."""
        self.skip("input_file_failed")
        self.log.write(f"record {rid} ({src}): not renewed, its input file failed later")

    def _duplicate(self, rid: str, src: str, kept: str) -> None:
        self.stats.add(duplicates=1)
        self.skip("duplicate")
        file, _, line = src.rpartition(":")
        kfile, _, kline = kept.rpartition(":")
        self.report(f"{file}, line {line} (record {rid}): duplicate id, also at {kfile}, line "
                    f"{kline}, which is kept (in its archive's directory, else the smaller "
                    "path, then the earlier line); skipped", True)

    # -- renew -----------------------------------------------------------------------------

    def _renew(self, scanned: Scanned, workdir: str, jr: journal.Journal,
               dirty: set[str]) -> None:
        """The records, renewed on one event loop per process (made for this
        run, closed after): here, or in worker processes."""
        cfg = self.cfg
        n = processes.count(cfg.processes, cfg.per_host, cfg.host_delay)
        records = plan(scanned.spool, scanned.failed_files, self._duplicate, self._dropped)
        try:
            if n <= 1:
                self._on_loop(self._renew_on_loop(
                    _aiter(records), scanned.shared_urls, cfg.concurrency, cfg.per_host,
                    jr, dirty))
            else:
                self._renew_in_processes(records, scanned, n, jr, dirty)
        finally:
            scanned.spool.cleanup()
        if self.interrupted is None and self.opt.stop is not None and self.opt.stop.is_set():
            self.interrupted = "signal"  # a stop after the last record started
        if self.interrupted == "signal":
            self.interrupted = getattr(self.opt.stop, "reason", None) or "SIGTERM"

    @staticmethod
    def _on_loop(coro: Coroutine[Any, Any, None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            with store.recycling():  # each 00last's inode reused as the next (kiel.store)
                loop.run_until_complete(coro)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    # -- worker processes ----------------------------------------------------------------

    def _renew_in_processes(self, records: Iterable[Planned], scanned: Scanned,
                            n: int, jr: journal.Journal, dirty: set[str]) -> None:
        """Fork ``n`` workers, send each its records, merge what they counted."""
        self.log.write(f"renewing in {n} worker processes")
        self.log.flush()  # nothing buffered is written twice
        board = processes.Board(n) if self.opt.progress else None
        workers = processes.start(
            n, lambda k, fd, result: self._worker(k, fd, result, n, scanned, board, jr, dirty))
        forwarded: list[int] = []
        shown = [0.0]

        def progress() -> None:
            if board is None or time.monotonic() - shown[0] < 0.5 or self.opt.progress is None:
                return
            shown[0] = time.monotonic()
            done, found, objects, running, fetched = board.totals()
            s = self.stats
            self.opt.progress(Progress(
                "renew", s.get("records_found"), done, s.get("objects_total") + found, objects,
                running,
                fetched, self.facts.elapsed(), self.opt.max_time))

        def on_stop() -> None:
            if not forwarded:
                forwarded.append(1)
                reason = getattr(self.opt.stop, "reason", None)
                processes.forward(workers, signal.SIGINT if reason == "SIGINT"
                                  else signal.SIGTERM)

        feeder = processes.Feeder(workers, self.stopping, on_stop, progress)
        try:
            unsent = processes.feed(records, feeder, scanned.components, n)
            if self.stopping():
                on_stop()
            # The record not sent and the rest, counted as the single process
            # counts them (or as lost with a worker that died).
            reason = self._stop_reason() if self.stopping() else "worker_lost"
            self.skip(reason, unsent + sum(1 for _ in records))
        finally:
            feeder.close()

            def watch() -> None:
                if self.stopping():
                    on_stop()
                progress()

            ended = [processes.reap(w, watch) for w in workers]
        for e in ended:
            if e.result is None:
                self.lost_worker = True
                self.interrupted = "worker-lost"
                self.report("a worker process ended without its counts ("
                            + (f"killed by signal {e.signal}" if e.signal else f"exit {e.code}")
                            + "); the run is incomplete, nothing is marked gone", False)
                continue
            self.stats.merge(e.result["stats"])
            if e.result.get("interrupted") and self.interrupted is None:
                self.interrupted = e.result["interrupted"]
            if e.result.get("fatal"):
                self.control.failed_in_worker(e.result["fatal"])

    def _worker(self, k: int, fd: int, result: int, n: int, scanned: Scanned,
                board: processes.Board | None, jr: journal.Journal, dirty: set[str]) -> None:
        """One worker process: its records from ``fd``, renewed on its own loop;
        its counts sent back down ``result``. Ends the process."""
        code = 70
        try:
            stop = self.opt.stop if isinstance(self.opt.stop, Stop) else Stop()
            def on_signal(signum: int, _frame: object) -> None:
                stop.request("SIGINT" if signum == signal.SIGINT else "SIGTERM")

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            def post(p: Progress) -> None:
                assert board is not None
                board.post(k, p.records_done, p.objects_total, p.objects_done, p.fetching,
                           p.bytes_fetched)

            # The process's own run: the same facts, its own stop, counts and progress.
            opt = dataclasses.replace(self.opt, stop=stop,
                                      progress=post if board is not None else None)
            mine = Renewal(dataclasses.replace(self.facts, opt=opt))
            self.log.reopen()
            cfg = self.cfg
            mine._on_loop(mine._renew_on_loop(
                processes.records_from(fd), scanned.shared_urls,
                max(1, cfg.concurrency // n), max(1, cfg.per_host // n), jr, dirty))
            mine._progress("renew")  # the worker's last figures for the parent's line
            if mine.interrupted is None and stop.is_set():
                mine.interrupted = stop.reason or "SIGTERM"
            jr.close()  # its ends, written before the counts
            failure = mine.control.failure
            processes.send_result(result, {
                "stats": mine.stats.counts(), "interrupted": mine.interrupted,
                "fatal": str(failure) if failure else None})
            code = 0
        except BaseException as e:  # noqa: BLE001 - the parent hears of it as a lost worker
            self.log.write(f"worker process {k} failed: {type(e).__name__}: {e}")
        finally:
            self.log.close()
            os._exit(code)

    async def _renew_on_loop(self, records: AsyncIterator[Planned], shared: set[str],
                             concurrency: int, per_host: int, jr: journal.Journal,
                             dirty: set[str]) -> None:
        cfg = self.cfg
        b = fds.budget(fds.raise_soft_limit(), concurrency, CLIENTS_PER_THREAD)
        self.log.write(f"open files: limit {b.soft}, {b.workers} workers, "
                       f"{b.clients_per_worker} idle clients each")
        # Where Kiel may connect is decided on the address actually dialled
        # (kiel/netguard.py); a stop ends every attempt in flight within moments.
        fetcher = Fetcher(Limits(cfg.connect_timeout, cfg.read_timeout, cfg.total_timeout,
                                 cfg.max_body, user_agent(cfg.contact)),
                          verify_tls=self.opt.verify_tls,
                          guard=netguard.Policy(allow=cfg.allow_networks, deny=cfg.deny_networks),
                          clients_per_thread=b.clients_per_worker, threads=b.workers)
        sched: Scheduler[ObjectJob] = Scheduler(per_host, cfg.host_delay)
        ctx = Context(self.facts, self.control, fetcher, sched, SharedFetches(shared),
                      self.stats, HostHealth(cfg.host_down_after))
        # A record starts when the workers could soon take its objects: while at
        # most `lookahead` queued jobs could start now. Jobs waiting behind a busy
        # or paused host, a retry's timer or a shared fetch do not count, so a
        # slow host never holds the records of the others; records in flight and
        # jobs pending are bounded all the same (memory).
        lookahead = b.workers * 4
        most = 4 * lookahead
        fl = Flight(jr, dirty, sched, Worker(ctx), Slots(max(lookahead + 1, RECORDS_IN_FLIGHT)))
        workers = [asyncio.create_task(Worker(ctx).loop(), name=f"kiel-fetch-{i}")
                   for i in range(b.workers)]
        watcher = asyncio.create_task(self._watch_stop(fl, workers), name="kiel-stop")
        last_progress = 0.0
        try:
            async for p in records:
                if not await self._wait_slot(fl):
                    self.skip(self._stop_reason())
                    continue
                if self._stop_starting(fl):
                    continue
                self._start(fl, p)
                while fl.sched.full(lookahead, most) and not self.stopping():
                    await fl.sched.wait_room(lookahead, most, timeout=0.5)
                if self.opt.progress and time.monotonic() - last_progress > 0.5:
                    last_progress = time.monotonic()
                    self._progress("renew", fl)
        finally:
            fl.sched.close()
            while not all(w.done() for w in workers):
                if self.stopping() or fl.sched.held:
                    self._cancel_queued(fl)
                await asyncio.wait(workers, timeout=0.2)
            while ctx.background:  # a bundle's check: it hears a stop within a chunk
                await asyncio.wait(list(ctx.background))
            watcher.cancel()
            await fetcher.aclose()
            for w in workers:
                if not w.cancelled() and w.exception() is not None:
                    raise w.exception()  # type: ignore[misc]

    async def _watch_stop(self, fl: Flight, workers: list[asyncio.Task[None]]) -> None:
        """The stop, as a cancellation: every worker's wait ends (an attempt in
        flight is noted ``000 interrupted``), the jobs not started end here."""
        while not self.stopping():
            if self.facts.out_of_time():
                # --max-time: no attempt starts any more; those under way finish.
                if not fl.sched.held:
                    fl.sched.hold()
                    self.interrupted = self.interrupted or "max-time"
                    self.log.write("max-time reached: no further attempt starts; the "
                                   "records not finished come first next time")
                self._cancel_queued(fl)
            await asyncio.sleep(0.1)
        self._cancel_queued(fl)
        for w in workers:
            w.cancel()

    async def _wait_slot(self, fl: Flight) -> bool:
        """A free in-flight slot; False when the run stops while waiting."""
        while not fl.inflight.take():
            await fl.inflight.wait(0.5)
            if self.stopping():
                self._cancel_queued(fl)
                return fl.inflight.take()
        return True

    def _cancel_queued(self, fl: Flight) -> None:
        """On a stop or at ``--max-time``: the jobs not yet running end here,
        their records noted as interrupted (no ``00last``: they come first next
        time)."""
        why = "the run was interrupted" if self.stopping() or not fl.sched.held \
            else "the run reached --max-time"
        for job in fl.sched.drain():
            job.record.interrupt()
            job.record.error(f"{job.target.name}: not renewed, {why}")
            try:
                end(job, why)
            except Exception as e:  # noqa: BLE001 - the finish reports its own failure
                self.fatal(e, job.record.dir)

    def _stop_starting(self, fl: Flight) -> bool:
        """True (and counted) when no record may start any more; the slot is given back."""
        if self.stopping():
            if self.interrupted is None and self.control.failure is None:
                self.interrupted = "signal"
            reason = self._stop_reason()
        elif self.facts.out_of_time():
            self.interrupted = self.interrupted or "max-time"
            reason = "max_time"
        else:
            return False
        fl.inflight.release()
        self.skip(reason)
        return True

    def _stop_reason(self) -> str:
        """Why records are not reached: a stop (signal), or a failure of our own disk."""
        return "run_failed" if self.control.failure is not None else "interrupted"

    def _safe_dir(self, rel: str) -> bool:
        """No component of a record directory is a symbolic link (planted links)."""
        parent, _, _leaf = rel.rpartition("/")
        if parent not in self._safe_parents:
            if not inside(self._real_store, os.path.join(self.store_root, parent)):
                return False
            self._safe_parents.add(parent)
        return not os.path.islink(os.path.join(self.store_root, rel))

    def _start(self, fl: Flight, p: Planned) -> None:
        """Start one record; its in-flight slot is released when it finishes."""
        rdir = os.path.join(self.store_root, p.rel)
        handed = False
        try:
            if not self._safe_dir(p.rel):
                self.skip("outside_store")
                self.report(f"{rdir}: leads outside the store (a symbolic link); record {p.id} "
                            "not renewed", False)
                return
            fl.journal.started(p.rel)
            try:
                if p.rel in fl.dirty:
                    self.stats.add(repaired=1)
                r = record_mod.start(p, self.store_root, self.now(), sync=self.cfg.sync,
                                     repair=p.rel in fl.dirty,
                                     changed_hook=lambda kind, v: self._changed(kind, p, v),
                                     on_finish=partial(self._finished, fl))
            except record_mod.Damaged as e:
                self.stats.add(damaged=1)
                self.skip("damaged")
                self.report(f"record {p.id}: {e}; not renewed (the record directory needs a "
                            "person)", False)
                fl.journal.ended(p.rel)
                return
            self.stats.add(new_versions=int(r.changed), virgin=int(r.changed and r.virgin),
                           unchanged=int(not r.changed),
                           adopted=sum(1 for e in r.events if e.event == "adopted"),
                           back=sum(1 for e in r.events if e.event == "back"))
            handed = True
            for t in p.targets:
                r.claim(t.name)  # the record's own: a redirect back to one ends its chain
            for t in p.targets:
                fl.starter.queue(ObjectJob(r, t, Discovery(t.name in p.discover)))
            for t in p.targets:
                ref = platforms.match(t.fetch)
                if ref is not None:
                    fl.starter.start_deposit(r, ref)
            r.done()  # the starter's token
        except OSError as e:
            self.fatal(e, rdir)
            if not handed:
                self.skip("run_failed")
        except Exception as e:  # noqa: BLE001 - one record never kills the run
            self.report(f"record {p.id}: internal error {type(e).__name__}: {e}", False)
            if not handed:
                self.skip("error")
        finally:
            if not handed:
                fl.inflight.release()

    def _finished(self, fl: Flight, r: record_mod.RecordRenewal) -> None:
        """A record's last job ended: its notes line and ``00last``."""
        try:
            if self.control.failure is None:
                record_mod.finish(r, self.now(), sync=self.cfg.sync)
                fl.journal.ended(r.rel)
                if not r.interrupted:
                    self.stats.add(records_renewed=1)
                    self._progress("renew", fl)  # the progress line shows records as they end
                elif fl.sched.held and not self.stopping():
                    self.skip("max_time")  # started, not finished: first next time
                else:
                    self.skip("interrupted")
                self.log.write(f"record {r.id}: "
                               f"{'version ' + r.version if r.version else 'unchanged'}, "
                               f"{len(r.objects)} objects"
                               + (f", errors: {r.errors}" if r.errors else ""))
            else:
                self.skip("run_failed")  # its 00last is not written: first next time
        except NotRegular as e:
            self.stats.add(damaged=1)
            self.skip("damaged")
            self.report(f"{e.filename}: {e.what} where a regular file belongs; record {r.id} "
                        "not finished (the record directory needs a person)", False)
        except OSError as e:
            self.fatal(e, r.dir)
            self.skip("run_failed")
        finally:
            fl.inflight.release()

    # -- gone --------------------------------------------------------------------------------

    def _gone(self, scanned: Scanned, workdir: str) -> None:
        if not scanned.complete:
            self.log.write("gone: not checked, some input could not be read")
            scanned.seen.cleanup()
            return
        if self.interrupted in ("SIGTERM", "SIGINT", "signal", "worker-lost"):
            scanned.seen.cleanup()
            return
        self._progress("gone")
        try:
            g = mark_gone(self.store_root, scanned.seen, workdir, self.now(),
                          max_share=self.cfg.gone_max_share,
                          allow=self.opt.allow_gone, sync=self.cfg.sync,
                          on_gone=self._on_gone)
        except OSError as e:
            self.fatal(e, self.store_root)
            return
        self.stats.add(gone=g.marked, gone_held=g.held, damaged=len(g.damaged))
        for text in g.damaged:
            self.report(text, False)
        if g.reason:
            self.report(g.reason, False)

    def _changed(self, kind: str, p: Planned, version: int | None) -> None:
        self.facts.changes.append(kind, p.id, p.rel, version)

    def _on_gone(self, rdir: str) -> None:
        rel = os.path.relpath(rdir, self.store_root)
        self.facts.changes.append("gone", None, rel)
        self.log.write(f"gone: {rel} was not in the input")

    # -- after the records ------------------------------------------------------------------

    def _refresh_oai_index(self) -> None:
        """Fold this run's changes into the OAI-PMH index (they were listed as
        they happened; the fold keeps the change log short)."""
        from kiel.oai import refresh

        stats = refresh(self.home.root)
        if stats is not None:
            self.log.write(f"OAI-PMH index folded: {stats.records} records, {stats.deleted} "
                           f"deleted, in {stats.seconds:.1f}s")

    def _archive_branches(self) -> None:
        """Keep the branches of earlier runs as ``etc/branches_<tist>.xml``."""
        snap = os.path.join(self.home.var, "branches-in-use.xml")
        snap_t = os.path.join(self.home.var, "branches-in-use.tist")
        try:
            with open(snap, "rb") as f:
                old = f.read()
            with open(snap_t, "rb") as f:
                last_used = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return
        if old == self.facts.branches_bytes:
            return
        existing = os.path.join(self.home.etc, f"branches_{last_used}.xml")
        if os.path.exists(existing):
            with open(existing, "rb") as f:
                if f.read() == old:
                    return
        name = store.write_new(self.home.etc, lambda s: f"branches_{last_used + s}.xml", old)
        self.log.write(f"branches changed; the earlier ones are kept as etc/{name}")

    def _remember_branches(self) -> None:
        store.replace(os.path.join(self.home.var, "branches-in-use.xml"),
                      self.facts.branches_bytes)
        store.replace(os.path.join(self.home.var, "branches-in-use.tist"), b"%d\n" % self.now())

    # -- reporting ---------------------------------------------------------------------------

    def _progress(self, phase: str, fl: Flight | None = None) -> None:
        if not self.opt.progress:
            return
        s = self.stats
        self.opt.progress(Progress(
            phase, s.get("records_found"), s.get("records_renewed"), s.get("objects_total"),
            s.get("objects"), fl.sched.running if fl is not None else 0,
            s.get("bytes_fetched"), self.facts.elapsed(), self.opt.max_time))

    def _alert(self) -> str | None:
        """A person is needed: most attempts could not connect, or were denied
        by the network guard (cron mails it)."""
        return self.stats.alert(self.cfg.alert_share, self.cfg.alert_min_attempts)

    def _summary(self, end_t: int, log_path: str, suffix: str,
                 failure: StoreError | None = None) -> Summary:
        facts = self.facts
        runs = os.path.join(self.home.var, "runs")
        try:
            path = unique_path(runs, f"{facts.tist}{suffix}", ".json")
        except OSError:
            path = os.path.join(runs, f"{facts.tist}{suffix}.json")
        alert = self._alert()
        if alert:
            self.log.write("alert: " + alert)
        c = self.stats.snapshot()
        missing = c.records_found - c.records_renewed - sum(c.skipped.values())
        if missing and self.lost_worker:
            self.skip("worker_lost", missing)  # counted by a process that did not report
        elif missing:
            self.log.write(f"counts: {c.records_found} found, {c.records_renewed} renewed, "
                           f"skipped {c.skipped}: {missing} records unaccounted for")
        counts = self.stats.snapshot(problems=(str(failure),) if failure else ())
        summary = Summary(
            **{f.name: getattr(counts, f.name) for f in dataclasses.fields(counts)},
            tist=facts.tist, end=end_t, duration=round(facts.elapsed(), 3),
            full_run=facts.full_run, interrupted=self.interrupted, alert=alert, log=log_path,
            summary_file=path, failure=str(failure) if failure else None)
        try:
            store.replace(path, (json.dumps(summary.to_json(), indent=1, sort_keys=True)
                                 + "\n").encode("utf-8"))
        except OSError:
            pass  # a full disk: the summary is still returned and printed
        return summary

