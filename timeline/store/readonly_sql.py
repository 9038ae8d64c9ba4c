"""Running one user-written SQL statement read-only: the guards behind `timeline sql`.

SQLite: three layers keep the log untouched, each enough on its own for the usual cases:
the file is opened with SQLite's `mode=ro` and `PRAGMA query_only=ON`, and while the
user's statement runs an authorizer allows only reads, so the things `mode=ro` lets
through (ATTACH of another file, turning `query_only` off, other PRAGMA writes) are
refused too. Refusals become a ReadOnlyError that names what was refused.

PostgreSQL has no authorizer, and a superuser can undo any privilege drop inside its own
session (`set_config('session_authorization', …)`), so the statement runs on a separate
connection as the least-privilege role `timeline_reader` that migration 0004 creates
(SELECT on the documented views only), in a READ ONLY transaction; or as the URL in
$TIMELINE_SQL_URL. When neither that role nor the --db user is unprivileged (no superuser,
no CREATEROLE, in none of pg_read_server_files, pg_write_server_files,
pg_execute_server_program), it refuses, with the reason, instead of running anything.
"""
from __future__ import annotations

import contextlib
import os
import re

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from timeline.errors import ReadOnlyError, StoreError, TimelineError
from timeline.log import db as dbmod

# Introspection PRAGMAs that take an argument but never change anything.
READ_PRAGMAS_WITH_ARG = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
})
# PRAGMAs that act even without an argument.
ACTING_PRAGMAS = frozenset({"optimize", "wal_checkpoint", "incremental_vacuum",
                            "shrink_memory", "query_only"})

# sqlite3 authorizer action codes (SQLite's C API numbers) to the words users know.
_ACTIONS = {
    1: "CREATE INDEX", 2: "CREATE TABLE", 3: "CREATE TEMP INDEX", 4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER", 6: "CREATE TEMP VIEW", 7: "CREATE TRIGGER", 8: "CREATE VIEW",
    9: "DELETE", 10: "DROP INDEX", 11: "DROP TABLE", 12: "DROP TEMP INDEX",
    13: "DROP TEMP TABLE", 14: "DROP TEMP TRIGGER", 15: "DROP TEMP VIEW", 16: "DROP TRIGGER",
    17: "DROP VIEW", 18: "INSERT", 19: "PRAGMA", 20: "READ", 21: "SELECT", 22: "TRANSACTION",
    23: "UPDATE", 24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE",
    29: "CREATE VTABLE", 30: "DROP VTABLE", 31: "FUNCTION", 32: "SAVEPOINT", 33: "RECURSIVE",
}
_ALLOWED = {20, 21, 31, 33}  # READ, SELECT, FUNCTION, RECURSIVE
# functions no read needs: fts3_tokenizer takes (and returns) a C pointer (issue 24);
# load_extension is disabled by the driver already
_REFUSED_FUNCTIONS = frozenset({"fts3_tokenizer"})
# The largest string or blob `timeline sql` lets SQLite build (SQLITE_LIMIT_LENGTH): a
# randomblob(300000000) ran for half a minute at 5.6 GB, deaf to the --timeout, since one
# such call is one step of SQLite's machine, between two looks of the progress handler.
MAX_VALUE_BYTES = 10_000_000
_SQLITE_OK, _SQLITE_DENY = 0, 1


def split_sql(text: str) -> list[str]:
    """The statements in `text`, split on `;` outside strings, identifiers and comments."""
    out, buf, i, n = [], [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = text.find(close, i + 1)
            # a doubled quote inside a string is an escaped quote: find() lands on the
            # first of the pair, and the loop picks the second up as a new opening
            j = n if j < 0 else j + 1
            buf.append(text[i:j])
            i = j
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(text[i:j])
            i = j
        elif ch == ";":
            out.append("".join(buf))
            buf, i = [], i + 1
        else:
            buf.append(ch)
            i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", sql, flags=re.S)


_NOT_TEXT = re.compile("[\ud800-\udfff]")


def single_statement(text: str) -> str:
    """The one statement in `text` (a trailing `;` allowed); TimelineError otherwise."""
    bad = _NOT_TEXT.search(text)
    if bad:
        # Python keeps bytes that are not UTF-8 (an argv, a piped line) as lone surrogates,
        # which no driver can encode
        code = ord(bad.group())
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else \
            f"lone surrogate U+{code:04X}"
        raise TimelineError(f"the SQL is not valid UTF-8 text ({what} at character "
                            f"{bad.start() + 1}); nothing was run")
    statements = split_sql(text)
    if not statements:
        raise TimelineError("empty SQL: give one SELECT statement, e.g. "
                            "\"SELECT * FROM v_measures\"")
    if len(statements) > 1:
        raise TimelineError(f"{len(statements)} SQL statements given; `timeline sql` runs "
                            f"exactly one statement at a time (nothing was run)")
    return statements[0]


_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master",
                            "sqlite_temp_schema"})


