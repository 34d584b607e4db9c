"""Inline SVG charts and HTML tables for the report: no script, no external reference, every text escaped.

Accessibility: every chart is an ``<svg role="img">`` labelled by its ``<title>`` and a ``<desc>``
that states what it shows in words, and is followed by the same numbers as a table. Series are
told apart by colour from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies) *and* by dash pattern, and named in a legend.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
"""Okabe & Ito's colour-blind-safe palette (yellow last: weakest contrast on white)."""
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 6")

_ids = itertools.count(1)


def esc(value: object) -> str:
    """HTML/XML-escaped text of ``value`` (quotes included: safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(v: float | int | None, digits: int = 3) -> str:
    """A number for people: ``–`` for missing, thousands separators for counts, 3 significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:.{digits}g}"


def fmt_time(epoch_s: float | None) -> str:
    """``2026-12-01 06:00:00Z`` (UTC)."""
    if epoch_s is None:
        return "–"
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass
class Series:
    """One line: a name and ``(epoch_s, value)`` points in time order."""

    name: str
    points: list[tuple[float, float]]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_chart(title: str, desc: str, series: Sequence[Series], *, y_label: str = "", threshold: float | None = None,
               width: int = 760, height: int = 240) -> str:
    """A time-series line chart (one line per series) with axes, a legend and an optional dashed
    threshold line; returns an ``<svg>`` element."""
    uid = f"c{next(_ids)}"
    pts = [p for s in series for p in s.points if math.isfinite(p[1])]
    left, right, top, bottom = 56, 12, 12, 40
    legend_h = 18 * math.ceil(len(series) / 3)
    h = height + legend_h
    out = [f'<svg role="img" aria-labelledby="{uid}t {uid}d" viewBox="0 0 {width} {h}" width="{width}" '
           f'height="{h}" class="chart">',
           f'<title id="{uid}t">{esc(title)}</title><desc id="{uid}d">{esc(desc)}</desc>']
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data in this range</text></svg>')
        return "".join(out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    ys = [p[1] for p in pts] + ([threshold] if threshold is not None else [])
    y0, y1 = min(0.0, min(ys)), max(ys)
    if y1 <= y0:
        y1 = y0 + 1.0
    y1 += (y1 - y0) * 0.05
    if x1 <= x0:
        x1 = x0 + 1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out.append('<g class="axis" font-size="11" fill="#333">')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">{esc(fmt_num(t))}</text>')
    span = x1 - x0
    for i in range(5):
        x = x0 + span * i / 4
        label = dt.datetime.fromtimestamp(x, dt.UTC).strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + 16}" text-anchor="middle">{esc(label)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>'
               f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#333"/>')
    if y_label:
        out.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
                   f'text-anchor="middle">{esc(y_label)}</text>')
    out.append(f'<text x="{left + pw}" y="{top + ph + 32}" text-anchor="end">time (UTC)</text></g>')
    if threshold is not None:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(threshold):.1f}" y2="{sy(threshold):.1f}" '
                   f'stroke="#D55E00" stroke-dasharray="3 3"><title>threshold {esc(fmt_num(threshold))}</title></line>')
    for i, s in enumerate(series):
        color, dash = OKABE_ITO[i % len(OKABE_ITO)], DASHES[i % len(DASHES)]
        good = [p for p in s.points if math.isfinite(p[1])]
        if not good:
            continue
        d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(good))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}>'
                   f'<title>{esc(s.name)}</title></path>')
        if len(good) == 1:
            out.append(f'<circle cx="{sx(good[0][0]):.1f}" cy="{sy(good[0][1]):.1f}" r="3" fill="{color}"/>')
    for i, s in enumerate(series):
        color, dash = OKABE_ITO[i % len(OKABE_ITO)], DASHES[i % len(DASHES)]
        lx, ly = left + (i % 3) * (pw / 3), height + 18 * (i // 3)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx:.1f}" x2="{lx + 24:.1f}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash_attr}/><text x="{lx + 30:.1f}" y="{ly}" font-size="11">{esc(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, desc: str, bars: Sequence[tuple[str, float, float | None]], *, x_label: str = "",
              width: int = 760) -> str:
    """Horizontal bars ``(label, value, reference)``; the reference (when given) is a black tick on
    its bar, so "worse than usual" does not rely on colour."""
    uid = f"c{next(_ids)}"
    row, left, right = 22, 220, 60
    h = row * max(1, len(bars)) + 30
    out = [f'<svg role="img" aria-labelledby="{uid}t {uid}d" viewBox="0 0 {width} {h}" width="{width}" height="{h}" '
           f'class="chart">',
           f'<title id="{uid}t">{esc(title)}</title><desc id="{uid}d">{esc(desc)}</desc>']
    vals = [abs(v) for _, v, r in bars] + [abs(r) for _, _, r in bars if r is not None]
    top = max(vals) if vals and max(vals) > 0 else 1.0
    pw = width - left - right
    for i, (label, v, ref) in enumerate(bars):
        y = 4 + i * row
        short = label if len(label) <= 34 else label[:33] + "…"
        w = abs(v) / top * pw
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="11">{esc(short)}</text>'
                   f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{OKABE_ITO[0]}">'
                   f'<title>{esc(label)}: {esc(fmt_num(v))}</title></rect>'
                   f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{esc(fmt_num(v))}</text>')
        if ref is not None:
            rx = left + abs(ref) / top * pw
            out.append(f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{y + 1}" y2="{y + row - 3}" stroke="#000" '
                       f'stroke-width="2"><title>reference {esc(fmt_num(ref))}</title></line>')
    if x_label:
        out.append(f'<text x="{left + pw}" y="{h - 4}" text-anchor="end" font-size="11">{esc(x_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "", numeric: bool = True) -> str:
    """An HTML table; numbers formatted by :func:`fmt_num`, everything escaped."""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = []
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            text = fmt_num(v) if v is None or numeric and isinstance(v, int | float) and not isinstance(v, bool) else v
            tag = f'<th scope="row">{esc(text)}</th>' if j == 0 else f"<td>{esc(text)}</td>"
            cells.append(tag)
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def series_table(series: Sequence[Series], caption: str) -> str:
    """The points of ``series`` as one table (time rows, one column per series), in a ``<details>``."""
    times = sorted({t for s in series for t, _ in s.points})
    idx = [dict(s.points) for s in series]
    rows = [[fmt_time(t)] + [ix.get(t) for ix in idx] for t in times]
    return (f"<details><summary>Data table: {esc(caption)}</summary>"
            + table(["time (UTC)"] + [s.name for s in series], rows) + "</details>")


TEXT = "#111111"
"""Text colour of the page and of heat-table cells."""
_RAMP = ((0xF7, 0x42), (0xFB, 0x92), (0xFF, 0xC6))
"""Light to mid blue (#F7FBFF → #4292C6): its darkest end still gives :data:`TEXT` a contrast above
WCAG AA's 4.5:1, so every cell keeps one text colour."""


def shade(value: float | None, threshold: float) -> str:
    """A background colour for a heat-table cell: a light-to-darker blue ramp up to twice ``threshold``
    (a single hue, so it reads the same with colour-vision deficiencies; the number is in the cell)."""
    if value is None or not math.isfinite(value):
        return "#ffffff"
    f = max(0.0, min(1.0, value / (2 * threshold)))
    r, g, b = (int(round(a + (z - a) * f)) for a, z in _RAMP)
    return f"#{r:02x}{g:02x}{b:02x}"


def contrast(c1: str, c2: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours."""
    def lum(c: str) -> float:
        ch = [int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(c1), lum(c2)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
