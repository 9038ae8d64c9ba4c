"""Attacks and abuse, each a case: the refusal, its message, and that nothing changed.

Issue 12. Every case runs through the CLI (and the API where it applies), on both backends
where the attack applies (the `backend` / `make_db` fixtures of tests/backends.py).
docs/guarantees.md names the test that proves each promise.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
from pathlib import Path

import pytest

from timeline.surfaces import cli

from .backends import backend, make_db, only_postgres, raw, run_main  # noqa: F401 - fixtures
from .conftest import run_cli


def one_error_line(res, prefix: str = "error: ") -> str:
    """The single stderr line of a failed command: no traceback, exit 1."""
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def head_of(url: str) -> tuple:
    res = run_main("--db", url, "info", "--format", "json")
    info = json.loads(res.stdout)
    return info["events"], info["head_hash"]


# -- item 7: no traceback, ever, at the CLI boundary --------------------------------------
def test_unexpected_exception_is_an_internal_error_line(monkeypatch, seeded_db, capsys):
    from timeline.surfaces import commands

    def boom(args):
        raise ZeroDivisionError("deliberately broken for the test")

    monkeypatch.setattr(commands, "run_info", boom)
    assert cli.main(["--db", str(seeded_db), "info"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("internal error: ZeroDivisionError: deliberately broken for the "
                           "test (please report; run again with --debug for the traceback)")
    assert cli.main(["--db", str(seeded_db), "info", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "boom" in err
    assert err.strip().splitlines()[-1].startswith("internal error: ZeroDivisionError")


@pytest.mark.parametrize("db, words", [
    ("foo://bar", "unknown database URL scheme 'foo'"),
    ("postgresql+nodriver://u@h/db", "the driver is not installed"),
    ("http://user:secret@example.com/x", "unknown database URL scheme 'http'"),
])
def test_bad_database_urls_are_one_line(db, words):
    res = run_main("--db", db, "query", "measures")
    line = one_error_line(res)
    assert words in line and "secret" not in line


def test_directory_as_database(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    for argv in (["query", "measures"], ["init"], ["sql", "SELECT 1"], ["verify"],
                 ["export", "--out", str(tmp_path / "ex")]):
        for db in (str(d), f"sqlite:///{d}", f"{d}/"):
            line = one_error_line(run_main("--db", db, *argv))
            assert f"{d} is a directory, not a database file" in line
    assert list(d.iterdir()) == []


@pytest.mark.parametrize("query, words", [
    ("events limit 99999999999999999999", "events limit 99999999999999999999 is out of range"),
    ("events where position > 9223372036854775808",
     "position: 9223372036854775808 is out of range"),
    ("events where position > 2147483648",
     "position: 2147483648 is out of range: position is a whole number between"),
    ("events where version >= -2147483649", "version: -2147483649 is out of range"),
    ("events where payload.set.rate < -9223372036854775809", "-9223372036854775809 is out of"),
    ("measures where rate > 99999999999999999999999", "99999999999999999999999 is out of"),
    ("events where payload = 1", "payload needs a field name after it"),
])
def test_query_values_no_backend_can_bind(make_db, query, words):
    url = make_db()
    line = one_error_line(run_main("--db", url, "query", query))
    assert words in line
    # the largest value that fits is an ordinary answer
    out = run_main("--db", url, "query", "events where position > 2147483647").stdout
    assert out.strip().splitlines()[0] == "(no rows)"


def _manifest(tmp_path, name, doc) -> str:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


H = "0" * 64


@pytest.mark.parametrize("doc, words", [
    ([1, 2], "is not an export manifest (a JSON list, not an object)"),
    ({"head": {"position": 10 ** 30, "hash": H}}, "head position 1000000000000000000000000000000"
                                                   " is not a whole number"),
    ({"head": {"position": 1.5, "hash": H}}, "head position 1.5 is not a whole number"),
    ({"head": {"position": -5, "hash": H}}, "head position -5 is not a whole number"),
    ({"head": {"position": True, "hash": H}}, "head position True is not a whole number"),
    ({"head": {"position": 3, "hash": "x"}}, "head hash 'x' is not 64 lowercase hex digits"),
    ({"head": {"position": 3}}, "no head position and hash"),
    ('{"head": {"position": 1' + "0" * 5000 + ', "hash": "x"}}', "not JSON"),
    ("[" * 100_000, "not JSON"),
    ("", "not JSON"),
])
def test_malformed_manifests_for_verify_against(make_db, tmp_path, doc, words):
    url = make_db()
    before = head_of(url)
    line = one_error_line(run_main("--db", url, "verify", "--against",
                                   _manifest(tmp_path, "m.json", doc)))
    assert words in line
    assert head_of(url) == before


def _snapshot_state(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_export_out_empty_or_a_file(seeded_db, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", ""))
    assert line == "error: --out needs a folder name (it was empty)"
    f = cwd / "afile"
    f.write_text("keep me")
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", f))
    assert line == f"error: --out {f} is a file, not a folder; nothing was written"
    assert f.read_text() == "keep me"
    assert sorted(p.name for p in cwd.iterdir()) == ["afile"]


def test_export_to_a_read_only_place(seeded_db, tmp_path):
    # root ignores file modes; /proc refuses new entries to everyone
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", "/proc/timeline-x"))
    assert "cannot create /proc/timeline-x" in line


def test_export_to_a_full_disk_keeps_older_snapshots_and_latest(seeded_db, tmp_path):
    out = tmp_path / "ex"
    assert run_main("--db", seeded_db, "export", "--out", out, "--as-of",
                    "2025-05-14").returncode == 0
    before = _snapshot_state(out)

    def small_files():  # a file-size limit: the next write fails like on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "timeline", "--db", str(seeded_db), "export",
                          "--out", str(out), "--as-of", "2025-06-01"], capture_output=True,
                         text=True, preexec_fn=small_files, timeout=300)
    line = one_error_line(res)
    assert f"cannot write the snapshot into {out}" in line and "File too large" in line
    assert "earlier snapshots and latest are unchanged" in line
    assert _snapshot_state(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-01-15", "9999-12-31"])
def test_export_at_the_ends_of_the_calendar(seeded_db, tmp_path, as_of):
    out = tmp_path / "ex"
    res = run_main("--db", seeded_db, "export", "--out", out, "--as-of", as_of)
    assert res.returncode == 0, res.stderr
    # a date after today is a projection: a backfill, which never moves `latest`
    import datetime as dt
    name = as_of + ("_backfill" if as_of > dt.date.today().isoformat() else "")
    assert run_main("export", "--verify", out / name).returncode == 0


# -- items 3 and 4: `timeline sql` cannot write, nor reach the server's files or programs ---
def pg_seeded(tmp_path) -> str:
    from .backends import new_db

    return new_db("postgresql", tmp_path, seeded=True)


PG_ESCAPES = [
    ("COPY (SELECT 'x') TO PROGRAM 'touch {probe}'", "COPY refused (must be superuser or "
                                                     "have privileges of the "
                                                     "pg_execute_server_program role"),
    ("COPY v_events FROM PROGRAM 'touch {probe}'", "COPY refused"),
    ("COPY (SELECT 1) TO '{probe}'", "pg_write_server_files"),
    ("COPY v_measures FROM '/etc/hostname'", "COPY refused"),
    ("SELECT pg_read_file('/etc/hostname')", "permission denied for function pg_read_file"),
    ("SELECT pg_read_binary_file('/etc/hostname')", "permission denied for function"),
    ("SELECT pg_ls_dir('.')", "permission denied for function pg_ls_dir"),
    ("SELECT pg_stat_file('/etc/hostname')", "permission denied for function pg_stat_file"),
    ("SELECT lo_export(1, '{probe}')", "permission denied for function lo_export"),
    ("SELECT lo_import('/etc/hostname')", "permission denied for function lo_import"),
    ("SELECT set_config('session_authorization', 'postgres', true)",
     "permission denied to set session authorization"),
    ("SELECT set_config('role', 'postgres', true)", "permission denied to set role"),
    ("SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, false, '')",
     "permission denied for function pg_read_file"),
    ("SELECT count(*) FROM events", "permission denied for table events"),
    ("SELECT * FROM intervals", "permission denied for table intervals"),
    ("DELETE FROM events", "DELETE refused (cannot execute DELETE in a read-only transaction)"),
    ("UPDATE measures SET title = 'x'", "UPDATE refused"),
    ("TRUNCATE events", "TRUNCATE refused"),
    ("CREATE TABLE t (a int)", "CREATE refused"),
    ("CREATE TEMP TABLE t (a int)", "CREATE refused"),
    # a SELECT is read through a server-side cursor, which refuses a write inside WITH itself
    ("WITH gone AS (DELETE FROM events RETURNING position) SELECT * FROM gone",
     "WITH refused (DECLARE CURSOR must not contain data-modifying statements in WITH)"),
    ("SELECT * FROM v_events FOR UPDATE", "SELECT refused (permission denied for view v_events)"),
]


@only_postgres
@pytest.mark.parametrize("sql, words", PG_ESCAPES, ids=[s for s, _ in PG_ESCAPES])
def test_postgres_sql_cannot_reach_files_programs_or_write(tmp_path, sql, words):
    url = pg_seeded(tmp_path)
    before = head_of(url)
    probe = tmp_path / "probe-file"
    line = one_error_line(run_main("--db", url, "sql", sql.format(probe=probe)))
    assert words in line, line
    assert "runs as the role timeline_reader in a read-only transaction" in line
    assert not probe.exists()
    assert head_of(url) == before
    assert run_main("--db", url, "verify").returncode == 0


@only_postgres
def test_postgres_sql_reads_views_and_literal_percent(tmp_path):
    url = pg_seeded(tmp_path)
    import timeline
    # the README's own example: a literal % in a LIKE pattern, and in a string
    readme = ("SELECT measure, rate, status FROM v_intervals WHERE measure LIKE 'us.tariff.%' "
              "AND valid_from <= '2025-05-14' AND (valid_to IS NULL OR valid_to > '2025-05-14')"
              " ORDER BY measure")
    res = run_main("--db", url, "sql", readme, "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert {"measure": "us.tariff.ieepa-reciprocal.cn", "rate": 10, "status": "in_force"} in rows
    with timeline.open(url) as tl:
        assert tl.sql("SELECT '100%' AS p, current_user AS who") == (
            ["p", "who"], [("100%", "timeline_reader")])


@only_postgres
def test_postgres_sql_refuses_when_it_cannot_drop_privileges(tmp_path, monkeypatch):
    url = pg_seeded(tmp_path)
    # the only roles on offer are the superuser the tests connect as
    monkeypatch.setenv("TIMELINE_SQL_URL", url)
    res = run_main("--db", url, "sql", "SELECT 1")
    line = one_error_line(res)
    assert "`timeline sql` cannot drop its privileges, so it refuses to run (nothing was run)" \
        in line
    assert "$TIMELINE_SQL_URL is postgres, which is a superuser" in line
    assert "the --db user is postgres" in line
    monkeypatch.setenv("TIMELINE_SQL_URL", url.replace("postgres@", "no_such_role_x@"))
    line = one_error_line(run_main("--db", url, "sql", "SELECT 1"))
    assert "$TIMELINE_SQL_URL cannot connect" in line and "no_such_role_x" in line


SQLITE_READS = [
    ("SELECT value FROM json_each('[1,2]')", [(1,), (2,)]),
    ("SELECT key FROM json_tree('{\"a\":1}') WHERE key IS NOT NULL", [("a",)]),
    ("SELECT name FROM pragma_table_info('events') WHERE cid < 2", [("position",), ("id",)]),
    ("SELECT count(*) > 0 FROM pragma_index_list('events')", [(1,)]),
    ("SELECT journal_mode FROM pragma_journal_mode", [("wal",)]),
]


@pytest.mark.parametrize("sql, rows", SQLITE_READS, ids=[s for s, _ in SQLITE_READS])
def test_sqlite_table_valued_functions_are_reads(seeded_db, sql, rows):
    res = run_main("--db", seeded_db, "sql", sql, "--format", "json")
    assert res.returncode == 0, res.stderr
    assert [tuple(r.values()) for r in json.loads(res.stdout)] == rows


SQLITE_ESCAPES = [
    ("WITH a AS (SELECT 1) UPDATE sqlite_master SET sql = 'x'", "read-only: WITH refused"),
    ("UPDATE sqlite_master SET sql = 'x'", "read-only: UPDATE refused"),
    ("WITH a AS (SELECT 1) DELETE FROM events", "DELETE refused"),
    ("ATTACH '{probe}' AS x", "ATTACH refused"),
    ("VACUUM INTO '{probe}'", "VACUUM refused"),
    ("SELECT load_extension('{probe}')", "not authorized"),
    ("SELECT * FROM pragma_journal_mode('delete')", "unknown database"),
    ("PRAGMA journal_mode = delete", "PRAGMA journal_mode = … refused"),
    ("PRAGMA writable_schema = 1", "PRAGMA writable_schema = … refused"),
]


@pytest.mark.parametrize("sql, words", SQLITE_ESCAPES, ids=[s for s, _ in SQLITE_ESCAPES])
def test_sqlite_sql_escapes_stay_refused(seeded_db, tmp_path, sql, words):
    before = head_of(str(seeded_db))
    probe = tmp_path / "probe.db"
    line = one_error_line(run_main("--db", seeded_db, "sql", sql.format(probe=probe)))
    assert words in line
    assert not probe.exists()
    assert head_of(str(seeded_db)) == before


# -- item 6: the same answers on both backends ---------------------------------------------
@pytest.mark.parametrize("word", ["geneva", "GENEVA", "Geneva", "gEnEvA"])
def test_contains_has_one_case_rule_on_both_backends(make_db, word):
    url = make_db()
    every = json.loads(run_main("--db", url, "query", "events", "--format", "json").stdout)
    fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    want = [e["position"] for e in every["results"]
            if word.translate(fold) in e["payload"]["title"].translate(fold)]
    res = run_main("--db", url, "query", f'events where title contains "{word}"',
                   "--format", "json")
    assert res.returncode == 0, res.stderr
    assert [e["position"] for e in json.loads(res.stdout)["results"]] == want and want


# -- items 1 and 2: verify checks everything a reader trusts; readers notice a changed log --
def failed_verify(url: str, *extra: str) -> str:
    res = run_main("--db", url, "verify", *extra)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("FAILED: "), res.stderr
    return res.stderr


NOOP_TRIGGER = {
    "sqlite": ["DROP TRIGGER events_no_delete",
               "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT 1; END"],
    "postgresql": ["CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger "
                   "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$"],
}


def test_a_same_named_trigger_that_does_nothing_is_reported(make_db, backend):
    url = make_db()
    raw(url, *NOOP_TRIGGER[backend])
    for extra in ((), ("--quick",)):
        err = failed_verify(url, *extra)
        name = "events_no_delete" if backend == "sqlite" else "events_no_change"
        assert f"immutability triggers missing or altered: {name} altered" in err
    # the attack it hides: the log can now lose a row, and verify says so
    raw(url, "DELETE FROM events WHERE position = 5")
    err = failed_verify(url)
    assert "altered at position 5" in err and "altered" in err


@only_postgres
def test_a_disabled_trigger_is_reported(tmp_path):
    url = pg_seeded(tmp_path)
    raw(url, "ALTER TABLE events DISABLE TRIGGER events_no_truncate")
    assert "events_no_truncate disabled" in failed_verify(url, "--quick")


def test_an_altered_view_is_reported(make_db, backend):
    url = make_db()
    raw(url, "DROP VIEW v_state_today", "DROP VIEW v_intervals",
        "CREATE VIEW v_intervals AS SELECT stream AS measure, 1 AS rate FROM intervals",
        "CREATE VIEW v_state_today AS SELECT * FROM v_intervals")
    err = failed_verify(url, "--quick")
    assert "documented views missing or altered: v_intervals altered; v_state_today altered" \
        in err


def test_edited_projections_are_reported_with_measure_and_date(make_db, backend):
    url = make_db()
    q = "total tariff by us on cn as of 2025-04-10"
    before = json.loads(run_main("--db", url, "query", q, "--format", "json").stdout)
    raw(url, "UPDATE intervals SET state = replace(state, '\"rate\":125', '\"rate\":1') "
             "WHERE stream = 'us.tariff.ieepa-reciprocal.cn' AND valid_from = '2025-04-10'")
    err = failed_verify(url)
    assert ("projections altered: measure us.tariff.ieepa-reciprocal.cn, interval from "
            "2025-04-10: state is") in err and "run `timeline rebuild`" in err
    assert run_main("--db", url, "verify", "--quick").returncode == 0  # the quick check's limit
    assert run_main("--db", url, "rebuild").returncode == 0
    assert run_main("--db", url, "verify").returncode == 0
    assert json.loads(run_main("--db", url, "query", q, "--format", "json").stdout) == before


LOG_CHANGES = {
    "last row deleted": ("DELETE FROM events WHERE position = (SELECT MAX(position) FROM "
                         "events)"),
    "last row rewritten": ("UPDATE events SET hash = '" + "1" * 64 + "' WHERE position = "
                           "(SELECT MAX(position) FROM events)"),
}


@pytest.mark.parametrize("change", sorted(LOG_CHANGES))
def test_readers_refuse_a_log_changed_behind_the_stores_back(make_db, backend, tmp_path,
                                                            change):
    url = make_db()
    drop = (["DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete"]
            if backend == "sqlite" else ["DROP TRIGGER events_no_change ON events"])
    raw(url, *drop, LOG_CHANGES[change])
    events_before = run_main("--db", url, "info").stdout  # info still looks
    assert "events" in events_before
    out = tmp_path / "ex"
    seed = tmp_path / "e.toml"
    seed.write_text('[[events]]\nstream = "test.x"\ntype = "opened"\neffective = 2025-01-01\n'
                    'known = 2025-01-01\ntitle = "x"\n[events.source]\nname = "test"\n')
    for argv in (["query", "measures"], ["query", "total tariff by us on cn"],
                 ["export", "--out", out], ["load", seed], ["sql", "SELECT 1"],
                 ["chart", "total tariff by us on cn", "-o", tmp_path / "c.svg"]):
        res = run_main("--db", url, *argv)
        line = one_error_line(res)
        assert "the log changed behind the store's back: the projections reflect position" \
            in line, (argv, line)
        assert "run `timeline verify`" in line and "`timeline rebuild`" in line
    assert [p.name for p in out.iterdir()] == [".lock"]  # no snapshot, no `latest`
    assert not (tmp_path / "c.svg").exists()
    assert run_main("--db", url, "info").stdout == events_before  # load appended nothing
    assert "the log changed behind the store's back" in failed_verify(url, "--quick")


def test_verify_quick_passes_on_an_intact_log(make_db):
    url = make_db()
    res = run_main("--db", url, "verify", "--quick")
    assert res.returncode == 0 and res.stdout.startswith("ok: ")


# -- item 8: export --verify rechecks the events' hash chain -----------------------------
def _forge(snapshot: Path, edit) -> None:
    """Edit events.jsonl, then recompute the manifest's hashes, sizes and counts to match."""
    from timeline.surfaces.export import _rows, _sha256

    f = snapshot / "events.jsonl"
    lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
    f.write_text("".join(edit(lines)), encoding="utf-8")
    manifest = json.loads((snapshot / "manifest.json").read_text())
    info = manifest["files"]["events.jsonl"]
    info.update(sha256=_sha256(f), bytes=f.stat().st_size, rows=_rows(f))
    manifest["row_counts"]["events.jsonl"] = info["rows"]
    (snapshot / "manifest.json").write_text(json.dumps(manifest))


