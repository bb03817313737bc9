"""Benchmarks of the OAI-PMH provider (docs/performance.md, docs/oai.md).

``pages`` (the default): writes a synthetic index of N records (default
1 000 000) with the real index writer, then times ``ListIdentifiers`` pages
through the WSGI application (no network): the first page, and the page at
depth 900 000 reached with a real resumption token, for the whole
repository and for one set. Exit status 1 when the deep page costs over
1.5 times the first or any page 50 ms.

``night``: on a base of N records, one night's changes (1 % of N) appended
to the change log as the renewal appends them; times the appends, the
first list request that shows them (the provider reads the log), a page
with the log laid over the base, and the fold at the end of the run.

``rebuild``: writes a store of N record directories on disk (a version and
notes each) and times the full rebuild that walks it.

``load``: a real server on 127.0.0.1 and C concurrent harvesters paging
``ListRecords`` for S seconds; answers per second, 503s and latency, for
the overload settings given.

    python bench/oai_bench.py
    python bench/oai_bench.py pages --records 200000 --depth 150000 --runs 50
    python bench/oai_bench.py night --records 1000000
    python bench/oai_bench.py rebuild --records 100000
    python bench/oai_bench.py load --clients 16 --seconds 20
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

from kiel.oai import ChangeLog, create_app, fold, rebuild
from kiel.oai.index import Entry, open_current, write_index
from kiel.oai.token import ListPosition
from kiel.redist import record_path, record_sets
from kiel.tist import iso

T0 = 1_600_000_000


def synthetic(n: int):
    """RePEc-like records: 40 archives of 25 series, 1 in 100 deleted.

    Emitted in store order (by id), not datestamp order, so the build does
    the real external sort; about 10 records share each datestamp.
    """
    for i in range(n):
        archive, series = f"a{i % 40:02d}", f"s{i // 40 % 25:02d}"
        rid = f"RePEc:{archive}:{series}:{i:07d}"
        ds = T0 + (i * 7919 % n) // 10
        yield Entry(ds, rid, i % 100 == 0, tuple(record_sets(rid)))


def call(app, query: str) -> tuple[float, bytes]:
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "PATH_INFO": "/oai",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "wsgi.input": io.BytesIO(),
           "wsgi.url_scheme": "http"}
    status = []
    t = time.perf_counter()
    body = b"".join(app(env, lambda s, h: status.append(s)))
    elapsed = time.perf_counter() - t
    if status[0] != "200 OK" or b"<error" in body:
        raise SystemExit(f"unexpected answer to {query}: {status[0]} {body[:500]!r}")
    return elapsed, body


def median_ms(app, query: str, runs: int) -> float:
    call(app, query)  # warm the page cache and the code path
    return statistics.median(call(app, query)[0] for _ in range(runs)) * 1000


def deep_query(app, index, set_spec: str | None, depth: int) -> str:
    """The query of a harvester resuming at ``depth`` with a real token."""
    from urllib.parse import urlencode

    view = index.view(set_spec)
    depth = min(depth, len(view) - 1)
    key = index.key(view.number(depth - 1))
    token = app.tokens.list_token(ListPosition("ListIdentifiers", "oai_dc", set_spec,
                                               None, None, key))
    return urlencode({"verb": "ListIdentifiers", "resumptionToken": token})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = argv.pop(0) if argv and not argv[0].startswith("-") else "pages"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=None)
    p.add_argument("--depth", type=int, default=900_000)
    p.add_argument("--runs", type=int, default=101)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--max-requests", type=int, default=None)
    p.add_argument("--request-wait", type=float, default=None)
    p.add_argument("--keep", metavar="DIR", help="build the home here and keep it")
    args = p.parse_args(argv)
    modes = {"pages": pages, "night": night, "rebuild": rebuild_bench, "load": load}
    if mode not in modes:
        p.error(f"unknown benchmark {mode!r} (one of {', '.join(modes)})")
    return modes[mode](args)


def pages(args: argparse.Namespace) -> int:
    args.records = args.records or 1_000_000
    home = args.keep or tempfile.mkdtemp(prefix="kiel-oai-bench-")
    try:
        os.makedirs(os.path.join(home, "store"), exist_ok=True)
        t = time.perf_counter()
        stats = write_index(home, synthetic(args.records))
        build_s = time.perf_counter() - t
        app = create_app(home)
        index = open_current(home)
        page = app.config.page_size
        first_set = "RePEc:a07"
        rows = []
        for label, set_spec in (("all records", None), (f"set {first_set}", first_set)):
            q0 = "verb=ListIdentifiers&metadataPrefix=oai_dc" + (
                f"&set={set_spec}" if set_spec else "")
            view_len = len(index.view(set_spec))
            depth = min(args.depth, view_len - page) if set_spec is None else view_len * 9 // 10
            cursor = f'cursor="{depth}"'.encode()
            if cursor not in call(app, deep_query(app, index, set_spec, depth))[1]:
                raise SystemExit(f"the deep page of {label} is not at cursor {depth}")
            m0 = median_ms(app, q0, args.runs)
            md = median_ms(app, deep_query(app, index, set_spec, depth), args.runs)
            rows.append((label, view_len, depth, m0, md))

        print(f"index: {stats.records} records ({stats.deleted} deleted), {stats.sets} sets, "
              f"built in {build_s:.1f} s; page size {page}; median of {args.runs} runs")
        print()
        print(f"{'list':<16} {'size':>9} {'depth':>9} {'first ms':>9} {'deep ms':>9} {'ratio':>6}")
        ok = True
        for label, size, depth, m0, md in rows:
            ratio = md / m0
            ok = ok and ratio <= 1.5 and m0 < 50 and md < 50
            print(f"{label:<16} {size:>9} {depth:>9} {m0:>9.2f} {md:>9.2f} {ratio:>6.2f}")
        print()
        print("targets (deep <= 1.5 x first, every page < 50 ms):", "met" if ok else "MISSED")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def _home(args: argparse.Namespace) -> str:
    home = args.keep or tempfile.mkdtemp(prefix="kiel-oai-bench-")
    os.makedirs(os.path.join(home, "store"), exist_ok=True)
    os.makedirs(os.path.join(home, "etc"), exist_ok=True)
    return home


def night(args: argparse.Namespace) -> int:
    n = args.records or 1_000_000
    home = _home(args)
    try:
        t = time.perf_counter()
        write_index(home, synthetic(n))
        base_s = time.perf_counter() - t
        app = create_app(home)
        q = "verb=ListIdentifiers&metadataPrefix=oai_dc"
        call(app, q)
        changed = n // 100
        ids = [f"RePEc:a{i % 40:02d}:s{i // 40 % 25:02d}:{i:07d}"
               for i in range(0, n, max(1, n // changed))][:changed]
        night_ds = T0 + n  # after every datestamp of the base
        # The renewal's own calls (ChangeLog.append looks for the record's
        # newest version in the store; the directories exist here).
        for rid in ids:
            d = os.path.join(home, "store", record_path(rid))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{night_ds}.amf.xml"), "wb") as f:
                f.write(b"<amf/>")
        t = time.perf_counter()
        with ChangeLog.open(home, now=lambda: night_ds) as log:
            for rid in ids:
                log.append("version", rid, record_path(rid))
        append_s = time.perf_counter() - t
        first_ms, body = call(app, q + "&from=" + iso(night_ds))
        first_ms *= 1000
        if body.count(b"<header>") != min(changed, app.config.page_size):
            raise SystemExit("the night's changes are not listed")
        over_ms = median_ms(app, q + "&from=" + iso(night_ds), args.runs)
        deep = median_ms(app, q, args.runs)
        t = time.perf_counter()
        stats = fold(home)
        fold_s = time.perf_counter() - t
        after_ms = median_ms(create_app(home), q, args.runs)
        print(f"base: {n} records written in {base_s:.1f} s; one night: {changed} changes "
              f"(1 %); median of {args.runs} runs")
        print()
        print(f"appending the night's lines (ChangeLog.append) {append_s:8.2f} s "
              f"({append_s / changed * 1e6:.0f} us a change)")
        print(f"first list request after them (reads the log) {first_ms:8.1f} ms")
        print(f"a page of the night's changes                  {over_ms:8.2f} ms")
        print(f"a page of the base with the log over it        {deep:8.2f} ms")
        print(f"fold at the end of the run ({stats.folded} lines)     {fold_s:8.1f} s")
        print(f"a page of the base after the fold              {after_ms:8.2f} ms")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def write_store(home: str, n: int) -> None:
    """N record directories as the renewal leaves them: a version, 00last, 00notes."""
    store = os.path.join(home, "store")
    for i in range(n):
        rid = f"RePEc:a{i % 40:02d}:s{i // 40 % 25:02d}:{i:07d}"
        d = os.path.join(store, record_path(rid))
        os.makedirs(d, exist_ok=True)
        ds = T0 + i
        with open(os.path.join(d, f"{ds}.amf.xml"), "wb") as f:
            f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">'
                    b'<text id="%s"><title>Record %d</title><file><url>http://example.org/%d.pdf'
                    b"</url></file></text></amf>\n" % (rid.encode(), i, i))
        with open(os.path.join(d, "00last"), "wb") as f:
            f.write(b"%d %d\n" % (ds, ds + 1))
        with open(os.path.join(d, "00notes"), "wb") as f:
            f.write(b'{"event":"renewal","tist":%d,"id":"%s","version":"%d.amf.xml"}\n'
                    % (ds, rid.encode(), ds))


def rebuild_bench(args: argparse.Namespace) -> int:
    n = args.records or 100_000
    home = _home(args)
    try:
        t = time.perf_counter()
        write_store(home, n)
        write_s = time.perf_counter() - t
        runs = []
        # The first pass follows the writing (a cold-ish cache), a second one is warm.
        for _ in range(2 if args.runs > 1 else 1):
            t = time.perf_counter()
            stats = rebuild(home)
            runs.append(time.perf_counter() - t)
        print(f"store: {n} record directories written in {write_s:.0f} s")
        per = runs[-1] / n
        print(f"full rebuild walking the store: {', then '.join(f'{r:.1f} s' for r in runs)} "
              f"({per * 1e6:.0f} us a record); {stats.records} records")
        print(f"at 1 000 000 records, linear: about {per * 1e6 / 60:.1f} min")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def load(args: argparse.Namespace) -> int:
    """C harvesters at once against a real server on loopback, for S seconds."""
    import threading
    import urllib.error
    import urllib.request

    from kiel.oai.server import Background, Limits

    n = args.records or 3000
    home = _home(args)
    try:
        write_store(home, n)
        rebuild(home)
        cfg = create_app(home).config
        changes = {}
        if args.max_requests is not None:
            changes["max_requests"] = args.max_requests
        if args.request_wait is not None:
            changes["request_wait"] = args.request_wait
        cfg = cfg.replace(**changes)
        app = create_app(home, cfg)
        limits = Limits(threads=cfg.max_requests * 3 + 4, connection_limit=cfg.connection_limit,
                        channel_timeout=cfg.channel_timeout,
                        max_request_body=cfg.max_request_body, retry_after=10)
        stop = time.monotonic() + args.seconds
        lock = threading.Lock()
        got = {"ok": 0, "503": 0, "other": 0, "lat": []}

        def harvester(k: int) -> None:
            url = None
            while time.monotonic() < stop:
                q = url or (f"{srv.url}?verb=ListRecords&metadataPrefix=oai_dc"
                            f"&set=RePEc:a{k % 40:02d}")
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(q, timeout=60) as r:
                        body = r.read()
                    kind = "ok"
                except urllib.error.HTTPError as e:
                    body, kind = b"", "503" if e.code == 503 else "other"
                lat = time.perf_counter() - t
                m = re.search(rb">([^<]+)</resumptionToken>", body)
                url = (f"{srv.url}?verb=ListRecords&resumptionToken={m.group(1).decode()}"
                       if m else None)
                with lock:
                    got[kind] += 1
                    got["lat"].append(lat)

        with Background(app, limits) as srv:
            threads = [threading.Thread(target=harvester, args=(k,)) for k in range(args.clients)]
            t0 = time.monotonic()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            took = time.monotonic() - t0
        lat = sorted(got["lat"])
        total = len(lat)
        print(f"{args.clients} harvesters, {took:.0f} s, max_requests={cfg.max_requests}, "
              f"request_wait={cfg.request_wait:g} s, page_size={cfg.page_size}, "
              f"{os.cpu_count()} cores")
        print(f"answers: {got['ok']} 200 ({got['ok'] / took:.1f}/s), {got['503']} 503 "
              f"({100 * got['503'] / max(1, total):.0f} %), {got['other']} other")
        if lat:
            print(f"latency: median {lat[total // 2] * 1000:.0f} ms, "
                  f"p95 {lat[int(total * 0.95)] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
