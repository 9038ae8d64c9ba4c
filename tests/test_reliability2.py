"""Issue 24 (Reliability II): each attack of the second hostile round, as a case.

Every case fails on the code before its fix: the refusal, its message, and that nothing
changed. Through the in-process CLI (`run_cli`) unless the process itself is under test;
on both backends where the attack applies (tests/backends.py).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from .backends import backend, make_db, only_postgres, raw, raw_engine  # noqa: F401 - fixtures
from .conftest import run_cli

STREAM = "us.tariff.section-301.cn"
ASK = f"state of {STREAM} as of 2026-03-01"


def raw_fails(url: str, statement: str) -> str:
    """The database's refusal of `statement` on a plain connection."""
    eng = raw_engine(url)
    try:
        with pytest.raises(Exception) as info:
            with eng.begin() as c:
                c.exec_driver_sql(statement)
        return str(info.value)
    finally:
        eng.dispose()


def answer(url: str, query: str = ASK) -> list:
    res = run_cli("--db", url, "query", query, "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["results"]


def verify_fails(url: str, *extra: str) -> str:
    res = run_cli("--db", url, "verify", *extra)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("FAILED: "), res.stderr
    return res.stderr


def forge_position(url: str) -> int:
    """A ruling's position whose event does not name STREAM: a link to it is a forgery."""
    eng = raw_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT MIN(position) FROM events WHERE type = 'ruling' AND "
                                  "payload LIKE '%\"affects\"%' AND payload NOT LIKE :s"),
                             {"s": f"%{STREAM}%"}).scalar_one()
    finally:
        eng.dispose()


FORGED_LINK = "INSERT INTO event_links (stream, position, role) VALUES ('{s}', {p}, 'affects')"
# the attacker who may alter triggers: off, forge, on again (verify sees the triggers intact)
TRIGGERS_OFF = {
    "sqlite": ["DROP TRIGGER event_links_no_forged_insert"],
    "postgresql": ["ALTER TABLE event_links DISABLE TRIGGER event_links_no_change"],
}


def triggers_on(url: str, backend: str, saved: str | None) -> None:
    raw(url, saved if backend == "sqlite" else
        "ALTER TABLE event_links ENABLE TRIGGER event_links_no_change")


def saved_insert_trigger(url: str, backend: str) -> str | None:
    if backend != "sqlite":
        return None
    eng = raw_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT sql FROM sqlite_master WHERE name = "
                                  "'event_links_no_forged_insert'")).scalar_one()
    finally:
        eng.dispose()


# -- item 1: event_links is derived from the chained events -----------------------------------
def test_a_forged_link_is_refused_by_the_database(make_db):
    url = make_db()
    pos = forge_position(url)
    err = raw_fails(url, FORGED_LINK.format(s=STREAM, p=pos))
    assert "a link its event does not imply is refused" in err
    # and a link an event implies cannot be deleted
    err = raw_fails(url, "DELETE FROM event_links WHERE role = 'affects'")
    assert "DELETE is not allowed of a link its event implies" in err
    assert run_cli("--db", url, "verify").returncode == 0


def test_a_forged_link_is_found_by_verify_removed_by_rebuild_and_never_copied(
        make_db, backend, tmp_path):
    url = make_db()
    before = answer(url)
    assert before and before[0]["state"]["rate"] == 25
    saved = saved_insert_trigger(url, backend)
    pos = forge_position(url)
    raw(url, *TRIGGERS_OFF[backend], FORGED_LINK.format(s=STREAM, p=pos))
    triggers_on(url, backend, saved)
    for extra in ((), ("--quick",)):
        err = verify_fails(url, *extra)
        assert "event_links altered" in err and f"{STREAM!r} at position {pos}" in err, err
    # copy refuses a source whose links no event implies
    target = tmp_path / "copy.db"
    res = run_cli("copy", "--from", url, "--to", str(target))
    assert res.returncode == 1 and "event_links altered" in res.stderr, res.stderr
    # the rebuild recomputes the links from the events: the forged row is gone
    assert run_cli("--db", url, "rebuild").returncode == 0
    assert run_cli("--db", url, "verify").returncode == 0
    assert run_cli("--db", url, "verify", "--quick").returncode == 0
    assert answer(url) == before
    eng = raw_engine(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM event_links WHERE stream = :s AND "
                              "position = :p"), {"s": STREAM, "p": pos}).scalar_one() == 0
    eng.dispose()


