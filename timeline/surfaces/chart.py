"""`timeline chart`: history and total queries drawn as step charts (SVG or PNG).

Gathering the data (`build`) is kept apart from drawing it (`render`): the data side only
runs queries, so the HTML report and the tests share it, and matplotlib — the optional
`chart` extra — is imported only when something is actually drawn.

SVG output is deterministic (fixed hash salt, no date or creator metadata, text kept as
text), and every series, band and marker is a group with a stable id (`series-<measure>`,
`band-<measure>`, `known-on-<date>-<measure>`, `marker-<n>`, `marker-label-<n>`), so that
tests and the report can find them in the XML.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

from timeline.errors import TimelineError
from timeline.projections.reader import Reader
from timeline.query.execute import run
from timeline.query.parser import parse, parse_date
from timeline.query.planner import Context
from timeline.query.syntax import DateExpr, HistoryQuery, Pos, TotalQuery
from timeline.surfaces.common import open_timeline

INSTALL_HINT = "pip install 'timeline[chart]'"
FORMATS = (".svg", ".png")
# Non-rate developments worth a vertical marker: talks, court rulings, agreements opening
MARKER_TYPES = ("meeting", "ruling", "opened", "statement")
MARKER_COLORS = {"meeting": "#2166ac", "ruling": "#b2182b", "opened": "#1b7837",
                 "statement": "#762a83"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DASHES = ("--", ":", "-.")
SVG_SALT = "timeline-chart"
LABEL_CHARS = 56
NOT_IN_FORCE = ("lifted", "expired", "suspended")


class ChartError(TimelineError):
    """A chart cannot be drawn: wrong kind of query, bad file name, or matplotlib missing."""


@dataclass
class Series:
    """A step line: `points` are (ISO date, value or None for a gap), each held to the next."""

    gid: str
    label: str
    points: list[tuple[str, float | None]]
    color: str
    dashed: str | None = None  # a matplotlib dash style for `known on` series


@dataclass
class Marker:
    """A non-rate development drawn as a numbered vertical line."""

    number: int
    date: str
    type: str
    stream: str
    title: str
    event_id: str

    @property
    def label(self) -> str:
        """The title cut to a short label at a word boundary."""
        return textwrap.shorten(self.title, LABEL_CHARS, placeholder="…")


@dataclass
class ChartData:
    """Everything a chart shows, in plain data: what `render` draws."""

    kind: str  # 'history' | 'total'
    title: str
    start: str
    end: str
    series: list[Series] = field(default_factory=list)
    bands: list[Series] = field(default_factory=list)  # stacked, bottom first
    markers: list[Marker] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- gathering the data ---------------------------------------------------------------------
def _iso_expr(day: str):
    return DateExpr("iso", day, (), Pos(1, 1))


def _resolve(text: str | None, today: dt.date) -> str | None:
    """An option's date (any query-language date expression) as an ISO string."""
    if text is None:
        return None
    return parse_date(text).resolve(today).isoformat()


def build(r: Reader, query_text: str, *, today: dt.date, known_on=(), start: str | None = None,
          end: str | None = None) -> ChartData:
    """The series, bands and markers of a chart of `query_text` (history or total)."""
    query = parse(query_text)
    known = [_resolve(k, today) for k in known_on]
    start, end = _resolve(start, today), _resolve(end, today)
    if start and end and start >= end:
        raise ChartError(f"--from {start} must be before --to {end}")
    if isinstance(query, HistoryQuery):
        data = _build_history(r, query, query_text, today, known, start, end)
    elif isinstance(query, TotalQuery):
        data = _build_total(r, query, query_text, today, known, start, end)
    else:
        kind = type(query).__name__.removesuffix("Query").lower()
        raise ChartError(f"cannot chart a {kind} query: charts draw `history of <measure>` "
                         f"or `total tariff by <a> on <b>` queries")
    # with `known on` in the query, mark only the developments public by then
    main_known = query.known_on.resolve(today).isoformat() if query.known_on else None
    data.markers = markers(r, data.start, data.end, main_known)
    return data


