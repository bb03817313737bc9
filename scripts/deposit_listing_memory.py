#!/usr/bin/env python3
"""Memory of one deposit's paged listing, under a limit on the address space.

    .venv/bin/python scripts/deposit_listing_memory.py PAGES MB_PER_PAGE GIB_LIMIT

e.g. ``20 45 1.5``: a local server answers an OSF Storage listing of PAGES
pages of MB_PER_PAGE MB each; one ``kiel.renewal.deposits.Deposit`` walks
it as the engine would (each answer a real body in a real file) under
``RLIMIT_AS`` of GIB_LIMIT GiB. Prints the pages asked, the time, the peak
resident size and the deposit's outcome (docs/hardening.md, Deposits).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kiel import notes
from kiel.platforms import Limits, match
from kiel.renewal.deposits import Deposit


def main() -> None:
    pages, mb, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    pad = "x" * (mb * 1000 * 1000)

    def page(n: int) -> bytes:
        nxt = (f"https://api.osf.io/v2/nodes/abcde/files/osfstorage/?page={n + 1}"
               if n < pages else None)
        data = [{"id": f"f{n}-{i}", "type": "files",
                 "attributes": {"kind": "file", "name": f"f{n}-{i}.csv", "size": 4,
                                "materialized_path": f"/f{n}-{i}.csv", "extra": {"hashes": {}}},
                 "links": {"download": f"https://osf.io/download/f{n}-{i}/"}}
                for i in range(10)]
        return json.dumps({"data": data, "links": {"next": nxt},
                           "meta": {"padding": pad}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            body = page(n)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resource.setrlimit(resource.RLIMIT_AS, (int(limit * 2**30),) * 2)
    tmp = tempfile.mkdtemp()
    rdir = os.path.join(tmp, "record")
    os.mkdir(rdir)
    queue: list[tuple[str, str]] = []

    def enqueue(_rec: Any, target: Any, _dep: Any, role: str, _accept: Any) -> bool:
        queue.append((target.fetch, role))
        return True

    ref = match("https://osf.io/abcde/")
    assert ref is not None
    record: Any = type("Record", (), {"dir": rdir})()
    d = Deposit(record, ref, Limits(), time.strftime("%Y-%m-%d"), enqueue,
                lambda: int(time.time()))
    t0 = time.time()
    asked = 0
    outcome: Any = "no note"
    try:
        d.begin()
        while queue:
            url, role = queue.pop(0)
            if role != "api":
                break  # the listing is resolved: files are not the measure
            parts = urlsplit(url)
            c = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
            c.request("GET", f"{parts.path}?{parts.query}")
            body = c.getresponse().read()
            c.close()
            asked += 1
            path = os.path.join(tmp, "body")
            with open(path, "wb") as f:
                f.write(body)
            del body
            note: Any = type("Note", (), {"status": "200"})
            written: Any = type("Written", (), {"name": "body", "link": None, "real": path,
                                                "note": note})
            d.answered(url, written, "200", None)
        lines = [e for e in notes.entries(os.path.join(rdir, "00notes"))
                 if e.get("event") == "manifest"]
        if lines:
            outcome = lines[-1]["failure"] or f"manifest, {lines[-1]['strategy']}"
        elif d.manifest is not None:
            outcome = f"manifest of {d.manifest.file_count} files resolved"
    except MemoryError:
        outcome = "MemoryError"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"pages asked {asked}, {time.time() - t0:.1f} s, peak resident {rss} MiB, "
          f"outcome {outcome}")


if __name__ == "__main__":
    main()