def test_a_deleted_link_is_found_and_put_back_by_rebuild(make_db, backend):
    url = make_db()
    want = answer(url, "state of us.tariff.ieepa-reciprocal.cn as of 2026-03-01")
    off = (["DROP TRIGGER event_links_no_delete"] if backend == "sqlite"
           else ["ALTER TABLE event_links DISABLE TRIGGER event_links_no_change"])
    raw(url, *off, "DELETE FROM event_links WHERE stream = 'us.tariff.ieepa-reciprocal.cn'")
    err = verify_fails(url)
    assert "event_links altered" in err and "an event implies are missing" in err
    if backend == "postgresql":
        raw(url, "ALTER TABLE event_links ENABLE TRIGGER event_links_no_change")
    else:
        assert "event_links_no_delete missing" in err
        return  # the trigger is gone for good: `verify` names it; nothing else to prove
    assert run_cli("--db", url, "rebuild").returncode == 0
    assert run_cli("--db", url, "verify").returncode == 0
    assert answer(url, "state of us.tariff.ieepa-reciprocal.cn as of 2026-03-01") == want


@pytest.mark.parametrize("table, row", [
    ("intervals", "('x.forged', '2025-01-01', NULL, 1, 'in_force', NULL, '{}', '[]')"),
    ("known_intervals", "('x.forged', '2025-01-01', '2025-01-01', NULL, '{}', '[]')"),
    ("measures", "('x.forged', 'tariff', 'us', 'cn', NULL, 'x', 1, '2025-01-01', NULL, NULL, "
                 "0, NULL)"),
])
def test_a_row_inserted_into_any_projection_is_found_and_removed_by_rebuild(make_db, table,
                                                                            row):
    url = make_db()
    raw(url, f"INSERT INTO {table} VALUES {row}")
    err = verify_fails(url)
    assert "x.forged" in err and "not in the log" in err, err
    assert run_cli("--db", url, "rebuild").returncode == 0
    assert run_cli("--db", url, "verify").returncode == 0


# -- item 4: an upgrade rebuilds what an older fold built ------------------------------------
STALE = ("UPDATE intervals SET rate = 10, status = 'lifted' WHERE stream = "
         "'us.tariff.section-301.cn'")


def test_projections_of_another_fold_version_are_refused_then_rebuilt_by_init(make_db):
    url = make_db()
    want = answer(url)
    raw(url, STALE, "UPDATE projection_head SET fold_version = 1")
    res = run_cli("--db", url, "query", ASK)
    assert res.returncode == 1 and "built by fold version 1" in res.stderr \
        and "`timeline init`" in res.stderr, res.stderr
    err = verify_fails(url, "--quick")
    assert "built by fold version 1" in err
    res = run_cli("--db", url, "init")
    assert res.returncode == 0 and "projections rebuilt" in res.stderr, res.stderr
    assert answer(url) == want
    assert run_cli("--db", url, "verify", "--quick").returncode == 0
    assert run_cli("--db", url, "verify").returncode == 0


def test_an_upgrade_from_an_older_schema_rebuilds_stale_projections(make_db):
    from timeline.log import db as dbmod
    from timeline.log import migrate

    url = make_db()
    want = answer(url)
    engine = dbmod.make_engine(url)
    try:
        migrate.downgrade(engine, "0009")
    finally:
        engine.dispose()
    raw(url, STALE)  # what an older fold made of the same log
    res = run_cli("--db", url, "init")
    assert res.returncode == 0 and "schema upgraded from 0009" in res.stderr, res.stderr
    assert answer(url) == want
    assert run_cli("--db", url, "verify", "--quick").returncode == 0
    assert run_cli("--db", url, "verify").returncode == 0


