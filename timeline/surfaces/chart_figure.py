"""Drawing a chart's data with matplotlib (imported by `chart.render` only when drawing).

What makes the picture read at a glance lives here: lines that would hide each other are
shifted a little and outlined, each step is labelled with its value, the `known on` dates
are vertical lines with a label, disputed values are hatched, the days after the knowledge
horizon are shaded, and development numbers never print over each other (close ones share
one label, e.g. `3–5`, and labels that would touch go up a row).
"""
from __future__ import annotations

import datetime as dt
import textwrap

WIDTH_IN, PLOT_H_IN, LEFT_IN, RIGHT_IN = 10.0, 3.6, 0.75, 0.3
CLUSTER_PT = 9.0  # developments closer than this on the axis share one number label
CHAR_PT = 4.6  # width of a digit at the marker labels' font size, with some room
ROW_PT = 11.5
LEGEND_CHARS = 62  # a label longer than this does not fit half the width: one column
MARKER_COLORS = {"meeting": "#2166ac", "ruling": "#b2182b", "opened": "#1b7837",
                 "statement": "#762a83"}
HORIZON_COLOR = "#888888"


def _d(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _xy(points, end: str):
    xs = [_d(day) for day, _ in points] + [_d(end)]
    ys = [float("nan") if v is None else v for _, v in points]
    return xs, ys + ys[-1:]


def clusters(data, width_pt: float) -> list[tuple[list, float, int]]:
    """Markers grouped when closer than CLUSTER_PT: (markers, x in points, label row), rows
    chosen so that no two labels overlap."""
    span = (_d(data.end) - _d(data.start)).days or 1
    groups: list[list] = []
    xs: list[float] = []
    for m in data.markers:
        x = (_d(m.date) - _d(data.start)).days / span * width_pt
        if groups and x - xs[-1] < CLUSTER_PT:
            groups[-1].append(m)
        else:
            groups.append([m])
            xs.append(x)
    right: list[float] = []  # the right edge of the last label of each row
    out = []
    for group, x in zip(groups, xs):
        half = len(cluster_label(group)) * CHAR_PT / 2 + 1.5
        row = next((i for i, r in enumerate(right) if x - half >= r), len(right))
        right[row:row + 1] = [x + half]
        out.append((group, x, row))
    return out


def cluster_label(group) -> str:
    """`3`, `3,4` or `3–6`: the numbers of developments drawn as one label."""
    first, last = group[0].number, group[-1].number
    return str(first) if first == last else f"{first},{last}" if last == first + 1 else \
        f"{first}–{last}"


def _offset(ax, fig, points: float):
    from matplotlib.transforms import offset_copy

    return offset_copy(ax.transData, fig=fig, x=0, y=points, units="points")


def draw(data):
    """The Figure of `data` (a chart.ChartData), laid out for its markers, legend and notes."""
    from matplotlib import dates as mdates
    from matplotlib import patheffects
    from matplotlib.figure import Figure

    width, left, right = WIDTH_IN, LEFT_IN, RIGHT_IN
    plot_w_pt = (width - left - right) * 72
    groups = clusters(data, plot_w_pt)
    rows = max((row for _, _, row in groups), default=-1) + 1
    top = 0.75 + rows * 0.16 + (0.18 if data.subtitle else 0)
    entries = len(data.series) + len(data.bands) + len(data.components) + len(data.disputed) \
        + (1 if _beyond(data) else 0)
    labels = [x.label for x in data.series + data.bands + data.components + data.disputed]
    ncol = 1 if any(len(label) > LEGEND_CHARS for label in labels) else 2
    legend_h = 0.25 + ((entries + ncol - 1) // ncol) * 0.2
    notes_h = sum(0.18 * len(textwrap.wrap(n, 150)) for n in data.notes)
    key_h = ((len(data.markers) + 1) // 2) * 0.17 + (0.3 if data.markers else 0)
    height = top + PLOT_H_IN + 0.45 + legend_h + notes_h + key_h + 0.1
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, 1 - (top + PLOT_H_IN) / height,
                       (width - left - right) / width, PLOT_H_IN / height))
    fig.text(left / width, 1 - 0.3 / height, data.title, fontsize=12, weight="bold",
             gid="chart-title")
    if data.subtitle:
        fig.text(left / width, 1 - 0.5 / height, data.subtitle, fontsize=9, color="#555555",
                 gid="chart-subtitle")
    fig.text(1 - right / width, 1 - 0.3 / height, f"{data.start} to {data.end}", ha="right",
             fontsize=9, color="#555555")
    _bands(ax, data)
    if _beyond(data):
        lo = max(_d(data.horizon), _d(data.start))
        ax.axvspan(lo, _d(data.end),  # type: ignore[arg-type]  # dates: matplotlib's units
                   facecolor="#f4f4f4", edgecolor="#c8c8c8", hatch="xx",
                   linewidth=0, zorder=0, gid="beyond-horizon",
                   label=f"after the knowledge horizon ({data.horizon}): projected, "
                         f"not yet confirmed")
        ax.annotate(f"known through {data.horizon}", xy=(lo, 0.5), xycoords=("data",
                    "axes fraction"), xytext=(3, 0), textcoords="offset points", rotation=90,
                    va="center", ha="left", fontsize=7.5, color=HORIZON_COLOR,
                    gid="horizon-label")
    for d in data.disputed:
        _disputed(ax, d, data.end)
    outline = [patheffects.withStroke(linewidth=4.2, foreground="white")]
    labelled: set[tuple] = set()
    for s in data.components + data.series:
        xs, ys = _xy(s.points, data.end)
        thin = s in data.components or s.dashed
        (line,) = ax.step(xs, ys, where="post", color=s.color, label=s.label,
                          linestyle=s.dashed or ("-" if s not in data.components else "-."),
                          linewidth=1.3 if thin else 1.9, alpha=0.85 if s.dashed else 1.0,
                          transform=_offset(ax, fig, s.offset), zorder=3 if thin else 4,
                          path_effects=None if s.dashed else outline)
        line.set_gid(s.gid)
        if s.values:
            _values(ax, fig, s, labelled)
    for k in data.known_lines:
        if data.start <= k <= data.end:
            ax.axvline(_d(k),  # type: ignore[arg-type]  # dates: matplotlib's units
                       color="#222222", linewidth=1.1, linestyle=(0, (5, 3)), zorder=5,
                       gid=f"known-on-line-{k}")
            ax.annotate(f"known on {k}", xy=(_d(k), 1), xycoords=("data", "axes fraction"),
                        xytext=(-3, -4), textcoords="offset points", rotation=90, ha="right",
                        va="top", fontsize=7.5, color="#222222", gid=f"known-on-label-{k}")
    for group, _, row in groups:
        for m in group:
            ax.axvline(_d(m.date),  # type: ignore[arg-type]  # dates: matplotlib's units
                       color=MARKER_COLORS.get(m.type, "#555555"), linewidth=0.8,
                       alpha=0.45, zorder=1, gid=f"marker-{m.number}")
        mid = group[0].date if len(group) == 1 else \
            (_d(group[0].date) + (_d(group[-1].date) - _d(group[0].date)) / 2).isoformat()
        color = MARKER_COLORS.get(group[0].type, "#555555") \
            if len({m.type for m in group}) == 1 else "#333333"
        ax.annotate(cluster_label(group), xy=(_d(mid), 1), xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + row * ROW_PT), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7.5, color=color, weight="bold",
                    gid=f"marker-num-{group[0].number}")
    _axes(ax, data, mdates)
    y = 1 - (top + PLOT_H_IN + 0.4) / height
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(left / width, y),
                   ncol=ncol, frameon=False, fontsize=8.5)
    y -= legend_h / height
    for i, note in enumerate(data.notes, 1):
        lines = textwrap.wrap(note, 150)
        fig.text(left / width, y, "\n".join(lines), fontsize=8, color="#444444", va="top",
                 gid=f"chart-note-{i}")
        y -= 0.18 * len(lines) / height
    if data.markers:
        _key(fig, data, y, height)
    return fig


