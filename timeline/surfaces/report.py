"""`report.html`, the morning briefing: one self-contained page that reads in a minute.

Top to bottom: the headline (total tariffs each way, how they moved since the previous
snapshot and over 30 days, the knowledge horizon), what changed since then (state changes,
scheduled ones included, and newly known events), what is due in the next 90 days, the
total charts, the state of every measure (grouped, collapsed, filterable) and every event
with its dates, source and verbatim quote; every value links to the events behind it.
Nothing is fetched: one inline script (the filter, allowed by its hash in the page's
Content-Security-Policy), no external style sheets, fonts or images, and source URLs are
shown as text. The output depends only on the log and the dates (no timestamps, stable
order, fixed SVG hash salt), so two exports of one log are identical.

`timeline report [--as-of D] [--known-on K] [--since D] -o FILE` writes the same page alone.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import os
import re
from pathlib import Path

from timeline.api import Snapshot, StateRow
from timeline.errors import TimelineError
from timeline.files import write_atomic
from timeline.surfaces import briefing, chart
from timeline.surfaces.common import date_arg, open_timeline

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
.tag { font-size: 0.75em; padding: 0.05em 0.4em; border-radius: 0.6em; white-space: nowrap; }
.tag.projected { background: #fde2e1; color: #8b1a10; border: 1px solid #f3b6b0; }
.tag.refundable { background: #fff4d6; color: #6b4e00; border: 1px solid #eed9a0; }
.tag.scheduled { background: #e6effb; color: #1a4f8b; border: 1px solid #b6cdf0; }
#headline-totals td.big { font-size: 1.5em; font-weight: bold; }
#horizon { font-size: 1.05em; }
details.group { margin: 0.3em 0; }
details.group > summary { cursor: pointer; font-weight: bold; padding: 0.2em 0; }
input#state-filter { font-size: 1em; padding: 0.2em 0.4em; width: 22em; }
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


def _current(r: Snapshot, stream: str, as_of: str, known_on: str | None):
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


def _chart_section(r: Snapshot, imposer: str, target: str, heading: str, as_of: str,
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
    ans = r.query(text, today=dt.date.fromisoformat(as_of)).data
    rows: list[str] = []
    total_ids: list[str] = []
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


def _group_label(kind, imposer, target) -> str:
    who = f"{imposer or '?'} → {target or 'all'}" if imposer else "other"
    return f"{kind or 'other'} · {who}"


def _state_section(r: Snapshot, as_of: str, known_on: str | None, cited: _Cited) -> str:
    """Every measure's state, grouped by kind and direction, each group collapsed."""
    h = r.horizon(known_on)
    groups: dict[tuple, list[str]] = {}
    for m in r.catalogue():
        cur, prov = _current(r, m.stream, as_of, known_on)
        head = (f'<td><b>{_e(m.stream)}</b><br/><span class="muted">{_e(m.title)}</span></td>'
                f'<td>{_e(m.kind)}</td>')
        key = (m.kind or "", m.imposer or "", m.target or "")
        if cur is None:
            groups.setdefault(key, []).append(
                f'<tr id="m-{_e(m.stream)}">{head}<td colspan="6" class="muted">no state on '
                f'{_e(as_of)}</td></tr>')
            continue
        cells = [f'<td class="{"num" if f == "rate" else "word"}">'
                 f'{cited.links(_fmt(cur.state.get(f)), prov.get(f, ("", []))[1])}</td>'
                 for f in MAIN_FIELDS]
        details = "<br/>".join(_detail(k, cur.state[k], prov, cited)
                               for k in sorted(cur.state) if k not in HIDDEN_FIELDS)
        flag = PROJECTED if h is not None and (cur.valid_from > h or as_of > h) else ""
        st = cur.state
        if st.get("kind") == "tariff" and st.get("rate") is not None \
                and st.get("status") == "in_force" and r.refundable(m.stream, known_on):
            flag += REFUNDABLE
        groups.setdefault(key, []).append(
            f'<tr id="m-{_e(m.stream)}">{head}{"".join(cells)}'
            f'<td class="date">{cited.links(cur.valid_from, cur.event_ids)}{flag}</td>'
            f'<td class="date">{_e(cur.valid_to or "")}</td>'
            f'<td class="details">{details}</td></tr>')
    out = ['<p><label for="state-filter">Filter measures: </label><input id="state-filter" '
           'type="search" placeholder="e.g. section-301, stayed, rare earths"/> '
           '<span id="state-count" class="muted"></span></p>']
    for (kind, imposer, target), rows in sorted(groups.items()):
        label = _group_label(kind, imposer, target)
        out.append(f'<details class="group" id="group-{_e(kind)}-{_e(imposer)}-{_e(target)}">'
                   f'<summary>{_e(label)} ({len(rows)})</summary>'
                   '<table class="state-table"><thead><tr><th>measure</th><th>kind</th>'
                   '<th>rate</th><th>status</th><th>legal status</th><th>since</th>'
                   '<th>until</th><th>details</th></tr></thead><tbody>\n'
                   + "\n".join(rows) + "\n</tbody></table></details>")
    return "\n".join(out)


