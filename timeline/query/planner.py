"""Planning and running queries: a parsed query becomes parameterised reads over projections.

User text never reaches SQL as a string: measure ids, dates, field paths and values are all
bound parameters (field names are also checked against a pattern by the grammar).
"""
from __future__ import annotations

import datetime as dt
import decimal
import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, overload

from timeline.errors import QueryError
from timeline.projections.fold import ended
from timeline.projections.reader import (ENUM_FIELDS, EVENT_FIELDS, INTERVAL_FIELDS,
                                         MEASURE_FIELDS, Reader, StateRow)
from timeline.query.suggest import country_code, suggest
from timeline.query.syntax import (BoolExpr, DateExpr, FirstQuery, DiffQuery, EventsQuery,
                                   HistoryQuery, MeasuresQuery, PRESENT, Pos, StateQuery, Target,
                                   TotalQuery, leaves)

@dataclass
class Context:
    """Session settings a query falls back on: today's date and default as-of/known-on."""

    today: dt.date = field(default_factory=dt.date.today)
    as_of: DateExpr | None = None
    known_on: DateExpr | None = None
    # `total` names the product groups paying otherwise (a product answer per group, five
    # times the total's own cost): callers that only want the sum (charts, the export's
    # totals, the briefing's headline) leave it out
    goods: bool = True
    # `explain` lists the SQL statements it ran (`timeline query --sql`); JSON always has them
    sql: bool = False


@dataclass
class Answer:
    """A query's result: the stable JSON shape, a table view, and what explain shows."""

    kind: str
    data: dict
    columns: list[str]
    rows: list[list[Any]]
    plan: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    bounds: tuple[str | None, str | None] = (None, None)  # (until, known_on) for explain
    text: str | None = None  # preformatted table view, when rows do not fit a grid
    summary_rows: int = 0  # trailing rows that summarise the others (the TOTAL line)


def answer(r: Reader, query, text: str, ctx: Context | None = None) -> Answer:
    """Plan and run a parsed query (not `explain`, see timeline.query.execute) on a Reader."""
    ctx = ctx or Context()
    try:
        return _HANDLERS[type(query)](r, query, text, ctx)
    except QueryError as exc:
        if exc.query:
            raise
        # date resolution knows the position but not the text: add it so the caret shows
        raise QueryError(exc.message, query=text, line=exc.line, column=exc.column,
                         expected=exc.expected, hint=exc.hint) from None


def horizon(r: Reader, known: str | None) -> str | None:
    """The knowledge horizon of an answer: `known on K` is K, else the log's own."""
    return known or r.horizon()


def _past(day: str | None, h: str | None) -> bool:
    return h is not None and day is not None and day > h


def _past_warning(label: str, day: str | None, h: str | None) -> list[str]:
    if not _past(day, h):
        return []
    return [f"{label} {day} is after the knowledge horizon {h}: nothing later is known, "
            f"so the answer is projected"]


def _rests_warning(measure: str, since: str, h: str | None, r: Reader | None = None,
                   ids: list[str] | None = None) -> str:
    """A projected state's warning, naming the scheduled change it rests on when `ids`
    (the events that started its interval) are given."""
    named = ""
    if r is not None and ids:
        found = r.events_by_id(ids)
        # a retitling names the measure, it changes nothing an answer rests on
        titles = [f"{i} ({found[i].payload.get('title')!r})" for i in ids
                  if i in found and found[i].type != "retitled"]
        named = f" scheduled by {'; '.join(titles)}" if titles else ""
    return (f"{measure}: the state since {since} rests on a change{named} due after the "
            f"knowledge horizon {h} that no later event confirms (projected)")


def _finish(ans: Answer, h: str | None, warnings: list[str], flags: list[bool],
            notes: list[str] | None = None) -> Answer:
    """Every answer carries its horizon and warnings; a `projected` column (and JSON flag)
    marks the rows that rest on what was not yet known; notes say what qualifies a state
    (an uncertain date, a single source, a tariff that does not stack)."""
    ans.data["horizon"] = {"known_through": h}
    ans.data["warnings"] = list(dict.fromkeys(warnings))
    if notes:
        ans.data["notes"] = list(dict.fromkeys(notes))
    ans.data["projected"] = any(flags)
    if any(flags):
        ans.columns = ans.columns + ["projected"]
        ans.rows = [row + ["yes" if f else ""] for row, f in zip(ans.rows, flags)]
    return ans


@overload
def _date(expr: DateExpr, ctx: Context, fallback: DateExpr | None = None,
          default_today: bool = False) -> str: ...
