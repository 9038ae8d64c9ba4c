"""The PostgreSQL sides of a run: timeline's Store, eventsourcing's PostgreSQL recorder and
raw psycopg, each in its own schema of a database the run creates and drops.

`PgRun(url)` creates a fresh database named after the one in `url` (`<db>_bench_<hex>`),
or, without the CREATEDB right, fresh `bench_<hex>_*` schemas in that database; `drop()`
removes exactly what it created and nothing else. Durability is the server's default
(synchronous_commit=on, fsync=on), reported with the figures.
"""
from __future__ import annotations

import json
import secrets

from . import reference as ref

RAW_INSERT = ref.RAW_INSERT.replace("?", "%s")
RAW_AS_OF = ref.RAW_AS_OF.replace("?", "%s")
RAW_KNOWN_ON = ref.RAW_KNOWN_ON.replace("?", "%s")


def es_postgres_unusable(psycopg_version: str | None = None) -> str | None:
    """Why eventsourcing's PostgreSQL recorder cannot be this run's reference, or None."""
    try:
        import eventsourcing.postgres  # noqa: F401
        import psycopg
    except Exception:
        return "eventsourcing.postgres is not importable (pip install psycopg-pool)"
    version = psycopg_version or psycopg.__version__
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) == (3, 3):
        # seen 2026-12-07: 3.3.9 never returned from the first 10,000-event insert_events
        # (client in Pipeline.sync, server in ClientRead), every time; 3.2.13 took 0.4 s
        return (f"with psycopg {version}, eventsourcing's PostgresApplicationRecorder hangs "
                f"in its first 10,000-event insert (a pipeline deadlock); for these columns "
                f"run with pip install 'psycopg[binary]<3.3'")
    return None


def check_server(url: str) -> str | None:
    """Why the server of `url` cannot be used (unparsable, not PostgreSQL, unreachable), or
    None: asked before the run, not after the SQLite figures."""
    try:
        PgRun(url, scratch=False).drop()
    except Exception as e:  # any failure is reported the same way: the cause, one line
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


class PgRun:
    """A scratch database (or scratch schemas) for one run on the server of `url`."""

    def __init__(self, url: str, scratch: bool = True):
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.get_backend_name() != "postgresql":
            raise ValueError(f"not a PostgreSQL URL: {url}")
        self.url = u.set(drivername="postgresql+psycopg")
        token = secrets.token_hex(4)
        self.admin = psycopg.connect(self._conninfo(u.database), autocommit=True)
        self.database: str | None = f"{u.database}_bench_{token}"[:63]
        self.prefix = ""
        try:
            if not scratch:
                raise psycopg.Error("no scratch database asked for")
            self.admin.execute(f'CREATE DATABASE "{self.database}"')
        except psycopg.Error:  # no CREATEDB right: schemas in the given database instead
            self.database, self.prefix = None, f"bench_{token}_"
        self.schemas: list[str] = []
        self.conn = psycopg.connect(self._conninfo(self.dbname), autocommit=True)
        self.settings = {k: self.conn.execute(f"SHOW {k}").fetchone()[0]
                         for k in ("server_version", "synchronous_commit", "fsync")}

    @property
    def dbname(self) -> str:
        """The database the sides live in."""
        return self.database or self.url.database

    def _conninfo(self, dbname: str, schema: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        u = self.url
        kw = {k: v for k, v in (("host", u.host), ("port", u.port), ("user", u.username),
                                ("password", u.password)) if v is not None}
        if schema:
            kw["options"] = f"-csearch_path={schema}"
        return make_conninfo(dbname=dbname, **kw)

    def schema(self, name: str) -> str:
        """Create (once) and return the schema of side `name`."""
        s = self.prefix + name.replace("-", "_")
        if s not in self.schemas:
            self.conn.execute(f'CREATE SCHEMA "{s}"')
            self.schemas.append(s)
        return s

    def sqlalchemy_url(self, name: str) -> str:
        """The URL timeline opens for side `name` (its schema first on the search path)."""
        u = self.url.set(database=self.dbname).update_query_dict(
            {"options": f"-csearch_path={self.schema(name)}"})
        return u.render_as_string(hide_password=False)

    def connect(self, name: str):
        """A psycopg connection (autocommit; transactions are explicit) to side `name`."""
        import psycopg

        return psycopg.connect(self._conninfo(self.dbname, self.schema(name)), autocommit=True)

    def drop(self) -> None:
        """Drop what the run created (its database, or its schemas), nothing else."""
        self.conn.close()
        if self.database:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        else:
            for s in self.schemas:
                self.admin.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
        self.admin.close()


class EsPgStore(ref.EsStore):
    """eventsourcing's PostgresApplicationRecorder (text originator ids) in its own schema."""

    def __init__(self, run: PgRun, name: str):
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        u = run.url
        self.datastore = PostgresDatastore(
            run.dbname, u.host or "localhost", u.port or 5432, u.username or "",
            u.password or "", schema=run.schema(name), originator_id_type="text")
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()


class PgSides:
    """The sides of a run on PostgreSQL (see `sides.SqliteSides` for the interface)."""

    label = "PostgreSQL"

    def __init__(self, run: PgRun):
        self.run = run

    def ours_create(self, name: str):
        """A Store on a fresh schema, no seeds (as tests/backends.py creates one)."""
        from timeline.store.store import Store

        return Store.create(self.run.sqlalchemy_url(name), seeds=False)

    def ours_open_readonly(self, name: str):
        """The store as the CLI opens it for queries."""
        from timeline.store.store import Store

        return Store.open(self.run.sqlalchemy_url(name), readonly=True)

    def es_open(self, name: str):
        """eventsourcing's PostgreSQL application recorder (table created if missing)."""
        return EsPgStore(self.run, name)

    def raw_create(self, name: str):
        """A fresh schema with the raw events table (the DDL of the SQLite reference)."""
        conn = self.run.connect(name)
        with conn.transaction():
            for stmt in ref.RAW_DDL:
                conn.execute(stmt)
        return conn

    def raw_connect(self, name: str):
        """A connection to an existing raw schema."""
        return self.run.connect(name)

    @staticmethod
    def raw_append_batch(conn, params: list[tuple]) -> None:
        """One transaction: executemany of the batch."""
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(RAW_INSERT, params)

    @staticmethod
    def raw_append_one(conn, param: tuple) -> None:
        """One durable transaction for one row."""
        with conn.transaction():
            conn.execute(RAW_INSERT, param)

    @staticmethod
    def raw_as_of(conn, stream: str, day: str):
        """Indexed as-of lookup, decoded (psycopg prepares it after a few executions)."""
        r = conn.execute(RAW_AS_OF, (stream, day)).fetchone()
        return None if r is None else (r[0], r[1], json.loads(r[2]))

    @staticmethod
    def raw_known_on(conn, stream: str, day: str, known: str):
        """The same lookup restricted to events known by `known`."""
        r = conn.execute(RAW_KNOWN_ON, (stream, day, known)).fetchone()
        return None if r is None else (r[0], r[1], json.loads(r[2]))

    def snapshot(self, src: str, dst: str) -> None:
        """Not offered on PostgreSQL (the growth check runs on SQLite)."""
        raise NotImplementedError("no growth snapshot on PostgreSQL")
