"""The Store: the one writer of the log, and the door every read goes through.

Appends are one transaction per batch: validation, optimistic concurrency, the hash chain,
the cross-stream links and the projections all commit together or not at all. Reads go
through `Store.reading()`, which hands out a `Reader` over one snapshot and translates
driver errors in one place.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from timeline.errors import (ConcurrencyError, EventValidationError, IntegrityError,
                             ReadOnlyError, StoreError)
from timeline.files import fsync_path, kind_of_mode, pid_alive
from timeline.log import db as dbmod
from timeline.log import migrate
from timeline.log.chain import ChainChecker, Head
from timeline.log.db import IN_CHUNK, run_sql
from timeline.log.events import (SCHEMA_VERSION, Event, NewEvent, canonical_json, chain_hash,
                                 loads, row_to_event, uuid7)
from timeline.log.events import reject as _fail
from timeline.log.vocabulary import EVENT_TYPES, SUPERSEDING_TYPES
from timeline.log.schema import events
from timeline.projections import maintain
from timeline.projections.fold import FoldEvent
from timeline.projections.reader import Reader
from timeline.resources import seeds_path

__all__ = ["Store", "AppendResult", "Head"]

EVENT_COLS = ("position", "id", "stream", "version", "type", "schema_version", "effective",
              "announced", "known", "recorded_at", "payload", "source", "prev_hash", "hash")
INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLS))})")
# PostgreSQL: the key of the transaction-level advisory lock that serialises writers (SQLite
# serialises them with BEGIN IMMEDIATE); see docs/guarantees.md for why.
PG_WRITE_LOCK = 0x74696D656C696E65  # "timeline"
COPY_BATCH = 5000

Announce = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did (or, for a dry run, would do): the events written, how many
    offered ones were already there, and for a dry run the state changes it would make."""

    appended: list[Event]
    skipped: int
    changes: list["StateChange"] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StateChange:
    """How one measure's state over valid time would change: (date, field, before, after)."""

    stream: str
    new: bool
    differences: list[tuple[str, str, object, object]]


