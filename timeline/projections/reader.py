"""The read boundary: every query the upper layers run against the log and its projections.

A `Reader` wraps one connection inside one read transaction, so everything it returns
describes one consistent snapshot of the log. It is handed out by `Store.reading()`, which
also translates driver errors (those of the raw-cursor fast path included) into the
package's StoreError family. Default-knowledge reads are indexed lookups on `intervals`;
`known on` reads fold one stream's events with `timeline.projections.fold`, so both share
one definition of the semantics.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import (JSON, Float, Integer, Numeric, String, and_, bindparam, case, cast,
                        event, func, inspect, not_, or_, select, text, type_coerce)
from sqlalchemy.engine import Connection

from timeline.errors import TimelineError
from timeline.log.chain import Head
from timeline.log.db import IN_CHUNK, TRACE, run_sql
from timeline.log.events import GENESIS_HASH, Event, loads, row_to_event
from timeline.log.migrate import current_revision
from timeline.log.schema import events, intervals, measures
from timeline.log.vocabulary import SUPERSEDING_TYPES
from timeline.projections.fold import FoldEvent, Interval, fold, superseded_ids
from timeline.projections.touching import touching_events

# The fields queries may filter on, by where they live. Completion offers the same names.
EVENT_COLUMNS = ("position", "id", "stream", "version", "type", "effective", "announced",
                 "known", "recorded_at")
MEASURE_COLUMNS = ("kind", "imposer", "target", "scope", "title")
STATE_COLUMNS = ("rate", "status", "legal_status")
# Every name a `where` may use besides JSON keys of the log, per query form.
EVENT_FIELDS = EVENT_COLUMNS + MEASURE_COLUMNS + ("source", "quote", "title")
MEASURE_FIELDS = MEASURE_COLUMNS + ("measure", "stream", "events", "first_effective",
                                    "last_change") + STATE_COLUMNS
# What a `where` on a measure's state may name besides MEASURE_FIELDS and its state's keys:
# the bounds of the interval in force, `since` and `until`
INTERVAL_FIELDS = ("since", "until")
# Fields whose values form a closed set: `kind = tarif` is a mistake to report, not a filter.
# after every valid date: the state a stream ends in
LAST_DAY = "9999-12-31"
ENUM_FIELDS = ("kind", "imposer", "target", "type", "status", "legal_status")

# Hot-path statements are built once so SQLAlchemy's compiled cache is hit every time.
SQL_HISTORY = text(
    "SELECT valid_from, valid_to, state, event_ids FROM intervals WHERE stream = :s "
    "AND (:end IS NULL OR valid_from <= :end) AND (:start IS NULL OR valid_to IS NULL "
    "OR valid_to > :start) ORDER BY valid_from").bindparams(
    # typed, so PostgreSQL can tell what `:end IS NULL` compares
    bindparam("start", type_=String), bindparam("end", type_=String))
SQL_STREAM_EXISTS = text("SELECT 1 FROM measures WHERE stream = :s")
SQL_STREAMS_LIKE = text(
    "SELECT stream FROM measures WHERE stream LIKE :p ESCAPE '\\' ORDER BY stream")
SQL_ALL_STREAMS = text("SELECT stream FROM measures ORDER BY stream")
# ORDER BY … LIMIT 1, so that each walks an index of migration 0006 from its end
SQL_LATEST_KNOWN = text("SELECT known FROM events WHERE type != 'reviewed' "
                        "ORDER BY known DESC LIMIT 1")
SQL_LATEST_REVIEW = text("SELECT effective FROM events WHERE type = 'reviewed' "
                         "ORDER BY effective DESC LIMIT 1")
_UNREAD = object()
SQL_HEAD = text("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
# `known on`: the rows of migration 0008's index that held on the knowledge day
_HELD = "stream = ? AND known_from <= ? AND (known_to IS NULL OR known_to > ?)"
_KNOWN_AT = ("SELECT valid_from, state, event_ids FROM known_intervals WHERE " + _HELD +
             " AND valid_from <= ? ORDER BY valid_from DESC LIMIT 1")
_KNOWN_NEXT = ("SELECT valid_from FROM known_intervals WHERE " + _HELD +
               " AND valid_from > ? ORDER BY valid_from LIMIT 1")
_KNOWN_ALL = ("SELECT valid_from, state, event_ids FROM known_intervals WHERE " + _HELD +
              " ORDER BY valid_from")
_KNOWN_ROWS = ("SELECT stream, valid_from, known_from, known_to, state, event_ids FROM "
               "known_intervals WHERE stream IN ({}) ORDER BY stream, valid_from, known_from")
_INTERVAL_ROWS = ("SELECT stream, valid_from, valid_to, state, event_ids FROM intervals "
                  "WHERE stream IN ({}) ORDER BY stream, valid_from")
_RAW_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_RAW_STATE_AT = (
    "SELECT valid_from, valid_to, state, event_ids FROM intervals "
    "WHERE stream = ? AND valid_from <= ? ORDER BY valid_from DESC LIMIT 1")


class StateRow:
    """A stream's state over one interval of valid time.

    The state is decoded from its stored JSON on first access: a point lookup whose caller
    only needs the interval bounds or event ids never pays for the JSON parse.
    """

    __slots__ = ("stream", "valid_from", "valid_to", "_raw", "_state", "_ids")

    def __init__(self, stream: str, valid_from: str, valid_to: str | None, state, event_ids):
        self.stream, self.valid_from, self.valid_to = stream, valid_from, valid_to
        self._raw: str | None
        self._state: dict | None
        self._raw, self._state = (state, None) if isinstance(state, str) else (None, state)
        self._ids = event_ids

    @property
    def state(self) -> dict:
        """The state fields (decoded lazily)."""
        if self._state is None:
            self._state = loads(self._raw)  # type: ignore[arg-type]  # _raw set when _state isn't
        return self._state

    @property
    def event_ids(self) -> list[str]:
        """Ids of the events that started this interval (decoded lazily)."""
        if isinstance(self._ids, str):
            self._ids = loads(self._ids)
        return self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, StateRow) and (
            self.stream, self.valid_from, self.valid_to, self.state, self.event_ids) == (
            other.stream, other.valid_from, other.valid_to, other.state, other.event_ids)

    def __repr__(self) -> str:
        return (f"StateRow({self.stream!r}, {self.valid_from!r}, {self.valid_to!r}, "
                f"{self.state!r}, {self.event_ids!r})")

    def as_dict(self) -> dict:
        """Plain dict in the stable JSON shape of a state answer."""
        return {"measure": self.stream, "state": self.state, "since": self.valid_from,
                "until": self.valid_to, "events": self.event_ids}


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One measure of the catalogue (the `measures` projection)."""

    stream: str
    kind: str | None
    imposer: str | None
    target: str | None
    scope: str | None
    title: str | None
    version: int
    first_effective: str | None
    last_change: str | None


