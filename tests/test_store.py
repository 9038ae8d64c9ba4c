"""The event log: appends, idempotency, concurrency, immutability, the hash chain, migrations."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import text

from timeline.log import migrate
from timeline.errors import ConcurrencyError, EventValidationError, ImmutableLogError, IntegrityError
from timeline.log.events import NewEvent
from timeline.log.schema import HEAD_REVISION, REVISIONS
from timeline.store.store import Store

D = dt.date.fromisoformat
SRC = {"name": "unit test"}


def ev(stream="us.tariff.test.cn", type="imposed", effective="2025-01-01", known=None, **payload):
    payload.setdefault("title", f"{type} {effective}")
    return NewEvent(stream, type, D(effective), payload, SRC, known=D(known) if known else None)


def snapshot(store: Store):
    """Everything a failed write must leave untouched."""
    with store.connect() as c:
        return (store.head(), c.execute(text("SELECT COUNT(*) FROM events")).scalar(),
                c.execute(text("SELECT * FROM intervals ORDER BY 1, 2")).all(),
                c.execute(text("SELECT * FROM measures ORDER BY 1")).all())


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
    assert (info.value.stream, info.value.expected, info.value.actual) == ("us.tariff.test.cn", 0, 1)
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
    store = Store.create(f"sqlite:///{path}", path, seeds=False)
    with store.connect() as c:
        assert migrate.current_revision(c) == HEAD_REVISION
    migrate.downgrade(store.engine, "base")
    with store.connect() as c:
        names = set(c.execute(text("SELECT name FROM sqlite_master")).scalars())
        assert migrate.current_revision(c) is None
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


def test_two_read_only_connections_have_their_own_transactions(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    with store.connect() as a, store.connect() as b:
        a.execute(text("SELECT COUNT(*) FROM events")).scalar()
        assert b.execute(text("SELECT COUNT(*) FROM events")).scalar() == store.count()
        assert a.connection.dbapi_connection is not b.connection.dbapi_connection
    store.close()
