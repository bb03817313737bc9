"""kiel verify: a clean store gives nothing; each breach made here is found.

Like bagit-python's tests: build a good store, damage it on purpose, and
check that exactly the expected finding comes out, with its path.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from kiel.cli_tools import verify as verify_cmd
from kiel.errors import NotFound
from kiel.escape import escape
from kiel.home import Home, Lock
from kiel.redist import record_path
from kiel.verify import KINDS, prefix_path, verify

from kit.stores import (
    DAY,
    DOI_ID,
    NEW_URL,
    PDF_URL,
    REPEC_ID,
    T0,
    grown_store,
    line,
    make_store,
    peak_bytes,
)

REC = record_path(REPEC_ID)  # RePEc/aaa/wpaper/1
PDF_DIR = f"{REC}/{escape(PDF_URL)}"
PDF_FILE = f"{PDF_DIR}/{T0 + 1}_200_application-pdf"
NEW_DIR = f"{REC}/{escape(NEW_URL)}"


@pytest.fixture
def home(tmp_path):
    make_store(tmp_path)
    return str(tmp_path)


def store_path(home: str, rel: str) -> str:
    return os.path.join(home, "store", rel)


def found(home: str, **kw) -> set[tuple[str, str]]:
    return {(f.kind, f.path) for f in verify(home, **kw)}


def run(home: str, *args: str):
    return CliRunner().invoke(verify_cmd, ["--home", home, *args])


def test_clean_store_gives_no_finding(home):
    v = verify(home, fixity=True)
    assert list(v) == []
    s = v.summary
    assert (s.records, s.versions, s.objects, s.attempt_files, s.links) == (2, 3, 5, 9, 2)
    # Seven regular attempt files and two versions whose notes carry a sha256;
    # the version of the other record has none: not checked.
    assert (s.fixity_passed, s.fixity_failed, s.fixity_not_checked) == (9, 0, 1)
    assert s.clean and s.breaches == s.warnings == 0
    result = run(home, "--fixity")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "checked 2 records, 3 versions, 5 objects, 9 attempt files (2 links)\n"
        "fixity: 9 passed, 0 failed, 1 not checked\n"
        "0 breaches, 0 warnings\n")


def test_flipped_byte_is_caught_by_fixity_only(home):
    path = store_path(home, PDF_FILE)
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0x01]))
    assert found(home) == set()  # same size: only a re-hash can tell
    findings = list(verify(home, fixity=True))
    assert [(f.kind, f.path) for f in findings] == [("fixity-failed", PDF_FILE)]
    assert findings[0].expected != findings[0].found
    result = run(home, "--fixity")
    assert result.exit_code == 1
    assert f"breach fixity-failed: {PDF_FILE}: sha256 differs from the notes" in result.output
    assert "fixity: 8 passed, 1 failed, 1 not checked\n1 breach, 0 warnings\n" in result.output


def test_empty_file_without_sha256_passes_on_its_size(home):
    name = f"{T0 + 9 * DAY}_000_none"
    open(store_path(home, f"{NEW_DIR}/{name}"), "wb").close()
    line(store_path(home, f"{NEW_DIR}/00notes"),
         {"tist": T0 + 9 * DAY, "status": "000", "type": "none", "size": 0, "sha256": None,
          "file": name, "error": "refused"})
    v = verify(home, fixity=True)
    assert list(v) == []
    assert (v.summary.fixity_passed, v.summary.fixity_not_checked) == (10, 1)


def test_flipped_byte_in_a_version(home):
    path = store_path(home, f"{REC}/{T0}.amf.xml")
    data = bytearray(open(path, "rb").read())
    data[data.index(b"First")] ^= 0x20  # "First" -> "first": still XML
    open(path, "wb").write(bytes(data))
    assert found(home, fixity=True) == {("fixity-failed", f"{REC}/{T0}.amf.xml")}


def test_version_in_the_wrong_directory(home):
    path = store_path(home, f"{REC}/{T0}.amf.xml")
    data = open(path, "rb").read().replace(b"RePEc:aaa:wpaper:1", b"RePEc:aaa:wpaper:2")
    open(path, "wb").write(data)
    kinds = {k for k, _ in found(home, fixity=True)}
    assert kinds == {"fixity-failed", "version-misplaced"}


def test_absolute_link(home):
    link = store_path(home, f"{PDF_DIR}/{T0 + 5 * DAY}_200_application-pdf")
    os.symlink(store_path(home, PDF_FILE), link)
    rel = os.path.relpath(link, os.path.join(home, "store"))
    assert found(home) == {("link-absolute", rel), ("file-without-notes", rel)}


def test_dangling_link(home):
    os.unlink(store_path(home, PDF_FILE))
    # The link of the next day, and the link of the other record, now dangle;
    # the notes name a file that is gone.
    other = f"{record_path(DOI_ID)}/{escape(PDF_URL)}/{T0 + DAY + 7}_200_application-pdf"
    assert found(home) == {
        ("link-dangling", f"{PDF_DIR}/{T0 + DAY + 1}_200_application-pdf"),
        ("link-dangling", other),
        ("notes-missing-file", f"{PDF_DIR}/00notes"),
    }


def test_chained_link(home):
    # A link to the link of the next day, not to the regular file.
    name = f"{T0 + 3 * DAY}_200_application-pdf"
    os.symlink(f"{T0 + DAY + 1}_200_application-pdf", store_path(home, f"{PDF_DIR}/{name}"))
    line(store_path(home, f"{PDF_DIR}/00notes"),
         {"tist": T0 + 3 * DAY, "url": PDF_URL, "status": "200", "type": "application-pdf",
          "size": 17, "file": name, "link": f"{T0 + DAY + 1}_200_application-pdf"})
    findings = list(verify(home))
    assert [(f.kind, f.path) for f in findings] == [("link-chained", f"{PDF_DIR}/{name}")]
    assert "itself a link to" in findings[0].detail


def test_link_leaving_the_store(home, tmp_path):
    outside = tmp_path / "secret"
    outside.write_bytes(b"x")
    name = f"{T0 + 3 * DAY}_200_text-plain"
    os.symlink("../../../../../../secret", store_path(home, f"{PDF_DIR}/{name}"))
    line(store_path(home, f"{PDF_DIR}/00notes"),
         {"tist": T0 + 3 * DAY, "status": "200", "type": "text-plain", "file": name})
    assert found(home) == {("link-outside", f"{PDF_DIR}/{name}")}


def test_link_through_a_linked_directory_leaving_the_store(home, tmp_path):
    # Lexically inside, really outside: a directory of the store is a link out.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_bytes(b"x")
    os.symlink(str(tmp_path / "elsewhere"), store_path(home, "other/x"))
    name = f"{T0 + 3 * DAY}_200_text-plain"
    os.symlink("../../../../../other/x/f", store_path(home, f"{PDF_DIR}/{name}"))
    line(store_path(home, f"{PDF_DIR}/00notes"), {"tist": T0 + 3 * DAY, "file": name})
    assert ("link-outside", f"{PDF_DIR}/{name}") in found(home)


def test_malformed_last(home):
    for bad in (b"1700000000\n", b"1700000000 1700000010", b"b 1\n", b"20 10\n"):
        open(store_path(home, f"{REC}/00last"), "wb").write(bad)
        assert found(home) == {("last-malformed", f"{REC}/00last")}, bad


def test_malformed_gone(home):
    open(store_path(home, f"{record_path(DOI_ID)}/00gone"), "wb").write(b"yesterday\n")
    assert found(home) == {("gone-malformed", f"{record_path(DOI_ID)}/00gone")}


def test_notes_line_naming_a_missing_file(home):
    os.unlink(store_path(home, f"{NEW_DIR}/{T0 + 4}_200_text-html"))
    assert found(home) == {("notes-missing-file", f"{NEW_DIR}/00notes")}


def test_record_notes_naming_a_missing_version(home):
    line(store_path(home, f"{REC}/00notes"),
         {"event": "renewal", "tist": T0 + 4 * DAY, "version": f"{T0 + 4 * DAY}.amf.xml"})
    assert found(home) == {("notes-missing-file", f"{REC}/00notes")}


def test_attempt_file_without_a_notes_line(home):
    name = f"{NEW_DIR}/{T0 + 9 * DAY}_503_text-html"
    open(store_path(home, name), "wb").write(b"busy")
    assert found(home) == {("file-without-notes", name)}
    # and a version no renewal line names
    open(store_path(home, f"{REC}/{T0 + 9 * DAY}.amf.xml"), "wb").write(b"<amf/>")
    assert ("file-without-notes", f"{REC}/{T0 + 9 * DAY}.amf.xml") in found(home)


def test_version_named_only_as_current_is_not_a_breach(home):
    # A crash after the version was written and before its renewal line: the
    # next renewal finds it unchanged and names it as current.
    version = store_path(home, f"{REC}/{T0 + 9 * DAY}.amf.xml")
    open(version, "wb").write(b"<amf/>")
    assert ("file-without-notes", f"{REC}/{T0 + 9 * DAY}.amf.xml") in found(home)
    line(store_path(home, f"{REC}/00notes"),
         {"event": "renewal", "tist": T0 + 10 * DAY, "id": REPEC_ID, "version": None,
          "current": f"{T0 + 9 * DAY}.amf.xml"})
    assert found(home) == set()


def test_leftover_temp_file_and_repair_removes_only_it(home):
    names = [f"{REC}/.kiel-tmp-0123456789ab", f"{PDF_DIR}/.kiel-tmp-ba9876543210"]
    for n in names:
        open(store_path(home, n), "wb").write(b"half")
    assert found(home) == {("tmp-leftover", n) for n in names}
    before = sorted(os.path.join(d, f) for d, _, fs in os.walk(store_path(home, ""))
                    for f in fs)
    result = run(home, "--repair")
    assert result.exit_code == 0, result.output
    for n in names:
        assert f"repaired tmp-removed: {n}: leftover temporary file removed" in result.output
    assert "0 breaches, 0 warnings, 2 repaired" in result.output
    after = sorted(os.path.join(d, f) for d, _, fs in os.walk(store_path(home, "")) for f in fs)
    assert after == [p for p in before if not os.path.basename(p).startswith(".kiel-tmp-")]
    assert len(after) == len(before) - 2
    assert found(home) == set()


def test_repair_waits_for_no_renewal(home):
    tmp = f"{REC}/.kiel-tmp-0123456789ab"
    open(store_path(home, tmp), "wb").write(b"being written")
    with Lock(Home(home)):  # as a running renewal holds it
        result = run(home, "--repair")
        assert result.exit_code == 75
        assert "another renewal holds" in result.output
        assert os.path.exists(store_path(home, tmp))
        # Without --repair, verify reads on and just reports the file.
        assert found(home) == {("tmp-leftover", tmp)}


def test_torn_last_notes_line_is_a_warning(home):
    path = store_path(home, f"{NEW_DIR}/00notes")
    with open(path, "ab") as f:
        f.write(b'{"tist": 17000')
    v = verify(home)
    assert {(f.kind, f.path, f.severity) for f in v} == {
        ("notes-torn", f"{NEW_DIR}/00notes", "warning")}
    assert v.summary.clean and v.summary.warnings == 1
    result = run(home)
    assert result.exit_code == 0
    assert result.output.endswith("0 breaches, 1 warning\n")
    assert f"warning notes-torn: {NEW_DIR}/00notes: line 3 is torn" in result.output


def test_torn_but_whole_line_still_covers_its_file(home):
    # The crash lost only the newline: the file is named, the line is torn.
    name = f"{T0 + 9 * DAY}_503_text-html"
    open(store_path(home, f"{NEW_DIR}/{name}"), "wb").write(b"busy")
    line(store_path(home, f"{NEW_DIR}/00notes"),
         {"tist": T0 + 9 * DAY, "status": "503", "type": "text-html", "size": 4,
          "file": name}, newline=False)
    assert found(home) == {("notes-torn", f"{NEW_DIR}/00notes")}


def test_unparseable_notes_line(home):
    path = store_path(home, f"{NEW_DIR}/00notes")
    with open(path, "ab") as f:
        f.write(b"not json\n")
    findings = list(verify(home))
    assert [(f.kind, f.path) for f in findings] == [("notes-unparseable", f"{NEW_DIR}/00notes")]
    assert findings[0].detail == "line 3 is not a JSON object"


def test_unparseable_names(home):
    bad = [f"{REC}/README", f"{PDF_DIR}/1700000000_200_Text-HTML", f"{REC}/.hidden",
           f"{PDF_DIR}/1700000000-200-text"]
    for n in bad:
        open(store_path(home, n), "wb").write(b"")
    os.mkdir(store_path(home, f"{REC}/not an escaped name"))
    assert found(home) == {("bad-name", n) for n in bad + [f"{REC}/not an escaped name"]}


def test_url_missing_and_mismatch(home):
    os.unlink(store_path(home, f"{NEW_DIR}/00url"))
    open(store_path(home, f"{PDF_DIR}/00url"), "w").write("http://example.org/other.pdf\n")
    assert found(home) == {("url-missing", f"{NEW_DIR}/00url"),
                           ("url-mismatch", f"{PDF_DIR}/00url")}


def test_size_differs_from_notes(home):
    path = store_path(home, f"{NEW_DIR}/{T0 + 4}_200_text-html")
    open(path, "ab").write(b"appended")
    assert found(home) == {("size-mismatch", f"{NEW_DIR}/{T0 + 4}_200_text-html")}


def test_prefix_restricts_the_walk(home):
    os.unlink(store_path(home, f"{NEW_DIR}/{T0 + 4}_200_text-html"))
    assert found(home, prefix="RePEc:aaa") == {("notes-missing-file", f"{NEW_DIR}/00notes")}
    assert found(home, prefix="RePEc/aaa/wpaper") != set()
    assert found(home, prefix=DOI_ID) == set()
    v = verify(home, prefix="RePEc:bbb")
    with pytest.raises(NotFound, match="no record in the store matches 'RePEc:bbb'"):
        list(v)  # said, not a silent "0 breaches"
    assert v.summary.records == 0
    v = verify(home, prefix="doi:")
    list(v)
    assert v.summary.records == 1


def test_prefix_path():
    assert prefix_path("RePEc:eee") == "RePEc/eee"
    assert prefix_path("RePEc:EEE:wpaper:") == "RePEc/eee/wpaper/"
    assert prefix_path("repec:eee:wpaper:12/3") == "RePEc/eee/wpaper/12%2F3"
    assert prefix_path("RePEc/eee") == "RePEc/eee"
    assert prefix_path("doi:10.1") == "other/doi%3A10.1"


def test_cli_lists_each_problem_with_its_path_and_exits_1(home):
    os.unlink(store_path(home, f"{NEW_DIR}/{T0 + 4}_200_text-html"))
    open(store_path(home, f"{REC}/00last"), "wb").write(b"garbage")
    result = run(home)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"breach last-malformed: {REC}/00last: expected '<start tist> <end tist>\\n'",
        "    found garbage",
        f"breach notes-missing-file: {NEW_DIR}/00notes: line 1 names "
        f"'{T0 + 4}_200_text-html', which is not there",
        "checked 2 records, 3 versions, 5 objects, 8 attempt files (2 links)",
        "2 breaches, 0 warnings",
    ]


def test_every_kind_has_a_severity():
    assert set(KINDS.values()) == {"breach", "warning", "repaired"}


# --- a store made by a real renewal -----------------------------------------

def test_store_made_by_real_renewals_is_clean(tmp_path, httpserver):
    """The tools agree with the renewal: three real runs against a local
    server (links, a shared URL, a redirect, 404, refused, a long URL, a
    non-ASCII URL) leave a store verify finds nothing in."""
    from werkzeug import Response

    from kiel import home as home_mod
    from kiel.report import report
    from kiel.show import show

    from kit.homes import TEST_SETTINGS, Clock, text, write_amf
    from kit.homes import run as renew

    h = home_mod.Home(str(tmp_path / "home"))
    home_mod.init(h)
    with open(h.conf, "a", encoding="utf-8") as f:
        f.write(TEST_SETTINGS)
    pdf_body = b"%PDF-1.4\n" + b"x" * 3000 + b"\n%%EOF\n"
    httpserver.expect_request("/paper.pdf").respond_with_data(
        pdf_body, content_type="application/pdf")
    httpserver.expect_request("/old").respond_with_response(
        Response(b"", status=301, headers={"Location": "/new"}))
    httpserver.expect_request("/new").respond_with_data(b"<html>landing</html>",
                                                        content_type="text/html")
    httpserver.expect_request("/gone").respond_with_data(b"no", status=404)
    httpserver.expect_request("/" + "a" * 300).respond_with_data(b"long")
    httpserver.expect_request("/d/café.pdf").respond_with_data(pdf_body)
    url = httpserver.url_for
    src = write_amf(tmp_path / "in" / "a.xml",
                    text("RePEc:aaa:wpaper:1", url("/paper.pdf"), display=url("/old")),
                    text("RePEc:aaa:wpaper:2", url("/paper.pdf"), url("/" + "a" * 300),
                         display=url("/gone")),
                    text("doi:10.1/x", "http://127.0.0.1:1/closed", url("/d/café.pdf"),
                         "mailto:a@example.org"))
    clock = Clock()
    for _ in range(3):
        renew(h, src, clock=clock)
        clock.advance(86400)
    v = verify(h.root, fixity=True)
    assert [str(f) for f in v] == []
    s = v.summary
    assert (s.records, s.objects, s.fixity_failed) == (3, 8, 0)
    assert s.fixity_passed >= s.attempt_files - s.links
    r = report(h.root)
    assert r.links >= 6 and r.bytes_saved >= 4 * len(pdf_body)
    assert dict(r.newest_status)["404"] == 1 and r.link_rot[0].dead == 2
    view = show(h.root, "RePEc:aaa:wpaper:1")
    (old,) = [o for o in view.objects if o.url == url("/old")]
    assert [a.location for a in old.timeline] == [url("/new")] * 3


def test_levels_above_the_records(home, tmp_path):
    bad = {
        ("bad-name", "README"): b"",
        ("bad-name", "RePEc/aaa/notes.txt"): b"",
        ("tmp-leftover", "RePEc/aaa/wpaper/.kiel-tmp-000000000000"): b"",
    }
    for (_, rel), data in bad.items():
        open(store_path(home, rel), "wb").write(data)
    os.makedirs(store_path(home, "RePEc/AAA/wpaper/1"))  # the redist lowers the archive
    os.makedirs(store_path(home, "RePEc/aaa/wpaper/has space"))
    os.symlink(str(tmp_path), store_path(home, "other/planted"))
    # The records found there are checked too: empty, never renewed.
    empty = {(k, r + tail) for k, tail in (("empty-record", ""), ("last-missing", "/00last"))
             for r in ("RePEc/AAA/wpaper/1", "RePEc/aaa/wpaper/has space")}
    assert found(home) == set(bad) | empty | {
        ("bad-name", "RePEc/AAA"), ("bad-name", "RePEc/aaa/wpaper/has space"),
        ("bad-name", "other/planted")}
    # A prefix checks the levels on its way (RePEc/, RePEc/aaa/,
    # RePEc/aaa/wpaper/), not the store's top.
    assert found(home, prefix="RePEc:aaa:wpaper:") == {("bad-name", "RePEc/AAA"),
        ("tmp-leftover", "RePEc/aaa/wpaper/.kiel-tmp-000000000000"),
        ("bad-name", "RePEc/aaa/notes.txt"), ("bad-name", "RePEc/aaa/wpaper/has space"),
        ("empty-record", "RePEc/aaa/wpaper/has space"),
        ("last-missing", "RePEc/aaa/wpaper/has space/00last")}


def test_memory_stays_flat_in_the_size_of_the_store(tmp_path):
    small = grown_store(tmp_path / "small", 40)
    large = grown_store(tmp_path / "large", 400)
    p_small = peak_bytes(lambda: list(verify(small, fixity=True)))
    p_large = peak_bytes(lambda: list(verify(large, fixity=True)))
    # Ten times the records; keeping even one short path per record would
    # add some 40 KB.
    assert p_large - p_small < 16_000, (p_small, p_large)


def test_notes_line_disagreeing_with_its_file(home):
    path = store_path(home, f"{NEW_DIR}/00notes")
    lines = open(path, "rb").read().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"status": "200"', b'"status": "203"')
    open(path, "wb").write(b"".join(lines))
    # and a link line whose target is not the one on disk
    pdf_notes = store_path(home, f"{PDF_DIR}/00notes")
    data = open(pdf_notes, "rb").read().replace(
        f'"link": "{T0 + 1}_200_application-pdf"'.encode(), b'"link": "elsewhere"')
    open(pdf_notes, "wb").write(data)
    findings = {(f.kind, f.path): f for f in verify(home)}
    assert set(findings) == {("notes-mismatch", f"{NEW_DIR}/{T0 + 4}_200_text-html"),
                             ("notes-mismatch", f"{PDF_DIR}/{T0 + DAY + 1}_200_application-pdf")}
    link = findings[("notes-mismatch", f"{PDF_DIR}/{T0 + DAY + 1}_200_application-pdf")]
    assert (link.expected, link.found) == ("elsewhere", f"{T0 + 1}_200_application-pdf")


def test_link_to_something_not_an_attempt(home):
    name = f"{T0 + 3 * DAY}_200_text-plain"
    os.symlink("00url", store_path(home, f"{PDF_DIR}/{name}"))
    line(store_path(home, f"{PDF_DIR}/00notes"), {"tist": T0 + 3 * DAY, "file": name})
    assert found(home) == {("link-not-attempt", f"{PDF_DIR}/{name}")}


def test_attempt_that_is_not_a_file(home):
    name = f"{PDF_DIR}/{T0 + 3 * DAY}_200_text-plain"
    os.mkfifo(store_path(home, name))
    # With a sha256 in its line: fixity must not try to read it (it would block).
    line(store_path(home, f"{PDF_DIR}/00notes"), {"tist": T0 + 3 * DAY, "sha256": "0" * 64,
                                                   "file": os.path.basename(name)})
    assert found(home, fixity=True) == {("not-regular", name)}


def test_version_that_is_not_xml(home):
    path = store_path(home, f"{record_path(DOI_ID)}/{T0 + DAY}.amf.xml")
    open(path, "wb").write(b"<amf><text id=")  # no sha256 in its notes: parsing tells
    assert found(home) == set()
    assert found(home, fixity=True) == {
        ("version-unparseable", f"{record_path(DOI_ID)}/{T0 + DAY}.amf.xml")}


def test_fifos_planted_as_markers_and_notes_do_not_block(home):
    for rel in (f"{REC}/00gone", f"{NEW_DIR}/00notes", f"{PDF_DIR}/00url"):
        p = store_path(home, rel)
        if os.path.exists(p):
            os.unlink(p)
        os.mkfifo(p)
    got = found(home, fixity=True)
    assert {("not-regular", f"{REC}/00gone"), ("not-regular", f"{NEW_DIR}/00notes"),
            ("not-regular", f"{PDF_DIR}/00url"), ("url-missing", f"{PDF_DIR}/00url")} <= got
    from kiel.show import show

    assert show(home, REPEC_ID).id == REPEC_ID


def test_notes_values_of_the_wrong_types_are_reported_not_a_traceback(home):
    line(store_path(home, f"{NEW_DIR}/00notes"),
         {"tist": T0 + 9 * DAY, "url": NEW_URL, "status": "200", "type": "text-html",
          "size": "many", "elapsed": {}, "attempt": [], "file": 7, "headers": 1})
    findings = list(verify(home, fixity=True))
    assert [(f.kind, f.path) for f in findings] == [("notes-missing-file", f"{NEW_DIR}/00notes")]
    assert "names 7, which is not there" in findings[0].detail
