"""The backend contract: storage, projections, queries, read-only access and `timeline copy`,
run against SQLite and (when TIMELINE_TEST_POSTGRES_URL is set) PostgreSQL.

Concurrency on both backends is in test_concurrency.py, tampering in test_tamper.py.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import inspect, text

from timeline.log import db as dbmod
from timeline.log import migrate
from timeline.errors import (ConcurrencyError, EventValidationError, ImmutableLogError,
                             ReadOnlyError)
from timeline.log.loader import load_paths
from timeline.query.parser import parse
from timeline.query.planner import Context, run
from timeline.resources import seeds_path
from timeline.log.schema import HEAD_REVISION
from timeline.store.store import Store

from .backends import (PG_URL, NO_PG, PgSession, backend, blank_url, dump_projections,  # noqa: F401
                       make_db, new_db, new_event, normalise, only_postgres,
                       projections_match_rebuild, raw_engine, run_main)
from .conftest import run_cli

TABLES = {"events", "event_links", "intervals", "measures", "alembic_version"}
VIEWS = {"v_events", "v_measures", "v_intervals", "v_state_today"}

# every query form, with globs, known-on, edge dates and every condition kind
QUERIES = [
    "state of us.tariff.* as of 2025-05-14",
    "state of * as of 2025-05-14",
    "state of us.tariff.ieepa-reciprocal.cn as of 2025-04-10 known on 2025-04-08",
    "state of us.tariff.ieepa-reciprocal.cn as of 0001-01-01",
    "state of us.tariff.ieepa-reciprocal.cn as of 9999-12-31",
    "state of *.zz as of 2025-05-14",
    "history of cn.tariff.retaliatory.us",
    "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-06-01",
    "history of case.ieepa-tariffs known on 2025-06-01",
    "history of us.tariff.* to 2025-03-01",
    "history of us.* from 0001-01-01 to 9999-12-31",
    "diff cn.tariff.retaliatory.us between 2025-04-01 and 2025-06-01",
    "diff us.tariff.* between 2025-04-01 and 2025-06-01 known on 2025-05-01",
    "total tariff by us on cn as of 2025-04-10",
    "total tariff by cn on us as of 2025-04-12 known on 2025-04-09",
    "events",
    "events limit 0",
    "events for us.* from 2025-01-01 where type = imposed and rate >= 10.5 limit 20",
    "events where rate > 20 limit 3",
    "events where title contains '%'",
    "events where title contains 'tariff' and effective < 2025-04-15",
    "events where source contains 'Bloomberg'",
    "events where quote contains 'Xi'",
    "events where kind = tariff and imposer = cn",
    "events where payload.title contains 'China'",
    "events where title > 5",
    "events where version = 'abc'",
    "events where version contains '1'",
    "events where version >= 2",
    "events where position < 10",
    "events where status = in_force",
    "events where known = 2025-04-09",
    "events where rate = 'x'",
    "events from 0001-01-01 to 9999-12-31 limit 5",
    "measures",
    "measures where status = in_force and imposer = us",
    "measures where rate > 10",
    "measures where rate = 'ten'",
    "measures where events > 2",
    "measures where scope contains 'all'",
    "measures where authority contains 'IEEPA'",
    "measures where suspended_points >= 24",
    "measures where title contains '_'",
    "explain state of cn.tariff.retaliatory.us as of 2025-05-01",
    "explain events where rate > 20 limit 3",
    "explain measures",
    "explain total tariff by us on cn as of 2025-04-10",
]
TODAY = dt.date(2026, 1, 1)


def answers(url: str) -> dict[str, str]:
    store = Store.open(url, readonly=True)
    out = {}
    try:
        with store.connect() as conn:
            for q in QUERIES:
                answer = run(conn, parse(q), q, Context(today=TODAY))
                out[q] = normalise(json.dumps(answer.data, default=str))
    finally:
        store.close()
    return out


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


def test_projections_follow_appends_and_equal_a_rebuild(make_db):
    store = Store.open(make_db())
    try:
        s = "us.tariff.contract-test.cn"
        store.append([new_event(s, "imposed", "2025-03-01", set={"rate": 10},
                                schedule=[{"on": "2025-06-01", "set": {"rate": 15}}])])
        wrong = store.append([new_event(s, "amended", "2025-04-01", set={"rate": 99})])
        back = store.append([new_event(s, "amended", "2025-03-15", set={"rate": 5})])  # backdated
        store.append([new_event(s, "correction", "2025-04-01", set={"rate": 12},
                                supersedes=[wrong.appended[0].id])])
        store.append([new_event("case.contract-test", "ruling", "2025-05-01",
                                affects=[s, "us.tariff.ieepa-reciprocal.cn"],
                                affects_set={"legal_status": "ruled_unlawful"})])
        store.append([new_event(s, "retraction", "2025-03-15",
                                supersedes=[back.appended[0].id])])
        assert projections_match_rebuild(store)
        with store.connect() as c:
            row = c.execute(text("SELECT state FROM intervals WHERE stream = :s "
                                 "AND valid_from <= '2025-05-02' ORDER BY valid_from DESC"),
                            {"s": s}).first()
        assert json.loads(row.state)["legal_status"] == "ruled_unlawful"
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
            with dbmod.driver_errors(ro.where), ro.connect() as c:
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


# --- queries -----------------------------------------------------------------------------

@only_postgres
def test_every_query_form_answers_the_same_on_postgres(seeded_db):
    pg = new_db("postgresql", seeded_db.parent, seeded=True)
    sqlite_answers, pg_answers = answers(f"sqlite:///{seeded_db}"), answers(pg)
    for q in QUERIES:
        assert pg_answers[q] == sqlite_answers[q], q


@only_postgres
def test_cli_on_postgres(tmp_path):
    url = new_db("postgresql", tmp_path, seeded=True)
    r = run_cli("verify", "--db", url)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr
    r = run_cli("query", "--db", url, "--format", "json", "total tariff by us on cn as of "
                "2025-04-10")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"] == 145
    r = run_cli("info", "--db", url, "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["schema_revision"] == HEAD_REVISION
    r = run_cli("rebuild", "--db", url)
    assert r.returncode == 0, r.stderr


@only_postgres
def test_unreachable_postgres_is_a_clear_error():
    r = run_cli("info", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert r.returncode == 1 and r.stderr.startswith("error:")
    assert "Traceback" not in r.stderr


# --- timeline copy -----------------------------------------------------------------------

def _copy(src: str, dst: str, real: bool = False):
    return (run_cli if real else run_main)("copy", "--from", src, "--to", dst)


def test_copy_round_trip_keeps_the_chain(backend, tmp_path, seeded_db):
    src = f"sqlite:///{seeded_db}"
    mid = blank_url(backend, tmp_path, "mid")
    back = tmp_path / "back.db"
    r = _copy(src, mid, real=True)
    assert r.returncode == 0, r.stderr
    assert "both chains verify" in r.stdout
    r = _copy(mid, str(back))
    assert r.returncode == 0, r.stderr
    heads = []
    for url in (src, mid, f"sqlite:///{back}"):
        store = Store.open(url)
        try:
            heads.append(store.verify())
            assert projections_match_rebuild(store)
        finally:
            store.close()
    assert heads[0] == heads[1] == heads[2]
    with Store.open(src).connect() as a, Store.open(mid).connect() as b:
        rows = [c.execute(text("SELECT * FROM events ORDER BY position")).all() for c in (a, b)]
        links = [c.execute(text("SELECT * FROM event_links ORDER BY position, stream")).all()
                 for c in (a, b)]
    assert rows[0] == rows[1] and links[0] == links[1]
    assert answers(src) == answers(mid)


def test_copy_refuses_a_non_empty_target(backend, tmp_path, seeded_db, make_db):
    dst = make_db()
    before = Store.open(dst).head()
    r = _copy(f"sqlite:///{seeded_db}", dst)
    assert r.returncode == 1 and "empty target" in r.stderr and "Traceback" not in r.stderr
    assert Store.open(dst).head() == before


def test_copy_refuses_a_tampered_source(backend, tmp_path, seeded_db):
    eng = raw_engine(f"sqlite:///{seeded_db}")
    with eng.begin() as c:
        c.execute(text("DROP TRIGGER events_no_update"))
        c.execute(text("UPDATE events SET effective = '2025-01-02' WHERE position = 5"))
        c.execute(text("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
                       "BEGIN SELECT RAISE(ABORT, 'events is append-only'); END"))
    eng.dispose()
    dst = blank_url(backend, tmp_path)
    r = _copy(f"sqlite:///{seeded_db}", dst)
    assert r.returncode == 1 and "position 5" in r.stderr and "Traceback" not in r.stderr
    if backend == "sqlite":
        from pathlib import Path

        assert not Path(dst.removeprefix("sqlite:///")).exists()
