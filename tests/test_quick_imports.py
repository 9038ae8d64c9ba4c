"""What a `state of ID as of D` process loads: only what it uses (issue 15, CLI cold start).

Each check runs the CLI in a fresh interpreter (this test process has imported everything
already) and lists which of the watched modules the command left in `sys.modules`.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from timeline.log.schema import REVISIONS

# Not one of these serves a plain `state of` read: Lark reads every other query, Alembic
# migrates, dateutil reads free-text dates, the loader and the validator's refusals serve
# `load`, explain and the SQL guard their own commands, the ORM and the extensions nothing;
# a query reads a SQLite file on the driver alone: no SQLAlchemy at all (issue 25).
NOT_ON_A_QUICK_READ = ("lark", "timeline.query.lark_parser", "alembic", "dateutil",
                       "timeline.log.loader", "difflib", "timeline.query.explain",
                       "timeline.store.readonly_sql", "sqlalchemy.orm", "sqlalchemy.ext",
                       "timeline.log.validation", "sqlalchemy", "timeline.projections.maintain")
PROBE = ("import sys\n"
         "from timeline.surfaces.cli import main\n"
         "rc = main(sys.argv[1:])\n"
         "sys.stdout.flush()\n"
         f"watched = {NOT_ON_A_QUICK_READ!r}\n"
         "print('LOADED', ','.join(m for m in watched if m in sys.modules), file=sys.stderr)\n"
         "sys.exit(rc)\n")
STATE = "state of us.tariff.section-301.cn as of 2025-01-01"


def _run(db, query: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE, "query", query, "--format", "json",
                        "--db", str(db)], capture_output=True, text=True, timeout=300)
    line = [x for x in r.stderr.splitlines() if x.startswith("LOADED")][-1]
    return r, set(filter(None, line.split(" ", 1)[1].split(",")))


@pytest.mark.parametrize("query", [STATE, "state of us.tariff.section-301.cn",
                                   "STATE OF us.tariff.section-301.cn as of 2025-01-01 "
                                   "known on 2024-06-01;"])
def test_a_quick_state_query_loads_none_of_what_it_does_not_use(seeded_db, query):
    r, loaded = _run(seeded_db, query)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert [row["measure"] for row in answer["results"]] == ["us.tariff.section-301.cn"]
    assert loaded == set()


def test_a_plain_product_query_loads_none_of_them_either(seeded_db):
    r, loaded = _run(seeded_db, "tariff on hts 8517.13.00 from cn as of 2025-04-15")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"] == 20
    assert loaded == set()


def test_any_other_query_still_reads_through_lark(seeded_db):
    r, loaded = _run(seeded_db, "history of us.tariff.section-301.cn from 2018-01-01")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"]
    assert {"lark", "timeline.query.lark_parser"} <= loaded
    assert "alembic" not in loaded and "sqlalchemy" not in loaded


@pytest.mark.parametrize("query", ["total tariff by us on cn as of 2025-04-10",
                                   "explain total tariff by us on cn as of 2025-04-10",
                                   "diff us.tariff.section-301.cn between 2024-01-01 and "
                                   "2025-06-01",
                                   "learned between 2025-01-01 and 2025-03-01"])
def test_a_query_on_a_sqlite_file_imports_neither_sqlalchemy_nor_alembic(seeded_db, query):
    # the CLI cold-start figure's query (benchmarks/coldstart.py) and other forms
    r, loaded = _run(seeded_db, query)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)
    assert not {"sqlalchemy", "alembic"} & loaded, loaded


@pytest.mark.parametrize("revision, words", [("9999", ("'9999'", "upgrade timeline")),
                                             (REVISIONS[-2], (REVISIONS[-2], "timeline init"))])
def test_a_quick_query_still_refuses_a_schema_that_is_not_the_codes(seeded_db, revision,
                                                                    words):
    with sqlite3.connect(seeded_db) as c:
        c.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    r, loaded = _run(seeded_db, STATE)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    with sqlite3.connect(seeded_db) as c:  # the read migrated nothing
        assert c.execute("SELECT version_num FROM alembic_version").fetchone() == (revision,)
