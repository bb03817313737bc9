"""check-branches: every problem named with its line; evaluation on records."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kiel import branches, records
from kiel.cli import main

from kit.homes import text, write_amf

BAD = """<?xml version="1.0"?>
<branches>
  <branch xpath="displaypage"/>
  <branch/>
  <branch xpath="file[url"/>
  <branch xpath="/amf/text/displaypage"/>
  <branch xpath="displaypage"/>
  <brnach xpath="file/url"/>
</branches>
"""


def test_every_problem_has_its_line(tmp_path: Path):
    f = tmp_path / "b.xml"
    f.write_text(BAD)
    result = branches.check(str(f))
    got = [(p.line, p.reason.split(" ")[0]) for p in result.problems]
    assert got == [(4, "branch"), (5, "xpath"), (6, "absolute"), (7, "duplicate"), (8, "unknown")]
    assert "first on line 3" in result.problems[3].reason
    assert [b.xpath for b in result.branches] == ["displaypage"]


def test_not_well_formed_and_wrong_root(tmp_path: Path):
    f = tmp_path / "b.xml"
    f.write_text("<branches>\n<branch xpath='a'>\n</branches>")
    (p,) = branches.check(str(f)).problems
    assert p.line == 3 and "not well-formed" in p.reason
    f.write_text("<?xml version='1.0'?>\n<roots/>")
    (p,) = branches.check(str(f)).problems
    assert p.line == 2 and "expected <branches>" in p.reason


def test_cli_exit_status_and_counts(tmp_path: Path):
    f = tmp_path / "b.xml"
    f.write_text(BAD)
    r = CliRunner().invoke(main, ["check-branches", str(f)])
    assert r.exit_code == 1
    assert f"error: {f}, line 6: absolute path" in r.output
    good = tmp_path / "g.xml"
    good.write_text('<branches>\n<branch xpath="displaypage"/>\n<branch xpath="file/url"/>\n'
                    '<branch xpath="file[format=\'application/pdf\']/url"/>\n</branches>\n')
    src = write_amf(tmp_path / "r" / "a.xml",
                    text("RePEc:aaa:wpaper:1", "http://a/1", "http://a/2", display="http://a/d"),
                    text("RePEc:aaa:wpaper:2", display="http://a/e"))
    r = CliRunner().invoke(main, ["check-branches", str(good), "--records", str(src.parent)])
    assert r.exit_code == 0, r.output
    assert "3 branches, all valid" in r.output
    assert "on 2 records" in r.output
    assert "line 2: 'displaypage' found 2 URLs" in r.output
    assert "line 3: 'file/url' found 2 URLs" in r.output
    assert "found 2 URLs" in r.output.splitlines()[-1]


def test_unprefixed_names_match_namespaced_and_plain_amf(tmp_path: Path):
    (b,) = branches.check("x", b'<branches><branch xpath="file/url"/></branches>').branches
    plain = tmp_path / "plain.xml"
    plain.write_text("<amf><text id='a'><file><url> http://x/1 </url></file></text></amf>")
    ns = tmp_path / "ns.xml"
    ns.write_text("<a:amf xmlns:a='http://amf.openlib.org'><a:text id='b'><a:file>"
                  "<a:url>http://x/2</a:url></a:file></a:text></a:amf>")
    for path, want in ((plain, "http://x/1"), (ns, "http://x/2")):
        (rec,) = list(records.read_file(str(path)))
        assert isinstance(rec, records.Record), rec
        assert b.evaluate(records.parse_stored(rec.xml)) == [(want, None)]


def test_attribute_and_function_branches():
    check = branches.check("x", b'<branches><branch xpath="@id"/>'
                                b'<branch xpath="concat(displaypage, \'\')"/></branches>')
    assert check.ok, check.problems
    rec = records.serialize(
        __import__("lxml.etree", fromlist=["x"]).fromstring(
            b"<text xmlns='http://amf.openlib.org' id='http://id'><displaypage>http://d</displaypage></text>"))
    text_el = records.parse_stored(rec)
    assert check.branches[0].evaluate(text_el) == [("http://id", None)]
    assert check.branches[1].evaluate(text_el) == [("http://d", None)]


def test_the_shipped_default_branches_are_the_repository_ones():
    """etc/branches.xml and the copy `kiel init` installs must not drift apart."""
    top = Path(__file__).resolve().parent.parent
    from kiel.home import default_branches

    assert (top / "etc" / "branches.xml").read_text(encoding="utf-8") == default_branches()
    check = branches.check("default", default_branches().encode())
    assert check.ok and [b.xpath for b in check.branches] == ["displaypage", "file/url"]


FAIL_ON_EVERY_RECORD = """<?xml version="1.0"?>
<branches>
  <branch xpath="file/url"/>
  <branch xpath="foo:bar"/>
  <branch xpath="count(file)"/>
  <branch xpath="lower-case(file/url)"/>
  <branch xpath="$base"/>
  <branch xpath="file/url = 'x'"/>
  <branch xpath="repec:handle/url"/>
  <branch xpath="concat(displaypage, '')"/>
