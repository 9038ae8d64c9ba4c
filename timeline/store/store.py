"""The event store: the only module that writes the log.

Appends are one transaction per batch: validation, optimistic concurrency, the hash chain,
the cross-stream links and the projections all commit together or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from timeline.log import db as dbmod
from timeline.log import migrate
from timeline.projections import maintain as projections
from timeline.errors import ConcurrencyError, EventValidationError, IntegrityError, StoreError
from timeline.log.events import reject as _fail
from timeline.log.events import (EVENT_TYPES, GENESIS_HASH, SCHEMA_VERSION, SUPERSEDING_TYPES, Event,
                     NewEvent, canonical_json, chain_hash, uuid7, validate)
from timeline.projections.fold import FoldEvent
from timeline.projections.maintain import run_sql
from timeline.log.schema import events

CHUNK = 500
EVENT_COLS = ("position", "id", "stream", "version", "type", "schema_version", "effective",
              "announced", "known", "recorded_at", "payload", "source", "prev_hash", "hash")
INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLS))})")
# PostgreSQL: the key of the transaction-level advisory lock that serialises writers (SQLite
# serialises them with BEGIN IMMEDIATE); see docs/guarantees.md for why.
PG_WRITE_LOCK = 0x74696D656C696E65  # "timeline"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: the events written and how many offered ones were already there."""

    appended: list[Event]
    skipped: int


@dataclass(frozen=True, slots=True)
class Head:
    """The log's head: position and hash of its last event (0 and the genesis hash if empty)."""

    position: int
    hash: str