class _Guard:
    """A sqlite3 authorizer that allows reads only and remembers the first refusal."""

    def __init__(self, reading: bool = False):
        # reading: the statement is a SELECT / VALUES / WITH
        self.refused: str | None = None
        self.reading = reading

    def __call__(self, action, arg1, arg2, dbname, source):
        if action == 31 and (arg2 or "").lower() in _REFUSED_FUNCTIONS:
            self.refused = self.refused or f"the function {arg2.lower()}()"
            return _SQLITE_DENY
        if action in _ALLOWED:
            return _SQLITE_OK
        if action == 23 and self.reading and arg1 in _SCHEMA_TABLES:
            # SQLite asks this while it sets up an eponymous virtual table (json_each,
            # json_tree, pragma_table_info(...)) for a SELECT; nothing is written, and a real
            # write to the schema is refused by the other two layers (mode=ro, query_only)
            return _SQLITE_OK
        if action == 19 and arg1:  # PRAGMA: reading is fine, setting is not
            name = arg1.lower()
            if name not in ACTING_PRAGMAS and (arg2 is None or name in READ_PRAGMAS_WITH_ARG):
                return _SQLITE_OK
            self.refused = self.refused or f"PRAGMA {name}" + (" = …" if arg2 else "")
            return _SQLITE_DENY
        self.refused = self.refused or _ACTIONS.get(action, f"action {action}")
        return _SQLITE_DENY


@contextlib.contextmanager
def _guarded(conn):
    """Install the read-only authorizer, and the value-size limit, on a SQLite connection
    for the duration."""
    import sqlite3

    raw = conn.connection.dbapi_connection
    if not hasattr(raw, "set_authorizer"):  # PostgreSQL: guarded by its role, below
        yield None
        return
    guard = _Guard()
    raw.set_authorizer(guard)
    length = raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    try:
        yield guard
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
        raw.set_authorizer(None)


READER_ROLE = "timeline_reader"
READER_URL_ENV = "TIMELINE_SQL_URL"
# Whether the connected role could reach the server's files or programs, or get that right.
_PG_PRIVILEGED = """
    SELECT u.rolname FROM pg_roles u
    WHERE u.rolname IN (current_user, session_user)
      AND (u.rolsuper OR u.rolcreaterole
           OR pg_has_role(u.oid, 'pg_read_server_files', 'MEMBER')
           OR pg_has_role(u.oid, 'pg_write_server_files', 'MEMBER')
           OR pg_has_role(u.oid, 'pg_execute_server_program', 'MEMBER'))"""
# SQLSTATEs that mean "not allowed": insufficient_privilege, read_only_sql_transaction
_PG_REFUSALS = {"42501": "not permitted", "25006": "read-only transaction"}


class RowStream:
    """The rows of one read-only statement, fetched in batches while the reader iterates.

    `columns` are the result's column names; iterating yields row tuples, `batches()` lists
    of them. Memory stays bounded by the batch size, however many rows the statement has."""

    def __init__(self, columns: list[str], batches):
        self.columns = columns
        self._batches = batches

    def batches(self):
        """The rows in lists of at most the batch size, in order."""
        return self._batches

    def __iter__(self):
        for batch in self._batches:
            yield from batch


BATCH_ROWS = 2000
# What one fetch may hold, about: the rows asked for shrink when they are large (2,000 rows
# of 9 MB blobs were one fetchmany of 18 GB). The first fetch asks for FIRST_ROWS.
BATCH_BYTES = 32_000_000
FIRST_ROWS = 16


