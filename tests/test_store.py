"""The event log: appends, idempotency, concurrency, immutability, the hash chain, migrations."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import text

from sqlalchemy import inspect

from timeline.errors import (ConcurrencyError, EventValidationError, ImmutableLogError,
                             IntegrityError, ReadOnlyError)
from timeline.log import db as dbmod
from timeline.log import migrate
from timeline.log.events import NewEvent
from timeline.log.loader import load_paths
from timeline.log.schema import HEAD_REVISION, REVISIONS
from timeline.resources import seeds_path
from timeline.store.store import Store

from .backends import (any_empty_store, any_seeded_store,  # noqa: F401
                       backend, blank_url, dump_projections, make_db, new_event,  # noqa: F401
                       raw_engine)

TABLES = {"events", "event_links", "intervals", "measures", "known_intervals", "alembic_version"}
VIEWS = {"v_events", "v_measures", "v_intervals", "v_state_today"}


D = dt.date.fromisoformat
SRC = {"name": "unit test"}


def ev(stream="us.tariff.test.cn", type="imposed", effective="2025-01-01", known=None, **payload):
    payload.setdefault("title", f"{type} {effective}")
    return NewEvent(stream, type, D(effective), payload, SRC, known=D(known) if known else None)


def snapshot(store: Store):
    """Everything a failed write must leave untouched."""
    with store.reading() as c:
        return (store.head(), c.conn.execute(text("SELECT COUNT(*) FROM events")).scalar(),
                c.conn.execute(text("SELECT * FROM intervals ORDER BY 1, 2")).all(),
                c.conn.execute(text("SELECT * FROM measures ORDER BY 1")).all())


def test_append_assigns_positions_versions_and_chain(empty_store):
    res = empty_store.append([ev(set={"rate": 10}), ev(type="amended", effective="2025-02-01",
                                                        set={"rate": 20})])
    a, b = res.appended
    assert (a.position, a.version, b.position, b.version) == (1, 1, 2, 2)
    assert a.prev_hash == "0" * 64 and b.prev_hash == a.hash
    assert a.recorded_at.endswith("Z") and a.known == a.recorded_at[:10]  # known defaults to today
    assert empty_store.verify().hash == b.hash


def test_caller_cannot_set_recorded_at():
    with pytest.raises(TypeError):
        NewEvent("a.b", "imposed", D("2025-01-01"), {"title": "x"}, SRC, recorded_at="2020")


def test_reappending_same_ids_appends_nothing(empty_store):
    first = empty_store.append([ev(set={"rate": 1})]).appended[0]
    again = NewEvent(first.stream, "imposed", D(first.effective), first.payload, SRC, id=first.id)
    res = empty_store.append([again])
    assert res.appended == [] and res.skipped == 1
    assert empty_store.count() == 1


def test_concurrency_conflict_writes_nothing(empty_store):
    empty_store.append([ev(set={"rate": 1})])
    before = snapshot(empty_store)
    with pytest.raises(ConcurrencyError) as info:
        empty_store.append([ev(type="amended", effective="2025-03-01", set={"rate": 2}),
                            ev(stream="us.tariff.other.cn")],
                           expected_versions={"us.tariff.test.cn": 0})
    got = (info.value.stream, info.value.expected, info.value.actual)
    assert got == ("us.tariff.test.cn", 0, 1)
    assert "expected version 0" in str(info.value) and "actual version 1" in str(info.value)
    assert snapshot(empty_store) == before
    empty_store.append([ev(type="amended", effective="2025-03-01", set={"rate": 2})],
                       expected_versions={"us.tariff.test.cn": 1})
    assert empty_store.count() == 2


def test_batch_is_atomic_when_one_event_is_invalid(empty_store):
    empty_store.append([ev(set={"rate": 1})])
    before = snapshot(empty_store)
    with pytest.raises(EventValidationError) as info:
        empty_store.append([ev(stream="us.tariff.new.cn"),
                            ev(stream="us.tariff.ghost.cn", type="amended", set={"rate": 3})])
    assert "us.tariff.ghost.cn" in str(info.value) and "does not exist" in str(info.value)
    assert snapshot(empty_store) == before


@pytest.mark.parametrize("sql", [
    "UPDATE events SET stream = 'x' WHERE position = 1",
    "DELETE FROM events WHERE position = 1",
    "UPDATE event_links SET role = 'x'",
    "DELETE FROM event_links",
])
def test_raw_sqlite_cannot_update_or_delete_the_log(seeded_db, sql):
    con = sqlite3.connect(seeded_db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute(sql)
        con.commit()
    con.close()


def test_store_reports_immutability_as_package_error(seeded_store):
    from timeline.log.db import driver_errors

    with pytest.raises(ImmutableLogError, match="append-only"):
        with driver_errors(), seeded_store.engine.begin() as c:
            c.execute(text("DELETE FROM events WHERE position = 3"))


def _tamper(path, sql):
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER events_no_update")
    con.execute("DROP TRIGGER events_no_delete")
    con.execute(sql)
    con.commit()
    con.close()


@pytest.mark.parametrize("sql,position", [
    ("UPDATE events SET payload = replace(payload, 'title', 'titel') WHERE position = 7", 7),
    ("UPDATE events SET effective = '2020-01-01' WHERE position = 12", 12),
    ("DELETE FROM events WHERE position = 5", 5),
])
def test_verify_finds_the_altered_position(seeded_db, sql, position):
    _tamper(seeded_db, sql)
    store = Store.open(str(seeded_db))
    with pytest.raises(IntegrityError) as info:
        store.verify()
    # the triggers were dropped: verify says so before walking the chain
    assert "triggers missing" in str(info.value)
    con = sqlite3.connect(seeded_db)
    con.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN "
                "SELECT RAISE(ABORT, 'events is append-only'); END")
    con.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
                "SELECT RAISE(ABORT, 'events is append-only'); END")
    con.commit()
    con.close()
    with pytest.raises(IntegrityError) as info:
        store.verify()
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def test_migrations_down_to_base_and_up_again(tmp_path):
    path = tmp_path / "m.db"
    store = Store.create(f"sqlite:///{path}", seeds=False)
    with store.reading() as c:
        assert c.revision() == HEAD_REVISION
    migrate.downgrade(store.engine, "base")
    with store.reading(check=False) as c:  # no log left to check the projections against
        names = set(c.conn.execute(text("SELECT name FROM sqlite_master")).scalars())
        assert c.revision() is None
    assert not {"events", "intervals", "measures", "v_events"} & names
    migrate.upgrade(store.engine)
    store.append([ev(set={"rate": 5})])
    assert store.verify().position == 1


def test_known_revisions_match_the_migration_scripts():
    assert tuple(migrate.script_revisions()) == REVISIONS


def test_open_refuses_a_newer_schema(seeded_db):
    con = sqlite3.connect(seeded_db)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    from timeline.errors import SchemaError

    with pytest.raises(SchemaError, match="9999"):
        Store.open(str(seeded_db))


def test_two_read_only_readers_have_their_own_transactions(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    with store.reading() as a, store.reading() as b:
        assert a.count() == b.count() == store.count()
        assert a.conn.connection.dbapi_connection is not b.conn.connection.dbapi_connection
    store.close()


# --- schema ------------------------------------------------------------------------------

def test_migrations_up_down_up(backend, tmp_path):
    url = blank_url(backend, tmp_path)
    engine = dbmod.make_engine(url)
    try:
        for _ in range(2):
            migrate.upgrade(engine)
            with engine.connect() as c:
                insp = inspect(c)
                assert TABLES <= set(insp.get_table_names())
                assert VIEWS <= set(insp.get_view_names())
                assert migrate.current_revision(c) == HEAD_REVISION
            Store(engine, url, None).verify()  # includes the trigger check
            migrate.downgrade(engine)
            with engine.connect() as c:
                assert not (TABLES - {"alembic_version"}) & set(inspect(c).get_table_names())
    finally:
        engine.dispose()


# --- storage -----------------------------------------------------------------------------

def test_seeds_load_verify_and_reload_appends_nothing(make_db):
    store = Store.open(make_db())
    try:
        head = store.verify()
        assert head.position == store.count() > 50
        res = store.append(load_paths([seeds_path()]))
        assert res.appended == [] and res.skipped == head.position
        assert store.verify() == head
    finally:
        store.close()


def test_update_delete_truncate_rejected_by_the_database(make_db, backend):
    url = make_db()
    eng = raw_engine(url)
    stmts = ["UPDATE events SET type = 'lifted' WHERE position = 1",
             "DELETE FROM events WHERE position = 3",
             "UPDATE event_links SET role = 'x'",
             "DELETE FROM event_links"]
    if backend == "postgresql":
        stmts += ["TRUNCATE events CASCADE", "TRUNCATE event_links"]
    try:
        for sql in stmts:
            with pytest.raises(Exception, match="append-only"):
                with eng.begin() as c:
                    c.execute(text(sql))
    finally:
        eng.dispose()
    store = Store.open(url)
    try:
        with pytest.raises(ImmutableLogError, match="append-only"):
            with dbmod.driver_errors(store.where), store.engine.begin() as c:
                c.execute(text("DELETE FROM events"))
        store.verify()
    finally:
        store.close()


def test_append_chain_versions_and_conflict_writes_nothing(make_db):
    store = Store.open(make_db(seeded=False))
    try:
        a, b = store.append([new_event("us.tariff.t.cn", "imposed", "2025-01-01",
                                       set={"rate": 10}),
                             new_event("us.tariff.t.cn", "amended", "2025-02-01",
                                       set={"rate": 20})]).appended
        assert (a.position, a.version, b.position, b.version) == (1, 1, 2, 2)
        assert b.prev_hash == a.hash
        before = (store.head(), dump_projections(store))
        with pytest.raises(ConcurrencyError) as info:
            store.append([new_event("us.tariff.t.cn", "amended", "2025-03-01",
                                    set={"rate": 30})], expected_versions={"us.tariff.t.cn": 1})
        assert (info.value.expected, info.value.actual) == (1, 2)
        with pytest.raises(EventValidationError, match="unknown measure"):
            store.append([new_event("us.tariff.t.cn", "amended", "2025-04-01", set={"rate": 5}),
                          new_event("case.x", "ruling", "2025-04-02", affects=["no.such.m"],
                                    affects_set={"legal_status": "stayed"})])
        assert (store.head(), dump_projections(store)) == before
        store.append([new_event("us.tariff.t.cn", "amended", "2025-03-01", set={"rate": 30})],
                     expected_versions={"us.tariff.t.cn": 2})
        assert store.verify().position == 3
    finally:
        store.close()


# --- read-only access --------------------------------------------------------------------

def test_read_only_store_and_connections_refuse_writes(make_db, backend):
    url = make_db()
    ro = Store.open(url, readonly=True)
    try:
        with pytest.raises(ReadOnlyError):
            ro.append([new_event("us.tariff.ro.cn", "imposed", "2025-01-01")])
        with pytest.raises(ReadOnlyError):
            with dbmod.driver_errors(ro.where), ro.engine.connect() as c:
                c.execute(text("DELETE FROM measures"))
                c.commit()
        assert ro.count() > 0
    finally:
        ro.close()
    if backend == "postgresql":
        # SQL access for other tools: a session whose transactions are read-only by default
        from sqlalchemy.engine import make_url

        u = make_url(url)
        opts = u.query["options"] + " -cdefault_transaction_read_only=on"
        eng = raw_engine(u.update_query_dict({"options": opts}))
        try:
            with pytest.raises(Exception, match="read-only transaction"):
                with eng.begin() as c:
                    c.execute(text("DELETE FROM measures"))
            with eng.connect() as c:
                assert c.execute(text("SELECT COUNT(*) FROM v_events")).scalar() > 0
        finally:
            eng.dispose()


def test_explain_still_lists_the_sql_of_a_known_on_lookup(seeded_store):
    """On SQLite the `known on` lookups run on the driver's cursor, except while explain
    records: the statements it shows are every statement the answer ran (issue 15)."""
    from timeline.query.execute import Context, run
    from timeline.query.parser import parse

    text = ("explain state of us.tariff.section-301.cn as of 2025-01-01 "
            "known on 2024-01-01")
    with seeded_store.reading() as r:
        answer = run(r, parse(text), text, Context(sql=True))  # as `query --sql` asks
    from timeline.surfaces.output import render

    out = render(answer, "text")
    sql = out.split("\nSQL\n", 1)[1].split("\n\n", 1)[0]
    # the index's lookups, with the knowledge date among their parameters (placeholders
    # and line folding differ by backend): two for the state, two for the state the
    # measure ends in (whether what it collected is refundable)
    assert sql.count("FROM known_intervals") == 4 and "'2024-01-01'" in sql


def test_appended_events_come_back_as_stored(seeded_store):
    """The Events an append returns (built positionally) equal the stored rows read back."""
    import dataclasses

    from timeline.log.events import Event
    from timeline.store.append import EVENT_COLS

    assert tuple(f.name for f in dataclasses.fields(Event)) == EVENT_COLS
    new = ev("us.tariff.section-301.cn", "amended", "2025-03-01", title="Tiny rate",
             set={"rate": 1e-05})
    got = seeded_store.append([new]).appended
    with seeded_store.reading() as r:
        assert got == list(r.events_by_id([got[0].id]).values())
    assert got[0].payload["set"]["rate"] == 1e-05


def test_migration_0008_fills_the_known_on_index_of_an_existing_log(make_db):
    """A database made before the index (0007) gets it filled by the migration: the rows and
    every `known on` answer equal those of a store that kept them from the start."""
    store = Store.open(make_db())
    try:
        stream = "us.tariff.ieepa-reciprocal.cn"
        with store.reading() as c:
            want = dump_projections(store)
            answers = [c.state(stream, "2025-08-13", k) for k in
                       ("2025-04-01", "2025-06-10", "2025-08-12", "2026-01-01")]
        migrate.downgrade(store.engine, "0007")
        with store.engine.connect() as c:
            assert "known_intervals" not in inspect(c).get_table_names()
        migrate.upgrade(store.engine)
        assert dump_projections(store) == want and want[2]
        with store.reading() as c:
            assert [c.state(stream, "2025-08-13", k) for k in
                    ("2025-04-01", "2025-06-10", "2025-08-12", "2026-01-01")] == answers
            assert answers[1].state["rate"] == 34 and answers[3].state["rate"] == 10
        assert store.verify()
    finally:
        store.close()