PROJECTED = ' <span class="tag projected" title="rests on a change after the knowledge ' \
            'horizon that no event confirms yet">projected</span>'
SCHEDULED = ' <span class="tag scheduled">scheduled</span>'
REFUNDABLE = ' <span class="tag refundable" title="collected at entry under an authority ' \
             'later invalidated: refundable">refundable</span>'


def _delta(now, then) -> str:
    if now is None or then is None:
        return '<span class="muted">–</span>'
    d = now - then
    d = int(d) if float(d).is_integer() else round(d, 4)
    if d == 0:
        return f'no change <span class="muted">({_fmt(then)} %)</span>'
    return f'<b>{"+" if d > 0 else "−"}{_fmt(abs(d))} points</b> <span class="muted">' \
           f'(from {_fmt(then)} %)</span>'


def _headline_section(r: Snapshot, as_of: str, known_on: str | None, since: str, label: str,
                      counts: tuple[int, int, int], cited: _Cited) -> str:
    month = briefing.days_before(as_of, WINDOW_DAYS)
    rows, totals = [], []
    for (imposer, target), (_, _, heading) in zip(briefing.PAIRS, TOTALS):
        now = briefing.total(r, imposer, target, as_of, known_on)
        totals.append((heading, now))
        then = briefing.total(r, imposer, target, since, known_on)
        before = briefing.total(r, imposer, target, month, known_on)
        value = "–" if now.total is None else _fmt(now.total) + " %"
        refund = (f'<br/><span class="muted">of which {_fmt(now.refundable)} % '
                  f'refundable</span>{REFUNDABLE}' if now.refundable else "")
        month_cell = f'<td>{_delta(now.total, before.total)}</td>' if month != since else ""
        rows.append(f'<tr id="headline-{imposer}-{target}"><td>{_e(heading)}</td>'
                    f'<td class="num big">{cited.links(value, now.event_ids)}'
                    f'{PROJECTED if now.projected else ""}{refund}</td>'
                    f'<td>{_delta(now.total, then.total)}</td>{month_cell}</tr>')
    h = r.horizon(known_on)
    if h is None:
        reach = '<p id="horizon">The log is empty: nothing is known.</p>'
    else:
        reach = (f'<p id="horizon">Known through <b>{_e(h)}</b> (the knowledge horizon: the '
                 f'latest date an event became known{" by " + _e(known_on) if known_on else ""}'
                 f').')
        if as_of > h:
            reach += (f' {PROJECTED} The state on {_e(as_of)} is after it: it rests on what was '
                      f'scheduled by {_e(h)}, and nothing later is known.')
        reach += "</p>" + _rests_on(totals, cited)
    goods = _goods_table(r, as_of, known_on, cited)
    changes, known, due = counts
    month_head = f'<th>since {_e(month)} (30 days before)</th>' if month != since else ""
    return (f'<table id="headline-totals"><thead><tr><th>total tariff</th><th>on {_e(as_of)}'
            f'</th><th>since {_e(label)}</th>{month_head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>\n'
            f'<p id="headline-meaning" class="muted">The US total is the duty on goods that no '
            f'product measure or exemption covers; what representative goods pay is below.</p>\n'
            f'{goods}{reach}\n'
            f'<p id="headline-counts"><a href="#changes">{changes} state change'
            f'{"" if changes == 1 else "s"} and {known} newly known event'
            f'{"" if known == 1 else "s"}</a> since {_e(label)}; '
            f'<a href="#coming-up">{due} change{"" if due == 1 else "s"} due</a> in the next '
            f'{briefing.COMING_DAYS} days.</p>')


