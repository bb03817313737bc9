"""SIGTERM and Ctrl-C end a run cleanly, whatever the servers do; deny_networks keeps Kiel off
private nets."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from kiel import netguard, notes
from kiel.fetch import Fetcher, Limits
from kiel.home import Lock

from kit import servers as hs
from kit.homes import attempts, make_home, object_dir, record_dir, run, set_config, text, write_amf


def slow_site(httpserver, delay=0.3):
    hits = []

    def slow(request):
        hits.append(request.full_path)
        time.sleep(delay)
        return Response(b"slow body", content_type="text/plain")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    return hits


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_the_run_quickly_and_releases_the_lock(home, httpserver, tmp_path, sig,
                                                           status):
    set_config(home, concurrency=2)
    hits = slow_site(httpserver)
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(40)]
    src = write_amf(tmp_path / "a.xml",
                    *[text(i, httpserver.url_for("/slow") + f"?{n}") for n, i in enumerate(ids)])
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                          "--no-progress", str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # mid-run: requests are in flight and some records are finished
    assert hs.wait_until(lambda: len(hits) >= 6 and any(
        (record_dir(home, i) / "00last").exists() for i in ids), timeout=60), hits
    t = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == status, err
    assert time.monotonic() - t < 10  # bounded: the in-flight records, not the whole run
    assert f"interrupted: {signal.Signals(sig).name}" in out
    summary = sorted(Path(home.var, "runs").glob("*.json"))[-1]
    data = json.loads(summary.read_text())
    assert data["interrupted"] == signal.Signals(sig).name and data["exit_status"] == status
    done = [i for i in ids if (record_dir(home, i) / "00last").exists()]
    assert 0 < len(done) < len(ids)
    # every record that started is accounted for: finished (00last), or noted as
    # interrupted (no 00last: it comes first in the next run)
    for i in ids:
        rdir = record_dir(home, i)
        if rdir.exists() and any(n.endswith(".amf.xml") for n in os.listdir(rdir)):
            last = list(notes.entries(str(rdir / "00notes")))[-1]
            assert last["event"] == "renewal", i
            assert (rdir / "00last").exists() != bool(last.get("interrupted")), i
    with Lock(home):  # released
        pass


def shell_status(returncode: int) -> int:
    """The status a shell (and cron) reports: 128 + N for a death by signal N."""
    return returncode if returncode >= 0 else 128 - returncode


# Sent at these many seconds after the process starts: from before Python has
# set up, through the imports, to the run's own start-up (the lock, the scan).
STARTUP_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)


# SIGTERM only: for SIGINT, Python's own start-up (before any of Kiel's code
# runs) turns a Ctrl-C into a KeyboardInterrupt traceback, whatever Kiel does;
# the test after this one stops a run with SIGINT in the window Kiel's code owns.
@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143)])
def test_a_stop_during_start_up_is_quiet(home, tmp_path, sig, status):
    """A stop before the first request, at any moment of start-up: the shell's
    status 128 + N, no traceback. The server holds its answers, so no run can
    end on its own before the stop reaches it."""
    release = threading.Event()

    def held(host: str, path: str) -> hs.Answer:
        release.wait(10)
        return 200, [("Content-Type", "text/plain")], b"body"

    with hs.Site(held) as site:
        src = write_amf(tmp_path / "a.xml", *[text(f"RePEc:aaa:wpaper:{i}", site.url(f"/{i}"))
                                              for i in range(20)])
        outcomes = []
        for delay in STARTUP_DELAYS:
            before = len(site.requests)
            p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                                  "--no-progress", str(src)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            time.sleep(delay)  # not synchronisation: the moment of the stop is the input
            p.send_signal(sig)
            _out, err = p.communicate(timeout=60)
            outcomes.append((delay, shell_status(p.returncode), "Traceback" in err,
                             len(site.requests) - before, err[-400:]))
            if len(site.requests) > before:
                break  # the run got past its start-up: later delays test nothing more
        release.set()
    bad = [o for o in outcomes if o[1] != status or o[2]]
    assert not bad, bad
    with Lock(home):  # released
        pass


def test_a_ctrl_c_while_kiel_loads_its_modules_is_quiet(home, tmp_path):
    """SIGINT once kiel's configuration module is loaded (python -X importtime says
    when): the shell's status 130, no traceback, nothing fetched. (It used to be a
    KeyboardInterrupt traceback and exit 1, or importlib swallowed it and the run
    went on to exit 0.)"""
    with hs.Site(lambda host, path: (200, [("Content-Type", "text/plain")], b"body")) as site:
        src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", site.url("/1")))
        p = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "kiel", "renew",
                              "--home", home.root, "--no-progress", str(src)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stderr is not None
        seen = []
        for line in p.stderr:  # one line as each import ends
            seen.append(line)
            if line.rstrip().endswith("| kiel.config") or "kiel.config" in line.split("|")[-1]:
                break
        p.send_signal(signal.SIGINT)
        _out, rest = p.communicate(timeout=60)
        err = "".join(seen) + rest
        assert any("kiel.config" in line for line in seen), err[-2000:]
        assert site.requests == []
    assert shell_status(p.returncode) == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_loopback_is_denied_by_default(tmp_path, httpserver, clock):
    from kiel import home as home_mod

    h = home_mod.Home(str(tmp_path / "h"))
    home_mod.init(h)
    hits = slow_site(httpserver, 0)
    url = httpserver.url_for("/slow")
    named = url.replace("127.0.0.1", "localhost")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url, named))
    run(h, src, clock=clock)
    assert hits == []
    for u in (url, named):
        d = object_dir(h, "RePEc:aaa:wpaper:1", u)
        (name,) = attempts(d)
        assert name.endswith("_000_none")
        line = list(notes.entries(str(d / "00notes")))[0]
        assert line["error"] == "denied" and "denied network 127.0.0.0/8" in line["detail"]


def test_redirect_into_a_denied_network_is_not_followed(home, httpserver, tmp_path, clock):
    # allow only 127.0.0.1; a second server on 127.0.0.2 stands for a private host
    with open(home.conf, "a") as f:
        f.write("allow_networks = 127.0.0.1/32\n")
    from pytest_httpserver import HTTPServer

    private = HTTPServer(host="127.0.0.2", port=0)
    private.start()
    try:
        inner = slow_site(private, 0)
        target = private.url_for("/slow")
        httpserver.expect_request("/go").respond_with_data(b"", status=302,
                                                           headers={"Location": target})
        src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", httpserver.url_for("/go")))
        run(home, src, clock=clock)
        assert inner == []
        d = object_dir(home, "RePEc:aaa:wpaper:1", target)
        line = list(notes.entries(str(d / "00notes")))[0]
        assert line["status"] == "000" and line["error"] == "denied"
    finally:
        private.stop()


def test_metadata_address_is_denied(home, tmp_path, clock):
    # 169.254.169.254 (cloud metadata) stays denied even with loopback allowed
    src = write_amf(tmp_path / "a.xml",
                    text("RePEc:aaa:wpaper:1", "http://169.254.169.254/latest/meta-data/"))
    t = time.monotonic()
    run(home, src, clock=clock)
    assert time.monotonic() - t < 5
    d = object_dir(home, "RePEc:aaa:wpaper:1", "http://169.254.169.254/latest/meta-data/")
    line = list(notes.entries(str(d / "00notes")))[0]
    assert line["error"] == "denied" and "169.254.0.0/16" in line["detail"]


# --- issue 11: a stop ends every attempt in flight, whatever the server does ----------


def _stopped_after(seconds: float, attempt) -> tuple[object, float]:
    """Run ``attempt(stop)``; set ``stop`` after ``seconds``; the result and its wall time."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    t = time.monotonic()
    try:
        res = attempt(stop)
    finally:
        timer.cancel()
    return res, time.monotonic() - t


