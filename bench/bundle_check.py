"""How long checking a legitimate deposit bundle takes, and how soon a stop is heard.

    .venv/bin/python bench/bundle_check.py [MEMBERS [MiB_EACH]]

Builds a zip of MEMBERS (default 4) CSV-like members of MiB_EACH (default
256) inflated, deflated at level 1, in a temporary directory; then times
``platforms.digest_file`` (the bundle's own sha256 and sha1) and
``platforms.check_bundle`` (every member inflated and hashed), and a
``check_bundle`` whose ``stop`` turns true after one second. The renewal
runs both on its event loop when a bundle's fetch ends.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import zipfile

from kiel.platforms import check_bundle, digest_file
from kiel.platforms.types import ManifestFile


def build(path: str, members: int, size: int) -> list[ManifestFile]:
    line = b"".join(b"%d,%d,some value %d\n" % (i, i * 7, i % 97) for i in range(20000))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for k in range(members):
            with z.open(f"data/part{k}.csv", "w", force_zip64=True) as m:
                left = size
                while left:
                    piece = line[:left]
                    m.write(piece)
                    left -= len(piece)
    with zipfile.ZipFile(path) as z:
        return [ManifestFile(i.filename, i.file_size, f"https://x.example/{i.filename}")
                for i in z.infolist()]


def main() -> None:
    members = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    size = (int(sys.argv[2]) if len(sys.argv) > 2 else 256) * 2**20
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bundle.zip")
        files = build(path, members, size)
        print(f"bundle of {os.path.getsize(path)} bytes: {members} members of {size} bytes "
              "inflated")
        t = time.perf_counter()
        digest_file(path, ("sha256", "sha1"))
        print(f"  digest_file (sha256, sha1)   {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        check_bundle(path, files, max_total=64 * 2**30)
        print(f"  check_bundle                 {time.perf_counter() - t:.2f} s")
        flag = threading.Event()
        timer = threading.Timer(1.0, flag.set)
        t = time.perf_counter()
        timer.start()
        check_bundle(path, files, max_total=64 * 2**30, stop=flag.is_set)
        print(f"  check_bundle, stop at 1.0 s  returned at {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
