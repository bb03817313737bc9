"""Worker processes: records shared out by the URLs they share; a worker
killed ends the run as interrupted, and nothing is marked gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from werkzeug import Response

from kiel import notes
from kiel.renewal import processes
from kiel.renewal.plan import Planned
from kiel.urls import Target

from kit.homes import make_home, object_dir, record_dir, set_config, text, write_amf
from kit.servers import wait_until


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_records_sharing_urls_go_to_one_worker():
    comps = {"a/1": "a/1", "a/2": "a/1", "b/9": "a/1"}

    def p(rel: str) -> Planned:
        return Planned(rel, rel, "f:1", b"", (Target("http://x/", "http://x/"),), {}, [],
                       frozenset())

    for n in (2, 3, 7):
        assert len({processes.worker_of(p(r), comps, n) for r in comps}) == 1
    spread = {processes.worker_of(p(f"c/{i}"), comps, 2) for i in range(50)}
    assert spread == {0, 1}  # the others are shared out


def test_planned_records_cross_the_pipe_unchanged():
    p = Planned("RePEc:a:b:1", "RePEc/a/b/1", "in.xml:3", "<text>é</text>".encode(),
                (Target("http://u:p@x/a b", "http://***@x/a%20b"),), {"file": ["http://x/"]},
                [{"value": "file:/etc", "reason": "no"}], frozenset({"http://x/"}), ("o.xml:9",),
                1700000000)
    assert processes.decode(processes.encode(p)) == p


def test_a_planned_record_crosses_the_pipe_as_the_scan_wrote_it(tmp_path):
    """The plan keeps the scan's JSON of a record; the pipe carries it as it
    is (no second encoding in the parent) and the worker reads the same record."""
    import json

    from kiel.renewal.plan import plan
    from kiel.spool import ExternalSort

    s = ExternalSort(str(tmp_path))
    for rel, src in (("RePEc/a/b/1", "in.xml:3"), ("RePEc/a/b/2", "in.xml:9"),
                     ("RePEc/a/b/2", "other.xml:4")):
        payload = json.dumps({
            "id": rel.replace("/", ":"), "rel": rel, "f": 1, "src": src, "l": 1700000000,
            "xml": "<text>\u00e9\n</text>", "t": [["http://u:p@x/a b", "http://***@x/a%20b"]],
            "u": {"file": ["http://x/"]}, "s": [], "d": ["http://x/"]},
            ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        s.add(b"%012d\x00%s\x00%s\t" % (1, rel.encode(), src.encode()) + payload)
    dups: list[str] = []
    first, second = plan(s, set(), lambda _id, src, _kept: dups.append(src))
    assert dups == ["other.xml:4"] and second.duplicates == ("other.xml:4",)
    assert processes.encode(first) == first.raw + b"\n"
    for p in (first, second):
        line = processes.encode(p)
        assert line.count(b"\n") == 1
        assert processes.decode(line) == p
    assert first.xml == "<text>é\n</text>".encode() and first.last_end == 1700000000


def test_the_scan_finds_components_through_chains_of_shared_urls(home, httpserver, tmp_path):
    from kiel.renewal.scan import _find_shared
    from kiel.spool import ExternalSort

    s = ExternalSort(str(tmp_path))
    for url, rel in ((b"http://1", b"r\x01a"), (b"http://1", b"r\x01b"), (b"http://2", b"r\x01b"),
                     (b"http://2", b"r\x01c"), (b"http://3", b"r\x01d")):
        s.add(url + b"\t" + rel)
    shared: set[str] = set()
    comps: dict[str, str] = {}
    _find_shared(s, shared, comps)
    assert shared == {"http://1", "http://2"}
    assert set(comps) == {"r/a", "r/b", "r/c"} and len(set(comps.values())) == 1


def test_a_worker_killed_ends_the_run_interrupted_and_nothing_is_gone(httpserver, tmp_path):
    from kiel.home import Home

    home = Home(str(make_home(tmp_path / "home", "processes = 2\nconcurrency = 4\nper_host = 4\n")))

    def slow(request):
        time.sleep(0.3)
        return Response(b"slow body", content_type="text/plain")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    old = "RePEc:aaa:wpaper:old"
    src = write_amf(tmp_path / "in" / "a.xml", text(old))
    first = subprocess.run([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                            "--no-progress", str(src)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    # The old record leaves the input: a clean full run would mark it gone.
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(40)]
    write_amf(tmp_path / "in" / "a.xml",
              *[text(i, httpserver.url_for("/slow") + f"?{n}") for n, i in enumerate(ids)])
    p = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                          "--no-progress", str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: len(_children(p.pid)) == 2), "two worker processes"
    kids = _children(p.pid)
    # A record finished: the workers are renewing.
    assert wait_until(lambda: any((record_dir(home, i) / "00last").exists() for i in ids))
    os.kill(kids[0], signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, (out, err)
    assert "a worker process ended without its counts (killed by signal 9)" in err
    summary = json.loads(max(Path(home.root, "var", "runs").glob("*.json"),
                             key=os.path.getmtime).read_text())
    assert summary["interrupted"] == "worker-lost" and summary["gone"] == 0
    assert not (record_dir(home, old) / "00gone").exists()
    # The next run repairs and completes; then the old record is gone.
    again = subprocess.run([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                            "--no-progress", str(src)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert (record_dir(home, old) / "00gone").exists()
    for n, i in enumerate(ids):
        d = object_dir(home, i, httpserver.url_for("/slow") + f"?{n}")
        assert [e["status"] for e in notes.entries(str(d / "00notes"))][-1] == "200"


def test_processes_counted_from_the_settings():
    assert processes.count(2, 2, 0.0) == 2
    assert processes.count(4, 2, 0.0) == 2  # never more than per_host
    assert processes.count(2, 2, 0.5) == 1  # a host delay is kept by one process
    assert processes.count(0, 16, 0.0) == (os.cpu_count() or 1)


def test_set_config_is_used(home):
    set_config(home, processes=3)
    assert home.config().processes == 3


def test_the_progress_line_adds_up_the_workers(home, httpserver, tmp_path):
    from kiel import renewal

    def slow(request):
        time.sleep(0.1)
        return Response(b"slow body", content_type="text/plain")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    set_config(home, processes=2, concurrency=2, per_host=2)
    ids = [f"RePEc:aaa:wpaper:{i}" for i in range(30)]
    src = write_amf(tmp_path / "a.xml",
                    *[text(i, httpserver.url_for("/slow") + f"?{n}") for n, i in enumerate(ids)])
    seen: list[renewal.Progress] = []
    s = renewal.renew(home, renewal.Options(inputs=(str(src),), progress=seen.append))
    assert s.records_renewed == 30
    renew = [p for p in seen if p.phase == "renew"]
    assert renew, [p.phase for p in seen]
    assert all(p.records_found == 30 and p.records_done <= 30 for p in renew)
    assert max(p.records_done for p in renew) > 0
    assert max(p.objects_done for p in renew) > 0
