"""Profile ``kiel renew`` on the benchmark collection with py-spy.

Serves the small collection with nginx (0 ms) or the delay server, runs
``kiel renew`` cold then warm under ``py-spy record --gil`` (only the thread
holding the GIL is sampled: where the Python time goes), or, with
``--records``, a records-only home on the 10 000-record collection; writes
the raw collapsed stacks to ``bench/out/profile-<what>-<phase>.txt`` and
prints the top frames, self and inclusive.

Usage: ``.venv/bin/pip install py-spy; .venv/bin/python bench/profile.py
[--size small] [--delay 0.05] [--records N] [--idle]``. Run ``bench/run``
once first (it generates the collection).
"""

from __future__ import annotations

import argparse
import collections
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
    a = ap.parse_args(argv)
    out = os.path.join(HERE, "out")
    pyspy = shutil.which("py-spy", path=os.path.join(REPO, ".venv", "bin")) or shutil.which("py-spy")
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
            harness.kiel_home(ctx, home, branches='<branches><branch xpath="nothing"/></branches>\n')
        else:
            servers.delay(a.delay) if a.delay else servers.nginx()
            harness.kiel_home(ctx, home)
        for phase in ("cold", "warm"):
            raw = os.path.join(out, f"profile-{what}-{phase}.txt")
            t0 = time.perf_counter()
            subprocess.run([harness.TIME, "-f", "%e s wall, %U s user, %S s sys, %M KB peak",
                            "-o", raw + ".time", pyspy, "record", "--idle" if a.idle else "--gil",
                            "--threads" if a.idle else "--nonblocking", "-r", str(a.rate), "-f", "raw",
                            "-o", raw, "--", sys.executable, kiel, "renew", "--home", home,
                            os.path.join(coll, "amf")],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(raw + ".time") as f:
                print(f"{phase}: {time.perf_counter() - t0:.2f} s ({f.read().strip()}, py-spy included)")
            print(top(raw))
    finally:
        servers.stop()
        harness.rmtree(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
