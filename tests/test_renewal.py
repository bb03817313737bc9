"""The renewal core against a real HTTP server: the files on disk are the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from werkzeug import Response

from kiel import notes, store
from kiel.errors import BranchesError, ConfigError, LockHeld
from kiel.home import Lock

from kit.homes import attempts, object_dir, record_dir, run, set_config, text, write_amf

PDF = b"%PDF-1.4\n" + b"x" * 2000 + b"\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><head><title>t</title></head><body>page</body></html>\n"


def serve(httpserver, path, body=b"", status=200, content_type="application/octet-stream",
          headers=None):
    httpserver.expect_request(path).respond_with_data(body, status=status,
                                                      content_type=content_type,
                                                      headers=headers or {})
    return httpserver.url_for(path)


def notes_of(d: Path) -> list[dict]:
    return list(notes.entries(str(d / "00notes")))


def test_first_run_on_virgin_records(home, httpserver, tmp_path, clock):
    page = serve(httpserver, "/page", HTML, content_type="text/html")
    pdf = serve(httpserver, "/paper.pdf", PDF, content_type="application/pdf")
    src = write_amf(tmp_path / "in" / "a.amf.xml", text("RePEc:aaa:wpaper:1", pdf, display=page))
    s = run(home, src, clock=clock)
    assert (s.records_found, s.new_versions, s.virgin, s.input_errors) == (1, 1, 1, 0)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    assert rdir == Path(home.store) / "RePEc" / "aaa" / "wpaper" / "1"
    tist = int(clock())
    version = rdir / f"{tist}.amf.xml"
    assert version.read_bytes().startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">'
        b'<text id="RePEc:aaa:wpaper:1">')
    assert (rdir / "00last").read_text() == f"{tist} {tist}\n"
    pdir = object_dir(home, "RePEc:aaa:wpaper:1", pdf)
    assert (pdir / "00url").read_text() == pdf + "\n"
    assert attempts(pdir) == [f"{tist}_200_application-pdf"]
    assert (pdir / f"{tist}_200_application-pdf").read_bytes() == PDF
    assert attempts(object_dir(home, "RePEc:aaa:wpaper:1", page)) == [f"{tist}_200_text-html"]
    (line,) = notes_of(pdir)
    assert line["status"] == "200" and line["size"] == len(PDF) and line["link"] is None
    import hashlib
    assert line["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert line["sha1"] == hashlib.sha1(PDF).hexdigest()
    assert set(line) >= {"tist", "url", "status", "type", "declared_type", "size", "sha256",
                         "sha1", "file", "link", "location", "error", "elapsed"}
    (rline,) = notes_of(rdir)
    assert rline["version"] == f"{tist}.amf.xml"
    assert rline["urls"] == {"displaypage": [page], "file/url": [pdf]}
    # nothing hidden is left behind
    assert not [p for p in Path(home.store).rglob(".kiel-tmp-*")]


def test_unchanged_second_run_links_bodies_and_adds_no_version(home, httpserver, tmp_path, clock):
    page = serve(httpserver, "/page", HTML, content_type="text/html")
    pdf = serve(httpserver, "/paper.pdf", PDF, content_type="application/pdf")
    empty = serve(httpserver, "/empty", b"", content_type="text/plain")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", pdf, empty, display=page))
    run(home, src, clock=clock)
    t1 = int(clock())
    clock.advance(100)
    s = run(home, src, clock=clock)
    t2 = int(clock())
    assert (s.new_versions, s.unchanged) == (0, 1)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    assert store.versions(str(rdir)) == [(t1, f"{t1}.amf.xml")]
    assert (rdir / "00last").read_text() == f"{t2} {t2}\n"
    pdir = object_dir(home, "RePEc:aaa:wpaper:1", pdf)
    new = pdir / f"{t2}_200_application-pdf"
    assert new.is_symlink() and os.readlink(new) == f"{t1}_200_application-pdf"
    assert new.read_bytes() == PDF
    # an empty body is never linked: it stays an empty regular file
    edir = object_dir(home, "RePEc:aaa:wpaper:1", empty)
    second = edir / f"{t2}_200_text-plain"
    assert second.exists() and not second.is_symlink() and second.stat().st_size == 0
    assert notes_of(pdir)[-1]["link"] == f"{t1}_200_application-pdf"


def test_changed_body_is_a_new_regular_file(home, httpserver, tmp_path, clock):
    url = serve(httpserver, "/paper.pdf", PDF, content_type="application/pdf")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    httpserver.clear()
    serve(httpserver, "/paper.pdf", PDF + b"more", content_type="application/pdf")
    clock.advance()
    run(home, src, clock=clock)
    pdir = object_dir(home, "RePEc:aaa:wpaper:1", url)
    names = attempts(pdir)
    assert len(names) == 2
    assert not any((pdir / n).is_symlink() for n in names)
    assert (pdir / names[0]).read_bytes() == PDF
    assert (pdir / names[1]).read_bytes() == PDF + b"more"


def test_one_added_space_is_a_new_version(home, httpserver, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml",
                    text("RePEc:aaa:wpaper:1", extra="<abstract>a b</abstract>"))
    run(home, src, clock=clock)
    first = int(clock())
    clock.advance()
    write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", extra="<abstract>a  b</abstract>"))
    s = run(home, src, clock=clock)
    assert s.new_versions == 1
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    names = [n for _, n in store.versions(str(rdir))]
    assert names == [f"{first}.amf.xml", f"{int(clock())}.amf.xml"]
    assert b"a b" in (rdir / names[0]).read_bytes() and b"a  b" in (rdir / names[1]).read_bytes()


def test_serialization_is_deterministic_across_layouts(home, tmp_path, clock):
    """Equal records give equal bytes whatever the file around them."""
    a = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"), text("RePEc:aaa:wpaper:2"))
    run(home, a, clock=clock)
    (tmp_path / "a.xml").unlink()
    # Now the same text alone, with a BOM, a comment and a prefixed namespace
    bare = ('\ufeff<!-- c --><amf:text xmlns:amf="http://amf.openlib.org" id="RePEc:aaa:wpaper:2">'
            '<amf:title>Title of RePEc:aaa:wpaper:2</amf:title></amf:text>')
    (tmp_path / "b.xml").write_bytes(bare.encode("utf-8"))
    clock.advance()
    s = run(home, tmp_path / "b.xml", clock=clock)
    assert (s.new_versions, s.unchanged) == (0, 1)


@pytest.mark.parametrize("status,body", [(404, b"not here"), (404, b""), (500, b"oops"),
                                         (500, b"")])
def test_error_statuses_are_stored_with_their_body(home, httpserver, tmp_path, clock, status,
                                                   body):
    url = serve(httpserver, "/x", body, status=status, content_type="text/plain")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    s = run(home, src, clock=clock)
    assert s.exit_status == 0  # failed objects are data, not errors
    pdir = object_dir(home, "RePEc:aaa:wpaper:1", url)
    (name,) = attempts(pdir)
    assert name == f"{int(clock())}_{status}_text-plain"
    assert (pdir / name).read_bytes() == body


def test_redirect_chain_is_followed_and_recorded(home, httpserver, tmp_path, clock):
    final = serve(httpserver, "/c", PDF, content_type="application/pdf")
    b = serve(httpserver, "/b", b"", status=302, headers={"Location": "/c"})
    a = serve(httpserver, "/a", b"moved", status=301, content_type="text/html",
              headers={"Location": httpserver.url_for("/b")})
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", a))
    run(home, src, clock=clock)
    t = int(clock())
    rid = "RePEc:aaa:wpaper:1"
    assert attempts(object_dir(home, rid, a)) == [f"{t}_301_text-plain"]
    assert notes_of(object_dir(home, rid, a))[0]["location"] == b
    assert attempts(object_dir(home, rid, b)) == [f"{t}_302_application-octet-stream"]
    assert notes_of(object_dir(home, rid, b))[0]["location"] == final
    assert (object_dir(home, rid, final) / f"{t}_200_application-pdf").read_bytes() == PDF


def test_redirect_loop_ends_the_chain(home, httpserver, tmp_path, clock):
    a = httpserver.url_for("/a")
    b = serve(httpserver, "/b", b"", status=302, headers={"Location": a})
    serve(httpserver, "/a", b"", status=302, headers={"Location": b})
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", a))
    s = run(home, src, clock=clock)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    assert len(attempts(object_dir(home, "RePEc:aaa:wpaper:1", a))) == 1
    assert len(attempts(object_dir(home, "RePEc:aaa:wpaper:1", b))) == 1
    (line,) = notes_of(rdir)
    assert any("loop" in e for e in line["errors"])
    assert s.records_renewed == 1


def test_redirect_hops_are_limited(home, httpserver, tmp_path, clock):
    set_config(home, max_redirects=3)
    for i in range(6):
        serve(httpserver, f"/r{i}", b"", status=302, headers={"Location": f"/r{i + 1}"})
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", httpserver.url_for("/r0")))
    run(home, src, clock=clock)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    dirs = [d for d in os.listdir(rdir) if d.startswith("http")]
    assert len(dirs) == 4  # the object and 3 hops
    assert any("more than 3 redirects" in e for e in notes_of(rdir)[0]["errors"])


def test_unreachable_host_is_000(home, tmp_path, clock):
    url = "http://127.0.0.1:1/closed"
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    pdir = object_dir(home, "RePEc:aaa:wpaper:1", url)
    (name,) = attempts(pdir)
    assert name == f"{int(clock())}_000_none"
    assert (pdir / name).stat().st_size == 0
    line = notes_of(pdir)[0]
    assert line["status"] == "000" and line["error"] == "refused"


def test_too_large_body_keeps_nothing_partial(home, httpserver, tmp_path, clock):
    set_config(home, max_body=1000)
    big = serve(httpserver, "/big", b"y" * 5000, content_type="text/plain")

    def chunked(_request):
        return Response(iter([b"z" * 600] * 5), content_type="text/plain")  # no length

    httpserver.expect_request("/chunked").respond_with_handler(chunked)
    ch = httpserver.url_for("/chunked")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", big, ch))
    run(home, src, clock=clock)
    for url in (big, ch):
        pdir = object_dir(home, "RePEc:aaa:wpaper:1", url)
        (name,) = attempts(pdir)
        assert name.endswith("_000_none") and (pdir / name).stat().st_size == 0
        assert notes_of(pdir)[0]["error"] == "too-large"
        assert not [n for n in os.listdir(pdir) if n.startswith(".")]


def test_two_texts_missing_id_and_duplicate_id(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"), text(None),
                    text("RePEc:aaa:wpaper:2"), text("RePEc:AAA:WPAPER:1", extra="<x/>"))
    s = run(home, src, clock=clock)
    assert s.new_versions == 2 and s.duplicates == 1 and s.input_errors == 2
    assert s.exit_status == 1
    msgs = "\n".join(s.problems)
    assert f"{src}, line 4: text without id" in msgs
    assert "duplicate id" in msgs and "line 6" in msgs
    # the first occurrence wins
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    (name,) = [n for _, n in store.versions(str(rdir))]
    assert b"<x" not in (rdir / name).read_bytes()


def test_malformed_file_is_skipped_and_the_run_goes_on(home, tmp_path, clock):
    good = write_amf(tmp_path / "in" / "good.xml", text("RePEc:aaa:wpaper:1"))
    bad = tmp_path / "in" / "bad.xml"
    bad.write_text('<amf xmlns="http://amf.openlib.org"><text id="RePEc:aaa:wpaper:9">'
                   "<title>t</title></text>\n<text id='x'><oops></text></amf>")
    s = run(home, tmp_path / "in", clock=clock)
    assert s.new_versions == 1 and s.input_errors == 1
    assert any(str(bad) in p and "line 2" in p and "not well-formed" in p for p in s.problems)
    # the whole malformed file is skipped, even its complete first record
    assert not record_dir(home, "RePEc:aaa:wpaper:9").exists()
    assert record_dir(home, "RePEc:aaa:wpaper:1").exists()
    del good


def test_gzip_input(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.amf.xml.gz", text("RePEc:aaa:wpaper:1"), gz=True)
    s = run(home, tmp_path, clock=clock)
    assert s.new_versions == 1
    assert record_dir(home, "RePEc:aaa:wpaper:1").is_dir()
    del src


def test_long_url_gets_a_cut_name(home, httpserver, tmp_path, clock):
    url = serve(httpserver, "/" + "a" * 300, b"long", content_type="text/plain")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    import hashlib
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    (d,) = [n for n in os.listdir(rdir) if n.startswith("http")]
    assert len(d.encode()) <= 240
    assert d.endswith("~" + hashlib.sha256(url.encode()).hexdigest()[:16])
    assert (rdir / d / "00url").read_text() == url + "\n"


def test_url_with_dotdot_and_unicode_stays_inside(home, httpserver, tmp_path, clock):
    serve(httpserver, "/d/café.pdf", PDF, content_type="application/pdf")  # werkzeug decodes
    url = httpserver.url_for("/x/../d/café.pdf")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", url))
    run(home, src, clock=clock)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    (d,) = [n for n in os.listdir(rdir) if n.startswith("http")]
    assert "/" not in d and "%2E%2E" not in d and "..%2F" in d and "caf%C3%A9" in d
    assert (rdir / d / "00url").read_text(encoding="utf-8") == url + "\n"
    (name,) = attempts(rdir / d)
    assert name.endswith("_200_application-pdf")


def test_non_http_values_are_noted_and_skipped(home, httpserver, tmp_path, clock):
    ok = serve(httpserver, "/ok", b"fine", content_type="text/plain")
    upper = ok.replace("http://", "Http://")
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", "mailto:a@b.c", "javascript:x()",
                                             "file:///etc/passwd", "relative/path.pdf", upper))
    run(home, src, clock=clock)
    rdir = record_dir(home, "RePEc:aaa:wpaper:1")
    (line,) = notes_of(rdir)
    reasons = {s["value"]: s["reason"] for s in line["skipped"]}
    assert reasons == {"mailto:a@b.c": "scheme mailto is not fetched",
                       "javascript:x()": "scheme javascript is not fetched",
                       "file:///etc/passwd": "scheme file is not fetched",
                       "relative/path.pdf": "not an absolute URL"}
    dirs = [n for n in os.listdir(rdir) if n.startswith("http")]
    assert dirs == [object_dir(home, "RePEc:aaa:wpaper:1", ok).name]  # Http:// is http


def test_branches_versioning(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"))
    run(home, src, clock=clock)
    etc = Path(home.etc)
    original = (etc / "branches.xml").read_bytes()
    clock.advance()
    run(home, src, clock=clock)
    assert sorted(os.listdir(etc)) == ["branches.xml", "kiel.conf"]  # unchanged: nothing kept
    last_used = int(clock())
    (etc / "branches.xml").write_text('<branches><branch xpath="file/url"/></branches>')
    clock.advance()
    run(home, src, clock=clock)
    assert (etc / f"branches_{last_used}.xml").read_bytes() == original


def test_renew_refuses_invalid_branches(home, tmp_path, clock):
    Path(home.branches).write_text('<branches>\n<branch xpath="/amf/text/url"/>\n</branches>')
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"))
    with pytest.raises(BranchesError, match="line 2: absolute path"):
        run(home, src, clock=clock)
    assert not record_dir(home, "RePEc:aaa:wpaper:1").exists()


def test_lock_held_by_another_renewal(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"))
    with Lock(home):
        with pytest.raises(LockHeld) as e:
            run(home, src, clock=clock)
    assert e.value.exit_status == 75 and "pid" in str(e.value)
    run(home, src, clock=clock)  # free again


def test_oldest_00last_first(home, httpserver, tmp_path, clock):
    """Virgin records first, then by the end of their last renewal."""
    order = []

    def note(request):
        order.append(request.path)
        return Response(b"x", content_type="text/plain")

    httpserver.expect_request("/r1").respond_with_handler(note)
    httpserver.expect_request("/r2").respond_with_handler(note)
    httpserver.expect_request("/r3").respond_with_handler(note)
    set_config(home, concurrency=1)
    r = {i: httpserver.url_for(f"/r{i}") for i in (1, 2, 3)}
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", r[1]),
                    text("RePEc:aaa:wpaper:2", r[2]))
    run(home, src, clock=clock)
    # record 2 renewed again later: record 1 is now the most overdue
    clock.advance()
    run(home, write_amf(tmp_path / "b.xml", text("RePEc:aaa:wpaper:2", r[2])), clock=clock)
    clock.advance()
    order.clear()
    write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:2", r[2]),
              text("RePEc:aaa:wpaper:1", r[1]), text("RePEc:aaa:wpaper:3", r[3]))
    run(home, tmp_path / "a.xml", clock=clock)
    assert order == ["/r3", "/r1", "/r2"]


def test_config_errors_name_file_and_line(home, tmp_path):
    with open(home.conf, "a") as f:
        f.write("per_host = many\n")
    with pytest.raises(ConfigError) as e:
        home.config()
    assert "kiel.conf, line" in str(e.value) and "per_host" in str(e.value)


def test_summary_and_log_are_written(home, tmp_path, clock):
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1"), text(None))
    s = run(home, src, clock=clock)
    data = json.loads(Path(s.summary_file).read_text())
    assert data["records_found"] == 1 and data["input_errors"] == 1 and data["exit_status"] == 1
    assert Path(s.summary_file).name == f"{int(clock())}.json"
    log = Path(s.log).read_text()
    assert "text without id" in log and "record RePEc:aaa:wpaper:1" in log