class Store:
    """An open timeline database."""

    def __init__(self, engine: Engine, url: str, path: Path | None, readonly: bool = False):
        self.engine, self.url, self.path, self.readonly = engine, url, path, readonly

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, db: str | None = None, *, readonly: bool = False, create: bool = False,
             announce=None) -> "Store":
        """Open a database; create it (migrations + bundled seeds) where asked or default."""
        url, path, is_default = dbmod.resolve(db)
        where = str(path) if path else url
        if path is not None and not path.exists():
            if not (create or is_default):
                raise StoreError(f"no database at {path}; create it with "
                                 f"`timeline init --db {path}`")
            store = cls.create(url, path, announce=announce)
            if readonly:
                store.engine.dispose()
                return cls(dbmod.make_engine(url, readonly=True), url, path, True)
            return store
        store = cls(dbmod.make_engine(url, readonly=readonly), url, path, readonly)
        with dbmod.driver_errors(where), store.engine.connect() as conn:
            if create and migrate.current_revision(conn) is None and not readonly:
                conn.close()
                store.initialise(announce=announce)
            else:
                migrate.check(conn, where)
        return store

    @classmethod
    def create(cls, url: str, path: Path | None, *, announce=None,
               seeds: bool = True) -> "Store":
        """Create a new database file with the schema and (by default) the bundled seeds."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(dbmod.make_engine(url), url, path)
        try:
            store.initialise(announce=announce, seeds=seeds)
        except BaseException:
            store.engine.dispose()
            if path is not None:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
            raise
        return store

    def initialise(self, *, announce=None, seeds: bool = True) -> int:
        """Run migrations to head and load the bundled seeds; returns events appended."""
        with dbmod.driver_errors(self.where):
            migrate.upgrade(self.engine)
        n = 0
        if seeds:
            from timeline.log.loader import load_paths
            from timeline.resources import seeds_path

            n = len(self.append(load_paths([seeds_path()])).appended)
        if announce:
            announce(f"timeline: created {self.where} (schema {migrate.HEAD_REVISION}, "
                     f"{n} seed events loaded)")
        return n

    @property
    def where(self) -> str:
        """Human name of the database: its file path or URL."""
        return str(self.path) if self.path else self.url

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name (sqlite, postgresql)."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def connect(self) -> Connection:
        """A read connection (a transaction begins on first use)."""
        return self.engine.connect()

    # -- reading the log -----------------------------------------------------------------
    def head(self, conn: Connection | None = None) -> Head:
        """Position and hash of the last event."""
        def q(c):
            row = c.execute(select(events.c.position, events.c.hash)
                            .order_by(events.c.position.desc()).limit(1)).first()
            return Head(row.position, row.hash) if row else Head(0, GENESIS_HASH)
        if conn is not None:
            return q(conn)
        with dbmod.driver_errors(self.where), self.engine.connect() as c:
            return q(c)

    def count(self) -> int:
        """Number of events in the log."""
        with dbmod.driver_errors(self.where), self.engine.connect() as c:
            return c.execute(text("SELECT COUNT(*) FROM events")).scalar_one()

    def revision(self) -> str | None:
        """The schema revision."""
        with dbmod.driver_errors(self.where), self.engine.connect() as c:
            return migrate.current_revision(c)

    def iter_events(self, conn: Connection | None = None, *, after: int = 0,
                    batch: int = 5000) -> Iterator[Event]:
        """Every event in position order, read in batches."""
        own = conn is None
        c = self.engine.connect() if own else conn
        try:
            pos = after
            while True:
                rows = c.execute(select(events).where(events.c.position > pos)
                                 .order_by(events.c.position).limit(batch)).all()
                if not rows:
                    return
                for r in rows:
                    yield row_to_event(r)
                pos = rows[-1].position
        finally:
            if own:
                c.close()

    def get_events(self, ids: Sequence[str], conn: Connection | None = None) -> list[Event]:
        """Stored events by id, in log order."""
        def q(c):
            out = []
            for i in range(0, len(ids), CHUNK):
                out += c.execute(select(events).where(events.c.id.in_(list(ids[i:i + CHUNK])))).all()
            return sorted((row_to_event(r) for r in out), key=lambda e: e.position)
        if conn is not None:
            return q(conn)
        with self.engine.connect() as c:
            return q(c)

    # -- appending -----------------------------------------------------------------------
    def append(self, new: Sequence[NewEvent],
               expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        """Append a batch atomically; already-present ids are skipped (idempotent)."""
        if self.readonly:
            from timeline.errors import ReadOnlyError
            raise ReadOnlyError(f"{self.where} is open read-only")
        for ev in new:
            validate(ev)
            if ev.id is not None and not (isinstance(ev.id, str) and 0 < len(ev.id) <= 36):
                # the id column is text(36) on every backend
                _fail(ev, "id", f"must be text of 1 to 36 characters (a UUID), got {ev.id!r}")
        offered = [ev if ev.id else _with_id(ev, uuid7()) for ev in new]
        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            _write_lock(conn)
            return self._append_in(conn, offered, dict(expected_versions or {}))

    def _append_in(self, conn: Connection, offered: list[NewEvent],
                   expected: dict[str, int]) -> AppendResult:
        present = _existing_ids(conn, [e.id for e in offered])
        batch, seen = [], set()
        for ev in offered:
            if ev.id in present or ev.id in seen:
                continue
            seen.add(ev.id)
            batch.append(ev)
        skipped = len(offered) - len(batch)
        own_streams = {e.stream for e in batch}
        referenced = {s for e in batch for s in e.payload.get("affects", ())}
        sup_ids = [i for e in batch if e.type in SUPERSEDING_TYPES for i in e.payload["supersedes"]]
        sup_rows = _superseded(conn, sup_ids, batch)
        rows = projections.load_measures(
            conn, own_streams | referenced | {r[0] for r in sup_rows.values()} | set(expected))
        for stream, want in expected.items():
            if rows[stream].version != want:
                raise ConcurrencyError(stream, want, rows[stream].version)
        if not batch:
            return AppendResult([], skipped)
        _check_references(batch, rows, sup_rows)

        head = self.head(conn)
        now = dt.datetime.now(dt.timezone.utc)
        recorded_at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        today = now.date().isoformat()
        prev, pos = head.hash, head.position
        ev_rows, link_rows, stored, fold_events = [], [], [], []
        for ev in batch:
            pos += 1
            mr = rows[ev.stream]
            mr.version += 1
            if mr.title is None and not mr.exists:
                mr.title = ev.payload["title"]
            eff = ev.effective.isoformat()
            if ev.type != "retraction" and (mr.first_effective is None or eff < mr.first_effective):
                mr.first_effective = eff
            row = {
                "position": pos, "id": ev.id, "stream": ev.stream, "version": mr.version,
                "type": ev.type, "schema_version": SCHEMA_VERSION, "effective": eff,
                "announced": ev.announced.isoformat() if ev.announced else None,
                "known": ev.known.isoformat() if ev.known else today,
                "recorded_at": recorded_at,
                "payload": canonical_json(ev.payload), "source": canonical_json(ev.source),
            }
            row["prev_hash"] = prev
            row["hash"] = prev = chain_hash(prev, row)
            ev_rows.append(row)
            for s in ev.payload.get("affects", ()):
                link_rows.append((s, pos, "affects"))
            for s in sorted({sup_rows[i][0] for i in ev.payload.get("supersedes", ())}
                            - {ev.stream}):
                link_rows.append((s, pos, "supersedes"))
            fold_events.append(FoldEvent(pos, ev.id, ev.stream, ev.type, eff, row["known"],
                                         ev.payload, ev.source))
            stored.append(row)
        run_sql(conn, INSERT_EVENT, [tuple(r[c] for c in EVENT_COLS) for r in ev_rows])
        if link_rows:
            run_sql(conn, "INSERT INTO event_links (stream, position, role) VALUES (?, ?, ?)",
                    link_rows)
        withdrawn: dict[str, list[str]] = {}
        for i in sup_ids:
            stream, eff = sup_rows[i]
            withdrawn.setdefault(stream, []).append(eff)
        projections.apply_batch(conn, fold_events, rows, withdrawn)
        return AppendResult([Event(**{**r, "payload": json.loads(r["payload"]),
                                      "source": json.loads(r["source"])}) for r in stored],
                            skipped)

    # -- verification --------------------------------------------------------------------
    def verify(self) -> Head:
        """Recompute the hash chain and check the immutability triggers; raise at the first fault."""
        with dbmod.driver_errors(self.where), self.engine.connect() as conn:
            _check_triggers(conn, self.dialect)
            prev, expected_pos = GENESIS_HASH, 1
            for r in conn.execution_options(yield_per=10_000).execute(
                    select(events).order_by(events.c.position)):
                row = r._asdict()
                if row["position"] != expected_pos:
                    raise IntegrityError(
                        f"log altered at position {expected_pos}: expected position "
                        f"{expected_pos}, found {row['position']} (a row was deleted)",
                        expected_pos)
                if row["prev_hash"] != prev:
                    raise IntegrityError(f"log altered at position {row['position']}: prev_hash "
                                         f"does not match the previous event's hash",
                                         row["position"])
                if chain_hash(prev, row) != row["hash"]:
                    raise IntegrityError(f"log altered at position {row['position']}: its hash "
                                         f"does not match its contents", row["position"])
                prev, expected_pos = row["hash"], expected_pos + 1
            return Head(expected_pos - 1, prev)

    def rebuild(self, progress=None) -> int:
        """Rebuild every projection from the log in one transaction; returns streams folded."""
        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            _write_lock(conn)
            return projections.rebuild(conn, progress)


def _write_lock(conn: Connection) -> None:
    """PostgreSQL: queue behind any other writer until this transaction ends (no-op on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})


