"""`report.html`: one self-contained page summarising the timeline on a date, for snapshots.

The page has the total tariff charts both ways (inline SVG), the state of every measure,
the developments of the last 30 days and, at the end, every event the page cites with its
dates, source and verbatim quote; every value links to the events that set it. Nothing is
fetched: no scripts, no external style sheets, fonts or images, and source URLs are shown
as text rather than links. The output depends only on the log and the two dates (no
timestamps, stable order, fixed SVG hash salt), so two exports of one log are identical.
"""
from __future__ import annotations

import datetime as dt
import html
import os
import re
from pathlib import Path

from timeline.errors import TimelineError
from timeline.projections.reader import Reader, StateRow
from timeline.query.execute import run
from timeline.query.parser import parse
from timeline.query.planner import Context
from timeline.surfaces import chart

REPORT = "report.html"
WINDOW_DAYS = 30
# (imposer, target, heading) of the total charts, in page order
TOTALS = (("us", "cn", "US tariffs on goods from China"),
          ("cn", "us", "China's tariffs on goods from the US"))
MAIN_FIELDS = ("rate", "status", "legal_status")
# state keys copied from the catalogue or shown elsewhere: not repeated under "details"
HIDDEN_FIELDS = set(MAIN_FIELDS) | {"imposer", "target", "kind"}

CSS = """
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 1.5em auto;
  max-width: 1150px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
nav a { margin-right: 1em; }
figure { margin: 1em 0; }
figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.86em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
td.date, td.word { white-space: nowrap; }
td a { color: inherit; text-decoration: underline dotted #888; }
td sup a { color: #1a5fb4; }
tr.total td { font-weight: bold; background: #fafafa; }
.muted { color: #666; }
.note { color: #8a4b00; background: #fff7e6; padding: 0.4em 0.6em; border: 1px solid #f0d9a8; }
.details { font-size: 0.92em; color: #444; }
sup a { text-decoration: none; font-size: 0.8em; }
ol.events li { margin-bottom: 0.9em; }
blockquote { margin: 0.3em 0 0.3em 1em; padding-left: 0.6em; border-left: 3px solid #bbb;
  color: #333; font-style: italic; }
code { font-size: 0.9em; word-break: break-all; }
li:target, tr:target { background: #fff3b0; }
"""


def _e(value) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _rate_cell(rate) -> str:
    return "rates by product" if rate is None else _fmt(rate) + " %"


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return _describe(value)
    return str(value)


