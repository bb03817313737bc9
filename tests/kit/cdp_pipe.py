"""Headless Chromium driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages ended by NUL on fds 3 and 4),
so no WebSocket library is needed; and a static file server on 127.0.0.1
that answers range requests, as ReplayWeb.page reads a WACZ by ranges."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TYPES = {".js": "application/javascript", ".html": "text/html", ".wacz": "application/zip",
         ".json": "application/json"}


class Files:
    """Serve ``routes`` (URL path -> file path or bytes) and every file under
    ``mounts`` (URL prefix -> directory) on 127.0.0.1, with byte ranges."""

    def __init__(self, routes: dict[str, str | bytes], mounts: dict[str, str]):
        self.routes = routes
        self.mounts = {k: os.path.realpath(v) for k, v in mounts.items()}
        self.requests: list[str] = []
        files = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                files.requests.append(self.requestline)

            def do_HEAD(self) -> None:
                self.answer(head=True)

            def do_GET(self) -> None:
                self.answer(head=False)

            def answer(self, head: bool) -> None:
                found = files.find(self.path.split("?", 1)[0])
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name, data = found
                size = len(data)
                start, end, status = 0, size - 1, 200
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
                if m and size:
                    status = 206
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    else:
                        start = max(0, size - int(m.group(2)))
                self.send_response(status)
                self.send_header("Content-Type", TYPES.get(os.path.splitext(name)[1],
                                                           "application/octet-stream"))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:end + 1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def find(self, path: str) -> tuple[str, bytes] | None:
        if path in self.routes:
            v = self.routes[path]
            if isinstance(v, bytes):
                # bytes without a file name extension are the HTML page
                return (path if os.path.splitext(path)[1] else "/index.html"), v
            with open(v, "rb") as f:
                return v, f.read()
        for prefix, root in self.mounts.items():
            if path.startswith(prefix):
                full = os.path.realpath(os.path.join(root, path[len(prefix):] or "index.html"))
                if full.startswith(root + os.sep) and os.path.isfile(full):
                    with open(full, "rb") as f:
                        return full, f.read()
        return None

    def __enter__(self) -> Files:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """One Chromium, one page, commands answered in order."""

    def __init__(self, chromium: str, user_data: str, url: str, log_path: str):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds() -> None:  # the child reads commands on 3, writes answers on 4
            # Out of the way first: either end may itself be fd 3 or 4, and a
            # dup2 onto itself would leave it close-on-exec.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = open(log_path, "wb")  # noqa: SIM115  # closed in close()
        self.proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={user_data}", "--remote-debugging-pipe",
             "--window-size=1000,700", url],
            preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": page["targetId"], "flatten": True})["sessionId"]

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                ready, _, _ = select.select([self._out_r], [], [], 60)
                if not ready:
                    raise TimeoutError(f"chromium did not answer {method} within 60 s")
                chunk = os.read(self._out_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]  # type: ignore[no-any-return]

    def evaluate(self, expression: str, wait: bool = False) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": wait}, self.session)
        return r["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], seconds: float) -> Any:
        """Evaluate until ``done`` holds for the value, at most ``seconds``."""
        from kit.servers import wait_until

        seen: list[Any] = [None]

        def rendered() -> bool:
            seen[0] = self.evaluate(expression)
            return done(seen[0])

        # The page renders on its own clock: asked again after a frame or so.
        wait_until(rendered, seconds, every=0.2)
        return seen[0]

    def screenshot(self) -> bytes:
        import base64

        shot = self.send("Page.captureScreenshot", {"format": "png"}, self.session)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)
        self.log.close()


# Every text the page shows, through shadow roots and same-origin frames.
ALL_TEXT = r"""(() => { const out = [];
  function walk(root) { for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) walk(el.shadowRoot);
    if (el.tagName === 'IFRAME') { try { const d = el.contentDocument;
      if (d && d.body) { out.push(d.body.innerText); walk(d); } } catch (e) {} } } }
  walk(document); return out.join('\n'); })()"""
