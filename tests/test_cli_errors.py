"""The command line under wrong use: usage errors exit 2, bad databases get one clear message.

Also the query limits through `timeline query`: an over-long query, a glob matching every
measure, `limit 0`, and dates at the ends of the calendar (years 1 and 9999).
"""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from timeline.surfaces import cli

from .backends import run_main
from .conftest import run_cli, run_cli_process

COMMANDS = list(cli.COMMANDS)  # every command, including any added later

# (argv, what the message must mention); every one must exit 2 with a usage line
# the arguments each command needs, so that only the bogus option is wrong
REQUIRED = {"load": ["x.toml"], "query": ["measures"], "export": ["--out", "d"],
            "chart": ["history of a.b", "-o", "c.svg"], "copy": ["--from", "a", "--to", "b"],
            "review": ["--through", "2025-01-01", "--note", "checked"], "report": ["-o", "b.html"]}
USAGE_ERRORS = [([c, *REQUIRED.get(c, []), "--bogus-option"], "unrecognized arguments")
                for c in COMMANDS] + [
    (["load"], "required: PATH"),
    (["query"], "required: query"),
    (["query", "measures", "--format", "xml"], "invalid choice"),
    (["info", "--format", "yaml"], "invalid choice"),
    (["copy", "--to", "x.db"], "--from"),
    (["copy", "--from", "x.db"], "--to"),
    (["verify", "--against"], "expected one argument"),
    (["export"], "required"),
    (["chart", "history of a.b"], "-o"),
    (["info", "extra-positional"], "unrecognized arguments"),
    (["--db"], "expected one argument"),
    (["no-such-command"], "invalid choice"),
    ([], "a command is required"),
]


