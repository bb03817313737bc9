"""The network guard decides on the address actually dialled (issue 11).

Every case dials real servers on 127.0.0.1 or ``::1`` and proves, by the
server's own count, that a denied address was never connected to. Names are
resolved through the guard's resolver seam where a test needs a DNS answer
it cannot get from the machine (a hostile answer, an answer that changes).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from kiel import netguard
from kiel.fetch import Fetcher, Limits, Result

from kit import servers as hs

LOOPBACK = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),
                                  ipaddress.ip_network("::1/128")))
NOTHING = netguard.Policy()


needs_ipv6 = pytest.mark.skipif(not hs.has_ipv6(), reason="no IPv6 loopback on this machine")


def fetcher(policy: netguard.Policy | None, **kw) -> Fetcher:
    limits = Limits(connect_timeout=kw.pop("connect_timeout", 2),
                    read_timeout=kw.pop("read_timeout", 3),
                    total_timeout=kw.pop("total_timeout", 5))
    return Fetcher(limits, guard=policy, **kw)


def get(f: Fetcher, url: str, tmp_path: Path) -> Result:
    tmp_path.mkdir(parents=True, exist_ok=True)
    try:
        return f.fetch(url, str(tmp_path))
    finally:
        f.close()


def assert_denied(res: Result, address: str, tmp_path: Path) -> None:
    assert res.status == "000" and res.error == "denied", res
    assert res.address == address and address in (res.detail or "")
    assert res.tmp_path is None and os.listdir(tmp_path) == []


# --- the decision, by the address's properties -----------------------------------------


@pytest.mark.parametrize("address,reason", [
    ("::", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback (127.0.0.1)"),  # IPv4-mapped
    ("64:ff9b::7f00:1", "loopback (127.0.0.1)"),  # NAT64
    ("2002:7f00:1::", "loopback (127.0.0.1)"),  # 6to4
    ("2002:a00:1::", "private (10.0.0.1)"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("10.1.2.3", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private"),
    ("100.64.0.1", "not globally reachable"),
])
def test_addresses_that_are_not_the_public_internet_are_denied(address, reason):
    v = NOTHING.judge(address)
    assert not v.allowed and v.reason == reason and v.address == address


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1",
                                     "64:ff9b::5db8:d822", "2002:5db8:d822::1"])
def test_public_addresses_and_their_nat64_and_6to4_forms_are_allowed(address):
    assert NOTHING.judge(address).allowed


def test_allow_networks_opens_what_the_operator_names_and_nothing_else():
    assert LOOPBACK.judge("127.0.0.1").allowed
    assert LOOPBACK.judge("::ffff:127.0.0.1").allowed  # it carries an allowed address
    assert not LOOPBACK.judge("0.0.0.0").allowed  # reaches loopback, but not named
    assert not LOOPBACK.judge("::").allowed
    deny = netguard.Policy(deny=(ipaddress.ip_network("93.184.0.0/16"),))
    v = deny.judge("93.184.216.34")
    assert not v.allowed and v.reason == "in denied network 93.184.0.0/16"


# --- HTTP: the address dialled ------------------------------------------------------------


@needs_ipv6
def test_unspecified_ipv6_never_reaches_a_service_on_loopback(srv6, tmp_path):
    # Linux sends a connect to :: to loopback; the guard refuses it even
    # though ::1 itself is allowed.
    srv6.route("/p", hs.good())
    ok = get(fetcher(LOOPBACK), srv6.url("/p"), tmp_path / "ok")  # the service is there
    assert ok.status == "200" and ok.address == "::1"
    srv6.reset_counts()
    url = f"http://[::]:{srv6.port}/p"
    res = get(fetcher(LOOPBACK), url, tmp_path / "denied")
    assert_denied(res, "::", tmp_path / "denied")
    assert "unspecified" in res.detail
    assert srv6.total_requests() == 0


def test_unspecified_ipv4_never_reaches_a_service_on_loopback(srv, tmp_path):
    srv.route("/p", hs.good())
    res = get(fetcher(LOOPBACK), f"http://0.0.0.0:{srv.port}/p", tmp_path)
    assert_denied(res, "0.0.0.0", tmp_path)
    assert srv.total_requests() == 0


def test_ipv4_mapped_loopback_is_judged_as_loopback(srv, tmp_path):
    if not hs.has_ipv6():
        pytest.skip("no IPv6 on this machine")
    srv.route("/p", hs.good())
    only_v6 = netguard.Policy(allow=(ipaddress.ip_network("::1/128"),))
    res = get(fetcher(only_v6), f"http://[::ffff:127.0.0.1]:{srv.port}/p", tmp_path)
    assert_denied(res, "::ffff:127.0.0.1", tmp_path)
    assert srv.total_requests() == 0


@needs_ipv6
def test_redirect_from_an_allowed_host_to_unspecified_is_denied(srv, srv6, tmp_path):
    # The renewal fetches a redirect's target as its own object: the same
    # transport judges it when it dials.
    srv6.route("/secret", hs.good(b"internal only\n", "text/plain"))
    target = f"http://[::]:{srv6.port}/secret"
    srv.route("/go", hs.redirect(target))
    f = fetcher(LOOPBACK)
    try:
        first = f.fetch(srv.url("/go"), str(tmp_path))
        assert first.status == "302" and first.location == target
        os.unlink(first.tmp_path)
        second = f.fetch(first.location, str(tmp_path))
    finally:
        f.close()
    assert_denied(second, "::", tmp_path)
    assert srv6.total_requests() == 0


def test_a_denied_address_is_named_in_the_result_and_nothing_is_sent(srv, tmp_path):
    srv.route("/p", hs.good())
    res = get(fetcher(NOTHING), srv.url("/p"), tmp_path)
    assert_denied(res, "127.0.0.1", tmp_path)
    assert res.detail == "127.0.0.1, denied: loopback"
    assert srv.total_requests() == 0


# --- names: resolved once, as httpx encodes them ------------------------------------------


class Resolver:
    """A DNS that answers from a table and remembers every question."""

    def __init__(self, table: dict[str, list[list[str]]]):
        self.table = {k: list(v) for k, v in table.items()}
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.asked.append(host)
            answers = self.table.get(host)
            if not answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.mark.parametrize("host,encoded", [
    ("kielß.test", "xn--kiel-yna.test"),  # IDNA 2008, never IDNA 2003's kielss.test
    ("KIELß.Test", "xn--kiel-yna.test"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("KIEL.example", "kiel.example"),
    ("[::1]", "::1"),
    ("::1", "::1"),  # as ftplib names a data address
    ("::FFFF:127.0.0.1", "::FFFF:127.0.0.1"),  # a literal as it is: the guard unwraps it
    ("127.0.0.1", "127.0.0.1"),
    ("x.example.", "x.example."),  # a trailing dot is kept
    ("ex%41mple.com", "ex%41mple.com"),  # a percent-encoded name is not decoded
    ("EX%4Ample.COM", "ex%4ample.com"),
])
def test_hosts_are_encoded_as_httpx_encodes_them(host, encoded):
    assert netguard.encode_host(host) == encoded
    literal = f"[{host}]" if ":" in host and not host.startswith("[") else host
    assert httpx.URL(f"http://{literal}/").raw_host.decode("ascii") == encoded


def test_a_scoped_ipv6_literal_keeps_its_scope():
    # what ftplib hands over for a link-local data address; the guard judges it
    assert netguard.encode_host("fe80::1%eth0") == "fe80::1%eth0"


@pytest.mark.parametrize("host", ["999.1.1.1", "bad\x00name", "ü_x.example"])
def test_a_host_httpx_refuses_is_a_value_error(host):
    with pytest.raises(ValueError, match="invalid host name"):
        netguard.encode_host(host)


def test_a_host_httpx_refuses_is_a_url_error_over_ftp_as_over_http(tmp_path):
    dns = Resolver({})
    f = fetcher(LOOPBACK, resolver=dns)
    try:
        for res in (f.fetch_ftp("ftp://999.1.1.1/f", str(tmp_path)),
                    f.fetch("http://999.1.1.1/f", str(tmp_path))):
            assert res.status == "000" and res.error == "url", res
            assert "999.1.1.1" in (res.detail or "")
    finally:
        f.close()
    assert dns.asked == [] and os.listdir(tmp_path) == []  # nothing resolved, nothing kept


def test_idna_2008_name_is_checked_as_it_is_dialled(srv, tmp_path):
    # kielß.test is xn--kiel-yna.test in IDNA 2008 (httpx) but kielss.test in
    # IDNA 2003 (Python's codec): a check that resolved the latter let a
    # denied 127.0.0.1 through. Here the only name ever resolved is the one dialled.
    srv.route("/p", hs.good())
    dns = Resolver({"xn--kiel-yna.test": [["127.0.0.1"]], "kielss.test": [["93.184.216.34"]]})
    url = f"http://kielß.test:{srv.port}/p"
    res = get(fetcher(NOTHING, resolver=dns), url, tmp_path)
    assert_denied(res, "127.0.0.1", tmp_path)
    assert "xn--kiel-yna.test resolves to 127.0.0.1" in res.detail
    assert dns.asked == ["xn--kiel-yna.test"]
    assert srv.total_requests() == 0
    # allowed, the same name reaches the server, under the same encoding
    res = get(fetcher(LOOPBACK, resolver=dns), url, tmp_path / "ok")
    assert res.status == "200" and res.address == "127.0.0.1"
    assert srv.request_headers["/p"][0]["host"] == f"xn--kiel-yna.test:{srv.port}"


def test_dns_answer_that_changes_after_the_check_is_never_dialled(tmp_path):
    # A rebinding DNS: first an allowed address, then a denied one. The name
    # is resolved once per connection and the checked address is dialled.
    # Two servers on the same port, one per address: only the DNS answer
    # decides which one a connection reaches.
    allowed = hs.HostileServer("127.0.0.2")
    denied = hs.HostileServer("127.0.0.1", port=allowed.port)
    try:
        allowed.route("/p", hs.good(b"from the allowed host\n", "text/plain"))
        denied.route("/p", hs.good(b"from the denied host\n", "text/plain"))
        dns = Resolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]]})
        policy = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.2/32"),))
        res = get(fetcher(policy, resolver=dns), f"http://rebind.test:{allowed.port}/p",
                  tmp_path)
        assert res.status == "200" and res.address == "127.0.0.2"
        assert Path(res.tmp_path).read_bytes() == b"from the allowed host\n"
        assert dns.asked == ["rebind.test"]
        assert denied.total_requests() == 0
    finally:
        allowed.close()
        denied.close()


def test_one_denied_address_in_an_answer_denies_the_host(tmp_path):
    allowed = hs.HostileServer("127.0.0.2")
    try:
        allowed.route("/p", hs.good())
        dns = Resolver({"mixed.test": [["127.0.0.2", "10.0.0.1"]]})
        policy = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.2/32"),))
        res = get(fetcher(policy, resolver=dns), f"http://mixed.test:{allowed.port}/p",
                  tmp_path)
        assert_denied(res, "10.0.0.1", tmp_path)
        assert allowed.total_requests() == 0
    finally:
        allowed.close()


def test_a_name_that_does_not_resolve_is_an_error_never_let_through(srv, tmp_path):
    srv.route("/p", hs.good())
    dns = Resolver({})
    res = get(fetcher(LOOPBACK, resolver=dns), f"http://nowhere.test:{srv.port}/p", tmp_path)
    assert res.status == "000" and res.error == "dns"
    assert dns.asked == ["nowhere.test"] and srv.total_requests() == 0


def test_a_resolver_that_never_answers_meets_the_deadline(tmp_path):
    def stuck(host: str, port: int) -> list[str]:
        time.sleep(30)
        return ["127.0.0.1"]

    t = time.monotonic()
    res = get(fetcher(LOOPBACK, resolver=stuck, connect_timeout=10, total_timeout=1),
              "http://slow-dns.test/p", tmp_path)
    assert res.status == "000" and res.error == "timeout"
    assert time.monotonic() - t < 2


# --- FTP: control and data connections ------------------------------------------------------


@needs_ipv6
def test_ftp_to_unspecified_never_reaches_a_service_on_loopback(tmp_path):
    ftp = hs.HostileFTP("::1")
    (tmp_path / "ok").mkdir()
    try:
        ok = fetcher(LOOPBACK).fetch_ftp(ftp.url(), str(tmp_path / "ok"))
        assert ok.status == "226" and ok.address == "::1"
        assert ok.headers == (("reply", "226 Transfer complete."),)
        before = list(ftp.peers)
        (tmp_path / "denied").mkdir()
        res = fetcher(LOOPBACK).fetch_ftp(f"ftp://[::]:{ftp.port}/pub/paper.pdf",
                                          str(tmp_path / "denied"))
        assert_denied(res, "::", tmp_path / "denied")
        # every connection dialled before the call returned is accepted by now
        assert hs.accepted_before_now(ftp, "::1") == before
    finally:
        ftp.close()


def test_ftp_idna_name_is_checked_as_it_is_dialled(tmp_path):
    ftp = hs.HostileFTP()
    try:
        dns = Resolver({"xn--kiel-yna.test": [["127.0.0.1"]], "kielss.test": [["93.184.216.34"]]})
        res = fetcher(NOTHING, resolver=dns).fetch_ftp(
            f"ftp://kielß.test:{ftp.port}/pub/paper.pdf", str(tmp_path))
        assert_denied(res, "127.0.0.1", tmp_path)
        assert dns.asked == ["xn--kiel-yna.test"]
        assert ftp.connections == 0
        # allowed: control and data connections both dialled by the guard
        res = fetcher(LOOPBACK, resolver=dns).fetch_ftp(
            f"ftp://kielß.test:{ftp.port}/pub/paper.pdf", str(tmp_path))
        assert res.status == "226" and Path(res.tmp_path).read_bytes() == hs.GOOD_BODY
        assert res.address == "127.0.0.1" and ftp.data_connections == 1
    finally:
        ftp.close()


# --- the pool stays within the open-files limit ---------------------------------------------


def _client_sockets(ports: set[int]) -> int:
    """Sockets of this process connected to one of ``ports`` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            if f[3] == "01" and remote_port in ports and f[9] in inodes:  # ESTABLISHED
                n += 1
    return n


