"""Hostile records (issue 5): what strangers write in their AMF never breaks the archive.

The tests write the hostile bytes themselves. Every case runs after a first
run has stored a good record, with a new good record in the same run, and
checks: a clear problem (file, line, record) or a notes entry with a
reason; the good record renewed; the earlier record byte-identical; no
temporary file, and no path of the home that resolves outside it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from kiel import notes, store

from kit import servers as hs
from kit.homes import attempts, object_dir, record_dir, run, text, write_amf

EARLIER = "RePEc:aaa:wpaper:1"  # stored by the first run, must stay byte-identical
GOOD = "RePEc:bbb:wpaper:2"  # a good record in the same run as the hostile input
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def notes_of(d: Path) -> list[dict]:
    return list(notes.entries(str(d / "00notes")))


class Inputs:
    """The input directory of a home: the earlier record, then the hostile one."""

    def __init__(self, home, tmp_path: Path, clock):
        self.home = home
        self.dir = tmp_path / "in"
        self.clock = clock
        write_amf(self.dir / "0-earlier.xml", text(EARLIER, extra="<abstract>kept</abstract>"))
        first = run(home, self.dir, clock=clock)
        assert first.new_versions == 1 and first.input_errors == 0
        self.before = hs.snapshot(home.store)
        self.clock.advance()

    def run(self, name: str, data: bytes | None, good_in: str = "z-good.xml",
            expect_errors: bool = True):
        """Write ``data`` as ``name`` (None: leave it) and a good record, and run."""
        path = self.dir / name
        if data is not None:
            path.write_bytes(data)
        write_amf(self.dir / good_in, text(GOOD))
        s = run(self.home, self.dir, clock=self.clock)
        # The run went on, the earlier record is untouched, nothing is left behind.
        assert s.records_renewed >= 2
        assert store.versions(str(record_dir(self.home, GOOD))), "the good record was not stored"
        hs.assert_preserved(self.before, self.home.store)
        hs.assert_clean(self.home.root)
        assert sorted(os.listdir(self.home.root)) == ["etc", "store", "var"]
        assert (s.exit_status == 1) == expect_errors, s.problems
        return s, str(path)


@pytest.fixture
def inputs(home, tmp_path, clock) -> Inputs:
    return Inputs(home, tmp_path, clock)


def problem_for(s, path: str) -> str:
    (p,) = [p for p in s.problems if p.startswith(path)]
    return p


def line_of(data: bytes, needle: str) -> int:
    """The line of ``data`` where ``needle`` first occurs (1-based)."""
    return data[: data.index(needle.encode())].count(b"\n") + 1


def amf(*texts: str, head: str = XML_DECL, doctype: str = "") -> bytes:
    return (head + doctype + '<amf xmlns="http://amf.openlib.org">\n' + "\n".join(texts)
            + "\n</amf>\n").encode("utf-8")


# --- the XML itself ------------------------------------------------------------------


def test_external_entity_never_reads_the_local_file(inputs, tmp_path, home):
    secret = "KIEL-SECRET-7f3a9c"
    (tmp_path / "secret.txt").write_text(secret + "\n")
    uri = (tmp_path / "secret.txt").as_uri()
    doctype = (f'<!DOCTYPE amf [<!ENTITY xxe SYSTEM "{uri}">\n'
               f'<!ENTITY % pxxe SYSTEM "{uri}"> %pxxe;]>\n')
    data = amf(text("RePEc:ccc:wpaper:xxe", extra="<abstract>&xxe;</abstract>"),
               text("RePEc:ccc:wpaper:fine"), doctype=doctype)
    s, path = inputs.run("xxe.xml", data)
    p = problem_for(s, path)
    assert p.startswith(f"{path}, line {line_of(data, 'wpaper:xxe')} (record RePEc:ccc:wpaper:xxe)")
    assert p.endswith("cannot serialize: unexpanded entity reference &xxe;")
    assert not record_dir(home, "RePEc:ccc:wpaper:xxe").exists()
    assert store.versions(str(record_dir(home, "RePEc:ccc:wpaper:fine")))  # same file, goes on
    assert not hs.grep_home(home.root, secret.encode())
    assert not any(secret in p for p in s.problems)


def test_external_entity_in_an_attribute_is_not_well_formed(inputs, tmp_path, home):
    secret = "KIEL-SECRET-attr-51be"
    (tmp_path / "secret.txt").write_text(secret)
    doctype = f'<!DOCTYPE amf [<!ENTITY xxe SYSTEM "{(tmp_path / "secret.txt").as_uri()}">]>\n'
    data = amf(text("RePEc:ccc:wpaper:xxe", extra='<x a="&xxe;"/>'), doctype=doctype)
    s, path = inputs.run("xxe-attr.xml", data)
    p = problem_for(s, path)
    assert p.startswith(f"{path}, line {line_of(data, 'a=')}:")
    assert "external entity" in p and p.endswith("(file skipped)")
    assert not hs.grep_home(home.root, secret.encode())


@pytest.mark.parametrize("where", ["element", "attribute"])
def test_billion_laughs_is_not_expanded(inputs, home, where):
    ents = '<!ENTITY l0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    use = '<abstract>&l9;</abstract>' if where == "element" else '<x a="&l9;"/>'
    data = amf(text("RePEc:ccc:wpaper:lol", extra=use), doctype=f"<!DOCTYPE amf [{ents}]>\n")
    s, path = inputs.run("laughs.xml", data)
    # libxml2 refuses the declarations themselves, used or not
    p = problem_for(s, path)
    assert "Maximum entity amplification factor exceeded" in p and p.endswith("(file skipped)")
    assert not record_dir(home, "RePEc:ccc:wpaper:lol").exists()
    assert not hs.grep_home(home.root, b"lollollol" * 20)


def test_dtd_that_asks_for_the_network_asks_nothing(inputs, home):
    srv = hs.HostileServer()
    try:
        u = srv.url
        doctype = (f'<!DOCTYPE amf SYSTEM "{u("/amf.dtd")}" [\n'
                   f'<!ENTITY % remote SYSTEM "{u("/remote.ent")}"> %remote;\n'
                   f'<!ENTITY net SYSTEM "{u("/net.ent")}">]>\n')
        data = amf(text("RePEc:ccc:wpaper:net", extra="<abstract>&net;</abstract>"),
                   text("RePEc:ccc:wpaper:dtd", extra=(
                       f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                       f'href="{u("/xinclude")}"/>'
                       f'<y xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                       f'xsi:schemaLocation="http://amf.openlib.org {u("/amf.xsd")}"/>')),
                   doctype=doctype)
        s, path = inputs.run("network-dtd.xml", data)
        assert problem_for(s, path).startswith(f"{path}, line {line_of(data, 'wpaper:net')} ")
        assert srv.total_requests() == 0, srv.requests
        assert "unexpanded entity reference &net;" in problem_for(s, path)
        # the record without an entity is stored as it is; nothing was included
        rdir = record_dir(home, "RePEc:ccc:wpaper:dtd")
        (version,) = [n for _, n in store.versions(str(rdir))]
        assert b"xi:include" in (rdir / version).read_bytes()
    finally:
        srv.close()


def test_50_mb_attribute(inputs, home):
    head = (XML_DECL + '<amf xmlns="http://amf.openlib.org">\n'
            '<text id="RePEc:ccc:wpaper:big" title="').encode()
    path = inputs.dir / "big-attr.xml"
    with open(path, "wb") as f:
        f.write(head)
        chunk = b"A" * (1024 * 1024)
        for _ in range(50):
            f.write(chunk)
        f.write(b'"><title>t</title></text>\n</amf>\n')
    s, p = inputs.run("big-attr.xml", None)
    prob = problem_for(s, p)
    # The start tag never ends within max_record: libxml2 is fed no further,
    # the record is passed over and the file read on after it.
    assert prob == (f"{p}, line 3 (record RePEc:ccc:wpaper:big): record larger than 16 MiB "
                    "(setting max_record): its start tag does not end within it; skipped, "
                    "the records around it are read"), prob
    assert not record_dir(home, "RePEc:ccc:wpaper:big").exists()


def test_10000_levels_of_nesting(inputs, home):
    data = amf(text("RePEc:ccc:wpaper:deep", extra="<a>" * 10_000 + "</a>" * 10_000))
    s, path = inputs.run("deep.xml", data)
    prob = problem_for(s, path)
    assert "line 3" in prob and "depth" in prob and "(file skipped)" in prob
    assert not record_dir(home, "RePEc:ccc:wpaper:deep").exists()


@pytest.mark.parametrize("name,data,line,reason", [
    ("bad-utf8.xml", amf(text("RePEc:ccc:wpaper:u")).replace(b"Title of", b"Title \xff\xfe\xc3("),
     3, "Invalid bytes in character encoding"),
    ("truncated.xml", amf(text("RePEc:ccc:wpaper:t1"), text("RePEc:ccc:wpaper:t2"))[:-40],
     4, "not well-formed XML"),
    ("empty.xml", b"", None, "not well-formed XML"),
    ("html.xml", b"<!DOCTYPE html>\n<html><body><p>hello</p></body></html>\n", 2,
     "not AMF: root element is <html>"),
    ("foreign-amf.xml", b'<amf xmlns="http://example.org/other"><text id="x"/></amf>', 1,
     "not AMF: root <amf> in namespace http://example.org/other"),
    ("image.xml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0\0\0\x01\0\x08\x06", 1,
     "not well-formed XML"),
    ("nul-in-id.xml", amf('<text id="RePEc:ccc:wpaper:&#0;x"/>'), 3, "invalid xmlChar value 0"),
    ("broken.xml.gz", gzip.compress(amf(text("RePEc:ccc:wpaper:gz")))[:-30], None,
     "cannot read"),
])
def test_files_that_are_not_good_amf_are_skipped_whole(inputs, home, name, data, line, reason):
    s, path = inputs.run(name, data)
    prob = problem_for(s, path)
    assert reason in prob and prob.endswith("(file skipped)"), prob
    if line is not None:
        assert prob.startswith(f"{path}, line {line}:"), prob
    else:
        assert prob.startswith(f"{path}:"), prob
    # nothing of a skipped file is stored, not even its complete first record
    assert not list(Path(home.store).glob("RePEc/ccc"))
    assert s.gone == 0  # a run with a skipped file marks nothing as gone


# --- ids -------------------------------------------------------------------------------

STORED_IDS = [
    "RePEc:ccc:wpaper:a/b/../../../../../../etc",
    "../../../../../tmp/kiel-escape",
    "..",
    ".",
    "/",
    "/etc/passwd",
    "RePEc:ccc:wpaper:..",
    "RePEc:ccc:wpaper:../..",
    "RePEc::wpaper:1",
    "RePEc:ccc::1",
    "RePEc:::",
    "RePEc:ccc:wpaper:",
    "RePEc:ccc:wpaper::",
    ":::",
    "RePEc:ccc:wpaper:" + "x/.." * 990,  # 3977 characters: a cut name
    "ünï/cødé:" + "ß" * 1000,
]


def test_hostile_ids_stay_inside_the_store(inputs, home, tmp_path):
    long_id = "RePEc:ccc:wpaper:" + "y" * 10_000
    texts = [text(i.replace("&", "&amp;").replace('"', "&quot;")) for i in STORED_IDS] + [
        text("RePEc:ccc:wpaper:tab&#9;x"),
        text("RePEc:ccc:wpaper:cr&#13;x"),
        text("RePEc:ccc:wpaper:lf&#10;x"),
        text(long_id),
        text(""),
        text("   "),
        text(GOOD.replace("bbb", "ddd")),
    ]
    s, path = inputs.run("ids.xml", amf(*texts))
    for rid in STORED_IDS:
        rdir = record_dir(home, rid)
        assert os.path.realpath(rdir).startswith(os.path.realpath(home.store) + os.sep)
        (version,) = [n for _, n in store.versions(str(rdir))]
        assert f'id="{rid}"'.encode() in (rdir / version).read_bytes().replace(b"&quot;", b'"')
        assert notes_of(rdir)[-1]["id"] == rid
        rel = Path(os.path.relpath(rdir, home.store)).parts
        assert rel[0] in ("RePEc", "other") and len(rel) == (4 if rel[0] == "RePEc" else 2)
        assert all(len(part.encode()) <= 240 and not part.startswith(".") for part in rel)
    assert record_dir(home, STORED_IDS[14]).name.endswith(
        "%~" + hashlib.sha256(STORED_IDS[14][17:].encode()).hexdigest()[:16])
    # Nothing appeared next to the home or in the directories the ids name.
    assert sorted(os.listdir(tmp_path)) == ["home", "in"]
    assert not Path("/tmp/kiel-escape").exists()
    # Every record directory is one of the ids above, the earlier one or the good ones.
    expected = {os.path.relpath(record_dir(home, i), home.store) for i in
                STORED_IDS + [EARLIER, GOOD, GOOD.replace("bbb", "ddd")]}
    found = {os.path.relpath(d, home.store) for d in store.iter_record_dirs(home.store)}
    assert found == expected
    probs = [p for p in s.problems if p.startswith(path)]
    lines = {int(p.split(", line ")[1].split(":")[0].split(" ")[0]) for p in probs}
    assert lines == set(range(len(STORED_IDS) + 3, len(STORED_IDS) + 9))
    assert sum("id holds control characters" in p for p in probs) == 3
    assert sum("id longer than 4096 bytes" in p for p in probs) == 1
    assert sum("text with an empty id" in p for p in probs) == 2
    # A line break in an id cannot forge a line of the run's log.
    log = Path(s.log).read_bytes()
    assert all(line.startswith(b"20") for line in log.split(b"\n")[:-1])


def test_ids_with_c1_control_characters_are_reported(inputs, home):
    data = amf(text("RePEc:ccc:wpaper:csi\u009b31mred"), text("RePEc:ccc:wpaper:nel\u0085x"))
    s, path = inputs.run("c1.xml", data)
    probs = [p for p in s.problems if p.startswith(path)]
    assert len(probs) == 2 and all("id holds control characters" in p for p in probs)
    assert not list(Path(home.store).glob("RePEc/ccc"))


# --- branch values ---------------------------------------------------------------------


def test_hostile_branch_values(inputs, home, srv):
    v6 = hs.HostileServer("::1")
    try:
        port = srv.port
        fetched = {
            "space": srv.route("/with%20space.pdf", hs.good()).replace("%20", " "),
            "auth": f"http://kieluser:Pa55w0rdXyz@127.0.0.1:{port}/auth.pdf",
            "v6": v6.route("/v6.pdf", hs.good()),
            "idn-digits": f"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/wide.pdf",
            "idn-long": f"http://{'ü' * 70}.example/x.pdf",
        }
        srv.route("/auth.pdf", hs.good())
        skipped = {
            "file:///etc/passwd": "scheme file is not fetched",
            "FILE:///etc/shadow": "scheme file is not fetched",
            "javascript:alert(document.cookie)": "scheme javascript is not fetched",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==":
                "scheme data is not fetched",
            "paper.pdf": "not an absolute URL",
            "../../../etc/passwd": "not an absolute URL",
            f"//127.0.0.1:{port}/scheme-relative": "not an absolute URL",
            f"http://127.0.0.1:{port}/" + "a" * 20_000: "URL longer than 8192 characters",
            f"http://127.0.0.1:{port}/line\nbreak": "URL holds control characters or line breaks",
            f"http://127.0.0.1:{port}/tab\there": "URL holds control characters or line breaks",
            "http://[::1/unclosed": "malformed URL: Invalid IPv6 URL",
            "http://127.0.0.1:99999/x": "malformed URL: Port out of range 0-65535",
            "http://127.0.0.1:0/x": "URL with port 0",
            "http://127.0.0.1:-1/x": "malformed URL: Port",
            "http:///no-host": "URL without a host",
        }
        values = list(fetched.values()) + list(skipped)
        rid = "RePEc:ccc:wpaper:values"
        data = amf(text(rid, *[v.replace("&", "&amp;").replace("<", "&lt;") for v in values]))
        s, path = inputs.run("values.xml", data, expect_errors=False)

        rdir = record_dir(home, rid)
        (rnote,) = notes_of(rdir)
        got = {e["value"]: e["reason"] for e in rnote["skipped"]}
        assert set(got) == {v[:500] for v in skipped} and len(rnote["skipped"]) == len(skipped)
        for v, reason in skipped.items():
            assert got[v[:500]].startswith(reason), (v[:80], got[v[:500]])
        assert all(e["branch"] == "file/url" for e in rnote["skipped"])
        # Only the fetched values asked anything of the servers.
        assert set(srv.requests) == {"/with%20space.pdf", "/auth.pdf"}
        assert v6.requests == {"/v6.pdf": 1}

        space = object_dir(home, rid, fetched["space"].replace(" ", "%20"))
        assert attempts(space)[0].endswith("_200_application-pdf")
        named = fetched["auth"].replace("Pa55w0rdXyz", "***")
        assert named in rnote["urls"]["file/url"]
        assert (object_dir(home, rid, named) / "00url").read_text() == named + "\n"
        assert srv.request_headers["/auth.pdf"][0]["authorization"].startswith("Basic ")
        # the record's own version keeps the URL as written; nothing Kiel writes does
        assert not hs.grep_home(home.root, b"Pa55w0rdXyz", except_versions=True)
        assert not any("Pa55w0rdXyz" in p for p in s.problems)
        (v6name,) = attempts(object_dir(home, rid, fetched["v6"]))
        assert v6name.endswith("_200_application-pdf")
        for key in ("idn-digits", "idn-long"):
            od = object_dir(home, rid, fetched[key])
            (name,) = attempts(od)
            (note,) = notes_of(od)
            assert name.endswith("_000_none") and note["error"] == "url", note
            assert "IDNA" in note["detail"]
        assert not hs.grep_home(home.root, b"root:x:0:0")
        assert not any(d.startswith(("file", "javascript", "data")) for d in os.listdir(rdir))
    finally:
        v6.close()


def test_password_in_a_skipped_value_is_never_written(inputs, home):
    values = ["http://kieluser:Sk1ppedPw@127.0.0.1:99999/x",
              "http://kieluser:Sk1ppedPw@127.0.0.1/a\nb",
              "ftp://kieluser:Sk1ppedPw@127.0.0.1/" + "z" * 9000]
    inputs.run("pw.xml", amf(text("RePEc:ccc:wpaper:pw", *values)), expect_errors=False)
    rdir = record_dir(home, "RePEc:ccc:wpaper:pw")
    assert len(notes_of(rdir)[0]["skipped"]) == 3
    assert not hs.grep_home(home.root, b"Sk1ppedPw", except_versions=True)
