"""The home: ``etc/`` (settings, branches), ``store/`` and ``var/``."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

from kiel import config as _config
from kiel.errors import ConfigError, LockHeld, StoreError

# The temporary-name helpers live beside the store's writes; callers also know
# them as the home's, so they are re-exported here by name.
from kiel.store import TMP_PREFIX as TMP_PREFIX
from kiel.store import clean_abandoned as clean_abandoned
from kiel.store import pid_alive as pid_alive
from kiel.store import tmp_abandoned as tmp_abandoned
from kiel.store import tmp_name as tmp_name
from kiel.store import tmp_owner as tmp_owner
from kiel.tist import iso, now


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


# --- the renewal lock --------------------------------------------------------------

RENEW_LOCK = "renew.lock"
SHARDS_MUTEX = "renew-shards.lock"
_SHARD_LOCK = re.compile(r"^renew-shard-(\d+)-of-(\d+)\.lock$")


def _host() -> str:
    return socket.gethostname()




@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it into the lock file."""

    pid: int
    host: str
    shard: str | None  # "K/N", or None for a full run
    started: int | None

    def __str__(self) -> str:
        what = f"shard {self.shard}" if self.shard else "full run"
        when = f", started {iso(self.started)}" if self.started else ""
        return f"{what} (pid {self.pid} on {self.host}{when})"


def _read_holder(fd: int) -> Holder | None:
    """The holder a lock file names, or None when the name cannot be trusted:
    unreadable, or a process of this machine that no longer exists (the file
    keeps the last holder's name after it ended)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        holder = Holder(int(data["pid"]), str(data["host"]), data.get("shard"),
                        data.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if holder.host == _host() and not pid_alive(holder.pid):
        return None
    return holder


_L = TypeVar("_L", bound="Lock")


class Lock:
    """Who may renew a home at the same time, with ``flock`` on files in ``var/``
    (released by the kernel on any exit, even ``kill -9``).

    A full renewal takes ``var/renew.lock`` exclusively: it runs alone. A shard
    K/N takes it shared, and ``var/renew-shard-K-of-N.lock`` exclusively. Only
    shards of one N may run together (shards of different N slice the records
    differently, so they would renew the same records at once): a shard first
    takes ``var/renew-shards.lock``, a short mutex, and under it refuses to start
    while a shard of another N holds its lock. A refused run raises
    :class:`LockHeld` (exit 75) naming the running holders, each as it wrote
    itself into its lock file; a name whose process is gone is never shown.
    """

    def __init__(self, home: Home, shard: tuple[int, int] | None = None):
        self.home = home
        self.shard = shard
        self._fds: list[int] = []

    def _path(self, name: str) -> str:
        return os.path.join(self.home.var, name)

    def _open(self, name: str) -> int:
        path = self._path(name)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"{path}: cannot open lock: {e.strerror}") from None

    def _try(self, fd: int, mode: int) -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _try_patiently(self, fd: int, mode: int, tries: int = 5) -> bool:
        for i in range(tries):
            if self._try(fd, mode):
                return True
            if i + 1 < tries:
                time.sleep(0.05)
        return False

    def _write_holder(self, fd: int) -> None:
        info = json.dumps({"pid": os.getpid(), "host": _host(),
                           "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
                           "started": now()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode() + b"\n", 0)

    def running_shards(self, other_than: int | None = None) -> list[Holder | str]:
        """The shards whose lock is held now (of any N but ``other_than``):
        a Holder when it named itself, else its "K/N"."""
        out: list[tuple[tuple[int, int], Holder | str]] = []
        try:
            names = sorted(os.listdir(self.home.var))
        except OSError:
            return []
        for name in names:
            m = _SHARD_LOCK.match(name)
            if not m or (other_than is not None and int(m.group(2)) == other_than):
                continue
            try:
                fd = os.open(self._path(name), os.O_RDONLY)
            except OSError:
                continue
            try:
                if self._try(fd, fcntl.LOCK_SH):
                    continue  # nobody holds it: a shard that ran and ended
                key = (int(m.group(2)), int(m.group(1)))
                out.append((key, _read_holder(fd) or f"shard {m.group(1)}/{m.group(2)}"))
            finally:
                os.close(fd)
        return [h for _, h in sorted(out, key=lambda kh: kh[0])]

    def _refuse(self, path: str, fd: int) -> LockHeld:
        # Running shards first: while they hold it, what renew.lock says is
        # the name of an earlier full run.
        shards = self.running_shards()
        holder = _read_holder(fd)
        if shards:
            who = ", ".join(str(h) for h in shards)
        elif holder is not None and holder.shard is None:
            who = str(holder)
        else:
            who = "a renewal that has not yet named itself (try again in a moment)"
        return LockHeld(f"another renewal holds {path}: {who}")

    def acquire(self) -> Lock:
        try:
            os.makedirs(self.home.var, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {self.home.var}: {e.strerror}") from None
        try:
            if self.shard is None:
                fd = self._open(RENEW_LOCK)
                self._fds.append(fd)
                if not self._try(fd, fcntl.LOCK_EX):
                    raise self._refuse(self._path(RENEW_LOCK), fd)
                self._write_holder(fd)
            else:
                self._acquire_shard(*self.shard)
        except BaseException:
            self.release()
            raise
        return self

    def _acquire_shard(self, k: int, n: int) -> None:
        mutex = self._open(SHARDS_MUTEX)
        try:
            # Held only while checking and taking, never during the run.
            fcntl.flock(mutex, fcntl.LOCK_EX)
            fd = self._open(RENEW_LOCK)
            self._fds.append(fd)
            if not self._try(fd, fcntl.LOCK_SH):
                raise self._refuse(self._path(RENEW_LOCK), fd)
            others = self.running_shards(other_than=n)
            if others:
                raise LockHeld(
                    f"another renewal holds {self._path(RENEW_LOCK)}: "
                    + ", ".join(str(h) for h in others)
                    + f"; only shards of one N run together, so shard {k}/{n} waits until "
                    "they end (exit 75: run it again later)")
            name = f"renew-shard-{k}-of-{n}.lock"
            own = self._open(name)
            self._fds.append(own)
            # A run naming the holders probes shard locks for an instant: a
            # refusal only after a few tries, so that probe never causes one.
            if not self._try_patiently(own, fcntl.LOCK_EX):
                holder = _read_holder(own)
                raise LockHeld(f"another renewal holds {self._path(name)}: "
                               f"{holder or f'shard {k}/{n}'}")
            self._write_holder(own)
        finally:
            os.close(mutex)

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self: _L) -> _L:  # noqa: PYI019 - typing.Self needs Python 3.11
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

