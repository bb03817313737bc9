"""Profile ``kiel renew`` on the benchmark collection with py-spy.

Serves the small collection with nginx (0 ms) or the delay server, runs
``kiel renew`` cold then warm under ``py-spy record --gil`` (only the thread
holding the GIL is sampled: where the Python time goes), or, with
``--records``, a records-only home on the 10 000-record collection; writes
the raw collapsed stacks to ``bench/out/profile-<what>-<phase>.txt`` and
prints the top frames, self and inclusive.

Usage: ``.venv/bin/pip install py-spy; .venv/bin/python bench/profile.py
[--size small] [--delay 0.05] [--records N] [--idle] [--history-days N]``.
With ``--history-days``, a third run follows warm: the same renewal after N
nights of notes were prepended to every ``00notes`` (as the benchmark's
"warm, N days of notes" row does). Run ``bench/run`` once first (it
generates the collection).

``--notes-cost`` measures, in this process and without a server, what a
renewal spends reading one object's past (``kiel.objects``' reader of the
end of ``00notes``) for 0, 30, 365 and 3 650 nights of history: CPU
microseconds per object, the best of 5 rounds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import generate  # noqa: E402
import harness  # noqa: E402

SITE = re.compile(r"^.*?/site-packages/")


def top(path: str, n: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, count = line.rstrip().rsplit(" ", 1)
            k = int(count)
            total += k
            frames = [SITE.sub("", re.sub(r":\d+\)$", ")", fr)) for fr in stack.split(";")]
            own[frames[-1]] += k
            for fr in set(frames):
                incl[fr] += k
    out = [f"{path}: {total} samples"]
    out += ["  self:"] + [f"  {c:6} {c / total:6.1%}  {k}" for k, c in own.most_common(n)]
    out += ["  inclusive:"] + [f"  {c:6} {c / total:6.1%}  {k}" for k, c in incl.most_common(2 * n)]
    return "\n".join(out)


# An object's first attempt and its warm 304, as a renewal writes them.
FIRST = {"tist": 1795981850, "url": "http://127.0.0.11:18480/h/yci/dpaper/362.html",
         "status": "200", "type": "text-html", "declared_type": "text/html", "size": 28156,
         "sha256": "21b5f3486ed7fdb09af86bd44eb5b1542c756e8f992a431d09f5f34fa71582c3",
         "sha1": "130d314fcee817b9f95a90226cf20362464224d6", "file": "1795981850_200_text-html",
         "link": None, "location": None, "error": None, "elapsed": 0.041, "headers": None,
         "attempt": 1, "etag": '"6b0c8207-6dfc"', "last_modified": "Sun, 29 Nov 2026 19:50:31 GMT",
         "since": 1795981850, "ever_ok": True, "discovered": []}
WARM = dict(FIRST, tist=1795981858, status="304", declared_type=None,
            file="1795981858_304_text-html", link="1795981850_200_text-html")

RENEWAL = {"event": "renewal", "tist": 1795981858, "end": 1795981858,
           "id": "RePEc:yci:dpaper:v:27:y:1991:i:362",
           "source": "/srv/amf/RePEc/yci/dpaper/dpaper0009.amf.xml:21", "version": None,
           "version_sha256": None, "current": "1795981850.amf.xml",
           "urls": {"displaypage": ["http://127.0.0.11:18480/h/yci/dpaper/362.html"],
                    "file/url": ["http://127.0.0.13:18480/p/yci/zgdpam/530.pdf"]},
           "skipped": [],
           "objects": {"http://127.0.0.11:18480/h/yci/dpaper/362.html":
                       "http%3A%2F%2F127.0.0.11%3A18480%2Fh%2Fyci%2Fdpaper%2F362.html",
                       "http://127.0.0.13:18480/p/yci/zgdpam/530.pdf":
                       "http%3A%2F%2F127.0.0.13%3A18480%2Fp%2Fyci%2Fzgdpam%2F530.pdf"},
           "errors": []}


def notes_cost(out: str, nights_list: tuple[int, ...] = (0, 30, 365, 3650),
               n: int = 2000) -> str:
    """CPU per object of reading its past, by the nights of notes before
    its two newest lines."""
    # The readers a renewal calls for every object and every record.
    from kiel import notes, objects

    work = os.path.join(out, "work", "notes-cost")
    harness.rmtree(work)
    head = (f"notes cost: {objects.__name__}._read_past per object, {notes.__name__}.tail per "
            f"record; CPU, best of 5 x {n}")
    lines = [head]
    try:
        for nights in nights_list:
            path = os.path.join(work, f"o{nights}")
            os.makedirs(path)
            hist, since = harness.object_history(FIRST, nights) if nights else (b"", FIRST["tist"])
            newest = "".join(json.dumps(dict(e, since=since), ensure_ascii=False,
                                        separators=(",", ":")) + "\n" for e in (FIRST, WARM))
            with open(os.path.join(path, "00notes"), "wb") as f:
                f.write(hist + newest.encode("utf-8"))
            best = float("inf")
            for _ in range(5):
                t0 = time.process_time()
                for _ in range(n):
                    od = objects.ObjectDir(path, str(FIRST["url"]))
                    objects._read_past(od)
                best = min(best, (time.process_time() - t0) / n)
            # What the renewal needs was found: the body, the age.
            assert od.body is not None and od.since == since and od.ever_ok
            size = os.path.getsize(os.path.join(path, "00notes"))
            # A record's renewal reads the end of its own notes the same way.
            rnotes = os.path.join(path, "record-00notes")
            with open(rnotes, "wb") as f:
                f.write(harness.record_history(RENEWAL, nights, int(RENEWAL["tist"]))
                        + (json.dumps(RENEWAL, separators=(",", ":")) + "\n").encode())
            rbest = float("inf")
            for _ in range(5):
                t0 = time.process_time()
                for _ in range(n):
                    notes.tail(rnotes)
                rbest = min(rbest, (time.process_time() - t0) / n)
            lines.append(f"  {nights:5} nights  object {size:9} bytes  {best * 1e6:7.1f} us/object"
                         f"   record {os.path.getsize(rnotes):9} bytes  "
                         f"{rbest * 1e6:7.1f} us/record")
    finally:
        harness.rmtree(work)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(harness.SIZES), default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--delay", type=float, default=0.0, help="0: nginx; else the delay server")
    ap.add_argument("--records", type=int, default=0,
                    help="profile records only (a branch matching nothing) at N records")
    ap.add_argument("--idle", action="store_true",
                    help="sample every thread, idle or not (wall time), instead of --gil")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--history-days", type=int, default=0,
                    help="then renew once more after prepending N nights of notes")
    ap.add_argument("--notes-cost", action="store_true",
                    help="only the cost of reading an object's past, by history length")
    a = ap.parse_args(argv)
    out = os.path.join(HERE, "out")
    if a.notes_cost:
        print(notes_cost(out))
        return 0
    pyspy = (shutil.which("py-spy", path=os.path.join(REPO, ".venv", "bin"))
             or shutil.which("py-spy"))
    if not pyspy:
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    kiel = os.path.join(REPO, ".venv", "bin", "kiel")
    if a.records:
        coll = os.path.join(out, f"records-{a.records}-s{a.seed}")
        if generate.load_manifest(coll) is None:
            generate.write(generate.plan(a.records, a.seed, a.port), coll, bodies=False)
    else:
        coll = os.path.join(out, f"coll-{a.size}-s{a.seed}-p{a.port}")
        if generate.load_manifest(coll) is None:
            generate.write(generate.plan(harness.SIZES[a.size], a.seed, a.port), coll)
    ctx = harness.Ctx(out=out, coll=coll, manifest=generate.load_manifest(coll), kiel=kiel,
                      port=a.port, log=os.path.join(out, "profile.log"))
    servers = harness.Servers(ctx)
    home = os.path.join(out, "work", "profile-home")
    what = f"records{a.records}" if a.records else f"{a.size}-{int(a.delay * 1000)}ms"
    try:
        if a.records:
            harness.kiel_home(ctx, home,
                              branches='<branches><branch xpath="nothing"/></branches>\n')
        else:
            servers.delay(a.delay) if a.delay else servers.nginx()
            harness.kiel_home(ctx, home)
        phases = ["cold", "warm"] + ([f"warm-{a.history_days}d"] if a.history_days else [])
        for phase in phases:
            if phase.startswith("warm-"):
                h = harness.add_history(home, a.history_days)
                print(f"notes history: {a.history_days} nights on {h.objects} objects and "
                      f"{h.records} records, {h.bytes / 1e6:.0f} MB in {h.seconds:.1f} s")
            raw = os.path.join(out, f"profile-{what}-{phase}.txt")
            t0 = time.perf_counter()
            subprocess.run([harness.TIME, "-f", "%e s wall, %U s user, %S s sys, %M KB peak",
                            "-o", raw + ".time", pyspy, "record", "--idle" if a.idle else "--gil",
                            "--threads" if a.idle else "--nonblocking", "-r", str(a.rate),
                            "-f", "raw", "-o", raw, "--", sys.executable, kiel, "renew",
                            "--home", home, os.path.join(coll, "amf")],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(raw + ".time") as f:
                print(f"{phase}: {time.perf_counter() - t0:.2f} s "
                      f"({f.read().strip()}, py-spy included)")
            print(top(raw))
    finally:
        servers.stop()
        harness.rmtree(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
