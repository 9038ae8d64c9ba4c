"""The read path of a SQLite file on the driver alone: no SQLAlchemy at start-up.

A read-only store of a SQLite file hands its `Reader` a `DriverConnection`: the part of a
SQLAlchemy Connection the read path uses (`dialect.name`, `info`, the driver connection,
`exec_driver_sql`) over a raw `sqlite3` connection, opened as the engine opens one
(`db.ro_uri`, `db.sqlite_pragmas`: read-only mode, busy timeout, `query_only`). The reads
run their `?` SQL through `db.run_sql` as they do on an engine's connection, so one Reader
serves both. `timeline query` then imports neither SQLAlchemy nor Alembic.

What still speaks SQLAlchemy Core (a `where` compiled to SQL, the checks of `verify`) calls
`execute()`, which builds, on first use, a SQLAlchemy connection over the same driver
connection, inside the same transaction: the same snapshot, at SQLAlchemy's import cost
for those reads only.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable

from timeline.log import db as dbmod

Hook = Callable[[str, Any], None]


class _Dialect:
    name = "sqlite"
    paramstyle = "qmark"


class _Fairy:
    """Where run_sql finds the driver connection (`conn.connection.dbapi_connection`)."""

    __slots__ = ("dbapi_connection",)

    def __init__(self, raw: sqlite3.Connection):
        self.dbapi_connection = raw


class _Unended:
    """The driver connection as SQLAlchemy sees it: commit, rollback and close do nothing,
    for the transaction (one snapshot) and the connection are the read's, not Core's
    (SQLAlchemy rolls back after its first look at a connection, for one)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: sqlite3.Connection):
        self._raw = raw

    def __getattr__(self, name: str):
        return getattr(self._raw, name)

    def commit(self) -> None:
        """Not Core's to end: DriverConnection.end does."""

    def rollback(self) -> None:
        """Not Core's to end: DriverConnection.end does."""

    def close(self) -> None:
        """Not Core's to close: DriverConnection.close does."""


class DriverConnection:
    """A raw sqlite3 connection dressed as the SQLAlchemy Connection the Reader expects."""

    dialect = _Dialect()

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw
        self.connection = _Fairy(raw)
        self.info: dict[str, Any] = {}
        # statement recorders (explain): called with (statement, parameters) of each
        # statement run while they listen, by this class and by the Core bridge alike
        self.hooks: list[Hook] = []
        self._core: Any = None

    def exec_driver_sql(self, statement: str, params=()) -> dbmod._Rows:
        """Run `?` SQL on the driver (what run_sql does while `explain` records)."""
        for hook in self.hooks:
            hook(statement, params)
        return dbmod._Rows(self.raw.execute(statement, params))

    def execute(self, statement, parameters=None, **kw):
        """Run a SQLAlchemy Core statement, on a Core connection over this same driver
        connection (same transaction, same snapshot); built on first use."""
        return self.core().execute(statement, parameters, **kw)

    def core(self):
        """The SQLAlchemy connection over this driver connection (imports SQLAlchemy); it
        lives as long as the driver connection, whose transactions stay ours."""
        if self._core is None:
            from sqlalchemy import create_engine, event
            from sqlalchemy.pool import StaticPool

            seen = _Unended(self.raw)
            engine = create_engine("sqlite://", creator=lambda: seen, poolclass=StaticPool,
                                   pool_reset_on_return=None)
            core = engine.connect()

            @event.listens_for(core, "before_cursor_execute")
            def _record(conn, cursor, statement, parameters, context, executemany):
                for hook in self.hooks:
                    hook(statement, parameters)

            self._core = core
        return self._core

    def end(self) -> None:
        """End the read transaction, if one is open (a snapshot is released, not kept)."""
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection (and the Core bridge over it, if any)."""
        core, self._core = self._core, None
        try:
            if core is not None:
                engine = core.engine
                core.close()
                engine.dispose()
        finally:
            self.raw.close()


class ReadOnlyPool:
    """Driver connections to one SQLite file, opened read-only and reused.

    A connection opened by another process (before os.fork) is never used: it is dropped
    without being closed, as the engine's pool does (db._fork_safe)."""

    def __init__(self, path: Path):
        self.uri = dbmod.ro_uri(path)
        self._idle: list[tuple[int, DriverConnection]] = []
        self._lock = threading.Lock()

    def acquire(self) -> DriverConnection:
        """A connection, set up as the read-only engine sets up its own."""
        pid = os.getpid()
        with self._lock:
            while self._idle:
                owner, conn = self._idle.pop()
                if owner == pid:
                    return conn
        raw = dbmod.ro_connect(self.uri)
        try:
            dbmod.sqlite_pragmas(raw, readonly=True)
        except BaseException:
            raw.close()
            raise
        return DriverConnection(raw)

    def give_back(self, conn: DriverConnection) -> None:
        """Take back a connection: its transaction is ended (closed if that fails)."""
        try:
            conn.end()
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle.append((os.getpid(), conn))

    def close(self) -> None:
        """Close the idle connections of this process."""
        pid = os.getpid()
        with self._lock:
            idle, self._idle = self._idle, []
        for owner, conn in idle:
            if owner == pid:
                conn.close()