class Store:
    """An open timeline database."""

    # seconds a read may run before it is stopped (None: no limit); the CLI's --timeout
    timeout: float | None = None

    def __init__(self, engine: Engine, url: str, path: Path | None, readonly: bool = False):
        self.engine, self.url, self.path, self.readonly = engine, url, path, readonly

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, db: str | None = None, *, readonly: bool = False, create: bool = False,
             seeds: bool = True, upgrade: bool = False, announce: Announce | None = None
             ) -> "Store":
        """Open a database: the one open-or-create path of every command and the API.

        A missing SQLite file is created (migrations, then the bundled seeds unless
        `seeds=False`) when `create` is set or it is the default database; a database
        without a schema is initialised when `create` is set; an older schema is migrated
        when `upgrade` is set and refused otherwise.
        """
        url, path, is_default = dbmod.resolve(db)
        if path is not None and path.is_dir():
            raise StoreError(f"{path} is a directory, not a database file")
        if path is not None and path.exists():
            # a FIFO or device would hang SQLite's open or feed it endless bytes
            what = kind_of_mode(os.stat(path).st_mode)
            if what:
                raise StoreError(f"{path} is {what}, not a database file")
        if path is not None and not path.exists():
            if not (create or is_default):
                raise StoreError(f"no database at {path}; create it with "
                                 f"`timeline init --db {path}`")
            store = cls._create_file(url, path, announce=announce, seeds=seeds)
            if not readonly:
                return store
            store.close()
            return cls(dbmod.make_engine(url, readonly=True), url, path, True)
        store = cls(dbmod.make_engine(url, readonly=readonly), url, path, readonly)
        # every read, and a writer that may neither create nor upgrade: one look at the
        # revision, on one connection, refused unless it is the code's
        plain = readonly or not (create or upgrade)
        try:
            with dbmod.driver_errors(store.where), store.engine.connect() as conn:
                rev = (migrate.check(conn, store.where) if plain
                       else migrate.current_revision(conn))
            if not plain and rev is None and create:
                store.initialise(announce=announce, seeds=seeds)
            elif not plain and rev is not None and upgrade and rev != migrate.HEAD_REVISION:
                migrate.check_known(rev, store.where)
                with dbmod.driver_errors(store.where):
                    migrate.upgrade(store.engine)
                if announce:
                    announce(f"{store.where}: schema upgraded from {rev} to "
                             f"{migrate.HEAD_REVISION}")
            elif not plain:
                with dbmod.driver_errors(store.where), store.engine.connect() as conn:
                    migrate.check(conn, store.where)
            if not plain and upgrade and rev is not None:
                store._refold_if_stale(announce)
            if rev is not None and (create or is_default) and seeds and not readonly \
                    and store.count() == 0:
                # a log with a schema and no events: what a creation killed before its
                # seeds committed left behind (before creation became atomic)
                n = len(store.append(_seed_events()).appended)
                if announce:
                    announce(f"timeline: {store.where} held a schema but no events; "
                             f"completed it with the {n} bundled seed events")
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, url: str, *, announce: Announce | None = None,
               seeds: bool = True) -> "Store":
        """Create a database (schema, then the bundled seeds unless `seeds=False`); the same
        path as `open(url, create=True)`."""
        return cls.open(url, create=True, seeds=seeds, announce=announce)

    @classmethod
    def _create_file(cls, url: str, path: Path, *, announce: Announce | None,
                     seeds: bool) -> "Store":
        """Create a new SQLite file with the schema and (by default) the bundled seeds.

        The file is built beside its final path under a temporary name and linked into
        place only once the migrations and the seed load have committed: a process killed
        at any moment leaves no database or a complete one, never a half-built one.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        _remove_stale_builds(path)
        tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
        _remove_db_files(tmp)
        tmp_url = f"sqlite:///{tmp}"
        building = cls(dbmod.make_engine(tmp_url), tmp_url, tmp)
        try:
            n = building.initialise(seeds=seeds)
            building.close()
            if Path(f"{tmp}-wal").exists() and Path(f"{tmp}-wal").stat().st_size:
                raise StoreError(f"{tmp}: the write-ahead log was not checkpointed; "
                                 f"nothing was created")
            fsync_path(tmp)
            _link_into_place(tmp, path)
            fsync_path(path.parent)
        except BaseException:
            building.close()
            raise
        finally:
            _remove_db_files(tmp)
        if announce:
            announce(f"timeline: created {path} (schema {migrate.HEAD_REVISION}, "
                     f"{n} seed events loaded)")
        return cls(dbmod.make_engine(url), url, path)

    def initialise(self, *, announce: Announce | None = None, seeds: bool = True) -> int:
        """Run migrations to head and load the bundled seeds; returns events appended."""
        with dbmod.driver_errors(self.where):
            migrate.upgrade(self.engine)
        n = len(self.append(_seed_events()).appended) if seeds else 0
        if announce:
            announce(f"timeline: created {self.where} (schema {migrate.HEAD_REVISION}, "
                     f"{n} seed events loaded)")
        return n

    def _refold_if_stale(self, announce: Announce | None) -> None:
        """Rebuild projections another fold version built (see maintain.refold_if_stale)."""
        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            _write_lock(conn, self.where)
            found = maintain.refold_if_stale(conn)
        if found is not None and announce:
            announce(f"{self.where}: projections rebuilt (they were built by fold version "
                     f"{found or 'unknown'}; this timeline folds with version "
                     f"{maintain.FOLD_VERSION})")

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

    # -- reading -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, *, check: bool = True) -> Iterator[Reader]:
        """A Reader over one consistent snapshot; driver errors become StoreErrors here.

        With `check` (every query), the snapshot is refused when the projections do not
        reflect the log's head: the log was changed behind the store's back.
        """
        with dbmod.driver_errors(self.where):
            with self.engine.connect() as conn:
                with dbmod.read_transaction(conn), \
                        dbmod.time_limit(conn, self.timeout, self.where):
                    if check:
                        _check_projection_head(conn, self.where)
                    yield Reader(conn, self.where)

    def head(self) -> Head:
        """Position and hash of the last event."""
        with self.reading() as r:
            return r.head()

    def count(self) -> int:
        """Number of events in the log."""
        with self.reading() as r:
            return r.count()

    def revision(self) -> str | None:
        """The schema revision."""
        with self.reading() as r:
            return r.revision()

    @contextlib.contextmanager
    def user_sql(self) -> Iterator[Connection]:
        """The connection `timeline sql` runs a user's statement on: read-only stores only.

        This is the one place a connection leaves the store, because running the user's own
        SQL is that surface's purpose; its guards are in `timeline.store.readonly_sql`.
        """
        if not self.readonly:
            raise ReadOnlyError("timeline sql needs a store opened read-only")
        with dbmod.driver_errors(self.where), self.engine.connect() as conn:
            yield conn

    # -- appending -----------------------------------------------------------------------
    def append(self, new: Sequence[NewEvent],
               expected_versions: Mapping[str, int] | None = None, *,
               dry_run: bool = False) -> AppendResult:
        """Append a batch atomically; already-present ids with the same content are skipped
        (idempotent), with other content refused. `dry_run` does everything in a
        transaction that is rolled back, and reports the state changes it would make."""
        if self.readonly:
            raise ReadOnlyError(f"{self.where} is open read-only")
        # imported on a write: a read (the CLI's queries) need not load the schema's structs
        from timeline.log.validation import validate

        for ev in new:
            validate(ev)
        offered = [ev if ev.id else ev.with_id(uuid7()) for ev in new]
        _check_batch_ids(offered)
        with dbmod.driver_errors(self.where), self.engine.connect() as conn:
            trans = conn.begin()
            try:
                _write_lock(conn, self.where)
                # appending to a log changed behind our back would extend the forgery
                _check_projection_head(conn, self.where)
                res = self._append_in(conn, offered, dict(expected_versions or {}), dry_run)
            except BaseException:
                trans.rollback()
                raise
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
            return res

    def _append_in(self, conn: Connection, offered: list[NewEvent],
                   expected: dict[str, int], dry_run: bool = False) -> AppendResult:
        present = _existing(conn, [e.id for e in offered])  # type: ignore[misc]  # ids given
        batch, seen = [], set()
        for ev in offered:
            if ev.id in present:
                _same_as_stored(ev, present[ev.id])
                continue
            if ev.id in seen:
                continue
            seen.add(ev.id)
            batch.append(ev)
        skipped = len(offered) - len(batch)
        own_streams = {e.stream for e in batch}
        referenced = {s for e in batch for s in e.payload.get("affects", ())}
        sup_ids = [i for e in batch if e.type in SUPERSEDING_TYPES for i in e.payload["supersedes"]]
        sup_rows = _superseded(conn, sup_ids, batch)
        res_rows = _superseded(conn, [i for e in batch for i in e.payload.get("resolves", ())],
                               batch)
        rows = maintain.load_measures(
            conn, own_streams | referenced | {r[0] for r in sup_rows.values()} | set(expected))
        for stream, want in expected.items():
            if rows[stream].version != want:
                raise ConcurrencyError(stream, want, rows[stream].version)
        if not batch:
            return AppendResult([], skipped, dry_run=dry_run)
        _check_references(batch, rows, sup_rows)
        _check_resolved(batch, res_rows)
        _check_supersession_cycles(batch)
        touched = sorted(own_streams | referenced | {r[0] for r in sup_rows.values()})
        before = _histories(conn, touched) if dry_run else {}

        head = _head(conn)
        now = dt.datetime.now(dt.timezone.utc)
        recorded_at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        today = now.date().isoformat()
        prev, pos = head.hash, head.position
        ev_rows, link_rows, fold_events = [], [], []
        reach: dict[str, list[FoldEvent]] = {}
        for ev in batch:
            pos += 1
            mr = rows[ev.stream]
            mr.version += 1
            if (mr.title is None and not mr.exists) or ev.type == "retitled":
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
            # checked events: ids assigned, `known` a date's text, payload and source dicts
            fold_events.append(FoldEvent(pos, ev.id, ev.stream,  # type: ignore[arg-type]
                                         ev.type, eff, row["known"],  # type: ignore[arg-type]
                                         ev.payload, ev.source))  # type: ignore[arg-type]
            for s in {sup_rows[i][0] for i in ev.payload.get("supersedes", ())} - {ev.stream}:
                reach.setdefault(s, []).append(fold_events[-1])
        tuples = [tuple(r[c] for c in EVENT_COLS) for r in ev_rows]
        run_sql(conn, INSERT_EVENT, tuples)
        if link_rows:
            run_sql(conn, "INSERT INTO event_links (stream, position, role) VALUES (?, ?, ?)",
                    link_rows)
        withdrawn: dict[str, list[str]] = {}
        for i in sup_ids:
            stream, eff, _ = sup_rows[i]
            withdrawn.setdefault(stream, []).append(eff)
        maintain.apply_batch(conn, fold_events, rows, withdrawn, reach)
        maintain.record_head(conn, pos, prev)
        changes = _changes(before, _histories(conn, touched)) if dry_run else []
        # EVENT_COLS is Event's field order: positional construction, no dict per event
        # (a checker sees the row tuple's element union, not the columns' types)
        return AppendResult([Event(*t[:10], loads(t[10]),  # type: ignore[arg-type, call-arg]
                                   loads(t[11]), t[12], t[13])  # type: ignore[arg-type]
                             for t in tuples], skipped, changes, dry_run)

    def copy_from(self, source: "Store") -> tuple[Head, int]:
        """Copy `source`'s whole log, rows as they are, into this empty store.

        Positions, ids, versions, recorded_at and hashes are kept, so the copy carries the
        same hash chain; the source's chain is checked row by row as it is read, and the
        events, links and rebuilt projections commit in one transaction. Returns the head
        copied and the number of links.
        """
        if self.readonly:
            raise ReadOnlyError(f"{self.where} is open read-only")
        checker = ChainChecker("source log")
        with source.reading(check=False) as src, \
                dbmod.driver_errors(self.where), self.engine.begin() as dst:
            _write_lock(dst, self.where)
            present = dst.execute(select(func.count()).select_from(events)).scalar_one()
            if present:
                raise StoreError(f"{self.where} already holds {present} events; copy needs "
                                 f"an empty target (nothing was written)")
            buf: list[dict] = []
            for row in src.event_rows(COPY_BATCH):
                try:
                    checker.check(row)
                except IntegrityError as exc:
                    raise IntegrityError(f"{exc}; nothing was copied", exc.position) from None
                buf.append(row)
                if len(buf) >= COPY_BATCH:
                    dst.execute(insert(events), buf)
                    buf.clear()
            if buf:
                dst.execute(insert(events), buf)
            # the links are recomputed from the copied events: a row the source holds that no
            # event implies never travels (the source's verify names it first)
            _, links = maintain.repair_links(dst)
            maintain.rebuild(dst)
        return checker.head, links

    # -- verification --------------------------------------------------------------------
    def verify(self, *, quick: bool = False) -> Head:
        """Check everything a reader trusts; raise IntegrityError naming the first fault.

        The immutability triggers (definition and enabled state), the documented views'
        definitions and the projections' recorded head; then, unless `quick`, the whole
        hash chain and the projections against a fresh fold of the log.
        """
        checker = ChainChecker()
        findings: list[IntegrityError] = []

        def finding(check, *args) -> bool:
            try:
                check(*args)
            except IntegrityError as exc:
                findings.append(exc)
                return False
            return True

        with self.reading(check=False) as r:
            finding(_check_triggers, r.conn, self.dialect)
            finding(_check_views, r.conn, self.dialect)
            if quick:
                head = _head(r.conn)
                finding(_check_projection_head, r.conn, self.where, head)
                finding(_check_links, r.conn, True)
            else:
                def walk():
                    for row in r.event_rows(10_000):
                        checker.check(row)
                        # an intact event today's schema refuses: a finding, not a stop
                        finding(_check_stored, row)
                chain_ok = finding(walk)
                head = checker.head
                finding(_check_links, r.conn, False)
                if chain_ok and finding(_check_projection_head, r.conn, self.where, head):
                    diff = maintain.first_difference(r.conn)
                    if diff:
                        findings.append(IntegrityError(
                            f"projections altered: {diff}; run `timeline rebuild` to "
                            f"recompute them from the log"))
        if findings:
            # every finding named; the position is the chain's, when it broke
            position = next((f.position for f in findings if f.position is not None), None)
            raise IntegrityError("; ".join(str(f) for f in findings), position)
        return head

    def rebuild(self, progress=None) -> int:
        """Rebuild every projection (and the links) from the log in one transaction; returns
        streams folded."""
        if self.readonly:
            raise ReadOnlyError(f"{self.where} is open read-only")
        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            _write_lock(conn, self.where)
            return maintain.rebuild(conn, progress)


def _check_stored(row: dict) -> None:
    """An intact stored event that today's schema refuses (written by an earlier version):
    named as a finding, with its position and field."""
    from timeline.log.validation import validate

    try:
        ev = row_to_event(row)
        # validate() reads a stored event's ISO dates as they are
        validate(NewEvent(ev.stream, ev.type, ev.effective,  # type: ignore[arg-type]
                          ev.payload, ev.source,
                          ev.known, ev.announced, ev.id))  # type: ignore[arg-type]
    except EventValidationError as exc:
        raise IntegrityError(f"event at position {row['position']} is intact but fails the "
                             f"event schema: field {exc.field!r}: {exc.message} (it was "
                             f"admitted by an earlier version; queries fold it as stored)",
                             row["position"]) from None
    except ValueError as exc:  # not even JSON (e.g. NaN written by an earlier version)
        raise IntegrityError(f"event at position {row['position']} is intact but its "
                             f"payload is not valid JSON: {exc}", row["position"]) from None


def _seed_events() -> list[NewEvent]:
    """The bundled seed events (the loader is imported here: a query never needs it)."""
    from timeline.log.loader import load_paths

    return load_paths([seeds_path()])


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _remove_stale_builds(path: Path) -> None:
    """Delete what a creator killed mid-build left beside `path` (its process is gone)."""
    for leftover in path.parent.glob(f".{path.name}.creating-*"):
        m = re.search(r"\.creating-(\d+)", leftover.name)
        if m and not pid_alive(int(m.group(1))):
            leftover.unlink(missing_ok=True)


def _link_into_place(tmp: Path, path: Path) -> None:
    """Give the finished file its name, unless another process created it meanwhile."""
    try:
        os.link(tmp, path)  # atomic, and refuses to replace an existing file
    except FileExistsError:
        pass  # another creator won the race: its complete database is used
    except OSError:
        os.replace(tmp, path)  # a file system without hard links: still atomic


def _histories(conn: Connection, streams: list[str]) -> dict[str, list[tuple[str, dict]]]:
    r = Reader(conn)
    return {s: [(row.valid_from, row.state) for row in r.history(s)] for s in streams}


def _changes(before: dict, after: dict) -> list[StateChange]:
    """Per measure, each date whose state differs, and the fields that differ there."""
    out = []
    for stream in sorted(after):
        old, new = dict(before.get(stream, ())), dict(after[stream])
        diffs = []
        for day in sorted(set(old) | set(new)):
            a, b = _in_force(before.get(stream, ()), day), _in_force(after[stream], day)
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name) and name != "scheduled":
                    diffs.append((day, name, a.get(name), b.get(name)))
        if diffs or not old:
            out.append(StateChange(stream, not old, diffs))
    return out


def _in_force(intervals, day: str) -> dict:
    state = {}
    for start, st in intervals:
        if start <= day:
            state = st
    return state


def _write_lock(conn: Connection, where: str = "database") -> None:
    """PostgreSQL: queue behind any other writer until this transaction ends, for at most
    the busy timeout (TIMELINE_BUSY_TIMEOUT_MS), then fail naming who holds the lock (SQLite
    waits in its own busy handler)."""
    if conn.dialect.name != "postgresql":
        return
    if run_sql(conn, "SELECT pg_try_advisory_xact_lock(?)", (PG_WRITE_LOCK,)).scalar_one():
        return  # nobody writing: one round trip
    # queue (fairly, in the server's lock manager) under lock_timeout, which the server
    # applies to advisory locks too; a savepoint keeps the transaction usable after it
    wait_ms = dbmod.busy_timeout_ms()
    before = run_sql(conn, "SELECT current_setting('lock_timeout')").scalar_one()
    run_sql(conn, "SAVEPOINT timeline_write_lock")
    # lock_timeout 0 would mean no limit: a zero busy timeout waits a millisecond
    run_sql(conn, "SELECT set_config('lock_timeout', ?, true)", (str(max(wait_ms, 1)),)).first()
    try:
        run_sql(conn, "SELECT pg_advisory_xact_lock(?)", (PG_WRITE_LOCK,)).first()
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        run_sql(conn, "ROLLBACK TO SAVEPOINT timeline_write_lock")
        raise StoreError(f"{where} is busy: {_lock_holder(conn)} held the writers' lock for "
                         f"more than {wait_ms / 1000:g} s (TIMELINE_BUSY_TIMEOUT_MS); try "
                         f"again") from None
    run_sql(conn, "RELEASE SAVEPOINT timeline_write_lock")
    run_sql(conn, "SELECT set_config('lock_timeout', ?, true)", (before,)).first()


def _lock_holder(conn: Connection) -> str:
    """Who holds the writers' advisory lock, as far as this role may see."""
    row = run_sql(conn, "SELECT l.pid, a.usename, a.application_name FROM pg_locks l "
                        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
                        "'advisory' AND l.granted AND l.classid = ? AND l.objid = ? AND "
                        "l.objsubid = 1 LIMIT 1",
                  (PG_WRITE_LOCK >> 32, PG_WRITE_LOCK & 0xFFFFFFFF)).first()
    if row is None:
        return "another session"
    pid, user, app = row
    return (f"another session (server process {pid}"
            + (f", user {user}" if user else "") + (f", application {app!r}" if app else "")
            + ")")