# -- item 2: outputs write regular files only -------------------------------------------------
def make_special(path, kind: str) -> None:
    """A FIFO, socket, character device or symbolic link at `path`."""
    import os
    import socket
    import stat

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # like /dev/full
        except PermissionError:
            pytest.skip("creating a device node needs root")
    else:
        target = path.with_name("target" + path.suffix)
        target.write_text("kept")
        os.symlink(target, path)


KIND_WORDS = {"fifo": "a named pipe (FIFO)", "socket": "a socket",
              "device": "a character device",
              "symlink": "a symbolic link (name the file it points to instead)"}


@pytest.mark.parametrize("kind", sorted(KIND_WORDS))
@pytest.mark.parametrize("command", ["report", "chart"])
def test_outputs_never_replace_a_special_file(seeded_db, tmp_path, kind, command):
    import os

    out = tmp_path / ("out.html" if command == "report" else "out.svg")
    make_special(out, kind)
    before = os.lstat(out)
    argv = (["report", "-o", out] if command == "report"
            else ["chart", "total tariff by us on cn", "-o", out])
    res = run_cli("--db", seeded_db, *argv)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: cannot write ") and str(out) in line, res.stderr
    assert f"it is {KIND_WORDS[kind]}, not a regular file" in line and "nothing was replaced" \
        in line
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if kind == "symlink":
        assert out.with_name("target" + out.suffix).read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_into_a_special_file_is_refused(seeded_db, tmp_path):
    out = tmp_path / "fifo"
    make_special(out, "fifo")
    res = run_cli("--db", seeded_db, "export", "--out", out)
    assert res.returncode == 1, res.stderr
    assert f"--out {out} is a named pipe (FIFO), not a folder; nothing was written" \
        in res.stderr


# -- item 3: the PostgreSQL reader role reads and does nothing else ---------------------------
PG_KEY = 0x74696D656C696E65  # the writers' advisory lock (timeline.store.locking.PG_WRITE_LOCK)
READER_REFUSED = [
    "SELECT pg_logical_emit_message(false, 'x', repeat('x', 1000))",
    f"SELECT pg_advisory_lock({PG_KEY})",
    f"SELECT pg_try_advisory_lock({PG_KEY})",
    f"SELECT pg_advisory_xact_lock({PG_KEY})",
    f"SELECT pg_try_advisory_xact_lock_shared({PG_KEY})",
    "SELECT pg_advisory_lock(1, 2)",
    "SELECT pg_advisory_unlock_all()",
    "SELECT pg_notify('timeline', 'x')",
    "SELECT lo_create(0)",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT txid_current()",
    "SELECT pg_current_xact_id()",
    "SELECT pg_cancel_backend(pg_backend_pid())",
    "SELECT pg_terminate_backend(pg_backend_pid())",
]


@only_postgres
@pytest.mark.parametrize("sql", READER_REFUSED)
def test_the_reader_role_cannot_write_wal_lock_notify_or_signal(tmp_path, sql):
    from .backends import new_db

    url = new_db("postgresql", tmp_path, seeded=True)
    res = run_cli("--db", url, "sql", sql)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "permission denied for function" in res.stderr and "timeline_reader" in \
        res.stderr, res.stderr
    assert run_cli("--db", url, "sql", "SELECT count(*) FROM v_events").returncode == 0


@only_postgres
def test_a_writer_that_cannot_get_the_lock_says_who_holds_it(tmp_path):
    from .backends import new_db

    url = new_db("postgresql", tmp_path, seeded=True)
    event = tmp_path / "ev.toml"
    event.write_text('[[events]]\nstream = "us.tariff.busy.cn"\ntype = "imposed"\n'
                     'effective = 2025-01-01\nknown = 2025-01-01\ntitle = "busy"\n'
                     '[events.source]\nname = "test"\n')
    holder = raw_engine(url)
    try:
        with holder.connect() as c:
            pid = c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            c.exec_driver_sql(f"SELECT pg_advisory_lock({PG_KEY})")
            for argv in (["load", event], ["rebuild"]):
                res = run_cli("--db", url, *argv, env={"TIMELINE_BUSY_TIMEOUT_MS": "200"})
                assert res.returncode == 1, res.stderr
                line = res.stderr.strip().splitlines()[-1]
                assert line.startswith("error: ") and "is busy" in line and \
                    f"server process {pid}" in line and "0.2 s" in line, res.stderr
            c.exec_driver_sql(f"SELECT pg_advisory_unlock({PG_KEY})")
    finally:
        holder.dispose()
    assert run_cli("--db", url, "load", event).returncode == 0


