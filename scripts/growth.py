#!/usr/bin/env python3
"""Measure what each night adds to a store: bytes and inodes, per object.

    sudo .venv/bin/python scripts/growth.py [--records 2000] [--nights 3] [--keep]

Generates bench's synthetic RePEc-like collection (bench/generate.py, seed
1: two objects a record, 10 % of URLs shared, 5 % answering 404, 3 % a
redirect), serves it with bench/delay_server.py (no delay, ETag and
Last-Modified, 304 to a conditional request), and runs the real
``kiel renew`` on it night after night: the first night cold, the others
unchanged. After each night it counts what is under ``store/``: inodes
(every directory, file and link), the space allocated (``du``), the
apparent bytes, the bodies and the notes, and prints the growth per object.

The PDF bodies are made 20 to 60 KB instead of bench's 20 KB to 2 MB: the
bodies are the collection's own bytes whatever Kiel does, and smaller ones
keep the run short on a shared disk; what Kiel adds besides them (notes,
links, directories) does not depend on their size.

Runs in its own network namespace (``unshare --net``, as root), where
0.0.0.0 is only the loopback, so the server on 127.0.0.K listens nowhere
else. The nights are minutes apart, not days: a renewal does not care.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "bench"))
import generate  # noqa: E402  (bench/generate.py, read as it is)

KIEL = [sys.executable, "-m", "kiel"]
PORT = 18480


def measure(store: str) -> dict[str, int]:
    out = {"inodes": 0, "allocated": 0, "apparent": 0, "bodies": 0, "notes": 0, "objects": 0,
           "links": 0, "attempts": 0}
    for top, dirs, files in os.walk(store):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            out["inodes"] += 1
            out["allocated"] += st.st_blocks * 512
            out["apparent"] += st.st_size
            if name == "00notes":
                out["notes"] += st.st_size
            elif name == "00url":
                out["objects"] += 1
            elif "_" in name and name.split("_", 1)[0].isdigit():
                out["attempts"] += 1
                if os.path.islink(path):
                    out["links"] += 1
                else:
                    out["bodies"] += st.st_size
    return out


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"growth: the server on port {port} did not start")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if os.environ.get("KIEL_GROWTH_NETNS") != "1":
        # Once more, in a network namespace of our own with its loopback up.
        cmd = ("ip link set lo up && exec " + " ".join(
            [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]))
        return subprocess.call(["unshare", "--net", "sh", "-c", cmd],
                               env={**os.environ, "KIEL_GROWTH_NETNS": "1"})

    work = tempfile.mkdtemp(prefix="kiel-growth-")
    coll, home = os.path.join(work, "coll"), os.path.join(work, "home")
    generate.PDF_SIZE = (20_000, 60_000)
    m = generate.write(generate.plan(args.records, 1, PORT), coll)
    server = subprocess.Popen([sys.executable, os.path.join(TOP, "bench", "delay_server.py"),
                               "--root", os.path.join(coll, "www"), "--port", str(PORT),
                               "--delay", "0", "--workers", "1",
                               "--redirects", os.path.join(coll, "redirects.json")])
    try:
        wait_port(PORT)
        subprocess.run([*KIEL, "init", "--home", home], check=True, capture_output=True)
        with open(os.path.join(home, "etc", "kiel.conf"), "a", encoding="utf-8") as f:
            f.write("contact = mailto:archive@example.org\nallow_networks = 127.0.0.0/8\n")
        before = measure(os.path.join(home, "store"))
        rows = []
        for night in range(1, args.nights + 1):
            t0 = time.monotonic()
            r = subprocess.run([*KIEL, "renew", "--home", home, "--quiet",
                                os.path.join(coll, "amf")], capture_output=True, text=True)
            took = time.monotonic() - t0
            if r.returncode not in (0, 1):
                print(r.stderr, file=sys.stderr)
                raise SystemExit(f"growth: kiel renew exited {r.returncode}")
            now = measure(os.path.join(home, "store"))
            rows.append((night, took, {k: now[k] - before[k] for k in now}, now))
            before = now
            time.sleep(1.1)  # the next night's tists are new seconds
        print(f"kiel renew on bench/generate.py's collection: {m.records} records, "
              f"{rows[0][3]['objects']} objects (distinct URLs and redirect targets)\n")
        print("| night | inodes | inodes / object | du | du / object | bodies | notes "
              "| notes / object | attempts | links |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for night, _took, d, now in rows:
            objs = now["objects"]
            kind = "cold" if night == 1 else "unchanged"
            print(f"| {night} ({kind}) | +{d['inodes']} | {d['inodes'] / objs:.2f} "
                  f"| +{human(d['allocated'])} | {human(d['allocated'] / objs)} "
                  f"| +{human(d['bodies'])} | +{human(d['notes'])} "
                  f"| {human(d['notes'] / objs)} | {d['attempts']} | {d['links']} |")
        print("\n" + json.dumps([{"night": n, "seconds": round(t, 1), **d} for n, t, d, _ in rows]))
    finally:
        server.terminate()
        server.wait(10)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
