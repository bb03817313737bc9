"""Fixtures only: a fresh home, a controllable clock, local servers, mounts.

Fetching is tested against real servers on 127.0.0.1 (pytest-httpserver, the
kit's own servers, pyftpdlib), never against mocked transports. What tests
share besides fixtures lives in tests/kit/.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiel import home as home_mod

from kit import servers as hs
from kit.homes import TEST_SETTINGS, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> home_mod.Home:
    h = home_mod.Home(str(tmp_path / "home"))
    home_mod.init(h)
    with open(h.conf, "a", encoding="utf-8") as f:
        f.write(TEST_SETTINGS)
    return h


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


@pytest.fixture
def srv() -> Iterator[hs.HostileServer]:
    """A raw TCP server on 127.0.0.1 whose routes write their answers byte by byte."""
    s = hs.HostileServer()
    yield s
    s.close()


@pytest.fixture
def srv6() -> Iterator[hs.HostileServer]:
    """The same on ::1; skipped where the machine has no IPv6 loopback."""
    if not hs.has_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    s = hs.HostileServer("::1")
    yield s
    s.close()


@pytest.fixture(scope="session")
def mountable() -> bool:
    """Skips the test where this process may not mount (a tmpfs probe, once a session)."""
    probe = Path("/tmp") / f"kiel-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
    except FileNotFoundError:
        ok = False
    finally:
        probe.rmdir()
    if not ok:
        pytest.skip("this machine cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)")
    return ok
