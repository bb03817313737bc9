"""What the archive holds and how its links age.

One streaming walk over the record directories gathers counts, bytes and
per-day tallies; memory grows with the number of days and hosts seen, never
with the number of records or files. :func:`render_html` turns the result
into one self-contained page whose charts are SVG written here: a plotting
library would be a large dependency (and a moving one) for three simple
charts, and a page that must still open in twenty years is safer as plain
SVG elements in the HTML than as the output of any particular tool
(docs/tools.md).
"""

from __future__ import annotations

import html
import itertools
import os
import stat
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from kiel import readers, store
from kiel.capacity import Capacity, capacity
from kiel.discovery import fulltext_status
from kiel.errors import NotFound
from kiel.home import tmp_name
from kiel.platforms.manifests import newest
from kiel.readers import Problems
from kiel.replies import answered, status_class
from kiel.show import deposit_tally, object_view
from kiel.text import human
from kiel.tist import iso
from kiel.verify import nothing_matches, prefix_path

CLASSES = ("2xx", "3xx", "4xx", "5xx", "000")
CLASS_COLORS = {"2xx": "#2e7d32", "3xx": "#1565c0", "4xx": "#ef6c00", "5xx": "#c62828",
                "000": "#757575", "1xx": "#6a1b9a"}
ALIVE_COLOR, DEAD_COLOR = "#2e7d32", "#c62828"


def is_alive(status: str, url: str | None = None) -> bool:
    """A URL lives when it answers (HTTP 2xx or 3xx, FTP 2yz: kiel.replies)."""
    return answered(url, status)


@dataclass(frozen=True)
class DayRot:
    day: str  # YYYY-MM-DD, UTC
    alive: int  # objects whose last attempt of the day answered 2xx or 3xx
    dead: int  # objects whose last attempt of the day failed (4xx, 5xx, 000)


@dataclass(frozen=True)
class DayAttempts:
    day: str
    by_class: tuple[tuple[str, int], ...]  # ("2xx", n) in CLASSES order

    @property
    def total(self) -> int:
        return sum(n for _, n in self.by_class)


@dataclass(frozen=True)
class DayGrowth:
    day: str
    bytes_stored: int  # cumulative, regular content files up to this day
    bytes_plain: int  # cumulative, as if every link were a copy
    versions: int  # cumulative
    objects: int  # cumulative, by the day of an object's first attempt


@dataclass(frozen=True)
class ArchiveFulltext:
    """Records of one archive by how their full text is held."""

    archive: str  # RePEc:aaa, or other
    direct: int  # a full text the record links to is stored
    discovered: int  # only a full text found through its landing page is stored
    none: int

    @property
    def records(self) -> int:
        return self.direct + self.discovered + self.none


@dataclass(frozen=True)
class DayFulltext:
    day: str
    direct: int  # records whose full text was held directly by the end of the day
    discovered: int  # records whose full text was held only by discovery
    none: int  # records stored by then without a full text


@dataclass(frozen=True)
class Report:
    store: str
    records: int
    gone: int
    versions: int
    objects: int
    attempts: int  # notes lines, plus attempt files no notes line names
    attempt_files: int
    links: int
    newest_status: tuple[tuple[str, int], ...]  # status of each object's newest attempt
    never_attempted: int  # object directories without any attempt
    bytes_stored: int  # versions and attempt bodies held as regular files
    bytes_plain: int  # the same with every link counted at its target's size
    bytes_notes: int  # 00notes, 00url, 00last, 00gone
    failing_hosts: tuple[tuple[str, int], ...]  # host, objects whose newest attempt failed
    link_rot: tuple[DayRot, ...]
    attempts_per_day: tuple[DayAttempts, ...]
    growth: tuple[DayGrowth, ...]
    fulltext: tuple[ArchiveFulltext, ...] = ()  # docs/discovery.md, the full-text share
    fulltext_over_time: tuple[DayFulltext, ...] = ()
    # Deposits (docs/datasets.md), by the newest manifest note of each
    deposits: int = 0
    deposit_failures: int = 0  # deposits whose newest note is a named failure
    deposit_files: int = 0  # files stored (ok, mismatch or unchecked)
    deposit_bytes: int = 0
    deposit_mismatches: int = 0
    deposit_failed_files: int = 0  # files whose fetch failed, as show counts them
    # store files skipped because they are not what the contract says (a
    # planted link, a FIFO): "path: reason", in walk order
    unreadable: tuple[str, ...] = ()
    # Growth per night and the filesystem's days left at that pace (kiel.capacity)
    capacity: Capacity | None = None

    @property
    def bytes_saved(self) -> int:
        return self.bytes_plain - self.bytes_stored