def _beyond(data) -> bool:
    return bool(data.horizon) and data.horizon < data.end


def _bands(ax, data) -> None:
    base = [0.0] * (len(data.bands[0].points) + 1) if data.bands else []
    # the legend lists bands top first, as they are stacked
    for band in data.bands:
        xs, ys = _xy(band.points, data.end)
        upper = [b + y for b, y in zip(base, ys)]
        ax.fill_between(xs, base, upper, step="post", color=band.color, alpha=0.55,
                        linewidth=0, label=band.label, gid=band.gid)
        base = upper


def _stairs(points, end: str):
    """Explicit stair corners: fill_between's step mode drops the last step before a gap."""
    xs, ys = [], []
    bounds = [d for d, _ in points[1:]] + [end]
    for (day, v), to in zip(points, bounds):
        y = float("nan") if v is None else v
        xs += [_d(day), _d(to)]
        ys += [y, y]
    return xs, ys


def _disputed(ax, d, end: str) -> None:
    xs, low = _stairs(d.low, end)
    _, high = _stairs(d.high, end)
    ax.fill_between(xs, low, high, facecolor="none", edgecolor="#d62728",
                    hatch="////", linewidth=0, zorder=2, label=d.label, gid=d.gid)
    (line,) = ax.plot(xs, high, color="#d62728", linestyle=":", linewidth=1.2, zorder=2)
    line.set_gid(f"{d.gid}-claim")


