"""CPU per object of the HTTP path alone: Kiel's Fetcher (h11 on the loop,
guard, sha256, sha1, libmagic) against httpx.AsyncClient and httpx.Client in
16 threads (raw bodies to a file, no hashes, no sniff), same URLs, 16 at a
time. Usage: http_path.py PORT URLS_FILE kiel|httpx-async|httpx-threads
(the URLs of a bench collection, served on PORT; see docs/dependencies.md)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from kiel import netguard
from kiel.fetch import Fetcher, Limits

PARALLEL = 16


def main() -> None:
    port, url_file, which = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(url_file) as f:
        urls = [u.strip().replace(":18480/", f":{port}/") for u in f]
    tmp = tempfile.mkdtemp()
    policy = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),))

    async def kiel_loop() -> None:
        f = Fetcher(Limits(), guard=policy, threads=PARALLEL)
        q: asyncio.Queue[str] = asyncio.Queue()
        for u in urls:
            q.put_nowait(u)

        async def worker() -> None:
            while not q.empty():
                r = await f.afetch(q.get_nowait(), tmp)
                if r.tmp_path:
                    os.unlink(r.tmp_path)

        await asyncio.gather(*[worker() for _ in range(PARALLEL)])
        await f.aclose()

    async def httpx_async() -> None:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as c:
            q: asyncio.Queue[str] = asyncio.Queue()
            for u in urls:
                q.put_nowait(u)

            async def worker() -> None:
                while not q.empty():
                    async with c.stream("GET", q.get_nowait()) as r:
                        path = os.path.join(tmp, f"x{id(r)}")
                        with open(path, "wb") as fh:
                            async for b in r.aiter_raw():
                                fh.write(b)
                        os.unlink(path)

            await asyncio.gather(*[worker() for _ in range(PARALLEL)])

    def httpx_threads() -> None:
        local = threading.local()

        def one(u: str) -> None:
            c = getattr(local, "c", None) or httpx.Client()
            local.c = c
            with c.stream("GET", u) as r:
                path = os.path.join(tmp, f"x{threading.get_ident()}")
                with open(path, "wb") as fh:
                    for b in r.iter_raw():
                        fh.write(b)
                os.unlink(path)

        with ThreadPoolExecutor(PARALLEL) as ex:
            list(ex.map(one, urls))

    t0, c0 = time.perf_counter(), time.process_time()
    if which == "kiel":
        asyncio.run(kiel_loop())
    elif which == "httpx-async":
        asyncio.run(httpx_async())
    else:
        httpx_threads()
    w, c = time.perf_counter() - t0, time.process_time() - c0
    print(f"{which:13} {len(urls)} objects  wall {w:6.2f} s  CPU {c:6.2f} s  "
          f"{c * 1000 / len(urls):.3f} ms CPU/object")


if __name__ == "__main__":
    main()