def _day(tist: int) -> str:
    return datetime.fromtimestamp(tist, timezone.utc).strftime("%Y-%m-%d")


def report(home_root: str, prefix: str | None = None, top_hosts: int = 10) -> Report:
    """Walk the store of ``home_root`` (or the part under ``prefix``)."""

    store_root = readers.store_root(home_root)
    c: Counter[str] = Counter()
    newest: Counter[str] = Counter()
    hosts: Counter[str] = Counter()
    rot: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    grow_stored: Counter[str] = Counter()
    grow_plain: Counter[str] = Counter()
    grow_versions: Counter[str] = Counter()
    grow_objects: Counter[str] = Counter()

    walk_prefix = prefix_path(prefix) if prefix else None
    fulltext = FulltextTally()
    problems = Problems()
    for record_dir in store.iter_record_dirs(store_root, walk_prefix):
        c["records"] += 1
        try:
            fulltext.add(store_root, record_dir)
        except OSError as e:  # a notes file that is not one: named below
            problems.add_error(e, record_dir)
        try:
            names = sorted(os.listdir(record_dir))
        except OSError:
            continue
        if "00notes" in names:
            _deposits(record_dir, c, problems)
        if store.GONE in names:
            c["gone"] += 1
        for name in names:
            full = os.path.join(record_dir, name)
            m = store.VERSION_RE.match(name)
            if m and os.path.isfile(full) and not os.path.islink(full):
                size = os.path.getsize(full)
                day = _day(int(m.group(1)))
                c["versions"] += 1
                c["bytes_stored"] += size
                c["bytes_plain"] += size
                grow_stored[day] += size
                grow_plain[day] += size
                grow_versions[day] += 1
            elif name in (store.LAST, store.GONE, "00notes"):
                c["bytes_notes"] += _regular_size(full)
            elif os.path.isdir(full) and not os.path.islink(full) and not store.is_tmp(name):
                _object(full, store_root, c, newest, hosts, rot, per_day, grow_stored,
                        grow_plain, grow_objects, problems)

    if walk_prefix and not c["records"]:
        raise NotFound(nothing_matches(prefix or "", walk_prefix))
    days = sorted(set(grow_stored) | set(grow_versions) | set(grow_objects) | set(per_day))
    growth = []
    totals = [0, 0, 0, 0]
    for day in days:
        totals[0] += grow_stored[day]
        totals[1] += grow_plain[day]
        totals[2] += grow_versions[day]
        totals[3] += grow_objects[day]
        growth.append(DayGrowth(day, *totals))
    return Report(
        store=store_root, records=c["records"], gone=c["gone"], versions=c["versions"],
        objects=c["objects"], attempts=c["attempts"], attempt_files=c["attempt_files"],
        links=c["links"],
        newest_status=tuple(sorted(newest.items(), key=lambda kv: (-kv[1], kv[0]))),
        never_attempted=c["never_attempted"],
        bytes_stored=c["bytes_stored"], bytes_plain=c["bytes_plain"],
        bytes_notes=c["bytes_notes"],
        failing_hosts=tuple(sorted(hosts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_hosts]),
        link_rot=tuple(DayRot(d, *rot[d]) for d in sorted(rot)),
        attempts_per_day=tuple(
            DayAttempts(d, tuple((k, per_day[d][k]) for k in CLASSES if per_day[d][k])
                        + tuple(sorted((k, n) for k, n in per_day[d].items()
                                       if k not in CLASSES)))
            for d in sorted(per_day)),
        growth=tuple(growth),
        fulltext=fulltext.archives(), fulltext_over_time=fulltext.days(),
        deposits=c["deposits"], deposit_failures=c["deposit_failures"],
        deposit_files=c["deposit_files"], deposit_bytes=c["deposit_bytes"],
        deposit_mismatches=c["deposit_mismatches"],
        deposit_failed_files=c["deposit_failed_files"],
        unreadable=tuple(str(u) for u in problems.items)
        + ((f"and {problems.more} more reads skipped",) if problems.more else ()),
        capacity=capacity(store_root, walk_prefix),
    )