def _retitle(lines, n=10):
    ev = json.loads(lines[n - 1])
    ev["payload"]["title"] = "forged"
    return lines[:n - 1] + [json.dumps(ev) + "\n"] + lines[n:]


@pytest.mark.parametrize("edit, words", [
    (_retitle, "events.jsonl altered at position 10: its hash does not match its contents"),
    (lambda lines: lines[:5] + lines[6:], "events.jsonl altered at position 6: expected "
                                          "position 6, found 7"),
    (lambda lines: lines[:-1], "its last event is not the head named in the manifest"),
    (lambda lines: lines[:3] + ["[1]\n"] + lines[3:], "line 4 is not an event"),
])
def test_export_verify_catches_a_forged_snapshot_with_a_recomputed_manifest(
        seeded_db, tmp_path, edit, words):
    out = tmp_path / "ex"
    assert run_main("--db", seeded_db, "export", "--out", out, "--as-of",
                    "2025-05-14").returncode == 0
    snap = out / "2025-05-14"
    assert run_main("export", "--verify", snap).returncode == 0
    _forge(snap, edit)
    res = run_main("export", "--verify", snap)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert words in res.stderr, res.stderr


# -- item 5: limits on the read surfaces -------------------------------------------------
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


def test_a_statement_that_never_ends_is_stopped_by_the_timeout(make_db):
    url = make_db()
    line = one_error_line(run_main("--db", url, "sql", "--timeout", "0.5", FOREVER))
    assert line.endswith("statement stopped after 0.5 s (the --timeout); narrow the query or "
                         "raise --timeout")
    import timeline
    from timeline.errors import StoreError

    with timeline.open(url, timeout=0.5) as tl:
        with pytest.raises(StoreError, match="statement stopped after 0.5 s"):
            tl.sql(FOREVER)
        assert tl.sql("SELECT 1 AS one") == (["one"], [(1,)])  # the next statement runs


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf"])
def test_timeout_values_are_checked(value):
    res = run_main("sql", "--timeout", value, "SELECT 1")
    assert res.returncode == 2 and "--timeout needs seconds" in res.stderr


