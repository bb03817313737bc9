"""An answer with 1 500 header fields, and notes lines longer than a renewal's tail.

A renewal learns an object's past from the end of its ``00notes``: the
newest attempt (its age, ``since``, for ``give_up_after``), the body and
validators of a conditional request, the newest tist that names the next
attempt. An answer of 1 500 header fields used to make one 86 KB line, more
than the 16 KiB a renewal reads, and the object's past was lost. Each test
serves the answer from a real server on 127.0.0.1 (or writes such a line
into a store as bytes, as older runs wrote it) and asserts what the
renewal asked and wrote on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kiel import notes

from kit.cli import kiel, renew
from kit.homes import Clock, attempts, object_dir, run, set_config, text, write_amf
from kit.servers import GOOD_BODY, Conn, HostileServer, Route, response_head
from kit.stores import StoreBuilder, peak_bytes

RID = "RePEc:aaa:wpaper:1"
ETAG = '"v1-etag"'
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
FIELDS = 1500
PATH = "/paper.pdf"


def filler(n: int = FIELDS) -> list[tuple[str, str]]:
    """``n`` header fields of 57 bytes each: 86 KB in all."""
    return [(f"X-Filler-{i:04d}", "f" * 40) for i in range(n)]


def many_fields(status: str = "200", body: bytes = GOOD_BODY,
                etag: str | None = ETAG) -> Route:
    """A route answering with 1 500 fields before the ones that matter
    (a bound that kept only the first fields would lose the validators),
    and 304 when asked with its ETag."""
    def route(c: Conn) -> None:
        if etag is not None and c.headers.get("if-none-match") == etag:
            c.send(response_head("304", [*filler(), ("ETag", etag), ("Connection", "close")],
                                 "Not Modified"), False)
            return
        tail = [("ETag", etag)] if etag is not None else []
        tail += [("Last-Modified", LAST_MODIFIED), ("Content-Type", "application/pdf"),
                 ("Content-Length", str(len(body))), ("Connection", "close")]
        c.send(response_head(status, [*filler(), *tail], "Whatever"), False)
        c.send(body)
    return route


def lines_of(d: Path) -> list[dict]:
    return [json.loads(raw) for raw in (d / "00notes").read_bytes().splitlines()]


def test_an_answer_of_1500_fields_is_asked_again_conditionally(home, tmp_path):
    srv = HostileServer()
    try:
        url = srv.route(PATH, many_fields())
        src = write_amf(tmp_path / "a.xml", text(RID, url))
        for _ in range(2):
            r = renew(home, src)
            assert r.returncode == 0, r.stderr
        asked = srv.request_headers[PATH]
    finally:
        srv.close()
    assert len(asked) == 2
    assert "if-none-match" not in asked[0]
    assert asked[1].get("if-none-match") == ETAG  # before: asked unconditionally
    assert asked[1].get("if-modified-since") == LAST_MODIFIED
    d = object_dir(home, RID, url)
    first, second = attempts(d)
    assert first.split("_")[1] == "200" and (d / first).read_bytes() == GOOD_BODY
    # The 304 is understood: a link to the body it confirms, with its size and hashes.
    assert second.split("_")[1] == "304" and os.readlink(d / second) == first
    raw = (d / "00notes").read_bytes().splitlines()
    assert all(len(line) < notes.TAIL_WINDOW // 2 for line in raw), [len(x) for x in raw]
    one, two = lines_of(d)
    assert two["link"] == first and two["sha256"] == hashlib.sha256(GOOD_BODY).hexdigest()
    assert two["since"] == one["tist"] and two["ever_ok"] is True
    # What Kiel relies on is always kept, in the order received, and what was
    # left out is counted (fields, and their bytes as received).
    kept = [name for name, _ in one["headers"]]
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Length"):
        assert name in kept, name
    assert kept[-4:] == ["ETag", "Last-Modified", "Content-Type", "Content-Length"]
    assert len(kept) == notes.HEADER_FIELDS
    left = one["headers_left_out"]
    assert left["fields"] == FIELDS + 5 - len(kept)  # Connection: close is left out too
    assert left["bytes"] == (left["fields"] - 1) * (len("X-Filler-0000") + 40) + len(
        "Connectionclose")
    assert one["etag"] == ETAG and one["last_modified"] == LAST_MODIFIED
    assert ["ETag", ETAG] in two["headers"] and two["headers_left_out"]["fields"] > 1000
    v = kiel("verify", home=home)
    assert v.returncode == 0, v.stdout + v.stderr


def test_attempt_names_keep_their_order_after_a_clock_step_back(home, tmp_path):
    clock = Clock()
    srv = HostileServer()
    try:
        url = srv.route(PATH, many_fields(etag=None))
        src = write_amf(tmp_path / "a.xml", text(RID, url))
        run(home, src, clock=clock)
        clock.advance(-1000)  # the clock steps back between two runs
        run(home, src, clock=clock)
        assert srv.requests[PATH] == 2
    finally:
        srv.close()
    d = object_dir(home, RID, url)
    first, second = (e["file"] for e in lines_of(d))
    t1, t2 = int(first.split("_")[0]), int(second.split("_")[0])
    # ``ls`` order is the order of the attempts (before: the second was
    # named 1000 s before the first).
    assert t2 == t1 + 1, (first, second)
    assert attempts(d) == [first, second]
    assert os.readlink(d / second) == first  # the same body: a link to the first


def test_an_object_answering_404_with_1500_fields_is_given_up(home, tmp_path):
    set_config(home, give_up_after="1d")
    clock = Clock()
    srv = HostileServer()
    try:
        url = srv.route(PATH, many_fields("404", b"<html>gone</html>"))
        src = write_amf(tmp_path / "a.xml", text(RID, url))
        run(home, src, clock=clock)
        clock.advance(2 * 86400)
        s = run(home, src, clock=clock)
        # The object failed for longer than give_up_after: not asked again
        # (before: its age was unknown, it was asked for ever).
        assert srv.requests[PATH] == 1
        assert s.given_up == 1
        clock.advance(86400)
        run(home, src, clock=clock)
        assert srv.requests[PATH] == 1
    finally:
        srv.close()
    d = object_dir(home, RID, url)
    events = [e for e in lines_of(d) if e.get("event") == "given-up"]
    assert len(events) == 1 and events[0]["full_age"] == 2 * 86400


def test_a_store_with_an_86_kb_line_is_understood(home, tmp_path):
    """Lines as long as older runs wrote them: the reading side alone."""
    t0 = 1_700_000_000
    srv = HostileServer()
    try:
        url = srv.route(PATH, many_fields())
        b = StoreBuilder(home.root)
        d = Path(b.object_dir(RID, url))
        first = f"{t0}_200_application-pdf"
        (d / first).write_bytes(GOOD_BODY)
        headers = [list(f) for f in filler()] + [
            ["ETag", ETAG], ["Last-Modified", LAST_MODIFIED],
            ["Content-Type", "application/pdf"], ["Content-Length", str(len(GOOD_BODY))]]
        line = {"tist": t0, "url": url, "status": "200", "type": "application-pdf",
                "declared_type": "application/pdf", "size": len(GOOD_BODY),
                "sha256": hashlib.sha256(GOOD_BODY).hexdigest(),
                "sha1": hashlib.sha1(GOOD_BODY).hexdigest(), "file": first, "link": None,
                "location": None, "error": None, "elapsed": 0.1, "headers": headers,
                "attempt": 1, "etag": ETAG, "last_modified": LAST_MODIFIED, "since": t0,
                "ever_ok": True}
        raw = json.dumps(line, separators=(",", ":")).encode() + b"\n"
        assert len(raw) > 86_000
        (d / "00notes").write_bytes(raw)
        before = (d / "00notes").read_bytes()
        src = write_amf(tmp_path / "a.xml", text(RID, url))
        clock = Clock(t0 - 5000.0)  # and the clock is behind the stored attempt
        run(home, src, clock=clock)
        asked = srv.request_headers[PATH]
    finally:
        srv.close()
    assert len(asked) == 1 and asked[0].get("if-none-match") == ETAG  # before: unconditional
    assert attempts(d) == [first, f"{t0 + 1}_304_application-pdf"]
    assert os.readlink(d / f"{t0 + 1}_304_application-pdf") == first
    after = (d / "00notes").read_bytes()
    assert after.startswith(before)  # nothing written before is touched
    new = json.loads(after[len(before):])
    assert new["since"] == t0 and new["link"] == first and len(after) - len(before) < 8192


def test_the_tail_of_notes_ending_in_an_86_kb_line_holds_it(tmp_path):
    """What every reader of the newest lines gets (an object's past, a
    record's newest renewal line): at least the newest whole line, read
    back to as far as MAX_LINE bytes."""
    path = tmp_path / "00notes"
    small = {"tist": 1, "status": "000", "error": "timeout"}
    long = {"tist": 2, "status": "200", "etag": ETAG,
            "headers": [list(f) for f in filler()]}
    data = b"".join(json.dumps(e).encode() + b"\n" for e in (small, long))
    path.write_bytes(data)
    tail = notes.tail(str(path))
    assert tail.entries and tail.entries[-1]["etag"] == ETAG  # before: no line at all
    # A torn long line at the end (a crash in mid-write): the newest whole
    # line is the one before it, read back to.
    path.write_bytes(data + json.dumps(long).encode()[:90_000])
    assert notes.tail(str(path)).entries[-1]["etag"] == ETAG
    lines, _ = notes.tail_lines(str(path))
    assert json.loads(lines[-1])["tist"] == 2
    # The bound of reading back: a 3 GiB sparse ``00notes`` without a newline
    # (not Kiel's notes) costs one buffer of at most MAX_LINE bytes.
    with open(path, "wb") as f:
        f.truncate(3 * 2**30)
    tail = notes.tail(str(path))
    assert tail.entries == () and not tail.whole
    peak = peak_bytes(lambda: notes.tail(str(path)), times=1)
    assert peak < notes.MAX_LINE + 2**20, peak


def test_what_an_attempt_line_keeps_of_a_head():
    """The bound itself (kiel.notes.kept_headers): a small head is kept as it
    is; a big one keeps what Kiel relies on, then what fits, in order."""
    small = (("Content-Type", "text/html"), ("ETag", ETAG), ("Server", "x"))
    assert notes.kept_headers(small) == (small, None)
    # 30 fields of 400 bytes, then the ETag, two Link fields and a short one:
    # the ETag and both Link fields stay; of the others, what fits.
    bigs_sent = tuple(("X-Big", f"{i:03d}" + "b" * 397) for i in range(30))
    head = (*bigs_sent, ("ETag", ETAG), ("Link", "<a>; rel=x"), ("Link", "<b>; rel=y"),
            ("Server", "s"))
    kept, left = notes.kept_headers(head)
    assert ("ETag", ETAG) in kept
    assert [v for n, v in kept if n == "Link"] == ["<a>; rel=x", "<b>; rel=y"]
    assert kept == tuple(h for h in head if h in kept)  # the order received
    assert kept[:3] == bigs_sent[:3]  # the first of the others, not the last
    assert ("Server", "s") in kept  # a later field that fits is kept
    bigs = sum(1 for n, _ in kept if n == "X-Big")
    assert 0 < bigs < 30 and left == notes.LeftOut(30 - bigs, (30 - bigs) * 405)
    assert len(notes.dumps({"h": kept})) <= notes.HEADER_BYTES
    # An ETag of 20 000 bytes, over the budget alone, is still kept whole
    # (and the line is long: a tail reads back to it); nothing else is added.
    kept, left = notes.kept_headers((("Server", "s"), ("ETag", "e" * 20_000), *head[-3:]))
    assert kept == (("ETag", "e" * 20_000), ("Link", "<a>; rel=x"))
    assert left == notes.LeftOut(3, 2 * len("Servers") + len("Link<b>; rel=y"))
