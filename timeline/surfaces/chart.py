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

import argparse
import datetime as dt
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

from timeline.api import Snapshot, parse, parse_date
from timeline.errors import TimelineError
from timeline.files import write_atomic
from timeline.query.syntax import DateExpr, HistoryQuery, Pos, TariffHistoryQuery, TotalQuery
from timeline.surfaces.common import open_timeline

INSTALL_HINT = "pip install 'timeline[chart]'"
FORMATS = (".svg", ".png")
# Non-rate developments worth a vertical marker: talks, court rulings, agreements opening
MARKER_TYPES = ("meeting", "ruling", "opened", "statement")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DASHES = ("--", ":", "-.")
SVG_SALT = "timeline-chart"
LABEL_CHARS = 56
NOT_IN_FORCE = ("lifted", "expired", "suspended")
COMPONENT_COLORS = ("#6a3d9a", "#b15928", "#1b9e77", "#e7298a", "#666666", "#a6761d",
                    "#7570b3", "#d95f02")
# `list_rates` text as the seeds write it: "List 1: 25% on $34bn; …; List 4A: 7.5%"
LIST_RATE = re.compile(r"\b(List [0-9]+[A-Z]?):\s*([0-9]+(?:\.[0-9]+)?)\s*%")
# Agreements and talks between the two parties of a charted measure are what move its rate;
# other measures' developments (an export control's statement) are not marked
RELATED_KINDS = ("agreement", "diplomacy")
OFFSET_PT = 2.5  # how far apart equal lines are drawn


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
    offset: float = 0.0  # points up (+) or down: keeps a line visible on top of an equal one
    values: bool = False  # print the value at each change


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
class Disputed:
    """A value some sources report and the log does not accept: drawn hatched, not solid."""

    gid: str
    label: str
    low: list[tuple[str, float | None]]  # the accepted value (None: no dispute that day)
    high: list[tuple[str, float | None]]  # the claimed value


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
    components: list[Series] = field(default_factory=list)  # a measure's lists/products
    disputed: list[Disputed] = field(default_factory=list)
    known_lines: list[str] = field(default_factory=list)  # `known on` dates: vertical lines
    horizon: str | None = None  # known through this date; later days are projected
    subtitle: str = ""
    measures: list[str] = field(default_factory=list)  # what the chart draws (for markers)


# -- gathering the data ---------------------------------------------------------------------
def _iso_expr(day: str):
    return DateExpr("iso", day, (), Pos(1, 1))


def _resolve(text: str | None, today: dt.date) -> str | None:
    """An option's date (any query-language date expression) as an ISO string."""
    if text is None:
        return None
    return parse_date(text).resolve(today).isoformat()