def test_idle_connections_are_bounded_by_the_fetcher_settings(tmp_path):
    servers = [hs.HostileServer() for _ in range(8)]
    try:
        for s in servers:
            s.route("/p", hs.keep_alive(hold=10))
        ports = {s.port for s in servers}
        f = fetcher(LOOPBACK, clients_per_thread=3, max_keepalive_per_client=1,
                    max_connections_per_client=1)
        assert f.sockets_bound(1) == 3 + 2  # the idle ones, and the attempt in progress
        try:
            for s in servers:
                res = f.fetch(s.url("/p"), str(tmp_path))
                assert res.status == "200"
                os.unlink(res.tmp_path)
                assert _client_sockets(ports) <= 3
            assert _client_sockets(ports) == 3  # kept alive, within the bound
        finally:
            f.close()
        assert _client_sockets(ports) == 0
    finally:
        for s in servers:
            s.close()


def test_sockets_bound_is_what_the_run_may_open():
    f = Fetcher(Limits(), clients_per_thread=4, max_keepalive_per_client=1,
                max_connections_per_client=2)
    assert f.sockets_bound(16) == 16 * (4 * 1 + 2)


# --- HTTPS through the guarded transport ------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by openssl(1)."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl(1) is not installed")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return str(d / "cert.pem"), str(d / "key.pem")