def _rests_on(totals: list[tuple[str, "briefing.Total"]], cited: _Cited) -> str:
    """What each projected headline total rests on: the scheduled changes after the horizon
    (a projected 0 % is the end of what was scheduled, not a known state)."""
    items = []
    for heading, now in totals:
        for measure, since, what, ids in now.rests_on:
            items.append(f'<li>{_e(heading)}: <a href="#m-{_e(measure)}">{_e(measure)}</a> '
                         f'{cited.links(what, ids)} since {_e(since)}, a change scheduled '
                         f'before the horizon that no later event confirms</li>')
    if not items:
        return ""
    return (f'<div id="headline-rests-on"><p>The projected totals rest on:</p>'
            f'<ul>{"".join(items)}</ul></div>')


def _goods_table(r: Snapshot, as_of: str, known_on: str | None, cited: _Cited) -> str:
    """What eight representative goods from China pay: today, 30 days ago, what is due."""
    lines = briefing.product_lines(r, as_of, known_on)
    if not lines:
        return ""
    rows = []
    for p in lines:
        value = "–" if p.total is None else _fmt(p.total) + " %" + ("" if p.complete else " +")
        due = (f"{_e(p.next_day)}: {_fmt(p.next_total)} %" if p.next_day and
               p.next_total is not None else (_e(p.next_day) if p.next_day else
                                              '<span class="muted">nothing scheduled</span>'))
        rows.append(f'<tr id="goods-{_e(p.group)}"><td>{_e(p.title or p.group)} '
                    f'<span class="muted">HTS {_e(p.hts)}</span></td>'
                    f'<td class="num">{cited.links(value, p.event_ids)}'
                    f'{PROJECTED if p.projected else ""}</td>'
                    f'<td>{_delta(p.total, p.before)}</td><td>{due}</td></tr>')
    return (f'<table id="headline-goods"><thead><tr><th>goods from China</th>'
            f'<th>US duty on {_e(as_of)}</th><th>last 30 days</th><th>next change due</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>\n'
            f'<p class="muted">Additional duties on top of the general (MFN) rate; "+" marks a '
            f'total some layer of which has coverage not known (see <code>tariff on hts …'
            f'</code>).</p>\n')


