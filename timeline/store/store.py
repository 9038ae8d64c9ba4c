"""The Store: the one writer of the log, and the door every read goes through.

Opening (create, migrate, refuse a foreign schema) and the read snapshot live here; the jobs
the store delegates each have a module named for them: `creation` (an atomic new file),
`append` and `admission` (a batch and what it must satisfy), `checks` (verify and the
projection-head check), `definitions` (the triggers and views the migrations make),
`copy_log`, `locking` (the writers' lock).

Appends are one transaction per batch: validation, optimistic concurrency, the hash chain,
the cross-stream links and the projections all commit together or not at all. Reads go
through `Store.reading()`, which hands out a `Reader` over one snapshot and translates
driver errors in one place.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from timeline.errors import ReadOnlyError, StoreError
from timeline.files import kind_of_mode
from timeline.log import db as dbmod
from timeline.log import migrate
from timeline.log.chain import Head
from timeline.log.driver import ReadOnlyPool
from timeline.log.events import NewEvent, uuid7
from timeline.projections.reader import Reader
from timeline.store.checks import check_projection_head
from timeline.store.results import AppendResult, StateChange

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# The write side (append, rebuild, copy, verify, creation) is imported when it is used: it
# needs SQLAlchemy, which a read of a SQLite file opened read-only never imports (below).

__all__ = ["Store", "AppendResult", "StateChange", "Head"]

Announce = Callable[[str], None]


class Store:
    """An open timeline database.

    A SQLite file opened read-only is read on the driver alone (`timeline.log.driver`):
    its reads, revision check and projection-head check import no SQLAlchemy; its
    `engine` is made on first use (`timeline sql`, `verify`). Other stores read and write
    through a SQLAlchemy engine."""

    # seconds a read may run before it is stopped (None: no limit); the CLI's --timeout
    timeout: float | None = None

    def __init__(self, engine: Engine | None, url: str, path: Path | None,
                 readonly: bool = False):
        self._engine, self.url, self.path, self.readonly = engine, url, path, readonly
        self._driver = ReadOnlyPool(path) if readonly and path is not None else None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (made on first use by a driver-read store)."""
        if self._engine is None:
            self._engine = dbmod.make_engine(self.url, readonly=self.readonly)
        return self._engine

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
            return cls._read_only(url, path)
        if readonly and path is not None:
            return cls._read_only(url, path)
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
                from timeline.store.creation import seed_events

                n = len(store.append(seed_events()).appended)
                if announce:
                    announce(f"timeline: {store.where} held a schema but no events; "
                             f"completed it with the {n} bundled seed events")
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _read_only(cls, url: str, path: Path) -> "Store":
        """A SQLite file opened read-only, on the driver alone; its revision checked as an
        engine's open checks it (one look, refused unless it is the code's)."""
        store = cls(None, url, path, True)
        try:
            with dbmod.driver_errors(store.where):
                conn = store._driver.acquire()  # type: ignore[union-attr]  # set: a path
                try:
                    migrate.check(conn, store.where)  # type: ignore[arg-type]  # its part
                finally:
                    store._driver.give_back(conn)  # type: ignore[union-attr]
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
        """Create a new SQLite file with the schema and (by default) the bundled seeds,
        atomically (creation.build_atomically)."""
        from timeline.store.creation import build_atomically

        def build(tmp_url: str, tmp: Path) -> int:
            building = cls(dbmod.make_engine(tmp_url), tmp_url, tmp)
            try:
                return building.initialise(seeds=seeds)
            finally:
                building.close()  # checkpoints the WAL before the file is linked

        n = build_atomically(path, build)
        if announce:
            announce(f"timeline: created {path} (schema {migrate.HEAD_REVISION}, "
                     f"{n} seed events loaded)")
        return cls(dbmod.make_engine(url), url, path)

    def initialise(self, *, announce: Announce | None = None, seeds: bool = True) -> int:
        """Run migrations to head and load the bundled seeds; returns events appended."""
        with dbmod.driver_errors(self.where):
            migrate.upgrade(self.engine)
        from timeline.store.creation import seed_events

        n = len(self.append(seed_events()).appended) if seeds else 0
        if announce:
            announce(f"timeline: created {self.where} (schema {migrate.HEAD_REVISION}, "
                     f"{n} seed events loaded)")
        return n

    def _refold_if_stale(self, announce: Announce | None) -> None:
        """Rebuild projections another fold version built (see maintain.refold_if_stale)."""
        from timeline.projections import maintain
        from timeline.store.locking import write_lock

        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            write_lock(conn, self.where)
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
        return "sqlite" if self._driver is not None else self.engine.dialect.name

    def close(self) -> None:
        """Release connections."""
        if self._driver is not None:
            self._driver.close()
        if self._engine is not None:
            self._engine.dispose()

    # -- reading -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, *, check: bool = True) -> Iterator[Reader]:
        """A Reader over one consistent snapshot; driver errors become StoreErrors here.

        With `check` (every query), the snapshot is refused when the projections do not
        reflect the log's head: the log was changed behind the store's back.
        """
        if self._driver is not None:
            with self._reading_driver(check) as r:
                yield r
            return
        with dbmod.driver_errors(self.where):
            with self.engine.connect() as conn:
                with dbmod.read_transaction(conn), \
                        dbmod.time_limit(conn, self.timeout, self.where):
                    if check:
                        check_projection_head(conn, self.where)
                    yield Reader(conn, self.where)

    @contextlib.contextmanager
    def _reading_driver(self, check: bool) -> Iterator[Reader]:
        """`reading()` on the driver alone: the same snapshot (one deferred BEGIN on a
        read-only connection), time limit, head check and error translation."""
        with dbmod.driver_errors(self.where):
            conn = self._driver.acquire()  # type: ignore[union-attr]  # a driver store
            try:
                conn.raw.execute("BEGIN")
                with dbmod.time_limit(conn, self.timeout, self.where):
                    if check:
                        check_projection_head(conn, self.where)  # type: ignore[arg-type]
                    yield Reader(conn, self.where)  # type: ignore[arg-type]
            finally:
                self._driver.give_back(conn)  # type: ignore[union-attr]

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
        from timeline.log.validation import admit
        from timeline.store.admission import check_batch_ids
        from timeline.store.append import append_in
        from timeline.store.locking import write_lock

        # the one admission of each event: what a loader admitted is taken as it is
        checked = [admit(ev) for ev in new]
        offered = [ev if ev.id else replace(ev, id=uuid7()) for ev in checked]
        check_batch_ids(offered)
        with dbmod.driver_errors(self.where), self.engine.connect() as conn:
            trans = conn.begin()
            try:
                write_lock(conn, self.where)
                # appending to a log changed behind our back would extend the forgery
                check_projection_head(conn, self.where)
                res = append_in(conn, offered, dict(expected_versions or {}), dry_run)
            except BaseException:
                trans.rollback()
                raise
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
            return res

    def copy_from(self, source: "Store") -> tuple[Head, int]:
        """Copy `source`'s whole log, hash chain intact, into this empty store (copy_log)."""
        if self.readonly:
            raise ReadOnlyError(f"{self.where} is open read-only")
        from timeline.store.copy_log import copy_log

        return copy_log(self.engine, self.where, source.reading)

    # -- verification --------------------------------------------------------------------
    def verify(self, *, quick: bool = False) -> Head:
        """Check everything a reader trusts; raise IntegrityError naming every finding."""
        from timeline.store.checks import verify

        return verify(self.reading, self.dialect, self.where, quick=quick)

    def rebuild(self, progress=None) -> int:
        """Rebuild every projection (and the links) from the log in one transaction; returns
        streams folded."""
        if self.readonly:
            raise ReadOnlyError(f"{self.where} is open read-only")
        from timeline.projections import maintain
        from timeline.store.locking import write_lock

        with dbmod.driver_errors(self.where), self.engine.begin() as conn:
            write_lock(conn, self.where)
            return maintain.rebuild(conn, progress)
