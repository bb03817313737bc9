"""kiel report: the store's growth per night, read from the names of its
files, and the days its filesystem lasts at that pace."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone

from click.testing import CliRunner

from kiel import store
from kiel.capacity import Night, capacity, pace
from kiel.cli import main

from kit.homes import run, text, write_amf

DAY = 86400


def day(t: float) -> str:
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%d")


def below_records(store_root: str) -> tuple[int, int]:
    """Inodes and allocated bytes of the record directories and all they hold."""
    inodes = size = 0
    for record_dir in store.iter_record_dirs(store_root):
        paths = [record_dir]
        for top, dirs, files in os.walk(record_dir):
            paths += [os.path.join(top, name) for name in dirs + files]
        inodes += len(paths)
        size += sum(os.lstat(p).st_blocks * 512 for p in paths)
    return inodes, size


def three_nights(home, httpserver, tmp_path, clock) -> list[str]:
    httpserver.expect_request("/landing").respond_with_data("<html>landing</html>",
                                                            content_type="text/html")
    httpserver.expect_request("/paper.pdf").respond_with_data(b"%PDF-1.4\n" + b"x" * 9000,
                                                              content_type="application/pdf")
    landing, pdf = httpserver.url_for("/landing"), httpserver.url_for("/paper.pdf")
    # Three records, each linking its own landing page and its own PDF.
    src = write_amf(tmp_path / "a.xml", *[
        text(f"RePEc:aaa:wpaper:{i}", f"{pdf}?{i}", display=f"{landing}?{i}") for i in range(3)])
    days = []
    for _ in range(3):
        s = run(home, src, clock=clock)
        assert s.exit_status == 0
        days.append(day(clock()))
        clock.advance(DAY)
    return days


def test_nights_add_up_to_the_store_and_the_pace_leaves_the_first_out(
        home, httpserver, tmp_path, clock):
    d1, d2, d3 = three_nights(home, httpserver, tmp_path, clock)
    c = capacity(home.store)
    # Night one: per record its directory, 00notes, 00last and a version, and
    # per object its directory, 00url, 00notes and the attempt; then one
    # attempt (a link to the same body) per object and night.
    assert [(n.day, n.inodes) for n in c.nights] == [(d1, 3 * (4 + 2 * 4)), (d2, 6), (d3, 6)]
    inodes, size = below_records(home.store)
    assert sum(n.inodes for n in c.nights) == inodes
    assert sum(n.bytes for n in c.nights) == size
    assert c.nights[1].bytes > 0  # notes lines, though every body is a link
    assert (c.pace_days, c.pace_from, c.pace_to, c.first_only) == (2, d2, d3, False)
    assert c.inodes_per_day == 6
    assert c.bytes_per_day == (c.nights[1].bytes + c.nights[2].bytes) / 2
    fs = os.statvfs(home.store)
    assert c.fs_bytes_total == fs.f_blocks * fs.f_frsize
    assert c.days_left_inodes == c.fs_inodes_free / 6
    assert c.days_left_bytes == c.fs_bytes_free / c.bytes_per_day


def test_report_shows_the_growth_per_night_and_the_days_left(home, httpserver, tmp_path, clock):
    d1, d2, d3 = three_nights(home, httpserver, tmp_path, clock)
    r = CliRunner().invoke(main, ["report", "--home", home.root])
    assert r.exit_code == 0, r.output
    out = r.output[r.output.index("growth per night"):].splitlines()
    assert out[0] == "growth per night (docs/operations.md, Capacity):"
    assert [line.split()[0] for line in out[1:4]] == [d1, d2, d3]
    assert out[2].endswith("  +6 inodes") and out[3].endswith("  +6 inodes")
    assert re.fullmatch(rf"  pace            \+\S+ \S+ and \+6 inodes a day \(mean of the 2 days "
                        rf"{d2} to {d3}, the store's first night left out\)", out[4]), out[4]
    assert re.fullmatch(r"  filesystem      \S+ \S+ free: \d+ days( \(\S+ years\))?; \d+ inodes "
                        r"free: \d+ days( \(\S+ years\))?", out[5]), out[5]
    r = CliRunner().invoke(main, ["report", "--home", home.root, "--json"])
    c = json.loads(r.output)["capacity"]
    assert c["inodes_per_day"] == 6 and c["days_left_inodes"] > 0


def test_the_pace_counts_calendar_days_and_a_first_night_alone_is_said():
    n = [Night("2026-01-01", 100, 10_000), Night("2026-01-02", 6, 600),
         Night("2026-01-05", 6, 600)]
    # Four calendar days, 01-02 to 01-05, two of them without a run.
    assert pace(tuple(n)) == (4, "2026-01-02", "2026-01-05", False, 3.0, 300.0)
    week = tuple(Night(f"2026-01-{d:02}", d, 10 * d) for d in range(1, 21))
    assert pace(week)[:4] == (7, "2026-01-14", "2026-01-20", False)
    assert pace(week)[4] == sum(range(14, 21)) / 7
    assert pace(tuple(n[:1])) == (1, "2026-01-01", "2026-01-01", True, 100.0, 10_000.0)
    assert pace(()) == (0, None, None, False, 0.0, 0.0)