def _regular_size(path: str) -> int:
    """The size of a regular file; 0 for a link (never followed), a FIFO, a
    missing file."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _deposits(record_dir: str, c: Counter[str], problems: Problems) -> None:
    """Count what the newest manifest note of each deposit says was preserved."""
    for rec in newest(readers.manifests(record_dir, problems)):
        c["deposits"] += 1
        if rec.failure:
            c["deposit_failures"] += 1
        tally = deposit_tally(rec)
        c["deposit_files"] += tally.stored
        c["deposit_bytes"] += tally.bytes
        c["deposit_mismatches"] += tally.mismatched
        c["deposit_failed_files"] += tally.failed


def _object(obj_dir: str, store_root: str, c: Counter[str], newest: Counter[str],
            hosts: Counter[str], rot: dict[str, list[int]], per_day: dict[str, Counter[str]],
            grow_stored: Counter[str], grow_plain: Counter[str],
            grow_objects: Counter[str], problems: Problems) -> None:
    c["objects"] += 1
    view = object_view(obj_dir, problems)
    day_outcome: dict[str, str] = {}
    first = None
    for a in view.timeline:
        if a.event is not None or a.status is None:
            continue
        c["attempts"] += 1
        day = _day(a.tist)
        first = day if first is None else min(first, day)
        per_day[day][status_class(view.url, a.status)] += 1
        day_outcome[day] = a.status  # the last attempt of the day decides
        if a.file is None or not a.on_disk:
            continue
        c["attempt_files"] += 1
        full = os.path.join(obj_dir, a.file)
        is_link = os.path.islink(full)
        try:
            # A link counts at its target's size, but only a target inside
            # the store: a planted link to /dev/zero or a disk image must not
            # swell the report (verify reports such links).
            size = os.path.getsize(full) if not is_link or _in_store(store_root, full) else 0
        except OSError:
            size = 0  # a dangling link; verify reports it
        if is_link:
            c["links"] += 1
        else:
            c["bytes_stored"] += size
            grow_stored[day] += size
        c["bytes_plain"] += size
        grow_plain[day] += size
    for day, status in day_outcome.items():
        rot[day][0 if is_alive(status, view.url) else 1] += 1
    if first is not None:
        grow_objects[first] += 1
    for name in ("00notes", "00url"):
        c["bytes_notes"] += _regular_size(os.path.join(obj_dir, name))
    last = view.newest
    if last is None:
        c["never_attempted"] += 1
        return
    newest[last.status or "???"] += 1
    if not is_alive(last.status or "0", view.url):
        host = urlsplit(view.url).hostname if view.url else None
        hosts[host or "(unknown host)"] += 1


class FulltextTally:
    """Counts of records by full-text status, per archive and per day.

    Memory grows with the number of archives and days, not of records.
    """

    def __init__(self) -> None:
        self.by_archive: dict[str, Counter[str]] = defaultdict(Counter)
        self.seen: Counter[str] = Counter()  # day -> records first stored
        self.direct: Counter[str] = Counter()  # day -> records that became direct
        self.disc: Counter[str] = Counter()  # day -> change of discovered-only records

    def add(self, store_root: str, record_dir: str) -> None:
        status = fulltext_status(record_dir)
        self.by_archive[archive_of(store_root, record_dir)][status.kind] += 1
        vs = store.versions(record_dir)
        first = vs[0][0] if vs else None
        direct, disc = status.direct_since, status.discovered_since
        starts = [t for t in (first, direct, disc) if t is not None]
        if not starts:
            return
        self.seen[_day(min(starts))] += 1
        if direct is not None:
            self.direct[_day(direct)] += 1
        # Discovered first, direct later: counted as discovered until then.
        if disc is not None and (direct is None or disc < direct):
            self.disc[_day(disc)] += 1
            if direct is not None:
                self.disc[_day(direct)] -= 1

    def archives(self) -> tuple[ArchiveFulltext, ...]:
        return tuple(ArchiveFulltext(a, n["direct"], n["discovered"], n["none"])
                     for a, n in sorted(self.by_archive.items()))

    def days(self) -> tuple[DayFulltext, ...]:
        out = []
        seen = direct = disc = 0
        for day in sorted(set(self.seen) | set(self.direct) | set(self.disc)):
            seen += self.seen[day]
            direct += self.direct[day]
            disc += self.disc[day]
            out.append(DayFulltext(day, direct, disc, seen - direct - disc))
        return tuple(out)


def archive_of(store_root: str, record_dir: str) -> str:
    """``RePEc:aaa`` for a RePEc record (the redist's archive), else ``other``."""
    parts = os.path.relpath(record_dir, store_root).split(os.sep)
    if parts[0] == "RePEc" and len(parts) > 1:
        return f"RePEc:{parts[1]}"
    return parts[0] if parts[0] not in ("", ".", "..") else "other"


def fulltext_lines(r: Report) -> list[str]:
    """The full-text share as the text report shows it."""
    direct = sum(a.direct for a in r.fulltext)
    disc = sum(a.discovered for a in r.fulltext)
    none = sum(a.none for a in r.fulltext)
    total = direct + disc + none

    def pct(n: int) -> str:
        return f"  ({100 * n / total:.1f}%)" if total else ""

    lines = ["records by full text (docs/discovery.md):",
             f"  directly        {direct}{pct(direct)}",
             f"  by discovery    {disc}{pct(disc)}",
             f"  not at all      {none}{pct(none)}"]
    if len(r.fulltext) > 1:
        lines.append("  per archive (directly / by discovery / not at all):")
        lines += [f"    {a.archive:24} {a.direct} / {a.discovered} / {a.none}"
                  for a in r.fulltext]
    return lines


def fulltext_html(r: Report) -> str:
    """Tables of the full-text share per archive and over time."""
    e = html.escape

    def cells(*values: object) -> str:
        return "".join(f'<td class="n">{e(str(v))}</td>' for v in values)

    archives = "".join(f"<tr><th>{e(a.archive)}</th>{cells(a.direct, a.discovered, a.none)}</tr>"
                       for a in r.fulltext) or '<tr><th>(none)</th></tr>'
    days = "".join(f"<tr><th>{e(d.day)}</th>{cells(d.direct, d.discovered, d.none)}</tr>"
                   for d in r.fulltext_over_time) or '<tr><th>(none)</th></tr>'
    head = "<tr><th></th><th>directly</th><th>by discovery</th><th>not at all</th></tr>"
    return (f'<h2>Full text</h2>\n<p>Records whose full text is stored: through a link of '
            f'the record (directly), only through the landing page it links to (by '
            f'discovery), or not at all.</p>\n'
            f'<table id="fulltext">{head}{archives}</table>\n'
            f'<h3>Over time</h3>\n<table id="fulltext-over-time">{head}{days}</table>\n')


# --- growth per night and days left (kiel.capacity) -------------------------------

SHOWN_NIGHTS = 7


def days_text(days: float | None) -> str:
    """``412 days (1.1 years)``; ``no limit`` when nothing runs out."""
    if days is None:
        return "no limit at this pace"
    text = f"{int(days)} days"
    return text + (f" ({days / 365.25:.1f} years)" if days >= 365.25 else "")


def pace_text(c: Capacity) -> str:
    if c.first_only:
        return f"the store's first night only, {c.pace_from}: it fetched every body once"
    return (f"mean of the {c.pace_days} days {c.pace_from} to {c.pace_to}, "
            "the store's first night left out")


def capacity_lines(r: Report) -> list[str]:
    """Growth per night and days left, as the text report shows them."""
    c = r.capacity
    if c is None:
        return []
    lines = ["growth per night (docs/operations.md, Capacity):"]
    lines += [f"  {n.day:15} {'+' + human(n.bytes):>11}  +{n.inodes} inodes"
              for n in c.nights[-SHOWN_NIGHTS:]] or ["  (none)"]
    if c.pace_days:
        lines.append(f"  pace            +{human(int(c.bytes_per_day))} and "
                     f"+{c.inodes_per_day:.0f} inodes a day ({pace_text(c)})")
    inodes = (f"{c.fs_inodes_free} inodes free: {days_text(c.days_left_inodes)}"
              if c.fs_inodes_total else "no inode limit")
    lines.append(f"  filesystem      {human(c.fs_bytes_free)} free: "
                 f"{days_text(c.days_left_bytes)}; {inodes}")
    return lines


def capacity_html(r: Report) -> str:
    """The nights' growth and the days left, as a table."""
    c = r.capacity
    if c is None:
        return ""
    e = html.escape
    rows = "".join(f'<tr><th>{e(n.day)}</th><td class="n">{e(human(n.bytes))}</td>'
                   f'<td class="n">{n.inodes}</td></tr>' for n in c.nights[-SHOWN_NIGHTS:])
    pace = (f'<tr><th>a day at the pace</th><td class="n">{e(human(int(c.bytes_per_day)))}'
            f'</td><td class="n">{c.inodes_per_day:.0f}</td></tr>') if c.pace_days else ""
    left = (f'<tr><th>free on the filesystem</th><td class="n">{e(human(c.fs_bytes_free))}</td>'
            f'<td class="n">{c.fs_inodes_free if c.fs_inodes_total else "no limit"}</td></tr>'
            f'<tr><th>days left at the pace</th><td class="n">{e(days_text(c.days_left_bytes))}'
            f'</td><td class="n">'
            f'{e(days_text(c.days_left_inodes)) if c.fs_inodes_total else "no limit"}'
            '</td></tr>')
    note = f"<p>Pace: {e(pace_text(c))}.</p>\n" if c.pace_days else ""
    return ('<h2>Capacity</h2>\n<p>What each night added to the store, and how long its '
            'filesystem lasts at that pace (docs/operations.md, Capacity).</p>\n'
            f'<table id="capacity"><tr><th>night</th><th>bytes</th><th>inodes</th></tr>'
            f'{rows}{pace}{left}</table>\n{note}')


def _in_store(store_root: str, link: str) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    real = os.path.realpath(link)
    return real.startswith(os.path.realpath(store_root) + os.sep)


def unwritable(path: str) -> str | None:
    """Why a page cannot be written to ``path`` (its strerror), or None."""
    import errno

    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return os.strerror(errno.EISDIR)
    if not os.path.isdir(parent):
        return os.strerror(errno.ENOTDIR if os.path.lexists(parent) or _through_file(parent)
                           else errno.ENOENT)
    if not os.access(parent, os.W_OK):
        return os.strerror(errno.EACCES)
    return None


def _through_file(path: str) -> bool:
    while path != os.path.dirname(path):
        if os.path.lexists(path) and not os.path.isdir(path):
            return True
        path = os.path.dirname(path)
    return False


def write_html(path: str, page: str) -> None:
    """Write beside ``path`` under a name of this process, then rename: a web
    server never serves half a page, and a failure leaves nothing behind."""

    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), tmp_name())
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- text ------------------------------------------------------------------

