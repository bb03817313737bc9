"""The report page as a real browser draws it (headless Chromium): no two
labels overlap, every label stays inside its chart, and a gap of two weeks
between runs shows as two weeks in every chart.

The page itself holds no script; the test adds one that measures the boxes
of the drawn elements and writes them into the DOM, which Chromium dumps.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import lxml.html
import pytest

from kiel.report import DayAttempts, DayGrowth, DayRot, Report, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")



@pytest.fixture(autouse=True)
def chromium() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            # CI must check the page: scripts/setup-env --test installs chromium.
            pytest.fail("chromium is missing in CI: scripts/setup-env --test installs it "
                        "(as root, with apt)")
        pytest.skip("chromium is not installed (scripts/setup-env --test installs it)")

MEASURE = """<script>
const out = {};
for (const svg of document.querySelectorAll("svg.chart")) {
  const r = svg.getBoundingClientRect();
  const boxes = sel => Array.from(svg.querySelectorAll(sel)).map(el => {
    const b = el.getBoundingClientRect();
    return {cls: el.getAttribute("class"), text: el.textContent,
            x: b.left - r.left, y: b.top - r.top, w: b.width, h: b.height};
  });
  out[svg.id] = {width: r.width, height: r.height, texts: boxes("text"),
                 bars: boxes("rect.bar"), gaps: boxes("rect.gap")};
}
const pre = document.createElement("pre");
pre.id = "measured";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
"""


def days(start: str, *runs: tuple[int, int]) -> list[str]:
    """Days of runs: (offset from start, number of consecutive days)."""
    d0 = date.fromisoformat(start)
    return [(d0 + timedelta(days=o + i)).isoformat() for o, n in runs for i in range(n)]


def make_report(ds: list[str]) -> Report:
    n = len(ds)
    return Report(
        store="/srv/kiel/store", records=n, gone=0, versions=n, objects=10 * n,
        attempts=12 * n, attempt_files=12 * n, links=5 * n, newest_status=(("200", 10 * n),),
        never_attempted=0, bytes_stored=1000 * n, bytes_plain=2000 * n, bytes_notes=100 * n,
        failing_hosts=(("dead.example.net", 3),),
        link_rot=tuple(DayRot(d, 8 + i % 3, 2 + i % 2) for i, d in enumerate(ds)),
        attempts_per_day=tuple(DayAttempts(d, (("2xx", 9 + i % 4), ("3xx", 1), ("4xx", 1),
                                               ("5xx", i % 2), ("000", 2)))
                               for i, d in enumerate(ds)),
        growth=tuple(DayGrowth(d, 900_000 * (i + 1), 1_700_000 * (i + 1), i + 1, 10 * (i + 1))
                     for i, d in enumerate(ds)),
    )


def measure(tmp_path: Path, report: Report) -> dict:
    page = render_html(report, generated=1_800_000_000).replace("</body>", MEASURE + "</body>")
    f = tmp_path / "report.html"
    f.write_text(page, encoding="utf-8")
    profile = tmp_path / "profile"
    assert CHROMIUM is not None
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1000,2400", "--dump-dom", f.as_uri()],
        capture_output=True, text=True, timeout=90, check=False)
    doc = lxml.html.document_fromstring(r.stdout or "<html/>")
    found = doc.xpath('//pre[@id="measured"]/text()')
    assert found, f"chromium said: {r.returncode} {r.stderr[-2000:]}"
    assert isinstance(found, list)
    return json.loads(str(found[0]))


def overlaps(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def assert_labels_apart_and_inside(chart: str, m: dict) -> None:
    texts = [t for t in m["texts"] if t["w"] > 0]
    for i, a in enumerate(texts):
        assert 0 <= a["x"] and a["x"] + a["w"] <= m["width"] + 0.5, (chart, a)
        assert 0 <= a["y"] and a["y"] + a["h"] <= m["height"] + 0.5, (chart, a)
        for b in texts[i + 1:]:
            assert not overlaps(a, b), (chart, a["text"], b["text"])


CHARTS = ("link-rot", "attempts-by-class", "store-growth")

# Ten nightly runs, fourteen days without any, then three more.
TWO_WEEKS_OFF = days("2026-03-01", (0, 10), (24, 3))


def test_a_gap_of_two_weeks_shows_in_every_chart_and_no_labels_collide(tmp_path: Path):
    m = measure(tmp_path, make_report(TWO_WEEKS_OFF))
    assert set(m) == set(CHARTS)
    for chart in CHARTS:
        assert_labels_apart_and_inside(chart, m[chart])
        labels = [t["text"] for t in m[chart]["texts"] if t["cls"] == "xlabel"]
        assert labels[0] == "2026-03-01" and labels[-1] == "2026-03-27", labels
        assert len(labels) >= 4, labels
        (gap,) = m[chart]["gaps"]
        day = (m[chart]["width"] - 80 - 44) / 27  # the axis holds 27 days
        assert gap["w"] == pytest.approx(14 * day, rel=0.02), chart
    for chart in ("link-rot", "attempts-by-class"):
        middles = sorted({round(b["x"] + b["w"] / 2, 1) for b in m[chart]["bars"]})
        assert len(middles) == 13
        steps = [b - a for a, b in itertools.pairwise(middles)]
        one = steps[0]
        # Nine steps of one day, one of fifteen (the fourteen empty days), two of one.
        assert [round(s / one) for s in steps] == [1] * 9 + [15] + [1] * 2, steps


@pytest.mark.parametrize("ds", [
    days("2026-03-01", (0, 1)),  # the first night
    days("2025-01-01", (0, 200), (230, 150)),  # a year, a month missing
    days("2020-01-01", *((i * 60, 1) for i in range(40))),  # six years, every other month
])
def test_labels_never_collide_on_any_span(tmp_path: Path, ds: list[str]):
    m = measure(tmp_path, make_report(ds))
    for chart in CHARTS:
        assert_labels_apart_and_inside(chart, m[chart])
        labels = [t["text"] for t in m[chart]["texts"] if t["cls"] == "xlabel"]
        assert labels[0] == ds[0] and labels[-1] == ds[-1]