</branches>
"""


def test_branches_that_fail_on_every_record_are_invalid(tmp_path: Path):
    """Each branch is evaluated on an empty AMF text: what fails there fails on
    every record, so it is reported as the file's mistake, with its line."""
    f = tmp_path / "b.xml"
    f.write_text(FAIL_ON_EVERY_RECORD)
    r = CliRunner().invoke(main, ["check-branches", str(f)])
    assert r.exit_code == 1
    assert r.output.splitlines() == [
        (f"error: {f}, line 4: xpath 'foo:bar' fails on every record: namespace prefix 'foo' "
        "is not defined (Kiel defines amf, repec)"),
        (f"error: {f}, line 5: xpath 'count(file)' yields a number or boolean (0.0 on an empty "
        "record), never a URL: a branch must select elements, attributes or text"),
        (f"error: {f}, line 6: xpath 'lower-case(file/url)' fails on every record: function "
        "'lower-case' does not exist in XPath 1.0"),
        f"error: {f}, line 7: xpath '$base' fails on every record: undefined variable",
        (f"error: {f}, line 8: xpath \"file/url = 'x'\" yields a number or boolean (False on an "
        "empty record), never a URL: a branch must select elements, attributes or text"),
    ]
    result = branches.check(str(f))
    assert [b.xpath for b in result.branches] == [
        "file/url", "repec:handle/url", "concat(displaypage, '')"]
# --- discovery per branch (docs/discovery.md) -------------------------------

def test_discover_defaults_to_yes_for_displaypage_only():
    check = branches.check("x", b'<branches><branch xpath="displaypage"/>'
                                b'<branch xpath="file/url"/></branches>')
    assert check.ok
    assert [(b.xpath, b.discover) for b in check.branches] == [
        ("displaypage", True), ("file/url", False)]


def test_discover_attribute_yes_and_no():
    check = branches.check("x", b'<branches><branch xpath="displaypage" discover="no"/>\n'
                                b'<branch xpath="file/url" discover=" YES "/></branches>')
    assert check.ok
    assert [b.discover for b in check.branches] == [False, True]


def test_discover_attribute_invalid_is_a_problem_with_its_line():
    check = branches.check("b.xml", b'<branches>\n<branch xpath="displaypage"/>\n'
                                    b'<branch xpath="file/url" discover="maybe"/>\n'
                                    b'<branch xpath="hasversion" discover=""/>\n</branches>')
    assert not check.ok
    assert [str(p) for p in check.problems] == [
        "b.xml, line 3: discover='maybe': must be yes or no",
        "b.xml, line 4: discover='': must be yes or no"]
    assert [b.xpath for b in check.branches] == ["displaypage"]


def test_check_branches_command_reports_a_bad_discover(tmp_path: Path):
    bad = tmp_path / "branches.xml"
    bad.write_text('<branches>\n  <branch xpath="displaypage" discover="sometimes"/>\n'
                   '</branches>\n')
    r = CliRunner().invoke(main, ["check-branches", str(bad)])
    assert r.exit_code == 1, r.output
    assert f"{bad}, line 2: discover='sometimes': must be yes or no" in r.output


def test_shipped_branches_discover_on_displaypage():
    from kiel.home import default_branches

    check = branches.check("default", default_branches().encode())
    assert [(b.xpath, b.discover) for b in check.branches] == [
        ("displaypage", True), ("file/url", False)]


def test_discovery_depth_setting(tmp_path: Path):
    import pytest

    from kiel import config

    assert config.defaults().discovery_depth == 1
    conf = tmp_path / "kiel.conf"
    conf.write_text("[kiel]\ndiscovery_depth = 0\n")
    assert config.load(str(conf)).discovery_depth == 0
    conf.write_text("[kiel]\ndiscovery_depth = -1\n")
    with pytest.raises(config.ConfigError, match="line 2: discovery_depth"):
        config.load(str(conf))
    assert "# discovery_depth = 1" in config.template()


def test_a_branch_that_finds_nothing_in_any_record_is_warned(tmp_path: Path):
    good = tmp_path / "g.xml"
    good.write_text('<branches>\n<branch xpath="displaypage"/>\n<branch xpath="file/ulr"/>\n'
                    '</branches>\n')
    src = write_amf(tmp_path / "r" / "a.xml",
                    text("RePEc:aaa:wpaper:1", "http://a/1", display="http://a/d"))
    r = CliRunner().invoke(main, ["check-branches", str(good), "--records", str(src.parent)])
    assert r.exit_code == 0, r.output
    assert r.stderr == ("warning: line 3: 'file/ulr' found no URL in any of the 1 records: "
                        "a misspelt element, or one these records do not use\n")
    assert "line 2: 'displaypage' found 1 URLs" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["check-branches", str(good), "--records", str(empty)])
    assert r.exit_code == 0, r.output
    assert r.stderr == f"warning: no records in {empty}: no branch was evaluated\n"