def _confidence(state) -> str | None:
    """The weakest confidence a stored state rests on (None: confirmed, or no state)."""
    if isinstance(state, str):
        if '"confidence"' not in state:
            return None  # most states: no need to decode
        state = json.loads(state)
    return state.get("confidence") if isinstance(state, dict) else None


def chunks(items: Sequence, size: int = IN_CHUNK) -> Iterator[list]:
    """`items` in lists of at most `size`: bound IN lists stay under the drivers' limits."""
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Reader:
    """Read queries over one snapshot of a timeline database (see the module docstring)."""

    def __init__(self, conn: Connection, where: str = "database"):
        self.conn, self.where = conn, where
        self._horizon = _UNREAD
        self._refundable: dict[tuple[str, str | None], bool] = {}

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name (sqlite, postgresql)."""
        return self.conn.dialect.name

    # -- the log ---------------------------------------------------------------------------
    def head(self) -> Head:
        """Position and hash of the last event."""
        row = run_sql(self.conn, _RAW_HEAD).first()  # per product answer: the driver's cursor
        return Head(row[0], row[1]) if row else Head(0, GENESIS_HASH)

    def count(self) -> int:
        """Number of events in the log."""
        return self.conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()

    def revision(self) -> str | None:
        """The schema revision recorded in the database."""
        return current_revision(self.conn)

    def hash_at(self, position: int) -> str | None:
        """The stored hash of the event at `position`, or None past the end."""
        return self.conn.execute(select(events.c.hash).where(events.c.position == position)
                                 ).scalar()

    def event_rows(self, batch: int = 5000) -> Iterator[dict]:
        """Every row of the events table as stored, in position order (for chain checks)."""
        for r in self.conn.execute(select(events).order_by(events.c.position),
                                   execution_options={"yield_per": batch}):
            yield r._asdict()

    def link_rows(self, batch: int = 5000) -> Iterator[dict]:
        """Every row of the event_links table, in (position, stream) order."""
        from timeline.log.schema import event_links

        for r in self.conn.execute(select(event_links).order_by(event_links.c.position,
                                                                event_links.c.stream),
                                   execution_options={"yield_per": batch}):
            yield r._asdict()

    def iter_events(self, *, after: int = 0, batch: int = 5000) -> Iterator[Event]:
        """Every event in position order, read in batches."""
        pos = after
        while True:
            rows = self.conn.execute(select(events).where(events.c.position > pos)
                                     .order_by(events.c.position).limit(batch)).all()
            if not rows:
                return
            for r in rows:
                yield row_to_event(r)
            pos = rows[-1].position

    def events_by_id(self, ids: Iterable[str]) -> dict[str, Event]:
        """Stored events by id (ids not in the log are absent from the result)."""
        out: dict[str, Event] = {}
        for part in chunks(list(dict.fromkeys(ids))):
            for r in self.conn.execute(select(events).where(events.c.id.in_(part))):
                out[r.id] = row_to_event(r)
        return out

    def horizon(self) -> str | None:
        """The knowledge horizon: the latest `known` date of the log's events, or the
        latest date a `reviewed` event says the sources were checked through, if later.

        Read once per Reader (one snapshot: it cannot change), by two index walks."""
        if self._horizon is _UNREAD:
            known = self.conn.execute(SQL_LATEST_KNOWN).scalar()
            reviewed = self.conn.execute(SQL_LATEST_REVIEW).scalar()
            self._horizon = max((d for d in (known, reviewed) if d), default=None)
        return self._horizon  # type: ignore[return-value]  # read above: no longer _UNREAD

    def withdrawn_ids(self, known_on: str | None = None) -> set[str]:
        """Ids withdrawn by retractions and corrections (those known by `known_on`)."""
        e = events.c
        stmt = select(e.payload).where(e.type.in_(SUPERSEDING_TYPES))
        if known_on:
            stmt = stmt.where(e.known <= known_on)
        return {i for (p,) in self.conn.execute(stmt) for i in json.loads(p).get("supersedes", ())}

    def effective_between(self, start: str, end: str, *, known_on: str | None = None,
                          types: Sequence[str] | None = None,
                          exclude_types: Sequence[str] = ()) -> list[Event]:
        """Events effective in [start, end] (known by `known_on`), withdrawn ones left out."""
        e = events.c
        stmt = select(events).where(e.effective >= start, e.effective <= end)
        if types is not None:
            stmt = stmt.where(e.type.in_(list(types)))
        if exclude_types:
            stmt = stmt.where(e.type.notin_(list(exclude_types)))
        if known_on:
            stmt = stmt.where(e.known <= known_on)
        gone = self.withdrawn_ids(known_on)
        return [row_to_event(r) for r in self.conn.execute(
            stmt.order_by(e.effective, e.known, e.position)) if r.id not in gone]

    def touching_events(self, stream: str, *, until: str | None = None,
                        known_on: str | None = None) -> list[FoldEvent]:
        """Events that touch `stream` (its own and those linking to it), optionally bounded."""
        return touching_events(self.conn, stream, until=until, known_on=known_on)

    def events(self, *, streams: Sequence[str] | None = None, start: str | None = None,
               end: str | None = None, conditions: Sequence[tuple[str, str, Any]] = (),
               limit: int | None = None, order: tuple[str, bool] | None = None) -> list[Event]:
        """The `events` query: filters as bound parameters, ordered by `order` (a column of
        EVENT_FIELDS, descending or not) and then by effective, known, position."""
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
        source, payload = self._json_col(e.source), self._json_col(e.payload)
        cols["source"] = _json_path(source, ["name"], False)
        cols["quote"] = _json_path(source, ["quote"], False)
        cols["title"] = _json_path(payload, ["title"], False)
        for cond in conditions:
            stmt = stmt.where(_tree(cond, lambda c: _condition(c, cols, payload, ["set"],
                                                               self.dialect)))
        if order is not None:
            key = cols[order[0].lower()]
            # NULLs last both ways and on both backends (they differ by default)
            stmt = stmt.order_by((key.desc() if order[1] else key.asc()).nulls_last())
        stmt = stmt.order_by(e.effective, e.known, e.position)
        if limit is not None:
            stmt = stmt.limit(_in_range(limit, "events limit"))
        return [row_to_event(r) for r in self.conn.execute(stmt)]

    def learned(self, after: str, through: str) -> list[tuple[Event, list[str]]]:
        """Events that became known in (after, through], by known date and position, each
        with the streams it touches (its own first, then those it links to)."""
        from timeline.log.schema import event_links
        e = events.c
        evs = [row_to_event(r) for r in self.conn.execute(
            select(events).where(e.known > after, e.known <= through)
            .order_by(e.known, e.position))]
        linked: dict[int, list[str]] = {}
        positions = [ev.position for ev in evs]
        for i in range(0, len(positions), IN_CHUNK):
            chunk = positions[i:i + IN_CHUNK]
            for pos, stream in self.conn.execute(
                    select(event_links.c.position, event_links.c.stream)
                    .where(event_links.c.position.in_(chunk))
                    .order_by(event_links.c.position, event_links.c.stream)):
                linked.setdefault(pos, []).append(stream)
        return [(ev, [ev.stream] + [s for s in linked.get(ev.position, ()) if s != ev.stream])
                for ev in evs]

    # -- the projections -------------------------------------------------------------------
    def state_at(self, stream: str, day: str) -> StateRow | None:
        """The state in force on `day` with everything in the log known: one indexed lookup."""
        # the hottest read: straight to the driver's cursor (same connection, same
        # transaction), skipping SQLAlchemy's per-execute bookkeeping (~20 us of ~25 on
        # SQLite); its driver errors are translated by Store.reading() like all others
        r = run_sql(self.conn, _RAW_STATE_AT, (stream, day)).first()
        if r is None or (r[1] is not None and r[1] <= day):
            return None
        return StateRow(stream, r[0], r[1], r[2], r[3])

    def fold_known(self, stream: str, known_on: str, until: str | None = None) -> list[Interval]:
        """Intervals of `stream` as known on `known_on` (up to `until`, inclusive), by a fold
        of its events: the definition the `known on` index is tested against."""
        evs = touching_events(self.conn, stream, until=until, known_on=known_on)
        return fold(stream, evs, excluded=superseded_ids(evs, known_on), until=until,
                    known_on=known_on).intervals

    def state(self, stream: str, day: str, known_on: str | None = None) -> StateRow | None:
        """State on `day`, as known on `known_on` (everything when None): indexed lookups."""
        if known_on is None:
            return self.state_at(stream, day)
        held = (stream, known_on, known_on)
        r = run_sql(self.conn, _KNOWN_AT, (*held, day)).first()
        if r is None:
            return None
        nxt = run_sql(self.conn, _KNOWN_NEXT, (*held, day)).first()
        return StateRow(stream, r[0], nxt[0] if nxt else None, r[1], r[2])

    def refundable(self, stream: str, known_on: str | None = None) -> bool:
        """Whether `stream`'s authority ends invalidated, as known on `known_on`: what it
        collected is refundable (a ruling changes legality, not what was paid at entry).

        Remembered per Reader (one snapshot): a history, a total or an export asks it of the
        same stream once per interval or component."""
        key = (stream, known_on)
        if key not in self._refundable:
            last = self.state(stream, LAST_DAY, known_on)
            self._refundable[key] = last is not None \
                and last.state.get("legal_status") == "invalidated"
        return self._refundable[key]

    def history(self, stream: str, start: str | None = None, end: str | None = None,
                known_on: str | None = None) -> list[StateRow]:
        """Intervals of `stream` overlapping [start, end], as known on `known_on`."""
        if known_on is None:
            rows = self.conn.execute(SQL_HISTORY, {"s": stream, "start": start, "end": end})
            return [StateRow(stream, r[0], r[1], r[2], r[3]) for r in rows]
        rows = run_sql(self.conn, _KNOWN_ALL, (stream, known_on, known_on)).all()
        out = []
        for i, r in enumerate(rows):
            until = rows[i + 1][0] if i + 1 < len(rows) else None
            if end is not None and r[0] > end:
                break
            if start is None or until is None or until > start:
                out.append(StateRow(stream, r[0], until, r[1], r[2]))
        return out

    def known_rows(self, streams: Sequence[str]) -> dict[str, list[tuple]]:
        """Every `known_intervals` row of `streams`: (valid_from, known_from, known_to, state
        JSON, event_ids JSON), by stream and valid_from (what a product answer's cache holds)."""
        return self._rows_by_stream(_KNOWN_ROWS, streams)

    def interval_rows(self, streams: Sequence[str]) -> dict[str, list[tuple]]:
        """Every interval of `streams`: (valid_from, valid_to, state JSON, event_ids JSON)."""
        return self._rows_by_stream(_INTERVAL_ROWS, streams)

    def _rows_by_stream(self, sql: str, streams: Sequence[str]) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {s: [] for s in streams}
        for chunk in chunks(list(streams)):
            marks = ", ".join("?" * len(chunk))
            for row in run_sql(self.conn, sql.format(marks), tuple(chunk)).all():
                out[row[0]].append(tuple(row[1:]))
        return out

    def stream_exists(self, stream: str) -> bool:
        """Whether the catalogue knows `stream`."""
        return self.conn.execute(SQL_STREAM_EXISTS, {"s": stream}).first() is not None

    def match_streams(self, pattern: str) -> list[str]:
        """Streams matching a glob (`*` matches any run of characters, dots included)."""
        if pattern == "*":
            return self.all_streams()
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%"))
        return list(self.conn.execute(SQL_STREAMS_LIKE, {"p": like}).scalars())

    def all_streams(self) -> list[str]:
        """Every stream in the catalogue."""
        return list(self.conn.execute(SQL_ALL_STREAMS).scalars())

    def catalogue(self) -> list[CatalogueEntry]:
        """Every measure of the catalogue, by id."""
        m = measures.c
        return [CatalogueEntry(r.stream, r.kind, r.imposer, r.target, r.scope, r.title,
                               r.version, r.first_effective, r.tail_date)
                for r in self.conn.execute(select(measures).order_by(m.stream))]

    def tariff_streams(self, imposer: str) -> list[str]:
        """Ids of the tariff measures `imposer` imposes."""
        m = measures.c
        return list(self.conn.execute(select(m.stream).where(
            m.kind == "tariff", m.imposer == imposer).order_by(m.stream)).scalars())

    def measures_on(self, day: str, conditions: Sequence[tuple[str, str, Any]] = ()) -> list[dict]:
        """The catalogue joined with each measure's interval in force on `day`, filtered."""
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
        state = self._json_col(cur.c.state)
        # the interval's bounds, and the date of the next scheduled change (the planner's
        # in-memory filter reads the same: timeline.query.planner._record)
        cols.update({"since": cur.c.valid_from, "until": cur.c.valid_to,
                     "scheduled": _json_path(state, ["scheduled", 0, "on"], False)})
        for cond in conditions:
            stmt = stmt.where(_tree(cond, lambda c: _condition(c, cols, state, [], self.dialect)))
        return [{"measure": r.stream, "kind": r.kind, "imposer": r.imposer, "target": r.target,
                 "scope": r.scope, "title": r.title, "events": r.version,
                 "first_effective": r.first_effective, "last_change": r.tail_date,
                 "rate": r.rate, "status": r.status, "legal_status": r.legal_status,
                 "since": r.valid_from, "confidence": _confidence(r.state)}
                for r in self.conn.execute(stmt.order_by(m.stream))]

    def field_values(self, name: str) -> list[str]:
        """The distinct values an enumerated field (ENUM_FIELDS) takes in this log."""
        if name in ("kind", "imposer", "target"):
            col = measures.c[name]
        elif name == "type":
            col = events.c.type
        elif name in ("status", "legal_status"):
            col = intervals.c[name]
        else:
            raise ValueError(f"not an enumerated field: {name}")
        return sorted(v for v in self.conn.execute(select(col).distinct()).scalars()
                      if v is not None)

    def json_keys(self, where: str) -> set[str]:
        """Keys that occur in the log's JSON: 'payload' (event payloads), 'set' (the fields
        events set) or 'state' (measure states). A full scan: only asked on a miss."""
        keys: set[str] = set()
        if where == "state":
            for (raw,) in self.conn.execute(select(intervals.c.state).distinct()):
                keys.update(json.loads(raw) if isinstance(raw, str) else raw or {})
            return keys
        for (raw,) in self.conn.execute(select(events.c.payload).distinct()):
            p = json.loads(raw) if isinstance(raw, str) else raw or {}
            if where == "payload":
                keys.update(p)
            else:
                for part in [p.get("set"), p.get("affects_set")] + [
                        it.get("set") for it in p.get("schedule", ())]:
                    keys.update(part or {})
        return keys

    def table_columns(self) -> dict[str, list[str]]:
        """Columns of every table and view (for SQL completion), alembic's own left out."""
        insp = inspect(self.conn)
        out: dict[str, list[str]] = {}
        for name in list(insp.get_view_names()) + list(insp.get_table_names()):
            if name != "alembic_version":
                out[name] = [c["name"] for c in insp.get_columns(name)]
        return out

    # -- explain ---------------------------------------------------------------------------
    def recording(self) -> "SqlRecorder":
        """A context that records every SQL statement this reader runs (for `explain`)."""
        return SqlRecorder(self.conn)

    def _json_col(self, col):
        """A JSON-text column as JSON: PostgreSQL needs the text cast to jsonb for paths."""
        if self.dialect != "postgresql":
            return col
        # imported here: the PostgreSQL dialect package costs SQLite users ~40 ms of start-up
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(col, JSONB)


class SqlRecorder:
    """Collects the SQL statements (with parameters) run on a connection."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    def __enter__(self):
        event.listen(self.conn, "before_cursor_execute", self._hook)
        self.conn.info[TRACE] = True
        return self

    def __exit__(self, *exc):
        event.remove(self.conn, "before_cursor_execute", self._hook)
        self.conn.info.pop(TRACE, None)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append((" ".join(statement.split()), parameters))


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
