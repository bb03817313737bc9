"""The ``replicas`` setting: rsync destinations separated by spaces.

``rsync://host[:port]/module[/path]`` is an rsync daemon;
``[user@]host:path`` is rsync over a remote shell (ssh). A replica keeps
the text the operator wrote: every message names it so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DAEMON = re.compile(r"^rsync://(?:[^@/\s]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?"
                     r"/[^/\s]+(?:/\S*)?$")
_SHELL = re.compile(r"^(?:[^@/:\s]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?!:|//)(\S+)$")
FRONT = "front"  # the home itself, as audit names it beside the replicas
HELP = ("write rsync://host[:port]/module[/path] (an rsync daemon) or [user@]host:path "
        "(rsync over ssh), separated by spaces")


@dataclass(frozen=True)
class Replica:
    spec: str  # as written in the setting
    daemon: bool  # rsync://... (else a remote shell)

    def url(self, rel: str = "") -> str:
        """The rsync location of ``rel`` (relative to the replica's home)."""
        return self.spec.rstrip("/") + "/" + rel

    def __str__(self) -> str:
        return self.spec


def parse_one(text: str) -> Replica:
    if _DAEMON.match(text):
        return Replica(text, True)
    if _SHELL.match(text):
        return Replica(text, False)
    raise ValueError(f"{text!r} is not a replica; {HELP}")


def parse(text: str) -> tuple[Replica, ...]:
    """Every replica of the setting, in the order written; a name given twice once."""
    out: list[Replica] = []
    for word in text.split():
        r = parse_one(word)
        if r.spec.rstrip("/") in (x.spec.rstrip("/") for x in out):
            raise ValueError(f"{word!r} is written twice")
        if r.spec == FRONT:
            raise ValueError("'front' names the home itself")
        out.append(r)
    return tuple(out)
