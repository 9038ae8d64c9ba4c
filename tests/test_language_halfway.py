"""The language meets people halfway (issue 23, item 8): relative dates, unquoted dates,
country names, a missing measure, `until`/`scheduled` filters that agree across forms,
`first date where total tariff …`, catalogue titles and an `explain` that leads with the
evidence. Each test failed before the change; those that read the log run on both backends."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from .backends import make_db, backend  # noqa: F401  (fixtures: every backend)
from .conftest import run_cli


def query_json(db: str, text: str) -> dict:
    """The JSON answer of `timeline query` (which must succeed)."""
    r = run_cli("query", "--db", db, "--format", "json", text)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def query_error(db: str, text: str) -> tuple[str, str, str, str]:
    """(message line, query line, caret line, hint line) of a refused query."""
    r = run_cli("query", "--db", db, text)
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.rstrip("\n").split("\n")
    return lines[0], lines[1], lines[2], lines[-1]


def caret_column(caret_line: str) -> int:
    """The 1-based column a caret line points at (the query is shown indented by two)."""
    return caret_line.index("^") - 1


# -- 1. relative dates --------------------------------------------------------------------
@pytest.mark.parametrize("word,offset", [("yesterday", "today - 1 day"),
                                         ("last week", "today - 7 days"),
                                         ("last month", "today - 1 month"),
                                         ("last year", "today - 1 year")])
def test_relative_dates_are_days_before_today(make_db, word, offset):
    db = make_db()
    q = "state of us.tariff.ieepa-fentanyl.cn as of {} known on {}"
    got = query_json(db, q.format(word, word))
    want = query_json(db, q.format(offset, offset))
    assert (got["as_of"], got["known_on"]) == (want["as_of"], want["known_on"])
    assert got["results"] == want["results"]
    assert got["as_of"] < dt.date.today().isoformat()


def test_relative_dates_render_and_parse_back():
    from timeline.query.parser import parse

    q = parse("learned between last month and yesterday")
    assert q.render() == "learned between last month and yesterday"
    assert parse(q.render()) == q


def test_last_needs_a_period(seeded_db):
    message, _, caret, _ = query_error(str(seeded_db), "events from last decade")
    assert message == "error at line 1, column 18: unexpected 'decade'"
    assert caret_column(caret) == 18


# -- 2. unquoted free-text dates ----------------------------------------------------------
@pytest.mark.parametrize("text,column,phrase,hint", [
    ("state of us.tariff.ieepa-fentanyl.cn as of April 10 2025", 44, "April 10 2025",
     'write as of "April 10 2025" (or as of 2025-04-10)'),
    ("state of us.tariff.ieepa-fentanyl.cn as of 10 April 2025", 44, "10 April 2025",
     'write as of "10 April 2025" (or as of 2025-04-10)'),
    ("total tariff by us on cn as of 2025-04-10 known on May 1, 2025", 52, "May 1, 2025",
     'write known on "May 1, 2025" (or known on 2025-05-01)'),
    ("history of us.tariff.ieepa-reciprocal.cn from April 1 2025 to 2025-05-01", 47,
     "April 1 2025", 'write from "April 1 2025" (or from 2025-04-01)'),
])
def test_unquoted_date_says_quote_it(seeded_db, text, column, phrase, hint):
    message, _, caret, last = query_error(str(seeded_db), text)
    assert message == (f"error at line 1, column {column}: unquoted date {phrase!r}: "
                       f"a free-text date is written in quotes")
    assert caret_column(caret) == column
    assert last == hint


def test_the_quoted_form_the_hint_shows_is_accepted(seeded_db):
    got = query_json(str(seeded_db),
                     'state of us.tariff.ieepa-fentanyl.cn as of "April 10 2025"')
    assert got["as_of"] == "2025-04-10"


# -- 3. country names ---------------------------------------------------------------------
@pytest.mark.parametrize("text,column,name,code", [
    ("total tariff by us on china", 23, "china", "cn"),
    ("total tariff by united states on cn", 17, "united states", "us"),
    ("total tariff by cn on united states of america", 23, "united states of america", "us"),
    ("tariff on steel from china", 22, "china", "cn"),
    ("measures where target = china", 25, "china", "cn"),
])
def test_country_names_suggest_the_code(make_db, text, column, name, code):
    message, _, caret, hint = query_error(make_db(), text)
    assert message.startswith(f"error at line 1, column {column}: unknown ")
    assert f"{name!r}" in message
    assert caret_column(caret) == column
    assert hint.startswith(f"did you mean {code!r}?")


def test_capitalised_country_name_suggests_the_code(seeded_db):
    *_, hint = query_error(str(seeded_db), "tariff on steel from China")
    assert hint == "did you mean 'cn'?"


# -- 4. a missing measure -----------------------------------------------------------------
@pytest.mark.parametrize("text,column,word", [
    ("learned for between 2025-01-01 and 2025-02-01", 13, "between"),
    ("diff between 2025-01-01 and 2025-02-01", 6, "between"),
    ("state of as of 2025-01-01", 10, "as"),
    ("events for where type = ruling", 12, "where"),
])
def test_a_keyword_where_the_measure_belongs_is_a_missing_measure(seeded_db, text, column, word):
    message, _, caret, hint = query_error(str(seeded_db), text)
    assert message == (f"error at line 1, column {column}: missing measure before {word!r}: "
                       f"write a measure id or glob here")
    assert caret_column(caret) == column
    assert "unknown measure" not in message and hint


# -- 5. until and scheduled, the same on every form ---------------------------------------
def test_until_filters_every_form_alike(make_db):
    db = make_db()
    where = "where until < 2025-07-01 and kind = tariff"
    state = query_json(db, f"state of * as of 2025-06-01 {where}")
    measures = query_json(db, f"measures as of 2025-06-01 {where}")
    known = query_json(db, f"measures as of 2025-06-01 known on 2026-06-22 {where}")
    names = [r["measure"] for r in state["results"]]
    assert names == [r["measure"] for r in measures["results"]] == \
        [r["measure"] for r in known["results"]]
    assert "us.tariff.ieepa-fentanyl.cn" in names and len(names) == 3
    assert all(r["until"] < "2025-07-01" for r in state["results"])


def test_scheduled_filters_every_form_alike(make_db):
    db = make_db()
    for where in ("where scheduled", "where scheduled < 2025-09-01",
                  "where not scheduled and kind = tariff and status = in_force"):
        state = query_json(db, f"state of * as of 2025-06-01 {where}")
        measures = query_json(db, f"measures as of 2025-06-01 {where}")
        names = [r["measure"] for r in state["results"]]
        assert names, where
        assert names == [r["measure"] for r in measures["results"]], where
    got = query_json(db, "state of * as of 2025-06-01 where scheduled < 2025-09-01")
    assert [r["measure"] for r in got["results"]] == [
        "agreement.us-cn.geneva", "cn.tariff.retaliatory.us", "us.tariff.ieepa-reciprocal.cn"]


def test_bare_until_on_history_keeps_the_open_interval(make_db):
    got = query_json(make_db(), "history of us.tariff.ieepa-reciprocal.cn where not until")
    (result,) = got["results"]
    assert [iv["valid_to"] for iv in result["intervals"]] == [None]


def test_bare_field_renders_and_parses_back():
    from timeline.query.parser import parse

    q = parse("state of * where scheduled and not until")
    assert q.render() == "state of * where scheduled and not until"
    assert parse(q.render()) == q


# -- 6. first date where total tariff … ---------------------------------------------------
@pytest.mark.parametrize("known", [None, "2025-04-08", "2025-06-10"])
def test_first_date_of_a_total_agrees_with_total(make_db, known):
    db = make_db()
    k = f" known on {known}" if known else ""
    got = query_json(db, f"first date where total tariff by us on cn >= 50 from 2025-03-01{k}")
    (first,) = got["results"]
    day = dt.date.fromisoformat(first["date"])
    on = query_json(db, f"total tariff by us on cn as of {day}{k}")
    before = query_json(db, f"total tariff by us on cn as of {day - dt.timedelta(days=1)}{k}")
    assert on["total"] == first["total"] >= 50 > before["total"]
    assert [c["measure"] for c in on["components"]] == \
        [c["measure"] for c in first["components"]]
    if first["until"]:
        after = query_json(db, f"total tariff by us on cn as of {first['until']}{k}")
        assert after["total"] < 50


def test_first_date_of_a_total_in_the_bundled_log(make_db):
    got = query_json(make_db(), "first date where total tariff by us on cn > 100")
    assert [(r["date"], r["until"], r["total"]) for r in got["results"]] == [
        ("2025-04-09", "2025-05-14", 104)]
    as_known = query_json(make_db(), "first date where total tariff by us on cn > 100 "
                                     "known on 2025-04-05")
    assert as_known["results"] == [] and as_known["horizon"]["known_through"] == "2025-04-05"


@pytest.mark.parametrize("text,column,message", [
    ("first date where total tariff by us on cn > high", 45,
     "a total is compared with a number (percent), not 'high'"),
    ("first date where total tariff by us on china > 100", 40,
     "unknown jurisdiction 'china': no measure is imposed by or on it"),
])
def test_first_date_of_a_total_errors(seeded_db, text, column, message):
    first, _, caret, _ = query_error(str(seeded_db), text)
    assert first == f"error at line 1, column {column}: {message}"
    assert caret_column(caret) == column


def test_first_date_of_a_total_renders_and_parses_back():
    from timeline.query.parser import parse

    text = "first date where total tariff by us on cn >= 100.5 from 2025-01-01 known on yesterday"
    assert parse(text).render() == text
    assert parse(parse(text).render()) == parse(text)


# -- 8. explain: the evidence first, only what contributed, the SQL on request -----------
def test_explain_leads_with_the_evidence_and_keeps_the_sql_for_sql(make_db):
    db = make_db()
    text = "explain state of us.tariff.ieepa-fentanyl.cn as of 2025-05-28"
    r = run_cli("query", "--db", db, text)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("EVIDENCE")
    assert out.index("EVIDENCE") < out.index("PLAN") < out.index("SQL: ")
    assert "SELECT" not in out and "params:" not in out
    with_sql = run_cli("query", "--db", db, "--sql", text).stdout
    assert with_sql.index("EVIDENCE") < with_sql.index("\nSQL\n")
    assert "SELECT" in with_sql and "params:" in with_sql
    assert query_json(db, text)["sql"]  # JSON always carries the statements


def test_explain_lists_only_the_events_that_contributed(make_db):
    db = make_db()
    got = query_json(db, "explain state of us.tariff.ieepa-fentanyl.cn as of 2025-05-28")
    # the Busan correction (effective 2025-11-10) changes nothing on 05-28
    assert [(e["effective"], e["type"]) for e in got["events"]] == [
        ("2025-02-04", "imposed"), ("2025-03-04", "amended"), ("2025-05-28", "ruling")]
    assert not any(e["superseded"] for e in got["events"])
    # a total's evidence is its components', not the product measures it gives way to
    total = query_json(db, "explain total tariff by us on cn as of 2025-04-10")
    assert {e["measure"] for e in total["events"]} == {"us.tariff.ieepa-fentanyl.cn",
                                                       "us.tariff.ieepa-reciprocal.cn"}
    assert all(e["effective"] <= "2025-04-10" for e in total["events"])
    # a where keeps the evidence of the measures it keeps
    kept = query_json(db, "explain state of us.tariff.* as of 2025-04-10 where rate > 100")
    assert {e["measure"] for e in kept["events"]} == {"us.tariff.ieepa-reciprocal.cn"}


def test_explain_of_a_first_total_shows_its_components(make_db):
    got = query_json(make_db(), "explain first date where total tariff by us on cn > 100")
    assert {e["measure"] for e in got["events"]} == {"us.tariff.ieepa-fentanyl.cn",
                                                     "us.tariff.ieepa-reciprocal.cn"}
    assert all(e["effective"] <= "2025-04-09" for e in got["events"])


# -- 7. catalogue titles ------------------------------------------------------------------
TITLES = {
    "cn.tariff.retaliatory.us":
        "China's additional tariff on all US goods (State Council Tariff Commission, from "
        "Ann. 4/2025)",
    "us.tariff.ieepa-fentanyl.cn": "US 'fentanyl' tariff on all Chinese goods (IEEPA; EO 14195)",
    "us.tariff.ieepa-reciprocal.cn":
        "'Liberation Day' reciprocal tariff on China (IEEPA; EO 14257)",
}


def test_a_measure_is_catalogued_by_its_retitled_title(make_db):
    got = query_json(make_db(), "measures as of 2025-06-01 where kind = tariff")
    titles = {r["measure"]: r["title"] for r in got["results"]}
    for measure, title in TITLES.items():
        assert titles[measure] == title
    assert "34%" not in titles["cn.tariff.retaliatory.us"]


def test_a_later_retitled_event_renames_and_changes_no_state(make_db, tmp_path):
    from timeline.store.store import Store

    from .backends import new_event, projections_match_rebuild

    db = make_db()
    text = "history of cn.tariff.retaliatory.us"
    before = query_json(db, text)["results"]
    store = Store.open(db)
    try:
        store.append([new_event("cn.tariff.retaliatory.us", "retitled", "2025-04-10",
                                title="China's retaliatory tariff (a later name)",
                                known="2025-05-01")])
        assert projections_match_rebuild(store)
    finally:
        store.close()
    after = query_json(db, text)["results"]
    strip = lambda rs: [[{k: v for k, v in iv.items() if k != "events"} for iv in r["intervals"]]  # noqa: E731
                        for r in rs]
    assert strip(after) == strip(before)  # the same states over the same intervals
    got = query_json(db, "measures where measure = cn.tariff.retaliatory.us")
    assert got["results"][0]["title"] == "China's retaliatory tariff (a later name)"
    assert run_cli("verify", "--db", db).returncode == 0


def test_a_retitled_event_carries_no_state(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[events]]\nstream = "cn.tariff.retaliatory.us"\ntype = "retitled"\n'
                    'effective = 2025-04-10\nknown = 2025-04-04\ntitle = "A name"\n'
                    '[events.set]\nrate = 34\n[events.source]\nname = "test"\n'
                    'url = "https://example.org/"\n', encoding="utf-8")
    db = tmp_path / "t.db"
    assert run_cli("init", "--db", str(db)).returncode == 0
    r = run_cli("load", str(path), "--db", str(db))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "a retitled event only gives the measure a new catalogue title" in r.stderr


def test_the_repl_report_and_chart_use_the_catalogue_title(seeded_db, tmp_path):
    r = run_cli("repl", "--db", str(seeded_db),
                input="\\format csv\nmeasures where measure = cn.tariff.retaliatory.us\n")
    assert r.returncode == 0, r.stderr
    assert TITLES["cn.tariff.retaliatory.us"] in r.stdout
    page = tmp_path / "report.html"
    r = run_cli("report", "-o", str(page), "--as-of", "2025-06-01", "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr
    import html

    text = html.unescape(page.read_text("utf-8"))
    assert TITLES["us.tariff.ieepa-fentanyl.cn"] in text
    assert "US 'fentanyl' tariff: +10% on all Chinese goods (EO 14195)</span>" not in text
    from timeline.surfaces import chart

    if chart.available():
        svg = tmp_path / "c.svg"
        r = run_cli("chart", "history of cn.tariff.retaliatory.us", "-o", str(svg),
                    "--from", "2025-01-01", "--to", "2026-03-31", "--db", str(seeded_db))
        assert r.returncode == 0, r.stderr
        drawn = svg.read_text("utf-8")
        assert "China imposes an extra 34%" not in drawn
        assert "China&#x27;s additional tariff" in drawn or "China's additional tariff" in drawn \
            or "China’s additional tariff" in drawn


def test_learned_and_explain_skip_a_retitled_event(make_db):
    db = make_db()
    got = query_json(db, "learned for cn.tariff.* between 2025-04-03 and 2025-04-05")
    assert [(x["type"], x["measure"]) for x in got["results"]] == [
        ("imposed", "cn.tariff.retaliatory.us")]
    ev = query_json(db, "explain state of cn.tariff.retaliatory.us as of 2025-04-11")
    assert "retitled" not in {e["type"] for e in ev["events"]}
