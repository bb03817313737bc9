"""One renewal run (``kiel renew``): the heart of the Kiel protocol.

The run has three phases, each streaming:

1. *Scan*: walk the input files, parse every record, serialize it, evaluate
   the branches and read its ``00last``; one line per record goes to an
   external sort keyed by (last end, record directory, input order), and
   every fetched URL to a second one (to find URLs shared by records).
2. *Renew*: in that order (virgin records first, then the most overdue),
   store a new version when the bytes changed, then fetch every object on a
   pool of worker threads with per-host limits; a record's ``00last`` and
   notes line are written when its last object is done.
3. *Gone*: a full run marks record directories it did not see with
   ``00gone``.

Nothing here prints or exits: the run returns a :class:`Summary`.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import ipaddress
import json
import os
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from lxml import etree

from kiel import branches as branches_mod
from kiel import notes, objects, records, redist, store
from kiel import urls as urls_mod
from kiel.config import Config
from kiel.escape import inside
from kiel.errors import ConfigError, StoreError
from kiel.fetch import Fetcher, Limits, Result, user_agent
from kiel.home import Home, Lock
from kiel.scheduler import Scheduler
from kiel.spool import ExternalSort

TRANSIENT_ERRORS = {"timeout", "connect", "refused", "reset", "incomplete"}
TRANSIENT_STATUS = {"429", "502", "503", "504"}
MAX_LISTED_PROBLEMS = 1000


class Stop(threading.Event):
    """Set by a signal handler: no record starts after it; ``reason`` names it."""

    reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.set()


@dataclass(frozen=True)
class Options:
    inputs: tuple[str, ...] = ()  # empty: the ``input`` setting
    only: str | None = None  # record id prefix
    shard: tuple[int, int] | None = None  # (k, n), 1 <= k <= n
    max_time: float | None = None  # seconds; no record starts after it
    clock: Callable[[], float] = time.time
    stop: Stop | None = None  # set on SIGTERM / SIGINT
    progress: Callable[["Progress"], None] | None = None
    verify_tls: bool = True
    config: Config | None = None  # overrides etc/kiel.conf (tests, benchmarks)


@dataclass(frozen=True)
class Progress:
    phase: str  # "scan", "renew", "gone", "done"
    records_found: int
    records_done: int
    objects_in_flight: int
    elapsed: float
    max_time: float | None


@dataclass(frozen=True)
class Summary:
    tist: int
    end: int
    duration: float
    full_run: bool
    records_found: int
    records_renewed: int
    new_versions: int
    virgin: int
    unchanged: int
    skipped: dict[str, int]
    input_errors: int
    problems: tuple[str, ...]
    refs: int
    duplicates: int
    gone: int
    back: int
    objects: int
    attempts: int
    attempts_by_class: dict[str, int]
    errors_by_kind: dict[str, int]
    retries: int
    shared: int
    not_modified: int
    given_up: int
    bytes_fetched: int
    bytes_stored: int
    bytes_linked: int
    interrupted: str | None  # "SIGTERM", "SIGINT", "max-time" or None
    log: str
    summary_file: str

    @property
    def exit_status(self) -> int:
        if self.interrupted == "SIGINT":
            return 130
        if self.interrupted == "SIGTERM":
            return 143
        return 1 if self.input_errors else 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_status"] = self.exit_status
        d["records_per_second"] = round(self.records_renewed / self.duration, 1) \
            if self.duration else None
        return d


def shard_of(record_id: str, n: int) -> int:
    """The shard (1..n) of a record: a stable hash of its record directory."""
    digest = hashlib.sha256(redist.record_path(record_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def matches_only(record_id: str, prefix: str) -> bool:
    """``--only``: the id starts with the prefix (RePEc handles case-insensitively)."""
    rid = record_id
    if rid.lower().startswith("info:lib/"):
        rid = rid[len("info:lib/"):]
    pre = prefix[len("info:lib/"):] if prefix.lower().startswith("info:lib/") else prefix
    if rid.lower().startswith("repec:") and pre.lower().startswith("repec"):
        return rid.lower().startswith(pre.lower())
    return rid.startswith(pre) or record_id.startswith(prefix)


# --- the state of one run ------------------------------------------------------

@dataclass
class _Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    records_found: int = 0
    records_done: int = 0
    new_versions: int = 0
    virgin: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    input_errors: int = 0
    problems: list = field(default_factory=list)
    refs: int = 0
    duplicates: int = 0
    gone: int = 0
    back: int = 0
    objects: int = 0
    attempts: int = 0
    by_class: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    shared: int = 0
    not_modified: int = 0
    given_up: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    bytes_linked: int = 0


class _Log:
    """``var/log/<tist>.log``: every problem and one line per record."""

    def __init__(self, path: str):
        self.path = path
        # Buffered: the log is not precious, and a write per line costs a syscall.
        self._f = open(path, "a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        line = "%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            records.printable(text))
        with self._lock:
            try:
                self._f.write(line)
            except OSError:
                pass  # the log is not precious; a full disk is reported by the run

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass


@dataclass
class _RecordJob:
    id: str
    rel: str
    dir: str
    start: int
    version: str | None
    current: str
    changed: bool
    source: str
    urls: dict[str, list[str]]
    skipped: list[dict[str, Any]]
    objects: dict[str, str] = field(default_factory=dict)  # url name -> dir name
    errors: list[str] = field(default_factory=list)
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[dict[str, Any]] = field(default_factory=list)
    version_sha256: str | None = None


@dataclass
class _ObjectJob:
    record: _RecordJob
    target: urls_mod.Target
    hop: int = 0


@dataclass
class _Shared:
    """A URL that several records link to: fetched once per run."""

    done: bool = False
    real: str | None = None  # regular file with the body (None: empty or 000)
    res: Result | None = None
    name: str | None = None  # the owner's attempt file name
    same_as: str | None = None  # the owner's object directory, store-relative
    followers: list = field(default_factory=list)


class Run:
    def __init__(self, home: Home, options: Options):
        self.home = home
        self.opt = options
        self.cfg = options.config or home.config()
        self.clock = options.clock
        self.stats = _Stats()
        self.store_root = home.store
        self._real_store = os.path.realpath(home.store)
        self._safe_parents: set[str] = set()
        self.full_run = options.only is None and options.shard is None
        self.failed_files: set[int] = set()
        self.inputs_incomplete = False
        self.shared_urls: set[str] = set()
        self._shared: dict[str, _Shared] = {}
        self._shared_lock = threading.Lock()
        self._resolved: dict[str, str | None] = {}
        self._resolve_lock = threading.Lock()
        self._fatal: BaseException | None = None
        self.interrupted: str | None = None

    # -- helpers ---------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def problem(self, text: str, input_error: bool = True) -> None:
        with self.stats.lock:
            if input_error:
                self.stats.input_errors += 1
            if len(self.stats.problems) < MAX_LISTED_PROBLEMS:
                self.stats.problems.append(text)
        self.log.write("problem: " + text)

    def _stopping(self) -> bool:
        return self._fatal is not None or (self.opt.stop is not None and self.opt.stop.is_set())

    # -- the run -------------------------------------------------------------------

    def run(self) -> Summary:
        self.t0 = time.monotonic()
        self.tist = self.now()
        if self.opt.shard:
            k, n = self.opt.shard
            if not (1 <= k <= n):
                raise ConfigError(f"--shard {k}/{n}: K must be between 1 and N")
        self.branches = branches_mod.load(self.home.branches)
        inputs = self.opt.inputs or tuple(self.home.resolve_input(p) for p in self.cfg.input)
        if not inputs:
            raise ConfigError(f"no input: name AMF files or directories on the command line "
                              f"or in the 'input' setting of {self.home.conf}")
        for d in (self.store_root, os.path.join(self.home.var, "log"),
                  os.path.join(self.home.var, "runs")):
            os.makedirs(d, exist_ok=True)
        from kiel.oai import ChangeLog

        with Lock(self.home, self.opt.shard), \
                ChangeLog.open(self.home.root, now=self.now, sync=self.cfg.sync) as self.oai_changes:
            return self._run_locked(inputs)

    def _run_locked(self, inputs: tuple[str, ...]) -> Summary:
        suffix = "" if self.opt.shard is None else "-shard-%d-of-%d" % self.opt.shard
        log_path = os.path.join(self.home.var, "log", f"{self.tist}{suffix}.log")
        self.log = _Log(log_path)
        self.log.write(f"renewal starts: inputs {list(inputs)}, only={self.opt.only}, "
                       f"shard={self.opt.shard}, max_time={self.opt.max_time}")
        workdir = os.path.join(self.home.var, f"run-{self.tist}{suffix}-{os.getpid()}")
        self._archive_branches()
        try:
            spool, url_spool, seen = self._scan(inputs, workdir)
            self._find_shared(url_spool)
            self._renew(spool)
            if self.full_run and self._fatal is None:
                self._mark_gone(seen)
            else:
                seen.cleanup()
            if self._fatal is not None:
                raise self._fatal
            self._remember_branches()
            self._refresh_oai_index()
        finally:
            _rmtree(workdir)
            end = self.now()
            summary = self._summary(end, log_path, suffix)
            self.log.write("renewal ends: " + json.dumps(summary.to_json(), sort_keys=True))
            self.log.close()
        return summary

    # -- phase 1: scan ---------------------------------------------------------------

    def _scan(self, inputs, workdir):
        spool = ExternalSort(workdir)
        url_spool = ExternalSort(workdir)
        seen = ExternalSort(workdir, chunk_bytes=512 * 1024)
        now = self.now()
        interval = self.cfg.record_interval
        seq = 0
        fidx = 0
        for path in records.walk(inputs):
            if isinstance(path, records.Problem):
                self.inputs_incomplete = True
                self.problem(str(path))
                continue
            fidx += 1
            if self._stopping():
                self.inputs_incomplete = True  # not all input read: no record is gone
                break
            for item in records.read_file(path):
                if isinstance(item, records.Problem):
                    if item.fatal_for_file:
                        self.failed_files.add(fidx)
                        self.inputs_incomplete = True
                        self.problem(str(item) + " (file skipped)")
                    else:
                        self.problem(str(item))
                    continue
                if isinstance(item, records.Ref):
                    with self.stats.lock:
                        self.stats.refs += 1
                    self.log.write(f"ref: {item.file}, line {item.line}: text refers to "
                                   f"{item.ref}, held elsewhere; not stored")
                    continue
                rec = item
                if self.opt.only and not matches_only(rec.id, self.opt.only):
                    continue
                if self.opt.shard and shard_of(rec.id, self.opt.shard[1]) != self.opt.shard[0]:
                    continue
                seq += 1
                rel = redist.record_path(rec.id)
                key_rel = rel.replace("/", "\x01").encode("utf-8")
                if self.full_run:
                    seen.add(rel.replace("/", "\x00").encode("utf-8") + b"\t%d" % fidx)
                last = store.read_last(os.path.join(self.store_root, rel))
                self.stats.records_found += 1
                if interval and last and now - last.end < interval:
                    self.stats.skipped["record_interval"] += 1
                    continue
                try:
                    targets, found, skipped = self._evaluate(rec)
                except etree.XMLSyntaxError as e:
                    self.problem(f"{rec.file}, line {rec.line} (record {rec.id}): cannot be "
                                 f"read back after serialization ({e.msg}); skipped")
                    continue
                payload = json.dumps({
                    "id": rec.id, "rel": rel, "f": fidx, "src": f"{rec.file}:{rec.line}",
                    "xml": rec.xml.decode("utf-8"), "t": [[t.fetch, t.name] for t in targets],
                    "u": found, "s": skipped,
                }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                spool.add(b"%012d\x00%s\x00%012d\t" % (last.end if last else 0, key_rel, seq)
                          + payload)
                for t in targets:
                    url_spool.add(t.fetch.encode("utf-8", "surrogateescape")
                                  + b"\t" + key_rel)
                if self.opt.progress and seq % 1000 == 0:
                    self._progress("scan")
        return spool, url_spool, seen

    def _evaluate(self, rec: records.Record):
        text = records.parse_stored(rec.xml)
        found: dict[str, list[str]] = {}
        skipped: list[dict[str, Any]] = []
        targets: list[urls_mod.Target] = []
        names: set[str] = set()
        for b in self.branches:
            found[b.xpath] = []
            for value, reason in b.evaluate(text):
                if reason is None:
                    t = urls_mod.classify(value)
                    if isinstance(t, str):
                        reason = t
                    else:
                        found[b.xpath].append(t.name)
                        if t.name not in names:
                            names.add(t.name)
                            targets.append(t)
                        continue
                skipped.append({"branch": b.xpath, "value": urls_mod.redact(value or "")[:500],
                                "reason": reason})
        return targets, found, skipped

    def _find_shared(self, url_spool: ExternalSort) -> None:
        """URLs linked by more than one record: fetched once, linked by the rest."""
        prev_url = None
        prev_rel = None
        for line in url_spool:
            url, _, rel = line.partition(b"\t")
            if url == prev_url and rel != prev_rel:
                self.shared_urls.add(url.decode("utf-8", "surrogateescape"))
            prev_url, prev_rel = url, rel

    # -- phase 2: renew ----------------------------------------------------------------

    def _renew(self, spool: ExternalSort) -> None:
        cfg = self.cfg
        self.fetcher = Fetcher(Limits(cfg.connect_timeout, cfg.read_timeout, cfg.total_timeout,
                                      cfg.max_body, user_agent(cfg.contact)),
                               verify_tls=self.opt.verify_tls)
        self.sched = Scheduler(cfg.per_host, cfg.host_delay)
        workers = [threading.Thread(target=self._worker, name=f"kiel-fetch-{i}", daemon=True)
                   for i in range(cfg.concurrency)]
        for w in workers:
            w.start()
        # Records started and not finished: bounded, so that a record starts
        # only when the workers can soon take its objects (and --max-time means
        # what it says).
        limit = cfg.concurrency + 1 if self.opt.max_time else cfg.concurrency * 4
        self._inflight = threading.BoundedSemaphore(limit)
        prev_rel = None
        prev_src = None
        last_progress = 0.0
        try:
            for line in spool:
                _, _, payload = line.partition(b"\t")
                entry = json.loads(payload)
                if entry["f"] in self.failed_files:
                    continue
                if entry["rel"] == prev_rel:
                    with self.stats.lock:
                        self.stats.duplicates += 1
                    self.problem(f"{entry['src'].rsplit(':', 1)[0]}, line "
                                 f"{entry['src'].rsplit(':', 1)[1]} (record {entry['id']}): "
                                 f"duplicate id, first seen at {prev_src}; skipped")
                    continue
                prev_rel, prev_src = entry["rel"], entry["src"]
                # A record starts only when a slot is free (acquire may wait),
                # and none after a stop request or the time budget.
                self._inflight.acquire()
                if self._stop_starting():
                    self._inflight.release()
                    continue
                self._begin_record(entry)
                # Look ahead just enough to keep the workers busy: with a time
                # budget, a record that starts should be fetched soon.
                self.sched.wait_below(cfg.concurrency * (1 if self.opt.max_time else 4))
                if self.opt.progress and time.monotonic() - last_progress > 0.5:
                    last_progress = time.monotonic()
                    self._progress("renew")
        finally:
            self.sched.close()
            for w in workers:
                w.join()
            self.fetcher.close()
            spool.cleanup()
        if self.interrupted == "signal":
            self.interrupted = getattr(self.opt.stop, "reason", None) or "SIGTERM"

    def _over_budget(self) -> bool:
        return self.opt.max_time is not None and time.monotonic() - self.t0 > self.opt.max_time

    def _stop_starting(self) -> bool:
        """True (and counted) when no record may start any more."""
        if self._stopping():
            if self.interrupted is None and self._fatal is None:
                self.interrupted = "signal"
            reason = "interrupted"
        elif self._over_budget():
            self.interrupted = self.interrupted or "max-time"
            reason = "max_time"
        else:
            return False
        with self.stats.lock:
            self.stats.skipped[reason] += 1
        return True

    def _begin_record(self, entry: dict[str, Any]) -> None:
        handed_over = False  # then _finish_record releases the in-flight slot
        try:
            handed_over = self._start_record(entry)
        except OSError as e:
            self._fail(e, entry["rel"])
        except Exception as e:  # noqa: BLE001 - one record never kills the run
            self.problem(f"record {entry['id']}: internal error {type(e).__name__}: {e}",
                         input_error=False)
        finally:
            if not handed_over:
                self._inflight.release()

    def _safe_dir(self, rel: str) -> bool:
        """No component of a record directory is a symbolic link (planted links)."""
        parent, _, leaf = rel.rpartition("/")
        if parent not in self._safe_parents:
            if not inside(self._real_store, os.path.join(self.store_root, parent)):
                return False
            self._safe_parents.add(parent)
        return not os.path.islink(os.path.join(self.store_root, rel))

    def _start_record(self, entry: dict[str, Any]) -> bool:
        """Store the record's version and hand its objects to the workers.

        True when the record is under way: :meth:`_finish_record` ends it."""
        rel = entry["rel"]
        rdir = os.path.join(self.store_root, rel)
        start = self.now()
        if not self._safe_dir(rel):
            # A symbolic link planted in the store: Kiel never writes through it.
            self.problem(f"{rdir}: leads outside the store (a symbolic link); record "
                         f"{entry['id']} not renewed", input_error=False)
            return False
        xml = entry["xml"].encode("utf-8")
        try:
            store.makedirs(rdir)
            vers = []
            for name in os.listdir(rdir):
                if store.is_tmp(name):
                    store.unlink_quiet(os.path.join(rdir, name))
                    continue
                m = store.VERSION_RE.match(name)
                if m:
                    vers.append((int(m.group(1)), name))
            newest = max(vers) if vers else None
            changed = True
            if newest is not None:
                with open(os.path.join(rdir, newest[1]), "rb") as f:
                    changed = f.read() != xml
            version = None
            current = newest[1] if newest else None
            if changed:
                base = start if newest is None else max(start, newest[0] + 1)
                version = store.write_new(rdir, lambda s: f"{base + s}.amf.xml", xml,
                                          self.cfg.sync)
                current = version
                self.oai_changes.append("version", entry["id"], rel)
            job = _RecordJob(entry["id"], rel, rdir, start, version, current, changed,
                             entry["src"], entry["u"], entry["s"],
                             version_sha256=hashlib.sha256(xml).hexdigest() if version else None)
            gone = os.path.join(rdir, store.GONE)
            if os.path.lexists(gone):
                os.unlink(gone)
                self.oai_changes.append("back", entry["id"], rel)
                job.events.append({"event": "back", "tist": start})
                with self.stats.lock:
                    self.stats.back += 1
        except OSError as e:
            self._fail(e, rdir)
            return False
        with self.stats.lock:
            if changed:
                self.stats.new_versions += 1
                if newest is None:
                    self.stats.virgin += 1
            else:
                self.stats.unchanged += 1
        targets = [urls_mod.Target(f, n) for f, n in entry["t"]]
        if not targets:
            self._finish_record(job)
            return True
        with job.lock:
            job.pending = len(targets)
            for t in targets:
                job.objects[t.name] = None  # type: ignore[assignment]
        for t in targets:
            self.sched.put(urls_mod.host_of(t.fetch), _ObjectJob(job, t))
        return True

    def _finish_record(self, job: _RecordJob) -> None:
        try:
            self._write_record_end(job)
        finally:
            self._inflight.release()

    def _write_record_end(self, job: _RecordJob) -> None:
        if self._fatal is not None:
            return  # objects not all renewed: no 00last claims they were
        end = self.now()
        try:
            for ev in job.events:
                notes.append(os.path.join(job.dir, notes.NOTES), dict(ev, id=job.id))
            notes.append(os.path.join(job.dir, notes.NOTES), {
                "event": "renewal", "tist": job.start, "end": end, "id": job.id,
                "source": job.source, "version": job.version,
                "version_sha256": job.version_sha256, "current": job.current,
                "urls": job.urls, "skipped": job.skipped, "objects": job.objects,
                "errors": job.errors,
            })
            store.write_last(job.dir, job.start, end, self.cfg.sync)
        except OSError as e:
            self._fail(e, job.dir)
            return
        with self.stats.lock:
            self.stats.records_done += 1
        self.log.write(f"record {job.id}: {'version ' + job.version if job.version else 'unchanged'}"
                       f", {len(job.objects)} objects" + (f", errors: {job.errors}" if job.errors else ""))

    def _object_done(self, job: _RecordJob, extra: int = 0) -> None:
        with job.lock:
            job.pending += extra - 1
            finished = job.pending == 0
        if finished:
            self._finish_record(job)

    def _fail(self, e: OSError | StoreError, where: str) -> None:
        """Our own disk failed: stop the run cleanly; nothing half-written stays."""
        if self._fatal is not None:
            return
        if isinstance(e, StoreError):
            text = str(e)
        else:
            text = f"{getattr(e, 'filename', None) or where}: {e.strerror or e}"
        self._fatal = StoreError(text + "; the run stopped, nothing already stored was touched")

    # -- workers ---------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            got = self.sched.get()
            if got is None:
                return
            host, oj = got
            followers_done = 0
            try:
                if self._fatal is None:
                    followers_done = self._do_object(oj)
            except StoreError as e:
                self._fail(e, oj.record.dir)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    # A link planted in the store: never written through; the run goes on.
                    oj.record.errors.append(f"{oj.target.name}: {e.filename}: a symbolic link "
                                            "where Kiel writes; not followed, object skipped")
                    self.problem(f"{e.filename}: a symbolic link where Kiel writes; not followed",
                                 input_error=False)
                else:
                    self._fail(e, oj.record.dir)
            except Exception as e:  # noqa: BLE001 - one object never kills the run
                oj.record.errors.append(f"{oj.target.name}: internal error {type(e).__name__}: {e}")
                self.log.write(f"internal error on {oj.target.name}: {type(e).__name__}: {e}")
                self._abandon_shared(oj.target.fetch)
            finally:
                self.sched.done(host)
                self._object_done(oj.record, followers_done)

    def _do_object(self, oj: _ObjectJob) -> int:
        """Renew one object; returns the number of further jobs it added to its record."""
        job = oj.record
        now = self.now()
        od = objects.open_dir(job.dir, oj.target.name)
        with job.lock:
            job.objects[oj.target.name] = os.path.basename(od.path)
        with self.stats.lock:
            self.stats.objects += 1
        # Termination strategy (the protocol's ages): give up on dead objects.
        gua = self.cfg.give_up_after
        if od.given_up and not job.changed:
            with self.stats.lock:
                self.stats.given_up += 1
            return 0
        if gua is not None and not od.ever_succeeded and od.first_tist is not None \
                and now - od.first_tist > gua and not job.changed:
            objects.note_event(od, "given-up", now, full_age=now - od.first_tist,
                               control_age=now - (od.newest_tist or now),
                               reason="every attempt failed for longer than give_up_after")
            with self.stats.lock:
                self.stats.given_up += 1
            return 0
        if od.given_up and job.changed:
            objects.note_event(od, "revived", now, reason="the record has a new version")
        url = oj.target.fetch
        # One fetch per run of a URL shared by several records.
        shared = None
        if url in self.shared_urls:
            with self._shared_lock:
                shared = self._shared.get(url)
                if shared is None:
                    self._shared[url] = _Shared()
                elif not shared.done:
                    shared.followers.append((oj, od))
                    return 1  # finished by the owner; holds the record open
            if shared is not None:
                return self._follow(oj, od, shared)
        res, attempt = self._fetch_with_retries(oj, od)
        link_to = None
        keep_type = None
        if res.status == "304" and od.last_200:
            link_to = objects.real_file(od, od.last_200)
            keep_type = od.last_200.get("type")
            if link_to:
                # The link shows the confirmed body: the notes carry its size and hashes.
                lb = od.last_200
                res = dataclasses.replace(res, size=lb.get("size") or 0,
                                          sha256=lb.get("sha256"), sha1=lb.get("sha1"))
            with self.stats.lock:
                self.stats.not_modified += 1
        written = objects.record(od, res, sync=self.cfg.sync, attempt=attempt,
                                 link_to=link_to, keep_type=keep_type)
        self._count(res, written)
        added = self._after_attempt(oj, res)
        if url in self.shared_urls:
            added += self._publish_shared(url, od, res, written)
        return added

    def _fetch_with_retries(self, oj: _ObjectJob, od: objects.ObjectDir) -> tuple[Result, int]:
        cfg = self.cfg
        headers = {}
        if cfg.conditional and od.last_200 and objects.real_file(od, od.last_200):
            if od.last_200.get("etag"):
                headers["If-None-Match"] = od.last_200["etag"]
            if od.last_200.get("last_modified"):
                headers["If-Modified-Since"] = od.last_200["last_modified"]
        attempt = 1
        while True:
            denied = self._denied(oj.target.fetch)
            started = self.clock()
            if denied:
                res = Result(oj.target.fetch, started, "000", "none", None, 0, None, None, None,
                             None, "denied", denied, 0.0)
            elif oj.target.fetch.startswith("ftp://"):
                from kiel import ftp

                res = ftp.fetch(oj.target.fetch, od.path, self.fetcher.limits, started)
            else:
                res = self.fetcher.fetch(oj.target.fetch, od.path, headers, started)
            transient = res.error in TRANSIENT_ERRORS or res.status in TRANSIENT_STATUS
            if not transient or attempt > cfg.retries or self._stopping():
                return res, attempt
            objects.note_retry(od, res, attempt)
            with self.stats.lock:
                self.stats.retries += 1
                self.stats.attempts += 1
                self.stats.by_class[_status_class(res.status)] += 1
                if res.error:
                    self.stats.errors[res.error] += 1
            delay = cfg.retry_delay * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            ra = _retry_after(res.retry_after)
            if ra is not None:
                delay = max(delay, min(ra, cfg.retry_after_cap))
            self._sleep(delay)
            attempt += 1

    def _sleep(self, seconds: float) -> None:
        if self.opt.stop is not None:
            self.opt.stop.wait(seconds)
        else:
            time.sleep(seconds)

    def _after_attempt(self, oj: _ObjectJob, res: Result) -> int:
        """Follow a redirect as its own object in the same record directory."""
        if not (res.location and res.status.startswith("3")):
            return 0
        job = oj.record
        target = urls_mod.classify(res.location)
        if isinstance(target, str):
            job.errors.append(f"{oj.target.name}: redirect to {urls_mod.redact(res.location)} "
                              f"not followed: {target}")
            return 0
        if oj.hop + 1 > self.cfg.max_redirects:
            job.errors.append(f"{oj.target.name}: more than {self.cfg.max_redirects} redirects; "
                              f"{target.name} not fetched")
            return 0
        with job.lock:
            if target.name in job.objects:
                job.errors.append(f"{oj.target.name}: redirect to {target.name}, already "
                                  "fetched for this record (loop ends the chain)")
                return 0
            job.objects[target.name] = None  # type: ignore[assignment]
            job.urls.setdefault("(redirect)", []).append(target.name)
        self.sched.put(urls_mod.host_of(target.fetch), _ObjectJob(job, target, oj.hop + 1))
        return 1

    def _publish_shared(self, url: str, od, res: Result, written: objects.Written) -> int:
        with self._shared_lock:
            sh = self._shared[url]
            sh.done = True
            sh.res = res
            sh.name = written.name
            sh.real = written.real if (res.size or res.status == "304") and \
                os.path.isfile(written.real) else None
            sh.same_as = os.path.relpath(od.path, self.store_root)
            followers, sh.followers = sh.followers, []
        added = 0
        for foj, fod in followers:
            try:
                added_f = self._follow(foj, fod, sh)
            except OSError as e:
                self._fail(e, foj.record.dir)
                added_f = 0
            self._object_done(foj.record, added_f)
        return added

    def _abandon_shared(self, url: str) -> None:
        """The owner of a shared URL failed: let the records waiting on it finish."""
        with self._shared_lock:
            sh = self._shared.get(url)
            if sh is None or sh.done:
                return
            sh.done = True
            followers, sh.followers = sh.followers, []
            del self._shared[url]
        for foj, _ in followers:
            foj.record.errors.append(f"{foj.target.name}: not fetched, the shared fetch failed")
            self._object_done(foj.record)

    def _follow(self, oj: _ObjectJob, od: objects.ObjectDir, sh: _Shared) -> int:
        """Give a record the attempt another record made of the same URL."""
        res = sh.res
        assert res is not None and sh.name is not None
        tist, status, type_ = store.parse_attempt(sh.name)  # type: ignore[misc]
        copy = Result(res.url, tist, status, type_, res.declared_type,
                      res.size if sh.real else 0, res.sha256 if sh.real else None,
                      res.sha1 if sh.real else None, None, res.location, res.error, res.detail,
                      res.elapsed, etag=res.etag, last_modified=res.last_modified)
        written = objects.record(od, copy, sync=self.cfg.sync, link_to=sh.real,
                                 same_as=sh.same_as, keep_type=type_)
        with self.stats.lock:
            self.stats.shared += 1
            self.stats.attempts += 1
            self.stats.by_class[_status_class(status)] += 1
            if written.link:
                self.stats.bytes_linked += res.size
        return self._after_attempt(oj, res)

    def _count(self, res: Result, written: objects.Written) -> None:
        with self.stats.lock:
            self.stats.attempts += 1
            self.stats.by_class[_status_class(res.status)] += 1
            if res.error:
                self.stats.errors[res.error] += 1
            if res.status != "304":  # a 304 carries no body; its size is the 200's
                self.stats.bytes_fetched += res.size
            if written.link:
                self.stats.bytes_linked += res.size
            else:
                self.stats.bytes_stored += res.size

    # -- where Kiel may connect ----------------------------------------------------

    def _denied(self, url: str) -> str | None:
        """Why ``url`` may not be fetched (deny_networks), or None."""
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port or (443 if parts.scheme == "https" else 21 if parts.scheme == "ftp"
                                  else 80)
        except ValueError as e:
            return f"malformed URL: {e}"
        key = f"{host}:{port}"
        with self._resolve_lock:
            if key in self._resolved:
                return self._resolved[key]
        reason = self._check_host(host, port)
        with self._resolve_lock:
            self._resolved[key] = reason
        return reason

    def _check_host(self, host: str, port: int) -> str | None:
        deny = self.cfg.deny_networks
        if not deny:
            return None
        try:
            addrs = {ipaddress.ip_address(host.strip("[]"))}
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError):
                return None  # the fetch itself reports the DNS failure
            addrs = set()
            for info in infos:
                try:
                    addrs.add(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
                except ValueError:
                    continue
        for a in addrs:
            if any(a in net for net in self.cfg.allow_networks if a.version == net.version):
                continue
            for net in deny:
                if a.version == net.version and a in net:
                    return f"{host} resolves to {a}, in denied network {net}"
        return None

    # -- phase 3: gone -----------------------------------------------------------------

    def _mark_gone(self, seen: ExternalSort) -> None:
        if self.inputs_incomplete:
            self.log.write("gone: not checked, some input could not be read")
            seen.cleanup()
            return
        if self.interrupted in ("SIGTERM", "SIGINT", "signal"):
            seen.cleanup()
            return
        self._progress("gone")
        now = self.now()
        seen_iter = iter(seen)
        current = next(seen_iter, None)
        for rdir in store.iter_record_dirs(self.store_root):
            rel = os.path.relpath(rdir, self.store_root)
            key = rel.replace(os.sep, "\x00").encode("utf-8")
            while current is not None and current.partition(b"\t")[0] < key:
                current = next(seen_iter, None)
            if current is not None and current.partition(b"\t")[0] == key:
                continue
            gone = os.path.join(rdir, store.GONE)
            if os.path.lexists(gone) or not store.versions(rdir):
                continue
            try:
                store.replace(gone, b"%d\n" % now, self.cfg.sync)
                notes.append(os.path.join(rdir, notes.NOTES), {"event": "gone", "tist": now})
                self.oai_changes.append("gone", None, rel)
            except OSError as e:
                self._fail(e, rdir)
                break
            with self.stats.lock:
                self.stats.gone += 1
            self.log.write(f"gone: {rel} was not in the input")
        for _ in seen_iter:
            pass

    def _refresh_oai_index(self) -> None:
        """Fold this run's changes into the OAI-PMH index (docs/oai.md)."""
        from kiel.oai import refresh

        stats = refresh(self.home.root)
        if stats is not None:
            self.log.write(f"OAI-PMH index: {stats.folded} changes folded, {stats.records} "
                           f"records, {stats.deleted} deleted, in {stats.seconds:.1f}s")

    # -- branches versions ---------------------------------------------------------------

    def _archive_branches(self) -> None:
        """Keep the branches of earlier runs as ``etc/branches_<tist>.xml``."""
        snap = os.path.join(self.home.var, "branches-in-use.xml")
        snap_t = os.path.join(self.home.var, "branches-in-use.tist")
        try:
            with open(self.home.branches, "rb") as f:
                self._branches_bytes = f.read()
            with open(snap, "rb") as f:
                old = f.read()
            with open(snap_t, "rb") as f:
                last_used = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return
        if old == self._branches_bytes:
            return
        existing = os.path.join(self.home.etc, f"branches_{last_used}.xml")
        if os.path.exists(existing):
            with open(existing, "rb") as f:
                if f.read() == old:
                    return
        name = store.write_new(self.home.etc, lambda s: f"branches_{last_used + s}.xml", old)
        self.log.write(f"branches changed; the earlier ones are kept as etc/{name}")

    def _remember_branches(self) -> None:
        store.replace(os.path.join(self.home.var, "branches-in-use.xml"), self._branches_bytes)
        store.replace(os.path.join(self.home.var, "branches-in-use.tist"), b"%d\n" % self.now())

    # -- reporting -------------------------------------------------------------------------

    def _progress(self, phase: str) -> None:
        if self.opt.progress:
            self.opt.progress(Progress(phase, self.stats.records_found, self.stats.records_done,
                                       self.sched.pending if phase == "renew" else 0,
                                       time.monotonic() - self.t0, self.opt.max_time))

    def _summary(self, end: int, log_path: str, suffix: str) -> Summary:
        s = self.stats
        path = os.path.join(self.home.var, "runs", f"{self.tist}{suffix}.json")
        summary = Summary(
            tist=self.tist, end=end, duration=round(time.monotonic() - self.t0, 3),
            full_run=self.full_run, records_found=s.records_found,
            records_renewed=s.records_done, new_versions=s.new_versions, virgin=s.virgin,
            unchanged=s.unchanged, skipped=dict(s.skipped), input_errors=s.input_errors,
            problems=tuple(s.problems), refs=s.refs, duplicates=s.duplicates, gone=s.gone,
            back=s.back, objects=s.objects, attempts=s.attempts,
            attempts_by_class=dict(sorted(s.by_class.items())),
            errors_by_kind=dict(sorted(s.errors.items())), retries=s.retries, shared=s.shared,
            not_modified=s.not_modified, given_up=s.given_up, bytes_fetched=s.bytes_fetched,
            bytes_stored=s.bytes_stored, bytes_linked=s.bytes_linked,
            interrupted=self.interrupted, log=log_path, summary_file=path,
        )
        try:
            store.replace(path, (json.dumps(summary.to_json(), indent=1, sort_keys=True)
                                 + "\n").encode("utf-8"))
        except OSError:
            pass  # a full disk: the summary is still returned and printed
        return summary


def _status_class(status: str) -> str:
    return "000" if status == "000" else status[0] + "xx"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None



def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def renew(home: Home, options: Options | None = None) -> Summary:
    """One renewal of every record in the inputs (see the module doc)."""
    return Run(home, options or Options()).run()
