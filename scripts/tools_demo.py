#!/usr/bin/env python3
"""Make the small home of docs/tools.md and print the real output shown there.

Two RePEc records whose URLs point at a server on 127.0.0.1; three renewals
(the record 2 changes before the second, the server is stopped before the
third); then `show`, `report`, a clean `verify --fixity`, the same store
damaged by hand, `verify --fixity` again, `verify --repair`. Run it after a
change to what these commands print, and paste its blocks into docs/tools.md:

    .venv/bin/python scripts/tools_demo.py > /tmp/tools-demo.txt
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = "/tmp/kiel-tools-demo"
PDF = (b"%PDF-1.4\n" + b"%\xe2\xe3\xcf\xd3\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 54
       + b"%%EOF\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/old": (301, "text/html", b"", {"Location": "/new"}),
            "/new": (200, "text/html", (b"<!DOCTYPE html>\n<html><head><title>New</title></head>"
                     b"<body><p>The paper moved here.</p></body></html>\n"), {}),
            "/paper.pdf": (200, "application/pdf", PDF, {}),
        }
        status, ctype, body, extra = routes.get(
            self.path, (404, "text/html", b"<html><body>not here</body></html>\n", {}))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def record(rid: str, title: str, *urls: str) -> str:
    files = "".join(f"<file><url>{u}</url></file>" for u in urls)
    return f'<text id="{rid}"><title>{title}</title>{files}</text>'


def write_input(base: str, title2: str) -> None:
    text = ('<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'
            + record("RePEc:aaa:wpaper:1", "First", f"{base}/old", f"{base}/paper.pdf") + "\n"
            + record("RePEc:aaa:wpaper:2", title2, f"{base}/paper.pdf", f"{base}/gone",
                     "mailto:author@example.org") + "\n</amf>\n")
    with open(os.path.join(WORK, "amf.xml"), "w", encoding="utf-8") as f:
        f.write(text)


def kiel(*args: str, show: bool = True) -> None:
    r = subprocess.run([sys.executable, "-m", "kiel", *args], cwd=WORK, capture_output=True,
                       text=True, check=False, env={**os.environ, "PYTHONPATH": TOP})
    if show:
        print("$ kiel " + " ".join(args))
        print((r.stdout + r.stderr).rstrip("\n"))
        print(f"[exit {r.returncode}]")
    elif r.returncode not in (0, 1):
        sys.exit(r.stderr)


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    kiel("init", "--home", "home", show=False)
    with open(os.path.join(WORK, "home", "etc", "kiel.conf"), "a", encoding="utf-8") as f:
        f.write("contact = mailto:archive@example.org\nallow_networks = 127.0.0.1/32\n"
                "retries = 0\n")
    write_input(base, "Second")
    kiel("renew", "--home", "home", "--quiet", "amf.xml", show=False)
    time.sleep(2.1)
    write_input(base, "Second, revised")
    kiel("renew", "--home", "home", "--quiet", "amf.xml", show=False)
    server.shutdown()
    server.server_close()
    time.sleep(1.1)
    kiel("renew", "--home", "home", "--quiet", "amf.xml", show=False)

    print("```")
    kiel("show", "--home", "home", "RePEc:aaa:wpaper:2")
    kiel("show", "--home", "home", "RePEc:aaa:wpaper:1")
    print("```\n\n```")
    kiel("report", "--home", "home", "--html", "home/var/report.html")
    print("```\n\n```")
    kiel("verify", "--home", "home", "--fixity")
    print("```\n")

    store = os.path.join(WORK, "home", "store", "RePEc", "aaa", "wpaper")
    esc = base.replace(":", "%3A").replace("/", "%2F")
    pdf_dir = os.path.join(store, "1", f"{esc}%2Fpaper.pdf")
    first = min(n for n in os.listdir(pdf_dir) if "_" in n)
    with open(os.path.join(pdf_dir, first), "r+b") as f:  # one bit flipped
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    new_dir = os.path.join(store, "1", f"{esc}%2Fnew")
    os.symlink("/etc/passwd", os.path.join(new_dir, "1795400000_200_text-plain"))
    with open(os.path.join(new_dir, "00notes"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"tist": 1795400001, "url": f"{base}/new"})[:40])  # torn
    # A temporary file a crashed process left (a host and pid of no running process).
    with open(os.path.join(store, "2", ".kiel-tmp-oldhost-4242-5f3a9c0e1b2d"), "wb") as f:
        f.write(b"half")
    with open(os.path.join(store, "1", "00last"), encoding="utf-8") as f:
        start = f.read().split()[0]
    with open(os.path.join(store, "1", "00last"), "w", encoding="utf-8") as f:
        f.write(start + "\n")
    print("```")
    kiel("verify", "--home", "home", "--fixity")
    kiel("verify", "--home", "home", "--repair", "RePEc:aaa:wpaper:2")
    kiel("verify", "--home", "home", "RePEc:aaa:wpaper:2")
    print("```")


if __name__ == "__main__":
    main()
