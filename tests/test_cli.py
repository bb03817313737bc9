"""The command line: init, renew's exits and output, --help everywhere."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kiel import __version__
from kiel.cli import main
from kiel.home import Lock

from kit.cli import kiel
from kit.homes import make_home, text, write_amf


def test_init_never_overwrites(tmp_path: Path):
    h = tmp_path / "h"
    r = CliRunner().invoke(main, ["init", "--home", str(h)])
    assert r.exit_code == 0 and "created" in r.output
    conf = h / "etc" / "kiel.conf"
    text_ = conf.read_text()
    assert "# concurrency = 16" in text_ and "# per_host = 2" in text_ and "[kiel]" in text_
    assert (h / "etc" / "branches.xml").read_text().count("<branch ") == 2
    conf.write_text("[kiel]\ncontact = me@example.org\n")
    r = CliRunner().invoke(main, ["init", "--home", str(h)])
    assert "kept" in r.output and conf.read_text() == "[kiel]\ncontact = me@example.org\n"


def test_every_command_has_help_with_an_example():
    for name, _cmd in main.commands.items():
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0, name
        assert "Example" in r.output or "example" in r.output, name
    r = CliRunner().invoke(main, ["--version"])
    assert __version__ in r.output


def test_renew_exit_statuses(tmp_path: Path):
    h = make_home(tmp_path / "h")
    good = write_amf(tmp_path / "good.xml", text("RePEc:aaa:wpaper:1"))
    r = kiel("renew", "--home", str(h), str(good))
    assert r.returncode == 0, r.stderr
    assert "records:  1 found" in r.stdout
    bad = write_amf(tmp_path / "bad.xml", text(None))
    r = kiel("renew", "--home", str(h), str(bad))
    assert r.returncode == 1 and "text without id" in r.stderr
    r = kiel("renew", "--home", str(h), "--quiet", str(bad))
    assert r.returncode == 1 and r.stdout == "" and "text without id" in r.stderr
    r = kiel("renew", "--home", str(h), "--shard", "3/2", str(good))
    assert r.returncode == 2 and "K must be between 1 and N" in r.stderr
    (h / "etc" / "kiel.conf").write_text("[kiel]\nconcurrency = lots\n")
    r = kiel("renew", "--home", str(h), str(good))
    assert r.returncode == 2 and "kiel.conf, line 2" in r.stderr


def test_renew_lock_held_exits_75(tmp_path: Path):
    h = make_home(tmp_path / "h")
    good = write_amf(tmp_path / "good.xml", text("RePEc:aaa:wpaper:1"))
    from kiel.home import Home
    with Lock(Home(str(h))):
        r = kiel("renew", "--home", str(h), str(good))
    assert r.returncode == 75 and "another renewal holds" in r.stderr


def test_kiel_home_environment(tmp_path: Path):
    h = make_home(tmp_path / "h")
    good = write_amf(tmp_path / "good.xml", text("RePEc:aaa:wpaper:1"))
    r = kiel("renew", str(good), env={"KIEL_HOME": str(h)})
    assert r.returncode == 0, r.stderr
    assert (h / "store" / "RePEc" / "aaa" / "wpaper" / "1").is_dir()


def test_quiet_cron_run_prints_nothing_when_all_is_well(tmp_path: Path):
    h = make_home(tmp_path / "h")
    good = write_amf(tmp_path / "good.xml", text("RePEc:aaa:wpaper:1"))
    r = kiel("renew", "--home", str(h), "--quiet", str(good))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def no_contact_warning(h: Path) -> str:
    return (f"warning: {h}/etc/kiel.conf: contact is empty, so the User-Agent names no one "
            "site owners can reach; set it, e.g. contact = mailto:archive@example.org\n")


def test_an_empty_contact_is_warned_at_init_and_at_every_renewal(tmp_path: Path):
    h = tmp_path / "h"
    r = kiel("init", "--home", str(h))
    assert r.returncode == 0 and r.stderr == no_contact_warning(h)
    with open(h / "etc" / "kiel.conf", "a", encoding="utf-8") as f:
        f.write("allow_networks = 127.0.0.0/8\n")
    good = write_amf(tmp_path / "good.xml", text("RePEc:aaa:wpaper:1"))
    # Also under --quiet: cron mails it until a person sets the contact.
    r = kiel("renew", "--home", str(h), "--quiet", str(good))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", no_contact_warning(h))
    with open(h / "etc" / "kiel.conf", "a", encoding="utf-8") as f:
        f.write("contact = mailto:archive@example.org\n")
    r = kiel("init", "--home", str(h))
    assert r.returncode == 0 and r.stderr == ""
    r = kiel("renew", "--home", str(h), "--quiet", str(good))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
