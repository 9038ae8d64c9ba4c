"""The references: raw `sqlite3`, and the `eventsourcing` library's SQLite application recorder.

Both get the same generated rows as timeline, on fresh files, with the same durability
(WAL journal, synchronous=FULL: the SQLite default that timeline also sets explicitly).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Sequence

from .generate import Row

# The events table exactly as timeline's migration 0001 creates it (same columns, same
# primary key and unique indexes), without the immutability triggers, plus the index a raw
# design needs for its as-of lookup.
RAW_DDL = (
    """CREATE TABLE events (
        position INTEGER NOT NULL, id VARCHAR(36) NOT NULL, stream VARCHAR(200) NOT NULL,
        version INTEGER NOT NULL, type VARCHAR(32) NOT NULL, schema_version INTEGER NOT NULL,
        effective VARCHAR(10) NOT NULL, announced VARCHAR(10), known VARCHAR(10) NOT NULL,
        recorded_at VARCHAR(32) NOT NULL, payload TEXT NOT NULL, source TEXT NOT NULL,
        prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL,
        PRIMARY KEY (position),
        CONSTRAINT uq_events_stream_version UNIQUE (stream, version),
        UNIQUE (id))""",
    "CREATE INDEX ix_events_stream_effective ON events (stream, effective)",
)
RAW_INSERT = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
RAW_AS_OF = ("SELECT id, effective, payload FROM events WHERE stream = ? AND effective <= ? "
             "ORDER BY effective DESC LIMIT 1")
RAW_KNOWN_ON = ("SELECT id, effective, payload FROM events WHERE stream = ? AND effective <= ? "
                "AND known <= ? ORDER BY effective DESC LIMIT 1")
RAW_SCAN = ("SELECT position, id, stream, type, effective, known, payload, source FROM events "
            "ORDER BY position")
_RECORDED_AT = "2026-01-01T00:00:00.000000Z"
_HASH = "0" * 64


def raw_rows(rows: Sequence[Row]) -> list[tuple]:
    """Parameter tuples for RAW_INSERT (hash columns filled, not computed: raw stores)."""
    return [(r.position, r.id, r.stream, r.version, r.type, 1, r.effective, r.announced,
             r.known, _RECORDED_AT, r.payload, r.source, _HASH, _HASH) for r in rows]


def raw_connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (explicit BEGIN), WAL, synchronous=FULL."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_create(path: Path) -> sqlite3.Connection:
    """A fresh raw database with the events table."""
    conn = raw_connect(path)
    for stmt in RAW_DDL:
        conn.execute(stmt)
    return conn


def raw_append_batch(conn: sqlite3.Connection, params: list[tuple]) -> None:
    """One transaction: executemany of the batch."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_INSERT, params)
    conn.execute("COMMIT")


