"""The home: ``etc/`` (settings, branches), ``store/`` and ``var/``."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from importlib import resources

from kiel import config as _config
from kiel.errors import ConfigError, LockHeld, StoreError


@dataclass(frozen=True)
class Home:
    root: str

    @property
    def etc(self) -> str:
        return os.path.join(self.root, "etc")

    @property
    def conf(self) -> str:
        return os.path.join(self.root, "etc", "kiel.conf")

    @property
    def branches(self) -> str:
        return os.path.join(self.root, "etc", "branches.xml")

    @property
    def store(self) -> str:
        return os.path.join(self.root, "store")

    @property
    def var(self) -> str:
        return os.path.join(self.root, "var")

    def config(self) -> _config.Config:
        return _config.load(self.conf)

    def resolve_input(self, path: str) -> str:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.join(self.root, path)


def locate(home: str | None) -> Home:
    """``--home``, else ``$KIEL_HOME``, else the user's home (the protocol's)."""
    root = home or os.environ.get("KIEL_HOME") or os.path.expanduser("~")
    return Home(os.path.abspath(root))


def open_home(home: str | None) -> Home:
    """The home every command but ``init`` works in: it must exist, and its
    ``kiel.conf`` must parse (ConfigError naming the line otherwise), so a
    typo in either is reported before any work, whatever the command."""
    h = locate(home)
    if not os.path.isdir(h.root):
        raise ConfigError(f"no Kiel home at {h.root}: the directory does not exist "
                          f"(is --home or KIEL_HOME right? kiel init --home {h.root} makes one)")
    h.config()
    return h


@dataclass(frozen=True)
class InitResult:
    created: tuple[str, ...]
    kept: tuple[str, ...]


def init(home: Home) -> InitResult:
    """Create ``etc/kiel.conf`` and ``etc/branches.xml``; never overwrite."""
    created: list[str] = []
    kept: list[str] = []
    for d in (home.etc, home.store, home.var):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {d}: {e.strerror}") from None
    files = {
        home.conf: _config.template(),
        home.branches: default_branches(),
    }
    for path, text in files.items():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            kept.append(path)
            continue
        except OSError as e:
            raise StoreError(f"cannot create {path}: {e.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        created.append(path)
    return InitResult(tuple(created), tuple(kept))


def default_branches() -> str:
    return resources.files("kiel").joinpath("data/branches.xml").read_text("utf-8")


class Lock:
    """An ``flock`` on a file in ``var/``, released by the kernel on any exit.

    A full renewal takes ``var/renew.lock`` exclusively. A shard takes it
    shared (so shards of one collection run together, and a full run
    excludes them all) and its own ``var/renew-shard-K-of-N.lock``
    exclusively.
    """

    def __init__(self, home: Home, shard: tuple[int, int] | None = None):
        self.home = home
        self.shard = shard
        self._fds: list[int] = []

    def _take(self, name: str, mode: int) -> None:
        path = os.path.join(self.home.var, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"{path}: cannot open lock: {e.strerror}") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                who = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
            raise LockHeld(f"another renewal holds {path}: {who or 'unknown holder'}") from None
        if mode == fcntl.LOCK_EX:
            info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "shard": "%d/%d" % self.shard if self.shard else None})
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode() + b"\n", 0)
        self._fds.append(fd)

    def acquire(self) -> Lock:
        os.makedirs(self.home.var, exist_ok=True)
        try:
            if self.shard is None:
                self._take("renew.lock", fcntl.LOCK_EX)
            else:
                k, n = self.shard
                self._take("renew.lock", fcntl.LOCK_SH)
                self._take(f"renew-shard-{k}-of-{n}.lock", fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
