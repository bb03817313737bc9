"""Shared fixtures: a fresh home, AMF input files, a controllable clock.

Fetching is tested against real HTTP servers on 127.0.0.1
(pytest-httpserver), never against mocked transports.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kiel import home as home_mod
from kiel import renewal, store

AMF_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'

# Test homes allow loopback (denied by default) and keep retries short. Their
# collections are tiny, so one record gone is a large share: the tests of the
# share itself set gone_max_share back.
TEST_SETTINGS = """
contact = mailto:tests@example.org
gone_max_share = 100%
allow_networks = 127.0.0.0/8, ::1/128
retries = 0
retry_delay = 0.05
connect_timeout = 3
read_timeout = 3
total_timeout = 10
"""


class Clock:
    """A clock the test moves: whole stores become comparable."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float = 100.0) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_home(path: Path, extra: str = "") -> Path:
    """A home made as an operator makes one (``kiel init``), set up for tests."""
    subprocess.run([sys.executable, "-m", "kiel", "init", "--home", str(path)], check=True,
                   capture_output=True)
    with open(path / "etc" / "kiel.conf", "a", encoding="utf-8") as f:
        f.write(TEST_SETTINGS + extra)
    return path


@pytest.fixture
def home(tmp_path: Path) -> home_mod.Home:
    h = home_mod.Home(str(tmp_path / "home"))
    home_mod.init(h)
    with open(h.conf, "a", encoding="utf-8") as f:
        f.write(TEST_SETTINGS)
    return h


def set_config(h: home_mod.Home, **values: object) -> None:
    with open(h.conf, "a", encoding="utf-8") as f:
        for k, v in values.items():
            f.write(f"{k} = {v}\n")


def text(rid: str | None, *urls: str, display: str | None = None, extra: str = "") -> str:
    """One AMF text noun with a displaypage and file/url children."""
    idattr = f' id="{rid}"' if rid is not None else ""
    parts = [f"<text{idattr}><title>Title of {rid}</title>{extra}"]
    if display:
        parts.append(f"<displaypage>{display}</displaypage>")
    for u in urls:
        parts.append(f"<file><url>{u}</url><format>application/pdf</format></file>")
    parts.append("</text>")
    return "".join(parts)


def write_amf(path: Path, *texts: str, gz: bool = False) -> Path:
    data = (AMF_HEAD + "\n".join(texts) + "\n</amf>\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def run(h: home_mod.Home, *inputs: Path | str, clock: Clock | None = None, **opts):
    return renewal.renew(h, renewal.Options(inputs=tuple(str(p) for p in inputs),
                                            clock=clock or Clock(), **opts))


def record_dir(h: home_mod.Home, rid: str) -> Path:
    from kiel.redist import record_path

    return Path(h.store) / record_path(rid)


def object_dir(h: home_mod.Home, rid: str, url: str) -> Path:
    from kiel.escape import escape

    return record_dir(h, rid) / escape(url)


def attempts(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if store.parse_attempt(n))


@pytest.fixture
def ftp_server(tmp_path):
    """A real FTP server on 127.0.0.1 serving /pub/paper.pdf to anonymous
    and to user:secret."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import ThreadedFTPServer

    root = tmp_path / "ftproot"
    (root / "pub").mkdir(parents=True)
    (root / "pub" / "paper.pdf").write_bytes(b"%PDF-1.4\nftp body\n%%EOF\n")
    auth = DummyAuthorizer()
    auth.add_anonymous(str(root))
    auth.add_user("user", "secret", str(root))
    # pyftpdlib waits 3 s before refusing a login; the tests' read timeout is 3 s
    handler = type("Handler", (FTPHandler,), {"authorizer": auth, "auth_failed_timeout": 0.1})
    # Its own loop: pyftpdlib's default is one per process, which a server
    # closed by an earlier test would take down with it.
    server = ThreadedFTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    t = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.05}, daemon=True)
    t.start()
    yield f"ftp://127.0.0.1:{server.address[1]}"
    server.close_all()
    t.join(10)
