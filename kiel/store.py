"""The store layout: names, atomic files, links, ``00last``.

Every file appears atomically: it is written under a hidden temporary name
in its own directory, then given its final name with ``link(2)``, which
fails rather than replace an existing name, so a name once written is never
overwritten (docs/contract.md, Safety). Symbolic links are made directly
with ``symlink(2)``, itself atomic and exclusive. Only ``00last`` and
``00gone`` are replaced, with ``rename(2)``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kiel import faults, hashing

NameFor = Callable[[int], str]  # the name to try at step 0, 1, 2... (the next free second)

LAST = "00last"
GONE = "00gone"
URL = "00url"

VERSION_RE = re.compile(r"^(\d+)\.amf\.xml$")
ATTEMPT_RE = re.compile(r"^(\d+)_(\d{3})_([a-z0-9.+-]+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process of this id exists on this machine (signal 0 probes)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    # A zombie answers the probe but writes nothing any more: a killed worker
    # whose parent died with it waits for a reaper that may never come.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True

# --- temporary files ---------------------------------------------------------------
# A temporary file belongs to the process that made it: its name carries the
# host and the process id, and only a file whose process is gone may be
# removed. A process of another host cannot be probed from here: its files
# are removed only once they are a day old (no single write takes that long).

TMP_PREFIX = ".kiel-tmp-"
_TMP_NAME = re.compile(r"^\.kiel-tmp-(?P<host>[A-Za-z0-9.-]*)-(?P<pid>\d+)-[0-9a-f]+$")
FOREIGN_TMP_AGE = 86400


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64]


_pid = [os.getpid()]  # this process's id, without a system call per name
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def tmp_name() -> str:
    """A temporary name owned by this process: ``.kiel-tmp-<host>-<pid>-<random>``."""
    return f"{TMP_PREFIX}{_host_tag()}-{_pid[0]}-{os.urandom(6).hex()}"


def tmp_owner(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a temporary name made by :func:`tmp_name`, else None."""
    m = _TMP_NAME.match(name)
    return (m.group("host"), int(m.group("pid"))) if m else None


def tmp_abandoned(path: str, now_: float | None = None) -> bool:
    """Whether the temporary file at ``path`` may be removed: its process is
    gone (same host), or it is a day old (another host, or a name without an
    owner, as older versions made them)."""
    name = os.path.basename(path)
    if not name.startswith(TMP_PREFIX):
        return False
    owner = tmp_owner(name)
    if owner is not None and owner[0] == _host_tag():
        return not pid_alive(owner[1])
    try:
        age = (time.time() if now_ is None else now_) - os.lstat(path).st_mtime
    except OSError:
        return False
    return age > FOREIGN_TMP_AGE


def remove_tmp(path: str) -> None:
    """Remove an abandoned temporary name: a file, or a new object directory
    a crash left half-built under its hidden name (never through a link)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        unlink_quiet(path)


def clean_abandoned(directory: str) -> list[str]:
    """Remove the abandoned temporary files of ``directory`` (a hidden object
    directory too); the names removed. Those of running processes are left alone."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        if not name.startswith(TMP_PREFIX) or not tmp_abandoned(path):
            continue
        if os.path.lexists(path):
            remove_tmp(path)
            removed.append(name)
    return removed


def is_tmp(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: str, directory: str, name_for: NameFor, sync: bool = False) -> str:
    """Give the finished temporary file ``tmp_path`` a final name.

    ``name_for(step)`` returns the name to try at step 0, 1, 2...; a name
    already taken moves on to the next step (the next free second).
    Returns the final name.
    """
    if sync:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    faults.hit("publish.before")
    step = 0
    while True:
        name = name_for(step)
        try:
            os.link(tmp_path, os.path.join(directory, name))
        except FileExistsError:
            step += 1
            continue
        faults.hit("publish.linked")
        os.unlink(tmp_path)
        if sync:
            _fsync_dir(directory)
        return name


def write_new(directory: str, name_for: NameFor, data: bytes, sync: bool = False) -> str:
    """Write ``data`` as a new file named by ``name_for`` (see :func:`publish`)."""
    tmp = os.path.join(directory, tmp_name())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        faults.hit("write.tmp")
        return publish(tmp, directory, name_for, sync)
    except BaseException:
        unlink_quiet(tmp)
        raise


