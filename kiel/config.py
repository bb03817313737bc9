"""Settings of a home, read from ``etc/kiel.conf`` (INI, section ``[kiel]``).

Every key has a default; ``kiel init`` writes them all, commented. The one
table :data:`SETTINGS` is the source of the defaults, the parsing and the
text of the generated file, so they cannot drift apart.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from kiel.errors import ConfigError
from kiel.tist import parse_duration


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "yes", "true", "on"):
        return True
    if t in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"not yes/no: {text!r}")


def _size(text: str) -> int:
    t = text.strip().upper().replace(" ", "")
    for suffix, mult in (("KIB", 1024), ("MIB", 1024**2), ("GIB", 1024**3), ("TIB", 1024**4),
                         ("K", 1024), ("M", 1024**2), ("G", 1024**3), ("B", 1)):
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise ValueError("must be at least 1")
    return v


def _nonneg_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise ValueError("must not be negative")
    return v


def _seconds(text: str) -> float:
    v = float(text)
    if v < 0:
        raise ValueError("must not be negative")
    return v


def _duration_or_never(text: str) -> int | None:
    t = text.strip().lower()
    if t in ("", "never", "none"):
        return None
    return parse_duration(t)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.replace(",", "\n").splitlines() if x.strip())


def _networks(text: str) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(x, strict=False) for x in _lines(text))


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    parse: Callable[[str], Any]
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting("input", "", _lines,
            "AMF files or directories to walk (one per line; relative to the home)."),
    Setting("contact", "", str.strip,
            "Contact (URL or e-mail) put into the User-Agent, so site owners can reach you."),
    Setting("concurrency", "16", _positive_int, "Objects fetched at the same time, in all."),
    Setting("per_host", "2", _positive_int, "Objects fetched at the same time from one host."),
    Setting("host_delay", "0", _seconds,
            "Minimum seconds between two request starts to the same host."),
    Setting("connect_timeout", "10", _seconds, "Seconds to wait for a connection (and TLS)."),
    Setting("read_timeout", "30", _seconds, "Seconds to wait for the next bytes of an answer."),
    Setting("total_timeout", "600", _seconds, "Seconds one attempt may take in all."),
    Setting("max_body", "2GiB", _size,
            "Largest body kept; a larger one is a 000 attempt with error too-large."),
    Setting("max_redirects", "10", _nonneg_int, "Redirect hops followed from one object."),
    Setting("retries", "2", _nonneg_int,
            "Extra tries of a transient failure (000 connect/timeout/reset, 429, 502-504)."),
    Setting("retry_delay", "1", _seconds, "Base delay of the exponential backoff, seconds."),
    Setting("retry_after_cap", "120", _seconds, "Longest Retry-After honoured, seconds."),
    Setting("conditional", "yes", _bool,
            "Send If-None-Match / If-Modified-Since when the last 200 allows it."),
    Setting("record_interval", "0", parse_duration,
            "Skip records whose last renewal ended less than this ago (e.g. 20h)."),
    Setting("give_up_after", "never", _duration_or_never,
            "Stop fetching an object that has failed for longer than this (e.g. 180d)."),
    Setting("deny_networks",
            "127.0.0.0/8, ::1/128, 0.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
            "100.64.0.0/10, 169.254.0.0/16, fe80::/10, fc00::/7, 224.0.0.0/4, ff00::/8, "
            "::ffff:0:0/96",
            _networks,
            "Networks Kiel never connects to (CIDR list), checked for every address a host "
            "resolves to and on every redirect hop."),
    Setting("allow_networks", "", _networks,
            "Networks allowed even when deny_networks holds them (e.g. 127.0.0.1/32)."),
    Setting("sync", "no", _bool,
            "fsync every file before it gets its final name (survives power loss; slower)."),
    Setting("repository_name", "Kiel archive", str.strip, "OAI-PMH: repositoryName."),
    Setting("repository_identifier", "kiel.example.org", str.strip,
            "OAI-PMH: the namespace part of oai:<identifier>:<record id>."),
    Setting("admin_email", "admin@example.org", str.strip, "OAI-PMH: adminEmail."),
    Setting("base_url", "http://127.0.0.1:8080/oai", str.strip, "OAI-PMH: baseURL."),
    Setting("page_size", "100", _positive_int, "OAI-PMH: records or headers per list page."),
    Setting("max_requests", "8", _positive_int,
            "OAI-PMH: requests served at once; more are answered 503 with Retry-After."),
    Setting("request_wait", "10", _seconds,
            "OAI-PMH: seconds a request waits for one of the max_requests slots before 503."),
    Setting("connection_limit", "256", _positive_int,
            "OAI-PMH: open connections at most; past it new ones get 503 with Retry-After."),
    Setting("channel_timeout", "30", _positive_int,
            "OAI-PMH: seconds an idle connection is kept open."),
    Setting("max_request_body", "64KiB", _size,
            "OAI-PMH: largest POST body; a larger one is refused (413) before it is read."),
    Setting("friends", "", _lines,
            "OAI-PMH: base URLs of friendly repositories, named in Identify (one per line)."),
    Setting("set_names", "", str.strip,
            "OAI-PMH: a file of '<setSpec> TAB <name>' lines naming sets (relative to the home)."),
)


@dataclass(frozen=True)
class Config:
    input: tuple[str, ...] = ()
    contact: str = ""
    concurrency: int = 16
    per_host: int = 2
    host_delay: float = 0.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    max_body: int = 2 * 1024**3
    max_redirects: int = 10
    retries: int = 2
    retry_delay: float = 1.0
    retry_after_cap: float = 120.0
    conditional: bool = True
    record_interval: int = 0
    give_up_after: int | None = None
    deny_networks: tuple[Any, ...] = field(default_factory=tuple)
    allow_networks: tuple[Any, ...] = ()
    sync: bool = False
    repository_name: str = "Kiel archive"
    repository_identifier: str = "kiel.example.org"
    admin_email: str = "admin@example.org"
    base_url: str = "http://127.0.0.1:8080/oai"
    page_size: int = 100
    max_requests: int = 8
    request_wait: float = 10.0
    connection_limit: int = 256
    channel_timeout: int = 30
    max_request_body: int = 64 * 1024
    friends: tuple[str, ...] = ()
    set_names: str = ""

    def replace(self, **changes: Any) -> "Config":
        from dataclasses import replace

        return replace(self, **changes)


_BY_NAME = {s.name: s for s in SETTINGS}
assert set(_BY_NAME) == {f.name for f in fields(Config)}, "SETTINGS and Config disagree"


def defaults() -> Config:
    return Config(**{s.name: s.parse(s.default) for s in SETTINGS})


def load(path: str | os.PathLike | None) -> Config:
    """Read ``kiel.conf``; a missing file gives the defaults."""
    values = {s.name: s.parse(s.default) for s in SETTINGS}
    if path is None or not os.path.exists(path):
        return Config(**values)
    # strict=False: a key given twice takes its last value, as appending to the file expects.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None,
                                       strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    for section in parser.sections():
        if section != "kiel":
            raise ConfigError(f"{path}: unknown section [{section}] (settings go in [kiel])")
    if parser.has_section("kiel"):
        lines = _key_lines(path)
        for key, text in parser.items("kiel"):
            setting = _BY_NAME.get(key)
            where = f"{path}, line {lines.get(key, '?')}"
            if setting is None:
                raise ConfigError(f"{where}: unknown setting {key!r}")
            try:
                values[key] = setting.parse(text)
            except ValueError as e:
                raise ConfigError(f"{where}: {key} = {text!r}: {e}") from None
    return Config(**values)


def _key_lines(path: str | os.PathLike) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if "=" in line and not line.lstrip().startswith(("#", ";")) and not line[:1].isspace():
                out.setdefault(line.split("=", 1)[0].strip().lower(), n)
    return out


def template() -> str:
    """The text of a new ``kiel.conf``: every setting, commented, at its default."""
    out = [
        "# Kiel settings. Every key is shown at its default; uncomment to change.",
        "# Durations take s, m, h, d, w (90m, 20h); sizes take KiB, MiB, GiB.",
        "[kiel]",
    ]
    for s in SETTINGS:
        out.append("")
        out.append(f"# {s.doc}")
        default = s.default.replace("\n", "\n#   ")
        out.append(f"# {s.name} = {default}")
    return "\n".join(out) + "\n"