def _value(state: dict, was_in_force: bool) -> float | None:
    """The rate to draw: the rate in force, 0 once lifted/expired/suspended, else a gap."""
    rate = state.get("rate")
    status = state.get("status")
    if status in (None, "in_force") and isinstance(rate, (int, float)):
        return float(rate)
    if status in NOT_IN_FORCE and was_in_force:
        return 0.0
    return None


def _steps(intervals: list[dict], start: str, end: str) -> list[tuple[str, float | None]]:
    """Step points of one measure's intervals, clipped to [start, end]; None marks a gap."""
    points: list[tuple[str, float | None]] = []
    in_force, prev_to = False, None
    for iv in intervals:
        value = _value(iv["state"], in_force)
        in_force = in_force or bool(value)
        lo, hi = max(iv["valid_from"], start), iv["valid_to"]
        if lo < end and (hi is None or hi > start):
            if points and prev_to is not None and prev_to < lo:
                points.append((prev_to, None))
            if points and points[-1][0] == lo:
                points[-1] = (lo, value)
            else:
                points.append((lo, value))
        prev_to = hi
    if points and prev_to is not None and prev_to < end:
        points.append((prev_to, None))
    return points


def _runs(points: list[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
    """Step points without repeats of the same value: equal runs mean equal lines."""
    out: list[tuple[str, float | None]] = []
    for day, v in points:
        if not out or out[-1][1] != v:
            out.append((day, None if v is None else float(v)))
    return out


def _build_history(rd: Reader, q, text, today, known, start, end) -> ChartData:
    q = replace(q, start=_iso_expr(start) if start else q.start,
                end=_iso_expr(end) if end else q.end)
    ctx = Context(today=today)
    main = run(rd, q, text, ctx).data
    results = main["results"]
    froms = [iv["valid_from"] for r in results for iv in r["intervals"]]
    lo = main["from"] or (min(froms) if froms else today.isoformat())
    hi = main["to"] or max([today.isoformat()] + froms)
    if lo >= hi:
        # the next day, or the last one there is (a chart of 9999-12-31 alone)
        hi = (dt.date.fromisoformat(lo) + dt.timedelta(days=1)).isoformat() \
            if lo < dt.date.max.isoformat() else lo
    title = q.render()  # canonical, and showing the range actually drawn
    data = ChartData("history", title, lo, hi)
    colors = {}
    for r in results:
        points = _steps(r["intervals"], lo, hi)
        if not any(v is not None for _, v in points):
            data.notes.append(f"{r['measure']}: no rate in force to draw")
            continue
        colors[r["measure"]] = PALETTE[len(colors) % len(PALETTE)]
        data.series.append(Series(f"series-{r['measure']}", r["measure"], points,
                                  colors[r["measure"]]))
    if not data.series:
        raise ChartError(f"nothing to draw: no measure of {q.target.render()!r} has a rate "
                         f"in force between {lo} and {hi}")
    for n, k in enumerate(known):
        other = run(rd, replace(q, known_on=_iso_expr(k)), text, ctx).data["results"]
        for r in other:
            points = _steps(r["intervals"], lo, hi)
            main_points = next((s.points for s in data.series
                                if s.gid == f"series-{r['measure']}"), None)
            if main_points is not None and _runs(points) == _runs(main_points):
                # drawn, it would hide exactly under the solid line: say so instead
                data.notes.append(f"{r['measure']} as known on {k}: the same as drawn")
            elif r["measure"] in colors and any(v is not None for _, v in points):
                data.series.append(Series(f"known-on-{k}-{r['measure']}",
                                          f"{r['measure']} as known on {k}", points,
                                          colors[r["measure"]], DASHES[n % len(DASHES)]))
    return data


def _default_start(rd: Reader, q, streams: list[str], end: str, known: str | None) -> str:
    """1 January of the year the first all-goods tariff of the pair took effect."""
    firsts = [r.valid_from for s in streams for r in rd.history(s, None, end, known)
              if r.state.get("status") == "in_force" and r.state.get("scope") == "all goods"
              and r.state.get("target") in (q.target, "all")]
    if not firsts:
        # a year back, but never before year 1
        return max(dt.date.fromisoformat(end) - dt.timedelta(days=365),
                   dt.date.min).isoformat() if end >= "0002" else dt.date.min.isoformat()
    return min(firsts)[:4] + "-01-01"


def _totals(rd: Reader, q, text, ctx, streams, start, end, known):
    """[(date, answer data)] at `start` and at every change of any tariff of the imposer."""
    days = {start}
    for s in streams:
        for row in rd.history(s, start, end, known):
            days.update(d for d in (row.valid_from, row.valid_to) if d and start < d < end)
    kq = _iso_expr(known) if known else None
    return [(d, run(rd, replace(q, as_of=_iso_expr(d), known_on=kq), text, ctx).data)
            for d in sorted(days)]


def _build_total(r: Reader, q, text, today, known, start, end) -> ChartData:
    ctx = Context(today=today)
    main_known = q.known_on.resolve(today).isoformat() if q.known_on else None
    hi = end or (q.as_of.resolve(today).isoformat() if q.as_of else today.isoformat())
    streams = r.tariff_streams(q.imposer)
    lo = start or _default_start(r, q, streams, hi, main_known)
    if lo >= hi:
        raise ChartError(f"the chart would start on {lo}, after its end {hi}: give --from")
    title = f"total tariff by {q.imposer} on {q.target}" + (
        f" known on {main_known}" if main_known else "")
    data = ChartData("total", title, lo, hi)
    totals = _totals(r, q, text, ctx, streams, lo, hi, main_known)
    order: list[str] = []  # bands stack in order of first appearance: oldest at the bottom
    for _, d in totals:
        order += [c["measure"] for c in d["components"] if c["measure"] not in order]
    for i, measure in enumerate(order):
        points = [(day, float(next((c["rate"] for c in d["components"]
                                    if c["measure"] == measure), 0))) for day, d in totals]
        data.bands.append(Series(f"band-{measure}", measure, points, PALETTE[i % len(PALETTE)]))
    data.series.append(Series("series-total", "total (sum of all-goods tariffs)",
                              [(day, float(d["total"])) for day, d in totals], "#000000"))
    for n, k in enumerate(known):
        kt = _totals(r, q, text, ctx, streams, lo, hi, k)
        if _runs([(day, d["total"]) for day, d in kt]) == _runs(data.series[0].points):
            data.notes.append(f"total as known on {k}: the same as drawn")
            continue
        data.series.append(Series(f"known-on-{k}-total", f"total as known on {k}",
                                  [(day, float(d["total"])) for day, d in kt], "#000000",
                                  DASHES[n % len(DASHES)]))
    also = totals[-1][1]["also_applies"]
    if also:
        data.notes.append(f"Not in the total — product-specific tariffs on {hi}: " + "; ".join(
            f"{a['measure']} {_num(a['rate']) + ' %' if a['rate'] is not None else 'rates by product'}"
            f" ({a['scope']})" for a in also))
    return data


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def markers(r: Reader, start: str, end: str, known_on: str | None = None) -> list[Marker]:
    """Non-rate developments effective in [start, end] (known by `known_on`), numbered."""
    evs = r.effective_between(start, end, known_on=known_on, types=MARKER_TYPES)
    return [Marker(n, ev.effective, ev.type, ev.stream, ev.title, ev.id)
            for n, ev in enumerate(evs, 1)]


# -- drawing --------------------------------------------------------------------------------
def _matplotlib():
    """Import matplotlib with a non-interactive backend, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ChartError(f"charts need matplotlib, which is not installed: {INSTALL_HINT}") \
            from None
    if "matplotlib.pyplot" not in sys.modules:
        # switching backends under a pyplot someone else already uses would disturb it
        matplotlib.use("Agg")
    return matplotlib


def available() -> bool:
    """Whether matplotlib can be imported (charts can be drawn)."""
    try:
        _matplotlib()
    except ChartError:
        return False
    return True


def _rc() -> dict:
    return {"svg.hashsalt": SVG_SALT, "svg.fonttype": "none", "font.size": 9,
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"]}


def render(data: ChartData, fmt: str = "svg", svg_id: str = "timeline-chart") -> bytes:
    """The chart drawn as SVG or PNG bytes."""
    mpl = _matplotlib()
    with mpl.rc_context(_rc()):
        fig = _figure(mpl, data)
        buf = io.BytesIO()
        meta = ({k: None for k in ("Date", "Creator", "Format", "Type")} if fmt == "svg"
                else {"Software": None})
        fig.savefig(buf, format=fmt, metadata=meta, dpi=110)
    out = buf.getvalue()
    if fmt == "svg":
        # set here rather than with rcParams["svg.id"], which matplotlib 3.7 does not have
        out = out.replace(b"<svg ", f'<svg id="{svg_id}" '.encode(), 1)
    return out


def _d(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso)


def _xy(s: Series, end: str):
    xs = [_d(day) for day, _ in s.points] + [_d(end)]
    ys = [float("nan") if v is None else v for _, v in s.points]
    return xs, ys + ys[-1:]


def _levels(data: ChartData, width_pt: float, gap_pt: float = 13.0) -> list[int]:
    """A row for each marker number so that close dates do not print over each other."""
    span = (_d(data.end) - _d(data.start)).days or 1
    last: list[float] = []
    out = []
    for m in data.markers:
        x = (_d(m.date) - _d(data.start)).days / span * width_pt
        row = next((i for i, lx in enumerate(last) if x - lx >= gap_pt), len(last))
        last[row:row + 1] = [x]
        out.append(row)
    return out


def _figure(mpl, data: ChartData):
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    width, plot_h, left, right = 10.0, 3.6, 0.75, 0.3
    levels = _levels(data, (width - left - right) * 72)
    top = 0.55 + (max(levels) + 1) * 0.16 if levels else 0.55
    entries = len(data.series) + len(data.bands)
    legend_h = 0.25 + ((entries + 1) // 2) * 0.2
    notes_h = sum(0.18 * len(textwrap.wrap(n, 150)) for n in data.notes)
    key_h = ((len(data.markers) + 1) // 2) * 0.17 + (0.3 if data.markers else 0)
    height = top + plot_h + 0.45 + legend_h + notes_h + key_h + 0.1
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes([left / width, 1 - (top + plot_h) / height, (width - left - right) / width,
                       plot_h / height])
    fig.text(left / width, 1 - 0.3 / height, data.title, fontsize=12, weight="bold",
             gid="chart-title")
    fig.text(1 - right / width, 1 - 0.3 / height, f"{data.start} to {data.end}", ha="right",
             fontsize=9, color="#555555")
    base = [0.0] * (len(data.bands[0].points) + 1) if data.bands else []
    for band in data.bands:
        xs, ys = _xy(band, data.end)
        upper = [b + y for b, y in zip(base, ys)]
        ax.fill_between(xs, base, upper, step="post", color=band.color, alpha=0.55,
                        linewidth=0, label=band.label, gid=band.gid)
        base = upper
    for s in data.series:
        xs, ys = _xy(s, data.end)
        (line,) = ax.step(xs, ys, where="post", color=s.color, label=s.label,
                          linestyle=s.dashed or "-", linewidth=1.4 if s.dashed else 1.9,
                          alpha=0.85 if s.dashed else 1.0)
        line.set_gid(s.gid)
    for m, row in zip(data.markers, levels):
        color = MARKER_COLORS.get(m.type, "#555555")
        ax.axvline(_d(m.date), color=color, linewidth=0.8, alpha=0.45, zorder=0,
                   gid=f"marker-{m.number}")
        ax.annotate(str(m.number), xy=(_d(m.date), 1), xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + row * 11.5), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7.5, color=color, weight="bold",
                    gid=f"marker-num-{m.number}")
    ax.set_xlim(_d(data.start), _d(data.end))
    ax.set_ylim(bottom=0)
    ymax = ax.get_ylim()[1]
    ax.set_ylim(0, ymax * 1.05)
    ax.set_ylabel("tariff rate, % ad valorem")
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    y = 1 - (top + plot_h + 0.4) / height
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles[::-1] if data.bands else handles,
                   labels[::-1] if data.bands else labels, loc="upper left",
                   bbox_to_anchor=(left / width, y), ncol=2, frameon=False, fontsize=8.5)
    y -= legend_h / height
    for i, note in enumerate(data.notes, 1):
        lines = textwrap.wrap(note, 150)
        fig.text(left / width, y, "\n".join(lines), fontsize=8, color="#444444", va="top",
                 gid=f"chart-note-{i}")
        y -= 0.18 * len(lines) / height
    if data.markers:
        fig.text(left / width, y, "Developments (numbered at the top of the chart):",
                 fontsize=8.5, weight="bold", va="top")
        y -= 0.22 / height
        rows = (len(data.markers) + 1) // 2
        for i, m in enumerate(data.markers):
            col, row = divmod(i, rows)
            fig.text((left + col * (width - left - right) / 2) / width, y - row * 0.17 / height,
                     f"{m.number}  {m.date}  {m.type}: {m.label}", fontsize=7.5, va="top",
                     color=MARKER_COLORS.get(m.type, "#333333"), gid=f"marker-label-{m.number}")
    return fig


# -- files and the command ------------------------------------------------------------------
def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ChartError(f"cannot write a chart to {str(path)!r}: the file name must end in "
                         f"{' or '.join(FORMATS)}")
    return suffix[1:]


def write_chart(r: Reader, query_text: str, path, *, today: dt.date, known_on=(),
                start: str | None = None, end: str | None = None) -> ChartData:
    """Draw `query_text` into `path` (.svg or .png), replacing it atomically."""
    path = Path(path)
    fmt = _format(path)
    _matplotlib()  # fail before running any query when the extra is missing
    data = build(r, query_text, today=today, known_on=known_on, start=start, end=end)
    content = render(data, fmt)
    # written beside the target and renamed, so a failure never leaves half a chart
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ChartError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return data


def chart_to_tempfile(r: Reader, query_text: str, today: dt.date) -> Path:
    """Draw `query_text` into a new temporary SVG file (for the REPL's `\\chart`) and return it."""
    fd, name = tempfile.mkstemp(prefix="timeline-chart-", suffix=".svg")
    os.close(fd)
    try:
        write_chart(r, query_text, name, today=today)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def configure_chart(p) -> None:
    """Arguments of `timeline chart`."""
    p.add_argument("query", help='a history or total query, e.g. "total tariff by us on cn"')
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the chart file to write: FILE.svg or FILE.png")
    p.add_argument("--known-on", action="append", default=[], metavar="DATE",
                   help="also draw the series as known on DATE, dashed (repeatable)")
    p.add_argument("--from", dest="start", metavar="DATE",
                   help="start of the time axis (default: the query's, or the data's)")
    p.add_argument("--to", dest="end", metavar="DATE",
                   help="end of the time axis (default: the query's, or today)")


def run_chart(args) -> int:
    """Draw one history or total query into an SVG or PNG file."""
    path = Path(args.output)
    _format(path)
    _matplotlib()
    with open_timeline(args, readonly=True) as tl, tl.store.reading() as r:
        data = write_chart(r, args.query, path, today=dt.date.today(),
                           known_on=args.known_on, start=args.start, end=args.end)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {path}: {len(data.series) + len(data.bands)} series, "
          f"{len(data.markers)} markers, {data.start} to {data.end}")
    return 0
