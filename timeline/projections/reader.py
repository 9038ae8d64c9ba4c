"""Read access to the projections and the log: the storage API queries are planned onto.

Default-knowledge reads are single indexed lookups on `intervals`; `known on` reads fold one
stream's events with `timeline.fold`, so both share one definition of the semantics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import String, bindparam, text
from sqlalchemy.engine import Connection

from timeline.projections.fold import Interval, fold, state_at as _fold_state_at, superseded_ids
from timeline.projections.maintain import touching_events

# Hot-path statements are built once so SQLAlchemy's compiled cache is hit every time.
SQL_STATE_AT = text(
    "SELECT valid_from, valid_to, state, event_ids FROM intervals "
    "WHERE stream = :s AND valid_from <= :d ORDER BY valid_from DESC LIMIT 1")
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


class StateRow:
    """A stream's state over one interval of valid time.

    The state is decoded from its stored JSON on first access: a point lookup whose caller
    only needs the interval bounds or event ids never pays for the JSON parse.
    """

    __slots__ = ("stream", "valid_from", "valid_to", "_raw", "_state", "_ids")

    def __init__(self, stream: str, valid_from: str, valid_to: str | None, state, event_ids):
        self.stream, self.valid_from, self.valid_to = stream, valid_from, valid_to
        self._raw, self._state = (state, None) if isinstance(state, str) else (None, state)
        self._ids = event_ids

    @property
    def state(self) -> dict:
        """The state fields (decoded lazily)."""
        if self._state is None:
            self._state = json.loads(self._raw)
        return self._state

    @property
    def event_ids(self) -> list[str]:
        """Ids of the events that started this interval (decoded lazily)."""
        if isinstance(self._ids, str):
            self._ids = json.loads(self._ids)
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


def _row(stream: str, r) -> StateRow:
    return StateRow(stream, r[0], r[1], r[2], r[3])


def _from_interval(iv: Interval) -> StateRow:
    return StateRow(iv.stream, iv.valid_from, iv.valid_to, iv.state, list(iv.event_ids))


TRACE = "timeline.trace_sql"  # set by `explain`, which must see every statement
_RAW_STATE_AT = (
    "SELECT valid_from, valid_to, state, event_ids FROM intervals "
    "WHERE stream = ? AND valid_from <= ? ORDER BY valid_from DESC LIMIT 1")


def state_at(conn: Connection, stream: str, day: str) -> StateRow | None:
    """The state in force on `day` with everything in the log known: one indexed lookup."""
    if conn.dialect.name == "sqlite" and not conn.info.get(TRACE):
        # the hottest read: straight to the driver's cursor (same connection, same
        # transaction), skipping SQLAlchemy's per-execute bookkeeping (~20 us of ~25)
        r = conn.connection.dbapi_connection.execute(_RAW_STATE_AT, (stream, day)).fetchone()
    else:
        r = conn.execute(SQL_STATE_AT, {"s": stream, "d": day}).first()
    if r is None or (r[1] is not None and r[1] <= day):
        return None
    return _row(stream, r)


def fold_known(conn: Connection, stream: str, known_on: str,
               until: str | None = None) -> list[Interval]:
    """Intervals of `stream` as they were known on `known_on` (up to `until`, inclusive)."""
    evs = touching_events(conn, stream, until=until, known_on=known_on)
    return fold(stream, evs, excluded=superseded_ids(evs, known_on), until=until).intervals


def state_known(conn: Connection, stream: str, day: str, known_on: str) -> StateRow | None:
    """The state in force on `day` counting only what was public by `known_on`."""
    iv = _fold_state_at(fold_known(conn, stream, known_on, until=day), day)
    return _from_interval(iv) if iv else None


def state(conn: Connection, stream: str, day: str, known_on: str | None = None) -> StateRow | None:
    """State on `day`, as known on `known_on` (everything when None)."""
    if known_on is None:
        return state_at(conn, stream, day)
    return state_known(conn, stream, day, known_on)


def history(conn: Connection, stream: str, start: str | None, end: str | None,
            known_on: str | None = None) -> list[StateRow]:
    """Intervals of `stream` overlapping [start, end], as known on `known_on`."""
    if known_on is None:
        rows = conn.execute(SQL_HISTORY, {"s": stream, "start": start, "end": end})
        return [_row(stream, r) for r in rows]
    out = []
    for iv in fold_known(conn, stream, known_on, until=end):
        if start is None or iv.valid_to is None or iv.valid_to > start:
            out.append(_from_interval(iv))
    return out


def stream_exists(conn: Connection, stream: str) -> bool:
    """Whether the catalogue knows `stream`."""
    return conn.execute(SQL_STREAM_EXISTS, {"s": stream}).first() is not None


def match_streams(conn: Connection, pattern: str) -> list[str]:
    """Streams matching a glob (`*` matches any run of characters, dots included)."""
    if pattern == "*":
        return list(conn.execute(SQL_ALL_STREAMS).scalars())
    like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            .replace("*", "%"))
    return list(conn.execute(SQL_STREAMS_LIKE, {"p": like}).scalars())


def all_streams(conn: Connection) -> list[str]:
    """Every stream in the catalogue."""
    return list(conn.execute(SQL_ALL_STREAMS).scalars())
