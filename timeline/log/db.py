"""Where the database is, how to connect to it, and how driver errors become ours.

SQLAlchemy is imported only where an engine is made or a URL parsed: the read path of a
SQLite file (`timeline.log.driver`) runs on the driver alone, through the same helpers.
"""
from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timeline.errors import ImmutableLogError, ReadOnlyError, SchemaError, StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

DEFAULT_BUSY_TIMEOUT_MS = 30_000


def busy_timeout_ms() -> int:
    """How long a writer waits for the write lock: TIMELINE_BUSY_TIMEOUT_MS, read when
    asked (a value that is no whole number >= 0 means the default, 30,000 ms)."""
    raw = (os.environ.get("TIMELINE_BUSY_TIMEOUT_MS") or "").strip()
    return int(raw) if raw.isdecimal() else DEFAULT_BUSY_TIMEOUT_MS


BUSY_TIMEOUT_MS = busy_timeout_ms()
# How many ids one bound IN list carries: under SQLite's and psycopg's parameter limits.
IN_CHUNK = 500
# Execution option that marks a read transaction (a deferred BEGIN on SQLite, so that a
# reader of a writable database does not take the write lock).
READ_OPTION = "timeline_read"


def default_db_path() -> Path:
    """The per-user database file: $XDG_DATA_HOME/timeline/timeline.db or the platform's."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "timeline" / "timeline.db"


def user_data_dir() -> Path:
    """Directory for per-user files (history, default database)."""
    return default_db_path().parent


def resolve(db: str | None) -> tuple[str, Path | None, bool]:
    """(SQLAlchemy URL, SQLite file path or None, whether it is the default location)."""
    is_default = False
    if not db:
        db = os.environ.get("TIMELINE_DB")
    if not db:
        db, is_default = str(default_db_path()), True
    if "://" in db:
        url = _parse_url(db)
        if url.get_backend_name() == "sqlite":
            path = Path(url.database) if url.database and url.database != ":memory:" else None
            return db, path, is_default
        return db, None, is_default
    path = Path(db).expanduser().resolve()
    return f"sqlite:///{path}", path, is_default


def _parse_url(db: str):
    """A SQLAlchemy URL, or a StoreError naming what is wrong with it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError:
        raise StoreError(f"--db {db!r} is neither a file path nor a database URL (e.g. "
                         f"sqlite:///PATH or postgresql+psycopg://user@host/db)") from None
    if url.get_backend_name() not in KNOWN_BACKENDS:
        raise StoreError(f"--db {url.render_as_string(hide_password=True)!r}: unknown "
                         f"database URL scheme {url.drivername!r}; use a "
                         f"file path, sqlite:///PATH or postgresql+psycopg://user@host/db")
    return url


KNOWN_BACKENDS = ("sqlite", "postgresql")


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine with the pragmas and transaction behaviour the store relies on, whose
    pooled connections are never reused across os.fork()."""
    return _fork_safe(_make_engine(url, readonly=readonly))


def _fork_safe(engine: Engine) -> Engine:
    """Make a child process open its own connections instead of using its parent's.

    After os.fork() a child shares its parent's sockets and SQLite handles: a PostgreSQL
    Timeline answered 20 instead of 145 (the replies of the parent's statements), or lost a
    prepared statement, or hung. SQLAlchemy's recipe: a connection remembers the process
    that opened it, and one checked out in another process is dropped — without closing it,
    which would end the parent's session too — and replaced by a new one."""
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    @event.listens_for(engine, "connect")
    def _remember_pid(dbapi_conn, record):
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _same_process(dbapi_conn, record, proxy):
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise sa_exc.DisconnectionError("connection opened by another process (before "
                                            "os.fork); a new one is opened")

    return engine


def _make_engine(url: str, *, readonly: bool = False) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import NoSuchModuleError
    from sqlalchemy.pool import QueuePool

    u = _parse_url(url)
    if u.get_backend_name() != "sqlite":
        kwargs = {}
        if readonly:
            # PostgreSQL: every transaction READ ONLY, and one snapshot per transaction so a
            # reader that runs several statements sees one consistent state of the log
            kwargs["execution_options"] = {"postgresql_readonly": True,
                                           "isolation_level": "REPEATABLE READ"}
        try:
            return create_engine(url, future=True, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"cannot use {u.render_as_string(hide_password=True)}: the "
                             f"driver is not installed ({exc}); for PostgreSQL: pip install "
                             f"'timeline[postgres]'") from None
    if readonly and u.database and u.database != ":memory:":
        # SQLite's own read-only mode: the file is opened O_RDONLY, so no write can happen
        ro = ro_uri(Path(u.database))
        # an explicit QueuePool: the "sqlite://" URL would get SingletonThreadPool, which
        # hands every connection of a thread the same driver connection (so a second
        # reader would join the first one's transaction)
        engine = create_engine("sqlite://", creator=lambda: ro_connect(ro),
                               poolclass=QueuePool)
    else:
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        sqlite_pragmas(dbapi_conn, readonly)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so concurrent appenders queue on the busy
        # timeout instead of failing later with a deadlock-style SQLITE_BUSY
        reading = readonly or conn.get_execution_options().get(READ_OPTION)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def ro_uri(path: Path) -> str:
    """The URI that opens `path` in SQLite's own read-only mode (O_RDONLY: no write can
    happen, not even a checkpoint of its WAL)."""
    return path.resolve().as_uri() + "?mode=ro"


def ro_connect(uri: str) -> sqlite3.Connection:
    """A driver connection on a `ro_uri`, usable from any thread (pools hand it around)."""
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def sqlite_pragmas(dbapi_conn, readonly: bool) -> None:
    """What every SQLite connection of the store is set up with, by engine or driver alone."""
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _make_engine)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    if readonly:
        cur.execute("PRAGMA query_only = ON")
    else:
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
    cur.close()


