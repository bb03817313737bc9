"""The demo behind scripts/demo (see there)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIEL = [sys.executable, "-m", "kiel"]


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus one redirect, as real servers have them."""

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/moved/"):
            self.send_response(301)
            self.send_header("Location", "/papers/" + self.path.rsplit("/", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def sh(*cmd: str) -> None:
    print("$ " + " ".join(c if " " not in c else repr(c) for c in cmd), flush=True)
    r = subprocess.run(cmd, cwd=TOP)
    if r.returncode not in (0, 1):
        sys.exit(r.returncode)


def main() -> None:
    keep = "--keep" in sys.argv
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=os.path.join(TOP, "samples/demo/www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    work = tempfile.mkdtemp(prefix="kiel-demo-")
    home = os.path.join(work, "home")
    inputs = os.path.join(work, "amf")
    os.makedirs(inputs)
    with open(os.path.join(TOP, "samples/demo/records.amf.xml.in"), encoding="utf-8") as f:
        records = f.read().replace("@BASE@", base)
    with open(os.path.join(inputs, "demo.amf.xml"), "w", encoding="utf-8") as f:
        f.write(records)
    # The real public samples too: their links point at hosts this machine
    # may not reach, which Kiel records as 000 attempts.
    shutil.copytree(os.path.join(TOP, "samples/amf"), os.path.join(inputs, "public"))
    print(f"Serving samples/demo/www at {base}; home {home}\n", flush=True)
    sh(*KIEL, "init", "--home", home)
    with open(os.path.join(home, "etc", "kiel.conf"), "a", encoding="utf-8") as f:
        f.write("contact = mailto:archive@example.org\n"
                "# the demo serves its objects on loopback, denied by default\n"
                "allow_networks = 127.0.0.1/32\nretries = 0\nconnect_timeout = 3\n"
                "# one fetch at a time, in one process: which failures of an\n"
                "# unreachable host come before its host-down verdict is then\n"
                "# the same on every run\n"
                "concurrency = 1\nprocesses = 1\n")
    print("\n--- first renewal: every record is virgin ---", flush=True)
    sh(*KIEL, "renew", "--home", home, "--no-progress", inputs)
    time.sleep(1.1)  # a new second, so the second renewal gets new tists
    print("\n--- second renewal: nothing changed, unchanged bodies become links ---", flush=True)
    sh(*KIEL, "renew", "--home", home, "--no-progress", inputs)
    print("\n--- the store ---", flush=True)
    subprocess.run(["ls", "-lR", "--time-style=+", os.path.join(home, "store", "RePEc", "kie")])
    server.shutdown()
    if keep:
        print(f"\nThe home is kept at {home}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
