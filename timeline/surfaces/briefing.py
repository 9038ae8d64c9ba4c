"""The facts of the morning briefing, read from a snapshot: headline totals and how they
moved, what changed in a window (scheduled changes that fired included) and what is due.

Pure reads, no HTML: `report.py` renders them. Every date is ISO text; `known_on` None means
everything in the log. Nothing here looks past what the briefing's knowledge date allows:
`coming_up` lists only schedules and events known by then.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from timeline.api import Snapshot, StateRow
from timeline.errors import QueryError

PAIRS = (("us", "cn"), ("cn", "us"))
COMING_DAYS = 90
# keys rebuilt by the fold or copied from the catalogue: not "changes" a reader acts on
QUIET_FIELDS = frozenset({"scheduled", "disputed", "imposer", "target", "kind"})


@dataclass
class Total:
    """A total tariff one way on one day, as known on the briefing's knowledge date."""

    imposer: str
    target: str
    day: str
    total: float | int | None
    projected: bool
    event_ids: list[str] = field(default_factory=list)
    # (measure, since, what, event ids): the states after the knowledge horizon the total
    # rests on, each from a change scheduled before it
    rests_on: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    refundable: float | int = 0  # the part collected under an authority later invalidated


@dataclass
class Change:
    """One measure's state changing on `day`: the fields that moved and the events behind it."""

    day: str
    measure: str
    fields: list[tuple[str, object, object]]
    event_ids: list[str]
    scheduled: bool  # fired by a schedule set earlier, not by an event of that day
    projected: bool  # after the knowledge horizon: nothing confirms it yet
    appears: bool = False


@dataclass
class Due:
    """A change due after the briefing's date: a schedule, or an event already announced."""

    day: str
    measure: str
    what: str
    event_ids: list[str]
    scheduled: bool
    projected: bool
    outcome: str | None = None  # for a past date: whether the log shows it took effect


def total(s: Snapshot, imposer: str, target: str, day: str, known_on: str | None) -> Total:
    """The total tariff by `imposer` on `target` on `day` (None when either side is unknown)."""
    text = f"total tariff by {imposer} on {target} as of {day}" + (
        f" known on {known_on}" if known_on else "")
    try:
        data = s.query(text, today=dt.date.fromisoformat(day), goods=False).data
    except QueryError:
        return Total(imposer, target, day, None, False)
    ids = list(dict.fromkeys(i for c in data["components"] for i in c["events"]))
    return Total(imposer, target, day, data["total"], data["projected"], ids,
                 _rests_on(s, imposer, target, day, known_on) if data["projected"] else [],
                 data.get("refundable") or 0)


def _rests_on(s: Snapshot, imposer: str, target: str, day: str,
              known_on: str | None) -> list[tuple[str, str, str, list[str]]]:
    """The tariffs by `imposer` on `target` whose state on `day` began after the knowledge
    horizon: a projected total is only as good as the changes scheduled for them."""
    h = s.horizon(known_on)
    out = []
    for measure in s.tariff_ids(imposer):
        row = s.state(measure, day, known_on)
        if row is None or h is None or row.valid_from <= h \
                or row.state.get("target") not in (target, "all"):
            continue
        st = row.state
        what = str(st.get("status") or "changed") + (
            f" at {_plain(st['rate'])} %" if st.get("rate") is not None else "")
        out.append((measure, row.valid_from, what, list(row.event_ids)))
    return out


def days_before(day: str, n: int) -> str:
    """`day` minus `n` days, clamped at year 1."""
    d = dt.date.fromisoformat(day)
    return (d - dt.timedelta(days=min(n, (d - dt.date.min).days))).isoformat()


def _fired_by(prev_state: dict | None, day: str) -> str | None:
    """The event that scheduled the change due on `day` in `prev_state`, if one did."""
    for item in (prev_state or {}).get("scheduled") or ():
        if item.get("on") == day:
            return item.get("by") or ""
    return None


def _moved(before: dict, after: dict) -> list[tuple[str, object, object]]:
    keys = sorted((set(before) | set(after)) - QUIET_FIELDS)
    main = [k for k in ("rate", "status", "legal_status") if k in keys]
    rest = [k for k in keys if k not in main]
    return [(k, before.get(k), after.get(k)) for k in main + rest
            if before.get(k) != after.get(k)]


