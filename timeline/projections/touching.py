"""The events that touch a measure, read from the log as the fold takes them.

Shared by both sides of the projections: the write side (`maintain`) refolds a measure
from them, the read side (`reader`: `known on` answers, `explain`) folds them on demand.
Neither side imports the other for it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from timeline.log.db import run_sql
from timeline.log.events import loads
from timeline.projections.fold import FoldEvent

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# the columns `to_fold_event` reads, in its order
FOLD_EVENT_COLS = "e.position, e.id, e.stream, e.type, e.effective, e.known, e.payload, e.source"


def to_fold_event(row, at: int = 0) -> FoldEvent:
    """FoldEvent from the eight columns of `FOLD_EVENT_COLS` in a row, starting at index `at`."""
    payload = row[at + 6]
    return FoldEvent(row[at], row[at + 1], row[at + 2], row[at + 3], row[at + 4], row[at + 5],
                     payload if isinstance(payload, dict) else loads(payload), row[at + 7])


def touching_events(conn: Connection, stream: str, *, since: str | None = None,
                    until: str | None = None, known_on: str | None = None,
                    known_from: str | None = None) -> list[FoldEvent]:
    """Events that touch `stream` (its own and those linking to it), optionally bounded.

    Retractions and corrections are always included, whatever their dates, because they
    withdraw events regardless of when they take effect. `known_from` asks instead for
    the events known on or after that day, with every retraction, correction and event
    whose day of knowledge is a range (what `knowledge.window_bounds` needs).
    """
    if known_from is not None:
        return _touching(conn, stream, " AND (e.known >= ? OR e.type IN ('retraction', "
                                       "'correction') OR e.payload LIKE ?)",
                         [known_from, '%"known_between"%'])
    conds, params = [], []
    if since is not None:
        conds.append("e.effective >= ?")
        params.append(since)
    if until is not None:
        conds.append("e.effective <= ?")
        params.append(until)
    where = ""
    if conds:
        where = " AND (" + " AND ".join(conds) + " OR e.type IN ('retraction', 'correction'))"
    if known_on is not None:
        where += " AND e.known <= ?"
        params.append(known_on)
    return _touching(conn, stream, where, params)


def _touching(conn: Connection, stream: str, where: str, params: list) -> list[FoldEvent]:
    """The stream's own events and those linking to it, both filtered by `where`."""
    sql = (f"SELECT {FOLD_EVENT_COLS} FROM events e WHERE e.stream = ?{where} "
           f"UNION ALL SELECT {FOLD_EVENT_COLS} FROM event_links l "
           f"JOIN events e ON e.position = l.position WHERE l.stream = ?{where}")
    return [to_fold_event(r) for r in run_sql(conn, sql, (stream, *params, stream, *params))]
