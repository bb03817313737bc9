"""Settings of a home, read from ``etc/kiel.conf`` (INI, section ``[kiel]``).

Every key has a default; ``kiel init`` writes them all, commented. The one
table :data:`SETTINGS` is the source of the defaults, the parsing and the
text of the generated file, so they cannot drift apart.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

from kiel.errors import ConfigError
from kiel.replica import Replica
from kiel.replica import parse as parse_replicas
from kiel.tist import DURATION_HELP, duration

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# Each parser raises ValueError with the text that follows "key = 'value': " in
# the message: what was wrong and what is accepted, never Python's own words.

def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "yes", "true", "on"):
        return True
    if t in ("0", "no", "false", "off"):
        return False
    raise ValueError("use yes or no (also true/false, on/off, 1/0)")


# Sizes: decimal units (KB = 1000 bytes) and binary ones (KiB = 1024 bytes), as
# the header of kiel.conf says; a bare number is bytes. Case does not matter.
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")
_SIZE_HELP = ("use a number of bytes with B, KB, MB, GB, KiB, MiB or GiB "
              "(e.g. 2GiB, 500 MB, 1048576)")


def _size(text: str) -> int:
    m = _SIZE.match(text.strip().lower())
    if not m or m.group(2) not in _SIZE_UNITS:
        raise ValueError(f"not a size; {_SIZE_HELP}")
    value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if value < 1:
        raise ValueError(f"must be at least 1 byte; {_SIZE_HELP}")
    return value


def _whole(text: str, least: int) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise ValueError(f"not a whole number; use a whole number of at least {least}")
    v = int(t)
    if v < least:
        raise ValueError(f"must be at least {least}")
    return v


def _positive_int(text: str) -> int:
    return _whole(text, 1)


def _nonneg_int(text: str) -> int:
    return _whole(text, 0)


# Durations: the one grammar of kiel.tist, shared with the command line's options.

def _seconds(text: str) -> float:
    return duration(text)


def _positive_seconds(text: str) -> float:
    v = duration(text)
    if v <= 0:
        raise ValueError("must be more than 0")
    return v


def _whole_seconds(text: str) -> int:
    return round(duration(text))


def _duration_or_never(text: str) -> int | None:
    t = text.strip().lower()
    if t in ("", "never", "none"):
        return None
    try:
        return _whole_seconds(t)
    except ValueError:
        raise ValueError(f"not a duration; use never or {DURATION_HELP[4:]}") from None


_SHARE_HELP = "use a percentage from 0% to 100% (e.g. 5%) or a fraction (e.g. 0.05)"


def share(text: str) -> float:
    """``5%`` -> 0.05, ``0.05`` -> 0.05: a share of a whole, from 0 to 1."""
    t = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%?)", t)
    if not m:
        raise ValueError(f"not a share; {_SHARE_HELP}")
    value = float(m.group(1)) / (100 if m.group(2) else 1)
    if value > 1:
        raise ValueError(f"more than the whole; {_SHARE_HELP}")
    return value


def _lines(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.replace(",", "\n").splitlines() if x.strip())


def _replicas(text: str) -> tuple[Replica, ...]:
    return parse_replicas(text)


def _networks(text: str) -> tuple[Network, ...]:
    out: list[Network] = []
    for x in _lines(text):
        try:
            out.append(ipaddress.ip_network(x, strict=False))
        except ValueError:
            raise ValueError(f"{x!r} is not a network; use CIDR blocks such as 10.0.0.0/8 "
                             "or 2001:db8::/32, separated by commas or lines") from None
    return tuple(out)


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
    Setting("processes", "0", _nonneg_int,
            "Worker processes of a renewal (0: one per core). Records that share a URL "
            "renew in one process; concurrency and per_host are shared out among them, "
            "and a run with host_delay, or with per_host under processes, uses fewer."),
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
    Setting("record_interval", "0", _whole_seconds,
            "Skip records whose last renewal ended less than this ago (e.g. 20h)."),
    Setting("give_up_after", "never", _duration_or_never,
            "Stop fetching an object that has failed for longer than this (e.g. 180d)."),
    Setting("deny_networks",
            "127.0.0.0/8, ::1/128, 0.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
            "100.64.0.0/10, 169.254.0.0/16, fe80::/10, fc00::/7, 224.0.0.0/4, ff00::/8, "
            "::ffff:0:0/96",
            _networks,
            "Networks Kiel never connects to (CIDR list), besides the addresses it always "
            "refuses (loopback, private, link-local, unspecified, reserved, multicast, and "
            "their IPv4-mapped, NAT64 and 6to4 forms); checked on the address dialled."),
    Setting("allow_networks", "", _networks,
            "Networks allowed even when denied by deny_networks or by the always-refused "
            "kinds (e.g. 127.0.0.1/32 for a test server)."),
    Setting("sync", "no", _bool,
            "fsync every file before it gets its final name (survives power loss; slower)."),
    Setting("repository_name", "Kiel archive", str.strip, "OAI-PMH: repositoryName."),
    Setting("repository_identifier", "kiel.example.org", str.strip,
            "OAI-PMH: the namespace part of oai:<identifier>:<record id>."),
    Setting("admin_email", "admin@example.org", str.strip, "OAI-PMH: adminEmail."),
    Setting("base_url", "http://127.0.0.1:8080/oai", str.strip, "OAI-PMH: baseURL."),
    Setting("page_size", "100", _positive_int, "OAI-PMH: records or headers per list page."),
    Setting("max_requests", "8", _positive_int,
            "OAI-PMH: requests served at once; more wait up to request_wait, then get 503 "
            "with Retry-After."),
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
    Setting("host_down_after", "5", _nonneg_int,
            "After this many failed connections to one host in a run, its other objects "
            "in that run are noted 000 host-down without a connection (0: never)."),
    Setting("gone_max_share", "5%", share,
            "A full run marks no record gone when more than this share of the collection "
            "would become gone at once (kiel renew --allow-gone accepts it)."),
    Setting("alert_share", "50%", share,
            "A run in which this share of attempts could not connect is an alert: one line "
            "even under --quiet, and exit status 69."),
    Setting("alert_min_attempts", "20", _nonneg_int,
            "Fewer attempts than this in a run never make an alert."),
    Setting("discovery_depth", "1", _nonneg_int,
            "Discovery: how many steps from a landing page its full text is followed; "
            "1 searches only the pages records name, 0 turns discovery off."),
    Setting("max_discovered", "20", _positive_int,
            "Discovery: most full texts taken from one landing page, most trusted first; "
            "the page's line counts the rest (discovered_more)."),
    Setting("max_objects", "1000", _positive_int,
            "Most objects of one record in a renewal: what its pages, redirects and deposits "
            "add stops there, with a line in the record's notes."),
    Setting("discovery_timeout", "10", _positive_seconds,
            "Discovery: processor time one landing page may take to be parsed and read; "
            "a page that takes longer is given up (noted in its dropped field), the run "
            "goes on."),
    Setting("max_file_count", "200", _positive_int,
            "Deposits: most files fetched one by one; a larger deposit is fetched as the "
            "platform's bundle (zip), or fails too-many-files when it offers none."),
    Setting("max_total_size", "64GiB", _size,
            "Deposits: largest total size of a deposit's files; a larger one fails "
            "too-large-size."),
    Setting("max_input_file", "1GiB", _size,
            "Largest input file, decompressed; a larger one is reported and skipped."),
    Setting("max_record", "16MiB", _size,
            "Largest record (and largest stretch of input without the end of one); a larger "
            "one ends its file with a problem (file and line)."),
    Setting("follow_outside_links", "no", _bool,
            "Follow symbolic links in the input tree that lead outside it."),
    Setting("archive_dirs", "yes", _bool,
            "Skip and report a RePEc handle found under another archive's directory (input "
            "laid out one directory per archive, as RePEc does)."),
    # Replicas (docs/replicas.md): kiel replicate and kiel audit.
    Setting("replicas", "", _replicas,
            "Copies of this home that kiel replicate keeps and kiel audit compares, separated "
            "by spaces: rsync://host[:port]/module[/path] (an rsync daemon) or "
            "[user@]host:path (rsync over ssh); e.g. rsync://back1/kiel rsync://back2/kiel"),
)


@dataclass(frozen=True)
class Config:
    input: tuple[str, ...] = ()
    contact: str = ""
    concurrency: int = 16
    per_host: int = 2
    processes: int = 0
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
    deny_networks: tuple[Network, ...] = field(default_factory=tuple)
    allow_networks: tuple[Network, ...] = ()
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
    host_down_after: int = 5
    gone_max_share: float = 0.05
    alert_share: float = 0.5
    alert_min_attempts: int = 20
    discovery_depth: int = 1
    max_discovered: int = 20
    max_objects: int = 1000
    discovery_timeout: float = 10.0
    max_file_count: int = 200
    max_total_size: int = 64 * 1024**3
    max_input_file: int = 1024**3
    max_record: int = 16 * 1024**2
    follow_outside_links: bool = False
    archive_dirs: bool = True
    replicas: tuple[Replica, ...] = ()

    def replace(self, **changes: Any) -> Config:
        from dataclasses import replace

        return replace(self, **changes)


_BY_NAME = {s.name: s for s in SETTINGS}
assert set(_BY_NAME) == {f.name for f in fields(Config)}, "SETTINGS and Config disagree"


def defaults() -> Config:
    return Config(**{s.name: s.parse(s.default) for s in SETTINGS})


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read ``kiel.conf``; a missing file gives the defaults.

    Every error names the file, the line, the key, the value and what the
    key accepts (ConfigError, exit status 2)."""
    values = {s.name: s.parse(s.default) for s in SETTINGS}
    if path is None or not os.path.lexists(path):
        return Config(**values)
    # strict=False: a key given twice takes its last value, as appending to the file expects.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None,
                                       strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(f"{path}, line {e.lineno}: {e.line.strip()!r} comes before the "
                          "[kiel] line; settings go in a [kiel] section") from None
    except configparser.ParsingError as e:
        lineno = e.errors[0][0]  # the line itself comes repr()'d: read it back
        raise ConfigError(f"{path}, line {lineno}: {_line(path, lineno)!r} is not a setting; "
                          "write key = value") from None
    except configparser.Error as e:  # pragma: no cover - strict=False leaves few others
        raise ConfigError(f"{path}: not an INI file ({type(e).__name__})") from None
    for section in parser.sections():
        if section != "kiel":
            raise ConfigError(f"{path}: unknown section [{section}] (settings go in [kiel])")
    if parser.has_section("kiel"):
        lines = _key_lines(path)
        for key, text in parser.items("kiel"):
            setting = _BY_NAME.get(key)
            where = f"{path}, line {lines.get(key, '?')}"
            if setting is None:
                raise ConfigError(f"{where}: unknown setting {key!r} (kiel init writes every "
                                  "setting, commented, into a new kiel.conf)")
            try:
                values[key] = setting.parse(text)
            except ValueError as e:
                raise ConfigError(f"{where}: {key} = {text.strip()!r}: {e}") from None
    return Config(**values)


def _line(path: str | os.PathLike[str], lineno: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if n == lineno:
                return line.strip()
    return ""


def _key_lines(path: str | os.PathLike[str]) -> dict[str, int]:
    # The last line that sets a key: its value is the one that counts (strict=False).
    out: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if "=" in line and not line.lstrip().startswith(("#", ";")) and not line[:1].isspace():
                out[line.split("=", 1)[0].strip().lower()] = n
    return out


def template() -> str:
    """The text of a new ``kiel.conf``: every setting, commented, at its default."""
    out = [
        "# Kiel settings. Every key is shown at its default; uncomment to change.",
        "# Durations are seconds, or take ms, s, m, h, d, w (500ms, 30s, 90m, 1h30m, 20h).",
        "# Sizes are bytes, or take B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB",
        "# (powers of 1024), with or without a space (2GiB, 500 MB).",
        "[kiel]",
    ]
    for s in SETTINGS:
        out.append("")
        out.append(f"# {s.doc}")
        default = s.default.replace("\n", "\n#   ")
        out.append(f"# {s.name} = {default}")
    return "\n".join(out) + "\n"