def format_text(r: Report) -> str:
    saved = r.bytes_saved
    share = f" ({100 * saved / r.bytes_plain:.1f}%)" if r.bytes_plain else ""
    lines = [
        f"store             {r.store}",
        f"records           {r.records}" + (f"  ({r.gone} gone from the input)" if r.gone else ""),
        f"versions          {r.versions}",
        f"objects           {r.objects}"
        + (f"  ({r.never_attempted} never attempted)" if r.never_attempted else ""),
        f"attempts          {r.attempts}  ({r.attempt_files} files, {r.links} of them links)",
        "newest attempt of each object:",
    ]
    lines += [f"  {status:15} {n}" for status, n in r.newest_status] or ["  (none)"]
    lines += [
        (f"bytes stored      {human(r.bytes_stored)}  ({r.bytes_stored} bytes: versions "
        "and bodies)"),
        (f"as plain copies   {human(r.bytes_plain)}  ({r.bytes_plain} bytes: links at "
        "their target's size)"),
        f"saved by links    {human(saved)}{share}",
        f"notes and markers {human(r.bytes_notes)}",
        "top failing hosts (objects whose newest attempt failed):",
    ]
    lines += [f"  {host:30} {n}" for host, n in r.failing_hosts] or ["  (none)"]
    lines += fulltext_lines(r)
    lines += capacity_lines(r)
    if r.deposits:
        lines.append(f"deposits          {r.deposits}  ({r.deposit_files} files, "
                     f"{human(r.deposit_bytes)} preserved, {r.deposit_mismatches} mismatched, "
                     f"{r.deposit_failed_files} failed; {r.deposit_failures} "
                     f"{'deposit' if r.deposit_failures == 1 else 'deposits'} failed whole)")
    lines += [f"unreadable        {u}" for u in r.unreadable]
    return "\n".join(lines) + "\n"