def test_max_rows(make_db):
    url = make_db()
    res = run_main("--db", url, "sql", "--max-rows", "2", "--format", "json",
                   "SELECT measure FROM v_measures ORDER BY measure")
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 2
    assert res.stderr == "timeline sql: stopped at --max-rows 2; there are more rows\n"
    res = run_main("--db", url, "sql", "--max-rows", "1000", "SELECT 1 AS one")
    assert res.returncode == 0 and res.stderr == ""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until(predicate, what: str, limit: float = 120.0) -> None:
    import time
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def _pg_running(url: str, needle: str, pid: int) -> list:
    """Server processes running the statement marked `needle`, or any statement of the
    `timeline sql` process `pid` (a SELECT shows there as FETCH from its cursor)."""
    from sqlalchemy import text

    from .backends import raw_engine
    eng = raw_engine(url)
    try:
        with eng.connect() as c:
            return list(c.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                "AND (query LIKE :q OR application_name = :app) AND pid <> pg_backend_pid()"),
                {"q": f"%{needle}%", "app": f"timeline sql (pid {pid})"}))
    finally:
        eng.dispose()


def test_ctrl_c_interrupts_a_running_statement(make_db, backend):
    import subprocess
    import sys
    url = make_db()
    marker = f"/* ctrl-c {os.getpid()} {backend} */"
    # a child inherits an ignored SIGINT (as under `pytest &` in a script), and Python then
    # leaves it ignored: give the child the default, as an interactive shell would
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "timeline", "--db", url, "sql",
                                 "--timeout", "0", f"{FOREVER} {marker}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        if backend == "postgresql":
            _wait_until(lambda: _pg_running(url, marker, proc.pid), "the statement to run")
        else:  # busy in the statement: well past the CPU time start-up takes
            _wait_until(lambda: _cpu_seconds(proc.pid) > 3, "the statement to run")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == "interrupted", err
    if backend == "postgresql":
        _wait_until(lambda: not _pg_running(url, marker, proc.pid), "the server to stop")


