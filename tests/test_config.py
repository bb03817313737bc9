"""kiel.conf: units as its header says, and messages that name file, line,
key, value and what is accepted (never Python's own text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiel import config
from kiel.errors import ConfigError


def conf(tmp_path: Path, body: str) -> str:
    path = tmp_path / "kiel.conf"
    path.write_text("# settings\n[kiel]\n" + body, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("text, want", [
    ("2GiB", 2 * 1024**3), ("2 GiB", 2 * 1024**3), ("2 GB", 2 * 10**9), ("2gb", 2 * 10**9),
    ("500MB", 500 * 10**6), ("500 MiB", 500 * 1024**2), ("64KB", 64000), ("64 KiB", 65536),
    ("1.5 MiB", 1572864), ("100 B", 100), ("4096", 4096),
])
def test_sizes(tmp_path: Path, text: str, want: int):
    assert config.load(conf(tmp_path, f"max_body = {text}\n")).max_body == want


@pytest.mark.parametrize("key, text, want", [
    ("read_timeout", "30s", 30.0), ("read_timeout", "30", 30.0), ("read_timeout", "2m", 120.0),
    ("host_delay", "500ms", 0.5), ("host_delay", "0.25", 0.25), ("host_delay", "1s500ms", 1.5),
    ("total_timeout", "1h30m", 5400.0), ("total_timeout", "1 h 30 m", 5400.0),
    ("retry_after_cap", "2 m", 120.0),
    ("record_interval", "20h", 72000), ("record_interval", "1w", 604800),
    ("record_interval", "90", 90), ("give_up_after", "180d", 180 * 86400),
    ("give_up_after", "never", None),
])
def test_durations(tmp_path: Path, key: str, text: str, want: float):
    assert getattr(config.load(conf(tmp_path, f"{key} = {text}\n")), key) == want


SIZE_HELP = ("use a number of bytes with B, KB, MB, GB, KiB, MiB or GiB "
             "(e.g. 2GiB, 500 MB, 1048576)")
DURATION_HELP = ("use seconds or a number with ms, s, m, h, d or w "
                 "(e.g. 30, 30s, 500ms, 90m, 1h30m, 2d)")


@pytest.mark.parametrize("line, message", [
    ("max_body = 2 G", f"max_body = '2 G': not a size; {SIZE_HELP}"),
    ("max_body = lots", f"max_body = 'lots': not a size; {SIZE_HELP}"),
    ("max_body = 0", f"max_body = '0': must be at least 1 byte; {SIZE_HELP}"),
    ("read_timeout = 30 sec", f"read_timeout = '30 sec': not a duration; {DURATION_HELP}"),
    ("host_delay = -1", f"host_delay = '-1': not a duration; {DURATION_HELP}"),
    ("host_delay = 5 10", f"host_delay = '5 10': not a duration; {DURATION_HELP}"),
    ("record_interval = soon", f"record_interval = 'soon': not a duration; {DURATION_HELP}"),
    ("give_up_after = later",
     ("give_up_after = 'later': not a duration; use never or seconds or a number with ms, s, "
     "m, h, d or w (e.g. 30, 30s, 500ms, 90m, 1h30m, 2d)")),
    ("concurrency = lots", ("concurrency = 'lots': not a whole number; use a whole number of "
                           "at least 1")),
    ("concurrency = 2.5", ("concurrency = '2.5': not a whole number; use a whole number of "
                          "at least 1")),
    ("per_host = 0", "per_host = '0': must be at least 1"),
    ("retries = -1", "retries = '-1': must be at least 0"),
    ("sync = maybe", "sync = 'maybe': use yes or no (also true/false, on/off, 1/0)"),
    ("allow_networks = 127.0.0.1/32, 10.0.0.300",
     ("allow_networks = '127.0.0.1/32, 10.0.0.300': '10.0.0.300' is not a network; use CIDR "
     "blocks such as 10.0.0.0/8 or 2001:db8::/32, separated by commas or lines")),
])
def test_messages_name_file_line_key_value_and_what_is_accepted(tmp_path: Path, line: str,
                                                                message: str):
    path = conf(tmp_path, f"contact = me@example.org\n{line}\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value) == f"{path}, line 4: {message}"
    for python_text in ("could not convert", "invalid literal", "base 10", "Traceback"):
        assert python_text not in str(e.value)


def test_the_line_named_is_the_one_whose_value_counts(tmp_path: Path):
    path = conf(tmp_path, "per_host = 3\n\nper_host = none\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value).startswith(f"{path}, line 5: per_host = 'none'")


@pytest.mark.parametrize("body, message", [
    ("concurrency = 3\n", ("line 1: 'concurrency = 3' comes before the [kiel] line; settings "
                          "go in a [kiel] section")),
    ("[kiel]\nthis is not a setting\n", ("line 2: 'this is not a setting' is not a setting; "
                                        "write key = value")),
    ("[kiel]\nconcurency = 3\n", ("line 2: unknown setting 'concurency' (kiel init writes "
                                 "every setting, commented, into a new kiel.conf)")),
    ("[main]\n", "unknown section [main] (settings go in [kiel])"),
])
def test_file_level_mistakes(tmp_path: Path, body: str, message: str):
    path = tmp_path / "kiel.conf"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    sep = ", " if message.startswith("line") else ": "
    assert str(e.value) == f"{path}{sep}{message}"


def test_unreadable_and_not_utf8(tmp_path: Path):
    path = tmp_path / "kiel.conf"
    path.write_bytes(b"[kiel]\ncontact = \xff\xfe\n")
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    assert str(e.value) == f"{path}: not UTF-8 text"
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    assert str(e.value) == f"{path}: cannot read: Is a directory"


def test_the_template_states_the_units_and_parses_at_its_defaults(tmp_path: Path):
    text = config.template()
    assert "ms, s, m, h, d, w" in text and "B, KB, MB, GB" in text and "KiB, MiB, GiB" in text
    # Every commented default, uncommented, parses to the defaults.
    body = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line
                     for line in text.splitlines())
    path = tmp_path / "kiel.conf"
    path.write_text(body, encoding="utf-8")
    assert config.load(str(path)) == config.defaults()


@pytest.mark.parametrize("text, want", [("5%", 0.05), ("5 %", 0.05), ("0.05", 0.05),
                                        ("100%", 1.0), ("0", 0.0), ("12.5%", 0.125)])
def test_share(text: str, want: float):
    assert config.share(text) == pytest.approx(want)


@pytest.mark.parametrize("text, message", [
    ("lots", "not a share; use a percentage from 0% to 100% (e.g. 5%) or a fraction (e.g. 0.05)"),
    ("150%", ("more than the whole; use a percentage from 0% to 100% (e.g. 5%) or a fraction "
             "(e.g. 0.05)")),
    ("-5%", "not a share; use a percentage from 0% to 100% (e.g. 5%) or a fraction (e.g. 0.05)"),
])
def test_share_messages(text: str, message: str):
    with pytest.raises(ValueError) as e:
        config.share(text)
    assert str(e.value) == message


# One duration grammar for kiel.conf and the command line: `--max-time 1.5h`
# is what `total_timeout = 1.5h` is.
DURATIONS_ACCEPTED = [("1.5h", 5400.0), ("500ms", 0.5), ("2H", 7200.0), ("90m", 5400.0),
                      ("1h30m", 5400.0), ("1 h 30 m", 5400.0), ("30", 30.0), ("2d", 172800.0),
                      ("1w", 604800.0), ("6h", 21600.0)]
DURATIONS_REFUSED = ["soon", "-1", "5 10", "30 sec", "h", "1.5.h"]


def max_time_option(text: str) -> float:
    from kiel.cli import main

    ctx = main.commands["renew"].make_context("renew", ["--max-time", text])
    return ctx.params["max_time"]


@pytest.mark.parametrize("text, want", DURATIONS_ACCEPTED)
def test_max_time_and_kiel_conf_accept_the_same_durations(tmp_path: Path, text: str, want: float):
    assert config.load(conf(tmp_path, f"total_timeout = {text}\n")).total_timeout == want
    assert max_time_option(text) == want


@pytest.mark.parametrize("text", DURATIONS_REFUSED)
def test_max_time_and_kiel_conf_refuse_the_same_durations(tmp_path: Path, text: str):
    import re

    import click

    said = re.escape(f"not a duration; {DURATION_HELP}")
    with pytest.raises(ConfigError, match=said):
        config.load(conf(tmp_path, f"total_timeout = {text}\n"))
    with pytest.raises(click.BadParameter, match=said):
        max_time_option(text)
