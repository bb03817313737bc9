"""kiel show: one record's versions, state markers and object timelines.

The stores here are written by hand, file by file, as docs/contract.md lays them
out, so these tests check the tools against the contract and not against
whatever the renewal code happens to write. ``make_store`` is imported by
test_verify.py and test_report.py too.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from kiel.cli_tools import show as show_cmd
from kiel.errors import NotFound
from kiel.escape import escape
from kiel.redist import record_path
from kiel.show import show

from kit.stores import (
    DAY,
    DEAD_URL,
    DOI_ID,
    NEW_URL,
    OLD_URL,
    PDF_URL,
    REPEC_ID,
    T0,
    line,
    make_store,
    version_bytes,
)


@pytest.fixture
def home(tmp_path):
    make_store(tmp_path)
    return str(tmp_path)


def test_record_with_versions_links_redirects_and_failures(home):
    view = show(home, REPEC_ID)
    assert view.id == REPEC_ID
    assert view.path == os.path.join(home, "store", "RePEc", "aaa", "wpaper", "1")
    assert view.store_path == "RePEc/aaa/wpaper/1"
    assert [(v.name, v.current) for v in view.versions] == [
        (f"{T0}.amf.xml", False), (f"{T0 + DAY}.amf.xml", True)]
    assert view.versions[0].date == "2023-11-14T22:13:20Z"
    assert view.versions[1].size == len(version_bytes(REPEC_ID, "First, revised"))
    assert view.last == (T0 + DAY, T0 + DAY + 10)
    assert view.gone is None and view.renewals == 2
    assert view.skipped == (("file/url", "mailto:a@example.org", "scheme mailto is not fetched"),)
    by_url = {o.url: o for o in view.objects}
    assert set(by_url) == {PDF_URL, DEAD_URL, OLD_URL, NEW_URL}

    pdf = by_url[PDF_URL].timeline
    assert [(a.status, a.link) for a in pdf] == [
        ("200", None), ("200", f"{T0 + 1}_200_application-pdf")]
    assert pdf[1].size == len(b"%PDF-1.4 a paper\n")

    dead = by_url[DEAD_URL].timeline
    assert [(a.status, a.file, a.error, a.event) for a in dead] == [
        ("404", f"{T0 + 2}_404_text-html", None, None),
        ("000", None, "timeout", None),
        ("000", f"{T0 + DAY + 5}_000_none", "timeout", None),
        (None, None, None, "given-up")]
    assert by_url[DEAD_URL].newest.status == "000"

    old = by_url[OLD_URL].timeline
    assert [a.location for a in old] == [NEW_URL, NEW_URL]


def test_record_by_path_and_gone(home):
    path = os.path.join(home, "store", record_path(DOI_ID))
    view = show(home, path)
    assert view.id == DOI_ID
    assert view.gone == T0 + 2 * DAY
    (obj,) = view.objects
    assert obj.timeline[0].link.startswith("../../../RePEc/aaa/wpaper/1/")
    # A store-relative path works too, and a handle in its info:lib form.
    assert show(home, record_path(DOI_ID)).path == path
    assert show(home, "info:lib/RePEc:AAA:wpaper:1").id == REPEC_ID


def test_attempt_file_without_notes_line_shows_up(home):
    d = os.path.join(home, "store", record_path(REPEC_ID), escape(NEW_URL))
    with open(os.path.join(d, f"{T0 + 9 * DAY}_503_text-html"), "wb") as f:
        f.write(b"busy")
    view = show(home, REPEC_ID)
    (new,) = [o for o in view.objects if o.url == NEW_URL]
    assert (new.newest.status, new.newest.in_notes, new.newest.size) == ("503", False, 4)


def test_missing_id_is_not_found(home):
    with pytest.raises(NotFound, match=r"no record 'RePEc:zzz:none:1' in the store"):
        show(home, "RePEc:zzz:none:1")
    with pytest.raises(NotFound, match="not a record directory"):
        show(home, os.path.join(home, "store"))


def test_cli_text(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, REPEC_ID])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"record   {REPEC_ID}\n")
    assert f"  * {T0 + DAY}.amf.xml  2023-11-15T22:13:20Z" in out
    assert "(current)" in out
    assert f"  {PDF_URL}\n" in out
    assert f"{T0 + DAY + 1}_200_application-pdf -> {T0 + 1}_200_application-pdf" in out
    assert f"redirect -> {NEW_URL}" in out
    assert "(no file)  error timeout" in out
    assert "2023-11-15T22:13:26Z  given-up" in out
    assert out.endswith("  skipped mailto:a@example.org (file/url): scheme mailto is not fetched\n")


def test_cli_json(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, "--json", REPEC_ID])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == REPEC_ID
    assert [v["current"] for v in data["versions"]] == [False, True]
    assert {o["url"]: o["newest_status"] for o in data["objects"]}[DEAD_URL] == "000"


def test_cli_missing_id_exits_1(home):
    result = CliRunner().invoke(show_cmd, ["--home", home, "RePEc:zzz:none:1"])
    assert result.exit_code == 1
    assert "Error: no record 'RePEc:zzz:none:1' in the store" in result.output


def test_a_line_with_values_of_the_wrong_types_is_shown_not_a_traceback(home):
    d = os.path.join(home, "store", record_path(REPEC_ID), escape(NEW_URL))
    line(os.path.join(d, "00notes"),
         {"tist": T0 + 9 * DAY, "url": NEW_URL, "status": "200", "type": "text-html",
          "size": "many", "elapsed": [], "attempt": "first", "file": 7, "link": {},
          "location": 3, "error": ["x"], "headers": "Server: x"})
    line(os.path.join(home, "store", record_path(REPEC_ID), "00notes"),
         {"event": "renewal", "tist": T0 + 9 * DAY, "id": 5, "version": 6, "skipped": "x"})
    view = show(home, REPEC_ID)
    (new,) = [o for o in view.objects if o.url == NEW_URL]
    damaged = new.timeline[-1]
    assert (damaged.tist, damaged.status, damaged.size, damaged.file, damaged.link,
            damaged.location, damaged.error) == (T0 + 9 * DAY, "200", 0, None, None, None, None)
    # The id is not text: the one the store's versions give stands.
    assert (view.id, view.renewals, view.skipped) == (REPEC_ID, 3, ())
