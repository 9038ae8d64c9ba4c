"""Planning and running queries: a parsed query becomes parameterised reads over projections.

User text never reaches SQL as a string: measure ids, dates, field paths and values are all
bound parameters (field names are also checked against a pattern by the grammar).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (JSON, Float, Integer, Numeric, String, case, cast, event, func, or_,
                        select, type_coerce)
from sqlalchemy.engine import Connection

from timeline.projections import reader
from timeline.errors import QueryError
from timeline.query.syntax import (DateExpr, DiffQuery, EventsQuery, ExplainQuery, HistoryQuery,
                        MeasuresQuery, StateQuery, Target, TotalQuery)
from timeline.log.schema import events, intervals, measures

EVENT_COLUMNS = ("position", "id", "stream", "version", "type", "effective", "announced",
                 "known", "recorded_at")
MEASURE_COLUMNS = ("kind", "imposer", "target", "scope", "title")
STATE_COLUMNS = ("rate", "status", "legal_status")


@dataclass
class Context:
    """Session settings a query falls back on: today's date and default as-of/known-on."""

    today: dt.date = field(default_factory=dt.date.today)
    as_of: DateExpr | None = None
    known_on: DateExpr | None = None


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


def run(conn: Connection, query, text: str, ctx: Context | None = None) -> Answer:
    """Plan and run a parsed query against an open connection."""
    ctx = ctx or Context()
    try:
        if isinstance(query, ExplainQuery):
            from timeline.query.explain import explain

            return explain(conn, query.query, text, ctx)
        return _HANDLERS[type(query)](conn, query, text, ctx)
    except QueryError as exc:
        if exc.query:
            raise
        # date resolution knows the position but not the text: add it so the caret shows
        raise QueryError(exc.message, query=text, line=exc.line, column=exc.column,
                         expected=exc.expected, hint=exc.hint) from None


def _date(expr: DateExpr | None, ctx: Context, fallback: DateExpr | None = None,
          default_today: bool = False) -> str | None:
    expr = expr or fallback
    if expr is None:
        return ctx.today.isoformat() if default_today else None
    return expr.resolve(ctx.today).isoformat()


def resolve_targets(conn: Connection, target: Target, text: str) -> list[str]:
    """Streams a target names; an unknown exact id is a QueryError with a suggestion."""
    if target.is_glob:
        return reader.match_streams(conn, target.pattern)
    if reader.stream_exists(conn, target.pattern):
        return [target.pattern]
    from timeline.query.parser import suggest

    guess = suggest(target.pattern, reader.all_streams(conn))
    raise QueryError(f"unknown measure {target.pattern!r}", query=text, line=target.pos.line,
                     column=target.pos.column,
                     hint=f"did you mean '{guess}'?" if guess else
                     "list measures with: measures")


def _state_row_cells(row: reader.StateRow | None, measure: str) -> list[Any]:
    if row is None:
        return [measure, None, None, None, None, None, None]
    s = row.state
    return [measure, s.get("rate"), s.get("status"), s.get("legal_status"), row.valid_from,
            row.valid_to, _extra(s)]


def _extra(state: dict) -> str:
    skip = {"rate", "status", "legal_status", "imposer", "target", "kind", "scope", "authority"}
    parts = []
    for k in sorted(state):
        if k in skip:
            continue
        v = state[k]
        if k == "scheduled":
            v = "; ".join(f"{it['on']}: " + ", ".join(f"{a}={b}" for a, b in it["set"].items())
                          for it in v)
        elif k == "disputed":
            v = "; ".join(", ".join(f"{a}={b}" for a, b in d["claims"].items())
                          + f" ({d['source']})" for d in v)
        elif isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}: {v}")
    return " | ".join(parts)


STATE_HEADER = ["measure", "rate", "status", "legal_status", "since", "until", "details"]