@overload
def _date(expr: DateExpr | None, ctx: Context, fallback: DateExpr | None = None, *,
          default_today: Literal[True]) -> str: ...
@overload
def _date(expr: DateExpr | None, ctx: Context, fallback: DateExpr | None = None,
          default_today: bool = False) -> str | None: ...
def _date(expr: DateExpr | None, ctx: Context, fallback: DateExpr | None = None,
          default_today: bool = False) -> str | None:
    expr = expr or fallback
    if expr is None:
        return ctx.today.isoformat() if default_today else None
    return expr.resolve(ctx.today).isoformat()


def resolve_targets(r: Reader, target: Target, text: str) -> list[str]:
    """Streams a target names; an unknown exact id is a QueryError with a suggestion."""
    if target.is_glob:
        found = r.match_streams(target.pattern)
        if found:
            return found
        # a pattern that matches nothing is a misspelling far more often than a question
        guess = suggest(target.pattern, _glob_shapes(target.pattern, r.all_streams()))
        raise QueryError(f"no measure matches {target.pattern!r}", query=text,
                         line=target.pos.line, column=target.pos.column,
                         hint=f"did you mean '{guess}'?" if guess else
                         "list measures with: measures")
    if r.stream_exists(target.pattern):
        return [target.pattern]
    guess = suggest(target.pattern, r.all_streams())
    raise QueryError(f"unknown measure {target.pattern!r}", query=text, line=target.pos.line,
                     column=target.pos.column,
                     hint=f"did you mean '{guess}'?" if guess else
                     "list measures with: measures")


def _glob_shapes(pattern: str, streams) -> set[str]:
    """Each stream cut to the pattern's number of parts, with `*` where the pattern has one:
    the globs a misspelt pattern may have meant ("us.tarif.*" -> "us.tariff.*")."""
    parts = pattern.split(".")
    shapes = set()
    for s in streams:
        have = s.split(".")
        if len(have) >= len(parts):
            shapes.add(".".join("*" if "*" in p else h for p, h in zip(parts, have)))
    return shapes


def _did_you_mean(word: str, candidates, what: str) -> str:
    guess = suggest(word, candidates)
    if guess:
        return f"did you mean {guess!r}?"
    listed = sorted(set(candidates))
    return f"known {what}: " + ", ".join(listed[:12]) + (", …" if len(listed) > 12 else "")


def check_conditions(r: Reader, conditions, form: str, text: str) -> None:
    """A `where` naming a field no {form} has, or an enumerated value that never occurs in
    the log, is a QueryError at its position: it would otherwise answer an empty table."""
    columns = EVENT_FIELDS if form == "events" else MEASURE_FIELDS + INTERVAL_FIELDS
    keys: dict[str, set[str]] = {}
    for c in leaves(conditions):
        name = c.field.lower()
        parts = name.split(".")
        # a bare `payload` is not a field name: the reader says how to name one
        if name not in columns and name != "payload":
            if parts[0] == "payload" and len(parts) > 1:
                where, key = ("payload" if form == "events" else "state"), parts[1]
            else:
                where, key = ("set" if form == "events" else "state"), parts[0]
            if where not in keys:
                keys[where] = r.json_keys(where)
            if key not in keys[where]:
                noun = "event" if form == "events" else "measure"
                names = list(columns) + (sorted(keys[where]) if where != "payload" else
                                         [f"payload.{k}" for k in sorted(keys[where])])
                raise QueryError(f"unknown field {c.field!r}: no {noun} in the log has it",
                                 query=text, line=c.pos.line, column=c.pos.column,
                                 hint=_did_you_mean(c.field, names, "fields"))
        if name in ENUM_FIELDS and c.op in ("=", "!=") and isinstance(c.value, str):
            values = r.field_values(name)
            if c.value not in values:
                pos = c.value_pos or c.pos
                named = country_code(c.value, values) if name in ("imposer", "target") \
                    else None
                raise QueryError(f"unknown {name} {c.value!r}: it never occurs in the log",
                                 query=text, line=pos.line, column=pos.column,
                                 hint=(f"did you mean {named!r}? jurisdictions are written "
                                       f"as codes" if named else
                                       _did_you_mean(c.value, values, "values")))


def check_jurisdiction(r: Reader, code: str, pos, text: str) -> None:
    """An imposer or target code no measure uses is a QueryError (not a total of 0)."""
    codes = set(r.field_values("imposer")) | set(r.field_values("target"))
    if code not in codes:
        pos = pos or Pos(1, 1)
        named = country_code(code, codes)
        raise QueryError(f"unknown jurisdiction {code!r}: no measure is imposed by or on it",
                         query=text, line=pos.line, column=pos.column,
                         hint=(f"did you mean {named!r}? jurisdictions are written as codes"
                               if named else _did_you_mean(code, codes, "jurisdictions")))