@pytest.mark.parametrize("kind", ["http-head", "http-body", "tls-handshake", "ftp-greeting",
                                  "ftp-data"])
def test_stop_ends_an_attempt_in_flight_within_a_second(tmp_path, kind):
    policy = netguard.Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),))
    # Every timeout far away: only the stop can end these attempts soon.
    limits = Limits(connect_timeout=30, read_timeout=30, total_timeout=60)
    servers = []
    try:
        if kind.startswith("http"):
            srv = hs.HostileServer()
            servers.append(srv)
            url = srv.route("/x", hs.drip_head(0.2, 20) if kind == "http-head"
                            else hs.drip_body(1000, 0.2))
        elif kind == "tls-handshake":
            tls = hs.SilentTLS()
            servers.append(tls)
            url = tls.url("/x")
        else:
            ftp = hs.HostileFTP(greeting_every=0.2 if kind == "ftp-greeting" else None,
                                data_every=0.2 if kind == "ftp-data" else None)
            servers.append(ftp)
            url = ftp.url()

        def attempt(stop):
            f = Fetcher(limits, guard=policy, stop=stop)
            try:
                if url.startswith("ftp"):
                    return f.fetch_ftp(url, str(tmp_path))
                return f.fetch(url, str(tmp_path))
            finally:
                f.close()

        res, seconds = _stopped_after(1.0, attempt)
        assert res.status == "000" and res.error == "interrupted", res
        assert seconds < 2.0
        assert os.listdir(tmp_path) == []  # nothing partial kept
    finally:
        for s in servers:
            s.close()


def test_sigterm_ends_a_run_within_seconds_whatever_the_servers_do(tmp_path):
    """A real ``kiel renew``: FTP 220- lines and an HTTP body dripping, SIGTERM once both
    are under way."""
    home = make_home(tmp_path / "home", "total_timeout = 600\nread_timeout = 30\n"
                                         "concurrency = 4\n")
    srv = hs.HostileServer()
    ftp = hs.HostileFTP(greeting_every=0.5, for_seconds=60)
    try:
        drip = srv.route("/drip", hs.drip_body(1000, 0.5))
        src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", ftp.url()),
                        text("RePEc:aaa:wpaper:2", drip))
        cmd = [sys.executable, "-m", "kiel", "renew", "--home", str(home), "--no-progress",
               str(src)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # both in flight: the greeting has begun and the body is dripping
        assert hs.wait_until(lambda: ftp.greeting_lines >= 1 and srv.body_bytes.get("/drip"),
                             timeout=60)
        assert srv.requests.get("/drip") == 1
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            _out, err = p.communicate(timeout=5.5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail("kiel renew still running 5.5 s after SIGTERM")
        assert time.monotonic() - t < 5
        assert p.returncode == 143, err
        # the lock is released: the next run (servers now quiet) does not exit 75
        ftp.close()
        srv.route("/drip", hs.good())
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode != 75, again.stderr
    finally:
        srv.close()
        ftp.close()