def _sa_error(exc: BaseException, name: str) -> bool:
    """Whether `exc` is SQLAlchemy's exception class `name` (DBAPIError, SQLAlchemyError);
    asked without importing SQLAlchemy, which cannot have raised it if nothing imported it."""
    mod = sys.modules.get("sqlalchemy.exc")
    return mod is not None and isinstance(exc, getattr(mod, name))


@contextlib.contextmanager
def read_transaction(conn):
    """One read transaction on `conn`: a single snapshot, never the write lock."""
    if conn.dialect.name == "postgresql":
        # every statement of the reader sees the same snapshot, and none can write
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    else:
        conn.execution_options(**{READ_OPTION: True})
    with conn.begin():
        yield conn


DEFAULT_TIMEOUT_S = 30.0
# SQLite calls the progress handler every this many virtual-machine steps (~a millisecond)
PROGRESS_STEPS = 10_000


class Budget:
    """The time a statement may still run: the clock stops while its rows wait for a reader."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._left = seconds if seconds else math.inf
        self._since = time.monotonic()
        self._paused = False

    def over(self) -> bool:
        """True once the statement has run for longer than its limit."""
        return not self._paused and time.monotonic() - self._since > self._left

    def left(self) -> float:
        """Seconds the statement may still run (inf without a limit)."""
        return self._left - (0 if self._paused else time.monotonic() - self._since)

    @contextlib.contextmanager
    def paused(self):
        """Stop the clock while rows already fetched are written out (a slow pipe or pager
        is not the statement's time)."""
        self._left -= time.monotonic() - self._since
        self._paused = True
        try:
            yield
        finally:
            self._since = time.monotonic()
            self._paused = False


def timeout_message(what: str, seconds: float) -> str:
    """What a statement stopped by `--timeout` reports, the same from every path."""
    return (f"{what}: statement stopped after {seconds:g} s (the --timeout); narrow the "
            f"query or raise --timeout")


@contextlib.contextmanager
def time_limit(conn, seconds: float | None, what: str = "database"):
    """Stop the statements run inside after `seconds` (None: no limit), and on Ctrl-C.

    Yields the statement's Budget. SQLite: a progress handler interrupts the running
    statement at the deadline, or when Ctrl-C arrives (Python delivers the signal inside the
    handler, which turns it into an interrupt; KeyboardInterrupt is raised again here).
    PostgreSQL: `statement_timeout` for this transaction, which stops the server's work
    too, also when the client is gone; psycopg cancels the running statement on Ctrl-C.
    """
    stopped = timeout_message(what, seconds) if seconds else ""
    budget = Budget(seconds)
    if conn.dialect.name == "postgresql":
        if seconds:
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(int(seconds * 1000), 1)}")
        try:
            yield budget
        except Exception as exc:
            if not _sa_error(exc, "DBAPIError"):
                raise
            if getattr(exc.orig, "sqlstate", None) == "57014":  # type: ignore[attr-defined]
                raise StoreError(stopped or f"{what}: statement cancelled") from None
            raise
        return
    raw = conn.connection.dbapi_connection
    why: list[str] = []

    def progress() -> int:
        try:
            if budget.over():
                why.append("timeout")
                return 1
        except KeyboardInterrupt:
            why.append("interrupt")
            return 1
        return 0

    raw.set_progress_handler(progress, PROGRESS_STEPS)
    try:
        yield budget
    except Exception as exc:
        if not isinstance(exc, (StoreError, sqlite3.Error)) and not _sa_error(exc, "DBAPIError"):
            raise
        if "timeout" in why:
            raise StoreError(stopped) from None
        if "interrupt" in why or "interrupted" in str(exc):
            # Ctrl-C: Python may raise it on entry to the handler, before its `try`; SQLite
            # then reports the interruption and the KeyboardInterrupt itself is swallowed
            raise KeyboardInterrupt from None
        raise
    finally:
        raw.set_progress_handler(None, 0)


