"""The read boundary: every query the upper layers run against the log and its projections.

A `Reader` wraps one connection inside one read transaction, so everything it returns
describes one consistent snapshot of the log. It is handed out by `Store.reading()`, which
also translates driver errors (those of the raw-cursor fast path included) into the
package's StoreError family. Default-knowledge reads are indexed lookups on `intervals`;
`known on` reads fold one stream's events with `timeline.projections.fold`, so both share
one definition of the semantics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from timeline.log.chain import Head
from timeline.log.db import IN_CHUNK, TRACE, run_sql
from timeline.log.events import GENESIS_HASH, Event, loads, row_to_event
from timeline.log.migrate import current_revision
from timeline.log.vocabulary import SUPERSEDING_TYPES
# The fields queries may filter on, by where they live (filters.py reads them too).
from timeline.projections.fields import (EVENT_COLUMNS, EVENT_FIELDS, INTERVAL_FIELDS,  # noqa: F401
                                         MEASURE_COLUMNS, MEASURE_FIELDS, STATE_COLUMNS)
from timeline.projections.fold import FoldEvent, Interval, fold, superseded_ids
from timeline.projections.touching import touching_events

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Fields whose values form a closed set: `kind = tarif` is a mistake to report, not a filter.
# after every valid date: the state a stream ends in
LAST_DAY = "9999-12-31"
ENUM_FIELDS = ("kind", "imposer", "target", "type", "status", "legal_status")

# Every statement is plain SQL with `?` placeholders, run through the driver (db.run_sql):
# the same code on SQLAlchemy's connections and on the driver-only read path of a SQLite
# file (timeline.log.driver). Statements `explain --sql` lists keep the text they had when
# SQLAlchemy Core wrote them.
_EVENT_ROW = ("events.position, events.id, events.stream, events.version, events.type, "
              "events.schema_version, events.effective, events.announced, events.known, "
              "events.recorded_at, events.payload, events.source, events.prev_hash, "
              "events.hash")
_EVENT_NAMES = tuple(c.split(".")[1] for c in _EVENT_ROW.split(", "))
_SELECT_EVENTS = f"SELECT {_EVENT_ROW} FROM events"
SQL_HISTORY = (
    "SELECT valid_from, valid_to, state, event_ids FROM intervals WHERE stream = ? "
    "AND (? IS NULL OR valid_from <= ?) AND (? IS NULL OR valid_to IS NULL "
    "OR valid_to > ?) ORDER BY valid_from")
# typed, so PostgreSQL can tell what `? IS NULL` compares
_PG_HISTORY = SQL_HISTORY.replace("(? IS NULL", "(CAST(? AS VARCHAR) IS NULL")
SQL_STREAM_EXISTS = "SELECT 1 FROM measures WHERE stream = ?"
SQL_STREAMS_LIKE = "SELECT stream FROM measures WHERE stream LIKE ? ESCAPE '\\' ORDER BY stream"
SQL_ALL_STREAMS = "SELECT stream FROM measures ORDER BY stream"
# ORDER BY … LIMIT 1, so that each walks an index of migration 0006 from its end
SQL_LATEST_KNOWN = ("SELECT known FROM events WHERE type != 'reviewed' "
                    "ORDER BY known DESC LIMIT 1")
SQL_LATEST_REVIEW = ("SELECT effective FROM events WHERE type = 'reviewed' "
                     "ORDER BY effective DESC LIMIT 1")
_UNREAD = object()
SQL_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
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


def _marks(items: Sequence) -> str:
    return ", ".join("?" * len(items))


def _event(row: Sequence) -> Event:
    """Event from a row of `_EVENT_ROW`'s columns."""
    return row_to_event(dict(zip(_EVENT_NAMES, row)))


