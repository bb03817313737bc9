"""How fast the store grows, and how long its filesystem lasts at that pace.

The growth of each night is read from the store itself, not from the run
summaries in ``var/runs/`` (which are not precious and may be gone, and say
nothing of inodes): every file a renewal writes carries its tist in its name
(``<tist>.amf.xml``, ``<tist>_<status>_<type>``), so one walk over the names
tells which night made which inode. Per night (a UTC day):

- inodes: each version and each attempt file (a link is an inode too), and
  for a new object directory its directory, ``00url`` and ``00notes``, for a
  new record directory its directory, ``00notes`` and ``00last``;
- bytes: the space allocated to those files (``st_blocks``: a body, a
  version, a directory, ``00url``, ``00last``), and the notes: the space
  an object's ``00notes`` takes now, shared among the nights of its
  attempts, a record's among the nights it was renewed (a day with a
  version or an attempt of its objects). The nights add up to what ``du``
  says of the store, but for the few directories above the records
  (``RePEc/<archive>/<series>``) and a directory's blocks beyond the
  first (one more per about a hundred entries).

The pace is the mean growth per calendar day over the last week of the
store's history, leaving out the store's first day, which fetched every
body once (docs/operations.md, Capacity). Days left are the filesystem's
free bytes and free inodes (``statvfs``, what an unprivileged user may
use) divided by that pace.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone

from kiel import store
from kiel.notes import NOTES

WINDOW_DAYS = 7  # the pace is the mean over this many calendar days at most
NEW_OBJECT_INODES = 3  # the directory, 00url, 00notes
NEW_RECORD_INODES = 3  # the directory, 00notes, 00last


@dataclass(frozen=True)
class Night:
    day: str  # YYYY-MM-DD, UTC
    inodes: int
    bytes: int


@dataclass(frozen=True)
class Capacity:
    nights: tuple[Night, ...]  # every day that added to the store, oldest first
    pace_days: int  # calendar days the pace is the mean of (0: no history)
    pace_from: str | None  # first and last day of those
    pace_to: str | None
    first_only: bool  # only the store's first day exists: the pace is that day's
    inodes_per_day: float
    bytes_per_day: float
    fs_bytes_free: int  # statvfs of the store: f_bavail * f_frsize
    fs_bytes_total: int
    fs_inodes_free: int  # f_favail; 0 with fs_inodes_total 0: no inode limit (btrfs)
    fs_inodes_total: int
    days_left_bytes: float | None  # None: the store does not grow
    days_left_inodes: float | None  # None: it adds no inodes, or the filesystem has no limit


def _day(tist: int) -> str:
    return datetime.fromtimestamp(tist, timezone.utc).strftime("%Y-%m-%d")


def _allocated(path: str) -> int:
    try:
        return os.lstat(path).st_blocks * 512
    except OSError:
        return 0


class _Tally:
    def __init__(self) -> None:
        self.inodes: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def spread(self, size: int, days: Counter[str]) -> None:
        """``size`` bytes written in parts on ``days``, in proportion to their counts."""
        total = sum(days.values())
        if not total:
            return
        given = 0
        for day, n in days.items():
            share = size * n // total
            self.bytes[day] += share
            given += share
        self.bytes[max(days)] += size - given  # what rounding left, to the newest day

    def record(self, record_dir: str) -> None:
        try:
            names = sorted(os.listdir(record_dir))
        except OSError:
            return
        renewed: Counter[str] = Counter()  # the days this record was renewed
        for name in names:
            full = os.path.join(record_dir, name)
            m = store.VERSION_RE.match(name)
            if m:
                day = _day(int(m.group(1)))
                self.inodes[day] += 1
                self.bytes[day] += _allocated(full)
                renewed[day] = 1
            elif os.path.isdir(full) and not os.path.islink(full) and not store.is_tmp(name):
                for day in self.object(full):
                    renewed[day] = 1
        if renewed:
            first = min(renewed)
            self.inodes[first] += NEW_RECORD_INODES
            self.bytes[first] += _allocated(record_dir) + _allocated(
                os.path.join(record_dir, store.LAST))
            self.spread(_allocated(os.path.join(record_dir, NOTES)), renewed)

    def object(self, obj_dir: str) -> Counter[str]:
        """Tally one object directory; the days of its attempts."""
        try:
            names = os.listdir(obj_dir)
        except OSError:
            return Counter()
        attempts: Counter[str] = Counter()
        for name in names:
            parsed = store.parse_attempt(name)
            if parsed is None:
                continue
            day = _day(parsed[0])
            attempts[day] += 1
            self.inodes[day] += 1
            self.bytes[day] += _allocated(os.path.join(obj_dir, name))
        if attempts:
            first = min(attempts)
            self.inodes[first] += NEW_OBJECT_INODES
            self.bytes[first] += _allocated(obj_dir) + _allocated(
                os.path.join(obj_dir, store.URL))
            self.spread(_allocated(os.path.join(obj_dir, NOTES)), attempts)
        return attempts


def pace(nights: tuple[Night, ...],
         window: int = WINDOW_DAYS) -> tuple[int, str | None, str | None, bool, float, float]:
    """(days, from, to, first only, inodes a day, bytes a day): the mean over
    the last ``window`` calendar days up to the newest night, the store's first
    day left out unless it is all there is."""
    if not nights:
        return 0, None, None, False, 0.0, 0.0
    ords = {date.fromisoformat(n.day).toordinal(): n for n in nights}
    first, last = min(ords), max(ords)
    if first == last:
        n = ords[first]
        return 1, n.day, n.day, True, float(n.inodes), float(n.bytes)
    start = max(first + 1, last - window + 1)
    days = range(start, last + 1)
    inodes = sum(ords[o].inodes for o in days if o in ords)
    size = sum(ords[o].bytes for o in days if o in ords)
    return (len(days), date.fromordinal(start).isoformat(), date.fromordinal(last).isoformat(),
            False, inodes / len(days), size / len(days))


def capacity(store_root: str, prefix: str | None = None) -> Capacity:
    """The growth per night of the store at ``store_root`` (or of the part
    under the relative path ``prefix``) and its filesystem's room."""
    tally = _Tally()
    for record_dir in store.iter_record_dirs(store_root, prefix):
        tally.record(record_dir)
    nights = tuple(Night(d, tally.inodes[d], tally.bytes[d])
                   for d in sorted(set(tally.inodes) | set(tally.bytes)))
    days, start, end, first_only, inodes, size = pace(nights)
    fs = os.statvfs(store_root)
    free = fs.f_bavail * fs.f_frsize
    return Capacity(nights, days, start, end, first_only, inodes, size,
                    free, fs.f_blocks * fs.f_frsize, fs.f_favail, fs.f_files,
                    free / size if size > 0 else None,
                    fs.f_favail / inodes if inodes > 0 and fs.f_files else None)
