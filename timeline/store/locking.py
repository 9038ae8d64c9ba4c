"""The writers' lock: one writer at a time, on both backends.

SQLite serialises writers with BEGIN IMMEDIATE (its busy handler waits); PostgreSQL with a
transaction-level advisory lock taken here, under the busy timeout, naming who holds it when
the wait runs out. See docs/guarantees.md for why.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection

from timeline.errors import StoreError
from timeline.log import db as dbmod
from timeline.log.db import run_sql

__all__ = ["PG_WRITE_LOCK", "write_lock"]

# PostgreSQL: the key of the transaction-level advisory lock that serialises writers
PG_WRITE_LOCK = 0x74696D656C696E65  # "timeline"


def write_lock(conn: Connection, where: str = "database") -> None:
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
