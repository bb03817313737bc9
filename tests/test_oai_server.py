"""The provider's server under pressure, and its command line (issues 11 and 12)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kiel.oai import build, create_app
from kiel.oai.server import Background, Limits

from kit.cli import kiel
from kit.oai import make_home
from kit.servers import wait_until


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = make_home(tmp_path / "home", max_requests=2)
    build(str(h))
    return h


def limits(**kw) -> Limits:
    base = {"threads": 8, "connection_limit": 10, "channel_timeout": 30,
            "max_request_body": 64 * 1024, "retry_after": 10}
    base.update(kw)
    return Limits(**base)  # type: ignore[arg-type]


def http_get(url: str) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()
            return r.status, dict(r.headers), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), time.monotonic() - t0


def test_idle_sockets_past_the_limit_get_503_at_once(home):
    with Background(create_app(str(home)), limits(connection_limit=10)) as srv:
        port = int(srv.url.split(":")[2].split("/")[0])
        channels = srv.server._map  # the listener and every open connection
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        try:
            # the server has taken its limit: the next connection is shed
            assert wait_until(lambda: len(channels) >= 10, timeout=10), len(channels)
            status, headers, took = http_get(srv.url + "?verb=Identify")
            assert status == 503 and headers["Retry-After"] == "10" and took < 3
        finally:
            for s in idle:
                s.close()
        # the server has seen the idle connections close
        assert wait_until(lambda: len(channels) < 10, timeout=10), len(channels)
        assert http_get(srv.url + "?verb=Identify")[0] == 200


def test_idle_connections_are_dropped(home):
    with Background(create_app(str(home)), limits(channel_timeout=1)) as srv:
        port = int(srv.url.split(":")[2].split("/")[0])
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(6)
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the server
        assert time.monotonic() - t0 < 5
        s.close()


def test_an_oversize_post_is_refused_before_its_body_is_read(home):
    with Background(create_app(str(home)), limits(max_request_body=1024)) as srv:
        port = int(srv.url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(5)
            s.sendall(b"POST /oai HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                      b"x-www-form-urlencoded\r\nContent-Length: 1073741824\r\n\r\n")
            # Not one byte of the body sent: the answer comes anyway.
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413")


def test_a_request_waits_for_a_slot_then_is_served(home):
    app = create_app(str(home))
    with Background(app, limits()) as srv:
        assert app.slots.acquire(blocking=False) and app.slots.acquire(blocking=False)
        threading.Timer(0.1, lambda: (app.slots.release(), app.slots.release())).start()
        status, _h, took = http_get(srv.url + "?verb=Identify")
        assert status == 200 and took >= 0.05
        assert app.slots.acquire(blocking=False) and app.slots.acquire(blocking=False)
        try:
            status, headers, took = http_get(srv.url + "?verb=Identify")
            # request_wait is 0.2 s in the test homes
            assert status == 503 and headers["Retry-After"] == "10" and 0.15 < took < 3
        finally:
            app.slots.release()
            app.slots.release()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return kiel("oai", *args, script=True, env={"KIEL_HOME": ""}, timeout=60)


def test_cli_refuses_a_port_out_of_range_and_a_missing_home(home, tmp_path):
    out = cli("serve", "--home", str(home), "--bind", "127.0.0.1:99999")
    assert out.returncode == 2
    assert "--bind 127.0.0.1:99999: expected HOST:PORT with a port from 1 to 65535" in out.stderr
    typo = tmp_path / "typo"
    for cmd in ("index", "serve"):
        out = cli(cmd, "--home", str(typo))
        assert out.returncode == 2 and f"no Kiel home at {typo}: the directory does not exist" \
            in out.stderr
        assert not typo.exists()
    out = cli("index", "--home", str(home), "--rebuild")
    assert out.returncode == 0 and "records:  10 (1 deleted)" in out.stdout