def _state_row_cells(row: StateRow | None, measure: str, refundable: bool = False) -> list[Any]:
    if row is None:
        return [measure, None, None, None, None, None, None]
    s = row.state
    extra = _extra(s)
    if refundable and _collects(s):
        extra = "refundable" + (" | " + extra if extra else "")
    return [measure, s.get("rate"), s.get("status"), s.get("legal_status"), row.valid_from,
            row.valid_to, extra]


def _collects(state: dict) -> bool:
    """Whether a state charges a rate at entry (a tariff in force with a rate)."""
    return state.get("kind") == "tariff" and state.get("rate") is not None \
        and state.get("status") == "in_force"


def _refundable(r: Reader, stream: str, state: dict | None, known: str | None) -> bool:
    """A rate collected under an authority later invalidated, as known on `known`."""
    if not state:
        return False
    return _collects(state) and r.refundable(stream, known)


def _extra(state: dict) -> str:
    skip = {"rate", "status", "legal_status", "imposer", "target", "kind", "scope", "authority"}
    parts = []
    for k in sorted(state):
        if k in skip:
            continue
        v = state[k]
        if k == "scheduled":
            v = "; ".join(f"{it['on']}: " + ("the uncertain change settles" if it.get("settles")
                                              else ", ".join(f"{a}={b}"
                                                             for a, b in it["set"].items()))
                          for it in v)
        elif k == "disputed":
            v = "; ".join(_claims(d) for d in v)
        elif k == "resolved":
            v = "; ".join(f"{_claims(d)} settled as {d['resolution']}" for d in v
                          if d.get("claims"))
        elif isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}: {v}")
    return " | ".join(parts)


STATE_HEADER = ["measure", "rate", "status", "legal_status", "since", "until", "details"]


def run_state(r: Reader, q: StateQuery, text: str, ctx: Context) -> Answer:
    """`state of X as of D [known on K]`."""
    as_of = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    first = None
    if not q.target.is_glob:
        # one lookup answers a known id; only a miss needs the catalogue (to tell
        # "no state yet" from "unknown measure")
        first = r.state(q.target.pattern, as_of, known)
    streams = [q.target.pattern] if first is not None else resolve_targets(r, q.target, text)
    h = horizon(r, known)
    warnings, flags, notes = _past_warning("as of", as_of, h), [], []
    results, rows, ids = [], [], []
    check_conditions(r, q.conditions, "measures", text)
    for s in streams:
        row = first if first is not None else r.state(s, as_of, known)
        if q.conditions and not (row and matches(q.conditions, _record(s, row.state, row))):
            continue
        result = row.as_dict() if row else \
            {"measure": s, "state": None, "since": None, "until": None, "events": []}
        rests = row is not None and _past(row.valid_from, h)
        if rests and row is not None:
            warnings.append(_rests_warning(s, row.valid_from, h, r, row.event_ids))
        flags.append(rests or _past(as_of, h))
        refund = _refundable(r, s, row.state if row else None, known)
        results.append({**result, "projected": flags[-1],
                        **({"refundable": True} if refund else {})})
        rows.append(_state_row_cells(row, s, refund))
        notes += state_notes(s, row.state) if row else []
        ids += row.event_ids if row else []
    plan = [f"state of {len(streams)} measure(s) as of {as_of}"
            + (f", keeping {len(results)} where {_where_text(q.conditions)}"
               if q.conditions else ""),
            f"known on {known}: fold each stream's events known by then" if known else
            "everything known: one indexed lookup per measure in intervals"]
    return _finish(Answer("state", {"query": text, "as_of": as_of, "known_on": known,
                                    "results": results}, STATE_HEADER, rows, plan, ids,
                          streams, (as_of, known)), h, warnings, flags, notes)


