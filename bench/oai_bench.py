"""OAI-PMH list pages at depth: is a page deep in the list as cheap as the first?

Writes a synthetic index of N records (default 1 000 000) into a temporary
home with the real index writer, then times ``ListIdentifiers`` pages through
the WSGI application (no network): the first page, and the page at depth
900 000 reached with a real resumption token, for the whole repository and
for one set. Prints the medians; exit status 1 when a target is missed:
the deep page at most 1.5 times the first, and every page under 50 ms.

    python bench/oai_bench.py
    python bench/oai_bench.py --records 200000 --depth 150000 --runs 50
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time

from kiel.oai import create_app
from kiel.oai.index import Entry, open_current, write_index
from kiel.oai.token import ListPosition
from kiel.redist import record_sets

T0 = 1_600_000_000


def synthetic(n: int):
    """RePEc-like records: 40 archives of 25 series, 1 in 100 deleted.

    Emitted in store order (by id), not datestamp order, so the build does
    the real external sort; about 10 records share each datestamp.
    """
    for i in range(n):
        archive, series = "a%02d" % (i % 40), "s%02d" % (i // 40 % 25)
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--depth", type=int, default=900_000)
    p.add_argument("--runs", type=int, default=101)
    p.add_argument("--keep", metavar="DIR", help="build the home here and keep it")
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