# --- HTML and SVG ----------------------------------------------------------

_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 44, 36, 56  # room for a date label at each end


def _nice_max(v: float, whole: bool = True) -> float:
    """Top of the y axis: four equal steps of 1, 2, 2.5 or 5 times a power
    of ten (or 3, for a closer fit), each a whole number when the values
    are counts or bytes."""
    if v <= 0:
        return 4
    mag: int = 10 ** max(len(str(int(v / 4))) - 1, 0)
    for step in (1, 2, 2.5, 3, 5, 10):
        if whole and mag == 1 and step == 2.5:
            continue
        if 4 * step * mag >= v:
            return int(4 * step * mag) if whole else 4 * step * mag
    return 40 * mag  # pragma: no cover


def _fmt_tick(v: float, as_bytes: bool) -> str:
    if as_bytes:
        return human(int(v))
    return str(int(v)) if v == int(v) else f"{v:g}"


def _byte_max(v: float) -> float:
    """A y axis top in round KiB, MiB... so the ticks read 30 KiB, 60 KiB."""
    unit = 1
    while v / unit >= 1024 and unit < 1024**4:
        unit *= 1024
    return _nice_max(v / unit, whole=False) * unit


def _axes(out: list[str], ymax: float, as_bytes: bool, ylabel: str) -> None:
    ph = _H - _TOP - _BOTTOM
    for i in range(5):
        v = ymax * i / 4
        y = _TOP + ph - ph * i / 4
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" '
                   'stroke="#ddd" stroke-width="1"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{html.escape(_fmt_tick(v, as_bytes))}</text>')
    out.append(f'<text x="14" y="{_TOP + ph / 2:.1f}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 14 {_TOP + ph / 2:.1f})">{html.escape(ylabel)}</text>')
    out.append(f'<line x1="{_LEFT}" y1="{_TOP + ph}" x2="{_W - _RIGHT}" y2="{_TOP + ph}" '
               'stroke="#333" stroke-width="1"/>')


