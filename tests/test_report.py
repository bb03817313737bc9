"""kiel report: counts, bytes, failing hosts, and the self-contained HTML page."""

from __future__ import annotations

import json
import os

import lxml.html
import pytest
from click.testing import CliRunner

from kiel.cli_tools import report as report_cmd
from kiel.escape import escape
from kiel.report import DayAttempts, DayGrowth, DayRot, render_html, report

from kit.stores import (
    DOI_ID,
    PDF_URL,
    REPEC_ID,
    T0,
    StoreBuilder,
    grown_store,
    make_store,
    peak_bytes,
    version_bytes,
)

SVG = "{http://www.w3.org/2000/svg}"
V1 = len(version_bytes(REPEC_ID, "First"))
V2 = len(version_bytes(REPEC_ID, "First, revised"))
V3 = len(version_bytes(DOI_ID, "Other"))
PDF, NOT_HERE, LANDING, LANDING2 = 17, 21, 20, 22


@pytest.fixture
def home(tmp_path):
    make_store(tmp_path)
    return str(tmp_path)


def test_counts_and_bytes(home):
    r = report(home)
    assert (r.records, r.gone, r.versions, r.objects) == (2, 1, 3, 5)
    # Ten attempts: nine left a file (two of them links), one retried timeout did not.
    assert (r.attempts, r.attempt_files, r.links) == (10, 9, 2)
    assert dict(r.newest_status) == {"200": 3, "301": 1, "000": 1}
    assert r.never_attempted == 0
    stored = V1 + V2 + V3 + PDF + NOT_HERE + LANDING + LANDING2
    assert r.bytes_stored == stored
    assert r.bytes_plain == stored + 2 * PDF  # each link counted at its target's size
    assert r.bytes_saved == 2 * PDF
    assert r.failing_hosts == (("dead.example.net", 1),)


def test_per_day_series(home):
    r = report(home)
    assert r.link_rot == (DayRot("2023-11-14", 3, 1), DayRot("2023-11-15", 4, 1))
    assert r.attempts_per_day == (
        DayAttempts("2023-11-14", (("2xx", 2), ("3xx", 1), ("4xx", 1))),
        DayAttempts("2023-11-15", (("2xx", 3), ("3xx", 1), ("000", 2))),
    )
    day1 = V1 + PDF + NOT_HERE + LANDING
    assert r.growth == (
        DayGrowth("2023-11-14", day1, day1, 1, 4),
        DayGrowth("2023-11-15", day1 + V2 + V3 + LANDING2,
                  day1 + V2 + V3 + LANDING2 + 2 * PDF, 3, 5),
    )


def test_links_leaving_the_store_count_nothing(home, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100000)
    obj = os.path.join(home, "store", "other", escape(DOI_ID), escape(PDF_URL))
    os.symlink(str(big), os.path.join(obj, f"{T0 + 5 * 86400}_200_text-plain"))
    os.symlink("../../../../big", os.path.join(obj, f"{T0 + 6 * 86400}_200_text-plain"))
    r = report(home)
    assert r.links == 4
    assert r.bytes_plain == V1 + V2 + V3 + PDF + NOT_HERE + LANDING + LANDING2 + 2 * PDF


def test_prefix(home):
    r = report(home, prefix=DOI_ID)
    assert (r.records, r.objects, r.links, r.bytes_stored) == (1, 1, 1, V3)
    assert r.bytes_plain == V3 + PDF


