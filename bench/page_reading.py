"""What reading a landing page costs, on the loop and off it (docs/discovery.md).

    .venv/bin/python bench/page_reading.py

Prints, for the HTML fixtures of tests/fixtures: the time of
``discovery.read_page`` on each page (best of several rounds), and of
``discovery.read_page_off_loop`` on the same pages stored as files (the
thread hand-off the renewal uses); then, for one page that costs seconds
inside every byte budget, the longest the event loop waited for its turn
while that page was read off it, and how soon a cancellation came back.
"""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile
import time

from kiel import discovery

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
URL = "https://j.example.org/a/1"
ROUNDS = 7


def fixtures() -> list[bytes]:
    names = sorted(glob.glob(os.path.join(ROOT, "**", "*.htm*"), recursive=True))
    out = []
    for n in names:
        with open(n, "rb") as f:
            out.append(f.read())
    return out


def slow_page() -> bytes:
    media = b",".join([b'"x.pdf"'] * 450_000)
    return (b'<html><head><meta name="citation_pdf_url" content="x.pdf">'
            b'<script type="application/ld+json">{"@type": "ScholarlyArticle", "encoding": ['
            + media + b"]}</script></head><body></body></html>")


def on_loop(pages: list[bytes], reps: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(reps):
            for p in pages:
                discovery.read_page(p, URL, "text/html")
        best = min(best, (time.perf_counter() - t) / reps / len(pages))
    return best


async def off_loop(paths: list[str], reps: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(reps):
            for p in paths:
                await discovery.read_page_off_loop(p, URL, "text/html")
        best = min(best, (time.perf_counter() - t) / reps / len(paths))
    return best


async def lag_while_reading(path: str) -> tuple[float, float, float]:
    """(seconds to read, longest loop lag meanwhile, seconds from cancel to return)."""
    loop = asyncio.get_running_loop()
    lag = 0.0
    reading = asyncio.ensure_future(discovery.read_page_off_loop(path, URL, "text/html"))
    t0 = loop.time()
    while not reading.done():
        t = loop.time()
        await asyncio.sleep(0.01)
        lag = max(lag, loop.time() - t - 0.01)
    took = loop.time() - t0
    reading = asyncio.ensure_future(discovery.read_page_off_loop(path, URL, "text/html"))
    await asyncio.sleep(0.5)
    t = loop.time()
    reading.cancel()
    r = await reading
    assert r.given_up == discovery.STOPPED
    return took, lag, loop.time() - t


def main() -> None:
    pages = fixtures()
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, p in enumerate(pages):
            path = os.path.join(d, f"{i}.html")
            with open(path, "wb") as f:
                f.write(p)
            paths.append(path)
        slow = os.path.join(d, "slow.html")
        with open(slow, "wb") as f:
            f.write(slow_page())
        direct = on_loop(pages, 50)
        handed = asyncio.run(off_loop(paths, 50))
        print(f"{len(pages)} fixture pages, {sum(map(len, pages))} bytes:")
        print(f"  read_page           {direct * 1e3:.3f} ms a page")
        print(f"  read_page_off_loop  {handed * 1e3:.3f} ms a page (file read, thread, hand-off)")
        took, lag, back = asyncio.run(lag_while_reading(slow))
        print(f"slow page ({len(slow_page())} bytes): read off the loop in {took:.2f} s; "
              f"longest loop lag meanwhile {lag * 1e3:.1f} ms; cancelled, back in "
              f"{back * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