@only_postgres
def test_the_server_stops_when_the_client_is_killed(tmp_path):
    import subprocess
    import sys
    url = pg_seeded(tmp_path)
    marker = f"/* killed {os.getpid()} */"
    proc = subprocess.Popen([sys.executable, "-m", "timeline", "--db", url, "sql",
                             "--timeout", "3", f"{FOREVER} {marker}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: _pg_running(url, marker, proc.pid), "the statement to run")
        proc.kill()
        proc.wait(timeout=60)
        # statement_timeout ends the server's work although nobody is listening any more
        _wait_until(lambda: not _pg_running(url, marker, proc.pid),
                    "the server to stop the statement")
    finally:
        proc.kill()


LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"


# runs the CLI in a fresh interpreter, then reports that process's own peak RSS (VmHWM of
# its address space): rusage would count the parent's size at fork, before exec
_MEASURED = """
import sys
from timeline.surfaces.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = next(line.split()[1] for line in f if line.startswith("VmHWM"))
sys.stderr.write(f"VmHWM {peak}\\n")
sys.exit(code)
"""


def _peak_rss_mb(argv: list[str]) -> tuple[int, float, str]:
    """Run the CLI with `argv`, output thrown away: (exit code, its peak RSS in MB, stderr)."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    lines = proc.stderr.splitlines()
    peak = [int(line.split()[1]) for line in lines if line.startswith("VmHWM ")]
    assert peak, proc.stderr
    return proc.returncode, peak[-1] / 1024, proc.stderr  # VmHWM is in kB


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_huge_select_streams_in_bounded_memory(make_db, backend, fmt):
    url = make_db()
    # a million rows (three million with TIMELINE_LONG_TESTS=1): held in memory, as before,
    # they took well over 100 MB; streamed, the process stays under it
    n = 3_000_000 if LONG else 1_000_000
    sql = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
           f"SELECT x, 'row number ' || x AS label FROM c")
    code, peak, err = _peak_rss_mb(["--db", url, "sql", "--timeout", "0", "--format", fmt,
                                    sql])
    assert code == 0, err
    assert peak < 100, f"peak RSS {peak:.0f} MB for {n} rows as {fmt}"


def test_streamed_output_is_what_the_whole_result_renders(make_db):
    import io

    import timeline
    from timeline.surfaces import output
    url = make_db()
    sql = "SELECT * FROM v_state_today ORDER BY measure"
    with timeline.open(url) as tl:
        columns, rows = tl.sql(sql)
        for fmt in ("csv", "json", "table"):
            for pretty in (False, True):
                for size in (1, 7, 1000):
                    buf = io.StringIO()
                    batches = [rows[i:i + size] for i in range(0, len(rows), size)]
                    n = output.write_rows(buf, columns, iter(batches), fmt, pretty=pretty)
                    whole = output.render_rows(columns, rows, fmt, pretty=pretty)
                    assert n == len(rows)
                    assert buf.getvalue().rstrip("\n") == whole.rstrip("\n"), (fmt, size)
        with tl.sql_stream(sql) as stream:
            assert stream.columns == columns
            assert list(stream) == rows


def test_a_table_too_long_to_hold_keeps_the_first_rows_widths(monkeypatch):
    import io

    from timeline.surfaces import output
    monkeypatch.setattr(output, "TABLE_LAYOUT_ROWS", 3)
    rows = [(1, "a"), (2, "bb"), (3, "ccc"), (4, "a much longer cell"), (5, None)]
    buf = io.StringIO()
    assert output.write_rows(buf, ["n", "word"], iter([rows[:3], rows[3:4], rows[4:]])) == 5
    assert buf.getvalue().splitlines() == ["n  word", "-  ----", "1  a", "2  bb", "3  ccc",
                                           "4  a m…", "5", "(5 rows)"]


def test_max_rows_stops_fetching_early(make_db):
    # a statement with no end: --max-rows ends it after the rows it prints
    url = make_db()
    res = run_main("--db", url, "sql", "--timeout", "60", "--max-rows", "3", "--format", "csv",
                   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                   "SELECT x FROM c")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["x", "1", "2", "3"]
    assert "stopped at --max-rows 3; there are more rows" in res.stderr


# -- attacks on this session's features (issues 12, 13, 15, 16) ---------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("args", [
    ("sql", "SELECT * FROM events"), ("sql", "SELECT * FROM events", "--format", "json"),
    ("query", "events"), ("query", "learned between 2018-01-01 and 2026-01-01"),
    ("info", "--path"), ("schema",)])
def test_a_full_disk_under_stdout_is_one_clear_error(seeded_db, args):
    """Attack: output into a full disk (/dev/full: every write is ENOSPC) was reported as an
    internal error to report; it is the user's disk, said in one line, exit 1."""
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "timeline", *args, "--db", str(seeded_db)],
                             stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    line = one_error_line(res)
    assert "No space left on device" in line and "internal error" not in line


def _load_json_events(db, tmp_path, events) -> None:
    path = tmp_path / "extra.json"
    path.write_text(json.dumps({"events": events}), encoding="utf-8")
    res = run_cli("load", "--db", str(db), str(path))
    assert res.returncode == 0, res.stderr


def _tariff(stream, rate, **more) -> dict:
    return {"stream": stream, "type": "imposed", "effective": "2020-01-01",
            "known": "2020-01-01", "title": "A demo tariff",
            "set": {"rate": rate, "imposer": "zz", "target": "yy", "kind": "tariff", **more},
            "source": {"name": "demo"}}


def test_a_total_of_decimal_rates_is_exact_and_exports(seeded_db, tmp_path):
    """Attack: 0.1 % + 0.2 % totalled 0.30000000000000004 % (binary floats): shown so, and
    a total Parquet's decimal(18, 6) cannot hold. Rates add as the decimals they are."""
    _load_json_events(seeded_db, tmp_path, [
        _tariff("zz.tariff.a.yy", 0.1, scope="all goods"),
        _tariff("zz.tariff.b.yy", 0.2, scope="all goods"),
        _tariff("zz.tariff.c.yy", 7.5)])  # no scope: a product tariff, beside the total
    res = run_cli("query", "--db", str(seeded_db), "total tariff by zz on yy as of 2021-01-01",
                  "--format", "json")
    data = json.loads(res.stdout)
    assert data["total"] == 0.3
    res = run_cli("query", "--db", str(seeded_db), "total tariff by zz on yy as of 2021-01-01")
    assert "0.30000000000000004" not in res.stdout and "None" not in res.stdout, res.stdout
    assert "also applies to some goods\n" in res.stdout.replace("  ", "").replace(" \n", "\n")
    pytest.importorskip("matplotlib")
    res = run_cli("chart", "--db", str(seeded_db), "total tariff by zz on yy",
                  "-o", str(tmp_path / "t.svg"), "--from", "2020-01-01", "--to", "2021-01-01")
    assert res.returncode == 0, res.stderr
    assert "zz.tariff.c.yy 7.5 %" in res.stderr and "None" not in res.stderr, res.stderr


def _full_disk(monkeypatch, after: int = 0) -> None:
    """Every fsync after the first `after` fails as a full disk does (delayed allocation
    reports ENOSPC there), as a small tmpfs would."""
    import errno

    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def test_export_into_a_full_disk_at_every_flush_says_what_is_on_disk(seeded_db, tmp_path,
                                                                      monkeypatch):
    # the disk fills at each flush in turn, until an export gets through: before the
    # snapshot is renamed into place nothing changed; after, the snapshot is there, whole,
    # `latest` still names the old one, and the error says so; no temporary file is left
    out = tmp_path / "out"
    assert run_main("--db", seeded_db, "export", "--out", out, "--as-of", "2025-06-01") \
        .returncode == 0
    before = sorted(p.name for p in out.iterdir())
    outcomes = set()
    for after in range(200):
        _full_disk(monkeypatch, after)
        res = run_main("--db", seeded_db, "export", "--out", out, "--as-of", "2025-06-02")
        monkeypatch.undo()
        if res.returncode == 0:
            break
        line = one_error_line(res)
        assert "No space left on device" in line, line
        assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]
        if "unchanged" in line:
            outcomes.add("unchanged")
            assert sorted(p.name for p in out.iterdir()) == before
            assert (out / "latest").read_text() == "2025-06-01\n"
        else:
            outcomes.add("written")
            named = (out / "latest").read_text().strip()  # the last flush may follow its move
            assert "the snapshot 2025-06-02 was written" in line and f"latest names {named}" \
                in line
            assert run_main("export", "--verify", out / "2025-06-02").returncode == 0
            # the next flush point starts from the same place
            shutil.rmtree(out / "2025-06-02")
            (out / "latest").write_text("2025-06-01\n")
        assert run_main("export", "--verify", out).returncode == 0
    else:
        pytest.fail("the export never got through")
    assert outcomes == {"unchanged", "written"} and after > 3
    assert (out / "latest").read_text() == "2025-06-02\n"


