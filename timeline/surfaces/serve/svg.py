"""Step charts as inline SVG, drawn on the server: stacked layers, lines, a dashed overlay,
the days after the knowledge horizon shaded and a marker on the day asked about.

Only presentation attributes (fill, stroke): no `style`, so the page's Content-Security-
Policy needs no 'unsafe-inline'. Every label is escaped here.
"""
from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

WIDTH, HEIGHT = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


@dataclass
class Series:
    """One step series: (day, value) points, each value holding until the next day."""

    label: str
    points: list[tuple[str, float | None]]
    dashed: bool = False
    stacked: bool = False


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _day(text: str) -> int:
    return dt.date.fromisoformat(text).toordinal()


def _value_at(points, day: str) -> float:
    value = 0.0
    for d, v in points:
        if d > day:
            break
        value = v or 0.0
    return value


def step_chart(series: list[Series], start: str, end: str, *, horizon: str | None = None,
               marker: str | None = None, unit: str = "%", title: str = "") -> str:
    """An SVG step chart of `series` over [start, end]; stacked series are summed in order."""
    x0, x1 = _day(start), max(_day(end), _day(start) + 1)
    stacked = [s for s in series if s.stacked]
    lines = [s for s in series if not s.stacked]
    # stacked bands: at every day where any series changes, the running sums
    days = sorted({start, *(d for s in stacked for d, _ in s.points if start <= d <= end)})
    tops = []
    for day in days:
        run, row = 0.0, []
        for s in stacked:
            run += _value_at(s.points, day)
            row.append(run)
        tops.append(row)
    peak = max([max(r) for r in tops if r] + [v or 0 for s in lines for _, v in s.points]
               + [1])
    ymax = _nice(peak)

    def x(day: str) -> float:
        d = min(max(_day(day), x0), x1)
        return LEFT + (d - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (1 - v / ymax) * (HEIGHT - TOP - BOTTOM)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-label="{_e(title)}" class="chart">', f"<title>{_e(title)}</title>"]
    shade = ""
    if horizon and horizon < end:  # drawn over the bands, translucent
        hx = x(max(horizon, start))
        shade = (f'<rect class="after-horizon" x="{hx:.1f}" y="{TOP}" '
                 f'width="{WIDTH - RIGHT - hx:.1f}" height="{HEIGHT - TOP - BOTTOM}" '
                 f'fill="#888888" fill-opacity="0.22"><title>after the knowledge horizon '
                 f'{_e(horizon)}: projected</title></rect>')
    for tick in _ticks(ymax):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
                   f'y2="{y(tick):.1f}" stroke="#dddddd"/>'
                   f'<text x="{LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{tick:g}{_e(unit)}</text>')
    for day, label in _date_ticks(x0, x1):
        out.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{TOP}" '
                   f'y2="{HEIGHT - BOTTOM}" stroke="#cccccc"/><text x="{x(day):.1f}" '
                   f'y="{HEIGHT - 10}" text-anchor="middle" font-size="11">{label}</text>')
    for i in range(len(stacked) - 1, -1, -1):  # top bands first, lower ones over them
        pts = []
        for j, day in enumerate(days):
            nxt = days[j + 1] if j + 1 < len(days) else end
            pts += [(x(day), y(tops[j][i])), (x(nxt), y(tops[j][i]))]
        poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in
                        [(x(start), y(0))] + pts + [(x(end), y(0))])
        out.append(f'<polygon points="{poly}" fill="{PALETTE[i % len(PALETTE)]}" '
                   f'fill-opacity="0.75" stroke="none"><title>{_e(stacked[i].label)}</title>'
                   f'</polygon>')
    out.append(shade)
    for k, s in enumerate(lines):
        colour = "#222222" if k == 0 else "#c0392b"
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<path class="series" d="{_steps(s.points, start, end, x, y)}" '
                   f'fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                   f'<title>{_e(s.label)}</title></path>')
    if marker and start <= marker <= end:
        out.append(f'<line class="marker" x1="{x(marker):.1f}" x2="{x(marker):.1f}" '
                   f'y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#1a5fb4" stroke-width="1.5">'
                   f'<title>{_e(marker)}</title></line>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
               f'stroke="#888888"/></svg>')
    return "".join(out)


def legend(series: list[Series]) -> list[tuple[str, str, str]]:
    """(label, colour, kind) per series, in the chart's colours, for an HTML legend."""
    out, n_stacked, n_line = [], 0, 0
    for s in series:
        if s.stacked:
            out.append((s.label, PALETTE[n_stacked % len(PALETTE)], "band"))
            n_stacked += 1
        else:
            out.append((s.label, "#222222" if n_line == 0 else "#c0392b",
                        "dashed" if s.dashed else "line"))
            n_line += 1
    return out


def _steps(points, start: str, end: str, x, y) -> str:
    inside = [(d, v) for d, v in points if d <= end]
    before = [(d, v) for d, v in inside if d <= start]
    pts = ([(start, before[-1][1])] if before else []) + [(d, v) for d, v in inside if d > start]
    path, prev = [], None
    for i, (d, v) in enumerate(pts):
        nxt = pts[i + 1][0] if i + 1 < len(pts) else end
        if v is None:
            prev = None
            continue
        cmd = "L" if prev is not None else "M"
        path.append(f"{cmd}{x(d):.1f},{y(v):.1f} L{x(nxt):.1f},{y(v):.1f}")
        prev = v
    return " ".join(path) or f"M{x(start):.1f},{y(0):.1f}"


def _date_ticks(x0: int, x1: int) -> list[tuple[str, str]]:
    """Years on a long axis; quarters (2025-04) on one of three years or less."""
    first, last = dt.date.fromordinal(x0), dt.date.fromordinal(x1)
    months = (1, 4, 7, 10) if x1 - x0 <= 3 * 366 else (1,)
    out = []
    for year in range(first.year, last.year + 1):
        for m in months:
            day = dt.date(year, m, 1)
            if first < day <= last:
                out.append((day.isoformat(), str(year) if m == 1 else f"{year}-{m:02d}"))
    return out


def _nice(peak: float) -> float:
    for step in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if peak <= step * 5:
            return step * max(1, -(-peak // step))
    return float(peak)


def _ticks(ymax: float) -> list[float]:
    step = ymax / 5
    return [round(step * i, 6) for i in range(6)]