def symlink_new(directory: str, name_for: NameFor, target: str) -> str:
    """Create a relative symbolic link to ``target`` under a new name."""
    faults.hit("symlink.before")
    step = 0
    while True:
        name = name_for(step)
        try:
            os.symlink(target, os.path.join(directory, name))
            faults.hit("symlink.made")
            return name
        except FileExistsError:
            step += 1


def replace(path: str, data: bytes, sync: bool = False) -> None:
    """Replace a state marker (``00last``, ``00gone``) atomically."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, tmp_name())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        faults.hit("replace.tmp")
        os.replace(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise


def write_once(path: str, data: bytes) -> bool:
    """Write ``path`` if it does not exist (``00url``); False when it did."""
    if os.path.lexists(path):
        return False
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, tmp_name())
    with open(tmp, "xb") as f:
        f.write(data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        unlink_quiet(tmp)


def unlink_quiet(path: str) -> None:
    """Remove a file of our own if it is there (a temporary file, most often)."""
    try:
        os.unlink(path)
    except OSError:
        pass


# --- 00last ---------------------------------------------------------------

@dataclass(frozen=True)
class Last:
    start: int
    end: int


def read_last(record_dir: str) -> Last | None:
    """``00last`` of a record directory; None for a virgin or malformed one.

    Raises :class:`kiel.notes.NotRegular` when something other than a
    regular file stands in its place (never blocks on a FIFO)."""
    from kiel.notes import read_regular

    try:
        text = read_regular(os.path.join(record_dir, LAST), 64)
    except (FileNotFoundError, NotADirectoryError):
        return None
    parts = text.split()
    if len(parts) != 2 or not text.endswith(b"\n"):
        return None
    try:
        return Last(int(parts[0]), int(parts[1]))
    except ValueError:
        return None


def write_last(record_dir: str, start: int, end: int, sync: bool = False) -> None:
    """Replace ``00last`` atomically (``rename(2)``); within
    :func:`recycling`, the file renamed into place is the inode of the
    ``00last`` replaced before (see there)."""
    data = b"%d %d\n" % (start, end)
    path = os.path.join(record_dir, LAST)
    if _spares.depth == 0 or _spares.pid != _pid[0]:
        replace(path, data, sync)
        return
    _spares.replace(record_dir, path, data, sync)


class _Spares:
    """This process's spare ``00last`` inode (one at most): see :func:`recycling`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.pid = 0  # the process that entered recycling(): a forked child starts afresh
        self.path: str | None = None  # a hidden name (tmp_name) in a record directory

    def take(self) -> str | None:
        with self.lock:
            path, self.path = self.path, None
        return path

    def keep(self, path: str | None) -> None:
        with self.lock:
            old, self.path = self.path, path
        if old is not None:
            unlink_quiet(old)

    def rewrite(self, spare: str, data: bytes, sync: bool) -> bool:
        """Overwrite the spare with ``data``; False (and the spare removed)
        when it is not a regular file of ours alone any more."""
        try:
            # Never open what is not a regular file (a device planted as 00last).
            if not stat.S_ISREG(os.lstat(spare).st_mode):
                unlink_quiet(spare)
                return False
            fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            unlink_quiet(spare)
            return False
        try:
            st = os.fstat(fd)
            # Linked elsewhere too (a snapshot made with hard links): never written.
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                unlink_quiet(spare)
                return False
            view = memoryview(data)
            off = 0
            while off < len(data):
                off += os.pwrite(fd, view[off:], off)
            if st.st_size > len(data):
                os.ftruncate(fd, len(data))
            if sync:
                os.fsync(fd)
            return True
        except BaseException:
            unlink_quiet(spare)
            raise
        finally:
            os.close(fd)

    def replace(self, record_dir: str, path: str, data: bytes, sync: bool) -> None:
        spare = self.take()
        if spare is not None and not self.rewrite(spare, data, sync):
            spare = None
        if spare is None:
            # No spare yet (the first record, or a new one): a new file, as replace() writes it.
            spare = os.path.join(record_dir, tmp_name())
            fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                try:
                    os.write(fd, data)  # 22 bytes: one write
                    if sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except BaseException:
                unlink_quiet(spare)
                raise
        # Hold the inode about to be replaced under a hidden name: it becomes
        # the next spare instead of being freed.
        hold = os.path.join(record_dir, tmp_name())
        held: str | None = hold
        try:
            os.link(path, hold)
        except OSError:
            held = None  # no 00last yet (a new record), or a file system without links
        try:
            faults.hit("replace.tmp")
            os.replace(spare, path)
        except BaseException as e:
            unlink_quiet(spare)
            if held is not None:
                unlink_quiet(held)
            if isinstance(e, OSError) and e.errno == errno.EXDEV:
                # The spare lives on another file system (a store spread over mounts).
                replace(path, data, sync)
                return
            raise
        self.keep(held)