def _describe(value) -> str:
    """A readable one-line rendering of a structured state value (lists, tables)."""
    if isinstance(value, list):
        return "; ".join(_describe(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_describe(v)}" for k, v in sorted(value.items()))
    return _fmt(value)


class _Cited:
    """The events the page cites; their numbers are filled in once all are known (`number`)."""

    def __init__(self):
        self.ids: list[str] = []

    def add(self, ids) -> list[str]:
        """Remember `ids` as cited and return them."""
        for i in ids:
            if i not in self.ids:
                self.ids.append(i)
        return list(ids)

    def links(self, value: str, ids) -> str:
        """`value` linked to its first event, followed by a numbered link to each event."""
        if value == "" or not ids:
            return _e(value)
        ids = self.add(ids)
        # a placeholder: the sources list is ordered by date, known only at the end
        sup = ",".join(f'<a href="#ev-{_e(i)}">\x00{_e(i)}\x00</a>' for i in ids)
        return f'<a href="#ev-{_e(ids[0])}">{_e(value)}</a><sup>{sup}</sup>'

    def number(self, page: str, order: list[str]) -> str:
        """`page` with each placeholder replaced by the event's number in `order`."""
        numbers = {i: str(n) for n, i in enumerate(order, 1)}
        return re.sub("\x00([^\x00]+)\x00", lambda m: numbers.get(html.unescape(m.group(1)),
                                                                 "?"), page)


def _provenance(rows: list[StateRow]) -> dict[str, tuple[str, list[str]]]:
    """For each field of the last interval: when it last changed, and the events that did it."""
    prov: dict[str, tuple[str, list[str]]] = {}
    prev: dict = {}
    for r in rows:
        for key in set(prev) | set(r.state):
            if r.state.get(key) != prev.get(key):
                prov[key] = (r.valid_from, list(r.event_ids))
        prev = r.state
    return prov


def _current(r: Reader, stream: str, as_of: str, known_on: str | None):
    """The interval of `stream` in force on `as_of` and the provenance of its fields."""
    hist = r.history(stream, None, as_of, known_on)
    now = [h for h in hist if h.valid_from <= as_of and (h.valid_to is None or h.valid_to > as_of)]
    if not now:
        return None, {}
    return now[0], _provenance([h for h in hist if h.valid_from <= now[0].valid_from])


def _detail(key: str, value, prov: dict, cited: "_Cited") -> str:
    """One `key: value` of a state, linked to its events (schedules and disputes to their own)."""
    if key == "scheduled" and isinstance(value, list):
        items = [cited.links(f"{it.get('on')}: " + ", ".join(
            [f"{k}={_fmt(v)}" for k, v in sorted((it.get("set") or {}).items())]
            + [f"unset {u}" for u in it.get("unset") or []]), [it["by"]] if it.get("by") else [])
            for it in value]
        return "scheduled: " + "; ".join(items)
    if key == "disputed" and isinstance(value, list):
        items = [cited.links(", ".join(f"{k}={_fmt(v)}" for k, v in sorted(
            (d.get("claims") or {}).items())) + f" (reported by {d.get('source', '?')})",
            [d["event"]] if d.get("event") else []) for d in value]
        return "disputed: " + "; ".join(items)
    return f"{_e(key)}: {cited.links(_fmt(value), prov.get(key, ('', []))[1])}"


# -- page sections --------------------------------------------------------------------------
def _inline_svg(svg: bytes, prefix: str) -> str:
    """A chart's SVG made fit to sit in the page: no XML prolog, ids unique to this chart."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    ids = set(re.findall(r'\bid="([^"]+)"', text)) - {prefix}

    def fix(m):
        return m.group(1) + (prefix + "-" + m.group(2) if m.group(2) in ids else m.group(2)) \
            + m.group(3)
    # two charts on one page share matplotlib's default ids (figure_1, clip paths …)
    text = re.sub(r'(\bid=")([^"]+)(")', fix, text)
    text = re.sub(r'(url\(#)([^)]+)(\))', fix, text)
    text = re.sub(r'(href="#)([^"]+)(")', fix, text)
    # scale with the page: drop the fixed size in points, the viewBox keeps the proportions
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)


def _chart_section(r: Reader, imposer: str, target: str, heading: str, as_of: str,
                   known_on: str | None, cited: _Cited) -> str:
    query = f"total tariff by {imposer} on {target}" + (
        f" known on {known_on}" if known_on else "")
    slug = f"total-{imposer}-{target}"
    out = [f'<h3 id="{slug}">{_e(heading)}</h3>']
    try:
        data = chart.build(r, query, today=dt.date.fromisoformat(as_of), end=as_of)
        svg = chart.render(data, "svg", svg_id=f"chart-{slug}")
        out.append(f'<figure id="fig-{slug}" aria-label="{_e(data.title)}">'
                   f'{_inline_svg(svg, f"chart-{slug}")}<figcaption class="muted">'
                   f'<code>{_e(query)}</code>, {_e(data.start)} to {_e(data.end)}; the numbered '
                   f'lines are the developments listed under the chart.</figcaption></figure>')
    except chart.ChartError as exc:
        out.append(f'<p class="note" id="fig-{slug}">Chart not drawn: {_e(exc)}</p>')
    text = f"total tariff by {imposer} on {target} as of {as_of}" + (
        f" known on {known_on}" if known_on else "")
    ans = run(r, parse(text), text, Context(today=dt.date.fromisoformat(as_of))).data
    rows, total_ids = [], []
    for c in ans["components"] + ans["also_applies"]:
        # link the rate to the events that set it, not to whatever last touched the measure
        since, ids = _current(r, c["measure"], as_of, known_on)[1].get(
            "rate", (c["since"], c["events"]))
        scope = "all goods" if c in ans["components"] else f"not in the total: {c['scope']}"
        total_ids += ids if c in ans["components"] else []
        rows.append(f'<tr><td><a href="#m-{_e(c["measure"])}">{_e(c["measure"])}</a></td>'
                    f'<td class="num">{cited.links(_rate_cell(c["rate"]), ids)}</td>'
                    f'<td>{_e(scope)}</td><td class="date">{_e(since)}</td></tr>')
    rows.append(f'<tr class="total"><td>total on {_e(as_of)}</td><td class="num">'
                f'{cited.links(_fmt(ans["total"]) + " %", total_ids)}</td>'
                f'<td>sum of the all-goods tariffs</td><td></td>'
                f'</tr>')
    out.append(f'<table class="total" id="table-{slug}"><thead><tr><th>measure</th>'
               f'<th>rate</th><th>scope</th><th>rate since</th></tr></thead><tbody>'
               + "".join(rows) + "</tbody></table>")
    return "\n".join(out)


def _catalogue(r: Reader) -> dict[str, tuple]:
    return {m.stream: (m.kind, m.title) for m in r.catalogue()}


def _state_section(r: Reader, as_of: str, known_on: str | None, cited: _Cited) -> str:
    cat = _catalogue(r)
    rows = []
    for stream in r.all_streams():
        kind, title = cat.get(stream, (None, None))
        cur, prov = _current(r, stream, as_of, known_on)
        head = (f'<td><b>{_e(stream)}</b><br/><span class="muted">{_e(title)}</span></td>'
                f'<td>{_e(kind)}</td>')
        if cur is None:
            rows.append(f'<tr id="m-{_e(stream)}">{head}<td colspan="6" class="muted">no state '
                        f'on {_e(as_of)}</td></tr>')
            continue
        cells = [f'<td class="{"num" if f == "rate" else "word"}">'
                 f'{cited.links(_fmt(cur.state.get(f)), prov.get(f, ("", []))[1])}</td>'
                 for f in MAIN_FIELDS]
        details = "<br/>".join(_detail(k, cur.state[k], prov, cited)
                               for k in sorted(cur.state) if k not in HIDDEN_FIELDS)
        rows.append(f'<tr id="m-{_e(stream)}">{head}{"".join(cells)}'
                    f'<td class="date">{cited.links(cur.valid_from, cur.event_ids)}</td>'
                    f'<td class="date">{_e(cur.valid_to or "")}</td>'
                    f'<td class="details">{details}</td></tr>')
    return ('<table id="state-table"><thead><tr><th>measure</th><th>kind</th><th>rate</th>'
            '<th>status</th><th>legal status</th><th>since</th><th>until</th><th>details</th>'
            '</tr></thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>")


def _developments_section(r: Reader, as_of: str, known_on: str | None, cited: _Cited) -> str:
    day = dt.date.fromisoformat(as_of)
    # clamped near year 1, where there are fewer than WINDOW_DAYS days before `as_of`
    back = min(WINDOW_DAYS, (day - dt.date.min).days)
    start_day = day - dt.timedelta(days=back)
    start = start_day.isoformat()
    after = (start_day + dt.timedelta(days=1) if back == WINDOW_DAYS else start_day).isoformat()
    rows = r.effective_between(after, as_of, known_on=known_on,
                               exclude_types=("retraction", "correction"))
    intro = (f'<p class="muted">Events effective after {_e(start)} up to and including '
             f'{_e(as_of)}.</p>')
    if not rows:
        return intro + f'<p id="developments-none">No developments recorded in these ' \
                       f'{WINDOW_DAYS} days.</p>'
    body = "".join(
        f'<tr><td class="date">{_e(ev.effective)}</td><td>{_e(ev.type)}</td>'
        f'<td>{_e(ev.stream)}</td><td>{cited.links(ev.title, [ev.id])}</td></tr>'
        for ev in rows)
    return (intro + '<table id="developments-table"><thead><tr><th>effective</th><th>type</th>'
            '<th>measure</th><th>development</th></tr></thead><tbody>' + body
            + "</tbody></table>")


def event_item(number: int, row) -> str:
    """One cited event as a list item: dates, type, measure, title, source and quote."""
    payload, source = row.payload, row.source
    dates = [f"effective {row.effective}"]
    if row.announced:
        dates.append(f"announced {row.announced}")
    dates.append(f"known {row.known}")
    parts = [f'<li id="ev-{_e(row.id)}" value="{number}"><b>{_e(payload.get("title", ""))}'
             f'</b><br/><span class="muted">{_e(", ".join(dates))} · {_e(row.type)} · '
             f'{_e(row.stream)}</span>']
    src = source.get("name", "")
    if source.get("outlet"):
        src += f" ({source['outlet']})"
    parts.append(f"<br/>Source: {_e(src)}")
    for key, label in (("published", "published"), ("document", "document"),
                       ("file", "file"), ("reference", "reference")):
        if source.get(key):
            parts.append(f" · {label}: <code>{_e(source[key])}</code>")
    if source.get("url"):
        # shown, not linked: the page must not lead the browser anywhere outside it
        parts.append(f' · url: <code class="url">{_e(source["url"])}</code>')
    if source.get("quote"):
        parts.append(f"<blockquote>{_e(source['quote'])}</blockquote>")
    if payload.get("note"):
        parts.append(f'<div class="muted">Note: {_e(payload["note"])}</div>')
    return "".join(parts) + "</li>"


def _sources_section(r: Reader, cited: _Cited) -> tuple[str, list[str]]:
    """The list of cited events in log order (effective date, then position), and that order."""
    rows = r.events_by_id(cited.ids)
    order = sorted(rows, key=lambda i: (rows[i].effective, rows[i].known, rows[i].position))
    items = [event_item(n, rows[i]) for n, i in enumerate(order, 1)]
    return ('<p class="muted">Every event this page links to, by effective date, numbered as in '
            'the links.</p><ol class="events">\n' + "\n".join(items) + "\n</ol>", order)


def render_report(r: Reader, as_of: str, known_on: str | None = None) -> str:
    """The whole report page as a string."""
    head = r.head()
    cited = _Cited()
    knowledge = (f"as known on {known_on}" if known_on else "with everything in the log")
    charts = "\n".join(_chart_section(r, a, b, h, as_of, known_on, cited)
                       for a, b, h in TOTALS)
    state = _state_section(r, as_of, known_on, cited)
    developments = _developments_section(r, as_of, known_on, cited)
    sources, order = _sources_section(r, cited)
    log = (f"log head: position {head.position}, hash <code>{_e(head.hash[:16])}</code>"
           if head.position else "the log is empty")
    title = f"US–China tariff timeline on {as_of}"
    return cited.number(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="muted">State on {_e(as_of)}, {_e(knowledge)}; {log}. Each value links to the
events that set it, listed with their sources at the end of the page.</p>
<nav><a href="#totals">Total tariffs</a><a href="#state">State of every measure</a>
<a href="#developments">Last {WINDOW_DAYS} days</a><a href="#sources">Events and sources</a></nav>
</header>
<section id="totals">
<h2>Total tariffs</h2>
{charts}
</section>
<section id="state">
<h2>State of every measure on {_e(as_of)}</h2>
{state}
</section>
<section id="developments">
<h2>Developments of the last {WINDOW_DAYS} days</h2>
{developments}
</section>
<section id="sources">
<h2>Events and sources</h2>
{sources}
</section>
</body>
</html>
""", order)


def write_report(r: Reader, out_dir, as_of: str, known_on: str | None = None,
                 since: str | None = None) -> list[str]:
    """Write `report.html` into `out_dir` (an export writer) and return its file name."""
    if isinstance(as_of, dt.date):
        as_of = as_of.isoformat()
    if isinstance(known_on, dt.date):
        known_on = known_on.isoformat()
    page = render_report(r, as_of, known_on)
    path = Path(out_dir) / REPORT
    try:
        with path.open("w", encoding="utf-8", newline="\n") as f:
            f.write(page)
            f.flush()
            # the export fsyncs each file before its manifest names it
            os.fsync(f.fileno())
    except OSError as exc:
        raise TimelineError(f"cannot write {path}: {exc.strerror or exc}") from None
    return [REPORT]
