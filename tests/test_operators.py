"""What an operator meets around a renewal: records never marked gone by
accident, cron mail when a person is needed, dead hosts not tried all night,
a run log that names every failing object, run summaries that never
overwrite each other. Exact messages and exit statuses are asserted."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from kiel import notes

from kit.cli import renew
from kit.homes import make_home, text, write_amf

# Root reads every directory: without its two capabilities for reading, a
# directory of mode 0 is unreadable to it as to anyone (setpriv, util-linux).
NO_READ_ALL = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def collection(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(n)]
    d = tmp_path / "in"
    for i in ids:
        write_amf(d / f"{i.rsplit(':', 1)[1]}.xml", text(i))
    return d, ids


def gone_count(home: Path) -> int:
    return len(list((home / "store").rglob("00gone")))


def test_an_empty_input_directory_marks_nothing_gone(tmp_path):
    home = make_home(tmp_path / "h", "gone_max_share = 5%\n")
    d, ids = collection(tmp_path, 30)
    assert renew(home, str(d)).returncode == 0
    for f in d.iterdir():
        f.unlink()
    r = renew(home, "--quiet", str(d))
    assert r.returncode == 1, r.stderr
    assert r.stderr == ("error: 30 of 30 records (100.0 %) were not in the input, more than "
                        "gone_max_share (5 %): none was marked gone. If the input is right, "
                        "run again with --allow-gone\n")
    assert gone_count(home) == 0


def test_gone_within_the_share_and_past_it_with_allow_gone(tmp_path):
    home = make_home(tmp_path / "h", "gone_max_share = 5%\n")
    d, ids = collection(tmp_path, 40)
    assert renew(home, str(d)).returncode == 0
    (d / "0.xml").unlink()  # 1 of 40: 2.5 %
    r = renew(home, str(d))
    assert r.returncode == 0 and gone_count(home) == 1, r.stderr
    for n in range(1, 6):  # 5 more of 39: 12.8 %
        (d / f"{n}.xml").unlink()
    r = renew(home, str(d))
    assert r.returncode == 1 and gone_count(home) == 1
    assert "5 of 39 records (12.8 %) were not in the input" in r.stderr
    assert "5 held back from gone" in r.stdout
    r = renew(home, "--allow-gone", str(d))
    assert r.returncode == 0 and gone_count(home) == 6, r.stderr


def test_an_unreadable_input_directory_is_an_error_and_marks_nothing_gone(tmp_path):
    home = make_home(tmp_path / "h")
    d, ids = collection(tmp_path, 4)
    sub = d / "more"
    write_amf(sub / "x.xml", text("RePEc:aaa:wpaper:x"))
    assert renew(home, str(d)).returncode == 0
    sub.chmod(0)
    r = renew(home, "--quiet", str(d), prefix=NO_READ_ALL)
    sub.chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert f"error: {sub}: cannot list directory: Permission denied" in r.stderr, r.stderr
    assert gone_count(home) == 0


def dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more: connections are refused
    return port


def test_every_server_down_is_an_alert_and_dead_hosts_are_not_tried_all_night(tmp_path):
    home = make_home(tmp_path / "h", "host_down_after = 3\nalert_min_attempts = 10\n"
                     "per_host = 1\nconcurrency = 1\n")
    port = dead_port()
    src = write_amf(tmp_path / "a.xml",
                    *[text(f"RePEc:aaa:wpaper:{i}", f"http://127.0.0.1:{port}/o{i}")
                      for i in range(20)])
    r = renew(home, "--quiet", str(src))
    assert r.returncode == 69, (r.returncode, r.stderr)
    host = f"http://127.0.0.1:{port}"
    assert r.stderr == (f"alert: 20 of 20 attempts (100 %) could not connect; most affected: "
                        f"{host} (20)\n")
    errors = []
    for p in sorted((home / "store").rglob("00notes")):
        errors += [e["error"] for e in notes.entries(str(p)) if "status" in e]
    assert errors.count("refused") == 3 and errors.count("host-down") == 17, errors
    summary = json.loads(next((home / "var" / "runs").glob("*.json")).read_text())
    assert summary["host_down"] == 17 and summary["exit_status"] == 69
    # the next run tries again
    r = renew(home, "--quiet", str(src))
    errors = []
    for p in sorted((home / "store").rglob("00notes")):
        errors += [e["error"] for e in notes.entries(str(p)) if "status" in e]
    assert errors.count("refused") == 6


def test_the_run_log_names_every_failing_object(tmp_path, httpserver):
    httpserver.expect_request("/gone").respond_with_data(b"no", status=404)
    httpserver.expect_request("/ok").respond_with_data(b"ok")
    home = make_home(tmp_path / "h")
    port = dead_port()
    src = write_amf(tmp_path / "a.xml",
                    text("RePEc:aaa:wpaper:1", httpserver.url_for("/gone"),
                         httpserver.url_for("/ok")),
                    text("RePEc:aaa:wpaper:2", f"http://127.0.0.1:{port}/x"))
    r = renew(home, str(src))
    assert r.returncode == 0, r.stderr
    (log,) = (home / "var" / "log").glob("*.log")
    text_ = log.read_text()
    assert f"failed: {httpserver.url_for('/gone')} 404  (record RePEc:aaa:wpaper:1)" in text_
    assert f"failed: http://127.0.0.1:{port}/x 000 refused (record RePEc:aaa:wpaper:2)" in text_
    assert "failed: " + httpserver.url_for("/ok") not in text_


def test_two_runs_in_one_second_keep_both_summaries_and_logs(tmp_path):
    home = make_home(tmp_path / "h")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"))
    from kiel import renewal
    from kiel.home import Home

    h = Home(str(home))
    a = renewal.renew(h, renewal.Options(inputs=(str(src),), clock=lambda: 1_800_000_000.0))
    b = renewal.renew(h, renewal.Options(inputs=(str(src),), clock=lambda: 1_800_000_000.0))
    assert a.summary_file != b.summary_file and a.log != b.log
    assert sorted(p.name for p in (home / "var" / "runs").iterdir()) == [
        "1800000000.1.json", "1800000000.json"]
    assert json.loads(Path(a.summary_file).read_text())["tist"] == 1_800_000_000
    shutil.rmtree(home / "var" / "log")


def test_which_duplicate_wins_does_not_depend_on_the_walk(tmp_path):
    """The copy in the handle's archive directory wins; elsewhere the smaller
    path; the kept record's notes name the copy skipped."""
    home = make_home(tmp_path / "h")
    rid = "RePEc:zzz:wpaper:1"
    d = tmp_path / "in"
    write_amf(d / "zzz" / "y.xml", text(rid, extra="<note>real</note>"))
    write_amf(d / "aaa" / "x.xml", text(rid, extra="<note>impostor</note>"))
    r = renew(home, "--quiet", str(d))
    assert r.returncode == 1
    assert r.stderr == (f"error: {d / 'aaa' / 'x.xml'}, line 3 (record {rid}): handle of "
                        f"archive zzz in {d / 'aaa'}, the directory of archive aaa; skipped "
                        "(setting archive_dirs)\n"), r.stderr
    from kiel.redist import record_path

    from kit.homes import record_dir as rd  # noqa: F401

    rdir = home / "store" / record_path(rid)
    (v,) = [p for p in rdir.iterdir() if p.name.endswith(".amf.xml")]
    assert b"real" in v.read_bytes()
    # without the archive rule, two copies in neutral places: the smaller path wins
    home2 = make_home(tmp_path / "h2", "archive_dirs = no\n")
    d2 = tmp_path / "in2"
    write_amf(d2 / "b.xml", text(rid, extra="<note>b</note>"))
    write_amf(d2 / "a.xml", text(rid, extra="<note>a</note>"))
    r = renew(home2, "--quiet", str(d2))
    assert r.returncode == 1
    assert f"error: {d2 / 'b.xml'}, line 3 (record {rid}): duplicate id, also at " \
        f"{d2 / 'a.xml'}, line 3, which is kept" in r.stderr, r.stderr
    rdir = home2 / "store" / record_path(rid)
    (v,) = [p for p in rdir.iterdir() if p.name.endswith(".amf.xml")]
    assert b"<note>a</note>" in v.read_bytes()
    (line,) = [e for e in notes.entries(str(rdir / "00notes")) if e.get("event") == "renewal"]
    assert line["duplicates"] == [f"{d2 / 'b.xml'}:3"]