# -- item 5: admission: knowledge is not dated in the future; no supersession cycles ----------
def event_json(**over) -> dict:
    ev = {"stream": "us.tariff.section-301.cn", "type": "amended", "effective": "2025-02-20",
          "known": "2025-02-20", "title": "a change", "set": {"rate": 30},
          "source": {"name": "demo"}}
    ev.update(over)
    return ev


@pytest.mark.parametrize("known", ["9999-12-31", "+30"])
def test_knowledge_dated_in_the_future_is_refused(seeded_db, tmp_path, known):
    import datetime as dt

    from .test_admission import refused, write

    if known.startswith("+"):
        known = (dt.date.today() + dt.timedelta(days=int(known))).isoformat()
    p = write(tmp_path, "future.json", {"events": [event_json(known=known)]})
    line = refused(seeded_db, p, "known", f"'{known}'", "knowledge cannot be dated later "
                   "than today (UTC) plus 2 days")
    assert "TIMELINE_KNOWN_MARGIN_DAYS" in line
    p = write(tmp_path, "range.json", {"events": [event_json(
        known="2025-02-20", known_between=["2025-02-20", known])]})
    refused(seeded_db, p, "known_between", "knowledge cannot be dated later")


def test_knowledge_dated_today_is_admitted(seeded_db, tmp_path):
    import datetime as dt

    from .test_admission import write

    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    p = write(tmp_path, "today.json", {"events": [event_json(known=today)]})
    res = run_cli("--db", seeded_db, "load", p)
    assert res.returncode == 0 and "appended 1 event" in res.stdout, res.stderr


@pytest.mark.parametrize("length", [2, 3])
def test_a_supersession_cycle_is_refused(make_db, tmp_path, length):
    from .test_admission import write

    url = make_db()
    before = run_cli("--db", url, "info", "--format", "json").stdout
    ids = [f"0190a1b2-0000-7000-8000-00000000c{i:03d}" for i in range(length)]
    evs = [event_json(id=ids[i], type="correction", title=f"correction {i}",
                      supersedes=[ids[(i + 1) % length]]) for i in range(length)]
    p = write(tmp_path, "cycle.json", {"events": evs})
    res = run_cli("--db", url, "load", p)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "supersession cycle: " + " -> ".join(ids + ids[:1]) in res.stderr, res.stderr
    assert run_cli("--db", url, "info", "--format", "json").stdout == before
    # a chain that ends is fine: the last one an amendment that supersedes nothing
    evs[-1]["type"] = "amended"
    evs[-1].pop("supersedes")
    res = run_cli("--db", url, "load", write(tmp_path, "chain.json", {"events": evs}))
    assert res.returncode == 0, res.stderr


# -- item 6: limits that hold ------------------------------------------------------------------
def test_sqlite_sql_values_are_capped_and_pointer_functions_refused(seeded_db):
    res = run_cli("--db", seeded_db, "sql", "--timeout", "3", "SELECT randomblob(300000000)")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "larger than 10,000,000 bytes, the most `timeline sql` builds" in res.stderr
    res = run_cli("--db", seeded_db, "sql", "SELECT length(randomblob(9000000))")
    assert res.returncode == 0 and "9000000" in res.stdout, res.stderr
    for sql in ("SELECT fts3_tokenizer('simple')",
                "SELECT hex(fts3_tokenizer('simple', x'0000000000000000'))"):
        res = run_cli("--db", seeded_db, "sql", sql)
        assert res.returncode == 1 and "the function fts3_tokenizer() refused" in res.stderr, \
            res.stderr
    from timeline import api

    with api.open(str(seeded_db), readonly=True) as tl:
        from timeline.errors import TimelineError

        with pytest.raises(TimelineError, match="larger than 10,000,000 bytes"):
            tl.sql("SELECT zeroblob(20000000)")
        assert tl.sql("SELECT 1")