def _head(conn: Connection) -> Head:
    with_row = run_sql(conn, "SELECT position, hash FROM events ORDER BY position DESC "
                             "LIMIT 1").first()
    return Head(with_row[0], with_row[1]) if with_row else ChainChecker().head


_CONTENT_COLS = "id, position, stream, type, effective, announced, known, payload, source"


def _existing(conn: Connection, ids: list[str]) -> dict[str, tuple]:
    """id -> the stored row's (position, stream, type, effective, announced, known, payload,
    source) for the ids already in the log."""
    found: dict[str, tuple] = {}
    for i in range(0, len(ids), IN_CHUNK):
        part = tuple(ids[i:i + IN_CHUNK])
        for r in run_sql(conn, f"SELECT {_CONTENT_COLS} FROM events WHERE id IN "
                               f"({', '.join('?' * len(part))})", part):
            found[r[0]] = tuple(r[1:])
    return found


def _content(ev: NewEvent) -> tuple:
    """What makes an event the same event: everything but position, version and times."""
    return (ev.stream, ev.type, ev.effective.isoformat(),
            ev.announced.isoformat() if ev.announced else None,
            canonical_json(ev.payload), canonical_json(ev.source))


def _same_as_stored(ev: NewEvent, row: tuple) -> None:
    """An id already in the log may be offered again only with the same content."""
    position, stream, type_, effective, announced, known, payload, source = row
    stored = (stream, type_, effective, announced, payload, source)
    offered = _content(ev)
    names = ("stream", "type", "effective", "announced", "payload", "source")
    differs = [n for n, a, b in zip(names, offered, stored) if a != b]
    if ev.known is not None and ev.known.isoformat() != known:
        differs.append("known")
    if differs:
        _fail(ev, "id", f"conflict: id {ev.id} is already in the log at position {position} "
                        f"with other content ({', '.join(differs)} differ); an event cannot "
                        f"be changed — append a correction instead. Nothing was written")


