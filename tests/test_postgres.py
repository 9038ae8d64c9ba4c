"""What only PostgreSQL has: every query form answering exactly as on SQLite, the CLI over a
server URL, and a clear error when the server is unreachable.

The backend contract itself (storage, projections, golden queries, copy) runs on both
backends in test_store.py, test_projections.py, test_golden_queries.py and test_copy.py.
"""
from __future__ import annotations

import json

from timeline.log.schema import HEAD_REVISION

from .backends import QUERIES, answers, new_db, only_postgres
from .conftest import run_cli

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


@only_postgres
def test_contains_ignores_ascii_case_the_same_way_on_both_backends(seeded_db):
    pg = new_db("postgresql", seeded_db.parent, seeded=True)
    for q in ("events where title contains 'GENEVA'", "events where title contains 'geneva'",
              "events where quote contains 'xi'", "measures where title contains 'CHINA'"):
        got = {}
        for url in (f"sqlite:///{seeded_db}", pg):
            r = run_cli("query", "--db", url, "--format", "json", q)
            assert r.returncode == 0, r.stderr
            got[url] = [e.get("id") or e.get("measure") for e in json.loads(r.stdout)["results"]]
        sqlite_rows, pg_rows = got.values()
        assert sqlite_rows == pg_rows and sqlite_rows, q