def _short(value, width: int = 90) -> str:
    text = "(none)" if value is None else _fmt(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def _change_text(c: briefing.Change, title: str | None) -> str:
    """A change in a line: the main fields, else the first two others (the rest counted)."""
    main = [f for f in c.fields if f[0] in MAIN_FIELDS]
    if c.appears:
        what = ", ".join(f"{k} {_short(b)}" for k, _, b in main if b is not None)
        return f"new: {_short(title or c.measure, 70)}" + (f" ({what})" if what else "")
    shown = main or c.fields[:2]
    more = len(c.fields) - len(shown)
    return "; ".join(f"{k} {_short(a, 50)} → {_short(b, 50)}" for k, a, b in shown) + (
        f" (+{more} more field{'s' if more > 1 else ''})" if more else "")


def _changes_section(r: Snapshot, changes, fresh, start: str, as_of: str,
                     cited: _Cited) -> str:
    titles = {m.stream: m.title for m in r.catalogue()}
    out = [f'<p class="muted">Effective after {_e(start)} up to and including {_e(as_of)}; '
           'scheduled changes that fired count.</p>', "<h3>State changes</h3>"]
    if changes:
        body = "".join(
            f'<tr><td class="date">{_e(c.day)}</td><td><a href="#m-{_e(c.measure)}">'
            f'{_e(c.measure)}</a></td><td>{_e(_change_text(c, titles.get(c.measure)))}'
            f'{SCHEDULED if c.scheduled else ""}{PROJECTED if c.projected else ""}</td>'
            f'<td>{cited.links("source", c.event_ids)}</td></tr>' for c in changes)
        out.append('<table id="changes-table"><thead><tr><th>effective</th><th>measure</th>'
                   '<th>change</th><th>source</th></tr></thead><tbody>' + body
                   + "</tbody></table>")
    else:
        out.append(f'<p id="changes-none">No measure changed state after {_e(start)} up to '
                   f'{_e(as_of)}.</p>')
    out.append("<h3>Newly known events</h3>")
    if fresh:
        body = "".join(
            f'<tr><td class="date">{_e(ev.known)}</td><td class="date">{_e(ev.effective)}</td>'
            f'<td>{_e(ev.type)}</td><td>{_e(ev.stream)}</td>'
            f'<td>{cited.links(ev.title, [ev.id])}</td></tr>' for ev in fresh)
        out.append('<table id="new-events"><thead><tr><th>known</th><th>effective</th>'
                   '<th>type</th><th>measure</th><th>event</th></tr></thead><tbody>' + body
                   + "</tbody></table>")
    else:
        out.append(f'<p id="new-events-none">No event became known after {_e(start)} up to '
                   f'{_e(as_of)}.</p>')
    return "\n".join(out)


def _coming_section(due, as_of: str, cited: _Cited) -> str:
    if not due:
        return (f'<p id="coming-none">Nothing is scheduled or announced for the '
                f'{briefing.COMING_DAYS} days after {_e(as_of)}.</p>')
    body = "".join(
        f'<tr><td class="date">{_e(d.day)}</td><td><a href="#m-{_e(d.measure)}">'
        f'{_e(d.measure)}</a></td><td>{_e(d.what)}</td>'
        f'<td>{"scheduled" if d.scheduled else "announced"}'
        f'{PROJECTED if d.projected else ""}'
        f'{" · " + _e(d.outcome) if d.outcome else ""}</td>'
        f'<td>{cited.links("source", d.event_ids)}</td></tr>' for d in due)
    return (f'<p class="muted">Due after {_e(as_of)}, within {briefing.COMING_DAYS} days, as '
            f'known on the briefing\'s date.</p><table id="coming-table"><thead><tr><th>due'
            f'</th><th>measure</th><th>change</th><th>basis</th><th>source</th></tr></thead>'
            f'<tbody>{body}</tbody></table>')


# a source address the page may link: http(s), no spaces, quotes or angle brackets
WEB_URL = re.compile(r"https?://[^\s\"'<>`]+")


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
        url = str(source["url"])
        if WEB_URL.fullmatch(url):
            # a link the reader follows, never a resource the page loads: it opens apart
            # from the briefing and tells the source nothing of where the reader came from
            parts.append(f' · <a class="url" href="{_e(url)}" rel="noopener noreferrer '
                         f'nofollow" referrerpolicy="no-referrer" target="_blank">'
                         f'{_e(url)}</a>')
        else:
            parts.append(f' · url: <code class="url">{_e(url)}</code>')
    if source.get("quote"):
        parts.append(f"<blockquote>{_e(source['quote'])}</blockquote>")
    if payload.get("note"):
        parts.append(f'<div class="muted">Note: {_e(payload["note"])}</div>')
    return "".join(parts) + "</li>"


def _events_section(r: Snapshot, known_on: str | None, cited: _Cited) -> tuple[str, list[str]]:
    """Every event known on the briefing's date (and every one the page cites), by effective
    date, and that order (the numbers of the links)."""
    known = [ev.id for ev in r.iter_events() if known_on is None or ev.known <= known_on]
    rows = r.events_by_id(list(dict.fromkeys(known + cited.ids)))
    order = sorted(rows, key=lambda i: (rows[i].effective, rows[i].known, rows[i].position))
    items = [event_item(n, rows[i]) for n, i in enumerate(order, 1)]
    return ('<p class="muted">Every event known on the briefing\'s date, by effective date, '
            'numbered as in the links.</p><ol class="events">\n' + "\n".join(items)
            + "\n</ol>", order)


# The filter of the state section: the page's only script, inline, allowed by its hash alone.
# `?filter=WORDS` in the page's address fills the box (and lets a test drive it). No `<` or
# `&` in it: the page is also well-formed XML.
FILTER_SCRIPT = """(function () {
  var box = document.getElementById('state-filter');
  function apply() {
    var q = box.value.trim().toLowerCase(), shown = 0;
    document.querySelectorAll('#state details.group').forEach(function (g) {
      var n = 0;
      g.querySelectorAll('tbody tr').forEach(function (tr) {
        var hit = !q || tr.textContent.toLowerCase().indexOf(q) !== -1;
        tr.hidden = !hit;
        if (hit) { n += 1; }
      });
      g.hidden = n === 0;
      if (q) { g.open = n > 0; }
      shown += n;
    });
    document.getElementById('state-count').textContent = q ? shown + ' measures match' : '';
  }
  box.addEventListener('input', apply);
  var wanted = new URLSearchParams(window.location.search).get('filter');
  if (wanted) { box.value = wanted; apply(); }
})();"""
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-"
       + base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode() + "'")