def _legend(out: list[str], items: list[tuple[str, str]]) -> None:
    x = _LEFT
    for name, color in items:
        out.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x + 16}" y="20" font-size="12">{html.escape(name)}</text>')
        x += 24 + 8 * len(name)


def _svg_open(chart_id: str, title: str) -> list[str]:
    return [(f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart" '
            f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
            f'aria-labelledby="{chart_id}-title" font-family="sans-serif">'),
            f'<title id="{chart_id}-title">{html.escape(title)}</title>']


def _empty(out: list[str]) -> str:
    out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="14">'
               'no data yet</text></svg>')
    return "\n".join(out)


# --- the time axis ---------------------------------------------------------------
# All three charts share one axis of calendar days, from the first day the
# store saw to the last: a day without attempts is empty space, so a gap of
# two weeks between runs looks like two weeks in every chart, and the charts
# line up one above the other.

_CHAR_W = 7.0  # a generous width of one character at font-size 11, in pixels
_LABEL_GAP = 12.0  # the least space between two date labels
GAP_DAYS = 2  # this many days or more without data are shaded as a gap


@dataclass(frozen=True)
class TimeAxis:
    first: int  # date ordinals, inclusive
    last: int

    @classmethod
    def of(cls, days: list[str]) -> TimeAxis | None:
        if not days:
            return None
        ords = [date.fromisoformat(d).toordinal() for d in days]
        return cls(min(ords), max(ords))

    @property
    def slot(self) -> float:
        """The width of one day."""
        return (_W - _LEFT - _RIGHT) / (self.last - self.first + 1)

    def x(self, day: str | int) -> float:
        """The middle of the day's slot."""
        o = date.fromisoformat(day).toordinal() if isinstance(day, str) else day
        return _LEFT + (o - self.first + 0.5) * self.slot

    def gaps(self, days: list[str]) -> list[tuple[int, int]]:
        """Runs of GAP_DAYS or more days, inside the axis, without any of ``days``."""
        ords = sorted({date.fromisoformat(d).toordinal() for d in days})
        return [(a + 1, b - 1) for a, b in itertools.pairwise(ords) if b - a - 1 >= GAP_DAYS]

    def labels(self) -> list[tuple[int, str]]:
        """Date labels that never collide: the first and the last day, and
        between them calendar-aligned ticks (days, weeks, months, years) as
        dense as the width allows."""
        width = len("YYYY-MM-DD") * _CHAR_W + _LABEL_GAP
        first, last = self.first, self.last
        chosen = [first] if first == last else [first, last]
        # Fewest days between two ticks whose labels fit side by side.
        need = width / self.slot
        candidates: list[int] = []
        for step in (1, 2, 7, 14):
            if step >= need:
                start = first + (-first) % step
                candidates = list(range(start, last + 1, step))
                break
        else:
            months = next((m for m in (1, 2, 3, 6, 12, 24, 60) if 28 * m >= need), 120)
            d0 = date.fromordinal(first)
            y, m = d0.year, d0.month
            while True:
                o = date(y, m, 1).toordinal()
                if o > last:
                    break
                if o >= first and ((y * 12 + m - 1) % months == 0):
                    candidates.append(o)
                m += 1
                if m > 12:
                    y, m = y + 1, 1
        min_dx = width  # pixels between the middles of two labels
        for o in candidates:
            if all(abs(o - c) * self.slot >= min_dx for c in chosen):
                chosen.append(o)
        return [(o, date.fromordinal(o).isoformat()) for o in sorted(chosen)]


