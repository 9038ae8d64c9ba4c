"""The core commands as a user runs them: default database creation, info, verify, rebuild."""
from __future__ import annotations

import json

from timeline.log.schema import HEAD_REVISION

from .backends import new_db, only_postgres
from .conftest import run_cli


def test_first_use_creates_the_default_database_from_the_seeds(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    r = run_cli("info", "--format", "json", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "created" in r.stderr and "seed events loaded" in r.stderr
    info = json.loads(r.stdout)
    assert info["database"] == str(tmp_path / "data" / "timeline" / "timeline.db")
    assert info["events"] >= 80 and info["head_position"] == info["events"]
    assert len(info["head_hash"]) == 64 and info["schema_revision"] == HEAD_REVISION
    again = run_cli("info", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "created" not in again.stderr  # only the first time
    v = run_cli("verify", env=env, cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.startswith("ok") and info["head_hash"] in v.stdout


def test_timeline_db_environment_variable_is_honoured(tmp_path, seeded_db):
    r = run_cli("info", "--format", "json", env={"TIMELINE_DB": str(seeded_db)})
    assert json.loads(r.stdout)["database"] == str(seeded_db)


def test_explicit_missing_database_is_an_error_not_a_creation(tmp_path):
    missing = tmp_path / "nope.db"
    r = run_cli("info", "--db", str(missing))
    assert r.returncode == 1 and "no database at" in r.stderr and not missing.exists()


def test_init_creates_then_reports(tmp_path):
    db = tmp_path / "new.db"
    r = run_cli("init", "--db", str(db))
    assert r.returncode == 0 and db.exists() and "head:" in r.stdout
    r2 = run_cli("init", "--db", str(db))
    assert r2.returncode == 0 and f"schema at {HEAD_REVISION}" in r2.stderr


def test_rebuild_reports_and_keeps_answers(seeded_db):
    q = ["query", "--db", str(seeded_db), "--format", "json",
         "total tariff by us on cn as of 2025-04-10"]
    before = run_cli(*q).stdout
    r = run_cli("rebuild", "--db", str(seeded_db))
    assert r.returncode == 0 and "rebuilt projections of" in r.stdout
    assert run_cli(*q).stdout == before


def test_query_formats(seeded_db):
    q = "state of cn.tariff.retaliatory.us as of 2025-04-10"
    j = json.loads(run_cli("query", "--db", str(seeded_db), "--format", "json", q).stdout)
    assert set(j) == {"query", "as_of", "known_on", "results", "horizon", "warnings",
                      "projected"}
    assert set(j["results"][0]) == {"measure", "state", "since", "until", "events",
                                    "projected"}
    import subprocess
    import sys

    raw = subprocess.run([sys.executable, "-m", "timeline", "query", "--db", str(seeded_db),
                          "--format", "csv", q], capture_output=True).stdout
    assert raw.split(b"\r\n")[0] == b"measure,rate,status,legal_status,since,until,details"
    assert raw.count(b"\r\n") == 2  # RFC 4180: CRLF after the header and the row
    table = run_cli("query", "--db", str(seeded_db), q).stdout
    assert "cn.tariff.retaliatory.us" in table and "84" in table


def test_no_state_yet_is_an_answer_not_an_error(seeded_db):
    q = "state of us.tariff.section-122.global as of 2025-01-01"
    r = run_cli("query", "--db", str(seeded_db), "--format", "json", q)
    assert r.returncode == 0
    assert json.loads(r.stdout)["results"][0]["state"] is None
    t = run_cli("query", "--db", str(seeded_db), q)
    assert "no state as of 2025-01-01" in t.stdout


def test_usage_errors_exit_2(seeded_db):
    assert run_cli("query", "--db", str(seeded_db), "--format", "xml", "measures").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    assert run_cli().returncode == 2  # no command and no terminal


def test_info_path_prints_the_file_in_use_honouring_xdg_and_timeline_db(tmp_path, seeded_db):
    env = {"XDG_DATA_HOME": str(tmp_path / "elsewhere")}
    r = run_cli("info", "--path", env=env, cwd=tmp_path)
    expected = tmp_path / "elsewhere" / "timeline" / "timeline.db"
    assert r.returncode == 0 and r.stdout == f"{expected}\n"  # one line, nothing else
    assert expected.exists()  # created on first use, as `info` does
    r = run_cli("info", "--path", env={"TIMELINE_DB": str(seeded_db)})
    assert r.stdout == f"{seeded_db}\n"
    r = run_cli("info", "--path", "--db", f"sqlite:///{seeded_db}")
    assert r.stdout == f"{seeded_db}\n"
    # the path is what sqlite3 opens: the same log as `timeline info` describes
    import sqlite3

    with sqlite3.connect(f"file:{r.stdout.strip()}?mode=ro", uri=True) as con:
        n = con.execute("SELECT COUNT(*) FROM v_events").fetchone()[0]
    assert n == json.loads(run_cli("info", "--format", "json", "--db",
                                   str(seeded_db)).stdout)["events"]


def test_info_path_of_a_missing_database_is_an_error(tmp_path):
    missing = tmp_path / "nope.db"
    r = run_cli("info", "--path", "--db", str(missing))
    assert r.returncode == 1 and "no database at" in r.stderr and not r.stdout
    assert not missing.exists()


@only_postgres
def test_info_path_of_a_server_database_says_it_has_no_file(tmp_path):
    url = new_db("postgresql", tmp_path, seeded=False)
    r = run_cli("info", "--path", "--db", url)
    assert r.returncode == 1 and not r.stdout
    assert "is not a database file" in r.stderr and "Traceback" not in r.stderr


def test_readme_asks_timeline_for_the_path_instead_of_hard_coding_it():
    from .conftest import REPO

    for doc in ("README.md", "docs/sql.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        assert "sqlite3 ~/.local/share" not in text and "sqlite3 -readonly ~/" not in text
        assert '"$(timeline info --path)"' in text


def test_the_query_command_parses_its_query_once(seeded_db, monkeypatch):
    """`timeline query` checks the query before it opens the database and runs that parse."""
    from timeline.query import parser

    calls = []
    real = parser._run

    def counting(text, start):
        calls.append(start)
        return real(text, start)

    monkeypatch.setattr(parser, "_run", counting)
    r = run_cli("query", "--db", str(seeded_db), "total tariff by us on cn as of 2025-04-10")
    assert r.returncode == 0, r.stderr
    assert calls == ["start"]