def test_html_is_self_contained_with_three_charts(home):
    page = render_html(report(home), generated=T0 + 3 * 86400)
    doc = lxml.html.document_fromstring(page)
    assert doc.findtext(".//title") == "Kiel report"
    charts = {svg.get("id"): svg for svg in doc.iter(f"{SVG}svg", "svg")}
    assert set(charts) == {"link-rot", "attempts-by-class", "store-growth"}

    def titles(svg, cls):
        return [el.findtext(f"{SVG}title") if el.find(f"{SVG}title") is not None
                else el.findtext("title")
                for el in svg.iter() if el.get("class") == cls]

    assert titles(charts["link-rot"], "bar") == [
        "2023-11-14: 3 alive", "2023-11-14: 1 dead", "2023-11-15: 4 alive",
        "2023-11-15: 1 dead"]
    assert titles(charts["attempts-by-class"], "bar") == [
        "2023-11-14: 2 2xx", "2023-11-14: 1 3xx", "2023-11-14: 1 4xx",
        "2023-11-15: 3 2xx", "2023-11-15: 1 3xx", "2023-11-15: 2 000"]
    assert titles(charts["store-growth"], "line") == ["as plain copies", "stored"]
    # Nothing to fetch: no script, no link, no image, no external reference.
    assert doc.xpath("//script|//link|//img|//iframe|//object") == []
    assert not [v for el in doc.iter() for k, v in el.attrib.items()
                if k in ("src", "href") or "http://" in v and "w3.org" not in v]
    rows = {tr[0].text: tr[1].text for tr in doc.get_element_by_id("summary")}
    assert rows["records"] == "2" and rows["attempts"] == "10"
    hosts = doc.get_element_by_id("failing-hosts")
    assert [td.text for td in hosts[1]] == ["dead.example.net", "1"]


def test_bars_are_scaled_to_their_values(home):
    doc = lxml.html.document_fromstring(render_html(report(home), generated=T0))
    svg = next(s for s in doc.iter(f"{SVG}svg", "svg") if s.get("id") == "link-rot")
    heights = [float(el.get("height")) for el in svg.iter() if el.get("class") == "bar"]
    # 3 alive and 4 alive: the taller bar is 4/3 as tall.
    assert heights[2] / heights[0] == pytest.approx(4 / 3, rel=1e-3)


def test_empty_store(tmp_path):
    os.makedirs(tmp_path / "store")
    r = report(str(tmp_path))
    assert (r.records, r.objects, r.attempts, r.bytes_stored) == (0, 0, 0, 0)
    doc = lxml.html.document_fromstring(render_html(r, generated=T0))
    assert len([s for s in doc.iter(f"{SVG}svg", "svg")]) == 3
    assert "no data yet" in lxml.html.tostring(doc, encoding="unicode")


def test_cli_text_and_html(home, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(report_cmd, ["--home", home, "--html", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1:6] == [
        "records           2  (1 gone from the input)",
        "versions          3",
        "objects           5",
        "attempts          10  (9 files, 2 of them links)",
        "newest attempt of each object:",
    ]
    assert "  dead.example.net               1" in lines
    assert lines[-1] == f"wrote {out}"
    assert lxml.html.parse(str(out)).getroot().findtext(".//h1") == "Kiel report"


def test_cli_json(home):
    result = CliRunner().invoke(report_cmd, ["--home", home, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["link_rot"][0] == {"day": "2023-11-14", "alive": 3, "dead": 1}


def test_cli_no_store_exits_2(tmp_path):
    """A home without store/ is the wrong home: exit 2, as for every command."""
    result = CliRunner().invoke(report_cmd, ["--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "no store here" in result.output


def test_memory_stays_flat_in_the_size_of_the_store(tmp_path):
    # Over 256 records in both: the caches of the standard library and of
    # Kiel (urlsplit's 128 entries, archive_dir's 256) are full in both.
    small = grown_store(tmp_path / "small", 500)
    large = grown_store(tmp_path / "large", 1500)
    assert report(large).records == 1500
    p_small = peak_bytes(lambda: report(small))
    p_large = peak_bytes(lambda: report(large))
    assert p_large - p_small < 16_000, (p_small, p_large)


def test_hostile_url_is_text_in_the_page(home):
    b = StoreBuilder(home)
    url = 'http://"><script>alert(1)</script>.example/'
    b.attempt(DOI_ID, url, T0 + 5, "000", "none", error="dns")
    page = render_html(report(home), generated=T0)
    doc = lxml.html.document_fromstring(page)
    assert doc.xpath("//script") == []
    hosts = [tr[0].text for tr in doc.get_element_by_id("failing-hosts")[1:]]
    assert '"><script>alert(1)<' in hosts  # the host part, shown as text