@pytest.fixture(autouse=True)
def _no_default_db(tmp_path, monkeypatch):
    """Never touch the user's default database."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TIMELINE_DB", raising=False)


@pytest.mark.parametrize("argv, words", USAGE_ERRORS, ids=[" ".join(a) or "<none>"
                                                           for a, _ in USAGE_ERRORS])
def test_wrong_arguments_print_usage_and_exit_2(argv, words, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "usage: timeline" in err and words in err, err


def test_usage_error_through_the_real_process():
    r = run_cli_process("query")
    assert r.returncode == 2 and r.stderr.startswith("usage: timeline query")
    assert "Traceback" not in r.stderr


def _clean_failure(r, *words):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr and "sqlalchemy" not in r.stderr.lower(), r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


DB_COMMANDS = [["info"], ["verify"], ["query", "measures"], ["rebuild"], ["sql",
               "SELECT 1"], ["export", "--out", "{tmp}/out"]]


@pytest.mark.parametrize("argv", DB_COMMANDS, ids=lambda a: a[0])
def test_unknown_database_path(tmp_path, argv):
    missing = tmp_path / "nowhere" / "timeline.db"
    r = run_main(*[a.format(tmp=tmp_path) for a in argv], "--db", str(missing))
    _clean_failure(r, "no database at", "timeline init")
    assert not missing.exists()  # an explicit path is never created behind the user's back


def test_load_into_unknown_database_path(tmp_path):
    r = run_main("load", "--db", str(tmp_path / "none.db"), str(tmp_path / "none.toml"))
    _clean_failure(r)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("content", [b"this is a text file, not a database\n" * 40,
                                     bytes(range(256)) * 16],
                         ids=["text", "binary"])
@pytest.mark.parametrize("argv", [["info"], ["verify"], ["query", "measures"], ["init"]],
                         ids=lambda a: a[0])
def test_file_that_is_not_sqlite(tmp_path, content, argv):
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(content)
    r = (run_cli_process if argv == ["info"] else run_main)(*argv, "--db", str(bogus))
    _clean_failure(r, "not a SQLite database")
    assert bogus.read_bytes() == content  # left untouched


def test_sqlite_database_without_a_timeline_schema(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    r = run_main("info", "--db", str(other))
    _clean_failure(r, "no timeline schema", "timeline init")


@pytest.fixture
def newer_db(seeded_db):
    with sqlite3.connect(seeded_db) as c:
        c.execute("UPDATE alembic_version SET version_num = '9999'")
    return seeded_db


@pytest.mark.parametrize("argv", [["info"], ["verify"], ["query", "measures"], ["rebuild"],
                                  ["init"], ["load", "{seeds}"], ["sql", "SELECT 1"]],
                         ids=lambda a: a[0])
def test_database_from_a_newer_schema_revision(newer_db, argv, tmp_path):
    from timeline.resources import seeds_path

    r = (run_cli_process if argv == ["info"] else run_main)(
        *[a.format(seeds=seeds_path()) for a in argv], "--db", str(newer_db))
    _clean_failure(r, "'9999'", "upgrade timeline")
    with sqlite3.connect(newer_db) as c:  # nothing was migrated or written
        assert c.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_copy_from_a_newer_schema_revision(newer_db, tmp_path):
    r = run_main("copy", "--from", str(newer_db), "--to", str(tmp_path / "copy.db"))
    _clean_failure(r, "'9999'")
    assert not (tmp_path / "copy.db").exists()


def test_directory_as_database(tmp_path):
    r = run_main("info", "--db", str(tmp_path))
    _clean_failure(r)


# --- limits through `timeline query` -------------------------------------------------------

def q(db, query, fmt="json"):
    return run_main("query", "--db", str(db), "--format", fmt, query)


def test_query_longer_than_10000_characters(seeded_db):
    r = q(seeded_db, "state of us.tariff.ieepa-fentanyl.cn " + "x" * 10_000)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "longer than 10,000 characters" in r.stderr and "line 1, column 10001" in r.stderr


def test_glob_matching_everything(seeded_db):
    r = q(seeded_db, "state of * as of 2025-05-14")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    r2 = q(seeded_db, "measures")
    assert [x["measure"] for x in results] == [m["measure"] for m in
                                                json.loads(r2.stdout)["results"]]
    assert len(results) > 30


def test_limit_zero(seeded_db):
    r = q(seeded_db, "events limit 0")
    assert r.returncode == 0 and json.loads(r.stdout)["results"] == []
    r = q(seeded_db, "events limit 0", "table")
    assert r.returncode == 0 and "(no rows)" in r.stdout


@pytest.mark.parametrize("query, check", [
    ("state of us.tariff.ieepa-reciprocal.cn as of 0001-01-01",
     lambda a: a["results"][0]["state"] is None),
    ("state of us.tariff.section-301.cn as of 9999-12-31",
     lambda a: a["results"][0]["state"] is not None),
    ("history of us.tariff.* from 0001-01-01 to 9999-12-31",
     lambda a: sum(len(x["intervals"]) for x in a["results"]) > 10),
    ("events from 0001-01-01 to 9999-12-31 limit 3", lambda a: len(a["results"]) == 3),
    ("events to 0001-01-01", lambda a: a["results"] == []),
    ("diff us.tariff.section-301.cn between 0001-01-01 and 9999-12-31",
     lambda a: a["results"][0]["before_exists"] is False),
    ("total tariff by us on cn as of 9999-12-31", lambda a: isinstance(a["total"], (int, float))),
    ("state of * as of 2025-05-14 known on 0001-01-01",
     lambda a: all(x["state"] is None for x in a["results"])),
])
def test_dates_at_the_ends_of_the_calendar(seeded_db, query, check):
    r = q(seeded_db, query)
    assert r.returncode == 0, r.stderr
    assert check(json.loads(r.stdout)), r.stdout[:500]


@pytest.mark.parametrize("query", ["state of us.tariff.section-301.cn as of 9999-12-31 + 1 day",
                                   "state of us.tariff.section-301.cn as of 0001-01-01 - 1 day",
                                   "state of us.tariff.section-301.cn as of 10000-01-01"])
def test_dates_beyond_the_calendar_are_query_errors(seeded_db, query):
    r = q(seeded_db, query)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error at line 1, column"), r.stderr


def test_cli_on_a_copy_is_unaffected_by_failures(seeded_db, tmp_path):
    """Sanity: after all the abuse above, a plain copy of the seeded database verifies."""
    copy = tmp_path / "copy.db"
    shutil.copy(seeded_db, copy)
    r = run_main("verify", "--db", str(copy))
    assert r.returncode == 0 and r.stdout.startswith("ok")


@pytest.mark.parametrize("query", [
    "state of us.tariff.ieepa-reciprocal.cn as of 2025-05-14",   # the raw-cursor fast path
    "history of us.tariff.ieepa-reciprocal.cn",
    "total tariff by us on cn as of 2025-04-10",
    "measures",
])
def test_a_missing_projection_table_is_one_error_line_on_every_read_path(seeded_db, query):
    """Driver errors are translated once, at the read boundary: the fast path included."""
    import sqlite3

    con = sqlite3.connect(seeded_db)
    con.execute("DROP TABLE intervals")
    con.commit()
    con.close()
    r = run_cli("query", "--db", str(seeded_db), query)
    assert r.returncode == 1, r.stdout
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert "intervals" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