def raw_append_one(conn: sqlite3.Connection, param: tuple) -> None:
    """One durable transaction for one row."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(RAW_INSERT, param)
    conn.execute("COMMIT")


def raw_as_of(conn: sqlite3.Connection, stream: str, day: str):
    """Indexed as-of lookup of the latest event effective on or before `day`, decoded."""
    r = conn.execute(RAW_AS_OF, (stream, day)).fetchone()
    return None if r is None else (r[0], r[1], json.loads(r[2]))


def raw_known_on(conn: sqlite3.Connection, stream: str, day: str, known: str):
    """The same lookup restricted to events known by `known`."""
    r = conn.execute(RAW_KNOWN_ON, (stream, day, known)).fetchone()
    return None if r is None else (r[0], r[1], json.loads(r[2]))


def raw_scan(conn: sqlite3.Connection) -> int:
    """Full scan in log order with JSON decode of payload and source; returns rows read."""
    n = 0
    loads = json.loads
    for r in conn.execute(RAW_SCAN):
        loads(r[6])
        loads(r[7])
        n += 1
    return n


# -- eventsourcing -----------------------------------------------------------------------

def eventsourcing_available() -> str | None:
    """The installed eventsourcing version, or None when it cannot be imported."""
    try:
        import eventsourcing.sqlite  # noqa: F401
        from importlib.metadata import version

        return version("eventsourcing")
    except Exception:
        return None


def es_stored(rows: Sequence[Row]) -> list:
    """The rows as eventsourcing StoredEvents: stream as originator id (text), its version,
    the type as topic, and the rest of the event as JSON bytes (what a JSON transcoder
    would store)."""
    from eventsourcing.persistence import StoredEvent

    out = []
    for r in rows:
        ann = "null" if r.announced is None else f'"{r.announced}"'
        state = (f'{{"announced":{ann},"effective":"{r.effective}","id":"{r.id}",'
                 f'"known":"{r.known}","payload":{r.payload},"source":{r.source}}}')
        out.append(StoredEvent(originator_id=r.stream, originator_version=r.version,
                               topic=r.type, state=state.encode()))
    return out


class EsStore:
    """eventsourcing's SQLiteApplicationRecorder over a SQLiteDatastore (text originator ids)."""

    def __init__(self, path: Path):
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        self.datastore = SQLiteDatastore(str(path), originator_id_type="text")
        self.recorder = SQLiteApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def insert(self, stored: list) -> None:
        """insert_events: one transaction for the whole list."""
        self.recorder.insert_events(stored)

    def latest(self, stream: str, _day: str | None = None):
        """Latest event of a stream (select_events desc limit 1), state decoded."""
        evs = self.recorder.select_events(stream, desc=True, limit=1)
        return json.loads(evs[0].state) if evs else None

    def replay(self, page: int = 10_000) -> int:
        """Notification-log replay of every event, state decoded; returns events read."""
        n, start = 0, 1
        loads = json.loads
        while True:
            notes = self.recorder.select_notifications(start, page)
            if not notes:
                return n
            for note in notes:
                loads(note.state)
            n += len(notes)
            start = notes[-1].id + 1

    def close(self) -> None:
        """Close the pool."""
        self.datastore.close()


# -- raw executemany of every row the append writes -----------------------------------------
#
# The raw reference above writes one table. This one replays, through the driver alone,
# every write statement timeline's append sends (events, links, intervals, known_intervals,
# the catalogue, the projection head) with the same parameters, on a database with the same
# tables and indexes and no triggers. Its time is SQLite's own cost for the work the append
# chooses to do; what ours spends above it is Python (validation, hashing, folds) and reads.

_WRITES = ("INSERT", "UPDATE", "DELETE")


class WriteRecorder:
    """Records the write statements timeline's append sends through `maintain.run_sql`
    (the one path of the append's writes) while installed: `with WriteRecorder() as rec:`."""

    def __init__(self):
        self.writes: list[tuple[str, list]] = []

    def __enter__(self) -> "WriteRecorder":
        from timeline.projections import maintain
        from timeline.store import append

        self._mods = (maintain, append)
        self._orig = maintain.run_sql
        orig, writes = self._orig, self.writes

        def recording(conn, statement, params=()):
            if statement[:6] in _WRITES:
                writes.append((statement, params if isinstance(params, list) else [params]))
            return orig(conn, statement, params)

        for m in self._mods:
            m.run_sql = recording
        return self

    def __exit__(self, *exc) -> None:
        for m in self._mods:
            m.run_sql = self._orig

    def take(self) -> list[tuple[str, list]]:
        """The writes recorded since the last take."""
        out = list(self.writes)
        self.writes.clear()
        return out


def raw_full_create(path: Path, like: Path) -> sqlite3.Connection:
    """A copy of the fresh database `like` (ours, before its first append) without its
    triggers: same tables, indexes and initial rows."""
    src, dst = sqlite3.connect(str(like)), sqlite3.connect(str(path))
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    conn = raw_connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    return conn


def raw_full_append(conn: sqlite3.Connection, writes: list[tuple[str, list]]) -> None:
    """One transaction: executemany of each recorded write, in the order the append sent them."""
    conn.execute("BEGIN IMMEDIATE")
    for statement, params in writes:
        conn.executemany(statement, params)
    conn.execute("COMMIT")
