"""`where` conditions compiled to bound SQL by SQLAlchemy Core, for both backends.

The two reads that filter in SQL (the `events` query and the catalogue on a day, for
`measures ... where`) build their statements here; the Reader imports this module only
when it runs them, so every other read (and the CLI's start-up) stays on the driver.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import (JSON, Float, Integer, Numeric, String, and_, case, cast, func, not_,
                        or_, select, type_coerce)

from timeline.errors import TimelineError
from timeline.log.schema import events, intervals, measures
from timeline.projections.fields import EVENT_COLUMNS, MEASURE_COLUMNS, STATE_COLUMNS


def events_statement(dialect: str, streams: Sequence[str] | None, start: str | None,
                     end: str | None, conditions: Sequence[tuple[str, str, Any]],
                     limit: int | None, order: tuple[str, bool] | None):
    """The `events` query's statement (Reader.events)."""
    e, m = events.c, measures.c
    stmt = select(events).outerjoin(measures, m.stream == e.stream)
    if streams is not None:
        stmt = stmt.where(e.stream.in_(list(streams)))
    if start:
        stmt = stmt.where(e.effective >= start)
    if end:
        stmt = stmt.where(e.effective <= end)
    cols = {c: e[c] for c in EVENT_COLUMNS}
    cols.update({c: m[c] for c in MEASURE_COLUMNS})
    source, payload = _json_col(dialect, e.source), _json_col(dialect, e.payload)
    cols["source"] = _json_path(source, ["name"], False)
    cols["quote"] = _json_path(source, ["quote"], False)
    cols["title"] = _json_path(payload, ["title"], False)
    for cond in conditions:
        stmt = stmt.where(_tree(cond, lambda c: _condition(c, cols, payload, ["set"],
                                                           dialect)))
    if order is not None:
        key = cols[order[0].lower()]
        # NULLs last both ways and on both backends (they differ by default)
        stmt = stmt.order_by((key.desc() if order[1] else key.asc()).nulls_last())
    stmt = stmt.order_by(e.effective, e.known, e.position)
    if limit is not None:
        stmt = stmt.limit(_in_range(limit, "events limit"))
    return stmt


def measures_statement(dialect: str, day: str, conditions: Sequence[tuple[str, str, Any]]):
    """The catalogue joined with each measure's interval in force on `day`, filtered
    (Reader.measures_on)."""
    m, i = measures.c, intervals.c
    cur = select(intervals).where(i.valid_from <= day,
                                  or_(i.valid_to.is_(None), i.valid_to > day)).subquery()
    stmt = select(measures, cur.c.rate, cur.c.status, cur.c.legal_status, cur.c.state,
                  cur.c.valid_from) \
        .outerjoin(cur, cur.c.stream == m.stream)
    cols: dict[str, Any] = {c: m[c] for c in MEASURE_COLUMNS}
    cols.update({"measure": m.stream, "stream": m.stream, "events": m.version,
                 "first_effective": m.first_effective, "last_change": m.tail_date})
    cols.update({c: cur.c[c] for c in STATE_COLUMNS})
    state = _json_col(dialect, cur.c.state)
    # the interval's bounds, and the date of the next scheduled change (the planner's
    # in-memory filter reads the same: timeline.query.planner._record)
    cols.update({"since": cur.c.valid_from, "until": cur.c.valid_to,
                 "scheduled": _json_path(state, ["scheduled", 0, "on"], False)})
    for cond in conditions:
        stmt = stmt.where(_tree(cond, lambda c: _condition(c, cols, state, [], dialect)))
    return stmt.order_by(m.stream)


def _json_col(dialect: str, col):
    """A JSON-text column as JSON: PostgreSQL needs the text cast to jsonb for paths."""
    if dialect != "postgresql":
        return col
    # imported here: the PostgreSQL dialect package costs SQLite users ~40 ms of start-up
    from sqlalchemy.dialects.postgresql import JSONB

    return cast(col, JSONB)


