"""What each page reads, through the public API (`timeline.api.Timeline`).

Every read runs inside one read snapshot (`Timeline.snapshot`, or the one a single query
opens), bounded by `--timeout`; the pages' row limits are applied here. The briefing's
facts and the completion catalogue read several things from one `tl.snapshot()`, as
`timeline report` and the REPL do.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

from timeline import api
from timeline.errors import QueryError
from timeline.surfaces import briefing
from timeline.surfaces.completion import Catalogue, load_catalogue
from timeline.surfaces.serve.svg import Series, legend, step_chart

AFTER_HORIZON_DAYS = 180  # how far past the horizon the charts and sliders reach


@dataclass
class Facts:
    """What the pages need about the log as a whole, read once per head."""

    head: str
    first: str  # the earliest effective date of any measure
    horizon: str | None
    catalogue: Catalogue
    event_types: list[str] = field(default_factory=list)

    @property
    def last(self) -> str:
        """The last day the sliders and charts reach: the horizon plus half a year."""
        base = dt.date.fromisoformat(self.horizon or dt.date.today().isoformat())
        return (base + dt.timedelta(days=AFTER_HORIZON_DAYS)).isoformat()


class Cache:
    """Facts of the current head; read again when the head moves (another process loaded)."""

    def __init__(self, tl: api.Timeline):
        self.tl, self._lock = tl, threading.Lock()
        self._facts: Facts | None = None

    def facts(self) -> Facts:
        """The log's facts, re-read only when its head hash changed."""
        head = self.tl.head.hash
        with self._lock:
            if self._facts is None or self._facts.head != head:
                with self.tl.snapshot() as s:
                    cat = load_catalogue(s)
                    firsts = [m.first_effective for m in s.catalogue() if m.first_effective]
                    self._facts = Facts(head, min(firsts, default="2018-01-01"), s.horizon(),
                                        cat, list(cat.values.get("type", ())))
            return self._facts


def home(tl: api.Timeline, day: str, known: str | None) -> dict:
    """The briefing for `day` as known on `known`: headline totals, goods, changes, due."""
    month = briefing.days_before(day, 30)
    with tl.snapshot() as s:
        totals = [(briefing.total(s, a, b, day, known), briefing.total(s, a, b, month, known))
                  for a, b in briefing.PAIRS]
        goods = briefing.product_lines(s, day, known)
        changes = briefing.state_changes(s, month, day, known)
        fresh = briefing.new_events(s, month, day, known)
        due = briefing.coming_up(s, day, known)
        titles = {m.stream: m.title for m in s.catalogue()}
        horizon = s.horizon(known)
    return {"totals": totals, "goods": goods, "changes": changes, "fresh": fresh, "due": due,
            "titles": titles, "since": month, "horizon": horizon}


def ask(tl: api.Timeline, q: str, *, as_of: str | None, known: str | None,
        explain: bool, today: dt.date | None = None) -> api.Result:
    """One query of the language, with the page's as-of and known-on where it has none."""
    return tl.query(q, as_of=as_of, known_on=known, explain=explain, today=today)


def product(tl: api.Timeline, facts: Facts, name: str, on: str, known: str | None) -> dict:
    """A good's layers on `on` as known on `known`, and its stacked history chart."""
    answer = tl.tariff(name, on=on, known_on=known)
    end = max(facts.last, on)
    now = tl.tariff_history(name, start=facts.first, end=end)
    lines = answer.data.get("lines") or []
    hts = lines[0]["hts"] if lines else None
    changes = [c for c in now.data.get("changes", []) if c.get("hts") == hts]
    measures = list(dict.fromkeys(layer["measure"] for c in changes for layer in c["layers"]
                                  if layer.get("applies", True)))
    series = [Series(m, [(c["from"], _applied_rate(c, m)) for c in changes], stacked=True)
              for m in measures]
    series.append(Series("total, as known today", [(c["from"], c["total"]) for c in changes]))
    if known:
        then = tl.tariff_history(name, start=facts.first, end=end, known_on=known)
        series.append(Series(f"total, as known on {known}",
                             [(c["from"], c["total"]) for c in then.data.get("changes", [])
                              if c.get("hts") == hts], dashed=True))
    duty = [c["from"] for c in changes if c["total"]]
    start = lead_in(min([*duty[:1], on, *([known] if known else [])]), facts.first)
    title = f"Duty on {name} ({hts}) from China"
    svg = step_chart(series, start, end, horizon=facts.horizon, marker=on, title=title)
    return {"answer": answer, "chart": svg, "legend": legend(series), "hts": hts,
            "chart_start": start, "chart_end": end}


def lead_in(day: str, first: str, days: int = 120) -> str:
    """Where a chart starts: some months before `day`, not before the log's first date."""
    return max(first, (dt.date.fromisoformat(day) - dt.timedelta(days=days)).isoformat())


def _applied_rate(change: dict, measure: str) -> float:
    for layer in change["layers"]:
        if layer["measure"] == measure and layer.get("applies", True):
            return layer.get("rate") or 0
    return 0


def measure(tl: api.Timeline, facts: Facts, stream: str, known: str | None,
            limit: int) -> dict:
    """A measure's history (as known on `known`), its chart and its events with sources."""
    hist = tl.query(f"history of {stream}" + (f" known on {known}" if known else ""))
    results = hist.data.get("results") or []
    if not results or "*" in stream:
        raise QueryError(f"unknown measure {stream!r}")
    events = tl.query(f"events for {stream} limit {limit + 1}")
    series = [Series("rate" + (f", as known on {known}" if known else ""),
                     _interval_points(results[0]["intervals"]), dashed=bool(known))]
    if known:
        latest = tl.query(f"history of {stream}")
        series.insert(0, Series("rate, as known today",
                                _interval_points(latest.data["results"][0]["intervals"])))
    starts = [p for s in series for p, v in s.points if v is not None] or [facts.first]
    svg = step_chart(series, lead_in(min(starts), facts.first), facts.last,
                     horizon=facts.horizon,
                     title=f"{stream}: rate")
    rows = events.data.get("results") or []
    return {"history": hist, "events": rows[:limit], "more": len(rows) > limit,
            "chart": svg, "legend": legend(series),
            "has_rate": any(v is not None for s in series for _, v in s.points)}


def _interval_points(intervals: list[dict]) -> list[tuple[str, float | None]]:
    pts: list[tuple[str, float | None]] = []
    for iv in intervals:
        rate = iv.get("rate")
        pts.append((iv["valid_from"], rate if isinstance(rate, (int, float)) else None))
        if iv.get("valid_to"):
            pts.append((iv["valid_to"], None))
    out: dict[str, float | None] = {}
    for d, v in pts:  # a gap's end and the next start on one day: the start wins
        if d not in out or v is not None:
            out[d] = v
    return sorted(out.items())


def events_query(kind: str, glob: str, known_from: str | None, known_to: str | None,
                 limit: int) -> str:
    """The `events` query the events page's filters mean (checked values only)."""
    q = "events" + (f" for {glob}" if glob else "")
    conds = ([f"type = {kind}"] if kind else []) + \
        ([f"known >= {known_from}"] if known_from else []) + \
        ([f"known <= {known_to}"] if known_to else [])
    if conds:
        q += " where " + " and ".join(conds)
    return q + f" limit {limit + 1}"