def _batches(rows, names: Sequence[str], batch: int) -> Iterator[dict]:
    """The rows of a statement as dicts, fetched `batch` at a time (memory stays bounded)."""
    cur = rows._cur if hasattr(rows, "_cur") else rows.cursor
    while True:
        got = cur.fetchmany(batch)
        if not got:
            return
        for r in got:
            yield dict(zip(names, r))


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
        return run_sql(self.conn, "SELECT COUNT(*) FROM events").scalar_one()

    def revision(self) -> str | None:
        """The schema revision recorded in the database."""
        return current_revision(self.conn)

    def hash_at(self, position: int) -> str | None:
        """The stored hash of the event at `position`, or None past the end."""
        return run_sql(self.conn, "SELECT events.hash FROM events WHERE events.position = ?",
                       (position,)).scalar()

    def event_rows(self, batch: int = 5000) -> Iterator[dict]:
        """Every row of the events table as stored, in position order (for chain checks)."""
        yield from _batches(run_sql(self.conn, f"{_SELECT_EVENTS} ORDER BY events.position"),
                            _EVENT_NAMES, batch)

    def link_rows(self, batch: int = 5000) -> Iterator[dict]:
        """Every row of the event_links table, in (position, stream) order."""
        yield from _batches(run_sql(self.conn, "SELECT event_links.stream, event_links.position, "
                                               "event_links.role FROM event_links ORDER BY "
                                               "event_links.position, event_links.stream"),
                            ("stream", "position", "role"), batch)

    def iter_events(self, *, after: int = 0, batch: int = 5000) -> Iterator[Event]:
        """Every event in position order, read in batches."""
        pos = after
        while True:
            rows = run_sql(self.conn, f"{_SELECT_EVENTS} WHERE events.position > ? ORDER BY "
                                      f"events.position LIMIT ?", (pos, batch)).all()
            if not rows:
                return
            for r in rows:
                yield _event(r)
            pos = rows[-1][0]

    def events_by_id(self, ids: Iterable[str]) -> dict[str, Event]:
        """Stored events by id (ids not in the log are absent from the result)."""
        out: dict[str, Event] = {}
        for part in chunks(list(dict.fromkeys(ids))):
            for r in run_sql(self.conn, f"{_SELECT_EVENTS} WHERE events.id IN ({_marks(part)})",
                             tuple(part)):
                out[r[1]] = _event(r)
        return out

    def horizon(self) -> str | None:
        """The knowledge horizon: the latest `known` date of the log's events, or the
        latest date a `reviewed` event says the sources were checked through, if later.

        Read once per Reader (one snapshot: it cannot change), by two index walks."""
        if self._horizon is _UNREAD:
            known = run_sql(self.conn, SQL_LATEST_KNOWN).scalar()
            reviewed = run_sql(self.conn, SQL_LATEST_REVIEW).scalar()
            self._horizon = max((d for d in (known, reviewed) if d), default=None)
        return self._horizon  # type: ignore[return-value]  # read above: no longer _UNREAD

    def withdrawn_ids(self, known_on: str | None = None) -> set[str]:
        """Ids withdrawn by retractions and corrections (those known by `known_on`)."""
        kinds = tuple(sorted(SUPERSEDING_TYPES))
        sql = f"SELECT events.payload FROM events WHERE events.type IN ({_marks(kinds)})"
        params: tuple = kinds
        if known_on:
            sql, params = sql + " AND events.known <= ?", params + (known_on,)
        return {i for (p,) in run_sql(self.conn, sql, params)
                for i in json.loads(p).get("supersedes", ())}

    def effective_between(self, start: str, end: str, *, known_on: str | None = None,
                          types: Sequence[str] | None = None,
                          exclude_types: Sequence[str] = ()) -> list[Event]:
        """Events effective in [start, end] (known by `known_on`), withdrawn ones left out."""
        sql = f"{_SELECT_EVENTS} WHERE events.effective >= ? AND events.effective <= ?"
        params: list = [start, end]
        if types is not None:
            # an empty list: SQLAlchemy's "empty IN", which holds for no row
            sql += (f" AND events.type IN ({_marks(types)})" if types else
                    " AND events.type IN (NULL) AND (1 != 1)")
            params += types
        if exclude_types:
            sql += f" AND (events.type NOT IN ({_marks(exclude_types)}))"
            params += exclude_types
        if known_on:
            sql += " AND events.known <= ?"
            params.append(known_on)
        gone = self.withdrawn_ids(known_on)
        return [_event(r) for r in run_sql(
            self.conn, sql + " ORDER BY events.effective, events.known, events.position",
            tuple(params)) if r[1] not in gone]

    def touching_events(self, stream: str, *, until: str | None = None,
                        known_on: str | None = None) -> list[FoldEvent]:
        """Events that touch `stream` (its own and those linking to it), optionally bounded."""
        return touching_events(self.conn, stream, until=until, known_on=known_on)

    def events(self, *, streams: Sequence[str] | None = None, start: str | None = None,
               end: str | None = None, conditions: Sequence[tuple[str, str, Any]] = (),
               limit: int | None = None, order: tuple[str, bool] | None = None) -> list[Event]:
        """The `events` query: filters as bound parameters, ordered by `order` (a column of
        EVENT_FIELDS, descending or not) and then by effective, known, position."""
        from timeline.projections import filters  # Core compiles the `where`: imported here

        stmt = filters.events_statement(self.dialect, streams, start, end, conditions, limit,
                                        order)
        return [row_to_event(r) for r in self.conn.execute(stmt)]

    def learned(self, after: str, through: str) -> list[tuple[Event, list[str]]]:
        """Events that became known in (after, through], by known date and position, each
        with the streams it touches (its own first, then those it links to)."""
        evs = [_event(r) for r in run_sql(
            self.conn, f"{_SELECT_EVENTS} WHERE events.known > ? AND events.known <= ? "
                       f"ORDER BY events.known, events.position", (after, through))]
        linked: dict[int, list[str]] = {}
        for chunk in chunks([ev.position for ev in evs]):
            for pos, stream in run_sql(
                    self.conn, f"SELECT event_links.position, event_links.stream FROM "
                               f"event_links WHERE event_links.position IN ({_marks(chunk)}) "
                               f"ORDER BY event_links.position, event_links.stream",
                    tuple(chunk)):
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
            sql = SQL_HISTORY if self.dialect == "sqlite" else _PG_HISTORY
            rows = run_sql(self.conn, sql, (stream, end, end, start, start))
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
        return run_sql(self.conn, SQL_STREAM_EXISTS, (stream,)).first() is not None

    def match_streams(self, pattern: str) -> list[str]:
        """Streams matching a glob (`*` matches any run of characters, dots included)."""
        if pattern == "*":
            return self.all_streams()
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%"))
        return [r[0] for r in run_sql(self.conn, SQL_STREAMS_LIKE, (like,))]

    def all_streams(self) -> list[str]:
        """Every stream in the catalogue."""
        return [r[0] for r in run_sql(self.conn, SQL_ALL_STREAMS)]

    def catalogue(self) -> list[CatalogueEntry]:
        """Every measure of the catalogue, by id."""
        # every column, as Core's `select(measures)` read them (`explain --sql` lists it)
        return [CatalogueEntry(*r[:9]) for r in run_sql(
            self.conn, "SELECT measures.stream, measures.kind, measures.imposer, "
                       "measures.target, measures.scope, measures.title, measures.version, "
                       "measures.first_effective, measures.tail_date, measures.tail_state, "
                       "measures.pending, measures.known_through FROM measures "
                       "ORDER BY measures.stream")]

    def tariff_streams(self, imposer: str) -> list[str]:
        """Ids of the tariff measures `imposer` imposes."""
        return [r[0] for r in run_sql(
            self.conn, "SELECT measures.stream FROM measures WHERE measures.kind = ? AND "
                       "measures.imposer = ? ORDER BY measures.stream", ("tariff", imposer))]

    def measures_on(self, day: str, conditions: Sequence[tuple[str, str, Any]] = ()) -> list[dict]:
        """The catalogue joined with each measure's interval in force on `day`, filtered."""
        from timeline.projections import filters  # Core compiles the `where`: imported here

        stmt = filters.measures_statement(self.dialect, day, conditions)
        return [{"measure": r.stream, "kind": r.kind, "imposer": r.imposer, "target": r.target,
                 "scope": r.scope, "title": r.title, "events": r.version,
                 "first_effective": r.first_effective, "last_change": r.tail_date,
                 "rate": r.rate, "status": r.status, "legal_status": r.legal_status,
                 "since": r.valid_from, "confidence": _confidence(r.state)}
                for r in self.conn.execute(stmt)]

    def field_values(self, name: str) -> list[str]:
        """The distinct values an enumerated field (ENUM_FIELDS) takes in this log."""
        if name in ("kind", "imposer", "target"):
            col = f"measures.{name} FROM measures"
        elif name == "type":
            col = "events.type FROM events"
        elif name in ("status", "legal_status"):
            col = f"intervals.{name} FROM intervals"
        else:
            raise ValueError(f"not an enumerated field: {name}")
        return sorted(v for (v,) in run_sql(self.conn, f"SELECT DISTINCT {col}")
                      if v is not None)

    def json_keys(self, where: str) -> set[str]:
        """Keys that occur in the log's JSON: 'payload' (event payloads), 'set' (the fields
        events set) or 'state' (measure states). A full scan: only asked on a miss."""
        keys: set[str] = set()
        if where == "state":
            for (raw,) in run_sql(self.conn, "SELECT DISTINCT intervals.state FROM intervals"):
                keys.update(json.loads(raw) if isinstance(raw, str) else raw or {})
            return keys
        for (raw,) in run_sql(self.conn, "SELECT DISTINCT events.payload FROM events"):
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
        from sqlalchemy import inspect  # SQL completion only

        insp = inspect(self.conn.core() if hasattr(self.conn, "core") else self.conn)
        out: dict[str, list[str]] = {}
        for name in list(insp.get_view_names()) + list(insp.get_table_names()):
            if name != "alembic_version":
                out[name] = [c["name"] for c in insp.get_columns(name)]
        return out

    # -- explain ---------------------------------------------------------------------------
    def recording(self) -> "SqlRecorder":
        """A context that records every SQL statement this reader runs (for `explain`)."""
        return SqlRecorder(self.conn)


class SqlRecorder:
    """Collects the SQL statements (with parameters) run on a connection."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    def __enter__(self):
        hooks = getattr(self.conn, "hooks", None)
        if hooks is not None:  # the driver-only read path (timeline.log.driver)
            hooks.append(self._record)
        else:
            from sqlalchemy import event

            event.listen(self.conn, "before_cursor_execute", self._hook)
        self.conn.info[TRACE] = True
        return self

    def __exit__(self, *exc):
        hooks = getattr(self.conn, "hooks", None)
        if hooks is not None:
            hooks.remove(self._record)
        else:
            from sqlalchemy import event

            event.remove(self.conn, "before_cursor_execute", self._hook)
        self.conn.info.pop(TRACE, None)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        self._record(statement, parameters)

    def _record(self, statement: str, parameters) -> None:
        self.statements.append((" ".join(statement.split()), parameters))


