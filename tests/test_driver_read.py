"""The driver-only read path of a SQLite file opened read-only (issue 25, CLI cold start).

`timeline query` reads a SQLite file on the `sqlite3` driver alone (timeline.log.driver):
no SQLAlchemy, no Alembic. Each guarantee of the engine's read path is attacked here on
that path: a log changed behind the store's back, projections of another fold version, a
special file, a locked or corrupt database, a statement past --timeout, one snapshot per
read, and nothing written by a read.
"""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from timeline.errors import IntegrityError, SchemaError, StoreError
from timeline.log.db import run_sql
from timeline.log.driver import DriverConnection
from timeline.store.store import Store

STATE = "state of us.tariff.section-301.cn as of 2025-01-01"
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


def _query(db, query: str = STATE, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "timeline", "query", query, "--format", "json",
                           "--db", str(db)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    return r.stderr.strip()


def test_a_read_only_sqlite_store_reads_on_the_driver(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    try:
        with store.reading() as r:
            assert isinstance(r.conn, DriverConnection)
            assert r.state("us.tariff.section-301.cn", "2025-01-01") is not None
        assert store._engine is None  # no engine was made
    finally:
        store.close()


def test_a_log_changed_behind_the_stores_back_is_refused(seeded_db):
    with sqlite3.connect(seeded_db) as c:
        c.execute("UPDATE projection_head SET position = position - 1")
    line = _one_error_line(_query(seeded_db))
    assert "the log changed behind the store's back" in line


def test_projections_of_another_fold_version_are_refused(seeded_db):
    with sqlite3.connect(seeded_db) as c:
        c.execute("UPDATE projection_head SET fold_version = 1")
    line = _one_error_line(_query(seeded_db))
    assert "built by fold version 1" in line and "timeline rebuild" in line


def test_a_database_without_a_schema_is_refused(tmp_path):
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    line = _one_error_line(_query(db))
    assert "has no timeline schema" in line
    with pytest.raises(SchemaError, match="has no timeline schema"):
        Store.open(str(db), readonly=True)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_special_files_are_refused(tmp_path, kind):
    path = tmp_path / "db"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    line = _one_error_line(_query(path))
    assert ("a FIFO" in line or "named pipe" in line or "directory" in line), line


def test_a_corrupt_file_is_one_clear_line(tmp_path):
    db = tmp_path / "junk.db"
    db.write_bytes(b"not a database at all" * 100)
    assert "not a SQLite database" in _one_error_line(_query(db))


def test_a_locked_database_is_one_clear_line(seeded_db):
    holder = sqlite3.connect(seeded_db, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        line = _one_error_line(_query(seeded_db, env={"TIMELINE_BUSY_TIMEOUT_MS": "100"}))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "is busy" in line and "try again" in line


def test_a_statement_past_the_timeout_is_stopped_and_the_next_read_runs(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    store.timeout = 0.3
    try:
        with pytest.raises(StoreError, match=r"statement stopped after 0.3 s \(the --timeout\)"):
            with store.reading() as r:
                run_sql(r.conn, FOREVER).first()
        assert store.count() == 257  # the connection was given back usable
    finally:
        store.close()


def test_a_read_is_one_snapshot_while_a_writer_appends(seeded_db):
    from timeline.api import REVIEW_STREAM
    from timeline.log.events import NewEvent

    reader = Store.open(str(seeded_db), readonly=True)
    writer = Store.open(str(seeded_db))
    try:
        with reader.reading() as r:
            before = (r.head(), r.count())
            ev = NewEvent(REVIEW_STREAM, "reviewed", dt.date(2026, 6, 30),
                          {"title": "Sources checked", "note": "added while a read runs"},
                          {"name": "test"}, known=dt.date(2026, 6, 30))
            # another thread: the writer must not wait for the reader, nor the reader see it
            done: list = []
            t = threading.Thread(target=lambda: done.append(writer.append([ev])))
            t.start()
            t.join(30)
            assert done and len(done[0].appended) == 1
            assert (r.head(), r.count()) == before
        with reader.reading() as r:  # the next read sees the append
            assert r.count() == before[1] + 1
    finally:
        reader.close()
        writer.close()


def test_a_read_writes_nothing(seeded_db):
    wal, shm = (seeded_db.with_name(seeded_db.name + s) for s in ("-wal", "-shm"))
    for f in (wal, shm):
        f.unlink(missing_ok=True)
    before = (seeded_db.stat().st_mtime_ns, seeded_db.read_bytes())
    r = _query(seeded_db)
    assert r.returncode == 0, r.stderr
    assert (seeded_db.stat().st_mtime_ns, seeded_db.read_bytes()) == before
    assert not wal.exists() or wal.stat().st_size == 0


def test_explain_lists_the_sql_on_the_driver_as_on_the_engine(seeded_db):
    from timeline.query import scene
    from timeline.query.execute import run
    from timeline.query.parser import parse
    from timeline.query.planner import Context

    q = "explain total tariff by us on cn as of 2025-04-10"
    sql = []
    for readonly in (True, False):
        store = Store.open(str(seeded_db), readonly=readonly)
        try:
            assert (store._driver is not None) == readonly
            scene._CACHE.clear()  # each side builds its product index, and lists its SQL
            with store.reading() as r:
                sql.append(run(r, parse(q), q, Context(today=dt.date(2026, 1, 1))).data["sql"])
        finally:
            store.close()
    assert sql[0] == sql[1] and any("FROM measures" in s["statement"] for s in sql[0])


def test_a_core_statement_runs_in_the_drivers_snapshot(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    try:
        with store.reading() as r:
            got = r.measures_on("2025-04-10", [("rate", ">", 20)])  # Core: the bridge
            assert got and all(m["rate"] > 20 for m in got)
            assert r.conn.raw.in_transaction
        with store.reading() as r:  # the bridge lives on with its connection
            assert len(r.events(conditions=[("type", "=", "imposed")])) == 50
    finally:
        store.close()


def test_an_integrity_error_is_what_the_api_raises_too(seeded_db):
    with sqlite3.connect(seeded_db) as c:
        c.execute("UPDATE projection_head SET hash = 'x'")
    store = Store.open(str(seeded_db), readonly=True)
    try:
        with pytest.raises(IntegrityError, match="behind the store's back"):
            store.head()
    finally:
        store.close()
