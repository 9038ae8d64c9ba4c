"""Running one user-written SQL statement read-only: the guards behind `timeline sql`.

Three layers keep the log untouched, each enough on its own for the usual cases:
the file is opened with SQLite's `mode=ro` and `PRAGMA query_only=ON`, and while the
user's statement runs an authorizer allows only reads, so the things `mode=ro` lets
through (ATTACH of another file, turning `query_only` off, other PRAGMA writes) are
refused too. Refusals become a ReadOnlyError that names what was refused.
"""
from __future__ import annotations

import contextlib
import re

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from timeline.errors import ReadOnlyError, TimelineError
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


def single_statement(text: str) -> str:
    """The one statement in `text` (a trailing `;` allowed); TimelineError otherwise."""
    statements = split_sql(text)
    if not statements:
        raise TimelineError("empty SQL: give one SELECT statement, e.g. "
                            "\"SELECT * FROM v_measures\"")
    if len(statements) > 1:
        raise TimelineError(f"{len(statements)} SQL statements given; `timeline sql` runs "
                            f"exactly one statement at a time (nothing was run)")
    return statements[0]


class _Guard:
    """A sqlite3 authorizer that allows reads only and remembers the first refusal."""

    def __init__(self):
        self.refused: str | None = None

    def __call__(self, action, arg1, arg2, dbname, source):
        if action in _ALLOWED:
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
    """Install the read-only authorizer on a SQLite connection for the duration."""
    raw = conn.connection.dbapi_connection
    if not hasattr(raw, "set_authorizer"):  # PostgreSQL: the read-only transaction suffices
        yield None
        return
    guard = _Guard()
    raw.set_authorizer(guard)
    try:
        yield guard
    finally:
        raw.set_authorizer(None)


def run_select(store, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only connection of `store`: (column names, rows)."""
    statement = single_statement(sql)
    if _verb(statement) == "VACUUM":
        # VACUUM has no authorizer hook, and `VACUUM INTO 'file'` writes a file even
        # from a read-only database
        raise _refusal(store.where, "VACUUM")
    with store.user_sql() as conn:
        # BEGIN is issued before the authorizer goes in: it must not be refused itself
        conn.begin()
        with _guarded(conn) as guard:
            try:
                result = conn.exec_driver_sql(statement)
                columns = list(result.keys()) if result.returns_rows else []
                rows = [tuple(r) for r in result] if result.returns_rows else []
            except (DBAPIError, SQLAlchemyError) as exc:
                if guard is not None and guard.refused:
                    raise _refusal(store.where, _label(statement, guard.refused)) from exc
                err = dbmod.translate(exc, store.where) if isinstance(exc, DBAPIError) \
                    else TimelineError(str(exc))
                if isinstance(err, ReadOnlyError):
                    raise _refusal(store.where, _verb(statement)) from exc
                raise err from exc
        conn.rollback()
    return columns, rows


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