def run_state(conn, q: StateQuery, text: str, ctx: Context) -> Answer:
    """`state of X as of D [known on K]`."""
    as_of = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    first = None
    if not q.target.is_glob:
        # one lookup answers a known id; only a miss needs the catalogue (to tell
        # "no state yet" from "unknown measure")
        first = reader.state(conn, q.target.pattern, as_of, known)
    streams = [q.target.pattern] if first is not None else resolve_targets(conn, q.target, text)
    results, rows, ids = [], [], []
    for s in streams:
        row = first if first is not None else reader.state(conn, s, as_of, known)
        results.append(row.as_dict() if row else
                       {"measure": s, "state": None, "since": None, "until": None, "events": []})
        rows.append(_state_row_cells(row, s))
        ids += row.event_ids if row else []
    plan = [f"state of {len(streams)} measure(s) as of {as_of}",
            f"known on {known}: fold each stream's events known by then" if known else
            "everything known: one indexed lookup per measure in intervals"]
    return Answer("state", {"query": text, "as_of": as_of, "known_on": known,
                            "results": results}, STATE_HEADER, rows, plan, ids, streams,
                  (as_of, known))


def run_history(conn, q: HistoryQuery, text: str, ctx: Context) -> Answer:
    """`history of X [from D] [to D] [known on K]`."""
    start, end = _date(q.start, ctx), _date(q.end, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    if start and end and start > end:
        raise QueryError(f"'from' {start} is after 'to' {end}", query=text,
                         line=q.start.pos.line, column=q.start.pos.column)
    streams = resolve_targets(conn, q.target, text)
    results, rows = [], []
    for s in streams:
        ivs = reader.history(conn, s, start, end, known)
        results.append({"measure": s, "intervals": [
            {"valid_from": r.valid_from, "valid_to": r.valid_to, "rate": r.state.get("rate"),
             "status": r.state.get("status"), "legal_status": r.state.get("legal_status"),
             "state": r.state, "events": r.event_ids} for r in ivs]})
        rows += [_state_row_cells(r, s) for r in ivs]
    plan = [f"history of {len(streams)} measure(s) from {start or 'the beginning'} to "
            f"{end or 'the end'}", f"known on {known}: fold each stream" if known
            else "range scan of intervals by (stream, valid_from)"]
    return Answer("history", {"query": text, "from": start, "to": end, "known_on": known,
                              "results": results}, STATE_HEADER, rows, plan, [], streams,
                  (end, known))


def run_diff(conn, q: DiffQuery, text: str, ctx: Context) -> Answer:
    """`diff X between D1 and D2 [known on K]`: field changes between two dates."""
    first, second = _date(q.first, ctx), _date(q.second, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    streams = resolve_targets(conn, q.target, text)
    results, rows = [], []
    for s in streams:
        a = reader.state(conn, s, first, known)
        b = reader.state(conn, s, second, known)
        sa, sb = (a.state if a else {}), (b.state if b else {})
        changes = [{"field": k, "before": sa.get(k), "after": sb.get(k)}
                   for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
        results.append({"measure": s, "before_exists": a is not None,
                        "after_exists": b is not None, "changes": changes})
        rows += [[s, c["field"], _cell(c["before"]), _cell(c["after"])] for c in changes]
    plan = [f"state of {len(streams)} measure(s) on {first} and on {second}; compare fields"]
    return Answer("diff", {"query": text, "first": first, "second": second, "known_on": known,
                           "results": results}, ["measure", "field", "before", "after"], rows,
                  plan, [], streams, (max(first, second), known))


def _cell(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v


def run_total(conn, q: TotalQuery, text: str, ctx: Context) -> Answer:
    """`total tariff by A on B as of D`: sum of all-goods tariffs in force."""
    as_of = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    m = measures.c
    candidates = list(conn.execute(select(m.stream).where(
        m.kind == "tariff", m.imposer == q.imposer).order_by(m.stream)).scalars())
    components, also, ids, used = [], [], [], []
    for s in candidates:
        row = reader.state(conn, s, as_of, known)
        if row is None:
            continue
        st = row.state
        if st.get("status") != "in_force" or st.get("target") not in (q.target, "all"):
            continue
        if not isinstance(st.get("rate"), (int, float)):
            continue
        used.append(s)
        ids += row.event_ids
        if st.get("scope") == "all goods":
            components.append({"measure": s, "rate": st["rate"], "since": row.valid_from,
                               "events": row.event_ids})
        else:
            also.append({"measure": s, "rate": st["rate"], "scope": st.get("scope"),
                         "since": row.valid_from, "events": row.event_ids})
    total = sum(c["rate"] for c in components)
    total = int(total) if float(total).is_integer() else total
    rows = [[c["measure"], c["rate"], "all goods"] for c in components]
    rows += [[a["measure"], a["rate"], f"also applies to some goods: {a['scope']}"] for a in also]
    rows.append(["TOTAL", total, f"{q.imposer} on {q.target} as of {as_of}"])
    plan = [f"tariff measures imposed by {q.imposer!r}: {len(candidates)}",
            f"keep those in force on {as_of} targeting {q.target!r} or 'all'",
            "sum rates of 'all goods' measures; list product-specific ones separately"]
    return Answer("total", {"query": text, "as_of": as_of, "known_on": known, "imposer": q.imposer,
                            "target": q.target, "total": total, "components": components,
                            "also_applies": also}, ["measure", "rate", "scope"], rows, plan,
                  ids, used, (as_of, known))


def _json_col(col, conn: Connection):
    """A JSON-text column as JSON: PostgreSQL needs the text cast to jsonb for path operators."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(col, JSONB)
    return col


def _json_path(col, path: list[str], numeric: bool):
    expr = type_coerce(col, JSON)[tuple(path)] if len(path) > 1 else type_coerce(col, JSON)[path[0]]
    if numeric and getattr(col.type, "__visit_name__", "") == "JSONB":
        # PostgreSQL refuses to cast a non-number to float: such values compare as NULL
        return case((func.jsonb_typeof(expr) == "number", expr.as_float()))
    return expr.as_float() if numeric else expr.as_string()


def _compare(expr, op: str, value: Any):
    if op == "contains":
        return expr.contains(str(value), autoescape=True)
    return {"=": expr.__eq__, "!=": expr.__ne__, "<": expr.__lt__, "<=": expr.__le__,
            ">": expr.__gt__, ">=": expr.__ge__}[op](value)


def _value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date) else v


def _condition(cond, columns: dict, json_col, json_prefix: list[str]):
    value = _value(cond.value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    name = cond.field.lower()  # keywords are case-insensitive, so field names are too
    if name in columns:
        expr = columns[name]
    else:
        parts = name.split(".")
        if parts[0] == "payload":
            parts = parts[1:]
            prefix = []
        else:
            prefix = json_prefix
        expr = _json_path(json_col, prefix + parts, numeric)
    number_col = cond.field in columns and isinstance(expr.type, (Integer, Float, Numeric))
    if number_col and (cond.op == "contains" or not numeric):
        # a number column against text compares as text (PostgreSQL has no implicit cast)
        expr, number_col = cast(expr, String), False
    if cond.op == "contains":
        return _compare(expr, "contains", value)
    if numeric and cond.field in columns and not number_col:
        value = str(value)
    return _compare(expr, cond.op, value)


def run_events(conn, q: EventsQuery, text: str, ctx: Context) -> Answer:
    """`events [for X] [from D] [to D] [where …] [limit n]`."""
    e, m = events.c, measures.c
    stmt = select(events).outerjoin(measures, m.stream == e.stream)
    if q.target is not None:
        streams = resolve_targets(conn, q.target, text)
        stmt = stmt.where(e.stream.in_(streams))
    start, end = _date(q.start, ctx), _date(q.end, ctx)
    if start:
        stmt = stmt.where(e.effective >= start)
    if end:
        stmt = stmt.where(e.effective <= end)
    cols = {c: e[c] for c in EVENT_COLUMNS}
    cols.update({c: m[c] for c in MEASURE_COLUMNS})
    source, payload = _json_col(e.source, conn), _json_col(e.payload, conn)
    cols["source"] = _json_path(source, ["name"], False)
    cols["quote"] = _json_path(source, ["quote"], False)
    cols["title"] = _json_path(payload, ["title"], False)
    for cond in q.conditions:
        stmt = stmt.where(_condition(cond, cols, payload, ["set"]))
    stmt = stmt.order_by(e.effective, e.known, e.position)
    if q.limit is not None:
        stmt = stmt.limit(q.limit)
    from timeline.store.store import row_to_event

    evs = [row_to_event(r) for r in conn.execute(stmt)]
    results = [{**ev.as_dict(), "title": ev.title} for ev in evs]
    rows = [[ev.effective, ev.known, ev.stream, ev.type, ev.title, ev.source.get("name")]
            for ev in evs]
    return Answer("events", {"query": text, "results": results},
                  ["effective", "known", "measure", "type", "title", "source"], rows,
                  ["scan events (filters as bound parameters), order by effective, known, "
                   "position"], [ev.id for ev in evs], [])


def run_measures(conn, q: MeasuresQuery, text: str, ctx: Context) -> Answer:
    """`measures [where …]`: the catalogue with each measure's state today."""
    m, i = measures.c, intervals.c
    today = ctx.today.isoformat()
    cur = select(intervals).where(i.valid_from <= today,
                                  or_(i.valid_to.is_(None), i.valid_to > today)).subquery()
    stmt = select(measures, cur.c.rate, cur.c.status, cur.c.legal_status, cur.c.state) \
        .outerjoin(cur, cur.c.stream == m.stream)
    cols = {c: m[c] for c in MEASURE_COLUMNS}
    cols.update({"measure": m.stream, "stream": m.stream, "events": m.version,
                 "first_effective": m.first_effective, "last_change": m.tail_date})
    cols.update({c: cur.c[c] for c in STATE_COLUMNS})
    for cond in q.conditions:
        stmt = stmt.where(_condition(cond, cols, _json_col(cur.c.state, conn), []))
    stmt = stmt.order_by(m.stream)
    results, rows = [], []
    for r in conn.execute(stmt):
        d = {"measure": r.stream, "kind": r.kind, "imposer": r.imposer, "target": r.target,
             "scope": r.scope, "title": r.title, "events": r.version,
             "first_effective": r.first_effective, "last_change": r.tail_date,
             "rate": r.rate, "status": r.status, "legal_status": r.legal_status}
        results.append(d)
        rows.append([d["measure"], d["kind"], d["imposer"], d["target"], d["rate"], d["status"],
                     d["events"], d["title"]])
    return Answer("measures", {"query": text, "as_of": today, "results": results},
                  ["measure", "kind", "imposer", "target", "rate", "status", "events", "title"],
                  rows, [f"catalogue joined with each measure's interval in force on {today}"])


_HANDLERS = {StateQuery: run_state, HistoryQuery: run_history, DiffQuery: run_diff,
             TotalQuery: run_total, EventsQuery: run_events, MeasuresQuery: run_measures}


class SqlRecorder:
    """Collects the SQL statements (with parameters) run on a connection, for `explain`."""

    def __init__(self, conn: Connection):
        self.conn, self.statements = conn, []

    def __enter__(self):
        event.listen(self.conn, "before_cursor_execute", self._hook)
        self.conn.info[reader.TRACE] = True
        return self

    def __exit__(self, *exc):
        event.remove(self.conn, "before_cursor_execute", self._hook)
        self.conn.info.pop(reader.TRACE, None)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append((" ".join(statement.split()), parameters))