def _check_batch_ids(offered: list[NewEvent]) -> None:
    """Within one append, an id offered twice must carry the same content both times."""
    first: dict[str | None, NewEvent] = {}
    for ev in offered:
        other = first.setdefault(ev.id, ev)
        if other is not ev and (_content(other), other.known) != (_content(ev), ev.known):
            where = other.origin or "earlier in the batch"
            _fail(ev, "id", f"conflict: id {ev.id} is also used at {where} with other "
                            f"content; nothing was written")


def _superseded(conn: Connection, ids: list[str], batch: list[NewEvent]) -> dict[str, tuple]:
    """id -> (stream, effective, type) for superseded ids found in the log or the batch."""
    wanted = set(ids)
    out = {e.id: (e.stream, e.effective.isoformat(), e.type) for e in batch if e.id in wanted}
    missing = [i for i in ids if i not in out]
    for i in range(0, len(missing), IN_CHUNK):
        for r in conn.execute(select(events.c.id, events.c.stream, events.c.effective,
                                     events.c.type)
                              .where(events.c.id.in_(missing[i:i + IN_CHUNK]))):
            out[r.id] = (r.stream, r.effective, r.type)
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
            if sup_rows[i][2] == "retraction":
                _fail(ev, "supersedes", f"event {i} is itself a retraction; a retraction is "
                                        f"final (append the withdrawn event again instead)")
            if ev.type == "correction" and sup_rows[i][0] != ev.stream:
                _fail(ev, "supersedes", f"a correction must be in the stream of the event it "
                                        f"corrects ({sup_rows[i][0]})")


