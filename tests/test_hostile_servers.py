"""Hostile servers (issue 5): what a stranger's server sends never breaks the archive.

Each case is a real misbehaviour on the wire, written byte by byte by
:mod:`kit.servers`. The pattern of every case: a first run stores a
good body of the URL; then the server turns hostile and a second run,
which also holds a new good record, must end the attempt in ``000`` (or the
stored status where a complete answer arrived) with a clear ``error`` in
the object's notes, keep nothing partial, renew the good record, and leave
every earlier file byte-identical.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiel import notes

from kit import servers as hs
from kit.homes import Clock, attempts, object_dir, record_dir, run, set_config, text, write_amf

HOSTILE = "RePEc:aaa:wpaper:1"
GOOD = "RePEc:bbb:wpaper:2"


def notes_of(d: Path) -> list[dict]:
    return list(notes.entries(str(d / "00notes")))


@dataclass
class Case:
    pdir: Path  # the hostile URL's object directory
    name: str  # the attempt the second run made
    note: dict  # its notes line
    record_note: dict  # the hostile record's notes line of the second run
    summary: object
    seconds: float  # wall time of the second run
    t2: int


def hostile_run(home, srv, tmp_path, clock: Clock, path: str, route: hs.Route,
                extra_urls: tuple[str, ...] = ()) -> Case:
    """Run once with a good body at ``path``, then again with ``route`` there."""
    url = srv.route(path, hs.good(b"earlier body of " + path.encode() + b"\n" + hs.GOOD_BODY))
    src = write_amf(tmp_path / "in" / "a.xml", text(HOSTILE, url, *extra_urls))
    first = run(home, src, clock=clock)
    assert first.input_errors == 0
    before = hs.snapshot(home.store)
    earlier = attempts(object_dir(home, HOSTILE, url))
    assert earlier and earlier[0].endswith("_200_application-pdf")

    srv.reset_counts()
    srv.route(path, route)
    good_url = srv.route("/good-" + path.strip("/").replace("/", "-"), hs.good())
    write_amf(tmp_path / "in" / "a.xml", text(HOSTILE, url, *extra_urls),
              text(GOOD, good_url))
    clock.advance()
    t0 = time.monotonic()
    s = run(home, src, clock=clock)
    seconds = time.monotonic() - t0
    t2 = int(clock())

    # The run went on: the good record of the same run is complete.
    assert s.exit_status == 0 and s.records_renewed == 2
    gdir = object_dir(home, GOOD, good_url)
    (gname,) = attempts(gdir)
    assert gname == f"{t2}_200_application-pdf"
    assert (gdir / gname).read_bytes() == hs.GOOD_BODY
    # Earlier versions and bodies are byte-identical; nothing temporary is left.
    hs.assert_preserved(before, home.store)
    hs.assert_clean(home.root)

    pdir = object_dir(home, HOSTILE, url)
    names = attempts(pdir)
    assert names[: len(earlier)] == earlier and len(names) == len(earlier) + 1
    name = names[-1]
    note = notes_of(pdir)[-1]
    assert note["file"] == name and note["tist"] == t2
    (rnote,) = [n for n in notes_of(record_dir(home, HOSTILE)) if n.get("tist") == t2]
    return Case(pdir, name, note, rnote, s, seconds, t2)


def assert_000(case: Case, error: str) -> None:
    """No complete answer: an empty ``000`` file, the reason in the notes."""
    assert case.name == f"{case.t2}_000_none"
    assert (case.pdir / case.name).stat().st_size == 0, "a partial body was kept"
    assert not (case.pdir / case.name).is_symlink()
    assert case.note["status"] == "000" and case.note["error"] == error, case.note
    assert case.note["size"] == 0 and case.note["sha256"] is None


def test_body_dripping_one_byte_a_second_meets_the_total_deadline(home, srv, tmp_path, clock):
    # Six bytes, one a second: the defect shows as six seconds instead of two or three.
    set_config(home, total_timeout=2, read_timeout=3)
    case = hostile_run(home, srv, tmp_path, clock, "/drip", hs.drip_body(6, 1.0))
    assert_000(case, "timeout")
    assert 2 <= case.note["elapsed"] < 4.5


def test_head_dripping_one_byte_at_a_time_meets_the_total_deadline(home, srv, tmp_path, clock):
    set_config(home, total_timeout=1.5, read_timeout=3)
    case = hostile_run(home, srv, tmp_path, clock, "/drip-head", hs.drip_head(0.2, 5.0))
    assert_000(case, "timeout")
    assert case.note["elapsed"] < 3


def test_reset_in_mid_body(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/reset", hs.reset_mid_body())
    assert_000(case, "reset")
    assert srv.body_bytes["/reset"] > len(hs.GOOD_BODY)  # the body had started


def test_content_length_longer_than_the_body(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/short",
                       hs.length_lies(1000, b"only five hundred bytes " * 20))
    assert_000(case, "incomplete")
    assert "expected 1000" in case.note["detail"]


def test_content_length_shorter_than_the_body_smuggles_nothing(home, srv, tmp_path, clock):
    """The body ends where Content-Length says; what follows (here a forged
    second answer) is not kept, and the next request on the same server
    is not answered by it."""
    set_config(home, concurrency=1, per_host=1)
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Type: text/plain\r\n\r\nSMUGGLED"
    after = srv.url("/after")
    srv.route("/after", hs.good(b"the real answer to /after\n", "text/plain"))
    case = hostile_run(home, srv, tmp_path, clock, "/long",
                       hs.length_lies(10, b"ten bytes!" + b"tail" * 100 + forged),
                       extra_urls=(after,))
    assert case.name == f"{case.t2}_200_text-plain"
    assert (case.pdir / case.name).read_bytes() == b"ten bytes!"
    assert case.note["size"] == 10 and case.note["error"] is None
    adir = object_dir(home, HOSTILE, after)
    assert (adir / attempts(adir)[-1]).read_bytes() == b"the real answer to /after\n"
    assert not hs.grep_home(home.root, b"SMUGGLED")


def test_gzip_bomb_counts_decoded_bytes(home, srv, tmp_path, clock):
    set_config(home, max_body="1MiB")
    bomb = hs.gzip_bomb(10 * 1024 * 1024)
    assert bomb.payload_size < 64 * 1024  # small on the wire, 10 MB decoded
    case = hostile_run(home, srv, tmp_path, clock, "/bomb", bomb)
    assert_000(case, "too-large")
    assert "decoded" in case.note["detail"]


def test_content_length_of_10_gb_is_refused_before_download(home, srv, tmp_path, clock):
    # The default max_body (2 GiB) is far below 10 GB. The server waits 3 s
    # for the client to hang up before it sends any body byte.
    case = hostile_run(home, srv, tmp_path, clock, "/huge", hs.huge_length(10 * 1000**3, 3.0))
    assert_000(case, "too-large")
    assert "Content-Length 10000000000" in case.note["detail"]
    assert srv.body_bytes.get("/huge", 0) == 0, "body bytes were sent: not refused up front"
    assert case.note["elapsed"] < 2


def test_one_megabyte_of_headers(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/headers", hs.huge_headers(1024 * 1024))
    assert_000(case, "protocol")
    assert case.seconds < 8


def test_status_line_099_is_no_answer(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/s099", hs.status_line("099"))
    assert_000(case, "protocol")
    assert "99" in case.note["detail"]


@pytest.mark.parametrize("code", ["600", "999"])
def test_status_lines_600_and_999_are_stored_as_they_came(home, srv, tmp_path, clock, code):
    """A complete answer with a three-digit status outside the registry is data."""
    case = hostile_run(home, srv, tmp_path, clock, f"/s{code}", hs.status_line(code))
    assert case.name == f"{case.t2}_{code}_text-plain"
    assert (case.pdir / case.name).read_bytes() == b"odd status\n"
    assert case.note["status"] == code and case.note["error"] is None


def _garbage_type(declared: str) -> hs.Route:
    return hs.raw(b"HTTP/1.1 200 OK\r\nContent-Type: " + declared.encode("latin-1")
                  + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_garbage_content_type_becomes_a_safe_name(home, srv, tmp_path, clock):
    declared = "Text/HTML/../../../../etc/passwd;;;=\xff\xfe; charset=\"x"
    case = hostile_run(home, srv, tmp_path, clock, "/ctype", _garbage_type(declared))
    # An empty body takes the declared type, made into a token: no "/", nothing else.
    assert case.name == f"{case.t2}_200_text-html-..-..-..-..-etc-passwd"
    assert (case.pdir / case.name).stat().st_size == 0
    assert case.note["declared_type"] == declared
    assert os.path.dirname(os.path.realpath(case.pdir / case.name)) == str(
        os.path.realpath(case.pdir))


def test_garbage_content_type_on_a_body_is_sniffed(home, srv, tmp_path, clock):
    body = b"%PDF-1.4\nnot what it says\n%%EOF\n"
    route = hs.raw(b"HTTP/1.1 200 OK\r\nContent-Type: \xff\xfe\x80//\r\nContent-Length: "
                   + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    case = hostile_run(home, srv, tmp_path, clock, "/ctype-body", route)
    assert case.name == f"{case.t2}_200_application-pdf"
    assert (case.pdir / case.name).read_bytes() == body


def test_long_content_type_does_not_stop_the_run(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/ctype-long",
                       _garbage_type("application/" + "x" * 400))
    assert case.name.startswith(f"{case.t2}_200_application-xxx")
    assert len(case.name.encode()) <= 255


def test_endless_redirect_cycle(home, srv, tmp_path, clock):
    a, b = srv.url("/cyc-a"), srv.url("/cyc-b")
    srv.route("/cyc-b", hs.redirect(a))
    srv.route("/self", hs.redirect("/self"))
    me = srv.url("/self")
    case = hostile_run(home, srv, tmp_path, clock, "/cyc-a", hs.redirect(b), extra_urls=(me,))
    assert case.name == f"{case.t2}_302_none" and case.note["location"] == b
    assert (case.pdir / case.name).stat().st_size == 0
    errors = case.record_note["errors"]
    assert any("loop ends the chain" in e and b in e for e in errors), errors
    assert any("loop ends the chain" in e and me in e for e in errors), errors
    # each asked once in the second run: no cycling
    assert srv.requests["/cyc-a"] == 1 and srv.requests["/cyc-b"] == 1
    assert srv.requests["/self"] == 1


def test_redirect_chain_of_50_hops_stops_at_max_redirects(home, srv, tmp_path, clock):
    for i in range(1, 50):
        srv.route(f"/hop/{i}", hs.redirect(f"/hop/{i + 1}"))
    srv.route("/hop/50", hs.good())
    case = hostile_run(home, srv, tmp_path, clock, "/hop/0", hs.redirect("/hop/1"))
    assert case.name.endswith("_302_none")
    rdir = record_dir(home, HOSTILE)
    fetched = sorted(int(p) for p in (k.rsplit("/", 1)[1] for k in srv.requests
                                      if k.startswith("/hop/")))
    assert fetched == list(range(11))  # the object and 10 hops, not one more
    assert len([d for d in os.listdir(rdir) if d.startswith("http")]) == 11
    errors = case.record_note["errors"]
    assert any("more than 10 redirects" in e and srv.url("/hop/11") in e for e in errors)
    assert case.record_note["urls"]["(redirect)"] == [srv.url(f"/hop/{i}") for i in range(1, 11)]


def test_redirect_to_a_local_file_is_not_followed(home, srv, tmp_path, clock):
    case = hostile_run(home, srv, tmp_path, clock, "/to-file", hs.redirect("file:///etc/passwd"))
    assert case.note["location"] == "file:///etc/passwd"
    assert any("file:///etc/passwd not followed: scheme file is not fetched" in e
               for e in case.record_note["errors"])
    assert not hs.grep_home(home.root, b"root:x:0:0")


def test_redirect_to_a_url_with_a_password_keeps_it_out_of_the_notes(home, srv, tmp_path, clock):
    target = f"http://agent:Red1rectPw@127.0.0.1:{srv.port}/good-pw"
    srv.route("/good-pw", hs.good())
    case = hostile_run(home, srv, tmp_path, clock, "/to-pw", hs.redirect(target))
    assert srv.request_headers["/good-pw"][-1]["authorization"].startswith("Basic ")
    assert case.note["location"] == f"http://agent:***@127.0.0.1:{srv.port}/good-pw"
    assert not hs.grep_home(home.root, b"Red1rectPw")


def test_tls_handshake_that_never_completes(home, srv, tmp_path, clock):
    set_config(home, connect_timeout=1)
    tls = hs.SilentTLS()
    try:
        case = hostile_run(home, srv, tmp_path, clock, "/plain", hs.good(),
                           extra_urls=(tls.url("/paper.pdf"),))
        tdir = object_dir(home, HOSTILE, tls.url("/paper.pdf"))
        names = attempts(tdir)
        assert [n.split("_", 1)[1] for n in names] == ["000_none", "000_none"]
        assert all((tdir / n).stat().st_size == 0 for n in names)
        for note in notes_of(tdir):
            assert note["status"] == "000" and note["error"] == "timeout", note
            assert 0.9 <= note["elapsed"] < 3
        assert tls.accepted >= 2 and tls.hello_bytes > 0  # TCP connected; TLS never answered
        assert case.name.endswith("_200_application-pdf")  # the same record's other object
    finally:
        tls.close()


# --- issue 11: honest bodies and deadlines on every protocol ---------------------------


def test_gzip_missing_its_last_bytes_is_not_kept_as_whole(home, srv, tmp_path, clock):
    import gzip

    body = hs.GOOD_BODY * 100
    cut = gzip.compress(body)[:-20]
    case = hostile_run(home, srv, tmp_path, clock, "/cut-gzip", hs.encoded(cut, "gzip"))
    assert_000(case, "truncated")


def test_multi_member_gzip_is_kept_whole(home, srv, tmp_path, clock):
    import gzip

    body = hs.GOOD_BODY * 100
    two = gzip.compress(body[:5000]) + gzip.compress(body[5000:])
    case = hostile_run(home, srv, tmp_path, clock, "/two-members", hs.encoded(two, "gzip"))
    assert case.name == f"{case.t2}_200_application-pdf"
    assert (case.pdir / case.name).read_bytes() == body


@pytest.mark.parametrize("kind", ["greeting", "data"])
def test_ftp_dripping_meets_the_total_deadline(home, srv, tmp_path, clock, kind):
    # 220- continuation lines (or the file's bytes) every half second, each
    # well within read_timeout: only the attempt's total deadline ends it.
    set_config(home, total_timeout=2, read_timeout=3)
    ftp = hs.HostileFTP(greeting_every=0.5 if kind == "greeting" else None,
                        data_every=0.5 if kind == "data" else None)
    try:
        good_url = srv.route("/good", hs.good())
        src = write_amf(tmp_path / "a.xml", text(HOSTILE, ftp.url()), text(GOOD, good_url))
        t0 = time.monotonic()
        s = run(home, src, clock=clock)
        assert time.monotonic() - t0 < 6
        assert s.records_renewed == 2
        d = object_dir(home, HOSTILE, ftp.url())
        (name,) = attempts(d)
        assert name.endswith("_000_none") and (d / name).stat().st_size == 0
        note = notes_of(d)[-1]
        assert note["error"] == "timeout", note
        assert 1.9 <= note["elapsed"] < 3.5
        if kind == "greeting":
            assert 2 <= ftp.greeting_lines <= 8
        else:
            assert ftp.data_connections == 1
        hs.assert_clean(home.root)
    finally:
        ftp.close()
