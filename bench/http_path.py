"""CPU per object of the HTTP path alone: Kiel's Fetcher (h11 on the loop,
guard, sha256, sha1, libmagic) against httpx.AsyncClient and httpx.Client in
16 threads (raw bodies to a file, no hashes, no sniff), same URLs, 16 at a
time. Usage: http_path.py PORT URLS_FILE kiel|httpx-async|httpx-threads
(the URLs of a bench collection, served on PORT; see docs/dependencies.md)."""
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

port = sys.argv[1]
urls = [u.strip().replace(":18480/", f":{port}/") for u in open(sys.argv[2])]
which = sys.argv[3]
tmp = tempfile.mkdtemp()
policy = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),))

async def kiel_loop():
    f = Fetcher(Limits(), guard=policy, threads=16)
    q = asyncio.Queue()
    for u in urls: q.put_nowait(u)
    async def w():
        while not q.empty():
            u = q.get_nowait()
            r = await f.afetch(u, tmp)
            if r.tmp_path: os.unlink(r.tmp_path)
    await asyncio.gather(*[w() for _ in range(16)])
    await f.aclose()

async def httpx_async():
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as c:
        q = asyncio.Queue()
        for u in urls: q.put_nowait(u)
        async def w():
            while not q.empty():
                u = q.get_nowait()
                async with c.stream("GET", u) as r:
                    with open(os.path.join(tmp, "x%d" % id(r)), "wb") as fh:
                        async for b in r.aiter_raw(): fh.write(b)
                    os.unlink(fh.name)
        await asyncio.gather(*[w() for _ in range(16)])

def httpx_threads():
    local = threading.local()
    def one(u):
        c = getattr(local, "c", None) or httpx.Client()
        local.c = c
        with c.stream("GET", u) as r:
            with open(os.path.join(tmp, "x%d" % threading.get_ident()), "wb") as fh:
                for b in r.iter_raw(): fh.write(b)
            os.unlink(fh.name)
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(one, urls))

t0, c0 = time.perf_counter(), time.process_time()
if which == "kiel": asyncio.run(kiel_loop())
elif which == "httpx-async": asyncio.run(httpx_async())
else: httpx_threads()
w, c = time.perf_counter() - t0, time.process_time() - c0
print(f"{which:12} {len(urls)} objects  wall {w:6.2f} s  CPU {c:6.2f} s  {c*1000/len(urls):.3f} ms CPU/object")
