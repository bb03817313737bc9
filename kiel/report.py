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
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from kiel import store
from kiel.errors import NotFound
from kiel.platforms.manifests import newest, read_manifests
from kiel.show import object_view
from kiel.tist import iso

CLASSES = ("2xx", "3xx", "4xx", "5xx", "000")
CLASS_COLORS = {"2xx": "#2e7d32", "3xx": "#1565c0", "4xx": "#ef6c00", "5xx": "#c62828",
                "000": "#757575", "1xx": "#6a1b9a"}
ALIVE_COLOR, DEAD_COLOR = "#2e7d32", "#c62828"


def status_class(status: str) -> str:
    return "000" if status.startswith("0") else status[0] + "xx"


def is_alive(status: str) -> bool:
    """A URL lives when it answers 2xx or 3xx (a redirect or 304 answers too)."""
    return status[:1] in ("2", "3")


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
    # Deposits (docs/datasets.md), by the newest manifest note of each
    deposits: int = 0
    deposit_failures: int = 0  # deposits whose newest note is a named failure
    deposit_files: int = 0  # files stored (ok, mismatch or unchecked)
    deposit_bytes: int = 0
    deposit_mismatches: int = 0

    @property
    def bytes_saved(self) -> int:
        return self.bytes_plain - self.bytes_stored


def _day(tist: int) -> str:
    return datetime.fromtimestamp(tist, timezone.utc).strftime("%Y-%m-%d")


def report(home_root: str, prefix: str | None = None, top_hosts: int = 10) -> Report:
    """Walk the store of ``home_root`` (or the part under ``prefix``)."""
    from kiel.verify import prefix_path

    store_root = os.path.join(os.path.abspath(home_root), "store")
    if not os.path.isdir(store_root):
        raise NotFound(f"no store at {store_root} (is --home right?)")
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
    for record_dir in store.iter_record_dirs(store_root, walk_prefix):
        c["records"] += 1
        try:
            names = sorted(os.listdir(record_dir))
        except OSError:
            continue
        if "00notes" in names:
            _deposits(record_dir, c)
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
            elif name in (store.LAST, store.GONE, "00notes") and os.path.isfile(full):
                c["bytes_notes"] += os.path.getsize(full)
            elif os.path.isdir(full) and not os.path.islink(full) and not store.is_tmp(name):
                _object(full, store_root, c, newest, hosts, rot, per_day, grow_stored,
                        grow_plain, grow_objects)

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
        deposits=c["deposits"], deposit_failures=c["deposit_failures"],
        deposit_files=c["deposit_files"], deposit_bytes=c["deposit_bytes"],
        deposit_mismatches=c["deposit_mismatches"],
    )


def _deposits(record_dir: str, c: Counter[str]) -> None:
    """Count what the newest manifest note of each deposit says was preserved."""
    for rec in newest(read_manifests(record_dir)):
        c["deposits"] += 1
        if rec.failure:
            c["deposit_failures"] += 1
        for f in rec.files:
            if f.status in ("ok", "mismatch", "unchecked"):
                c["deposit_files"] += 1
                c["deposit_bytes"] += f.found_size or 0
            if f.status == "mismatch":
                c["deposit_mismatches"] += 1


def _object(obj_dir, store_root, c, newest, hosts, rot, per_day, grow_stored, grow_plain,
            grow_objects):
    c["objects"] += 1
    view = object_view(obj_dir)
    day_outcome: dict[str, str] = {}
    first = None
    for a in view.timeline:
        if a.event is not None or a.status is None:
            continue
        c["attempts"] += 1
        day = _day(a.tist)
        first = day if first is None else min(first, day)
        per_day[day][status_class(a.status)] += 1
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
        rot[day][0 if is_alive(status) else 1] += 1
    if first is not None:
        grow_objects[first] += 1
    for name in ("00notes", "00url"):
        try:
            c["bytes_notes"] += os.path.getsize(os.path.join(obj_dir, name))
        except OSError:
            pass
    last = view.newest
    if last is None:
        c["never_attempted"] += 1
        return
    newest[last.status or "???"] += 1
    if not is_alive(last.status or "0"):
        host = urlsplit(view.url).hostname if view.url else None
        hosts[host or "(unknown host)"] += 1


def _in_store(store_root: str, link: str) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    real = os.path.realpath(link)
    return real.startswith(os.path.realpath(store_root) + os.sep)


# --- text ------------------------------------------------------------------

def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            if unit == "B":
                return f"{n} B"
            return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


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
        f"bytes stored      {human(r.bytes_stored)}  ({r.bytes_stored} bytes: versions "
        "and bodies)",
        f"as plain copies   {human(r.bytes_plain)}  ({r.bytes_plain} bytes: links at "
        "their target's size)",
        f"saved by links    {human(saved)}{share}",
        f"notes and markers {human(r.bytes_notes)}",
        "top failing hosts (objects whose newest attempt failed):",
    ]
    lines += [f"  {host:30} {n}" for host, n in r.failing_hosts] or ["  (none)"]
    if r.deposits:
        lines.append(f"deposits          {r.deposits}  ({r.deposit_files} files, "
                     f"{human(r.deposit_bytes)} preserved, {r.deposit_mismatches} mismatched, "
                     f"{r.deposit_failures} failed)")
    return "\n".join(lines) + "\n"


# --- HTML and SVG ----------------------------------------------------------

_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 24, 36, 56