class _BatchSizer:
    """How many rows the next fetch asks for: at most the batch size, and as many as fit in
    BATCH_BYTES at the size the rows fetched so far had."""

    def __init__(self, most: int):
        self.most = most
        self.n = min(most, FIRST_ROWS)

    def saw(self, rows) -> None:
        """Size the next fetch from the rows just fetched."""
        if rows:
            per_row = sum(_value_bytes(v) for r in rows for v in r) // len(rows) + 1
            self.n = max(1, min(self.most, BATCH_BYTES // per_row))


def _value_bytes(value) -> int:
    return len(value) if isinstance(value, (str, bytes, bytearray, memoryview)) else 8
# the statements a PostgreSQL server-side cursor (DECLARE … CURSOR FOR) accepts
_CURSOR_VERBS = ("SELECT", "WITH", "VALUES", "TABLE")


def run_select(store, sql: str, *, max_rows: int | None = None
               ) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only connection of `store`: (column names, rows).

    At most `max_rows` rows are fetched when given; `store.timeout` limits its run time."""
    with stream_select(store, sql) as stream:
        rows: list[tuple] = []
        for batch in stream.batches():
            rows.extend(batch)
            if max_rows is not None and len(rows) >= max_rows:
                del rows[max_rows:]
                break
        return stream.columns, rows


@contextlib.contextmanager
def stream_select(store, sql: str, *, batch: int = BATCH_ROWS):
    """Run one statement read-only and yield its RowStream; rows are fetched as it is read.

    The --timeout counts the time spent fetching, not the time the reader takes."""
    statement = single_statement(sql)
    if _verb(statement) == "VACUUM":
        # VACUUM has no authorizer hook, and `VACUUM INTO 'file'` writes a file even
        # from a read-only database
        raise _refusal(store.where, "VACUUM")
    # the views show the projections: refused, like every query, when the log was changed
    # behind the store's back (Store.reading checks the head they reflect)
    store.head()
    if store.dialect == "postgresql":
        with _stream_postgres(store, statement, batch) as stream:
            yield stream
        return
    with store.user_sql() as conn:
        # BEGIN is issued before the authorizer goes in: it must not be refused itself
        conn.begin()
        with dbmod.time_limit(conn, store.timeout, store.where) as budget, \
                _guarded(conn) as guard:
            if guard is not None:
                guard.reading = _verb(statement) in ("SELECT", "VALUES", "WITH")

            def refused(exc):
                if guard is not None and guard.refused:
                    return _refusal(store.where, _label(statement, guard.refused))
                err = dbmod.translate(exc, store.where) if isinstance(exc, DBAPIError) \
                    else TimelineError(str(exc))
                if isinstance(err, ReadOnlyError) or "may not be modified" in str(err):
                    return _refusal(store.where, _verb(statement))
                if "string or blob too big" in str(err):
                    return StoreError(f"{store.where}: a value of the result would be larger "
                                      f"than {MAX_VALUE_BYTES:,} bytes, the most `timeline "
                                      f"sql` builds; nothing was returned")
                return err

            try:
                result = conn.exec_driver_sql(statement)
            except (DBAPIError, SQLAlchemyError) as exc:
                raise refused(exc) from exc

            def batches():
                if not result.returns_rows:
                    return
                sizer = _BatchSizer(batch)
                while True:
                    try:
                        rows = result.fetchmany(sizer.n)
                        sizer.saw(rows)
                    except (DBAPIError, SQLAlchemyError) as exc:
                        raise refused(exc) from exc
                    if not rows:
                        return
                    with budget.paused():
                        yield [tuple(r) for r in rows]

            yield RowStream(list(result.keys()) if result.returns_rows else [], batches())
            result.close()
        conn.rollback()


def _verb(statement: str) -> str:
    words = _strip_comments(statement).split()
    return words[0].upper() if words else "statement"


_OBJECT_WORDS = {"TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL", "TABLE", "VIEW", "INDEX",
                 "TRIGGER"}


def _label(statement: str, refused: str) -> str:
    """What to call the refused statement: its own verb ("CREATE TABLE") when it has one."""
    verb = _verb(statement)
    if verb in ("SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA"):
        # the statement looks like a read; the authorizer saw what it really tried
        return refused
    words = _strip_comments(statement).upper().split()
    label = [words[0]]
    for w in words[1:]:
        if w not in _OBJECT_WORDS:
            break
        label.append(w)
    return " ".join(label)


def _refusal(where: str, what: str) -> ReadOnlyError:
    return ReadOnlyError(f"{where} is opened read-only: {what} refused. `timeline sql` runs "
                         f"SELECT (and read-only PRAGMA) statements only; nothing was written")


@contextlib.contextmanager
def _stream_postgres(store, statement: str, batch: int):
    """The statement as the least-privilege role, in a READ ONLY transaction (see above);
    a SELECT is read through a server-side cursor, so the client holds one batch at a time."""
    import psycopg  # optional extra: only a PostgreSQL database gets here

    budget = dbmod.Budget(store.timeout)

    def failed(exc):
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if getattr(exc, "sqlstate", None) == "57014":  # query_canceled
            return StoreError(dbmod.timeout_message(store.where, store.timeout))
        if getattr(exc, "sqlstate", None) in _PG_REFUSALS or "data-modifying" in msg:
            # (a DELETE inside WITH is refused by DECLARE CURSOR before the read-only
            # transaction would refuse it)
            return ReadOnlyError(
                f"{store.where}: {_verb(statement)} refused ({msg}). `timeline sql` runs "
                f"as the role {role} in a read-only transaction: SELECT on the documented "
                f"views only; nothing was written")
        return dbmod.translate(exc, store.where)

    def limit(cur):
        # the server stops the statement itself, also if this client is killed; each
        # FETCH gets what is left of the budget
        if store.timeout:
            left = budget.left()
            if left <= 0:
                raise StoreError(dbmod.timeout_message(store.where, store.timeout))
            cur.execute(f"SET LOCAL statement_timeout = {max(int(left * 1000), 1)}")

    with _pg_unprivileged(store) as (conn, role):
        with _transaction(conn):
            mode = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
            if mode != "on":
                raise ReadOnlyError(f"{store.where}: the transaction is not read-only, so "
                                    f"`timeline sql` refuses to run (nothing was run)")
            raw = conn.connection.dbapi_connection
            setup = raw.cursor()
            named = _verb(statement) in _CURSOR_VERBS
            cur = raw.cursor(name="timeline_sql") if named else raw.cursor()
            try:
                try:
                    limit(setup)
                    # no parameters: psycopg then leaves every `%` of the user's SQL alone
                    cur.execute(statement)
                    # a named cursor runs nothing until the first FETCH: fetch it now, so
                    # errors surface before any output
                    sizer = _BatchSizer(batch)
                    first = cur.fetchmany(sizer.n) if (named or cur.description) else []
                    sizer.saw(first)
                except psycopg.Error as exc:
                    raise failed(exc) from None

                def batches():
                    rows = first
                    while rows:
                        with budget.paused():
                            yield [tuple(r) for r in rows]
                        try:
                            limit(setup)
                            rows = cur.fetchmany(sizer.n)
                            sizer.saw(rows)
                        except psycopg.Error as exc:
                            raise failed(exc) from None

                columns = [d.name for d in cur.description] if cur.description else []
                yield RowStream(columns, batches())
            finally:
                cur.close()
                setup.close()
            conn.rollback()


@contextlib.contextmanager
def _transaction(conn):
    """`conn.begin()`, except that a rollback after an error never hides that error: on a
    lost connection (the statement ended its own server process) the rollback fails too."""
    trans = conn.begin()
    try:
        yield
    except BaseException:
        with contextlib.suppress(DBAPIError, SQLAlchemyError):
            trans.rollback()
        raise
    if trans.is_active:
        trans.commit()


@contextlib.contextmanager
def _pg_unprivileged(store):
    """A connection (and its role) that cannot reach server files or programs, or a refusal."""
    given = os.environ.get(READER_URL_ENV)
    reader = given or make_url(store.url).set(username=READER_ROLE, password=None)
    candidates = [(reader, f"${READER_URL_ENV}" if given else f"the role {READER_ROLE}"),
                  (store.url, "the --db user")]
    reasons = []
    for url, label in candidates:
        # the name shows in pg_stat_activity: an operator sees whose statement runs
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"application_name":
                                             f"timeline sql (pid {os.getpid()})"},
                               execution_options={"postgresql_readonly": True,
                                                  "isolation_level": "REPEATABLE READ"})
        try:
            try:
                conn = engine.connect()
            except DBAPIError as exc:
                first = (str(exc.orig).strip().splitlines() or ["cannot connect"])[0]
                reasons.append(f"{label} cannot connect ({first})")
                continue
            with conn:
                with conn.begin():
                    privileged = conn.exec_driver_sql(_PG_PRIVILEGED).scalars().all()
                    role = conn.exec_driver_sql("SELECT current_user").scalar()
                if privileged:
                    reasons.append(f"{label} is {', '.join(sorted(set(privileged)))}, which "
                                   f"is a superuser, may create roles or may reach the "
                                   f"server's files or programs")
                    continue
                yield conn, role
                return
        finally:
            engine.dispose()
    raise ReadOnlyError(
        f"{store.where}: `timeline sql` cannot drop its privileges, so it refuses to run "
        f"(nothing was run): {'; '.join(reasons)}. Run `timeline init --db …` as a role that "
        f"may create roles (migration 0004 creates {READER_ROLE}), or set {READER_URL_ENV} "
        f"to the URL of an unprivileged role")
