"""`timeline sql`: read-only SQL over the documented views; every write kind refused."""
from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from tests.conftest import run_cli
from timeline.store import readonly_sql as sqlaccess
from timeline.surfaces.output import render_rows
from timeline.errors import ReadOnlyError, TimelineError
from timeline.store.readonly_sql import run_select, split_sql
from timeline.store.store import Store

VIEWS = ("v_events", "v_measures", "v_intervals", "v_state_today")


@pytest.fixture
def ro_store(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    yield store
    store.close()


def _log_state(db) -> tuple:
    store = Store.open(str(db), readonly=True)
    try:
        head = store.head()
        return head.position, head.hash, store.count(), store.verify().hash
    finally:
        store.close()


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_is_queryable_in_every_format(seeded_db, view):
    r = run_cli("sql", "--db", str(seeded_db), f"SELECT * FROM {view} LIMIT 3", "--format",
                "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert r.stdout.count("\n") == 1  # compact, one line, when not on a terminal
    assert len(rows) == 3 and all(isinstance(row, dict) for row in rows)
    r = run_cli("sql", "--db", str(seeded_db), f"SELECT * FROM {view} LIMIT 3", "--format",
                "csv")
    assert r.returncode == 0
    parsed = list(csv.reader(io.StringIO(r.stdout, newline="")))
    assert len(parsed) == 4 and parsed[0] == list(rows[0])
    r = run_cli("sql", "--db", str(seeded_db), f"SELECT * FROM {view} LIMIT 3")
    assert r.returncode == 0 and "(3 rows)" in r.stdout


def test_csv_is_rfc_4180(ro_store):
    cols, rows = run_select(ro_store, "SELECT 'a,b' AS x, 'say \"hi\"' AS y, NULL AS z")
    assert render_rows(cols, rows, "csv") == 'x,y,z\r\n"a,b","say ""hi""",\r\n'


def test_views_agree_with_the_log_and_the_planner(ro_store):
    assert run_select(ro_store, "SELECT COUNT(*) FROM v_events")[1] == [(ro_store.count(),)]
    _, rows = run_select(ro_store, "SELECT rate FROM v_intervals WHERE measure = "
                                   "'cn.tariff.retaliatory.us' AND valid_from <= '2025-04-10' "
                                   "AND (valid_to IS NULL OR valid_to > '2025-04-10')")
    assert rows == [(84,)]
    cols, rows = run_select(ro_store, "SELECT source_name, source_file, source_quote "
                                      "FROM v_events WHERE source_quote IS NOT NULL "
                                      "AND source_file IS NOT NULL LIMIT 1")
    assert cols == ["source_name", "source_file", "source_quote"]
    assert rows[0][1].startswith("sources/") and rows[0][2]


WRITES = [
    ("INSERT INTO events (position) VALUES (999)", "INSERT"),
    ("UPDATE measures SET title = 'x'", "UPDATE"),
    ("DELETE FROM intervals", "DELETE"),
    ("REPLACE INTO measures (stream) VALUES ('x.y')", "REPLACE"),
    ("WITH x AS (SELECT 1) INSERT INTO events (position) SELECT * FROM x", "INSERT"),
    ("CREATE TABLE t (a)", "CREATE TABLE"),
    ("CREATE TEMP TABLE t (a)", "CREATE TEMP TABLE"),
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
    ("CREATE INDEX i ON events (stream)", "CREATE INDEX"),
    ("DROP VIEW v_events", "DROP VIEW"),
    ("DROP TRIGGER events_no_update", "DROP TRIGGER"),
    ("ALTER TABLE events ADD COLUMN z", "ALTER TABLE"),
    ("ATTACH DATABASE '{attach}' AS other", "ATTACH"),
    ("DETACH DATABASE main", "DETACH"),
    ("PRAGMA user_version = 7", "PRAGMA user_version"),
    ("PRAGMA query_only = OFF", "PRAGMA query_only"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
    ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"),
    ("VACUUM", "VACUUM"),
    ("VACUUM INTO '{attach}'", "VACUUM"),
    ("REINDEX", "REINDEX"),
    ("ANALYZE", "ANALYZE"),
    ("BEGIN", "BEGIN"),
    ("SAVEPOINT s", "SAVEPOINT"),
]


@pytest.mark.parametrize("sql, what", WRITES, ids=[w[1] + ":" + w[0][:20] for w in WRITES])
def test_each_write_kind_is_refused_and_the_log_is_untouched(seeded_db, tmp_path, sql, what):
    before = _log_state(seeded_db)
    attach = tmp_path / "other.db"
    r = run_cli("sql", "--db", str(seeded_db), sql.format(attach=attach))
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "read-only" in r.stderr
    assert f"{what}" in r.stderr and "refused" in r.stderr
    assert r.stdout == ""
    assert _log_state(seeded_db) == before  # head position, head hash, count, chain
    assert not attach.exists()  # neither ATTACH nor VACUUM INTO created a file


def test_database_level_read_only_holds_without_the_authorizer(ro_store, monkeypatch):
    """mode=ro + query_only refuse writes on their own; the authorizer is a second layer."""
    @contextlib.contextmanager
    def no_guard(conn):
        yield None

    monkeypatch.setattr(sqlaccess, "_guarded", no_guard)
    before = ro_store.head()
    for sql in ("INSERT INTO events (position) VALUES (999)", "UPDATE measures SET title = 1",
                "DELETE FROM events", "CREATE TABLE t (a)", "DROP VIEW v_events",
                "PRAGMA user_version = 3"):
        with pytest.raises(ReadOnlyError, match="read-only"):
            run_select(ro_store, sql)
    assert ro_store.head() == before


def test_several_statements_are_refused_before_any_runs(seeded_db):
    before = _log_state(seeded_db)
    r = run_cli("sql", "--db", str(seeded_db), "SELECT 1; DELETE FROM events")
    assert r.returncode == 1
    assert "2 SQL statements" in r.stderr and "one statement at a time" in r.stderr
    assert _log_state(seeded_db) == before


def test_a_trailing_semicolon_and_comments_are_fine(ro_store):
    assert run_select(ro_store, "SELECT ';' AS x; -- done;")[1] == [(";",)]
    assert run_select(ro_store, "/* a; b */ SELECT 2;\n")[1] == [(2,)]


def test_read_only_pragmas_are_allowed(ro_store):
    cols, rows = run_select(ro_store, "PRAGMA table_info(v_measures)")
    assert "name" in cols and any("measure" in r for r in rows)
    assert run_select(ro_store, "PRAGMA user_version")[1] == [(0,)]


def test_sql_errors_are_clear(seeded_db, tmp_path):
    r = run_cli("sql", "--db", str(seeded_db), "SELECT nope FROM v_events")
    assert r.returncode == 1 and "no such column: nope" in r.stderr
    r = run_cli("sql", "--db", str(seeded_db), "  ;  ")
    assert r.returncode == 1 and "empty SQL" in r.stderr
    r = run_cli("sql", "--db", str(tmp_path / "missing.db"), "SELECT 1")
    assert r.returncode == 1 and "no database" in r.stderr
    r = run_cli("sql", "--db", str(seeded_db), "SELECT 1", "--format", "xml")
    assert r.returncode == 2


def test_run_select_insists_on_a_read_only_store(seeded_store):
    with pytest.raises(ReadOnlyError):
        run_select(seeded_store, "SELECT 1")


@pytest.mark.parametrize("text, expected", [
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT 1;", ["SELECT 1"]),
    ("SELECT 'a;b'; SELECT \"c;d\"", ["SELECT 'a;b'", 'SELECT "c;d"']),
    ("SELECT 'it''s;'", ["SELECT 'it''s;'"]),
    ("SELECT 1 -- x;y\n; ", ["SELECT 1 -- x;y"]),
    ("SELECT /* ; */ 1", ["SELECT /* ; */ 1"]),
    ("SELECT [a;b] FROM `c;d`", ["SELECT [a;b] FROM `c;d`"]),
    (";;  -- nothing\n", []),
])
def test_split_sql(text, expected):
    assert split_sql(text) == expected


def test_single_statement_messages():
    with pytest.raises(TimelineError, match="empty SQL"):
        sqlaccess.single_statement("-- only a comment")
    with pytest.raises(TimelineError, match="3 SQL statements"):
        sqlaccess.single_statement("SELECT 1; SELECT 2; SELECT 3")


@pytest.mark.parametrize("pretty", [False, True])
def test_json_of_odd_values_is_valid_json(ro_store, pretty):
    """Attack: infinities (SQLite's 1e999) and blobs came out as `Infinity` and b'…' reprs;
    JSON has neither. They are written as PostgreSQL's to_json writes them."""
    sql = ("SELECT 1e999 AS inf, -1e999 AS ninf, x'00ff' AS b, -0.0 AS nz, "
           "9223372036854775807 AS big, char(0, 27) AS ctl")
    for text in (render_rows(*run_select(ro_store, sql), "json", pretty=pretty),
                 _streamed(ro_store, sql, "json", pretty)):
        rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
        assert rows == [{"inf": "Infinity", "ninf": "-Infinity", "b": "\\x00ff", "nz": -0.0,
                         "big": 9223372036854775807, "ctl": "\x00\x1b"}]


def test_csv_and_table_show_a_blob_as_hex(ro_store):
    cols, rows = run_select(ro_store, "SELECT x'00ff' AS b")
    assert render_rows(cols, rows, "csv") == "b\r\n\\x00ff\r\n"
    assert "\\x00ff" in render_rows(cols, rows, "table")


def test_a_table_cell_never_sends_control_characters_to_the_terminal(ro_store):
    """Attack: an escape character in a value (ESC [2J clears the screen) reached the
    terminal raw through a table; it is shown as text. CSV and JSON keep the exact value."""
    sql = "SELECT char(27) || '[2J' || char(7, 9, 0) AS c, 1 AS \"h\x1b[2J\""
    cols, rows = run_select(ro_store, sql)
    for expanded in ("off", "on"):
        for text in (render_rows(cols, rows, "table", width=80, expanded=expanded),
                     render_rows(cols, rows, "table", expanded=expanded),
                     _streamed(ro_store, sql, "table")):
            assert not any(ch in text for ch in "\x1b\x07\t\x00"), repr(text)
            assert "\\x1b[2J" in text and "h\\x1b[2J" in text
    assert "\x1b" in render_rows(cols, rows, "csv")


def _streamed(store, sql, fmt, pretty=False):
    from timeline.surfaces.output import write_rows
    cols, rows = run_select(store, sql)
    buf = io.StringIO()
    write_rows(buf, cols, [rows], fmt, pretty=pretty)
    return buf.getvalue()


@pytest.mark.parametrize("sql", ["SELECT '\udcff'", "SELECT '\ud800' AS x"])
def test_sql_that_is_not_utf8_is_refused_in_one_line(seeded_db, sql):
    """Attack: bytes that are not UTF-8 in the SQL (an argv or a piped shell line, which
    Python keeps as lone surrogates) were an internal error from the driver's encoder."""
    from tests.backends import run_main

    res = run_main("--db", seeded_db, "sql", sql)
    assert res.returncode == 1 and "not valid UTF-8" in res.stderr, res.stderr
    assert "internal error" not in res.stderr and len(res.stderr.splitlines()) == 1