def _check_resolved(batch: list[NewEvent], res_rows: dict[str, tuple]) -> None:
    """A settled dispute must be a report already in the log (or the batch), same measure."""
    for ev in batch:
        for i in ev.payload.get("resolves", ()):
            if i not in res_rows:
                _fail(ev, "resolves", f"unknown event id {i!r}")
            if res_rows[i][0] != ev.stream:
                _fail(ev, "resolves", f"event {i} reports on {res_rows[i][0]}: a resolution "
                                      f"settles disputes of its own measure")


def _check_supersession_cycles(batch: list[NewEvent]) -> None:
    """Refuse events that supersede each other, over any number of steps: the fold would
    withdraw them all. Only a batch can hold a cycle (a stored event names older ids)."""
    edges = {e.id: list(e.payload.get("supersedes", ())) for e in batch
             if e.type in SUPERSEDING_TYPES}
    by_id = {e.id: e for e in batch}
    done: set[str | None] = set()
    for start in edges:
        if start in done:
            continue
        # depth-first without recursion (a chain of corrections may be long)
        path, stack = [start], [iter(edges[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path.pop())
            elif nxt in path:
                cycle = path[path.index(nxt):] + [nxt]
                _fail(by_id[cycle[0]], "supersedes",
                      f"supersession cycle: {' -> '.join(cycle)}; events that supersede each "
                      f"other would all be withdrawn. Nothing was written")
            elif nxt in edges and nxt not in done:
                path.append(nxt)
                stack.append(iter(edges[nxt]))


def _check_projection_head(conn: Connection, where: str, head: Head | None = None) -> None:
    """Refuse when the projections were not brought up to the log's head (see 0005)."""
    head = head or _head(conn)
    recorded = maintain.recorded_head(conn)
    if recorded is not None and recorded[:2] == (head.position, head.hash) \
            and recorded[2] != maintain.FOLD_VERSION:
        raise IntegrityError(
            f"{where}: the projections were built by fold version {recorded[2] or 'unknown'} "
            f"(an earlier version of timeline); this version folds with version "
            f"{maintain.FOLD_VERSION}, and its answers may differ: run `timeline init` or "
            f"`timeline rebuild` to recompute them", None)
    if recorded is None or recorded[:2] != (head.position, head.hash):
        pos = "nothing" if recorded is None else f"position {recorded[0]}"
        raise IntegrityError(
            f"{where}: the log changed behind the store's back: the projections reflect "
            f"{pos}, the log's head is position {head.position} ({head.hash[:12]}); run "
            f"`timeline verify` to find what changed, then `timeline rebuild` once the log "
            f"is trusted", head.position)


def _check_links(conn: Connection, quick: bool) -> None:
    """event_links holds exactly the links the chained events imply (quick: no row that no
    event implies, asked of the database; full: both ways, from the payloads)."""
    if quick:
        forged = maintain.forged_links(conn)
        diff = (f"a link no event implies ({forged[0][0]!r} at position {forged[0][1]}, role "
                f"{forged[0][2]!r})") if forged else None
    else:
        diff = maintain.link_difference(conn)
    if diff:
        raise IntegrityError(f"event_links altered: {diff}; the links are derived from the "
                             f"events, so `timeline rebuild` recomputes them", None)


def _check_triggers(conn: Connection, dialect: str) -> None:
    """Each immutability trigger exists, is enabled and does what migration 0001 made it do."""
    want = expected_definitions(dialect)["triggers"]
    bad: list[str] = []
    have: dict[str, Any]
    if dialect == "sqlite":
        have = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))}
        for name, sql in sorted(want.items()):
            if name not in have:
                bad.append(f"{name} missing")
            elif _squash(have[name][1]) != _squash(sql):
                bad.append(f"{name} altered (its SQL is not the one the migrations created)")
    else:
        have = {r.tgname: r for r in conn.execute(text(
            # on this schema's log tables only; a disabled trigger protects nothing
            "SELECT t.tgname, c.relname, t.tgenabled, t.tgtype, p.proname, p.prosrc, "
            "l.lanname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang "
            "WHERE NOT t.tgisinternal AND "
            "t.tgrelid IN (to_regclass('events'), to_regclass('event_links'))"))}
        for name, (table, tgtype, func_name, body) in sorted(want.items()):
            r = have.get(name)
            if r is None:
                bad.append(f"{name} missing")
            elif r.tgenabled not in ("O", "A"):
                bad.append(f"{name} disabled")
            elif (r.relname, r.tgtype, r.proname, r.lanname) != (table, tgtype, func_name,
                                                                  "plpgsql"):
                bad.append(f"{name} altered (table, timing, events or function)")
            elif _squash(r.prosrc) != _squash(body):
                bad.append(f"{name} altered (the body of {func_name}() is not the one "
                           f"the migrations created)")
    if bad:
        raise IntegrityError(f"immutability triggers missing or altered: {'; '.join(bad)} — "
                             f"the log can be altered without trace", None)