def render_report(r: Snapshot, as_of: str, known_on: str | None = None,
                  since: str | None = None, since_label: str | None = None) -> str:
    """The whole briefing page as a string; changes are counted since `since` (by default
    called the previous snapshot's date), else over the WINDOW_DAYS days before `as_of`."""
    if since is not None and since >= as_of:
        raise TimelineError(f"the changes must start before {as_of}, not on {since}")
    start = since or briefing.days_before(as_of, WINDOW_DAYS)
    label = since_label or (f"the previous snapshot ({start})" if since
                            else f"{start} ({WINDOW_DAYS} days)")
    head = r.head()
    cited = _Cited()
    knowledge = (f"as known on {known_on}" if known_on else "with everything in the log")
    changes = briefing.state_changes(r, start, as_of, known_on)
    fresh = briefing.new_events(r, start, as_of, known_on)
    due = briefing.coming_up(r, as_of, known_on)
    headline = _headline_section(r, as_of, known_on, start, label,
                                 (len(changes), len(fresh), len(due)), cited)
    changed = _changes_section(r, changes, fresh, start, as_of, cited)
    coming = _coming_section(due, as_of, cited)
    charts = "\n".join(_chart_section(r, a, b, h, as_of, known_on, cited)
                       for a, b, h in TOTALS)
    state = _state_section(r, as_of, known_on, cited)
    events_html, order = _events_section(r, known_on, cited)
    log = (f"log head: position {head.position}, hash <code>{_e(head.hash[:16])}</code>"
           if head.position else "the log is empty")
    title = f"US–China tariff briefing for {as_of}"
    return cited.number(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta http-equiv="Content-Security-Policy" content="{CSP}"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="muted">State on {_e(as_of)}, {_e(knowledge)}; {log}. Each value links to the
events that set it, listed with their sources at the end of the page.</p>
<nav><a href="#headline">Headline</a><a href="#changes">Changes</a><a href="#coming-up">Coming
up</a><a href="#totals">Charts</a><a href="#state">Every measure</a><a href="#events">Events
and sources</a></nav>
</header>
<section id="headline">
<h2>Headline</h2>
{headline}
</section>
<section id="changes">
<h2>Changes since {_e(label)}</h2>
{changed}
</section>
<section id="coming-up">
<h2>Coming up: the next {briefing.COMING_DAYS} days</h2>
{coming}
</section>
<section id="totals">
<h2>Total tariffs</h2>
{charts}
</section>
<section id="state">
<h2>State of every measure on {_e(as_of)}</h2>
{state}
</section>
<section id="events">
<h2>Events and sources</h2>
{events_html}
</section>
<script>{FILTER_SCRIPT}</script>
</body>
</html>
""", order)


def write_report(r: Snapshot, out_dir, as_of: str, known_on: str | None = None,
                 since: str | None = None) -> list[str]:
    """Write `report.html` into `out_dir` (an export writer) and return its file name."""
    if isinstance(as_of, dt.date):
        as_of = as_of.isoformat()
    if isinstance(known_on, dt.date):
        known_on = known_on.isoformat()
    page = render_report(r, as_of, known_on, since)
    # the export fsyncs each file before its manifest names it; an OSError goes to the
    # export, which says what is left on disk
    with (Path(out_dir) / REPORT).open("w", encoding="utf-8", newline="\n") as f:
        f.write(page)
        f.flush()
        os.fsync(f.fileno())
    return [REPORT]


# -- the command ----------------------------------------------------------------------------
def configure_report(p) -> None:
    """Arguments of `timeline report`."""
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the page to write (FILE.html), replaced atomically")
    p.add_argument("--as-of", type=date_arg, metavar="DATE",
                   help="the briefing's date, as in queries (default: today)")
    p.add_argument("--known-on", type=date_arg, metavar="DATE",
                   help="use only what was public by this date")
    p.add_argument("--since", type=date_arg, metavar="DATE",
                   help=f"count changes after this date (default: {WINDOW_DAYS} days before)")


def run_report(args) -> int:
    """Write the briefing page for one date into a file."""
    path = Path(args.output)
    if path.is_dir():
        raise TimelineError(f"-o {path} is a folder; name the page to write, e.g. "
                            f"{path / REPORT}")
    as_of = args.as_of or dt.date.today().isoformat()
    with open_timeline(args, readonly=True) as tl, tl.snapshot() as s:
        page = render_report(s, as_of, args.known_on, args.since, args.since)
    try:
        write_atomic(path, page.encode("utf-8"))
    except OSError as exc:
        raise TimelineError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}: briefing for {as_of}"
          + (f" as known on {args.known_on}" if args.known_on else "")
          + f", changes since {args.since or briefing.days_before(as_of, WINDOW_DAYS)}")
    return 0
