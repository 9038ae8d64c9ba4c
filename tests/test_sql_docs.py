"""docs/sql.md: every ```sql example runs read-only on the seeded database with sensible
results, and every column of every view is documented."""
from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from timeline.store.readonly_sql import run_select
from timeline.store.store import Store

DOC = REPO / "docs" / "sql.md"
VIEWS = ("v_events", "v_measures", "v_intervals", "v_state_today", "v_product_scopes",
         "v_product_layers")


def _examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def ro_store(_seeded_template):
    store = Store.open(str(_seeded_template), readonly=True)
    yield store
    store.close()


def test_the_doc_has_examples_for_as_of_history_and_total():
    text = DOC.read_text(encoding="utf-8")
    for heading in ("**As of a date**", "**History**", "**Total**"):
        assert heading in text
    assert len(_examples()) >= 8


def _cell(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


@pytest.mark.parametrize("sql", _examples(), ids=lambda s: s.split("\n")[0][:40])
def test_every_example_runs_and_gives_sensible_results(ro_store, sql):
    columns, rows = run_select(ro_store, sql)
    assert columns and rows, "an example must return rows on the seeded database"
    for row in rows:  # no example should produce an all-NULL row
        assert any(v is not None for v in row)
    if m := re.search(r"^-- expect first row: (.+)$", sql, re.M):
        assert _cell(rows[0][0]) == m.group(1).strip()
    if m := re.search(r"^-- expect rows: (\d+)$", sql, re.M):
        assert len(rows) == int(m.group(1))


def test_the_total_example_matches_the_query_language(ro_store):
    from timeline.query.parser import parse
    from timeline.query.execute import run

    total = next(s for s in _examples() if "SUM(rate) AS total" in s)
    assert run_select(ro_store, total)[1][0][0] == 145
    text = "total tariff by us on cn as of 2025-04-10"
    with ro_store.reading() as conn:
        assert run(conn, parse(text), text).data["total"] == 145


def test_as_of_example_matches_the_planner(ro_store):
    from timeline.query.parser import parse
    from timeline.query.execute import run

    as_of = next(s for s in _examples() if "'2025-05-14'" in s and "v_intervals" in s)
    got = {r[0]: r[1] for r in run_select(ro_store, as_of)[1]}
    text = "state of us.tariff.* as of 2025-05-14"
    with ro_store.reading() as conn:
        answer = run(conn, parse(text), text)
    want = {r["measure"]: r["state"].get("rate") for r in answer.data["results"]
            if r["state"] is not None}
    assert got == want


def _documented(view: str) -> set[str]:
    """Column names in the first table after the view's `## \\`view\\`` heading."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## `{view}`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_column_is_documented(ro_store, view):
    with ro_store.reading() as conn:
        columns = set(conn.table_columns().get(view, ()))
    assert columns, f"{view} is missing from the database"
    assert columns == _documented(view)


@pytest.mark.parametrize("day", ["2025-11-05", "2026-06-01", "2026-08-01"])
def test_last_rate_and_confidence_columns_match_the_planner(ro_store, day):
    from timeline.query.parser import parse
    from timeline.query.execute import run

    cols, rows = run_select(ro_store, f"""
        SELECT measure, rate, last_rate, confidence FROM v_intervals
        WHERE valid_from <= '{day}' AND (valid_to IS NULL OR valid_to > '{day}')""")
    got = {r[0]: (r[1], r[2], r[3]) for r in rows}
    text = f"state of * as of {day}"
    with ro_store.reading() as conn:
        answer = run(conn, parse(text), text)
    want = {r["measure"]: (r["state"].get("rate"), r["state"].get("last_rate"),
                           r["state"].get("confidence"))
            for r in answer.data["results"] if r["state"] is not None}
    assert got == want
    assert any(v[1] is not None for v in got.values())  # the ended measures are there
    if day != "2025-11-05":
        assert any(v[2] == "single-source" for v in got.values())