def _check_views(conn: Connection, dialect: str) -> None:
    """The documented views are the ones migrations 0003 and 0007 made (readers trust them)."""
    want = expected_definitions(dialect)["views"]
    bad: list[str] = []
    if dialect == "sqlite":
        have: dict[str, Any] = dict(conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all())
        for name, sql in sorted(want.items()):
            if name not in have:
                bad.append(f"{name} missing")
            elif _squash(have[name]) != _squash(sql):
                bad.append(f"{name} altered")
    else:
        # the server normalises a view's text: compare with the same SQL made into
        # temporary views, on a connection of its own (a temporary view cannot be made
        # in the reader's READ ONLY transaction) whose transaction is always rolled back
        have = {name: conn.execute(text("SELECT pg_get_viewdef(to_regclass(:v))"),
                                   {"v": name}).scalar() for name in want}
        fresh = {}
        with conn.engine.connect() as scratch:
            scratch = scratch.execution_options(postgresql_readonly=False,
                                                isolation_level="READ COMMITTED")
            tx = scratch.begin()
            try:
                for sql in want.values():
                    scratch.exec_driver_sql(sql.replace("CREATE VIEW", "CREATE TEMP VIEW", 1))
                for name in want:
                    fresh[name] = scratch.execute(text(
                        "SELECT pg_get_viewdef(to_regclass(:v))"),
                        {"v": f"pg_temp.{name}"}).scalar()
            finally:
                tx.rollback()
        for name in sorted(want):
            if have[name] is None:
                bad.append(f"{name} missing")
            elif _squash(have[name]) != _squash(fresh[name]):
                bad.append(f"{name} altered")
    if bad:
        raise IntegrityError(f"documented views missing or altered: {'; '.join(bad)} — "
                             f"their answers cannot be trusted", None)


