"""The cost of ``kiel replicate`` and ``kiel audit`` next to plain rsync.

``.venv/bin/python bench/replicas.py --size small|medium``: generate (or
reuse) the collection of bench/generate.py, serve it with delay_server.py
(no delay), renew a home (night 1), start an rsync daemon on 127.0.0.1 with
two modules (the backs) and replicate night 1 to them; then change 2 % of
the bodies, renew again (night 2: every object has a new attempt, most of
them links, notes appended, ``00last`` replaced) and measure, from the
same state of the backs:

- ``kiel replicate`` to both backs, against ``rsync -a`` of the same trees
  (the same filters) to hard-linked copies of the backs, one back after
  the other and both at once (kiel replicate does the backs at once);
- ``kiel audit`` of the front and both backs, against
  ``rsync -ac --dry-run`` of the same trees to each back (one after the
  other, and at once), and ``kiel verify --fixity`` of the front alone
  (the audit's own hashing of the front against its notes).

Times are wall seconds of the whole command; the load average before each
run is printed beside it, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
import generate  # noqa: E402
from harness import SIZES, say, wait_port  # noqa: E402

from kiel.replicas.rsync import FILTERS  # noqa: E402

KIEL = os.path.join(REPO, ".venv", "bin", "kiel")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def timed(label: str, cmds: list[list[str]], ok: tuple[int, ...] = (0,),
          together: bool = False) -> float:
    """Wall seconds of ``cmds``, one after the other or all at once."""
    before = load()
    t0 = time.perf_counter()
    procs = []
    for cmd in cmds:
        procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)))
        if not together:
            procs[-1][1].wait()
    for cmd, p in procs:
        _, err = p.communicate()
        if p.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}\n{err}")
    wall = time.perf_counter() - t0
    say(f"  {label:48} {wall:8.2f} s   load {before:.1f}")
    return wall


def files_in(root: str) -> int:
    return sum(len(f) + sum(os.path.islink(os.path.join(d, x)) for x in ds)
               for d, ds, f in os.walk(root))


def fresh(out: str, backs: dict[str, str], names: tuple[str, ...]) -> None:
    """The backs as night 1 left them (hard-linked copies: rsync replaces a
    file by renaming a new one into place, so the snapshot is never changed)."""
    for n, src in zip(names, ("b1", "b2"), strict=True):
        shutil.rmtree(backs[n], ignore_errors=True)
        subprocess.run(["cp", "-al", os.path.join(out, f"night1-{src}"), backs[n]], check=True)
    # The copies' metadata on disk before the clock starts, not written back during a run.
    subprocess.run(["sync"], check=True)


def compare(home: str, out: str, backs: dict[str, str], url: dict[str, str], reps: int) -> None:
    src = home + "/"
    plain = [["rsync", "-a", "--numeric-ids", *FILTERS, src, url[p] + "/"] for p in ("p1", "p2")]
    check = [["rsync", "-ac", "--dry-run", "--numeric-ids", *FILTERS, src, url[b] + "/"]
             for b in ("b1", "b2")]
    rows: dict[str, list[float]] = {}
    # The order alternates: the backs are hard-linked copies of one snapshot,
    # so whichever runs second finds their inodes in the page cache.
    runs = [("rsync -a", "rsync -a, 2 backs one after the other", ("p1", "p2"), plain, False),
            ("rsync -a at once", "rsync -a, 2 backs at once", ("p1", "p2"), plain, True),
            ("kiel replicate", "kiel replicate, 2 backs", ("b1", "b2"),
             [[KIEL, "replicate", "--home", home, "-q"]], False)]
    for rep in range(reps):
        say(f"rep {rep + 1}: night 2 sent to backs as night 1 left them")
        for key, label, names, cmds, together in (runs if rep % 2 == 0 else runs[::-1]):
            fresh(out, backs, names)
            rows.setdefault(key, []).append(timed(label, cmds, together=together))
    audits = [("rsync -ac --dry-run", "rsync -ac --dry-run, 2 backs one after the other", check,
               False),
              ("rsync -ac --dry-run at once", "rsync -ac --dry-run, 2 backs at once", check, True),
              ("kiel audit", "kiel audit, front and 2 backs",
               [[KIEL, "audit", "--home", home, "-q"]], False),
              ("kiel verify --fixity", "kiel verify --fixity (the front alone)",
               [[KIEL, "verify", "--home", home, "--fixity"]], False)]
    for rep in range(reps):
        say(f"rep {rep + 1}: audit of the front and 2 backs, all up to date")
        for key, label, cmds, together in (audits if rep % 2 == 0 else audits[::-1]):
            rows.setdefault(key, []).append(timed(label, cmds, together=together))
    say("medians:")
    for k, v in rows.items():
        say(f"  {k:24} {statistics.median(v):8.2f} s   (min {min(v):.2f}, max {max(v):.2f})")
    med = {k: statistics.median(v) for k, v in rows.items()}
    for kiel, plain in (("kiel replicate", "rsync -a"), ("kiel audit", "rsync -ac --dry-run")):
        say(f"  {kiel} / {plain}: {med[kiel] / med[plain]:.2f}x one after the other, "
            f"{med[kiel] / med[plain + ' at once']:.2f}x at once")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("small", "medium"), default="small")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--port", type=int, default=18481)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reuse", action="store_true",
                    help="measure again on the home and backs of the last run")
    args = ap.parse_args()
    out = os.path.abspath(os.path.join(args.out, f"replicas-{args.size}"))
    coll = os.path.join(os.path.abspath(args.out), f"coll-{args.size}-s1-p{args.port}")
    if generate.load_manifest(coll) is None:
        say(f"generating {SIZES[args.size]} records into {coll}")
        generate.write(generate.plan(SIZES[args.size], 1, args.port), coll)
    home = os.path.join(out, "home")
    backs = {n: os.path.join(out, n) for n in ("b1", "b2", "p1", "p2")}
    reuse = args.reuse and os.path.isdir(os.path.join(out, "night1-b2"))
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "delay_server.py"), "--root",
             os.path.join(coll, "www"), "--port", str(args.port), "--delay", "0",
             "--redirects", os.path.join(coll, "redirects.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(args.port)
        rport = free_port()
        conf = os.path.join(out, "rsyncd.conf")
        with open(conf, "w") as f:
            f.write("use chroot = no\nmunge symlinks = no\nread only = no\nuid = root\n"
                    "gid = root\n" + "".join(f"[{n}]\npath = {d}\n" for n, d in backs.items()))
        for d in backs.values():
            os.makedirs(d, exist_ok=True)
        procs.append(subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}",
                                       f"--port={rport}", "--address=127.0.0.1"]))
        wait_port(rport)
        url = {n: f"rsync://127.0.0.1:{rport}/{n}" for n in backs}
        if reuse:
            with open(os.path.join(home, "etc", "kiel.conf"), "a") as f:
                f.write(f"\nreplicas = {url['b1']} {url['b2']}\n")
            compare(home, out, backs, url, args.reps)
            return 0
        subprocess.run([KIEL, "init", "--home", home], check=True, capture_output=True)
        with open(os.path.join(home, "etc", "kiel.conf"), "a") as f:
            f.write(f"\nallow_networks = 127.0.0.0/8\nreplicas = {url['b1']} {url['b2']}\n")
        amf = os.path.join(coll, "amf")
        say(f"{args.size}: night 1")
        timed("kiel renew (night 1)", [[KIEL, "renew", "--home", home, "-q", amf]], (0, 1))
        timed("kiel replicate (night 1: a full copy to 2 backs)",
              [[KIEL, "replicate", "--home", home, "-q"]])
        # Night 2: 2 % of the bodies change; every object gets a new attempt.
        www = os.path.join(coll, "www")
        bodies = sorted(os.path.join(d, f) for d, _, fs in os.walk(www) for f in fs)
        for p in bodies[::50]:
            with open(p, "ab") as f:
                f.write(b"\nchanged\n")
        try:
            time.sleep(1.1)  # another second: the attempts of night 2 get their own names
            timed("kiel renew (night 2)", [[KIEL, "renew", "--home", home, "-q", amf]], (0, 1))
        finally:
            for p in bodies[::50]:
                with open(p, "r+b") as f:
                    f.truncate(os.path.getsize(p) - len(b"\nchanged\n"))
        say(f"  the front: {files_in(os.path.join(home, 'store'))} files and links in store/")
        for b in ("b1", "b2"):
            subprocess.run(["cp", "-al", backs[b], os.path.join(out, f"night1-{b}")], check=True)
        compare(home, out, backs, url, args.reps)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