def _xaxis(out: list[str], axis: TimeAxis, days: list[str]) -> None:
    """Gaps shaded, then the date labels with a tick each."""
    ph = _H - _TOP - _BOTTOM
    for a, b in axis.gaps(days):
        x0 = axis.x(a) - axis.slot / 2
        n = b - a + 1
        out.append(f'<rect class="gap" x="{x0:.2f}" y="{_TOP}" width="{n * axis.slot:.2f}" '
                   f'height="{ph}" fill="#f1f1f1"><title>no data for {n} days, '
                   f'{date.fromordinal(a).isoformat()} to {date.fromordinal(b).isoformat()}'
                   '</title></rect>')
        note = f"{n} days without data"
        if len(note) * _CHAR_W + 8 < n * axis.slot:
            out.append(f'<text class="gaplabel" x="{x0 + n * axis.slot / 2:.1f}" '
                       f'y="{_TOP + 14}" text-anchor="middle" font-size="11" fill="#777">'
                       f'{note}</text>')
    y = _H - _BOTTOM + 16
    for o, label in axis.labels():
        x = axis.x(o)
        out.append(f'<line x1="{x:.1f}" y1="{_TOP + ph}" x2="{x:.1f}" y2="{_TOP + ph + 4}" '
                   'stroke="#333" stroke-width="1"/>')
        out.append(f'<text class="xlabel" x="{x:.1f}" y="{y}" text-anchor="middle" '
                   f'font-size="11">{html.escape(label)}</text>')


def svg_stacked_bars(chart_id: str, title: str, labels: list[str],
                     series: list[tuple[str, str, list[int]]], ylabel: str,
                     axis: TimeAxis | None = None) -> str:
    """One bar per day (``labels`` are YYYY-MM-DD) on a time axis, the series
    stacked bottom up; each part has a ``<title>`` so a browser shows the
    number on hover, without script."""
    out = _svg_open(chart_id, title)
    axis = axis or TimeAxis.of(labels)
    if not labels or axis is None:
        return _empty(out)
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    ymax = _nice_max(max(totals))
    _xaxis(out, axis, labels)
    _axes(out, ymax, False, ylabel)
    _legend(out, [(name, color) for name, color, _ in series])
    ph = _H - _TOP - _BOTTOM
    bar = min(max(axis.slot * 0.8, 0.5), 48)  # one day alone is a bar, not a wall
    for i, label in enumerate(labels):
        x = axis.x(label) - bar / 2
        y: float = _TOP + ph
        for name, color, values in series:
            v = values[i]
            if not v:
                continue
            h = ph * v / ymax
            y -= h
            out.append(f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                       f'height="{h:.2f}" fill="{color}"><title>{html.escape(label)}: '
                       f'{v} {html.escape(name)}</title></rect>')
    out.append("</svg>")
    return "\n".join(out)