def test_https_through_the_guard_keeps_the_connection_alive(certificate, tmp_path):
    tls = hs.TLSServer(*certificate)
    try:
        f = Fetcher(Limits(connect_timeout=2, read_timeout=3, total_timeout=5),
                    verify_tls=False, guard=LOOPBACK)
        try:
            for i in range(3):
                res = f.fetch(tls.url(f"/p{i}"), str(tmp_path))
                assert res.status == "200" and res.address == "127.0.0.1", res
                assert Path(res.tmp_path).read_bytes() == hs.GOOD_BODY
                os.unlink(res.tmp_path)
        finally:
            f.close()
        assert tls.requests == 3 and tls.connections == 1  # one handshake, reused
    finally:
        tls.close()


def test_https_with_an_untrusted_certificate_is_a_tls_error(certificate, tmp_path):
    tls = hs.TLSServer(*certificate)
    try:
        res = get(fetcher(LOOPBACK), tls.url("/p"), tmp_path)
        assert res.status == "000" and res.error == "tls", res
        assert tls.requests == 0
    finally:
        tls.close()


def test_https_to_a_denied_address_never_starts_a_handshake(certificate, tmp_path):
    tls = hs.TLSServer(*certificate)
    try:
        res = get(fetcher(NOTHING), tls.url("/p"), tmp_path)
        assert_denied(res, "127.0.0.1", tmp_path)
        # every connection dialled before the call returned is accepted by now
        assert hs.accepted_before_now(tls) == []
    finally:
        tls.close()