_spares = _Spares()


@contextlib.contextmanager
def recycling() -> Iterator[None]:
    """Within, :func:`write_last` keeps the inode of each ``00last`` it
    replaces, under a hidden temporary name, and renames it, rewritten,
    into place as the next record's ``00last``; the one spare left is
    removed on leaving.

    Why: freeing a file's block is the expensive part of replacing a small
    file on some disks (ext4 mounted with ``discard`` sends the device a
    discard for every block freed, synchronously when there is no journal;
    200 us to 2 ms each on a shared virtual disk, against 40 us for the
    whole replacement of an inode kept). A renewal that finds its records
    unchanged writes little else. The replacement stays a ``rename(2)`` of
    a whole file; the spare is a temporary name of this process like any
    other (removed by the next run, or ``verify --repair``, after a crash),
    and a spare that is no longer a regular file linked once (a hard-link
    snapshot of the store) is never written, only unlinked.
    ``sync`` syncs the spare before the rename, as :func:`replace` does.
    Per process; a forked child enters its own."""
    pid = _pid[0]
    with _spares.lock:
        if _spares.depth and _spares.pid != pid:  # entered in the parent before a fork
            _spares.depth, _spares.path = 0, None
        _spares.depth += 1
        _spares.pid = pid
    try:
        yield
    finally:
        with _spares.lock:
            _spares.depth -= 1
            last = _spares.depth == 0
        if last:
            _spares.keep(None)


# --- record versions -------------------------------------------------------

def versions(record_dir: str) -> list[tuple[int, str]]:
    """``(tist, name)`` of every stored version, oldest first."""
    try:
        names = os.listdir(record_dir)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        m = VERSION_RE.match(name)
        if m:
            out.append((int(m.group(1)), name))
    out.sort()
    return out


def newest_version(record_dir: str) -> tuple[int, str] | None:
    v = versions(record_dir)
    return v[-1] if v else None


def sha256_file(path: str) -> str:
    return hashing.digest_file(path, ("sha256",))[1]["sha256"]



# --- walking the store -------------------------------------------------------

def iter_record_dirs(store_root: str, prefix: str | None = None) -> Iterator[str]:
    """Every record directory, in sorted order, streaming.

    Record directories sit at fixed depths (docs/contract.md, The redist):
    ``RePEc/<archive>/<series>/<rest>`` and ``other/<id>``. ``prefix``
    restricts the walk to a relative path prefix of the store such as
    ``RePEc/eee`` (see :func:`kiel.verify.prefix_path` for a record id prefix).
    """
    def subdirs(path: str) -> list[str]:
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it
                               if e.is_dir(follow_symlinks=False) and not is_tmp(e.name))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return names

    for top, depth in (("RePEc", 3), ("other", 1)):
        # Lazily, level by level, so memory stays flat in the store's size.
        yield from _walk_depth(os.path.join(store_root, top), depth, subdirs, store_root, prefix)


def _walk_depth(path: str, depth: int, subdirs: Callable[[str], list[str]], store_root: str,
                prefix: str | None) -> Iterator[str]:
    for name in subdirs(path):
        child = os.path.join(path, name)
        rel = os.path.relpath(child, store_root)
        if prefix and not (rel.startswith(prefix) or prefix.startswith(rel + "/")):
            continue
        if depth == 1:
            yield child
        else:
            yield from _walk_depth(child, depth - 1, subdirs, store_root, prefix)


def parse_attempt(name: str) -> tuple[int, str, str] | None:
    """``(tist, status, type)`` of an attempt file name, or None."""
    m = ATTEMPT_RE.match(name)
    return (int(m.group(1)), m.group(2), m.group(3)) if m else None
