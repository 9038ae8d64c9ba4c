"""Run the same tests against SQLite and PostgreSQL.

Test modules import the `backend` and `make_db` fixtures from here. The PostgreSQL half runs
when TIMELINE_TEST_POSTGRES_URL names a server database we may create databases from (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test); it creates one fresh database
`timeline_test_<random>` per test session, gives every test its own schema in it, and drops
the database at the end of the session. Without the variable the PostgreSQL half is skipped
with the reason below.
"""
from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import secrets
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from timeline.errors import QueryError
from timeline.query.execute import Context, run
from timeline.query.parser import parse
from timeline.store.store import Store

PG_URL = os.environ.get("TIMELINE_TEST_POSTGRES_URL", "").strip()
NO_PG = ("PostgreSQL half skipped: set TIMELINE_TEST_POSTGRES_URL (e.g. "
         "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run it; .ci/run does when "
         "pg_isready answers")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql",
                 marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=NO_PG)]),
]


def only_postgres(test):
    """Mark a test as PostgreSQL-only (`-m postgres` selects them; skipped without a URL)."""
    return pytest.mark.postgres(pytest.mark.skipif(not PG_URL, reason=NO_PG)(test))


class PgSession:
    """One scratch database for the whole test session; one schema per test database."""

    _instance: "PgSession | None" = None

    def __init__(self, admin_url: str):
        admin = make_url(admin_url)
        if admin.get_backend_name() != "postgresql":
            raise pytest.UsageError(f"TIMELINE_TEST_POSTGRES_URL is not a PostgreSQL URL: "
                                    f"{admin_url}")
        if admin.drivername == "postgresql":
            admin = admin.set(drivername="postgresql+psycopg")
        self.admin = create_engine(admin, isolation_level="AUTOCOMMIT")
        self.name: str | None = f"timeline_test_{secrets.token_hex(4)}"
        self.schemas: list[str] = []
        try:
            with self.admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = admin.set(database=self.name)
        except Exception:  # no CREATEDB right: use the given database, one schema per test
            self.name, self.url = None, admin
        self.engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.n = 0
        atexit.register(self.drop)

    @classmethod
    def get(cls) -> "PgSession":
        """The session's scratch database (created on first use)."""
        if cls._instance is None:
            cls._instance = cls(PG_URL)
        return cls._instance

    def new_url(self) -> str:
        """URL of a new, empty schema (the test's own database)."""
        self.n += 1
        schema = f"t{self.n}_{secrets.token_hex(2)}"
        with self.engine.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.schemas.append(schema)
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        """Drop the scratch database (connections still open are closed by the server)."""
        self.engine.dispose()
        with self.admin.connect() as c:
            if self.name:
                c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            else:
                for schema in self.schemas:
                    c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.admin.dispose()


def new_db(backend: str, tmp_path: Path, *, seeded: bool, template: Path | None = None,
           name: str = "db") -> str:
    """URL of a new migrated database on `backend` (with the bundled seeds if `seeded`)."""
    if backend == "sqlite":
        path = tmp_path / f"{name}-{secrets.token_hex(3)}.db"
        if seeded and template is not None:
            shutil.copy(template, path)
        else:
            Store.create(f"sqlite:///{path}", seeds=seeded).close()
        return f"sqlite:///{path}"
    url = PgSession.get().new_url()
    Store.create(url, seeds=seeded).close()
    return url


def blank_url(backend: str, tmp_path: Path, name: str = "blank") -> str:
    """URL of a database with nothing in it (no schema) on `backend`."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}-{secrets.token_hex(3)}.db'}"
    return PgSession.get().new_url()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """"sqlite" or "postgresql"."""
    return request.param


@pytest.fixture
def make_db(backend, tmp_path, _seeded_template):
    """Factory: make_db(seeded=True) -> URL of a fresh database on the test's backend."""
    def make(seeded: bool = True, name: str = "db") -> str:
        return new_db(backend, tmp_path, seeded=seeded, template=_seeded_template, name=name)
    return make


# Contract-test modules import these to run their `empty_store` / `seeded_store` tests on
# every backend (they override conftest's SQLite-only fixtures of the same names).
@pytest.fixture(name="empty_store")
def any_empty_store(make_db):
    """A store with the schema and no events, on each backend."""
    store = Store.open(make_db(seeded=False))
    yield store
    store.close()


@pytest.fixture(name="seeded_store")
def any_seeded_store(make_db):
    """A store holding the bundled seeds, on each backend."""
    store = Store.open(make_db(seeded=True))
    yield store
    store.close()


def raw_engine(url: str):
    """A plain engine with none of the store's settings (for tampering and raw SQL)."""
    return create_engine(url)


def raw(url: str, *statements: str) -> None:
    """Run statements on a plain connection, as an attacker with database access would."""
    eng = raw_engine(url)
    try:
        with eng.begin() as c:
            for sql in statements:
                c.exec_driver_sql(sql)
    finally:
        eng.dispose()


def dump_projections(store: Store) -> tuple[list, list, list]:
    """Every row of intervals, measures and the `known on` index, in key order, for
    comparison with a rebuild."""
    with store.engine.connect() as c:
        ivs = [tuple(r) for r in c.execute(text(
            "SELECT stream, valid_from, valid_to, rate, status, legal_status, state, event_ids "
            "FROM intervals ORDER BY stream, valid_from"))]
        ms = [tuple(r) for r in c.execute(text(
            "SELECT stream, kind, imposer, target, scope, title, version, first_effective, "
            "tail_date, tail_state, pending, known_through FROM measures ORDER BY stream"))]
        known = [tuple(r) for r in c.execute(text(
            "SELECT stream, valid_from, known_from, known_to, state, event_ids "
            "FROM known_intervals ORDER BY stream, valid_from, known_from"))]
    return ivs, ms, known


def projections_match_rebuild(store: Store) -> bool:
    """Whether the maintained projections equal a full rebuild from the log."""
    before = dump_projections(store)
    store.rebuild()
    return dump_projections(store) == before


def normalise(answer_json: str) -> str:
    """A query answer with the per-database fields (times and hashes) removed."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items()
                    if k not in ("recorded_at", "hash", "prev_hash", "sql")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return json.dumps(strip(json.loads(answer_json)), sort_keys=True)


def new_event(stream: str, type_: str, effective: str, *, title: str | None = None,
              known: str | None = None, id: str | None = None, **payload):
    """A NewEvent for API appends (source: a test citation)."""
    import datetime as dt

    from timeline.log.events import NewEvent

    p = {"title": title or f"{type_} {stream} {effective}", **payload}
    return NewEvent(stream, type_, dt.date.fromisoformat(effective), p, {"name": "test"},
                    known=dt.date.fromisoformat(known) if known else None, id=id)


def run_main(*argv: str):
    """Run the CLI in this process: a CompletedProcess (returncode, stdout, stderr).

    conftest.run_cli under the name these modules have always used; an exception escaping
    `main` fails the test just as a traceback would. Use conftest.run_cli_process where the
    real process matters.
    """
    from .conftest import run_cli

    return run_cli(*argv)


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
QUERY_TODAY = dt.date(2026, 1, 1)


def answers(url: str) -> dict[str, str]:
    store = Store.open(url, readonly=True)
    out = {}
    try:
        with store.reading() as conn:
            for q in QUERIES:
                try:
                    answer = run(conn, parse(q), q, Context(today=QUERY_TODAY))
                except QueryError as exc:  # a refusal must be the same on every backend too
                    out[q] = f"error: {exc}"
                    continue
                out[q] = normalise(json.dumps(answer.data, default=str))
    finally:
        store.close()
    return out
