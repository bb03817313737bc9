"""No command ends in a traceback on a user's mistake.

Every command runs against a missing home, a bad kiel.conf and a target it
cannot write; each must print one clear message and exit with the status
docs/operations.md gives (2 for a mistake in what was asked, 74 when the
home cannot be written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiel.cli import main

from kit.homes import make_home, text, write_amf


def run(*args: str) -> tuple[int, str]:
    """Run in-process; a traceback shows as an exception that is not SystemExit."""
    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"kiel {' '.join(args)} raised {r.exception!r}") from r.exception
    assert "Traceback" not in r.output
    return r.exit_code, r.output


def run_process(*args: str, timeout: float = 20) -> tuple[int, str]:
    """For commands that would serve forever if the mistake went unnoticed."""
    p = subprocess.run([sys.executable, "-m", "kiel", *args], capture_output=True, text=True,
                       check=False, timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout + p.stderr


@pytest.fixture
def amf(tmp_path: Path) -> str:
    return str(write_amf(tmp_path / "in" / "a.xml", text("RePEc:aaa:wpaper:1")))


def missing_home_message(home: Path) -> str:
    return (f"Error: no Kiel home at {home}: the directory does not exist "
            f"(is --home or KIEL_HOME right? kiel init --home {home} makes one)")


COMMANDS = [
    pytest.param(["check-branches"], id="check-branches"),
    pytest.param(["renew", "{amf}"], id="renew"),
    pytest.param(["show", "RePEc:aaa:wpaper:1"], id="show"),
    pytest.param(["verify"], id="verify"),
    pytest.param(["report"], id="report"),
    pytest.param(["oai", "index"], id="oai-index"),
]


@pytest.mark.parametrize("args", COMMANDS)
def test_missing_home(tmp_path: Path, amf: str, args: list[str]):
    home = tmp_path / "typo"
    status, out = run(*[a.format(amf=amf) for a in args], "--home", str(home))
    assert (status, out.strip()) == (2, missing_home_message(home))
    assert not home.exists()  # nothing is created in a home that is not there


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_home_oai_serve(tmp_path: Path, via_env: bool):
    home = tmp_path / "typo"
    args = ["oai", "serve", "--bind", "127.0.0.1:9"]
    if via_env:
        p = subprocess.run([sys.executable, "-m", "kiel", *args], capture_output=True,
                           text=True, check=False, timeout=20,
                           env={**os.environ, "KIEL_HOME": str(home)})
        status, out = p.returncode, p.stdout + p.stderr
    else:
        status, out = run_process(*args, "--home", str(home))
    assert (status, out.strip()) == (2, missing_home_message(home))


def test_init_makes_a_missing_home(tmp_path: Path):
    status, out = run("init", "--home", str(tmp_path / "new" / "home"))
    assert status == 0 and "created" in out


BAD_CONF = "[kiel]\ncontact = me@example.org\nread_timeout = 30 sec\n"


def bad_conf_message(home: Path) -> str:
    return (f"Error: {home}/etc/kiel.conf, line 3: read_timeout = '30 sec': not a duration; "
            "use seconds or a number with ms, s, m, h, d or w "
            "(e.g. 30, 30s, 500ms, 90m, 1h30m, 2d)")


@pytest.mark.parametrize("args", [pytest.param(["init"], id="init"), *COMMANDS])
def test_bad_config(tmp_path: Path, amf: str, args: list[str]):
    home = make_home(tmp_path / "h")
    (home / "etc" / "kiel.conf").write_text(BAD_CONF)
    status, out = run(*[a.format(amf=amf) for a in args], "--home", str(home))
    assert status == 2
    assert out.strip().splitlines()[-1] == bad_conf_message(home)


def test_bad_config_oai_serve(tmp_path: Path):
    home = make_home(tmp_path / "h")
    (home / "etc" / "kiel.conf").write_text(BAD_CONF)
    status, out = run_process("oai", "serve", "--home", str(home), "--bind", "127.0.0.1:9")
    assert (status, out.strip()) == (2, bad_conf_message(home))


def test_check_branches_file_needs_no_home(tmp_path: Path):
    """A branches file named on the command line is checked without any home."""
    f = tmp_path / "b.xml"
    f.write_text('<branches><branch xpath="file/url"/></branches>')
    status, out = run("check-branches", str(f), "--home", str(tmp_path / "typo"))
    assert status == 0 and "all valid" in out


def test_home_without_branches(tmp_path: Path, amf: str):
    home = tmp_path / "bare"
    home.mkdir()
    status, out = run("renew", amf, "--home", str(home))
    assert (status, out.strip()) == (
        2, (f"Error: {home}/etc/branches.xml does not exist: is --home right? "
           f"(kiel init --home {home} makes a home)"))
    status, out = run("check-branches", "--home", str(home))
    assert (status, out.strip()) == (
        2, (f"Error: {home}/etc/branches.xml does not exist: is --home right? "
           f"(kiel init --home {home} makes a home)"))


# --- targets that cannot be written -----------------------------------------------
# The tests run as root in CI, where permission bits do not stop a write: a
# path through a regular file (ENOTDIR) cannot be written by anyone.

def test_init_into_a_place_that_cannot_be_written(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    status, out = run("init", "--home", str(tmp_path / "file" / "h"))
    assert (status, out.strip()) == (
        74, f"Error: cannot create {tmp_path}/file/h/etc: Not a directory")


def test_renew_into_a_store_that_cannot_be_written(tmp_path: Path, amf: str):
    home = make_home(tmp_path / "h")
    os.rmdir(home / "store")
    (home / "store").write_text("not a directory")
    status, out = run("renew", amf, "--home", str(home))
    assert status == 74
    assert out.strip().startswith(f"Error: {home}/store: ")


@pytest.mark.parametrize("where, reason", [
    ("missing/report.html", "No such file or directory"),
    ("file/report.html", "Not a directory"),
])
def test_report_html_into_a_place_that_cannot_be_written(tmp_path: Path, where: str,
                                                         reason: str):
    home = make_home(tmp_path / "h")
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    target = tmp_path / where
    status, out = run("report", "--home", str(home), "--html", str(target))
    assert status == 2
    assert out.strip().splitlines()[-1] == (
        f"Error: cannot write the report to {target}: {reason}")
    assert not [n for n in os.listdir(tmp_path) if ".kiel-tmp" in n]
    status, out = run("report", "--home", str(home), "--html", str(tmp_path / "dir"))
    assert status == 2 and "is a directory" in out


@pytest.mark.parametrize("args", [
    pytest.param(["renew", "{amf}"], id="renew"),
    pytest.param(["verify", "--repair"], id="verify-repair"),
    pytest.param(["oai", "index"], id="oai-index"),
    pytest.param(["oai", "serve", "--bind", "127.0.0.1:9"], id="oai-serve"),
])
def test_a_home_whose_var_cannot_be_written(tmp_path: Path, amf: str, args: list[str]):
    """var/ (lock, logs, the OAI index) replaced by a file: exit 74, naming it."""
    home = make_home(tmp_path / "h")
    os.rmdir(home / "var")
    (home / "var").write_text("not a directory")
    status, out = run_process(*[a.format(amf=amf) for a in args], "--home", str(home))
    assert status == 74, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Error: ") and f"{home}/var" in last, last


def test_oai_serve_on_a_port_that_does_not_exist(tmp_path: Path):
    """`--bind 127.0.0.1:99999` must be refused, not served on another port."""
    home = make_home(tmp_path / "h")
    p = subprocess.Popen([sys.executable, "-m", "kiel", "oai", "serve", "--home", str(home),
                          "--bind", "127.0.0.1:99999"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"still serving after 5 s: {out}") from None
    assert "Traceback" not in err
    assert p.returncode == 2 and "99999" in err, (out, err)