def test_report_into_a_full_disk_leaves_the_old_page(seeded_db, tmp_path, monkeypatch):
    import errno

    page = tmp_path / "brief.html"
    page.write_text("yesterday's page", encoding="utf-8")
    from timeline import files

    def full(fd):  # the page is written; the disk refuses to take it
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", full)
    res = run_main("--db", seeded_db, "report", "-o", page, "--as-of", "2025-06-01")
    assert "No space left on device" in one_error_line(res)
    assert page.read_text(encoding="utf-8") == "yesterday's page"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half page


@pytest.mark.parametrize("args", [("sql", "--max-rows", "\u00b2", "SELECT 1"),
                                  ("export", "--out", "x", "--keep", "\u00b2")])
def test_a_superscript_count_is_a_usage_error_naming_the_option(seeded_db, args):
    """Attack: '²' passed str.isdigit, then int() failed and argparse printed its own
    'invalid _count value' naming a Python function instead of the option's rule."""
    res = run_main("--db", seeded_db, *args)
    assert res.returncode == 2 and "needs a whole number" in res.stderr, res.stderr


@only_postgres
def test_postgres_sql_whose_connection_dies_is_one_clear_error(tmp_path):
    """Attack: a statement whose server process ends (an administrator, a server restart)
    was an internal error: the rollback on the lost connection hid the server's message.
    (The reader may no longer end its own process: issue 24 revoked pg_terminate_backend.)"""
    import threading

    from .backends import raw_engine

    url = pg_seeded(tmp_path)
    admin = raw_engine(url)
    stop = threading.Event()

    def terminate():
        with admin.connect() as c:
            while not stop.is_set():
                if c.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "application_name = %(a)s AND state = 'active'",
                        {"a": f"timeline sql (pid {os.getpid()})"}).all():
                    return
                c.commit()
                stop.wait(0.05)

    killer = threading.Thread(target=terminate)
    killer.start()
    try:
        line = one_error_line(run_main("--db", url, "sql", "SELECT pg_sleep(20)"))
    finally:
        stop.set()
        killer.join()
        admin.dispose()
    assert "terminating connection" in line and "internal error" not in line
    assert run_main("--db", url, "sql", "SELECT 1").returncode == 0


def test_a_query_error_never_echoes_control_characters():
    # ESC, BEL and a C1 control in the query: the error shows '?' for each, caret aligned
    res = run_main("query", "state of \x1b[2J\x07x\x9b as of 2025-01-01")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7f <= ord(ch) < 0xa0
                   for ch in res.stderr), repr(res.stderr)
    lines = res.stderr.splitlines()
    echoed = next(line for line in lines if line.startswith("  state of"))
    caret = lines[lines.index(echoed) + 1]
    assert "?[2J?" in echoed and echoed[caret.index("^")] not in " "
