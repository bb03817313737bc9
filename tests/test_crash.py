"""Crashes lose nothing: SIGKILL at 30+ exact moments of a renewal.

Each scenario starts from the same preserved store, changes the world a
little (a record, a body), runs ``kiel renew`` in a subprocess that kills
itself with a real SIGKILL at the N-th passage through a named point
(``KIEL_FAULT``, see kiel/faults.py), runs it again without fault, and
checks: the store passes the contract checks, everything preserved before
is byte-identical (notes only grew), and the store has the same shape as an
uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from kiel import notes, store
from kiel.home import Home
from kiel.verify import verify

from kit.cli import renew
from kit.homes import make_home, renewal_gone, text, write_amf
from kit.servers import wait_until

BIG = b"%PDF-1.4\n" + bytes(range(256)) * 1200 + b"\n%%EOF\n"  # several 64 KiB chunks

POINTS = [("write.tmp", n) for n in (1, 2)] + \
    [("publish.before", n) for n in (1, 2, 3)] + \
    [("publish.linked", n) for n in (1, 2, 3)] + \
    [("symlink.before", n) for n in (1, 2, 3)] + \
    [("symlink.made", n) for n in (1, 2, 3)] + \
    [("replace.tmp", n) for n in (1, 2, 4)] + \
    [("notes.torn", n, "torn") for n in (1, 2, 3, 5, 8, 11)] + \
    [("notes.before", n) for n in (1, 3, 6, 9)] + \
    [("body.chunk", n) for n in (1, 2, 3, 4)]


def kiel(home: Path, src: Path, fault: str | None = None) -> int:
    """One quiet renewal with ``fault`` injected (none: KIEL_FAULT removed).
    A killed run's worker processes die a moment after it, holding the
    home's lock till then: the next run starts once they are gone."""
    code = renew(home, "--quiet", src, env={"KIEL_FAULT": fault}).returncode
    assert wait_until(lambda: renewal_gone(Home(str(home))), 10)
    return code


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple[str, str | bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", p.read_bytes())
    return out


def shape(root: Path) -> dict:
    """The store up to tists: versions, objects, distinct bodies, newest attempt."""
    result = {}
    for rdir in store.iter_record_dirs(str(root)):
        rel = os.path.relpath(rdir, root)
        versions = [Path(rdir, n).read_bytes() for _, n in store.versions(rdir)]
        objs = {}
        for name in sorted(os.listdir(rdir)):
            d = Path(rdir, name)
            if not d.is_dir():
                continue
            att = sorted(n for n in os.listdir(d) if store.parse_attempt(n))
            bodies = {hashlib.sha256((d / n).read_bytes()).hexdigest() for n in att
                      if (d / n).stat().st_size}
            newest = att[-1]
            objs[name] = (frozenset(bodies), newest.split("_", 1)[1],
                          hashlib.sha256((d / newest).read_bytes()).hexdigest())
        result[rel] = (tuple(dict.fromkeys(versions)), objs)
    return result


def contract_problems(home: Path) -> list[str]:
    v = verify(str(home))
    findings = [str(f) for f in v if f.kind not in ("notes-torn",)]
    bad = [f for f in findings]
    for p in Path(home, "store").rglob("*"):
        if p.name.startswith(".kiel-tmp-"):
            bad.append(f"temporary file left: {p}")
        if p.is_symlink():
            target = os.readlink(p)
            real = os.path.realpath(p)
            if os.path.isabs(target) or not real.startswith(str(Path(home, "store").resolve())) \
                    or not os.path.isfile(real) or os.path.islink(real):
                bad.append(f"bad link {p} -> {target}")
    return bad


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server, inputs, a preserved store (one run) and the reference store."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    base = tmp_path_factory.mktemp("world")
    bodies = {"/big.pdf": BIG, "/page.html": b"<html><body>v1</body></html>",
              "/same.txt": b"never changes\n", "/shared.html": b"<html>journal</html>"}

    def route(path, body, status=200, headers=None):
        server.expect_request(path).respond_with_data(body, status=status, headers=headers)

    for p, b in bodies.items():
        route(p, b)
    route("/gone", b"not here", status=404)
    route("/moved", b"", status=301, headers={"Location": "/same.txt"})
    u = server.url_for
    src = base / "in" / "a.xml"
    records = [text("RePEc:aaa:wpaper:1", u("/big.pdf"), u("/same.txt"), display=u("/shared.html")),
               text("RePEc:aaa:wpaper:2", u("/gone"), u("/moved"), display=u("/shared.html")),
               text("RePEc:bbb:series:x:1", u("/page.html"), display=u("/shared.html"))]
    write_amf(src, *records)
    home = base / "home"
    make_home(home, "concurrency = 2\n")
    assert kiel(home, src) == 0
    # the world changes: one body, one record
    server.clear()
    for p, b in bodies.items():
        route(p, b if p != "/page.html" else b"<html><body>v2</body></html>")
    route("/gone", b"not here", status=404)
    route("/moved", b"", status=301, headers={"Location": "/same.txt"})
    changed = base / "in2" / "a.xml"
    write_amf(changed, records[0].replace("Title of", "New title of"), *records[1:])
    reference = base / "reference"
    shutil.copytree(home, reference, symlinks=True)
    assert kiel(reference, changed) == 0
    assert kiel(reference, changed) == 0
    yield home, changed, shape(reference / "store")
    server.stop()


def test_sigkill_at_many_moments_loses_nothing(world, tmp_path):
    preserved, src, reference_shape = world
    before = snapshot(preserved / "store")
    killed = []
    for point, n, *action in POINTS:
        home = tmp_path / f"{point}-{n}"
        shutil.copytree(preserved, home, symlinks=True)
        rc = kiel(home, src, f"{point}@{n}" + (f":{action[0]}" if action else ""))
        if rc == -signal.SIGKILL:
            killed.append((point, n))
        else:
            assert rc == 0, (point, n, rc)
        assert kiel(home, src) == 0, (point, n)
        problems = contract_problems(home)
        assert not problems, (point, n, problems)
        after = snapshot(home / "store")
        for rel, (kind, content) in before.items():
            name = os.path.basename(rel)
            if name == "00last":
                continue
            assert rel in after, (point, n, rel)
            if name == "00notes":  # append-only
                assert after[rel][1].startswith(content), (point, n, rel)
            else:
                assert after[rel] == (kind, content), (point, n, rel)
        assert shape(home / "store") == reference_shape, (point, n)
        shutil.rmtree(home)
    # the faults really fired: a real SIGKILL at 30 or more distinct moments
    assert len(killed) >= 30, killed


def test_torn_notes_line_is_skipped_and_ended(world, tmp_path):
    preserved, src, _ = world
    home = tmp_path / "torn"
    shutil.copytree(preserved, home, symlinks=True)
    assert kiel(home, src, "notes.torn@1:torn") == -signal.SIGKILL
    torn = [p for p in (home / "store").rglob("00notes")
            if not p.read_bytes().endswith(b"\n")]
    assert len(torn) == 1
    complete = list(notes.entries(str(torn[0])))  # readers skip the torn line
    assert all(isinstance(e, dict) for e in complete)
    assert kiel(home, src) == 0
    data = torn[0].read_bytes()
    assert data.endswith(b"\n")
    kinds = {f.kind for f in verify(str(home))}
    assert "notes-unparseable" not in kinds