def svg_lines(chart_id: str, title: str, days: list[str],
              series: list[tuple[str, str, list[int]]], ylabel: str, as_bytes: bool,
              axis: TimeAxis | None = None) -> str:
    """Cumulative values over the time axis, as steps: a value holds until the
    next day that changed it, so a month without runs is a flat month."""
    out = _svg_open(chart_id, title)
    axis = axis or TimeAxis.of(days)
    if not days or axis is None:
        return _empty(out)
    top = max(max(v) for _, _, v in series)
    ymax = _byte_max(top) if as_bytes else _nice_max(top)
    _xaxis(out, axis, days)
    _axes(out, ymax, as_bytes, ylabel)
    _legend(out, [(name, color) for name, color, _ in series])
    ph = _H - _TOP - _BOTTOM

    def ypos(v: float) -> float:
        return _TOP + ph - ph * v / ymax

    # The first series is drawn last, on top; the others dashed, so a line
    # hidden under another (no links yet: stored equals plain) still shows.
    for k, (name, color, values) in reversed(list(enumerate(series))):
        pts = []
        for i, v in enumerate(values):
            if i:
                pts.append(f"{axis.x(days[i]):.2f},{ypos(values[i - 1]):.2f}")
            pts.append(f"{axis.x(days[i]):.2f},{ypos(v):.2f}")
        dash = ' stroke-dasharray="6 4"' if k else ""
        out.append(f'<polyline class="line" fill="none" stroke="{color}" stroke-width="2"'
                   f'{dash} points="{" ".join(pts)}"><title>{html.escape(name)}</title>'
                   '</polyline>')
        for i, v in enumerate(values):
            out.append(f'<circle cx="{axis.x(days[i]):.2f}" cy="{ypos(v):.2f}" '
                       f'r="2.5" fill="{color}"><title>{days[i]}: '
                       f'{html.escape(_fmt_tick(v, as_bytes))} {html.escape(name)}</title>'
                       '</circle>')
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 800px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figcaption { font-size: 0.9em; color: #555; }
svg.chart { max-width: 100%; height: auto; background: #fff; }
"""


def render_html(r: Report, generated: int) -> str:
    """One self-contained page: no script, no external file, no network."""
    e = html.escape
    # One axis for the three charts: every day any of them has.
    axis = TimeAxis.of(sorted({g.day for g in r.growth} | {d.day for d in r.link_rot}
                              | {d.day for d in r.attempts_per_day}))
    rot_days = [d.day for d in r.link_rot]
    rot = svg_stacked_bars(
        "link-rot", "Objects alive and dead per renewal date", rot_days,
        [("alive", ALIVE_COLOR, [d.alive for d in r.link_rot]),
         ("dead", DEAD_COLOR, [d.dead for d in r.link_rot])], "objects", axis)
    classes = [k for k in CLASSES if any(dict(d.by_class).get(k) for d in r.attempts_per_day)]
    classes += sorted({k for d in r.attempts_per_day for k, _ in d.by_class} - set(classes))
    att = svg_stacked_bars(
        "attempts-by-class", "Attempts by status class per day",
        [d.day for d in r.attempts_per_day],
        [(k, CLASS_COLORS.get(k, "#000"), [dict(d.by_class).get(k, 0)
                                             for d in r.attempts_per_day]) for k in classes],
        "attempts", axis)
    grow = svg_lines(
        "store-growth", "Store growth over time", [g.day for g in r.growth],
        [("stored", "#1565c0", [g.bytes_stored for g in r.growth]),
         ("as plain copies", "#9e9e9e", [g.bytes_plain for g in r.growth])],
        "bytes", as_bytes=True, axis=axis)

    def row(name: str, value: object) -> str:
        return f"<tr><th>{e(name)}</th><td class=\"n\">{e(str(value))}</td></tr>"

    summary = "".join([
        row("records", r.records), row("gone from the input", r.gone),
        row("versions", r.versions), row("objects", r.objects),
        row("attempts", r.attempts), row("attempt files", r.attempt_files),
        row("of them links", r.links),
        row("bytes stored", f"{human(r.bytes_stored)} ({r.bytes_stored})"),
        row("as plain copies", f"{human(r.bytes_plain)} ({r.bytes_plain})"),
        row("saved by links", human(r.bytes_saved)),
        row("deposits", r.deposits), row("deposit files preserved", r.deposit_files),
        row("deposit bytes preserved", f"{human(r.deposit_bytes)} ({r.deposit_bytes})"),
        row("deposit files mismatched", r.deposit_mismatches),
        row("deposit files failed", r.deposit_failed_files),
        row("deposits failed whole", r.deposit_failures),
    ])
    status_rows = "".join(row(s, n) for s, n in r.newest_status) or row("(none)", "")
    host_rows = "".join(row(h, n) for h, n in r.failing_hosts) or row("(none)", "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kiel report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Kiel report</h1>
<p>Store <code>{e(r.store)}</code>, as of {e(iso(generated))}.</p>
<h2>What the archive holds</h2>
<table id="summary">{summary}</table>
<h2>Link rot</h2>
<figure>{rot}
<figcaption>For each day with attempts: objects whose last attempt of the day answered
(2xx, 3xx) and those that did not (4xx, 5xx, no response).</figcaption></figure>
<h2>Attempts</h2>
<figure>{att}
<figcaption>Attempts per day by status class; 000 means no complete answer (DNS,
refused, timeout, TLS, reset, too large).</figcaption></figure>
<h3>Newest attempt of each object</h3>
<table id="newest-status"><tr><th>status</th><th>objects</th></tr>{status_rows}</table>
<h3>Top failing hosts</h3>
<table id="failing-hosts"><tr><th>host</th><th>objects</th></tr>{host_rows}</table>
<h2>Growth</h2>
<figure>{grow}
<figcaption>Bytes of versions and bodies held as regular files, against what plain copies
would take (links counted at their target's size), by the day they were written.
</figcaption></figure>
{capacity_html(r)}{fulltext_html(r)}</body>
</html>
"""