def _nice_max(v: float, whole: bool = True) -> float:
    """Top of the y axis: four equal steps of 1, 2, 2.5 or 5 times a power
    of ten (or 3, for a closer fit), each a whole number when the values
    are counts or bytes."""
    if v <= 0:
        return 4
    mag = 10 ** max(len(str(int(v / 4))) - 1, 0)
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
    return [f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart" '
            f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
            f'aria-labelledby="{chart_id}-title" font-family="sans-serif">',
            f'<title id="{chart_id}-title">{html.escape(title)}</title>']


def _empty(out: list[str]) -> str:
    out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="14">'
               'no data yet</text></svg>')
    return "\n".join(out)


def svg_stacked_bars(chart_id: str, title: str, labels: list[str],
                     series: list[tuple[str, str, list[int]]], ylabel: str) -> str:
    """One bar per label, the series stacked bottom up; each part has a
    ``<title>`` so a browser shows the number on hover, without script."""
    out = _svg_open(chart_id, title)
    if not labels:
        return _empty(out)
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    ymax = _nice_max(max(totals))
    _axes(out, ymax, False, ylabel)
    _legend(out, [(name, color) for name, color, _ in series])
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    step = pw / len(labels)
    bar = min(max(step * 0.8, 0.5), 48)  # one day alone is a bar, not a wall
    for i, label in enumerate(labels):
        x = _LEFT + i * step + (step - bar) / 2
        y = _TOP + ph
        for name, color, values in series:
            v = values[i]
            if not v:
                continue
            h = ph * v / ymax
            y -= h
            out.append(f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                       f'height="{h:.2f}" fill="{color}"><title>{html.escape(label)}: '
                       f'{v} {html.escape(name)}</title></rect>')
    _xlabels(out, [(i, label) for i, label in enumerate(labels)], len(labels),
              lambda i: _LEFT + i * step + step / 2)
    out.append("</svg>")
    return "\n".join(out)


def _xlabels(out: list[str], points: list[tuple[int, str]], n: int, xpos) -> None:
    # At most eight labels, evenly spread, the first and the last always:
    # they never overlap, and the ends of the series are always named.
    k = min(n, 8)
    shown = {round(j * (n - 1) / (k - 1)) for j in range(k)} if k > 1 else {0}
    y = _H - _BOTTOM + 16
    for i, label in points:
        if i not in shown:
            continue
        x = xpos(i)
        # A label at the right edge ends there instead of running off the chart.
        anchor = "end" if x > _W - _RIGHT - 32 else "middle"
        out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}" '
                   f'font-size="11">{html.escape(label)}</text>')


def svg_lines(chart_id: str, title: str, days: list[str],
              series: list[tuple[str, str, list[int]]], ylabel: str, as_bytes: bool) -> str:
    """Lines over a true time axis: a gap of a month between runs shows as one."""
    out = _svg_open(chart_id, title)
    if not days:
        return _empty(out)
    ords = [date.fromisoformat(d).toordinal() for d in days]
    span = max(ords[-1] - ords[0], 1)
    top = max(max(v) for _, _, v in series)
    ymax = _byte_max(top) if as_bytes else _nice_max(top)
    _axes(out, ymax, as_bytes, ylabel)
    _legend(out, [(name, color) for name, color, _ in series])
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def xpos(i: int) -> float:
        return _LEFT + (pw * (ords[i] - ords[0]) / span if len(days) > 1 else pw / 2)

    # The first series is drawn last, on top; the others dashed, so a line
    # hidden under another (no links yet: stored equals plain) still shows.
    for k, (name, color, values) in reversed(list(enumerate(series))):
        pts = " ".join(f"{xpos(i):.2f},{_TOP + ph - ph * v / ymax:.2f}"
                       for i, v in enumerate(values))
        dash = ' stroke-dasharray="6 4"' if k else ""
        out.append(f'<polyline class="line" fill="none" stroke="{color}" stroke-width="2"'
                   f'{dash} points="{pts}"><title>{html.escape(name)}</title></polyline>')
        for i, v in enumerate(values):
            out.append(f'<circle cx="{xpos(i):.2f}" cy="{_TOP + ph - ph * v / ymax:.2f}" '
                       f'r="2.5" fill="{color}"><title>{days[i]}: '
                       f'{html.escape(_fmt_tick(v, as_bytes))} {html.escape(name)}</title>'
                       '</circle>')
    _xlabels(out, list(enumerate(days)), len(days), xpos)
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
    rot_days = [d.day for d in r.link_rot]
    rot = svg_stacked_bars(
        "link-rot", "Objects alive and dead per renewal date", rot_days,
        [("alive", ALIVE_COLOR, [d.alive for d in r.link_rot]),
         ("dead", DEAD_COLOR, [d.dead for d in r.link_rot])], "objects")
    classes = [k for k in CLASSES if any(dict(d.by_class).get(k) for d in r.attempts_per_day)]
    classes += sorted({k for d in r.attempts_per_day for k, _ in d.by_class} - set(classes))
    att = svg_stacked_bars(
        "attempts-by-class", "Attempts by status class per day",
        [d.day for d in r.attempts_per_day],
        [(k, CLASS_COLORS.get(k, "#000"), [dict(d.by_class).get(k, 0)
                                             for d in r.attempts_per_day]) for k in classes],
        "attempts")
    grow = svg_lines(
        "store-growth", "Store growth over time", [g.day for g in r.growth],
        [("stored", "#1565c0", [g.bytes_stored for g in r.growth]),
         ("as plain copies", "#9e9e9e", [g.bytes_plain for g in r.growth])],
        "bytes", as_bytes=True)

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
        row("deposits failed", r.deposit_failures),
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
</body>
</html>
"""
