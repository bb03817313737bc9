"""Kiel side by side with wget and curl (issue 6); called by ``bench/run``.

One run: generate (or reuse) the collection, serve it with nginx (zero
latency) and measure, alternating, ``kiel renew`` cold and warm, ``wget -x``
cold and ``wget -N -x`` warm, and ``curl --parallel``; then serve it with
``delay_server.py`` (50 ms before every answer) on the same port and measure
again; then records only (a branch that matches nothing) at 1 000, 10 000
and 100 000 records; then one 2 GiB body. Prints the tables and writes
``bench/out/results-<size>-<date>.md`` and ``.json``.

Every child is timed from spawn to exit; its peak RSS is what GNU time
reports (``%M``, the ``ru_maxrss`` of the child and the children it reaped).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import generate  # noqa: E402

SIZES = {"small": 1_000, "medium": 10_000, "large": 100_000}
RECORD_POINTS = (1_000, 10_000, 100_000)
BIG = 2 * 1024**3
TIME = "/usr/bin/time"  # GNU time, for the peak RSS of each child
PARALLEL = 16  # curl --parallel-max, and Kiel's default concurrency


@dataclass
class Sample:
    case: str  # "zero" or "delay" or "records" or "big" or "check"
    tool: str  # "kiel", "wget", "curl"
    phase: str  # "cold" or "warm"
    rep: int
    wall: float
    rss_kb: int
    rc: int
    apparent: int = 0  # du --apparent-size of the output, bytes
    allocated: int = 0  # du, bytes
    files: int = 0  # regular files and symlinks in the output
    server_cpu: float = 0.0  # CPU seconds the server used during the run
    n: int = 0  # records (records-only runs)
    cpu: float = 0.0  # user + system CPU seconds of the child
    load: float = 0.0  # 1-minute load average just before the run
    ok200: int = 0  # Kiel: attempt files named <tist>_200_<type> in the store
    csw: int = 0  # context switches of the child, voluntary and involuntary (GNU time %w + %c)


@dataclass
class Ctx:
    out: str
    coll: str
    manifest: generate.Manifest
    kiel: str | None
    port: int
    log: str
    samples: list[Sample] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    history_days: tuple[int, ...] = ()  # "kiel warm, N days of notes" rows (0 ms only)


# ---------------------------------------------------------------- helpers

def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    rss_kb: int  # peak resident set, KiB
    rc: int
    server_cpu: float  # CPU seconds of the server processes meanwhile
    cpu: float  # user + system CPU seconds of the child
    load: float  # 1-minute load average before the start
    csw: int = 0  # context switches, voluntary + involuntary


def measure(cmd: list[str], cwd: str | None, log: str, ctx: Ctx | None = None) -> Measured:
    """Run ``cmd`` under GNU time and measure it.

    The peak RSS comes from GNU time, not from our own ``wait4``: a child
    forked from this Python process starts with our resident set, and the
    kernel keeps that high-water mark across ``exec``, so every child would
    seem to need at least what the harness holds.
    """
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    cpu0 = server_cpu(ctx) if ctx else 0.0
    rss_file = os.path.join(os.path.dirname(log), ".maxrss")
    with open(log, "ab") as lf:
        lf.write(("\n$ " + " ".join(cmd) + "\n").encode())
        lf.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen([TIME, "-f", "%M %U %S %w %c", "-o", rss_file] + cmd, cwd=cwd,
                             stdout=lf, stderr=subprocess.STDOUT)
        p.wait()
        wall = time.perf_counter() - t0
    cpu = (server_cpu(ctx) - cpu0) if ctx else 0.0
    with open(rss_file) as f:
        # GNU time prefixes "Command exited with non-zero status N" when N != 0.
        rss, user, system, vol, invol = f.read().split()[-5:]
    return Measured(wall, int(rss), p.returncode, cpu, float(user) + float(system), load,
                    int(vol) + int(invol))


def du(path: str) -> tuple[int, int, int]:
    """Apparent bytes, allocated bytes, files (regular and symlinks)."""
    if not os.path.exists(path):
        return 0, 0, 0
    app = int(subprocess.run(["du", "-s", "-B1", "--apparent-size", path], capture_output=True,
                             text=True, check=True).stdout.split()[0])
    alloc = int(subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True,
                               check=True).stdout.split()[0])
    files = 0
    for _, _, names in os.walk(path):
        files += len(names)
    return app, alloc, files


ATTEMPT_200 = re.compile(r"^\d+_200_")


def kiel_200s(home: str) -> int:
    """Attempt files (regular or links) of 200 answers: did Kiel do the work?"""
    n = 0
    for _, _, names in os.walk(os.path.join(home, "store")):
        n += sum(1 for x in names if ATTEMPT_200.match(x))
    return n


def server_cpu(ctx: Ctx) -> float:
    """utime + stime (and reaped children's) of the server processes, seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = set(ctx.server_pids)
    # nginx workers and delay-server workers are children of the started pid.
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                if int(st[1]) in ctx.server_pids:
                    pids.add(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in st[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s (see {port} logs)")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


SETTLE = 3.0  # seconds of quiet before each measured run (--settle)


def settle() -> None:
    """Before a measured run: earlier writes and deletions reach the disk
    now, not inside the next tool's window. On ext4 without a journal, files
    created soon after many were deleted cost several times more
    (``recently_deleted``), and a tool with more inodes pays most."""
    os.sync()
    time.sleep(SETTLE)


# ---------------------------------------------------------------- servers

NGINX_CONF = """\
# Generated by bench/harness.py: the zero-latency server of the benchmarks.
worker_processes 2;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    log_not_found off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    open_file_cache max=20000 inactive=60s;
    types {{ text/html html; application/pdf pdf; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp;
    map_hash_max_size 262144;
    map_hash_bucket_size 256;
    # The 3 % of URLs that redirect once: a real 301 from nginx.
    map $uri $bench_redirect {{
        default "";
        include {redirects};
    }}
    server {{
        listen 0.0.0.0:{port} reuseport backlog=4096;
        root {root};
        location / {{
            if ($bench_redirect) {{ return 301 $bench_redirect; }}
        }}
    }}
}}
"""


class Servers:
    """Start and stop the one server of a case; always stopped on exit."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.proc: subprocess.Popen | None = None

    def nginx(self) -> None:
        prefix = os.path.join(self.ctx.out, "nginx")
        os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "", prefix=prefix,
                redirects=os.path.join(self.ctx.coll, "redirects.map"), port=self.ctx.port,
                root=os.path.join(self.ctx.coll, "www")))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self._start([nginx, "-p", prefix, "-e", os.path.join(prefix, "error.log"),
                     "-c", conf, "-g", "daemon off;"])

    def delay(self, delay: float) -> None:
        self._start([sys.executable, os.path.join(HERE, "delay_server.py"),
                     "--root", os.path.join(self.ctx.coll, "www"), "--port", str(self.ctx.port),
                     "--delay", str(delay), "--workers", "2",
                     "--redirects", os.path.join(self.ctx.coll, "redirects.json")])

    def _start(self, cmd: list[str]) -> None:
        self.stop()
        if not port_free(self.ctx.port):
            raise SystemExit(f"port {self.ctx.port} is taken; choose another with --port")
        log = open(os.path.join(self.ctx.out, "server.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.ctx.server_pids = [self.proc.pid]
        wait_port(self.ctx.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGTERM: a fast stop for nginx (master and workers) and the delay server.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.ctx.server_pids = []
        deadline = time.time() + 10
        while not port_free(self.ctx.port) and time.time() < deadline:
            time.sleep(0.1)


def check_answers(ctx: Ctx) -> None:
    """The server answers 200, 404 and 301 where the plan says so."""
    p = generate.plan(ctx.manifest.records, ctx.manifest.seed, ctx.manifest.port)
    want = {}
    for o in p.objects:
        want.setdefault(o.status, o.url)
    for status, url in sorted(want.items()):
        got = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                             capture_output=True, text=True).stdout
        if got != str(status):
            raise SystemExit(f"{url}: the server answered {got}, the plan says {status}")


# ---------------------------------------------------------------- notes history

DAY = 86_400


def history_label(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years != 1 else ''}"
    return f"{days} days"


HISTORY_PHASES: dict[str, int] = {}  # the rows' names -> days of history


def history_phase(days: int) -> str:
    name = f"warm, {history_label(days)} of notes"
    HISTORY_PHASES[name] = days
    return name


def _template(base: dict, fields: dict[str, str]) -> str:
    """The JSON line of ``base`` (as Kiel writes it: compact, not ASCII-escaped)
    with the values of ``fields`` left as %-placeholders: one line costs one
    ``%`` formatting, not one ``json.dumps``, so millions of lines take seconds."""
    d = dict(base)
    for k in fields:
        d[k] = f"@@{k}@@"
    s = json.dumps(d, ensure_ascii=False, separators=(",", ":")).replace("%", "%%")
    for k, fmt in fields.items():
        s = s.replace(f'"@@{k}@@"', fmt)
    return s + "\n"


def _http_date(t: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


ATTEMPT_FIELDS = {"tist": "%(tist)d", "status": '"%(status)s"', "declared_type": "%(declared)s",
                  "sha256": '"%(sha256)s"', "sha1": '"%(sha1)s"', "file": '"%(file)s"',
                  "link": "%(link)s", "etag": '"%(etag)s"', "last_modified": '"%(lm)s"',
                  "since": "%(since)d", "ever_ok": "true"}


def _attempt_base(first: dict) -> dict:
    """The object's first line, with ``etag`` and ``last_modified`` where
    Kiel puts them (before ``since``) when that line had none (a 404)."""
    if "etag" in first:
        return first
    d = {}
    for k, v in first.items():
        if k == "since":
            d["etag"] = d["last_modified"] = None
        d[k] = v
    return d


def object_history(first: dict, nights: int) -> tuple[bytes, int]:
    """``nights`` attempt lines, one per night, ending the night before the
    object's first line: alternately a 200 (a new body) and a 304 (a link to
    it), or, for an object that redirects, its 3xx every night. The lines
    carry the fields of the object's own first line; the bodies they name
    are not written (a renewal does not list an object directory).
    Returns the lines and the new first tist (the object's ``since``)."""
    t_first = int(first["tist"])
    since = t_first - nights * DAY
    status0 = str(first.get("status", "200"))
    redirect = status0.startswith("3")
    kind = str(first.get("type") or "none")
    size = int(first.get("size") or 0)
    declared = json.dumps(first.get("declared_type") or "application/octet-stream")
    tmpl = _template(_attempt_base(first), ATTEMPT_FIELDS)
    url = str(first.get("url", ""))
    out = []
    body_file = None
    sha256 = sha1 = etag = ""
    for k in range(nights):
        t = since + k * DAY
        if redirect:
            status = status0
            if body_file is None:
                body_file = f"{t}_{status}_{kind}"
                sha256, sha1 = first.get("sha256") or "0" * 64, first.get("sha1") or "0" * 40
                etag = f'\\"{t:x}-{size:x}\\"'
                link = "null"
            else:
                link = f'"{body_file}"'
        elif k % 2 == 0:
            status = "200"
            body_file = f"{t}_200_{kind}"
            seed = f"{url} {t}".encode()
            sha256, sha1 = hashlib.sha256(seed).hexdigest(), hashlib.sha1(seed).hexdigest()
            etag = f'\\"{t:x}-{size:x}\\"'
            link = "null"
        else:
            status = "304"
            link = f'"{body_file}"'
        out.append(tmpl % {"tist": t, "status": status,
                           "declared": declared if link == "null" else "null",
                           "sha256": sha256, "sha1": sha1, "file": f"{t}_{status}_{kind}",
                           "link": link, "etag": etag, "lm": _http_date(t - t % DAY),
                           "since": since})
    return "".join(out).encode("utf-8"), since


RENEWAL_FIELDS = {"tist": "%(tist)d", "end": "%(end)d", "version": "%(version)s",
                  "version_sha256": "%(vsha)s", "current": '"%(current)s"'}


def record_history(last: dict, nights: int, t_first: int) -> bytes:
    """``nights`` renewal lines, one per night, ending the night before the
    record's first line: the first wrote a version, the others found the
    record unchanged (``version`` null), as Kiel notes them."""
    tmpl = _template(last, RENEWAL_FIELDS)
    start = t_first - nights * DAY
    current = f"{start}.amf.xml"
    vsha = json.dumps(hashlib.sha256(current.encode()).hexdigest())
    out = []
    for k in range(nights):
        t = start + k * DAY
        out.append(tmpl % {"tist": t, "end": t + 1,
                           "version": json.dumps(current) if k == 0 else "null",
                           "vsha": vsha if k == 0 else "null", "current": current})
    return "".join(out).encode("utf-8")


@dataclass(frozen=True)
class History:
    objects: int
    records: int
    bytes: int
    seconds: float


def add_history(home: str, nights: int) -> History:
    """Prepend ``nights`` nights of notes to every ``00notes`` of the store:
    attempts in object directories, renewals in record directories. Each
    object's existing lines then name the new first attempt as ``since``
    (and ``ever_ok``, as the history answered), so the store stays what ten
    years of nightly renewals would have left in the notes. Files are
    written directly; this is setup, not measured."""
    t0 = time.perf_counter()
    n_obj = n_rec = total = 0
    for d, _, names in os.walk(os.path.join(home, "store")):
        if "00notes" not in names:
            continue
        path = os.path.join(d, "00notes")
        with open(path, "rb") as f:
            old = f.read()
        lines = [json.loads(x) for x in old.splitlines() if x.strip()]
        if not lines:
            continue
        first = lines[0]
        if first.get("event") == "renewal" or "status" not in first:
            last = next((e for e in reversed(lines) if e.get("event") == "renewal"), None)
            if last is None:
                continue
            new = record_history(last, nights, int(first["tist"]))
            n_rec += 1
        else:
            new, since = object_history(first, nights)
            if "since" in first:
                old = old.replace(b'"since":%d' % int(first["since"]), b'"since":%d' % since)
            old = old.replace(b'"ever_ok":false', b'"ever_ok":true')
            n_obj += 1
        with open(path, "wb") as f:
            f.write(new)
            f.write(old)
        total += len(new)
    # The history's dirty pages go to disk now, not during the measured run.
    os.sync()
    return History(n_obj, n_rec, total, time.perf_counter() - t0)


# ---------------------------------------------------------------- tools

def kiel_home(ctx: Ctx, home: str, extra: str = "", branches: str | None = None) -> None:
    rmtree(home)
    r = subprocess.run([ctx.kiel, "init", "--home", home], capture_output=True, text=True)
    if r.returncode != 0:
        # `kiel init` is the documented way; the library call is the same thing.
        subprocess.run([sys.executable, "-c",
                        "import sys; from kiel.home import Home, init; init(Home(sys.argv[1]))",
                        home], check=True)
    with open(os.path.join(home, "etc", "kiel.conf"), "a", encoding="utf-8") as f:
        # Loopback is denied by default; the benchmark servers live there.
        f.write("\n# bench/harness.py\nallow_networks = 127.0.0.0/8\n" + extra)
    if branches is not None:
        with open(os.path.join(home, "etc", "branches.xml"), "w", encoding="utf-8") as f:
            f.write(branches)


def curl_config(ctx: Ctx, path: str, devnull: bool = False) -> None:
    with open(os.path.join(ctx.coll, "urls.txt"), encoding="utf-8") as f, \
            open(path, "w", encoding="utf-8") as out:
        for line in f:
            url = line.strip()
            # The same layout as wget -x: host:port/path.
            target = "/dev/null" if devnull else url.split("://", 1)[1]
            out.write(f'url = "{url}"\noutput = "{target}"\n')


def run_unit(ctx: Ctx, case: str, tool: str, rep: int, warm: bool = True) -> str:
    """One tool on the whole list: cold (and warm), measured. Returns its
    work directory, which the caller removes after the repetition, outside
    every measured window (:func:`run_rep`)."""
    work = os.path.join(ctx.out, "work", f"{case}-{tool}")
    rmtree(work)
    os.makedirs(work)
    urls = os.path.join(ctx.coll, "urls.txt")
    amf = os.path.join(ctx.coll, "amf")
    history: dict[str, int] = {}  # phase -> nights of notes to add before it
    if tool == "kiel":
        home = os.path.join(work, "home")
        kiel_home(ctx, home)
        renew = [ctx.kiel, "renew", "--home", home, amf]
        cmds = [("cold", renew, home), ("warm", renew, home)]
        if case == "zero":
            # After cold and warm: the same renewal again with years of notes
            # before the newest lines, each history on top of the shorter one.
            done = 0
            for days in ctx.history_days:
                cmds.append((history_phase(days), renew, home))
                history[history_phase(days)] = days - done
                done = days
    elif tool == "wget":
        dest = os.path.join(work, "files")
        os.makedirs(dest)
        log = os.path.join(work, "wget.log")
        cmds = [("cold", ["wget", "-nv", "-o", log, "-x", "-i", urls], dest),
                ("warm", ["wget", "-nv", "-o", log, "-N", "-x", "-i", urls], dest)]
    else:
        dest = os.path.join(work, "files")
        os.makedirs(dest)
        cfg = os.path.join(work, "curl.conf")
        curl_config(ctx, cfg)
        cmds = [("cold", ["curl", "--parallel", "--parallel-max", str(PARALLEL), "--create-dirs",
                          "-L", "-s", "-K", cfg], dest)]
    for phase, cmd, dest in cmds:
        if phase == "warm" and not warm:
            continue
        if phase in history:
            h = add_history(dest, history[phase])
            say(f"  {case:5} {tool:4} notes history: {history[phase]} nights more on {h.objects} "
                f"objects and {h.records} records, {h.bytes / 1e6:.0f} MB in {h.seconds:.1f} s")
        settle()
        r = measure(cmd, dest if tool != "kiel" else None, ctx.log, ctx)
        app, alloc, files = du(dest)
        ok200 = kiel_200s(dest) if tool == "kiel" else 0
        ctx.samples.append(Sample(case, tool, phase, rep, r.wall, r.rss_kb, r.rc, app, alloc, files,
                                  r.server_cpu, cpu=r.cpu, load=r.load, ok200=ok200, csw=r.csw))
        say(f"  {case:5} {tool:4} {phase:4} rep {rep}: {r.wall:8.2f} s  {r.cpu:6.2f} cpu-s  "
            f"{r.rss_kb / 1024:7.1f} MB  rc {r.rc}  {app / 1e6:9.1f} MB apparent  {files} files  "
            f"server {r.server_cpu:.1f} cpu-s  load {r.load:.1f}"
            + (f"  {ok200} attempts of 200" if tool == "kiel" else ""))
    return work


def order_of(tools: list[str], rep: int) -> list[str]:
    """The tools' order in repetition ``rep``: rotated, and reversed every
    other repetition, so each tool runs before and after each other one."""
    base = tools[::-1] if rep % 2 else tools
    k = rep // 2 % len(tools)
    return base[k:] + base[:k]


def run_rep(ctx: Ctx, case: str, tools: list[str], rep: int, skip=lambda tool: False,
            warm=lambda tool: True) -> None:
    """One repetition: every tool in turn, each into its own fresh directory;
    the outputs are removed together afterwards and the disk left to settle."""
    works = [run_unit(ctx, case, tool, rep, warm=warm(tool))
             for tool in order_of(tools, rep) if not skip(tool)]
    for w in works:
        rmtree(w)
    settle()


def server_check(ctx: Ctx, case: str, parallel: int = 64) -> None:
    """curl at 4x the benchmark's parallelism, bodies to /dev/null."""
    cfg = os.path.join(ctx.out, "check-curl.conf")
    curl_config(ctx, cfg, devnull=True)
    r = measure(["curl", "--parallel", "--parallel-max", str(parallel), "-L",
                 "-s", "-K", cfg], None, ctx.log, ctx)
    ctx.samples.append(Sample("check", f"curl{parallel}", case, 0, r.wall, r.rss_kb, r.rc,
                              server_cpu=r.server_cpu, cpu=r.cpu, load=r.load))
    say(f"  server check {case}: curl --parallel-max {parallel} to /dev/null: {r.wall:.2f} s, "
        f"server {r.server_cpu:.1f} cpu-s")


def records_only(ctx: Ctx, reps: int, points: tuple[int, ...]) -> None:
    branches = ('<?xml version="1.0" encoding="UTF-8"?>\n<branches>\n'
                '  <branch xpath="nothing"/>\n</branches>\n')
    for n in points:
        coll = os.path.join(ctx.out, f"records-{n}-s{ctx.manifest.seed}")
        if generate.load_manifest(coll) is None:
            say(f"  generating {n} records (no bodies)")
            generate.write(generate.plan(n, ctx.manifest.seed, ctx.port), coll, bodies=False)
        for rep in range(1 if n >= 100_000 else reps):
            home = os.path.join(ctx.out, "work", f"records-{n}")
            kiel_home(ctx, home, branches=branches)
            for phase in ("cold", "warm"):
                settle()
                r = measure([ctx.kiel, "renew", "--home", home, os.path.join(coll, "amf")],
                            None, ctx.log)
                app, alloc, files = du(home)
                ctx.samples.append(Sample("records", "kiel", phase, rep, r.wall, r.rss_kb, r.rc,
                                          app, alloc, files, n=n, cpu=r.cpu, load=r.load))
                say(f"  records {n:6} {phase:4} rep {rep}: {r.wall:7.2f} s  "
                    f"{n / r.wall:8.0f} rec/s  "
                    f"{r.cpu:6.2f} cpu-s  {r.rss_kb / 1024:6.1f} MB  rc {r.rc}  load {r.load:.1f}")
            rmtree(home)


def big_object(ctx: Ctx) -> None:
    """One 2 GiB body from nginx: a sparse file, so it takes no disk there."""
    big = os.path.join(ctx.coll, "www", "big", "2g.bin")
    os.makedirs(os.path.dirname(big), exist_ok=True)
    with open(big, "wb") as f:
        f.truncate(BIG)
    work = os.path.join(ctx.out, "work", "big")
    rmtree(work)
    amf = os.path.join(work, "amf")
    os.makedirs(amf)
    with open(os.path.join(amf, "big.amf.xml"), "w", encoding="utf-8") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="{generate.AMF_NS}">\n'
                f'  <text id="RePEc:big:wpaper:1"><title>Big</title><file>'
                f'<url>http://127.0.0.1:{ctx.port}/big/2g.bin</url>'
                f'<format>application/pdf</format></file></text>\n</amf>\n')
    try:
        home = os.path.join(work, "home")
        kiel_home(ctx, home, extra="max_body = 3GiB\ntotal_timeout = 3600\n")
        settle()
        r = measure([ctx.kiel, "renew", "--home", home, amf], None, ctx.log, ctx)
        app, alloc, files = du(home)
        ctx.samples.append(Sample("big", "kiel", "cold", 0, r.wall, r.rss_kb, r.rc, app, alloc,
                                  files, r.server_cpu, cpu=r.cpu, load=r.load))
        say(f"  2 GiB body: kiel {r.wall:.2f} s  {r.rss_kb / 1024:.1f} MB  rc {r.rc}  "
            f"{app / 2**30:.2f} GiB stored")
        dest = os.path.join(work, "curl")
        os.makedirs(dest)
        r = measure(["curl", "-s", "-o", "2g.bin", f"http://127.0.0.1:{ctx.port}/big/2g.bin"],
                    dest, ctx.log, ctx)
        app, alloc, files = du(dest)
        ctx.samples.append(Sample("big", "curl", "cold", 0, r.wall, r.rss_kb, r.rc, app, alloc,
                                  files, r.server_cpu, cpu=r.cpu, load=r.load))
        say(f"  2 GiB body: curl {r.wall:.2f} s  {r.rss_kb / 1024:.1f} MB  rc {r.rc}")
    finally:
        rmtree(work)
        os.unlink(big)


# ---------------------------------------------------------------- report

def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(ctx: Ctx) -> dict:
    m = ctx.manifest
    rows = []
    groups: dict[tuple[str, str, str, int], list[Sample]] = {}
    for s in ctx.samples:
        groups.setdefault((s.case, s.tool, s.phase, s.n), []).append(s)
    for (case, tool, phase, _), ss in groups.items():
        walls = [s.wall for s in ss]
        row = {"case": case, "tool": tool, "phase": phase, "reps": len(ss),
               "wall": _med(walls), "wall_min": min(walls), "wall_max": max(walls),
               "rss_mb": _med([s.rss_kb / 1024 for s in ss]),
               "rss_mb_max": max(s.rss_kb / 1024 for s in ss),
               "apparent": _med([s.apparent for s in ss]),
               "allocated": _med([s.allocated for s in ss]),
               "files": _med([s.files for s in ss]),
               "server_cpu": _med([s.server_cpu for s in ss]),
               "cpu": _med([s.cpu for s in ss]),
               "load": _med([s.load for s in ss]),
               "csw": _med([s.csw for s in ss]),
               "rc": sorted({s.rc for s in ss}),
               "ok200": min(s.ok200 for s in ss)}
        if case in ("zero", "delay"):
            row["objects_per_s"] = m.requests / row["wall"]
        if case == "records":
            row["n"] = ss[0].n
        rows.append(row)
    return {"rows": rows, "samples": [asdict(s) for s in ctx.samples]}


def paired(samples: list[dict], case: str, a: tuple[str, str],
           b: tuple[str, str]) -> tuple[float, float, float, int] | None:
    """The ratio a / b of wall times within each repetition (the two ran
    next to each other, under the same load): median, min, max, pairs."""
    def walls(tool_phase: tuple[str, str]) -> dict[int, float]:
        return {s["rep"]: s["wall"] for s in samples
                if s["case"] == case and (s["tool"], s["phase"]) == tool_phase}
    wa, wb = walls(a), walls(b)
    rs = [wa[r] / wb[r] for r in sorted(set(wa) & set(wb)) if wb[r] > 0]
    if not rs:
        return None
    return statistics.median(rs), min(rs), max(rs), len(rs)


def _find(rows, case, tool, phase, n=None):
    for r in rows:
        if r["case"] == case and r["tool"] == tool and r["phase"] == phase and \
                (n is None or r.get("n") == n):
            return r
    return None


def ratios_and_targets(summary: dict, m: generate.Manifest) -> tuple[list, list]:
    rows = summary["rows"]
    ratios, targets = [], []

    def ratio(label, a, b):
        if a and b:
            v = a["wall"] / b["wall"]
            ratios.append((label, v))
            return v
        ratios.append((label, None))
        return None

    for case in ("zero", "delay"):
        for label, a, b in (("Kiel cold / wget cold", ("kiel", "cold"), ("wget", "cold")),
                            ("Kiel cold / curl", ("kiel", "cold"), ("curl", "cold")),
                            ("Kiel warm / Kiel cold", ("kiel", "warm"), ("kiel", "cold"))):
            p = paired(summary["samples"], case, a, b)
            if p:
                ratios.append((f"{case}: {label}, paired by repetition: median (min-max, n)",
                               p))
        kc, kw = _find(rows, case, "kiel", "cold"), _find(rows, case, "kiel", "warm")
        wc, ww = _find(rows, case, "wget", "cold"), _find(rows, case, "wget", "warm")
        cc = _find(rows, case, "curl", "cold")
        r_kw = ratio(f"{case}: Kiel cold / wget cold", kc, wc)
        ratio(f"{case}: Kiel warm / wget warm", kw, ww)
        r_kc = ratio(f"{case}: Kiel cold / curl", kc, cc)
        r_self = ratio(f"{case}: Kiel warm / Kiel cold", kw, kc)
        if case == "zero":
            targets.append(("Zero latency, cold: Kiel <= 1.3 x wget", r_kw, 1.3, "le"))
        else:
            targets.append(("50 ms, cold: Kiel <= 1.1 x curl (parallelism 16)", r_kc, 1.1, "le"))
            targets.append(("50 ms, cold: Kiel >= 8 x faster than wget (ratio <= 0.125)",
                            r_kw, 0.125, "le"))
        targets.append((f"{case}: warm <= 0.45 x Kiel cold", r_self, 0.45, "le"))
        if kc and kc.get("csw"):
            targets.append((f"{case}: Kiel cold, context switches per object < 2",
                            kc["csw"] / m.requests, 2, "lt"))
        hist = sorted((r for r in rows if r["case"] == case and r["tool"] == "kiel"
                       and r["phase"] in HISTORY_PHASES), key=lambda r: HISTORY_PHASES[r["phase"]])
        for kh in hist:
            ratio(f"{case}: Kiel {kh['phase']} / Kiel warm", kh, kw)
            # CPU seconds: the figure a shared machine disturbs least. The objects
            # are the same in both runs, so this is also the per-object ratio.
            ratios.append((f"{case}: Kiel {kh['phase']} / Kiel warm (CPU s)",
                           kh["cpu"] / kw["cpu"] if kw and kw["cpu"] else None))
        if hist:
            longest = hist[-1]
            for base in ([kw] if kw else []) + hist[:-1]:
                label = f"{case}: CPU per object, {longest['phase']} <= 1.1 x {base['phase']}"
                targets.append((label, longest["cpu"] / base["cpu"], 1.1, "le"))
        if kc and kw:
            grow = (kw["apparent"] - kc["apparent"]) / m.body_bytes
            targets.append((f"{case}: warm store growth (apparent) < 1 % of body bytes", grow,
                            0.01, "lt"))
            grow_alloc = (kw["allocated"] - kc["allocated"]) / m.body_bytes
            targets.append((f"{case}: warm store growth (allocated) < 1 % of body bytes",
                            grow_alloc, 0.01, "lt"))
    big_n = max((r["n"] for r in rows if r["case"] == "records"), default=None)
    for phase, want in (("cold", 2000), ("warm", 5000)):
        rr = [r for r in rows if r["case"] == "records" and r["phase"] == phase]
        if rr:
            best = max(rr, key=lambda r: r["n"])
            targets.append((f"Records only, {'cold' if phase == 'cold' else 'unchanged'}: "
                            f">= {want} rec/s (at {best['n']} records)",
                            best["n"] / best["wall"], want, "ge"))
    kiel_rss = [r["rss_mb_max"] for r in rows
                if r["tool"] == "kiel" and r["case"] in ("zero", "delay", "records")]
    if kiel_rss:
        targets.append(("Peak RSS of every Kiel run < 200 MB", max(kiel_rss), 200, "lt"))
    small = _find(rows, "records", "kiel", "cold", 1000)
    if small and big_n and big_n >= 100_000:
        large = _find(rows, "records", "kiel", "cold", big_n)
        targets.append((f"Peak RSS at {big_n} records <= 1.2 x at 1000",
                        large["rss_mb"] / small["rss_mb"], 1.2, "le"))
    big = _find(rows, "big", "kiel", "cold")
    if big:
        targets.append(("Peak RSS while a 2 GiB body streams < 100 MB", big["rss_mb"], 100, "lt"))
    return ratios, targets


def _fmt_t(v):
    if v is None:
        return "n/a"
    if isinstance(v, tuple):
        med, lo, hi, n = v
        return f"{_fmt_t(med)} ({_fmt_t(lo)}-{_fmt_t(hi)}, {n})"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def render(ctx: Ctx, summary: dict, info: dict, args) -> str:
    m = ctx.manifest
    rows = summary["rows"]
    out = []
    out.append(f"## Results: --size {args.size}, {args.reps} repetitions, {info['date']}\n")
    out.append(f"Collection: {m.records} records in {m.amf_files} AMF files, {m.distinct_urls} "
               f"distinct URLs ({m.shared_urls} shared, {m.not_found} answering 404, "
               f"{m.redirects} redirecting once), {m.requests} requests for a full fetch, "
               f"{m.bodies_200} bodies of 200, {m.body_bytes / 1e6:.1f} MB of body bytes; "
               f"32 hosts 127.0.0.1-32, port {m.port}, seed {m.seed}.\n")
    out.append("| case | tool | run | reps | wall s (median) | min-max | objects/s | peak RSS MB | "
               "CPU s | CPU ms/object | ctx switches/object | on disk MB (apparent) | "
               "on disk MB (du) | files | server CPU s | load | exit |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {"zero": 0, "delay": 1}
    tools = {"kiel": 0, "wget": 1, "curl": 2}
    for r in sorted((r for r in rows if r["case"] in order),
                    key=lambda r: (order[r["case"]], tools.get(r["tool"], 9),
                                   HISTORY_PHASES.get(r["phase"], 0), r["phase"])):
        out.append(f"| {'0 ms (nginx)' if r['case'] == 'zero' else '50 ms'} | {r['tool']} | "
                   f"{r['phase']} | {r['reps']} | {r['wall']:.2f} | "
                   f"{r['wall_min']:.2f}-{r['wall_max']:.2f} | "
                   f"{r['objects_per_s']:.0f} | {r['rss_mb']:.1f} | {r['cpu']:.2f} | "
                   f"{r['cpu'] * 1000 / m.requests:.2f} | {r.get('csw', 0) / m.requests:.2f} | "
                   f"{r['apparent'] / 1e6:.1f} | "
                   f"{r['allocated'] / 1e6:.1f} | {r['files']:.0f} | {r['server_cpu']:.1f} | "
                   f"{r['load']:.1f} | {','.join(map(str, r['rc']))} |")
    done = [f"{r['ok200']} ({'0 ms' if r['case'] == 'zero' else '50 ms'})" for r in rows
            if r["tool"] == "kiel" and r["case"] in order and r["phase"] == "cold"]
    if done:
        # Every record's object directory holds its own attempt (a shared URL's is a
        # link), so this is at least the distinct bodies when Kiel did all the work.
        out.append(f"\nAttempts answered 200 in Kiel's store after each cold run, fewest over "
                   f"the repetitions: {', '.join(done)}; distinct bodies of 200: {m.bodies_200}.")
    ratios, targets = ratios_and_targets(summary, m)
    out.append("\n| ratio (median wall times, unless CPU s) | value |\n|---|---|")
    for label, v in ratios:
        out.append(f"| {label} | {_fmt_t(v)} |")
    rec = [r for r in rows if r["case"] == "records"]
    if rec:
        out.append("\n| records only | run | reps | wall s (median) | min-max | records/s | "
                   "CPU s | peak RSS MB | home MB (du) | load | exit |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(rec, key=lambda r: (r["n"], r["phase"])):
            run = "cold" if r["phase"] == "cold" else "unchanged"
            out.append(f"| {r['n']} | {run} | {r['reps']} | "
                       f"{r['wall']:.2f} | {r['wall_min']:.2f}-{r['wall_max']:.2f} | "
                       f"{r['n'] / r['wall']:.0f} | {r['cpu']:.2f} | {r['rss_mb']:.1f} | "
                       f"{r['allocated'] / 1e6:.1f} | "
                       f"{r['load']:.1f} | {','.join(map(str, r['rc']))} |")
    big = [r for r in rows if r["case"] == "big"]
    if big:
        out.append("\n| 2 GiB body | wall s | MB/s | CPU s | peak RSS MB | stored GiB | exit |\n"
                   "|---|---|---|---|---|---|---|")
        for r in big:
            out.append(f"| {r['tool']} | {r['wall']:.2f} | {BIG / 1e6 / r['wall']:.0f} | "
                       f"{r['cpu']:.2f} | {r['rss_mb']:.1f} | {r['apparent'] / 2**30:.2f} | "
                       f"{','.join(map(str, r['rc']))} |")
    chk = [r for r in rows if r["case"] == "check"]
    if chk:
        out.append("\n| server check | curl parallel | wall s | "
                   "floor s (requests x delay / parallel) | server CPU s |\n|---|---|---|---|---|")
        for r in chk:
            par = int(r["tool"][4:])
            delay = args.delay if r["phase"] == "delay" else 0.0
            out.append(f"| {'50 ms' if r['phase'] == 'delay' else '0 ms (nginx)'} | {par} | "
                       f"{r['wall']:.2f} | {m.requests * delay / par:.2f} | "
                       f"{r['server_cpu']:.1f} |")
    out.append("\n| target | measured | limit | met |\n|---|---|---|---|")
    for label, v, limit, how in targets:
        ok = None if v is None else (v <= limit if how == "le" else v < limit if how == "lt"
                                     else v >= limit)
        met = "n/a" if ok is None else "met" if ok else "NOT met"
        out.append(f"| {label} | {_fmt_t(v)} | {limit} | {met} |")
    out.append("\nMachine: " + "; ".join(f"{k} {v}" for k, v in info.items() if k != "date"))
    return "\n".join(out) + "\n"


def machine() -> dict:
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "n/a"
    cpu = "n/a"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "memory": f"{int(mem) // 1024} MiB",
        "kernel": platform.release(), "python": platform.python_version(),
        "nginx": first(["nginx", "-v"]).split()[-1],
        "wget": " ".join(first(["wget", "--version"]).split()[:3]),
        "curl": " ".join(first(["curl", "--version"]).split()[:2]),
        "kiel": first([sys.executable, "-c", "import kiel; print(kiel.__version__)"]),
        "commit": first(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
        # The numbers belong to the code that ran, which may be ahead of HEAD.
        "kiel/ changes not committed": str(len(subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "kiel"], capture_output=True,
            text=True).stdout.splitlines())) + " files",
    }


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    ap.add_argument("--slow-reps", type=int, default=1,
                    help="repetitions of wget under 50 ms (it is serial: ~requests x 50 ms each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--skip", action="append", default=[],
                    choices=["zero", "delay", "records", "big", "kiel", "wget", "curl"],
                    help="leave a part out (repeatable)")
    ap.add_argument("--records-points", default=",".join(map(str, RECORD_POINTS)))
    ap.add_argument("--history-days", default="365,3650",
                    help="after Kiel's warm run at 0 ms, prepend this many nights of notes to "
                         "every 00notes and renew again (comma-separated, ascending: one row "
                         "each; empty for none)")
    ap.add_argument("--settle", type=float, default=SETTLE,
                    help="seconds of quiet (after a sync) before each measured run")
    args = ap.parse_args(argv)
    globals()["SETTLE"] = args.settle

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    n = SIZES[args.size]
    coll = os.path.join(out, f"coll-{args.size}-s{args.seed}-p{args.port}")
    m = generate.load_manifest(coll)
    if m is None:
        say(f"generating {n} records with bodies into {coll}")
        t0 = time.perf_counter()
        m = generate.write(generate.plan(n, args.seed, args.port), coll)
        say(f"  done in {time.perf_counter() - t0:.1f} s: {m.www_bytes / 1e6:.0f} MB of bodies")
    kiel = os.path.join(REPO, ".venv", "bin", "kiel")
    have_kiel = subprocess.run([kiel, "renew", "--help"], capture_output=True).returncode == 0
    if not have_kiel:
        say(f"{kiel} renew is not available: Kiel is left out of this run")
    ctx = Ctx(out=out, coll=coll, manifest=m,
              kiel=kiel if have_kiel and "kiel" not in args.skip else None,
              port=args.port, log=os.path.join(out, "children.log"),
              history_days=tuple(sorted({int(x) for x in args.history_days.split(",") if x})))
    for days in ctx.history_days:
        history_phase(days)  # names the rows, in order
    tools = [t for t in ("kiel", "wget", "curl")
             if t not in args.skip and (t != "kiel" or ctx.kiel)]
    servers = Servers(ctx)
    info = machine()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M")

    def on_signal(signum, _frame):
        servers.stop()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "zero" not in args.skip or ("big" not in args.skip and ctx.kiel):
            say("zero latency: nginx")
            servers.nginx()
            check_answers(ctx)
            if "zero" not in args.skip:
                server_check(ctx, "zero")
                for rep in range(args.reps):
                    run_rep(ctx, "zero", tools, rep)
            if "big" not in args.skip and ctx.kiel:
                big_object(ctx)
        if "delay" not in args.skip:
            say(f"{args.delay * 1000:.0f} ms before each answer: delay_server.py")
            servers.delay(args.delay)
            check_answers(ctx)
            server_check(ctx, "delay")
            for rep in range(args.reps):
                # wget -N warm under delay measures nothing the issue asks for and
                # costs another requests x 50 ms.
                run_rep(ctx, "delay", tools, rep,
                        skip=lambda tool, rep=rep: tool == "wget" and rep >= args.slow_reps,
                        warm=lambda tool: tool != "wget")
        servers.stop()
        if "records" not in args.skip and ctx.kiel:
            say("records only: a branch that matches nothing")
            points = tuple(int(x) for x in args.records_points.split(",") if x)
            records_only(ctx, args.reps, points)
    finally:
        servers.stop()
        summary = summarize(ctx)
        text = render(ctx, summary, info, args)
        base = os.path.join(out, f"results-{args.size}-{stamp}")
        with open(base + ".md", "w", encoding="utf-8") as f:
            f.write(text)
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "machine": info, "manifest": asdict(m),
                       "summary": summary, "samples": [asdict(s) for s in ctx.samples]},
                      f, indent=1)
        say("\n" + text)
        say(f"written: {base}.md and {base}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
