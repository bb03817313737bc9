"""RePEc scale: one ``kiel renew`` over N records (4 000 000 by default, the
size of RePEc) under the usual open-files limit (``ulimit -n 1024``), cold
then unchanged, with its wall time, CPU time and peak memory (``VmHWM`` of
every Kiel process, read from ``/proc`` while it runs).

Records only by default: a branch that matches nothing, so the run parses,
serializes and stores every record and sorts them (the scan's external
sort). ``--objects`` keeps the default branches and gives every record two
URLs on 127.0.0.x that the home does not allow (loopback is denied by
default): every URL goes through the URL sort, the plan and an object
directory with its ``000 denied`` attempt, and nothing is fetched.

The input is written streaming (``--records-per-file`` records a file) and
reused when it exists; the home is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AMF_NS = "http://amf.openlib.org"
NOTHING = ('<?xml version="1.0" encoding="UTF-8"?>\n<branches>\n'
           '  <branch xpath="nothing"/>\n</branches>\n')


def say(msg: str) -> None:
    print(msg, flush=True)


def write_input(out: str, n: int, per_file: int) -> None:
    """``n`` records in ``amf/RePEc/<aaa>/<series>/``, ``per_file`` a file;
    a tenth of the records share their display page with the one before."""
    done = os.path.join(out, "complete")
    if os.path.exists(done):
        return
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="{AMF_NS}">\n'
    for f0 in range(0, n, per_file):
        archive = f"a{f0 // per_file // 1000 % 100:02d}"
        series = f"s{f0 // per_file:06d}"
        d = os.path.join(out, "amf", "RePEc", archive, series[:4])
        os.makedirs(d, exist_ok=True)
        parts = [head]
        for i in range(f0, min(n, f0 + per_file)):
            host = 1 + i % 32
            page = i - 1 if i % 10 == 9 else i
            parts.append(
                f'  <text id="RePEc:{archive}:{series}:{i}">\n'
                f"    <title>Synthetic paper {i}</title>\n"
                f"    <hasauthor><person><name>Author {i}</name></person></hasauthor>\n"
                f"    <displaypage>http://127.0.0.{host}:9/h/{page}.html</displaypage>\n"
                f"    <file>\n      <url>http://127.0.0.{host}:9/p/{i}.pdf</url>\n"
                f"      <format>application/pdf</format>\n    </file>\n  </text>\n")
        parts.append("</amf>\n")
        with open(os.path.join(d, f"{series}.amf.xml"), "w", encoding="utf-8") as f:
            f.write("".join(parts))
        if f0 and f0 % 500_000 == 0:
            say(f"  {f0} records written")
    with open(done, "w") as f:
        f.write(f"{n}\n")
    say(f"  input: {n} records in {time.perf_counter() - t0:.0f} s")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Run:
    phase: str
    records: int
    wall: float
    cpu: float
    hwm_mb: float  # the largest VmHWM of one Kiel process
    hwm_sum_mb: float  # VmHWM summed over the processes of the run
    nofile: int
    rc: int
    load: float = 0.0  # 1-minute load average just before the run
    disk_mb: float = 0.0  # used space of the file system grew by this much (others' too)
    processes: int = 0  # the setting (0: one per core)


def used_bytes(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def renew(kiel: str, home: str, inputs: str, nofile: int, phase: str, n: int, log: str) -> Run:
    """``kiel renew`` under ``ulimit -n nofile`` (soft and hard), its VmHWM polled."""
    cmd = ["bash", "-c", f'ulimit -n {nofile} && exec "$0" "$@"', kiel, "renew", "--home", home,
           inputs]
    peak: dict[int, int] = {}
    with open(log, "ab") as lf:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)
        while True:
            for pid in _tree(p.pid):
                peak[pid] = max(peak.get(pid, 0), _hwm_kb(pid))
            try:
                _, status, ru = os.wait4(p.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if _ != 0:
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    return Run(phase, n, wall, cpu, max(peak.values(), default=0) / 1024,
               sum(peak.values()) / 1024, nofile, p.returncode)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run --scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=4_000_000)
    ap.add_argument("--nofile", type=int, default=1024, help="ulimit -n of the run")
    ap.add_argument("--records-per-file", type=int, default=1000)
    ap.add_argument("--objects", action="store_true",
                    help="two denied URLs a record: URL sort and object directories too")
    ap.add_argument("--unchanged", action="store_true", help="a second run over the same home")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--keep", action="store_true", help="keep the home afterwards")
    ap.add_argument("--processes", type=int, default=None,
                    help="the home's 'processes' setting (default: Kiel's, one per core)")
    args = ap.parse_args(argv)
    kiel = os.path.join(REPO, ".venv", "bin", "kiel")
    out = os.path.abspath(args.out)
    inputs = os.path.join(out, f"scale-{args.records}")
    say(f"scale: {args.records} records, ulimit -n {args.nofile}"
        + (", objects (denied URLs)" if args.objects else ", records only"))
    write_input(inputs, args.records, args.records_per_file)
    home = os.path.join(out, "work", f"scale-{args.records}")
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([kiel, "init", "--home", home], check=True, capture_output=True)
    if not args.objects:
        with open(os.path.join(home, "etc", "branches.xml"), "w", encoding="utf-8") as f:
            f.write(NOTHING)
    if args.processes is not None:
        conf = os.path.join(home, "etc", "kiel.conf")
        with open(conf, encoding="utf-8") as f:
            text = f.read()
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text.replace("[kiel]\n", f"[kiel]\nprocesses = {args.processes}\n", 1))
    runs = []
    log = os.path.join(out, "scale.log")
    try:
        for phase in ("cold", "unchanged") if args.unchanged else ("cold",):
            os.sync()
            with open("/proc/loadavg") as f:
                load = float(f.read().split()[0])
            used = used_bytes(home)
            r = renew(kiel, home, os.path.join(inputs, "amf"), args.nofile, phase, args.records,
                      log)
            os.sync()
            r.load, r.disk_mb = load, (used_bytes(home) - used) / 1e6
            r.processes = args.processes if args.processes is not None else 0
            runs.append(r)
            say(f"  {phase:9} {r.wall:9.1f} s  {args.records / r.wall:7.0f} records/s  "
                f"{r.cpu:9.1f} CPU s  peak {r.hwm_mb:7.1f} MB (VmHWM; {r.hwm_sum_mb:.1f} MB over "
                f"all processes)  ulimit -n {r.nofile}  exit {r.rc}  load {load}  "
                f"disk +{r.disk_mb:.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    with open(os.path.join(out, f"scale-{args.records}-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "runs": [asdict(r) for r in runs]}, f, indent=1)
    say("\n| records | run | wall s | records/s | CPU s | peak MB (VmHWM) | ulimit -n | "
        "disk MB | processes | load | exit |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        say(f"| {r.records} | {r.phase} | {r.wall:.1f} | {r.records / r.wall:.0f} | {r.cpu:.1f} | "
            f"{r.hwm_mb:.1f} | {r.nofile} | {r.disk_mb:.0f} | {r.processes or 'cores'} | "
            f"{r.load:.1f} | {r.rc} |")
    return 0 if all(r.rc == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