def row_to_event(r) -> Event:
    """Event from a row of the events table."""
    d = r._asdict() if hasattr(r, "_asdict") else dict(r)
    d["payload"] = json.loads(d["payload"])
    d["source"] = json.loads(d["source"])
    return Event(**d)


def _with_id(ev: NewEvent, new_id: str) -> NewEvent:
    return NewEvent(ev.stream, ev.type, ev.effective, ev.payload, ev.source, ev.known,
                    ev.announced, new_id, ev.origin)


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        part = tuple(ids[i:i + CHUNK])
        found.update(r[0] for r in run_sql(
            conn, f"SELECT id FROM events WHERE id IN ({', '.join('?' * len(part))})", part))
    return found


def _superseded(conn: Connection, ids: list[str], batch: list[NewEvent]) -> dict[str, tuple]:
    """id -> (stream, effective) for superseded ids found in the log or the batch."""
    out = {e.id: (e.stream, e.effective.isoformat()) for e in batch if e.id in set(ids)}
    missing = [i for i in ids if i not in out]
    for i in range(0, len(missing), CHUNK):
        for r in conn.execute(select(events.c.id, events.c.stream, events.c.effective)
                              .where(events.c.id.in_(missing[i:i + CHUNK]))):
            out[r.id] = (r.stream, r.effective)
    return out


def _check_references(batch: list[NewEvent], rows, sup_rows) -> None:
    """Streams must exist before non-opening events; references must resolve."""
    firsts: dict[str, str] = {}
    for ev in sorted(batch, key=lambda e: e.effective):
        if EVENT_TYPES[ev.type][0]:
            firsts.setdefault(ev.stream, ev.effective.isoformat())
    new_streams = set(firsts)
    for ev in batch:
        mr = rows[ev.stream]
        eff = ev.effective.isoformat()
        start = min(d for d in (mr.first_effective if mr.exists else None,
                                firsts.get(ev.stream)) if d) if (mr.exists or ev.stream in firsts) \
            else None
        if not EVENT_TYPES[ev.type][0]:
            if start is None:
                _fail(ev, "stream", f"measure {ev.stream!r} does not exist yet; its first event "
                                    f"must open it (imposed, announced, opened, observed, "
                                    f"meeting, statement or ruling)")
            if eff < start and ev.type not in SUPERSEDING_TYPES:
                _fail(ev, "effective", f"{eff} is before measure {ev.stream!r} exists "
                                       f"(its first event is effective {start})")
        affects = list(ev.payload.get("affects", ()))
        if len(set(affects)) != len(affects):  # one link row per measure
            _fail(ev, "affects", "names the same measure more than once")
        for s in affects:
            if not rows[s].exists and s not in new_streams:
                _fail(ev, "affects", f"unknown measure {s!r}")
        for i in ev.payload.get("supersedes", ()):
            if i not in sup_rows:
                _fail(ev, "supersedes", f"unknown event id {i!r}")
            if ev.type == "correction" and sup_rows[i][0] != ev.stream:
                _fail(ev, "supersedes", f"a correction must be in the stream of the event it "
                                        f"corrects ({sup_rows[i][0]})")


def _check_triggers(conn: Connection, dialect: str) -> None:
    if dialect == "sqlite":
        names = set(conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        wanted = {f"{t}_no_{v}" for t in ("events", "event_links") for v in ("update", "delete")}
    else:
        names = set(conn.execute(text(
            # on this schema's log tables only; a disabled trigger protects nothing
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' AND "
            "tgrelid IN (to_regclass('events'), to_regclass('event_links'))")).scalars())
        wanted = {f"{t}_no_{v}" for t in ("events", "event_links") for v in ("change", "truncate")}
    missing = sorted(wanted - names)
    if missing:
        raise IntegrityError(f"immutability triggers missing: {', '.join(missing)} — the log "
                             f"can be altered without trace", None)


def stderr(msg: str) -> None:
    """Print a notice on standard error."""
    print(msg, file=sys.stderr)