def state_changes(s: Snapshot, start: str, end: str, known_on: str | None) -> list[Change]:
    """Every state change effective in (start, end], scheduled ones included, by date."""
    h = s.horizon(known_on)
    out = []
    for stream in s.measure_ids():
        prev: StateRow | None = None
        for cur in s.history(stream, None, end, known_on):
            if prev is not None and prev.valid_to != cur.valid_from:
                prev = None  # a gap: the measure had no state, so it appears again
            if start < cur.valid_from <= end:
                before = prev.state if prev else {}
                by = _fired_by(before, cur.valid_from)
                moved = _moved(before, cur.state)
                if moved:
                    ids = [by] if by else list(cur.event_ids)
                    out.append(Change(cur.valid_from, stream, moved, ids, by is not None,
                                      h is not None and cur.valid_from > h, prev is None))
            prev = cur
    return sorted(out, key=lambda c: (c.day, c.measure))


def new_events(s: Snapshot, start: str, end: str, known_on: str | None):
    """Events that became known in (start, end] (and by `known_on`), by known date."""
    cut = min(end, known_on) if known_on else end
    return [ev for ev in s.iter_events() if start < ev.known <= cut]


def _describe_set(item: dict) -> str:
    parts = [f"{k} → {_plain(v)}" for k, v in sorted((item.get("set") or {}).items())]
    parts += [f"{u} ends" for u in item.get("unset") or ()]
    return ", ".join(parts) or "(no field changes)"


def _plain(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def coming_up(s: Snapshot, as_of: str, known_on: str | None,
              days: int = COMING_DAYS) -> list[Due]:
    """Changes due in (as_of, as_of + days]: the schedules in force on `as_of` and events
    already announced for those days, as known on the briefing's knowledge date."""
    end = (dt.date.fromisoformat(as_of) + dt.timedelta(days=days)).isoformat() \
        if as_of < "9999-01-01" else "9999-12-31"
    h = s.horizon(known_on)
    out = []
    for stream in s.measure_ids():
        row = s.state(stream, as_of, known_on)
        for item in (row.state.get("scheduled") or ()) if row else ():
            on = item.get("on") or ""
            if not as_of < on <= end:
                continue
            projected = h is None or on > h
            outcome = None
            if not projected:
                then = s.state(stream, on, known_on)
                took = then is not None and all(then.state.get(k) == v for k, v in
                                                (item.get("set") or {}).items())
                outcome = "took effect" if took else "did not take effect as scheduled"
            out.append(Due(on, stream, _describe_set(item), [item["by"]] if item.get("by")
                           else [], True, projected, outcome))
    # announced for a later day and public by the briefing's date: no peeking further
    cut = min(as_of, known_on) if known_on else as_of
    if as_of >= "9999-12-31":
        return sorted(out, key=lambda d: (d.day, d.measure))  # no day after the calendar's end
    after = (dt.date.fromisoformat(as_of) + dt.timedelta(days=1)).isoformat()
    for ev in s.effective_between(after, end, known_on=cut,
                                  exclude_types=("retraction", "correction")):
        out.append(Due(ev.effective, ev.stream, ev.title, [ev.id], False,
                       h is None or ev.effective > h))
    return sorted(out, key=lambda d: (d.day, d.measure))


# the representative goods of the headline table (docs/products.md), in this order
HEADLINE_GROUPS = ("smartphones", "computers", "chips", "steel", "evs", "solar-cells",
                   "furniture", "apparel")


@dataclass
class ProductLine:
    """One product group's duty from China on the briefing's day, as known on its date."""

    group: str
    title: str | None
    hts: str
    total: float | int | None
    before: float | int | None  # 30 days earlier
    complete: bool
    projected: bool
    next_day: str | None = None  # the next change known to be due, within COMING_DAYS
    next_total: float | int | None = None
    event_ids: list[str] = field(default_factory=list)


def product_lines(s: Snapshot, day: str, known_on: str | None,
                  groups=HEADLINE_GROUPS) -> list[ProductLine]:
    """Each headline group's first HTS line: its total on `day`, 30 days before, and the
    next change due (as scheduled by the knowledge date)."""
    titles = s.product_groups()
    h = s.horizon(known_on)
    month = days_before(day, 30)
    end = (dt.date.fromisoformat(day) + dt.timedelta(days=COMING_DAYS)).isoformat() \
        if day < "9999-01-01" else "9999-12-31"
    out = []
    for name in groups:
        if name not in titles:
            continue
        lines = s.group_hts(name, day, known_on)[:1]
        if not lines:
            continue
        now = s.tariff_line(lines[0], "cn", day, known_on)
        then = s.tariff_line(lines[0], "cn", month, known_on)
        later = [it for it in s.tariff_changes(lines, "cn", day, end, known_on)
                 if it["from"] > day]
        ids = [i for l in now["layers"] if l["applies"] for i in l["events"]]
        out.append(ProductLine(name, titles[name], lines[0], now["total"], then["total"],
                               now["complete"], h is not None and day > h,
                               later[0]["from"] if later else None,
                               later[0]["total"] if later else None,
                               list(dict.fromkeys(ids))))
    return out