def _values(ax, fig, s, labelled: set) -> None:
    """The value at each change of a step line, once per (date, value) on the chart."""
    prev = object()
    n = 0
    for day, v in s.points:
        if v is None or v == prev:
            prev = v
            continue
        prev = v
        if (day, v) in labelled:
            continue
        labelled.add((day, v))
        n += 1
        ax.annotate(_num(v), xy=(_d(day), v), xytext=(2, 3 + s.offset),
                    textcoords="offset points", fontsize=7, color=s.color, ha="left",
                    va="bottom", zorder=6, gid=f"value-{s.gid}-{n}",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                          "edgecolor": "none", "alpha": 0.7})


def _axes(ax, data, mdates) -> None:
    ax.set_xlim(_d(data.start), _d(data.end))
    # lines drawn with an offset transform do not count for autoscaling: scale from the data
    tops = [v for s in data.series + data.components for _, v in s.points if v is not None]
    tops += [v for d in data.disputed for _, v in d.high if v is not None]
    if data.bands:
        tops.append(max(sum(b.points[i][1] or 0 for b in data.bands)
                        for i in range(len(data.bands[0].points))))
    ax.set_ylim(0, (max(tops, default=0) or 1) * 1.1)
    ax.set_ylabel("tariff rate, % ad valorem")
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _key(fig, data, y: float, height: float) -> None:
    left, width = LEFT_IN, WIDTH_IN
    fig.text(left / width, y, "Developments that touch the charted measures (numbered at the "
             "top of the chart):", fontsize=8.5, weight="bold", va="top")
    y -= 0.22 / height
    rows = (len(data.markers) + 1) // 2
    for i, m in enumerate(data.markers):
        col, row = divmod(i, rows)
        fig.text((left + col * (width - left - RIGHT_IN) / 2) / width, y - row * 0.17 / height,
                 f"{m.number}  {m.date}  {m.type}: {m.label}", fontsize=7.5, va="top",
                 color=MARKER_COLORS.get(m.type, "#333333"), gid=f"marker-label-{m.number}")
