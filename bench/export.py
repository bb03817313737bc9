"""``kiel export`` next to ``tar -czf`` of the same store (docs/performance.md).

    .venv/bin/python bench/export.py [--size small|medium|large] [--reps N]

Makes the bench collection (bench/generate.py) if it is missing, serves it
with nginx on 127.0.0.1-32 as bench/run does, renews a fresh home twice
(cold, then warm: links, 304s and revisits), then measures, under GNU time,
``tar -czf`` of the store, ``kiel export`` to a .warc.gz and to a .wacz,
and the export of one archive of the store alone (its peak RSS beside the
whole store's shows whether memory grows with the store). The store is
kept in OUT/export-<size>/home for more runs (--keep-home reuses it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate  # noqa: E402
import harness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(harness.SIZES), default="medium")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--keep-home", action="store_true", help="reuse a home renewed before")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    coll = os.path.join(out, f"coll-{args.size}-s{args.seed}-p{args.port}")
    m = generate.load_manifest(coll)
    if m is None:
        harness.say(f"generating {harness.SIZES[args.size]} records into {coll}")
        m = generate.write(generate.plan(harness.SIZES[args.size], args.seed, args.port), coll)
    kiel = os.path.join(harness.REPO, ".venv", "bin", "kiel")
    ctx = harness.Ctx(out=out, coll=coll, manifest=m, kiel=kiel, port=args.port,
                      log=os.path.join(out, "export-children.log"))
    work = os.path.join(out, f"export-{args.size}")
    home = os.path.join(work, "home")
    if not (args.keep_home and os.path.isdir(os.path.join(home, "store"))):
        servers = harness.Servers(ctx)
        try:
            servers.nginx()
            harness.check_answers(ctx)
            harness.kiel_home(ctx, home)
            for phase in ("cold", "warm"):
                r = harness.measure([kiel, "renew", "--home", home,
                                     os.path.join(coll, "amf")], None, ctx.log)
                harness.say(f"renew {phase}: {r.wall:.1f} s, rc {r.rc}")
        finally:
            servers.stop()
    app, alloc, files = harness.du(os.path.join(home, "store"))
    harness.say(f"store: {app / 1e6:.0f} MB apparent, {alloc / 1e6:.0f} MB on disk, "
                f"{files} files")
    first = sorted(os.listdir(os.path.join(home, "store", "RePEc")))[0]
    outputs = os.path.join(work, "outputs")
    cases = [
        ("tar -czf", ["tar", "-czf", os.path.join(outputs, "store.tar.gz"), "-C", home, "store"]),
        ("kiel export .warc.gz", [kiel, "export", "--home", home, "-o",
                                  os.path.join(outputs, "store.warc.gz")]),
        ("kiel export .wacz", [kiel, "export", "--home", home, "-o",
                               os.path.join(outputs, "store.wacz")]),
        (f"kiel export .warc.gz RePEc:{first}", [kiel, "export", "--home", home, "-o",
                                                 os.path.join(outputs, "part.warc.gz"),
                                                 f"RePEc:{first}"]),
    ]
    results: dict[str, list[harness.Measured]] = {name: [] for name, _ in cases}
    sizes: dict[str, int] = {}
    for rep in range(args.reps):
        for name, cmd in cases:
            harness.rmtree(outputs)
            os.makedirs(outputs)
            r = harness.measure(cmd, None, ctx.log)
            made = [os.path.join(outputs, n) for n in os.listdir(outputs)]
            sizes[name] = sum(os.path.getsize(p) for p in made)
            results[name].append(r)
            harness.say(f"rep {rep} {name}: {r.wall:.1f} s, {r.cpu:.1f} cpu-s, "
                        f"{r.rss_kb / 1024:.1f} MB peak RSS, rc {r.rc}, "
                        f"{sizes[name] / 1e6:.0f} MB written")
    harness.rmtree(outputs)
    tar = statistics.median(r.wall for r in results["tar -czf"])
    print("\n| command | reps | wall s (median) | min-max | vs tar -czf | CPU s | "
          "peak RSS MB | output MB | exit |\n|---|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        wall = statistics.median(r.wall for r in rs)
        print(f"| {name} | {len(rs)} | {wall:.1f} | {min(r.wall for r in rs):.1f}-"
              f"{max(r.wall for r in rs):.1f} | {wall / tar:.2f}x | "
              f"{statistics.median(r.cpu for r in rs):.1f} | "
              f"{max(r.rss_kb for r in rs) / 1024:.1f} | {sizes[name] / 1e6:.0f} | "
              f"{','.join(str(r.rc) for r in rs)} |")
    subprocess.run(["uname", "-srm"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