# -- filters: `where` conditions compiled to bound SQL expressions ----------------------------
def _json_path(col, path: Sequence[str | int], numeric: bool):
    expr = type_coerce(col, JSON)[tuple(path)] if len(path) > 1 else type_coerce(col, JSON)[path[0]]
    if numeric and getattr(col.type, "__visit_name__", "") == "JSONB":
        # PostgreSQL refuses to cast a non-number to float: such values compare as NULL
        return case((func.jsonb_typeof(expr) == "number", expr.as_float()))
    return expr.as_float() if numeric else expr.as_string()


_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


def _ascii_lower(expr, dialect: str):
    """`expr` with A-Z folded to a-z and nothing else: SQLite's lower() does exactly that,
    PostgreSQL's folds every script, so there the same is spelled with translate()."""
    if dialect == "postgresql":
        return func.translate(expr, _UPPER, _LOWER)
    return func.lower(expr)


def _contains(expr, value: Any, dialect: str):
    """`contains`: a substring test that ignores the case of ASCII letters, the same on
    every backend (docs/query-language.md)."""
    text_ = str(value).translate(str.maketrans(_UPPER, _LOWER))
    return _ascii_lower(expr, dialect).contains(text_, autoescape=True)


def _compare(expr, op: str, value: Any):
    return {"=": expr.__eq__, "!=": expr.__ne__, "<": expr.__lt__, "<=": expr.__le__,
            ">": expr.__gt__, ">=": expr.__ge__}[op](value)


# Whole numbers the databases can bind: SQLite and PostgreSQL integers are 64-bit.
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1  # position, version: INTEGER columns


def _in_range(value, what: str):
    """`value`, or a TimelineError naming it when it is a whole number no backend can bind."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise TimelineError(f"{what} {value} is out of range: whole numbers must be between "
                            f"{INT_MIN} and {INT_MAX}")
    return value


def _tree(node, leaf):
    """A `where` tree — (field, op, value) leaves under ('and'|'or'|'not', [nodes]) — as SQL;
    NULLs follow SQL's three-valued logic, which the planner's in-memory filter mirrors."""
    if len(node) == 2:
        op, items = node
        parts = [_tree(i, leaf) for i in items]
        return not_(parts[0]) if op == "not" else (and_(*parts) if op == "and" else or_(*parts))
    return leaf(node)


def _condition(cond, columns: dict, json_col, json_prefix: list[str], dialect: str):
    """One (field, op, value) condition as a SQL expression; user text is only ever bound."""
    field_, op, value = cond
    value = value.isoformat() if isinstance(value, dt.date) else value
    value = _in_range(value, f"the value compared with {field_}:")
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    name = field_.lower()  # keywords are case-insensitive, so field names are too
    if name in columns:
        expr = columns[name]
    else:
        parts = name.split(".")
        if parts[0] == "payload":
            parts, prefix = parts[1:], []
            if not parts:
                raise TimelineError(f"{field_} needs a field name after it, e.g. "
                                    f"payload.set.rate (the whole payload cannot be compared)")
        else:
            prefix = json_prefix
        expr = _json_path(json_col, prefix + parts, numeric)
    if op == "present":  # a bare field: it has a value (never unknown)
        return expr.is_not(None)
    number_col = field_ in columns and isinstance(expr.type, (Integer, Float, Numeric))
    if number_col and (op == "contains" or not numeric):
        # a number column against text compares as text (PostgreSQL has no implicit cast)
        expr, number_col = cast(expr, String), False
    if number_col and isinstance(expr.type, Integer) and isinstance(value, int) \
            and not INT32_MIN <= value <= INT32_MAX:
        # these columns are 32-bit on PostgreSQL: one range on every backend
        raise TimelineError(f"the value compared with {field_}: {value} is out of range: "
                            f"{field_} is a whole number between {INT32_MIN} and {INT32_MAX}")
    if op == "contains":
        return _contains(expr, value, dialect)
    if numeric and field_ in columns and not number_col:
        value = str(value)
    return _compare(expr, op, value)
