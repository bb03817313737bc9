"""A synthetic, RePEc-like collection for the benchmarks of issue 6.

``plan()`` decides everything (records, URLs, hosts, sizes, which URLs are
shared, answer 404 or redirect) from a seed and touches no disk;
``write()`` turns a plan into files:

- ``amf/RePEc/<aaa>/<ssssss>/<n>.amf.xml``: several ``text`` nouns per file,
  ids ``RePEc:aaa:ssssss:item``, each with ``displaypage`` and
  ``file/url`` + ``file/format``;
- ``www/``: the document root served by nginx and by ``delay_server.py``
  (a 404 is simply a missing file; a redirect is listed in
  ``redirects.map`` for nginx and ``redirects.json`` for the delay server);
- ``urls.txt``: the distinct URLs of the records, in record order (the
  input of wget and curl);
- ``manifest.json``: the counts the harness reports against, written last,
  so a directory without it is an unfinished generation.

The proportions are exact counts, not coin flips, so that small
collections hit them as well as large ones: of the distinct URLs, 10 % are
referenced by two records, 5 % answer 404, 3 % redirect once to a URL that
answers 200 (the redirect target is not in ``urls.txt``; clients reach it
by following the redirect, Kiel by storing it as its own object).

Run as a script: ``python bench/generate.py OUT --records N [--seed S]
[--port P] [--no-bodies]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
from dataclasses import asdict, dataclass

HOSTS = 32
TEXTS_PER_FILE = 40
RECORDS_PER_SERIES = 400
SHARED_FRACTION = 0.10
NOT_FOUND_FRACTION = 0.05
REDIRECT_FRACTION = 0.03
HTML_SIZE = (28_000, 32_000)
PDF_SIZE = (20_000, 2_000_000)
# PDF-like bodies are slices of one random block, each behind its own header
# line, so generating gigabytes costs one block of randomness, and every
# body still has its own sha256.
BLOCK_SIZE = 4 * 1024 * 1024
AMF_NS = "http://amf.openlib.org"


@dataclass(frozen=True)
class Obj:
    url: str
    path: str  # the URL's path, also the file's place under www/
    kind: str  # "html" or "pdf"
    status: int  # 200, 404 or 301
    size: int  # body bytes for 200; for 301 the size of the target's body
    target: str | None = None  # the 301's Location (absolute URL)
    target_path: str | None = None


@dataclass(frozen=True)
class Record:
    id: str
    archive: str
    series: str
    title: str
    displaypage: str
    file_url: str


@dataclass(frozen=True)
class Plan:
    seed: int
    port: int
    records: tuple[Record, ...]
    objects: tuple[Obj, ...]  # the distinct URLs of the records, in first-use order


@dataclass(frozen=True)
class Manifest:
    seed: int
    port: int
    records: int
    amf_files: int
    url_slots: int  # 2 per record
    distinct_urls: int  # lines of urls.txt
    shared_urls: int  # distinct URLs referenced by more than one record
    not_found: int
    redirects: int
    requests: int  # a full cold fetch: distinct URLs + redirect targets
    bodies_200: int  # answers 200 in a full fetch (targets included)
    body_bytes: int  # sum of the 200 bodies
    www_bytes: int  # bytes written under www/ (0 with --no-bodies)
    digest: str  # sha256 over the plan, to compare two generations


def _code(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def _host(rng: random.Random, port: int) -> str:
    return f"127.0.0.{rng.randint(1, HOSTS)}:{port}"


def plan(n_records: int, seed: int = 1, port: int = 18480) -> Plan:
    """Decide the whole collection from ``seed``; no disk access."""
    rng = random.Random(seed)
    n_series = max(1, math.ceil(n_records / RECORDS_PER_SERIES))
    archives = sorted({_code(rng, 3) for _ in range(max(1, n_series // 3 + 1))})
    series: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(series) < n_series:
        # Half the series carry the usual RePEc names, half random codes.
        name = (rng.choice(("wpaper", "journl", "chapte", "dpaper")) if rng.random() < 0.5
                else _code(rng, 6))
        pair = (rng.choice(archives), name)
        if pair not in seen:
            seen.add(pair)
            series.append(pair)

    # One fresh URL per slot (display page, full text) of every record.
    slot: list[list[str]] = []
    fresh: dict[str, tuple[str, str]] = {}  # url -> (path, kind)
    records_meta = []
    for i in range(n_records):
        archive, ser = series[i // RECORDS_PER_SERIES]
        year = 1990 + rng.randrange(35)
        # Item parts are free-form in RePEc; some carry colons.
        item = f"{year}-{i}" if rng.random() < 0.8 else f"v:{rng.randrange(1, 60)}:y:{year}:i:{i}"
        records_meta.append((f"RePEc:{archive}:{ser}:{item}", archive, ser))
        urls = []
        for kind, ext in (("html", "html"), ("pdf", "pdf")):
            path = f"/{kind[0]}/{archive}/{ser}/{i}.{ext}"
            url = f"http://{_host(rng, port)}{path}"
            fresh[url] = (path, kind)
            urls.append(url)
        slot.append(urls)

    # Sharing: pair slots of the same kind in different records and let the
    # second use the first's URL. With R pairs out of S slots there are S - R
    # distinct URLs, R of them shared, so R = S / 11 gives 10 % shared.
    for k in (0, 1):
        order = list(range(n_records))
        rng.shuffle(order)
        pairs = round(n_records * SHARED_FRACTION / (1 + SHARED_FRACTION))
        for t in range(min(pairs, n_records // 2)):
            a, b = order[2 * t], order[2 * t + 1]
            slot[b][k] = slot[a][k]

    distinct: list[str] = []
    used: set[str] = set()
    for urls in slot:
        for u in urls:
            if u not in used:
                used.add(u)
                distinct.append(u)
    order = list(range(len(distinct)))
    rng.shuffle(order)
    n404 = round(len(distinct) * NOT_FOUND_FRACTION)
    n301 = round(len(distinct) * REDIRECT_FRACTION)
    status = {}
    for j, idx in enumerate(order):
        status[distinct[idx]] = 404 if j < n404 else 301 if j < n404 + n301 else 200

    objects = []
    for u in distinct:
        path, kind = fresh[u]
        size = (rng.randint(*HTML_SIZE) if kind == "html"
                else int(math.exp(rng.uniform(math.log(PDF_SIZE[0]), math.log(PDF_SIZE[1])))))
        st = status[u]
        if st == 301:
            tpath = "/r" + path
            objects.append(Obj(u, path, kind, 301, size, f"http://{_host(rng, port)}{tpath}",
                               tpath))
        else:
            objects.append(Obj(u, path, kind, st, size))

    records = tuple(
        Record(rid, archive, ser, f"Synthetic paper {i} of {archive}:{ser}", urls[0], urls[1])
        for i, ((rid, archive, ser), urls) in enumerate(zip(records_meta, slot, strict=False))
    )
    return Plan(seed, port, records, tuple(objects))


def _amf_text(r: Record) -> str:
    return (
        f'  <text id="{r.id}">\n'
        f"    <title>{r.title}</title>\n"
        f"    <hasauthor><person><name>Author {r.id.rsplit(':', 1)[-1]}</name></person>"
        "</hasauthor>\n"
        f"    <displaypage>{r.displaypage}</displaypage>\n"
        f"    <file>\n      <url>{r.file_url}</url>\n"
        f"      <format>application/pdf</format>\n    </file>\n"
        f"  </text>\n"
    )


def amf_files(p: Plan) -> dict[str, str]:
    """Relative path under ``amf/`` -> file text."""
    out: dict[str, str] = {}
    by_series: dict[tuple[str, str], list[Record]] = {}
    for r in p.records:
        by_series.setdefault((r.archive, r.series), []).append(r)
    for (archive, ser), recs in by_series.items():
        for k in range(0, len(recs), TEXTS_PER_FILE):
            body = "".join(_amf_text(r) for r in recs[k:k + TEXTS_PER_FILE])
            name = f"RePEc/{archive}/{ser}/{ser}{k // TEXTS_PER_FILE:04d}.amf.xml"
            out[name] = (f'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="{AMF_NS}">\n'
                         f"{body}</amf>\n")
    return out


_LOREM = (b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
          b"tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, "
          b"quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.</p>\n")


def html_body(url: str, size: int) -> bytes:
    head = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{url}</title></head>\n<body><h1>{url}</h1>\n").encode()
    tail = b"</body></html>\n"
    fill = size - len(head) - len(tail)
    body = (_LOREM * (fill // len(_LOREM) + 1))[:max(fill, 0)]
    return head + body + tail


def pdf_body(url: str, size: int, block: bytes, offset: int) -> bytes:
    head = f"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n% {url}\n".encode("latin-1")
    tail = b"\n%%EOF\n"
    fill = max(size - len(head) - len(tail), 0)
    return head + block[offset:offset + fill] + tail


def _digest(p: Plan) -> str:
    h = hashlib.sha256()
    for r in p.records:
        h.update(repr(r).encode())
    for o in p.objects:
        h.update(repr(o).encode())
    return h.hexdigest()


def manifest(p: Plan, n_files: int, www_bytes: int) -> Manifest:
    refs: dict[str, int] = {}
    for r in p.records:
        for u in (r.displaypage, r.file_url):
            refs[u] = refs.get(u, 0) + 1
    ok = [o for o in p.objects if o.status in (200, 301)]
    n301 = sum(o.status == 301 for o in p.objects)
    return Manifest(
        seed=p.seed, port=p.port, records=len(p.records), amf_files=n_files,
        url_slots=2 * len(p.records), distinct_urls=len(p.objects),
        shared_urls=sum(1 for c in refs.values() if c > 1),
        not_found=sum(o.status == 404 for o in p.objects), redirects=n301,
        requests=len(p.objects) + n301, bodies_200=len(ok),
        body_bytes=sum(_body_size(o) for o in ok), www_bytes=www_bytes, digest=_digest(p),
    )


def _body_size(o: Obj) -> int:
    # html_body and pdf_body pad to exactly o.size: the smallest size
    # (20 000) is far above their fixed head and tail.
    return o.size


def _write(path: str, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
        f.write(data)


def write(p: Plan, out: str, bodies: bool = True) -> Manifest:
    """Write the collection of ``p`` under ``out`` (see module doc)."""
    os.makedirs(out, exist_ok=True)
    mpath = os.path.join(out, "manifest.json")
    if os.path.exists(mpath):
        os.unlink(mpath)
    files = amf_files(p)
    for name, text in files.items():
        _write(os.path.join(out, "amf", name), text)
    with open(os.path.join(out, "urls.txt"), "w", encoding="utf-8") as f:
        f.writelines(o.url + "\n" for o in p.objects)
    redirects = {o.path: o.target for o in p.objects if o.status == 301}
    with open(os.path.join(out, "redirects.json"), "w", encoding="utf-8") as f:
        json.dump(redirects, f, indent=0, sort_keys=True)
    with open(os.path.join(out, "redirects.map"), "w", encoding="utf-8") as f:
        f.writelines(f"{k} {v};\n" for k, v in sorted(redirects.items()))
    www_bytes = 0
    if bodies:
        block_rng = random.Random(p.seed ^ 0x5EED)
        block = block_rng.randbytes(BLOCK_SIZE)
        for o in p.objects:
            if o.status == 404:
                continue
            path = o.target_path if o.status == 301 else o.path
            url = o.target if o.status == 301 else o.url
            assert path is not None and url is not None
            if o.kind == "html":
                data = html_body(url, o.size)
            else:
                offset = block_rng.randrange(0, BLOCK_SIZE - PDF_SIZE[1])
                data = pdf_body(url, o.size, block, offset)
            _write(os.path.join(out, "www", path.lstrip("/")), data)
            www_bytes += len(data)
    else:
        os.makedirs(os.path.join(out, "www"), exist_ok=True)
    m = manifest(p, len(files), www_bytes)
    with open(mpath + ".tmp", "w", encoding="utf-8") as f:
        json.dump(asdict(m), f, indent=1)
    os.replace(mpath + ".tmp", mpath)
    return m


def load_manifest(out: str) -> Manifest | None:
    try:
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            return Manifest(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--no-bodies", action="store_true", help="records and URL lists only")
    a = ap.parse_args(argv)
    m = write(plan(a.records, a.seed, a.port), a.out, bodies=not a.no_bodies)
    json.dump(asdict(m), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
