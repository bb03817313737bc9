"""One notion of an origin (``kiel.urls.origin``): what the fetcher keeps its
connections by and what politeness, the circuit breaker and the run's
counts call a host (``kiel.urls.host_of``).

``http://X:80/`` and ``http://x/`` are one origin: they share one
connection, counted by the real server's own record of its clients, and one
circuit breaker in a real renewal. The userinfo is no part of an origin:
credentials travel with each request and never with a connection.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import random
import socket
from pathlib import Path

import httpx
import pytest

from kiel import netguard, notes, urls
from kiel.fetch import Fetcher, Limits

from kit import servers as hs
from kit.cli import renew
from kit.homes import make_home, text, write_amf

LOOPBACK = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),))
OK = (200, [("Content-Type", "text/plain")], b"body\n")


# --- the function ------------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [
    ("http://X:80/a", "http://x/b"),  # case, and the default port made explicit
    ("HTTP://x", "http://x:80/"),
    ("http://alice:secret@x/", "http://x/"),  # the userinfo is no part of it
    ("http://alice:secret@x/", "http://bob@X:80/"),
    ("https://x:443/", "https://X/"),
    ("ftp://anonymous:me@X:21/pub/f", "ftp://x/other"),
    ("http://bücher.example/", "http://xn--bcher-kva.example/"),  # IDNA 2008, as dialled
    ("http://BÜCHER.example/", "http://bücher.example:80/"),
    ("http://kielß.test/", "http://xn--kiel-yna.test/"),  # never IDNA 2003's kielss.test
    ("http://[::1]/", "http://[0:0::1]:80/"),  # one address, two spellings
    ("http://[::FFFF:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
])
def test_one_origin_one_host(a, b):
    assert urls.host_of(a) == urls.host_of(b)  # politeness, breaker, counts
    assert urls.origin(a) == urls.origin(b)  # the fetcher's connections


@pytest.mark.parametrize("a,b", [
    ("http://x/", "https://x/"),  # another port, perhaps another server
    ("http://x/", "http://x:8080/"),
    ("http://x/", "http://x./"),  # another name to TLS and to virtual hosts
    ("http://x/", "ftp://x/"),
    ("http://kielß.test/", "http://kielss.test/"),
])
def test_different_origins(a, b):
    assert urls.host_of(a) != urls.host_of(b)
    assert urls.origin(a) != urls.origin(b)


@pytest.mark.parametrize("url,host", [
    ("http://X/", "http://x:80"),
    ("HTTPS://Example.ORG/p", "https://example.org:443"),
    ("ftp://user:pw@Files.Example/pub", "ftp://files.example:21"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("http://bücher.example/", "http://xn--bcher-kva.example:80"),
    ("http://127.0.0.1:41253/o1", "http://127.0.0.1:41253"),  # what an alert names
])
def test_host_of_reads_scheme_host_port(url, host):
    assert urls.host_of(url) == host
    assert "pw" not in host and "@" not in host


@pytest.mark.parametrize("url", [
    "http://x/", "http://X:8080/p", "https://Bücher.Example/", "http://[::1]:99/",
    "http://u:p@Kiel.Test/", "http://ex%41mple.com/", "http://x./",
])
def test_the_origin_host_is_what_httpx_puts_on_the_wire(url):
    raw = httpx.URL(url).raw_host.decode("ascii")
    o = urls.origin(url)
    assert o.host == raw
    assert netguard.encode_host(o.host) == raw  # and what the guard resolves


@pytest.mark.parametrize("url", [
    "mailto:someone@example.org", "http:///no-host", "http://x:0/", "http://x:65536/",
    "http://999.1.1.1/",
])
def test_no_origin_is_a_value_error_and_host_of_keeps_the_value(url):
    with pytest.raises(ValueError):
        urls.origin(url)
    assert urls.host_of(url) == url


# --- the connections ---------------------------------------------------------------------


def _resolver(table: dict[str, str]) -> netguard.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [table[host]]
    return resolve


def _fetch_all(f: Fetcher, got: list[str], tmp_path: Path) -> None:
    try:
        for u in got:
            res = f.fetch(u, str(tmp_path))
            assert res.status == "200" and res.tmp_path is not None, res
            os.unlink(res.tmp_path)
    finally:
        f.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def test_one_origin_is_one_connection_and_credentials_stay_with_their_request(tmp_path):
    with hs.Site(table={p: OK for p in ("/a", "/b", "/c", "/d", "/e")}) as site:
        f = Fetcher(Limits(connect_timeout=2, read_timeout=3, total_timeout=5), guard=LOOPBACK,
                    resolver=_resolver({"kiel.test": "127.0.0.1"}))
        port = site.port
        _fetch_all(f, [f"http://KIEL.test:{port}/a", f"http://kiel.test:{port}/b",
                       f"http://alice:one@kiel.test:{port}/c",
                       f"http://bob:two@Kiel.Test:{port}/d", f"http://kiel.test:{port}/e"],
                   tmp_path)
        got = site.received
    assert [r.path for r in got] == ["/a", "/b", "/c", "/d", "/e"]
    assert len({r.peer for r in got}) == 1, [r.peer for r in got]  # one connection
    assert {r.headers["host"] for r in got} == {f"kiel.test:{port}"}
    auth = [r.headers.get("authorization") for r in got]
    assert auth == [None, None, _basic("alice", "one"), _basic("bob", "two"), None]


def test_different_origins_are_different_connections(tmp_path):
    with hs.Site(table={"/a": OK, "/b": OK}) as site:
        f = Fetcher(Limits(connect_timeout=2, read_timeout=3, total_timeout=5), guard=LOOPBACK,
                    resolver=_resolver({"one.test": "127.0.0.1", "two.test": "127.0.0.1"}))
        _fetch_all(f, [f"http://one.test:{site.port}/a", f"http://two.test:{site.port}/b"],
                   tmp_path)
        got = site.received
    assert [r.headers["host"] for r in got] == [f"one.test:{site.port}",
                                                f"two.test:{site.port}"]
    assert len({r.peer for r in got}) == 2


def _free_loopback_80() -> str:
    """A loopback address of 127.0.0.0/8 whose port 80 refuses connections
    (the test is skipped, saying so, where a server answers on all of them)."""
    rnd = random.Random()
    for _ in range(20):
        addr = f"127.{rnd.randrange(1, 255)}.{rnd.randrange(0, 256)}.{rnd.randrange(1, 255)}"
        with socket.socket() as s:
            s.settimeout(2)
            if s.connect_ex((addr, 80)) == errno.ECONNREFUSED:
                return addr
    pytest.skip("port 80 answers on every loopback address tried (a server on 0.0.0.0:80)")


def test_the_default_port_written_or_not_is_one_connection(tmp_path):
    addr = _free_loopback_80()
    try:
        site = hs.Site(table={"/a": OK, "/b": OK, "/c": OK}, host=addr, port=80)
    except OSError as e:  # port 80 needs root or CAP_NET_BIND_SERVICE
        pytest.skip(f"port 80 of {addr} cannot be bound here: {e}")
    with site:
        f = Fetcher(Limits(connect_timeout=2, read_timeout=3, total_timeout=5), guard=LOOPBACK,
                    resolver=_resolver({"x.test": addr}))
        _fetch_all(f, ["http://X.TEST:80/a", "http://x.test/b", f"http://{addr}:80/c"],
                   tmp_path)
        got = site.received
    assert [r.headers["host"] for r in got] == ["x.test", "x.test", addr]
    assert got[0].peer == got[1].peer  # one origin: one connection
    assert got[2].peer != got[0].peer  # the address is another name: another origin


# --- politeness and the circuit breaker, in a renewal -----------------------------------


def test_the_default_port_written_or_not_is_one_host_to_the_circuit_breaker(tmp_path):
    # Nothing listens on port 80 of this loopback address: every connection is
    # refused. Written with and without its port, it is one host: after three
    # refusals the breaker holds every other URL of it, and the alert names it once.
    addr = _free_loopback_80()
    home = make_home(tmp_path / "h", "host_down_after = 3\nalert_min_attempts = 10\n"
                     "per_host = 1\nconcurrency = 1\n")
    urls_ = [f"http://{addr}:80/o{i}" if i % 2 else f"http://{addr}/o{i}" for i in range(12)]
    src = write_amf(tmp_path / "a.xml",
                    *[text(f"RePEc:aaa:wpaper:{i}", u) for i, u in enumerate(urls_)])
    r = renew(home, "--quiet", str(src))
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert r.stderr == (f"alert: 12 of 12 attempts (100 %) could not connect; most affected: "
                        f"http://{addr}:80 (12)\n")
    errors = []
    for p in sorted((home / "store").rglob("00notes")):
        errors += [e["error"] for e in notes.entries(str(p)) if "status" in e]
    assert errors.count("refused") == 3 and errors.count("host-down") == 9, errors
