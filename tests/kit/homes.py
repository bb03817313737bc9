"""AMF inputs, a test home, a controllable clock and the paths of a store."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from kiel import home as home_mod
from kiel import renewal, store

AMF_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<amf xmlns="http://amf.openlib.org">\n'

# Test homes allow loopback (denied by default) and keep retries short. Their
# collections are tiny, so one record gone is a large share: the tests of the
# share itself set gone_max_share back.
TEST_SETTINGS = """
contact = mailto:tests@example.org
gone_max_share = 100%
allow_networks = 127.0.0.0/8, ::1/128
retries = 0
retry_delay = 0.05
connect_timeout = 3
read_timeout = 3
total_timeout = 10
"""


class Clock:
    """A clock the test moves: whole stores become comparable."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float = 100.0) -> None:
        self.t += seconds


def make_home(path: Path, extra: str = "") -> Path:
    """A home made as an operator makes one (``kiel init``), set up for tests."""
    subprocess.run([sys.executable, "-m", "kiel", "init", "--home", str(path)], check=True,
                   capture_output=True)
    with open(path / "etc" / "kiel.conf", "a", encoding="utf-8") as f:
        f.write(TEST_SETTINGS + extra)
    return path


def renewal_gone(h: home_mod.Home) -> bool:
    """No process of a renewal holds the home's lock any more: a killed run's
    worker processes die a moment after their parent, and hold it till then."""
    import fcntl

    try:
        fd = os.open(os.path.join(h.var, "renew.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # the lock, if taken, goes with the descriptor
    return True


def set_config(h: home_mod.Home, **values: object) -> None:
    with open(h.conf, "a", encoding="utf-8") as f:
        for k, v in values.items():
            f.write(f"{k} = {v}\n")


def text(rid: str | None, *urls: str, display: str | None = None, extra: str = "") -> str:
    """One AMF text noun with a displaypage and file/url children."""
    idattr = f' id="{rid}"' if rid is not None else ""
    parts = [f"<text{idattr}><title>Title of {rid}</title>{extra}"]
    if display:
        parts.append(f"<displaypage>{display}</displaypage>")
    for u in urls:
        parts.append(f"<file><url>{u}</url><format>application/pdf</format></file>")
    parts.append("</text>")
    return "".join(parts)


def write_amf(path: Path, *texts: str, gz: bool = False) -> Path:
    data = (AMF_HEAD + "\n".join(texts) + "\n</amf>\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def run(h: home_mod.Home, *inputs: Path | str, clock: Clock | None = None, **opts):
    return renewal.renew(h, renewal.Options(inputs=tuple(str(p) for p in inputs),
                                            clock=clock or Clock(), **opts))


class HasStore(Protocol):
    """A home, or any test value that names a store directory."""

    @property
    def store(self) -> str: ...


def record_dir(h: HasStore, rid: str) -> Path:
    from kiel.redist import record_path

    return Path(h.store) / record_path(rid)


def object_dir(h: HasStore, rid: str, url: str) -> Path:
    from kiel.escape import escape

    return record_dir(h, rid) / escape(url)


def attempts(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if store.parse_attempt(n))


def minimal_pdf(text: str = "Kiel test") -> bytes:
    """A real one-page PDF 1.4: objects, a content stream and an exact xref."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
