"""Unknown names are errors, never empty answers (issue 13, item 1): an unknown
jurisdiction, a `where` field no measure or event has, or an enumerated value that never
occurs is a QueryError at its position with "did you mean" from the log's real values."""
from __future__ import annotations

import json

import pytest

import timeline
from timeline.errors import QueryError

from .backends import make_db, backend  # noqa: F401  (fixtures: every backend)
from .conftest import run_cli

# (query, column of the caret, message, hint)
UNKNOWN = [
    ("total tariff by usa on china", 17, "unknown jurisdiction 'usa'",
     "did you mean 'us'? jurisdictions are written as codes"),
    # a country's name is answered with its code (issue 23, item 8)
    ("total tariff by us on china", 23, "unknown jurisdiction 'china'",
     "did you mean 'cn'? jurisdictions are written as codes"),
    ("events where rat > 50", 14, "unknown field 'rat': no event in the log has it",
     "did you mean 'rate'?"),
    ("measures where kind = tarif", 23, "unknown kind 'tarif': it never occurs in the log",
     "did you mean 'tariff'?"),
    ("measures where status = inforce", 25, "unknown status 'inforce'",
     "did you mean 'in_force'?"),
    ("measures where rat > 50", 16, "unknown field 'rat': no measure in the log has it",
     "did you mean 'rate'?"),
    ("events where type = imposd", 21, "unknown type 'imposd'", "did you mean 'imposed'?"),
    ("events where payload.titl contains x", 14, "unknown field 'payload.titl'",
     "did you mean 'payload.title'?"),
    ("measures where kind = tariff and imposer != usa", 45, "unknown imposer 'usa'",
     "did you mean 'us'? jurisdictions are written as codes"),
    ("measures where target = china", 25, "unknown target 'china'",
     "did you mean 'cn'? jurisdictions are written as codes"),
]


@pytest.mark.parametrize("query,column,message,hint", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_names_are_errors_at_their_position(make_db, query, column, message, hint):
    r = run_cli("query", "--db", make_db(), query)
    assert r.returncode == 1 and r.stdout == ""
    first, _, caret, last = r.stderr.rstrip("\n").split("\n")
    assert first.startswith(f"error at line 1, column {column}: {message}")
    assert caret.index("^") - 2 == column - 1
    assert last == hint


def test_a_valid_condition_that_matches_nothing_answers_no_rows(make_db):
    db = make_db()
    for query in ("measures where rate > 500", "events where rate > 1000",
                  "measures where kind = tariff and imposer = cn and target = cn"):
        r = run_cli("query", "--db", db, query)
        assert (r.returncode, r.stdout.split("\n")[0]) == (0, "(no rows)"), query
    r = run_cli("query", "--db", db, "--format", "json", "measures where kind = case")
    assert r.returncode == 0 and json.loads(r.stdout)["results"]


def test_chart_of_an_unknown_jurisdiction_draws_nothing(seeded_db, tmp_path):
    out = tmp_path / "x.svg"
    r = run_cli("chart", "--db", str(seeded_db), "total tariff by usa on cn", "-o", str(out))
    assert r.returncode == 1 and "unknown jurisdiction 'usa'" in r.stderr
    assert not out.exists() and "Traceback" not in r.stderr


def test_repl_reports_unknown_names_and_exits_1(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db),
                input="measures where kind = tarif;\n"
                      "measures where kind = tariff and rate > 500;\n")
    assert r.returncode == 1
    assert "unknown kind 'tarif'" in r.stderr and "did you mean 'tariff'?" in r.stderr
    assert "(no rows)" in r.stdout


def test_api_raises_query_error(seeded_db):
    with timeline.open(seeded_db, readonly=True) as tl:
        with pytest.raises(QueryError) as exc:
            tl.query("events where rat > 50")
        assert (exc.value.line, exc.value.column, exc.value.hint) == (1, 14, "did you mean 'rate'?")