def _squash(sql: str | None) -> str:
    return " ".join((sql or "").split())


_DEFINITIONS: dict[str, dict] = {}


def expected_definitions(dialect: str) -> dict:
    """The triggers and views as migrations 0001, 0003, 0007, 0009, 0010 and 0011 make them
    on `dialect`.

    Taken from the migration files themselves (run against a recorder, not a database), so
    there is one definition and verify cannot drift from what the migrations made.
    """
    if dialect not in _DEFINITIONS:
        import importlib.util
        import types

        from timeline.resources import migrations_path

        recorded: list[str] = []
        bind = types.SimpleNamespace(dialect=types.SimpleNamespace(name=dialect))
        op = types.SimpleNamespace(get_bind=lambda: bind, execute=recorded.append,
                                   create_table=lambda *a, **k: None,
                                   add_column=lambda *a, **k: None)
        # later migrations that remake a view replace the earlier definition
        for fname in ("0001_event_log.py", "0003_views.py",
                      "0007_view_last_rate_confidence.py", "0009_product_scopes_view.py",
                      "0010_view_projected_refundable.py",
                      "0011_derived_links_fold_version.py"):
            spec = importlib.util.spec_from_file_location(
                f"_timeline_migration_{fname[:4]}", migrations_path() / "versions" / fname)
            mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # a file
            spec.loader.exec_module(mod)  # type: ignore[union-attr]  # a .py file has a loader
            mod.op = op  # type: ignore[attr-defined]  # the fake `op` the migration calls
            mod.upgrade()
        triggers: dict[str, Any]
        views: dict[str, str]
        bodies: dict[str, str]
        triggers, views, bodies = {}, {}, {}
        for sql in recorded:
            words = sql.split()
            if words[:2] == ["CREATE", "TRIGGER"] and dialect == "sqlite":
                triggers[words[2]] = sql
            elif words[:2] == ["CREATE", "FUNCTION"]:
                name = words[2].split("(")[0]
                bodies[name] = sql.split("$$")[1]
            elif words[:2] == ["CREATE", "TRIGGER"]:
                table, func_name = words[words.index("ON") + 1], words[-1].split("(")[0]
                # pg_trigger.tgtype bits: ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16,
                # TRUNCATE 32
                tgtype = (("ROW" in words) * 1 + ("BEFORE" in words) * 2 + ("INSERT" in words) * 4
                          + ("DELETE" in words) * 8 + ("UPDATE" in words) * 16
                          + ("TRUNCATE" in words) * 32)
                triggers[words[2]] = (table, tgtype, func_name, func_name)
            elif words[:2] == ["CREATE", "VIEW"]:
                views[words[2]] = sql.strip()
        for name, (table, tgtype, func_name, _) in list(triggers.items()) \
                if dialect != "sqlite" else ():
            triggers[name] = (table, tgtype, func_name, bodies[func_name])
        _DEFINITIONS[dialect] = {"triggers": triggers, "views": views}
    return _DEFINITIONS[dialect]