def build(r: Snapshot, query_text: str, *, today: dt.date, known_on=(), start: str | None = None,
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
    elif isinstance(query, TariffHistoryQuery):
        data = _build_tariff(r, query, today, known, start, end)
    else:
        kind = type(query).__name__.removesuffix("Query").lower()
        raise ChartError(f"cannot chart a {kind} query: charts draw `history of <measure>`, "
                         f"`history of tariff on <product> from <origin>` or `total tariff by "
                         f"<a> on <b>` queries")
    # with `known on` in the query, mark only the developments public by then
    main_known = query.known_on.resolve(today).isoformat() if query.known_on else None
    data.known_lines = sorted({k for k in [main_known, *known] if k})
    data.markers = markers(r, data.start, data.end, main_known, measures=data.measures)
    return data


def _titles(r: Snapshot) -> dict[str, str]:
    return {e.stream: e.title for e in r.catalogue() if e.title}


def measure_label(measure: str, titles: dict[str, str], width: int = 44) -> str:
    """A legend label: the measure's catalogue title, cut to `width`, then its id."""
    title = titles.get(measure)
    if not title:
        return measure
    return f"{textwrap.shorten(title, width, placeholder='…')} ({measure})"


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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _parts(state: dict) -> dict[str, float]:
    """A measure's own parts: its lists' rates (`list_rates`) and product rates (`*_rate`)."""
    out: dict[str, float] = {}
    text = state.get("list_rates")
    if isinstance(text, str):
        out.update((name, float(rate)) for name, rate in LIST_RATE.findall(text))
    for k, v in sorted(state.items()):
        if k.endswith("_rate") and k != "last_rate" and isinstance(v, (int, float)) \
                and not isinstance(v, bool):
            out[k.removesuffix("_rate").replace("_", " ")] = float(v)
    return out


def components(intervals: list[dict], start: str, end: str) -> list[tuple[str, list]]:
    """(name, step points) of each part of a measure (e.g. Section 301's lists and product
    rates) over [start, end]; parts with the same line are one component, names joined."""
    names: list[str] = []
    for iv in intervals:
        names += [n for n in _parts(iv["state"]) if n not in names]
    lines: dict[tuple, list] = {}
    for name in names:
        ivs = [{**iv, "state": {"rate": _parts(iv["state"]).get(name),
                                "status": iv["state"].get("status")}} for iv in intervals]
        points = _steps(ivs, start, end)
        if any(v is not None for _, v in points):
            lines.setdefault(tuple(_runs(points)), [[], points])[0].append(name)
    out = []
    for ns, pts in lines.values():
        rates = sorted({v for _, v in pts if v is not None})
        out.append((" · ".join(ns) + f" ({'/'.join(_num(v) for v in rates)} %)", pts))
    return out


def _disputed_history(result: dict, start: str, end: str) -> list[Disputed]:
    """The rates some sources claim for a measure while the log keeps another."""
    claims: dict[tuple, list] = {}
    for iv in result["intervals"]:
        rate = iv["state"].get("rate")
        for d in iv["state"].get("disputed") or ():
            claim = (d.get("claims") or {}).get("rate") if isinstance(d, dict) else None
            if isinstance(claim, (int, float)) and isinstance(rate, (int, float)):
                claims.setdefault((float(claim), str(d.get("source", "?"))), []).append(iv)
    out = []
    for n, ((claim, source), ivs) in enumerate(claims.items(), 1):
        on = {iv["valid_from"] for iv in ivs}

        def pick(value, on=on):
            """The intervals with `value` where the claim stands, a gap elsewhere."""
            return [{**iv, "state": {"rate": value(iv) if iv["valid_from"] in on else None,
                                     "status": "in_force"}} for iv in result["intervals"]]

        low = _steps(pick(lambda iv: iv["state"]["rate"]), start, end)
        high = _steps(pick(lambda iv, claim=claim: claim), start, end)
        if any(v is not None for _, v in low):
            out.append(Disputed(f"disputed-{result['measure']}-{n}",
                                f"disputed: {_num(claim)} % reported by {source}",
                                low, high))
    return out


def value_at(points: list[tuple[str, float | None]], day: str) -> float | None:
    """The value a step line holds on `day` (None before its first point)."""
    v = None
    for d, x in points:
        if d > day:
            break
        v = x
    return v


def _overlap(a: Series, b: Series) -> bool:
    days = sorted({d for d, _ in a.points} | {d for d, _ in b.points})
    return any(value_at(a.points, d) is not None and value_at(a.points, d) == value_at(b.points, d)
               for d in days)


def offset_overlaps(series: list[Series], end: str) -> None:
    """Shift a line that runs on top of an earlier one (equal value for a while) a little up
    or down, so that neither hides the other."""
    for i, s in enumerate(series):
        taken = {o.offset for o in series[:i] if _overlap(o, s)}
        if taken:
            s.offset = next(k * OFFSET_PT * sign for k in range(1, len(series) + 1)
                            for sign in (1, -1) if k * OFFSET_PT * sign not in taken)


def _build_history(rd: Snapshot, q, text, today, known, start, end) -> ChartData:
    q = replace(q, start=_iso_expr(start) if start else q.start,
                end=_iso_expr(end) if end else q.end)
    main = rd.query(text, parsed=q, today=today).data
    results = main["results"]
    froms = [iv["valid_from"] for r in results for iv in r["intervals"]]
    lo = main["from"] or (min(froms) if froms else today.isoformat())
    hi = main["to"] or max([today.isoformat()] + froms)
    if lo >= hi:
        # the next day, or the last one there is (a chart of 9999-12-31 alone)
        hi = (dt.date.fromisoformat(lo) + dt.timedelta(days=1)).isoformat() \
            if lo < dt.date.max.isoformat() else lo
    titles = _titles(rd)
    data = ChartData("history", q.render(), lo, hi)  # canonical, showing the range drawn
    data.horizon = main["horizon"]["known_through"]
    colors: dict[str, str] = {}
    drawn = []
    for r in results:
        points = _steps(r["intervals"], lo, hi)
        if not any(v is not None for _, v in points):
            data.notes.append(f"{r['measure']}: no rate in force to draw")
            continue
        colors[r["measure"]] = PALETTE[len(colors) % len(PALETTE)]
        data.series.append(Series(f"series-{r['measure']}", measure_label(r["measure"], titles),
                                  points, colors[r["measure"]], values=True))
        data.measures.append(r["measure"])
        drawn.append(r)
    if not data.series:
        raise ChartError(f"nothing to draw: no measure of {q.target.render()!r} has a rate "
                         f"in force between {lo} and {hi}")
    if len(drawn) == 1 and drawn[0]["measure"] in titles:
        data.title, data.subtitle = textwrap.shorten(titles[drawn[0]["measure"]], 72,
                                                     placeholder="…"), data.title
    for r in drawn:
        parts = components(r["intervals"], lo, hi)
        if parts and len(drawn) == 1:
            data.components += [Series(f"component-{r['measure']}-{_slug(name)}", name, pts,
                                       COMPONENT_COLORS[i % len(COMPONENT_COLORS)], values=True)
                                for i, (name, pts) in enumerate(parts)]
        elif parts:
            rates = [v for _, pts in parts for _, v in pts if v is not None]
            data.notes.append(f"{r['measure']}: the line is its headline rate; its lists and "
                              f"product rates run from {_num(min(rates))} to "
                              f"{_num(max(rates))} % (chart `history of {r['measure']}` to "
                              f"see each)")
        data.disputed += _disputed_history(r, lo, hi)
    offset_overlaps(data.series + data.components, hi)
    for n, k in enumerate(known):
        other = rd.query(text, parsed=replace(q, known_on=_iso_expr(k)),
                         today=today).data["results"]
        other = [r for r in other if r["measure"] in colors]
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


def _default_start(rd: Snapshot, q, streams: list[str], end: str, known: str | None) -> str:
    """1 January of the year the first all-goods tariff of the pair took effect."""
    firsts = [r.valid_from for s in streams for r in rd.history(s, None, end, known)
              if r.state.get("status") == "in_force" and r.state.get("scope") == "all goods"
              and r.state.get("target") in (q.target, "all")]
    if not firsts:
        # a year back, but never before year 1
        return max(dt.date.fromisoformat(end) - dt.timedelta(days=365),
                   dt.date.min).isoformat() if end >= "0002" else dt.date.min.isoformat()
    return min(firsts)[:4] + "-01-01"


def _totals(rd: Snapshot, q, text, today, streams, start, end, known):
    """[(date, answer data)] at `start` and at every change of any tariff of the imposer."""
    days = {start}
    for s in streams:
        for row in rd.history(s, start, end, known):
            days.update(d for d in (row.valid_from, row.valid_to) if d and start < d < end)
    kq = _iso_expr(known) if known else None
    return [(d, rd.query(text, parsed=replace(q, as_of=_iso_expr(d), known_on=kq),
                         today=today, goods=False).data)
            for d in sorted(days)]


def _build_total(r: Snapshot, q, text, today, known, start, end) -> ChartData:
    main_known = q.known_on.resolve(today).isoformat() if q.known_on else None
    hi = end or (q.as_of.resolve(today).isoformat() if q.as_of else today.isoformat())
    streams = r.tariff_ids(q.imposer)
    lo = start or _default_start(r, q, streams, hi, main_known)
    if lo >= hi:
        raise ChartError(f"the chart would start on {lo}, after its end {hi}: give --from")
    title = f"total tariff by {q.imposer} on {q.target}" + (
        f" known on {main_known}" if main_known else "")
    data = ChartData("total", title, lo, hi)
    data.subtitle = "the sum of the all-goods tariffs in force, each stacked beneath"
    totals = _totals(r, q, text, today, streams, lo, hi, main_known)
    data.horizon = totals[-1][1]["horizon"]["known_through"]
    titles = _titles(r)
    order: list[str] = []  # bands stack in order of first appearance: oldest at the bottom
    for _, d in totals:
        order += [c["measure"] for c in d["components"] if c["measure"] not in order]
    for i, measure in enumerate(order):
        points: list[tuple[str, float | None]] = [
            (day, float(next((c["rate"] for c in d["components"]
                              if c["measure"] == measure), 0))) for day, d in totals]
        data.bands.append(Series(f"band-{measure}", measure_label(measure, titles), points,
                                 PALETTE[i % len(PALETTE)]))
    data.measures = order
    data.series.append(Series("series-total", "total (sum of all-goods tariffs)",
                              [(day, float(d["total"])) for day, d in totals], "#000000",
                              values=True))
    data.disputed += _disputed_total(totals)
    for n, k in enumerate(known):
        kt = _totals(r, q, text, today, streams, lo, hi, k)
        if _runs([(day, d["total"]) for day, d in kt]) == _runs(data.series[0].points):
            data.notes.append(f"total as known on {k}: the same as drawn")
            continue
        data.series.append(Series(f"known-on-{k}-total", f"total as known on {k}",
                                  [(day, float(d["total"])) for day, d in kt], "#000000",
                                  DASHES[n % len(DASHES)]))
    also = totals[-1][1]["also_applies"]
    if also:
        data.notes.append(f"Not in the total — product-specific tariffs on {hi}: " + "; ".join(
            f"{a['measure']} "
            f"{_num(a['rate']) + ' %' if a['rate'] is not None else 'rates by product'}"
            + (f" ({a['scope']})" if a["scope"] else "") for a in also))
    return data


def _build_tariff(r: Snapshot, q, today, known, start, end) -> ChartData:
    """A product's duty: each charged layer a band, the total a line, and the total as known
    on each `--known-on` date dashed over it."""
    main_known = q.known_on.resolve(today).isoformat() if q.known_on else None
    hi = end or (q.end.resolve(today).isoformat() if q.end else today.isoformat())
    lo = start or (q.start.resolve(today).isoformat() if q.start else None)
    lines, info = r.product_lines(q.product, hi, main_known, q.render())
    shares = dict(q.shares)
    items = r.tariff_changes(lines[:1], q.origin, lo, hi, main_known, shares=shares,
                             postal=q.postal)
    if not items:
        raise ChartError(f"no US tariff on {q.product.render()} changes before {hi}")
    lo = lo or items[0]["from"]
    if lo >= hi:
        raise ChartError(f"the chart would start on {lo}, after its end {hi}: give --from")
    code = items[0]["hts"]
    label = f"{info['title']} ({code})" if info.get("title") else f"HTS {code}"
    data = ChartData("total", f"tariff on {label} from {q.origin}" + (
        f" known on {main_known}" if main_known else ""), lo, hi)
    data.subtitle = "additional duties: each charged layer stacked beneath the total"
    data.horizon = r.horizon(main_known)
    titles = _titles(r)
    points_at = [(max(it["from"], lo), it) for it in items]
    order: list[str] = []
    for _, it in points_at:
        order += [l["measure"] for l in it["layers"] if l["applies"] and l["measure"] not in order]
    for i, measure in enumerate(order):
        pts: list[tuple[str, float | None]] = [
            (day, float(next((_part(l) for l in it["layers"]
                              if l["measure"] == measure and l["applies"]), 0)))
            for day, it in points_at]
        data.bands.append(Series(f"band-{measure}", measure_label(measure, titles), pts,
                                 PALETTE[i % len(PALETTE)]))
    data.measures = order
    data.series.append(Series("series-total", "total additional duty",
                              [(day, None if it["total"] is None else float(it["total"]))
                               for day, it in points_at], "#000000", values=True))
    for n, k in enumerate(known):
        kt = r.tariff_changes(lines[:1], q.origin, lo, hi, k, shares=shares, postal=q.postal)
        pts = [(max(it["from"], lo), None if it["total"] is None else float(it["total"]))
               for it in kt]
        if _runs(pts) == _runs(data.series[0].points):
            data.notes.append(f"total as known on {k}: the same as drawn")
            continue
        data.series.append(Series(f"known-on-{k}-total", f"total as known on {k}", pts,
                                  "#000000", DASHES[n % len(DASHES)]))
    if any(not it["complete"] for it in items):
        data.notes.append("some layers' coverage of this code is not known: the total is a "
                          "floor (see `tariff on …`)")
    return data


def _part(layer: dict) -> float:
    rate = float(layer.get("rate") or 0)
    share = layer.get("share_pct")
    return rate * share / 100 if share is not None else rate


def _pair(entry) -> frozenset | None:
    if entry is None or not entry.imposer or not entry.target:
        return None
    return frozenset((entry.imposer, entry.target))


def _disputed_total(totals: list[tuple[str, dict]]) -> list[Disputed]:
    """The total as the disputed reports would have it, where any component is disputed."""
    low, high, sources = [], [], set()
    for day, d in totals:
        extra = 0.0
        for c in d["components"]:
            for claim in c.get("disputed") or ():
                if isinstance(claim.get("rate"), (int, float)) and c.get("rate") is not None:
                    extra += float(claim["rate"]) - float(c["rate"])
                    sources.add(f"{c['measure']} at {_num(claim['rate'])} % "
                                f"({claim.get('source', '?')})")
                    break
        low.append((day, float(d["total"]) if extra else None))
        high.append((day, float(d["total"]) + extra if extra else None))
    if not sources:
        return []
    return [Disputed("disputed-total", "disputed: the total if " + "; ".join(sorted(sources))
                     + " applied", low, high)]


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def markers(r: Snapshot, start: str, end: str, known_on: str | None = None,
            measures: list[str] | None = None) -> list[Marker]:
    """Non-rate developments effective in [start, end] (known by `known_on`), numbered;
    with `measures`, only those that touch them (see `touches`)."""
    evs = r.effective_between(start, end, known_on=known_on, types=MARKER_TYPES)
    if measures is not None:
        linked = {position for position, stream in r.links() if stream in measures}
        cat = {e.stream: e for e in r.catalogue()}
        pairs = {_pair(cat.get(m)) for m in measures} - {None}
        evs = [ev for ev in evs if ev.stream in measures or ev.position in linked
               or (getattr(cat.get(ev.stream), "kind", None) in RELATED_KINDS
                   and _pair(cat.get(ev.stream)) in pairs)]
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
    from timeline.surfaces.chart_figure import draw

    with mpl.rc_context(_rc()):
        fig = draw(data)
        buf = io.BytesIO()
        meta = ({k: None for k in ("Date", "Creator", "Format", "Type")} if fmt == "svg"
                else {"Software": None})
        fig.savefig(buf, format=fmt, metadata=meta, dpi=110)
    out = buf.getvalue()
    if fmt == "svg":
        # set here rather than with rcParams["svg.id"], which matplotlib 3.7 does not have
        out = out.replace(b"<svg ", f'<svg id="{svg_id}" '.encode(), 1)
    return out


def figure(data: ChartData):
    """The matplotlib Figure of a chart (what `render` saves; tests inspect its artists)."""
    mpl = _matplotlib()
    from timeline.surfaces.chart_figure import draw

    with mpl.rc_context(_rc()):
        return draw(data)


# -- files and the command ------------------------------------------------------------------
def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ChartError(f"cannot write a chart to {str(path)!r}: the file name must end in "
                         f"{' or '.join(FORMATS)}")
    return suffix[1:]


def write_chart(r: Snapshot, query_text: str, path, *, today: dt.date, known_on=(),
                start: str | None = None, end: str | None = None) -> ChartData:
    """Draw `query_text` into `path` (.svg or .png), replacing it atomically."""
    path = Path(path)
    fmt = _format(path)
    _matplotlib()  # fail before running any query when the extra is missing
    data = build(r, query_text, today=today, known_on=known_on, start=start, end=end)
    content = render(data, fmt)
    try:  # a failure never leaves half a chart
        write_atomic(path, content)
    except OSError as exc:
        raise ChartError(f"cannot write {path}: {exc.strerror or exc}") from None
    return data


def chart_to_tempfile(r: Snapshot, query_text: str, today: dt.date, *, suffix: str = ".svg",
                      **options) -> Path:
    """Draw `query_text` into a new temporary file (for the REPL's `\\chart`) and return it;
    `options` are write_chart's (known_on, start, end)."""
    fd, name = tempfile.mkstemp(prefix="timeline-chart-", suffix=suffix)
    os.close(fd)
    try:
        write_chart(r, query_text, name, today=today, **options)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def configure_chart(p) -> None:
    """Arguments of `timeline chart`."""
    p.add_argument("query", help='a history or total query, e.g. "total tariff by us on cn"')
    _options(p, output_required=True)


def _options(p, *, output_required: bool) -> None:
    """The options `timeline chart` and the REPL's `\\chart` share."""
    p.add_argument("-o", "--output", required=output_required, metavar="FILE",
                   help="the chart file to write: FILE.svg or FILE.png")
    p.add_argument("--known-on", action="append", default=[], metavar="DATE",
                   help="also draw the series as known on DATE, dashed, with a vertical line "
                        "at DATE (repeatable)")
    p.add_argument("--from", dest="start", metavar="DATE",
                   help="start of the time axis (default: the query's, or the data's)")
    p.add_argument("--to", dest="end", metavar="DATE",
                   help="end of the time axis (default: the query's, or today)")


class _OptionParser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit the whole REPL
        raise ChartError(f"\\chart: {message}")


OPTION_START = re.compile(r"(?:^|\s)(?=(?:-o|--output|--known-on|--from|--to)(?:[\s=]|$))")


def parse_chart_args(text: str) -> tuple[str, argparse.Namespace]:
    """`<query> [-o FILE] [--known-on DATE]… [--from DATE] [--to DATE]` (the REPL's
    `\\chart`): the query, then the options `timeline chart` takes."""
    m = OPTION_START.search(text)
    query, rest = (text[:m.start()], text[m.start():]) if m else (text, "")
    p = _OptionParser(prog="\\chart", add_help=False)
    _options(p, output_required=False)
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ChartError(f"\\chart: {exc} in {rest.strip()!r}") from None
    opts = p.parse_args(words)
    if not query.strip():
        raise ChartError("\\chart: no query before the options, e.g. \\chart total tariff "
                         "by us on cn -o total.png")
    return query.strip(), opts


def viewer_command(path: Path, env=None) -> list[str] | None:
    """The desktop command that shows `path` (open on macOS, xdg-open where a display
    is), or None: then only the path is printed."""
    env = os.environ if env is None else env
    if sys.platform == "darwin":
        return ["open", str(path)]
    if (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        return ["xdg-open", str(path)]
    return None


def open_in_viewer(path: Path, env=None) -> bool:
    """Start the desktop viewer on `path` without waiting for it; False if there is none."""
    cmd = viewer_command(path, env)
    if cmd is None:
        return False
    try:
        # detached and silent: the shell goes on at once, the viewer's chatter stays out
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return False
    return True


def run_chart(args) -> int:
    """Draw one history or total query into an SVG or PNG file."""
    path = Path(args.output)
    _format(path)
    _matplotlib()
    with open_timeline(args, readonly=True) as tl, tl.snapshot() as s:
        data = write_chart(s, args.query, path, today=dt.date.today(),
                           known_on=args.known_on, start=args.start, end=args.end)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {path}: {len(data.series) + len(data.bands)} series, "
          f"{len(data.markers)} markers, {data.start} to {data.end}")
    return 0