def test_every_attempt_denied_by_the_network_guard_is_an_alert_in_its_own_words(
        tmp_path, httpserver):
    # The test server is on loopback, which the guard refuses unless allowed:
    # an allow_networks set for another network denies every attempt.
    httpserver.expect_request("/o").respond_with_data(b"never asked")
    home = make_home(tmp_path / "h", "allow_networks = 10.0.0.0/8\nalert_min_attempts = 10\n")
    src = write_amf(tmp_path / "a.xml",
                    *[text(f"RePEc:aaa:wpaper:{i}", httpserver.url_for(f"/o?{i}"))
                      for i in range(12)])
    r = renew(home, "--quiet", str(src))
    host = f"http://localhost:{httpserver.port}"  # the server's URLs name it so
    assert r.stderr == (
        "alert: 12 of 12 attempts (100 %) were denied by the network guard (the address "
        "dialled is in deny_networks or an always-refused kind, and not in allow_networks; "
        f"or the resolver answers with such addresses); most affected: {host} (12)\n")
    assert r.returncode == 69
    assert httpserver.log == []  # denied before any connection
    summary = json.loads(next((home / "var" / "runs").glob("*.json")).read_text())
    assert summary["errors_by_kind"] == {"denied": 12} and summary["exit_status"] == 69