@pytest.mark.parametrize("kind", ["device", "fifo", "fifo in a folder", "socket"])
def test_load_reads_regular_files_only(seeded_db, tmp_path, kind):
    if kind == "device":
        target = "/dev/zero"
    else:
        folder = tmp_path / "events"
        folder.mkdir()
        target = folder / "a.toml"
        make_special(target, kind.split()[0])
        if kind.endswith("folder"):
            target = folder
    before = run_cli("--db", seeded_db, "info", "--format", "json").stdout
    res = run_cli("--db", seeded_db, "load", target)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    words = {"device": "is a character device", "socket": "is a socket"}.get(
        kind, "is a named pipe (FIFO)")
    assert f"{words}, not an event file; only regular files are loaded" in res.stderr
    assert run_cli("--db", seeded_db, "info", "--format", "json").stdout == before


def test_a_file_larger_than_the_cap_is_refused_while_reading(seeded_db, tmp_path,
                                                            monkeypatch):
    from timeline.log import loader

    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2000 + "\n")
    res = run_cli("--db", seeded_db, "load", big)
    assert res.returncode == 1 and "larger than 1,000 bytes" in res.stderr, res.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_special_file_as_the_database_is_refused(tmp_path, kind):
    db = tmp_path / "db.sqlite"
    make_special(db, kind)
    for argv in (["query", "measures"], ["init"], ["sql", "SELECT 1"], ["verify"]):
        res = run_cli("--db", db, *argv)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip() == f"error: {db} is " + KIND_WORDS[kind] + \
            ", not a database file", res.stderr


# -- item 7: the API ----------------------------------------------------------------------------
def test_state_takes_one_measure_id_never_a_clause(seeded_db):
    from timeline import api
    from timeline.errors import QueryError

    m = "us.tariff.ieepa-reciprocal.cn"
    with api.open(str(seeded_db), readonly=True) as tl:
        for bad in (m + " where rate > 1000", m + " as of 2025-04-10", "us.tariff.*"):
            with pytest.raises(QueryError, match="takes one measure id"):
                tl.state(bad)
        assert tl.state(m, as_of="2025-04-15")["state"]["rate"] == 125


def test_a_forked_child_opens_its_own_connections(make_db):
    import os

    from timeline import api

    url = make_db()
    q = "total tariff by us on cn as of 2025-04-15"
    with api.open(url) as tl:
        assert tl.query(q).total == 145  # the pool now holds the parent's connection
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer, report, and leave without running any cleanup
            code = 1
            try:
                with os.fdopen(write, "w") as out:
                    answers = [tl.query(q).total for _ in range(5)]
                    out.write(json.dumps(answers))
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        answers_here = [tl.query(q).total for _ in range(5)]  # at the same time
        with os.fdopen(read) as inp:
            child = inp.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and json.loads(child) == [145] * 5
        assert answers_here == [145] * 5
        assert tl.query(q).total == 145  # the parent's session is intact


def test_large_rows_are_fetched_a_few_at_a_time(make_db):
    """2,000 rows of 9 MB were one fetch of 18 GB: a fetch now holds about BATCH_BYTES."""
    from timeline import api
    from timeline.store import readonly_sql

    url = make_db()
    big = ("SELECT {blob} AS b FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
           "FROM n WHERE i < 40) SELECT i FROM n) AS t")
    blob = "randomblob(4000000)" if url.startswith("sqlite") else "repeat('x', 4000000)"
    with api.open(url, readonly=True) as tl, tl.sql_stream(big.format(blob=blob)) as rows:
        sizes = [len(b) for b in rows.batches()]
    assert sum(sizes) == 40 and sizes[0] == readonly_sql.FIRST_ROWS
    assert max(sizes[1:]) <= readonly_sql.BATCH_BYTES // 4_000_000 + 1
    with api.open(url, readonly=True) as tl, tl.sql_stream("SELECT * FROM v_events") as rows:
        sizes = [len(b) for b in rows.batches()]
    assert sizes[0] == readonly_sql.FIRST_ROWS and max(sizes) > readonly_sql.FIRST_ROWS