def run_history(r: Reader, q: HistoryQuery, text: str, ctx: Context) -> Answer:
    """`history of X [from D] [to D] [known on K]`."""
    start, end = _date(q.start, ctx), _date(q.end, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    if start and end and start > end:
        pos = q.start.pos if q.start else q.pos
        raise QueryError(f"'from' {start} is after 'to' {end}", query=text,
                         line=pos.line, column=pos.column)
    streams = resolve_targets(r, q.target, text)
    h = horizon(r, known)
    warnings = _past_warning("to", end, h)
    check_conditions(r, q.conditions, "measures", text)
    items = []  # (measure, interval, table row, projected), in measure then time order
    refunds: set[str] = set()
    for s in streams:
        ivs = r.history(s, start, end, known)
        if q.conditions:
            ivs = [iv for iv in ivs if matches(q.conditions, _record(s, iv.state, iv))]
        if any(_collects(iv.state) for iv in ivs) and r.refundable(s, known):
            refunds.add(s)
        items += [(s, iv, _state_row_cells(iv, s, s in refunds), _past(iv.valid_from, h))
                  for iv in ivs]
    if q.order is not None or q.limit is not None:
        # the JSON, the table and the warnings all describe the rows kept
        items = _order_rows(items, q, text)
    by_stream: dict[str, list] = {}
    for s, iv, _, projected in items:
        by_stream.setdefault(s, []).append({
            "valid_from": iv.valid_from, "valid_to": iv.valid_to, "rate": iv.state.get("rate"),
            "status": iv.state.get("status"), "legal_status": iv.state.get("legal_status"),
            "state": iv.state, "events": iv.event_ids, "projected": projected,
            **({"refundable": True} if s in refunds and _collects(iv.state) else {})})
        if projected:
            warnings.append(_rests_warning(s, iv.valid_from, h, r, iv.event_ids))
    rows, flags = [i[2] for i in items], [i[3] for i in items]
    results = [{"measure": s, "intervals": ivs} for s, ivs in by_stream.items()]
    plan = [f"history of {len(streams)} measure(s) from {start or 'the beginning'} to "
            f"{end or 'the end'}", f"known on {known}: fold each stream" if known
            else "range scan of intervals by (stream, valid_from)"]
    cited = _citations(r, [i for _, iv, _, _ in items for i in iv.event_ids])
    return _finish(Answer("history", {"query": text, "from": start, "to": end,
                                      "known_on": known, "results": results,
                                      "sources": cited}, STATE_HEADER,
                          rows, plan, [], streams, (end, known)), h, warnings, flags)


def _citations(r: Reader, ids: list[str]) -> dict[str, dict]:
    """Each event id's title and citation (source name, quote, url): an answer's sources,
    one click away."""
    found = r.events_by_id(ids)
    keys = ("name", "quote", "url", "reference", "document")
    return {i: {"title": ev.payload.get("title"),
                **{k: ev.source[k] for k in keys if isinstance(ev.source, dict)
                   and ev.source.get(k)}}
            for i, ev in found.items()}


def run_diff(r: Reader, q: DiffQuery, text: str, ctx: Context) -> Answer:
    """`diff X between D1 and D2 [known on K]`: field changes between two dates."""
    first, second = _date(q.first, ctx), _date(q.second, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    streams = resolve_targets(r, q.target, text)
    h = horizon(r, known)
    warnings = _past_warning("between … and", max(first, second), h)
    results: list[dict] = []
    rows: list[list[Any]] = []
    flags: list[bool] = []
    check_conditions(r, q.conditions, "measures", text)
    if q.fields:
        known_fields = set(r.json_keys("state"))
        for name, pos in zip(q.fields, q.fields_pos or [q.pos] * len(q.fields)):
            if name not in known_fields:
                raise QueryError(f"unknown field {name!r}: no measure in the log has it",
                                 query=text, line=pos.line, column=pos.column,
                                 hint=_did_you_mean(name, known_fields, "fields"))
    for s in streams:
        a = r.state(s, first, known)
        b = r.state(s, second, known)
        if q.conditions and not any(x and matches(q.conditions, _record(s, x.state, x))
                                    for x in (a, b)):
            continue  # kept when its state on either date matches
        rests = [x.valid_from for x in (a, b) if x is not None and _past(x.valid_from, h)]
        warnings += [_rests_warning(s, d, h) for d in rests]
        projected = bool(rests) or _past(max(first, second), h)
        sa, sb = (a.state if a else {}), (b.state if b else {})
        keys = q.fields or sorted(set(sa) | set(sb))
        changes = [{"field": k, "before": sa.get(k), "after": sb.get(k)}
                   for k in keys if sa.get(k) != sb.get(k)]
        appeared = not sa and bool(sb)
        ended_ = bool(sa) and (not sb or (not ended(sa) and ended(sb)))
        results.append({"measure": s, "before_exists": a is not None,
                        "after_exists": b is not None, "appeared": appeared,
                        "ended": ended_, "changes": changes, "projected": projected})
        if not changes:
            continue
        if (appeared or ended_) and not q.fields:
            # one line: a new measure's every field would bury the changes of the others
            label = "(appears)" if appeared else "(ends)"
            rows.append([s, label, _summary(sa), _summary(sb)])
            flags.append(projected)
            continue
        rows += [[s, c["field"], _cell(c["before"]), _cell(c["after"])] for c in changes]
        flags += [projected] * len(changes)
    plan = [f"state of {len(streams)} measure(s) on {first} and on {second}; compare fields"]
    return _finish(Answer("diff", {"query": text, "first": first, "second": second,
                                   "known_on": known, "results": results},
                          ["measure", "field", "before", "after"], rows, plan, [], streams,
                          (max(first, second), known)), h, warnings, flags)


def _summary(state: dict) -> str:
    """A one-line sketch of a state: its rate (or last rate) and status."""
    if not state:
        return ""
    parts = [f"{k}={state[k]}" for k in ("rate", "last_rate", "announced_rate",
                                         "threatened_rate", "status", "legal_status")
             if state.get(k) is not None]
    return ", ".join(parts) or "(no rate or status)"


def _cell(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v


def run_total(r: Reader, q: TotalQuery, text: str, ctx: Context) -> Answer:
    """`total tariff by A on B as of D`: sum of all-goods tariffs in force."""
    as_of = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    check_jurisdiction(r, q.imposer, q.imposer_pos, text)
    check_jurisdiction(r, q.target, q.target_pos, text)
    check_conditions(r, q.conditions, "measures", text)
    candidates = r.tariff_streams(q.imposer)
    components: list[dict[str, Any]] = []
    also: list[dict[str, Any]] = []
    ids: list[str] = []
    used: list[str] = []
    notes_all: list[str] = []
    for s in candidates:
        row = r.state(s, as_of, known)
        if row is None:
            continue
        st = row.state
        if st.get("target") in (q.target, "all") and st.get("status") == "uncertain":
            notes_all.append(f"{s}: uncertain on {as_of}, not in the total")
            notes_all += state_notes(s, st)
        if st.get("status") != "in_force" or st.get("target") not in (q.target, "all"):
            continue
        if q.conditions and not matches(q.conditions, _record(s, st, row)):
            continue
        rate = st.get("rate")
        rate = rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None
        used.append(s)
        ids += row.event_ids
        item: dict[str, Any] = {"measure": s, "rate": rate, "since": row.valid_from,
                                "events": row.event_ids}
        notes = _total_notes(st)
        if st.get("legal_status") not in (None, "unchallenged"):
            item["legal_status"] = st["legal_status"]
        if st.get("disputed"):
            item["disputed"] = [{**d["claims"], "source": d["source"]} for d in st["disputed"]]
        if st.get("resolved"):
            item["resolved"] = [{**d["claims"], "source": d.get("source"),
                                 "resolution": d["resolution"]} for d in st["resolved"]
                                if d.get("claims")]
        if st.get("confidence"):
            item["confidence"] = st["confidence"]
            notes.append(st["confidence"])
        if st.get("not_stacked_with"):
            item["not_stacked_pattern"] = st["not_stacked_with"]
        if _refundable(r, s, st, known):
            item["refundable"] = True
            notes.append("refundable")
        if st.get("scope") == "all goods" and rate is not None:
            components.append(item)
            item["notes"] = notes
        else:
            # product tariffs, and tariffs whose rates are stated per product group
            item.update({"scope": st.get("scope"), "rates": st.get("rates"), "notes": notes})
            also.append(item)
    notes_all += _non_stacking(components, also)
    # rates add as the decimals they are written in: binary floats make 0.1 + 0.2 into
    # 0.30000000000000004, which a reader should not see nor the export's decimal(18, 6) hold
    exact = sum((decimal.Decimal(repr(c["rate"])) for c in components), decimal.Decimal(0))
    total = _plain(exact)
    refundable = _plain(sum((decimal.Decimal(repr(c["rate"])) for c in components
                             if c.get("refundable")), decimal.Decimal(0)))
    if refundable:
        notes_all.append(f"of the TOTAL {_fmt_rate(total)}, {_fmt_rate(refundable)} was "
                         f"collected under an authority later invalidated: refundable (net "
                         f"{_fmt_rate(_plain(exact - decimal.Decimal(repr(refundable))))})")
    rows = [[c["measure"], c["rate"], "; ".join(["all goods"] + c["notes"])]
            for c in components]
    rows += [[a["measure"], a["rate"], "; ".join(
        ["also applies to some goods" + (f": {a['scope']}" if a["scope"] else "")]
        + ([f"rates: {a['rates']}"] if a["rate"] is None and a.get("rates") else [])
        + a["notes"])] for a in also]
    rows.append(["TOTAL", total, f"{q.imposer} on {q.target} as of {as_of}"])
    h = horizon(r, known)
    warnings = _past_warning("as of", as_of, h)
    flags = [_past(c["since"], h) or _past(as_of, h) for c in components + also]
    warnings += [_rests_warning(c["measure"], c["since"], h, r, c["events"])
                 for c in components + also
                 if _past(c["since"], h)]
    for c, f in zip(components + also, flags):
        c["projected"] = f
    flags.append(any(flags) or _past(as_of, h))
    plan = [f"tariff measures imposed by {q.imposer!r}: {len(candidates)}",
            f"keep those in force on {as_of} targeting {q.target!r} or 'all'",
            "sum rates of 'all goods' measures; list product-specific ones separately"]
    return _finish(Answer("total", {"query": text, "as_of": as_of, "known_on": known,
                                    "imposer": q.imposer, "target": q.target, "total": total,
                                    "refundable": refundable,
                                    "components": components, "also_applies": also},
                          ["measure", "rate", "scope"], rows, plan, ids, used, (as_of, known),
                          summary_rows=1), h, warnings, flags, notes_all)


def _plain(d: decimal.Decimal) -> int | float:
    """A decimal sum as the plain number JSON shows (an int when whole)."""
    return int(d) if d == d.to_integral_value() else float(d)


def _non_stacking(components: list[dict], also: list[dict]) -> list[str]:
    """Mark a tariff that does not stack on others (`not_stacked_with`) and the in-force
    measures it gives way to; the total stays the rate of goods under none of them."""
    notes = []
    for item in components + also:
        pattern = item.pop("not_stacked_pattern", None)
        if not pattern:
            continue
        others = [o for o in components + also
                  if o is not item and fnmatch.fnmatchcase(o["measure"], pattern)]
        if not others:
            continue
        item["not_stacked_with"] = [o["measure"] for o in others]
        item["notes"] = item.get("notes", []) + [f"not on goods under {pattern}"]
        for o in others:
            o["notes"] = o.get("notes", []) + [f"{item['measure']} not added"]
        paid = ", ".join(f"{o['measure']} {_fmt_rate(o['rate'])}" for o in others)
        notes.append(f"{item['measure']} does not stack on {pattern}: goods under {paid} pay "
                     f"that rate instead of {_fmt_rate(item['rate'])}; the TOTAL is for goods "
                     f"under none of them")
    return notes


def _fmt_rate(rate) -> str:
    if rate is None:
        return "(rates per product)"
    return f"{int(rate) if float(rate).is_integer() else rate}%"


_LEGAL_NOTES = {"ruled_unlawful": "ruled unlawful", "stayed": "ruled unlawful; stayed",
                "invalidated": "invalidated"}


def _total_notes(state: dict) -> list[str]:
    """What a total's reader must know of a component: legal status, disputed values."""
    notes = []
    if state.get("legal_status") in _LEGAL_NOTES:
        notes.append(_LEGAL_NOTES[state["legal_status"]])
    for d in state.get("disputed") or ():
        notes.append(f"disputed: {_claims(d)}")
    for d in state.get("resolved") or ():
        if d.get("claims"):
            notes.append(f"dispute resolved: {_claims(d)} settled as {d['resolution']}")
    return notes


def _claims(d: dict) -> str:
    """A disputed report's claims and source: `rate=15 (BDO; UHY)`."""
    return ", ".join(f"{k}={v}" for k, v in d["claims"].items()) + f" ({d.get('source')})"


def state_notes(measure: str, state: dict) -> list[str]:
    """One line per qualifier of a state: an uncertain date, the sources' confidence."""
    notes = []
    u = state.get("uncertain")
    if isinstance(u, dict):
        if u.get("was") != u.get("becomes"):
            change = f"{u.get('was') or 'no status'} → {u.get('becomes') or 'no status'}"
        else:
            change = "a change of " + (", ".join(u.get("fields") or ()) or "its state")
        words = f" ({u['qualifier']})" if u.get("qualifier") else ""
        if u.get("between"):
            a, b = u["between"]
            notes.append(f"{measure}: uncertain: {change} on a day between {a} and {b}{words}; "
                         f"in effect from {b}")
        if u.get("known_between"):
            a, b = u["known_between"]
            notes.append(f"{measure}: uncertain: {change} became public between {a} and "
                         f"{b}{words}; known from {b}")
    for entry in state.get("unconfirmed") or ():
        if isinstance(entry, dict):
            fields = ", ".join(entry.get("fields") or ()) or "the event itself"
            notes.append(f"{measure}: {entry.get('confidence')}: {fields} rest on event "
                         f"{entry.get('event')}")
    return notes


def run_events(r: Reader, q: EventsQuery, text: str, ctx: Context) -> Answer:
    """`events [for X] [from D] [to D] [where …] [limit n]`."""
    streams = resolve_targets(r, q.target, text) if q.target is not None else None
    check_conditions(r, q.conditions, "events", text)
    order = _check_order(q.order, EVENT_FIELDS, text)
    evs = r.events(streams=streams, start=_date(q.start, ctx), end=_date(q.end, ctx),
                   conditions=_conditions(q.conditions), limit=q.limit, order=order)
    results = [{**ev.as_dict(), "title": ev.title} for ev in evs]
    rows = [[ev.effective, ev.known, ev.stream, ev.type, ev.title, ev.source.get("name")]
            for ev in evs]
    return _finish(Answer("events", {"query": text, "results": results},
                          ["effective", "known", "measure", "type", "title", "source"], rows,
                          ["scan events (filters as bound parameters), order by effective, "
                           "known, position"], [ev.id for ev in evs], []),
                   horizon(r, None), [], [])


def run_measures(r: Reader, q: MeasuresQuery, text: str, ctx: Context) -> Answer:
    """`measures [as of D] [known on K] [where …] [order by F] [limit n]`: the catalogue
    with each measure's state on D (default today, or the REPL's \\asof) as known on K."""
    day = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    check_conditions(r, q.conditions, "measures", text)
    order = _check_order(q.order, MEASURE_FIELDS, text)
    if known is None:
        results = r.measures_on(day, _conditions(q.conditions))
    else:
        results = []
        for e in r.catalogue():
            row = r.state(e.stream, day, known)
            if row is None:
                continue  # not known by then (or not begun): no state to show
            st = row.state
            d = {"measure": e.stream, "kind": e.kind, "imposer": e.imposer, "target": e.target,
                 "scope": e.scope, "title": e.title, "events": e.version,
                 "first_effective": e.first_effective, "last_change": e.last_change,
                 "rate": st.get("rate"), "status": st.get("status"),
                 "legal_status": st.get("legal_status"), "since": row.valid_from,
                 "confidence": st.get("confidence")}
            if not q.conditions or matches(q.conditions, {**_record(e.stream, st, row), **d}):
                results.append(d)
    if order is not None:
        results = _sorted(results, lambda d: d.get(order[0]), order[1])
    if q.limit is not None:
        results = results[:q.limit]
    columns = ["measure", "kind", "imposer", "target", "rate", "status", "events", "title"]
    rows = [[d[c] for c in columns] for d in results]
    if any(d.get("confidence") for d in results):
        # only when a listed state rests on a qualified event: most listings have none
        columns.append("confidence")
        rows = [row + [d.get("confidence")] for row, d in zip(rows, results)]
    h = horizon(r, known)
    flags = [_past(day, h) or _past(d["since"], h) for d in results]
    for d, f in zip(results, flags):
        d["projected"] = f
    warnings = _past_warning("as of", day, h) + [
        _rests_warning(d["measure"], d["since"], h) for d in results if _past(d["since"], h)]
    return _finish(Answer("measures", {"query": text, "as_of": day, "known_on": known,
                                       "results": results},
                          columns, rows,
                          [f"catalogue joined with each measure's interval in force on {day}"
                           if known is None else
                           f"catalogue; each measure's state on {day} folded as known on {known}"]),
                   h, warnings, flags)


HISTORY_ORDER = ("measure", "rate", "status", "legal_status", "since", "until")


def _order_rows(items: list, q: HistoryQuery, text: str) -> list:
    """The (measure, interval, row, projected) items of a history, ordered by `order by`
    (a column of the table) and cut at `limit`."""
    order = _check_order(q.order, HISTORY_ORDER, text)
    if order is not None:
        col = STATE_HEADER.index(order[0])
        items = _sorted(items, lambda item: item[2][col], order[1])
    return items[:q.limit] if q.limit is not None else items


def _check_order(order, fields, text: str) -> tuple[str, bool] | None:
    """`order by` a field the form can sort on, or a QueryError with a suggestion."""
    if order is None:
        return None
    name = order.field.lower()
    if name not in fields:
        raise QueryError(f"cannot order by {order.field!r}", query=text, line=order.pos.line,
                         column=order.pos.column, hint=_did_you_mean(order.field, fields,
                                                                     "fields"))
    return name, order.descending


def _sorted(items: list, key, descending: bool) -> list:
    """Stable sort by `key`, values missing (None) last either way; numbers before text."""
    present = [i for i in items if key(i) is not None]
    missing = [i for i in items if key(i) is None]
    typed = lambda i: (0, key(i), "") if isinstance(key(i), (int, float)) else (1, 0, str(key(i)))  # noqa: E731
    return sorted(present, key=typed, reverse=descending) + missing


def run_first(r: Reader, q: FirstQuery, text: str, ctx: Context) -> Answer:
    """`first date where X <condition> [from D] [known on K]`: for each measure, the first
    day (on or after D) its state matches — "since when has the rate been at least 100 %?"."""
    start = _date(q.start, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    streams = resolve_targets(r, q.target, text)
    check_conditions(r, q.conditions, "measures", text)
    h = horizon(r, known)
    results, rows, flags, warnings = [], [], [], []
    for s in streams:
        for iv in r.history(s, start, None, known):
            if matches(q.conditions, _record(s, iv.state, iv)):
                day = max(iv.valid_from, start) if start else iv.valid_from
                projected = _past(day, h)
                results.append({"measure": s, "date": day, "until": iv.valid_to,
                                "state": iv.state, "events": iv.event_ids,
                                "projected": projected})
                rows.append([s, day, iv.valid_to, iv.state.get("rate"), iv.state.get("status")])
                flags.append(projected)
                warnings += [_rests_warning(s, day, h)] if projected else []
                break
    plan = [f"history of {len(streams)} measure(s) from {start or 'the beginning'}; "
            f"the first interval whose state matches {_where_text(q.conditions)}"]
    return _finish(Answer("first", {"query": text, "from": start, "known_on": known,
                                    "results": results},
                          ["measure", "date", "until", "rate", "status"], rows, plan, [],
                          streams, (None, known)), h, warnings, flags)


def _conditions(conds) -> list[tuple]:
    """Conditions as the Reader's where trees: (field, op, value) or (op, [trees])."""
    return [(c.op, _conditions(c.items)) if isinstance(c, BoolExpr) else (c.field, c.op, c.value)
            for c in conds]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lookup(record: dict, field: str):
    value: Any = record
    for part in field.lower().removeprefix("payload.").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _leaf(c, record: dict) -> bool | None:
    """One condition on an in-memory state, with the SQL filter's semantics (None: unknown)."""
    actual = _lookup(record, c.field)
    if c.op == PRESENT:  # a bare field: it has a value, as SQL's IS NOT NULL (never unknown)
        return actual is not None
    want = c.value.isoformat() if isinstance(c.value, dt.date) else c.value
    if actual is None or isinstance(actual, (dict, list)):
        return None
    if c.op == "contains":
        return str(want).translate(_ASCII_LOWER) in str(actual).translate(_ASCII_LOWER)
    if isinstance(want, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return None  # a number never equals text (PostgreSQL casts it to NULL)
    else:
        actual = str(actual)
    return {"=": actual == want, "!=": actual != want, "<": actual < want,
            "<=": actual <= want, ">": actual > want, ">=": actual >= want}[c.op]


def matches(conds, record: dict) -> bool | None:
    """Kleene three-valued `and` of `conds` (conditions and BoolExprs) on a state record."""
    return _eval("and", conds, record)


def _eval(op: str, items, record: dict) -> bool | None:
    vals = [_eval(c.op, c.items, record) if isinstance(c, BoolExpr) else _leaf(c, record)
            for c in items]
    if op == "not":
        return None if vals[0] is None else not vals[0]
    if op == "and":
        return False if False in vals else (None if None in vals else True)
    return True if True in vals else (None if None in vals else False)


def _where_text(conds) -> str:
    return MeasuresQuery(tuple(conds), Pos(1, 1)).render().removeprefix("measures where ")


def _record(measure: str, state: dict | None, row=None) -> dict:
    """A state as `where` reads it: its fields, the measure's id, the interval's bounds
    (`since`, `until`) and, for `scheduled`, the date of the next scheduled change — what
    the SQL filter of `measures` reads too (Reader.measures_on)."""
    record = {**(state or {}), "measure": measure, "stream": measure}
    if row is not None:
        record.update(since=row.valid_from, until=row.valid_to)
    pending = record.get("scheduled")
    if isinstance(pending, list):
        record["scheduled"] = pending[0].get("on") if pending else None
    return record


_HANDLERS: dict[type, Callable[..., Answer]] = {
             StateQuery: run_state, HistoryQuery: run_history, DiffQuery: run_diff,
             TotalQuery: run_total, EventsQuery: run_events, MeasuresQuery: run_measures,
             FirstQuery: run_first}
