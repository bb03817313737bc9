"""The rsync binary, run as a child process, and what it says.

Kiel does not speak rsync's protocol itself: every transfer and every
comparison is the operator's own ``rsync``, with the options below, so a
back machine needs rsync and nothing else (docs/replicas.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from kiel.replica import Replica

# What of a home travels (docs/replicas.md, What a replica holds): etc/, store/,
# the branches in use and the run summaries. Hidden names never do: they are
# Kiel's temporary files (docs/contract.md, Safety), rsync's own, and the
# partial directory of a cut transfer. Locks, logs, work directories, the
# OAI index (rebuilt from the store) and var/damaged stay on their machine.
FILTERS: tuple[str, ...] = (
    "--exclude=.*",
    "--include=/etc/***",
    "--include=/store/***",
    "--include=/var/",
    "--include=/var/branches-in-use.xml",
    "--include=/var/runs/***",
    "--exclude=*",
)
# The files Kiel replaces or appends to (docs/contract.md): only these may be
# rewritten on a replica; every other name, once there, is never sent again.
MUTABLE_FILTERS: tuple[str, ...] = (
    "--exclude=.*",
    "--include=/etc/",
    "--include=/etc/kiel.conf",
    "--include=/etc/branches.xml",
    "--include=/var/",
    "--include=/var/branches-in-use.xml",
    "--include=/store/",
    "--include=/store/**/",
    "--include=00notes",
    "--include=00last",
    "--include=00gone",
    "--exclude=*",
)
MUTABLE_NAMES = frozenset({"00notes", "00last", "00gone"})
MUTABLE_PATHS = frozenset({"etc/kiel.conf", "etc/branches.xml", "var/branches-in-use.xml"})
PARTIAL_DIR = ".kiel-partial"
_T = TypeVar("_T")
_R = TypeVar("_R")
# -a keeps links as links, times, modes and owners; --numeric-ids keeps the
# owners' numbers across machines whose users differ.
BASE: tuple[str, ...] = ("-a", "--numeric-ids")
OUT_FORMAT = "--out-format=%i %n%L"
CONNECT_TIMEOUT = 30  # seconds, rsync daemons only
IO_TIMEOUT = 600  # seconds without any data
# rsync's exit codes that mean the replica could not be reached or went away:
# 5 starting the protocol (unknown module, refused), 10 socket I/O, 12 the
# data stream broke, 30 timeout, 35 timeout connecting to the daemon, 255 the
# remote shell failed (ssh: host unreachable, refused, authentication).
UNREACHABLE = frozenset({5, 10, 12, 30, 35, 255})
# 24: files vanished on the sender while it ran; not a failure of the copy.
BENIGN = frozenset({0, 24})


def mutable(rel: str) -> bool:
    """Whether Kiel replaces or appends to the file at ``rel`` (relative to the home)."""
    return rel in MUTABLE_PATHS or (rel.startswith("store/") and
                                    os.path.basename(rel) in MUTABLE_NAMES)


@dataclass(frozen=True)
class Item:
    """One line of rsync's ``--itemize-changes``: ``YXcstpoguax path[ -> target]``."""

    flags: str
    path: str
    target: str | None  # a symbolic link's target

    @property
    def kind(self) -> str:
        return self.flags[1]  # f file, d directory, L link, D device, S special

    @property
    def new(self) -> bool:
        return self.flags[2:].startswith("+")

    @property
    def content(self) -> bool:
        """The item's content is sent or differs (not only its times or modes)."""
        return self.flags[0] in "<>ch" and self.kind != "d"


_ESCAPE = re.compile(r"\\#([0-7]{3})")


def _unescape(text: str) -> str:
    # rsync shows a byte it will not print as \#ooo (octal).
    if "\\#" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def parse_item(line: str) -> Item | None:
    if len(line) < 13 or line[11] != " " or line[0] not in "<>ch.*":
        return None
    flags, rest = line[:11], line[12:]
    target = None
    if flags[1] == "L" and " -> " in rest:
        rest, target = rest.split(" -> ", 1)
        target = _unescape(target)
    return Item(flags, _unescape(rest), target)


@dataclass(frozen=True)
class Run:
    status: int
    error: str  # rsync's last words on stderr, for a message

    @property
    def unreachable(self) -> bool:
        return self.status in UNREACHABLE

    @property
    def ok(self) -> bool:
        return self.status in BENIGN


def argv(rsync: str, replica: Replica | None, *args: str) -> list[str]:
    """The command line: rsync, the base options, the timeouts, then ``args``."""
    out = [rsync, *BASE, f"--timeout={IO_TIMEOUT}"]
    if replica is not None and replica.daemon:
        out.append(f"--contimeout={CONNECT_TIMEOUT}")
    return out + list(args)


class Children:
    """The rsync processes of one command, several at once (one per replica):
    whoever stops the command ends them all (:meth:`end`), so a transfer is
    never left running after Kiel has gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._ended = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)
            if self._ended:
                proc.terminate()

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def end(self) -> None:
        with self._lock:
            self._ended = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.terminate()


def run(command: Sequence[str], on_item: Callable[[Item], None] | None = None,
        files_from: Sequence[str] | None = None, children: Children | None = None) -> Run:
    """Run rsync; each itemized line goes to ``on_item`` as it comes (a
    listing of millions of files is never held); ``files_from`` are paths
    given to ``--files-from`` (one per line, NUL-separated)."""
    cmd = list(command)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as listing:
        if files_from is not None:
            listing.write(b"".join(os.fsencode(p) + b"\0" for p in files_from))
            listing.flush()
            cmd[1:1] = [f"--files-from={listing.name}", "--from0"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
        if children is not None:
            children.add(proc)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                item = parse_item(raw.decode("utf-8", "surrogateescape").rstrip("\n"))
                if item is not None and on_item is not None:
                    on_item(item)
            status = proc.wait()
        finally:
            # Our own child ends with us (a signal, an exception): a transfer
            # cut here leaves its partial file aside, never under a final name.
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            if children is not None:
                children.discard(proc)
        err.seek(0)
        lines = [x.strip() for x in err.read().decode("utf-8", "replace").splitlines()
                 if x.strip()]
    return Run(status, _last_words(lines))


def _last_words(lines: list[str]) -> str:
    # rsync ends with "rsync error: ... (code N) at file.c(line)": the line
    # before it says why; both are kept, without the source position.
    shown = [re.sub(r" at [\w./]+\(\d+\) \[\w+=[\d.\w]+\]$", "", x) for x in lines[-2:]]
    return "; ".join(shown)


def each(items: Sequence[_T], fn: Callable[[_T], _R], children: Children) -> list[_R]:
    """``fn`` on every item at once, one thread each (the replicas are other
    machines: their disks and the network work in parallel); results in the
    order of ``items``. Any exception ends every child and is raised."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max_workers=len(items))
    try:
        futures = [pool.submit(fn, x) for x in items]
        return [f.result() for f in futures]
    except BaseException:
        children.end()
        raise
    finally:
        pool.shutdown(wait=True)
