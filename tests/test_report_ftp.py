"""kiel report counts an FTP reply by what it means, not by its first digit."""

from __future__ import annotations

import pytest

from kiel import replies
from kiel.cli import format_summary
from kiel.report import report

from kit.homes import run, text, write_amf


@pytest.mark.parametrize("url, status, cls, alive", [
    ("http://h/x", "200", "2xx", True), ("https://h/x", "304", "3xx", True),
    ("http://h/x", "404", "4xx", False), ("http://h/x", "503", "5xx", False),
    ("ftp://h/x", "226", "2xx", True), ("FTP://h/x", "250", "2xx", True),
    ("ftp://h/x", "550", "4xx", False),  # no such file: permanent, like HTTP's 404
    ("ftp://h/x", "530", "4xx", False),  # login refused
    ("ftp://h/x", "421", "5xx", False),  # service not available: transient, like 503
    ("ftp://h/x", "451", "5xx", False),
    ("ftp://h/x", "000", "000", False), ("http://h/x", "000", "000", False),
])
def test_status_class_by_scheme(url: str, status: str, cls: str, alive: bool):
    assert replies.status_class(url, status) == cls
    assert replies.answered(url, status) is alive


def test_complete_body_by_scheme():
    assert replies.complete_body("ftp://h/a.pdf", "226")
    assert replies.complete_body("ftp://h/a.pdf", "250")
    assert not replies.complete_body("ftp://h/a.pdf", "200")  # no FTP transfer ends so
    assert replies.complete_body("https://h/a.pdf", "200")
    assert not replies.complete_body("https://h/a.pdf", "226")


def renewed_over_ftp(home, tmp_path, clock, ftp_server):
    ok = ftp_server + "/pub/paper.pdf"
    missing = ftp_server + "/pub/none.pdf"
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", ok),
                    text("RePEc:aaa:wpaper:2", missing))
    run(home, src, clock=clock)
    return report(home.root)


def test_ftp_226_and_550_count_as_answered_and_not_found(home, tmp_path, clock, ftp_server):
    r = renewed_over_ftp(home, tmp_path, clock, ftp_server)
    assert dict(r.newest_status) == {"226": 1, "550": 1}
    ((day, by_class),) = [(d.day, d.by_class) for d in r.attempts_per_day]
    assert by_class == (("2xx", 1), ("4xx", 1))
    assert [(d.alive, d.dead) for d in r.link_rot] == [(1, 1)]
    assert r.failing_hosts == (("127.0.0.1", 1),)


def test_a_pdf_fetched_over_ftp_counts_as_full_text(home, tmp_path, clock, ftp_server):
    r = renewed_over_ftp(home, tmp_path, clock, ftp_server)
    assert [(a.direct, a.discovered, a.none) for a in r.fulltext] == [(1, 0, 1)]


def test_the_renewal_summary_classes_ftp_replies_as_the_report_does(home, tmp_path, clock,
                                                                     ftp_server):
    ok = ftp_server + "/pub/paper.pdf"
    missing = ftp_server + "/pub/none.pdf"
    src = write_amf(tmp_path / "a.xml", text("RePEc:aaa:wpaper:1", ok),
                    text("RePEc:aaa:wpaper:2", missing))
    s = run(home, src, clock=clock)
    # 226 a transfer done, 550 no such file: a 2xx and a 4xx, not a 5xx
    assert s.attempts_by_class == {"2xx": 1, "4xx": 1}
    assert format_summary(s).splitlines()[3].startswith("objects:  2 renewed, 2 attempts "
                                                        "(2xx 1, 4xx 1); ")