@contextlib.contextmanager
def driver_errors(what: str = "database"):
    """Translate driver and SQLAlchemy errors into the package's StoreError family.

    Raw sqlite3 and psycopg errors are translated too: the hot paths run on the driver's
    cursor.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, what) from exc
    except Exception as exc:
        if _sa_error(exc, "DBAPIError"):
            raise translate(exc, what) from exc
        if _sa_error(exc, "SQLAlchemyError"):
            raise StoreError(f"{what}: {exc}") from exc
        # psycopg's own errors, from the statements run on its cursor (imported only by
        # PostgreSQL users, so recognised by module rather than by class)
        if type(exc).__module__.split(".")[0] == "psycopg":
            raise translate(exc, what) from exc
        raise


def translate(exc: Exception, what: str = "database") -> StoreError:
    """The StoreError that says what a driver error means to a user."""
    msg = str(getattr(exc, "orig", exc)).strip()
    low = msg.lower()
    if "append-only" in low:
        return ImmutableLogError(msg.splitlines()[0])
    if "readonly" in low or "read-only" in low or "query_only" in low or "read only" in low:
        return ReadOnlyError(f"{what} is read-only: {msg.splitlines()[0]}")
    if "file is not a database" in low or "not a database" in low:
        return SchemaError(f"{what} is not a SQLite database (or is encrypted/corrupt)")
    if "database is locked" in low or "database is busy" in low:
        return StoreError(f"{what} is busy: another process held the write lock for more than "
                          f"{busy_timeout_ms() / 1000:g} s; try again")
    if "disk is full" in low or "disk full" in low or "no space" in low:
        return StoreError(f"{what}: the disk is full; nothing was written")
    if "disk i/o error" in low:
        return StoreError(f"{what}: disk I/O error (the disk may be full, the file over a size "
                          f"limit, or the device failing); the transaction was rolled back")
    if "unable to open" in low:
        return StoreError(f"{what}: unable to open the database file (is it, or its directory, "
                          f"read-only? SQLite must be able to create its -wal and -shm files "
                          f"next to it)")
    return StoreError(f"{what}: {msg.splitlines()[0] if msg else exc}")


# -- the driver helpers: SQL straight through the driver connection -----------------------
LONG_PARAMS = 16  # PostgreSQL: statements with more parameters are never prepared
TRACE = "timeline.trace_sql"  # set while `explain` records: it must see every statement


@lru_cache(maxsize=None)
def _for_driver(statement: str, paramstyle: str) -> str:
    return statement if paramstyle == "qmark" else statement.replace("?", "%s")


def run_sql(conn: Connection, statement: str, params=()):
    """Run SQL written with `?` placeholders straight through the driver.

    The append and rebuild paths run thousands of small statements and executemany
    batches; Core's per-row parameter processing cost more than SQLite itself there, and
    even Core's per-statement bookkeeping (~20 µs on SQLite, ~80 µs on PostgreSQL) is
    skipped: the statement runs on the transaction's own driver connection, whose errors
    `db.driver_errors` translates as it does SQLAlchemy's. A list of tuples runs as
    executemany. While `explain` records, statements go through Core, which it hooks.
    """
    if conn.info.get(TRACE):
        return conn.exec_driver_sql(_for_driver(statement, conn.dialect.paramstyle), params)
    raw: Any = conn.connection.dbapi_connection
    if conn.dialect.name != "sqlite":
        # psycopg: its cursor (prepared after five runs of a statement, pipelined
        # executemany); the connection is in the transaction SQLAlchemy began
        statement = _for_driver(statement, conn.dialect.paramstyle)
        if isinstance(params, list):
            cur = raw.cursor()
            cur.executemany(statement, params)
            return _Rows(cur)
        if len(params) > LONG_PARAMS:
            # a prepared (generic) plan of a long IN list compares every row with every
            # parameter in turn (~0.3 s a query at 20,000 events); planned with the values
            # themselves it is an index lookup
            return _Rows(raw.execute(statement, params, prepare=False))
    elif isinstance(params, list):
        return _Rows(raw.executemany(statement, params))
    return _Rows(raw.execute(statement, params))


class _Rows:
    """The part of a SQLAlchemy Result the callers of `run_sql` use, over a driver cursor."""

    __slots__ = ("_cur",)

    def __init__(self, cur):
        self._cur = cur

    def __iter__(self):
        return iter(self._cur)

    def all(self) -> list[tuple]:
        """Every remaining row."""
        return self._cur.fetchall()

    def first(self) -> tuple | None:
        """The first row, or None."""
        row = self._cur.fetchone()
        self._cur.close()
        return row

    def scalar(self):
        """The first column of the first row, or None."""
        row = self.first()
        return row[0] if row else None

    def scalar_one(self):
        """The single value of a one-row, one-column result."""
        rows = self._cur.fetchall()
        if len(rows) != 1:
            raise StoreError(f"expected one row, got {len(rows)}")
        return rows[0][0]
