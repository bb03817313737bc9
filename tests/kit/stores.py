"""Stores written by hand, file by file, as docs/contract.md lays them out.

The readers' tests (show, verify, report) check the tools against the contract
and not against whatever the renewal code happens to write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

from kiel.escape import escape
from kiel.redist import record_path

T0 = 1700000000  # 2023-11-14T22:13:20Z
DAY = 86400

PDF_URL = "http://example.org/paper.pdf"
DEAD_URL = "http://dead.example.net/gone.html"
OLD_URL = "http://example.org/old"
NEW_URL = "http://example.org/new"
DOI_ID = "doi:10.1234/x"
REPEC_ID = "RePEc:aaa:wpaper:1"


def version_bytes(rid: str, title: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">'
            f'<text id="{rid}"><title>{title}</title></text></amf>\n').encode()


def line(path: str, entry: dict, newline: bool = True) -> None:
    with open(path, "ab") as f:
        f.write(json.dumps(entry).encode() + (b"\n" if newline else b""))


class StoreBuilder:
    """Write a store by hand: record directories, versions, objects, attempts."""

    def __init__(self, home: str):
        self.home = home
        self.store = os.path.join(home, "store")
        os.makedirs(self.store, exist_ok=True)

    def record(self, rid: str) -> str:
        d = os.path.join(self.store, record_path(rid))
        os.makedirs(d, exist_ok=True)
        return d

    def version(self, rid: str, tist: int, title: str, end: int | None = None,
                with_sha: bool = True, skipped: list | None = None) -> str:
        d = self.record(rid)
        name = f"{tist}.amf.xml"
        data = version_bytes(rid, title)
        with open(os.path.join(d, name), "xb") as f:
            f.write(data)
        entry = {"event": "renewal", "tist": tist, "end": end or tist + 10, "id": rid,
                 "source": "/input/x.xml:1", "version": name, "current": name,
                 "urls": {}, "skipped": skipped or [], "objects": {}, "errors": []}
        if with_sha:
            entry["version_sha256"] = hashlib.sha256(data).hexdigest()
        line(os.path.join(d, "00notes"), entry)
        with open(os.path.join(d, "00last"), "w") as f:
            f.write(f"{tist} {end or tist + 10}\n")
        return os.path.join(d, name)

    def unchanged(self, rid: str, tist: int, current: str) -> None:
        d = self.record(rid)
        line(os.path.join(d, "00notes"),
             {"event": "renewal", "tist": tist, "end": tist + 10, "id": rid, "version": None,
              "current": current, "urls": {}, "skipped": [], "objects": {}, "errors": []})
        with open(os.path.join(d, "00last"), "w") as f:
            f.write(f"{tist} {tist + 10}\n")

    def object_dir(self, rid: str, url: str) -> str:
        d = os.path.join(self.record(rid), escape(url))
        if not os.path.isdir(d):
            os.makedirs(d)
            with open(os.path.join(d, "00url"), "w") as f:
                f.write(url + "\n")
        return d

    def attempt(self, rid: str, url: str, tist: int, status: str, mtype: str,
                body: bytes = b"", link: str | None = None, location: str | None = None,
                error: str | None = None, file: bool = True, attempt: int = 1) -> str | None:
        """One attempt: its file (regular, or a link to ``link``) and notes line."""
        d = self.object_dir(rid, url)
        name = f"{tist}_{status}_{mtype}" if file else None
        if name and link:
            os.symlink(link, os.path.join(d, name))
        elif name:
            with open(os.path.join(d, name), "xb") as f:
                f.write(body)
        line(os.path.join(d, "00notes"), {
            "tist": tist, "url": url, "status": status, "type": mtype,
            "declared_type": mtype.replace("-", "/", 1), "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest() if file or body else None,
            "sha1": hashlib.sha1(body).hexdigest(), "file": name, "link": link,
            "location": location, "error": error, "elapsed": 0.25, "attempt": attempt,
            "same_as": None})
        return os.path.join(d, name) if name else None


def make_store(home) -> StoreBuilder:
    """A clean store: two records, versions, a link, a shared object, a
    redirect, failures, a retried attempt that left no file, a gone record."""
    b = StoreBuilder(str(home))
    pdf = b"%PDF-1.4 a paper\n"
    b.version(REPEC_ID, T0, "First")
    b.attempt(REPEC_ID, PDF_URL, T0 + 1, "200", "application-pdf", pdf)
    b.attempt(REPEC_ID, DEAD_URL, T0 + 2, "404", "text-html", b"<html>not here</html>")
    b.attempt(REPEC_ID, OLD_URL, T0 + 3, "301", "none", location=NEW_URL)
    b.attempt(REPEC_ID, NEW_URL, T0 + 4, "200", "text-html", b"<html>landing</html>")
    b.version(REPEC_ID, T0 + DAY, "First, revised", skipped=[
        {"branch": "file/url", "value": "mailto:a@example.org",
         "reason": "scheme mailto is not fetched"}])
    b.attempt(REPEC_ID, PDF_URL, T0 + DAY + 1, "200", "application-pdf", pdf,
              link=f"{T0 + 1}_200_application-pdf")
    # A retried timeout leaves a notes line and no file; the retry fails too.
    b.attempt(REPEC_ID, DEAD_URL, T0 + DAY + 2, "000", "none", error="timeout", file=False)
    b.attempt(REPEC_ID, DEAD_URL, T0 + DAY + 5, "000", "none", error="timeout", attempt=2)
    line(os.path.join(b.object_dir(REPEC_ID, DEAD_URL), "00notes"),
         {"event": "given-up", "tist": T0 + DAY + 6})
    b.attempt(REPEC_ID, OLD_URL, T0 + DAY + 3, "301", "none", location=NEW_URL)
    b.attempt(REPEC_ID, NEW_URL, T0 + DAY + 4, "200", "text-html", b"<html>landing 2</html>")

    # The same PDF linked from another record: a link into the first one.
    b.version(DOI_ID, T0 + DAY, "Other", with_sha=False)
    b.attempt(DOI_ID, PDF_URL, T0 + DAY + 7, "200", "application-pdf", pdf,
              link=f"../../../{record_path(REPEC_ID)}/{escape(PDF_URL)}/"
                   f"{T0 + 1}_200_application-pdf")
    with open(os.path.join(b.record(DOI_ID), "00gone"), "w") as f:
        f.write(f"{T0 + 2 * DAY}\n")
    return b


def grown_store(path: object, n: int) -> str:
    """``n`` records, twenty to a series, so no one directory grows with n."""
    b = StoreBuilder(str(path))
    for i in range(n):
        rid = f"RePEc:aaa:s{i // 20}:{i}"
        b.version(rid, T0, f"T{i}")
        url = f"http://h{i % 7}.example.org/{i}"
        b.attempt(rid, url, T0 + 1, "200", "text-html", b"body %d" % i)
        b.attempt(rid, url, T0 + DAY, "200", "text-html", b"body %d" % i,
                  link=f"{T0 + 1}_200_text-html")
        b.attempt(rid, url, T0 + 2 * DAY, "000", "none", error="timeout")
    return str(path)


def peak_bytes(fn: Callable[[], object], times: int = 3) -> int:
    """The lowest peak of ``times`` runs of ``fn``, measured by tracemalloc
    in a forked child: the child has the calling thread alone, so the
    threads an earlier test left running (servers, timers) add nothing."""
    import tracemalloc

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, send the peak, leave without cleanup
        status = 1
        try:
            os.close(read)
            fn()  # imports and caches first, so only the walk is measured
            peaks = []
            for _ in range(times):
                tracemalloc.start()
                try:
                    fn()
                    peaks.append(tracemalloc.get_traced_memory()[1])
                finally:
                    tracemalloc.stop()
            os.write(write, str(min(peaks)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and answer, f"the measuring child failed (wait status {status})"
    return int(answer)
