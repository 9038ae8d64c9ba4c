"""The language grows (issue 13, item 4): `where` with and/or/not/parentheses on every form
that answers about measures or events, the same on SQLite and PostgreSQL."""
from __future__ import annotations

import json

import pytest

import timeline
from timeline.errors import QueryError
from timeline.query.parser import parse
from timeline.query.syntax import BoolExpr

from .backends import make_db, backend  # noqa: F401  (fixtures: every backend)
from .conftest import query_json, run_cli


@pytest.mark.parametrize("text,canonical", [
    ("state of us.* as of 2025-05-14 where rate > 20", None),
    ("measures where kind = tariff and (rate > 20 or not status = in_force)", None),
    ("events where NOT (type = ruling OR type = meeting) AND rate > 5",
     "events where not (type = ruling or type = meeting) and rate > 5"),
    ("measures where (a = 1 or b = 2 and c = 3)", "measures where a = 1 or b = 2 and c = 3"),
    ("measures where (a = 1 or b = 2) and c = 3", None),
    ("total tariff by us on cn where not (legal_status = stayed)",
     "total tariff by us on cn where not legal_status = stayed"),
    ("diff us.* between 2025-05-01 and 2025-06-15 known on 2025-06-20 where rate > 20", None),
    ("diff us.* between 2025-05-01 and 2025-06-15 fields rate, STATUS, rate",
     "diff us.* between 2025-05-01 and 2025-06-15 fields rate, status"),
    ("history of x.y from 2025-01-01 where not_a_keyword = 1", None),
    ("first date where us.tariff.ieepa-reciprocal.cn rate >= 100", None),
    ("FIRST DATE WHERE cn.* (rate > 20 or status = suspended) and not kind = case FROM 2025-01-01",
     "first date where cn.* (rate > 20 or status = suspended) and not kind = case "
     "from 2025-01-01"),
])
def test_boolean_where_parses_and_renders_canonically(text, canonical):
    q = parse(text)
    assert q.render() == (canonical or text)
    assert parse(q.render()) == q


def test_or_binds_looser_than_and():
    (node,) = parse("measures where a = 1 or b = 2 and c = 3").conditions
    assert isinstance(node, BoolExpr) and node.op == "or"
    assert isinstance(node.items[1], BoolExpr) and node.items[1].op == "and"


def test_unbalanced_parenthesis_is_a_positioned_error():
    with pytest.raises(QueryError) as exc:
        parse("measures where (rate > 20 or kind = tariff")
    assert exc.value.message == "unexpected end of query"


def test_state_where_keeps_only_matching_measures(make_db):
    data = query_json(make_db(),
                      "state of us.tariff.section-232.* as of 2025-05-14 where rate > 20")
    assert [r["measure"] for r in data["results"]] == [
        "us.tariff.section-232.auto-parts", "us.tariff.section-232.autos",
        "us.tariff.section-232.steel-aluminum"]


def test_history_where_keeps_matching_intervals(seeded_db):
    data = query_json(str(seeded_db), "history of us.tariff.ieepa-reciprocal.cn where rate >= 84")
    ivs = data["results"][0]["intervals"]
    assert [(iv["valid_from"], iv["rate"]) for iv in ivs] == [("2025-04-09", 84),
                                                              ("2025-04-10", 125)]


def test_total_where_filters_the_components(seeded_db):
    data = query_json(str(seeded_db), "total tariff by us on cn as of 2025-04-10 "
                                      "where scope = \"all goods\" and not rate < 50")
    assert data["total"] == 125 and data["also_applies"] == []


def test_diff_where_keeps_measures_matching_on_either_date(seeded_db):
    data = query_json(str(seeded_db), "diff us.tariff.* between 2025-05-01 and 2025-06-15 "
                                      "where rate > 20")
    # the postal duty and the auto-parts tariff appear between the dates, at 54 and 25
    assert [r["measure"] for r in data["results"] if r["changes"]] == [
        "us.tariff.de-minimis.cn", "us.tariff.ieepa-reciprocal.cn",
        "us.tariff.section-232.auto-parts", "us.tariff.section-232.steel-aluminum"]
    assert "us.tariff.ieepa-fentanyl.cn" not in [r["measure"] for r in data["results"]]


def test_events_and_measures_or_not_in_sql(make_db):
    db = make_db()
    evs = query_json(db, "events where not (type = ruling or type = meeting) and rate > 100")
    assert [(e["stream"], e["effective"]) for e in evs["results"]] == [
        ("us.tariff.ieepa-reciprocal.cn", "2025-04-10"), ("cn.tariff.retaliatory.us", "2025-04-12"),
        ("us.tariff.de-minimis.cn", "2025-05-02")]
    ms = query_json(db, "measures where kind = tariff and (rate >= 50 or status = lifted)")
    got = {m["measure"] for m in ms["results"]}
    assert {"us.tariff.ieepa-fentanyl.cn", "us.tariff.section-232.steel-aluminum"} <= got
    assert all(m["status"] == "lifted" or (m["rate"] or 0) >= 50 for m in ms["results"])


def test_unknown_field_inside_or_is_an_error(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "state of us.* where rate > 1 or ratee > 2")
    assert r.returncode == 1 and "unknown field 'ratee'" in r.stderr
    assert "did you mean 'rate'?" in r.stderr


def test_repl_runs_a_boolean_where(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), input=(
        "\\asof 2025-05-14\nstate of us.* where rate > 20 and not kind = case;\n"))
    assert r.returncode == 0, r.stderr
    assert "us.tariff.section-301.cn" in r.stdout and "ieepa-fentanyl" not in r.stdout


def test_api_where(seeded_db):
    with timeline.open(seeded_db, readonly=True) as tl:
        a = tl.query("state of cn.* where status = suspended or rate > 30", as_of="2025-04-10")
        assert [row["measure"] for row in a.rows] == ["cn.tariff.retaliatory.us"]


# -- order by, limit, measures as of / known on ------------------------------------------------
def test_events_order_by_desc_and_limit(make_db):
    data = query_json(make_db(), "events where rate > 50 order by effective desc limit 3")
    assert [e["effective"] for e in data["results"]] == ["2026-04-02", "2025-11-09", "2025-10-10"]


def test_history_order_by_rate_desc(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "--format", "csv",
                "history of us.tariff.ieepa-reciprocal.cn order by rate desc limit 2")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == ["125", "84"]


def test_measures_as_of_and_known_on(make_db):
    db = make_db()
    data = query_json(db,
                      "measures as of 2025-05-14 where kind = tariff order by rate desc limit 2")
    assert data["as_of"] == "2025-05-14"
    assert [(m["measure"], m["rate"]) for m in data["results"]] == [
        ("us.tariff.section-301-review.evs.cn", 100), ("us.tariff.section-301-review.syringes.cn",
                                                      100)]
    known = query_json(db, "measures as of 2025-08-13 known on 2025-06-10 where kind = tariff "
                           "and rate > 20 order by measure")
    assert known["horizon"] == {"known_through": "2025-06-10"}
    assert ("us.tariff.ieepa-reciprocal.cn", 34) in [(m["measure"], m["rate"])
                                                     for m in known["results"]]


def test_order_by_an_unknown_field_is_an_error(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "measures order by rat")
    assert r.returncode == 1 and "cannot order by 'rat'" in r.stderr
    assert "did you mean 'rate'?" in r.stderr


def test_repl_asof_and_known_apply_to_measures(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), "--format", "json", input=(
        "\\asof 2025-08-13\n\\known 2025-06-10\nmeasures where kind = tariff and rate > 20;\n"))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert (data["as_of"], data["known_on"]) == ("2025-08-13", "2025-06-10")
    assert "us.tariff.ieepa-reciprocal.cn" in [m["measure"] for m in data["results"]]


# -- diff: compact by default, `fields …` to choose ----------------------------------------------
def test_diff_is_compact_by_default(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "diff * between 2025-05-01 and 2025-06-15")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) < 50  # 145 before: every field of every new measure
    assert any(line.startswith("us.tariff.de-minimis.cn") and "(appears)" in line
               for line in lines)
    assert any(line.startswith("us.tariff.ieepa-reciprocal.cn") and " rate " in line
               for line in lines)
    data = query_json(str(seeded_db), "diff * between 2025-05-01 and 2025-06-15")
    dm = next(x for x in data["results"] if x["measure"] == "us.tariff.de-minimis.cn")
    assert dm["appeared"] and not dm["ended"] and dm["changes"]  # JSON keeps every field


def test_diff_fields_keeps_only_those(make_db):
    data = query_json(make_db(), "diff us.tariff.* between 2025-05-01 and 2025-06-15 "
                                 "fields rate, status")
    got = [(x["measure"], c["field"], c["before"], c["after"])
           for x in data["results"] for c in x["changes"]]
    assert got == [("us.tariff.de-minimis.cn", "rate", None, 54),
                   ("us.tariff.de-minimis.cn", "status", None, "in_force"),
                   ("us.tariff.ieepa-reciprocal.cn", "rate", 125, 10),
                   ("us.tariff.section-232.auto-parts", "rate", None, 25),
                   ("us.tariff.section-232.auto-parts", "status", None, "in_force"),
                   ("us.tariff.section-232.steel-aluminum", "rate", 25, 50)]


def test_diff_of_an_ended_measure_is_one_line(seeded_db):
    r = run_cli("query", "--db", str(seeded_db),
                "diff us.tariff.ieepa-fentanyl.cn between 2026-01-01 and 2026-03-01")
    rows = r.stdout.split("\n\n")[0].splitlines()[2:]
    assert len(rows) == 1 and "(ends)" in rows[0] and "last_rate=10, status=lifted" in rows[0]


def test_diff_unknown_field_is_an_error(seeded_db):
    r = run_cli("query", "--db", str(seeded_db),
                "diff us.tariff.* between 2025-05-01 and 2025-06-15 fields rate, stauts")
    assert r.returncode == 1
    assert r.stderr.startswith("error at line 1, column 65: unknown field 'stauts'")
    assert "did you mean 'status'?" in r.stderr


# -- first date where ----------------------------------------------------------------------------
def test_first_date_where(make_db):
    db = make_db()
    data = query_json(db, "first date where us.tariff.ieepa-reciprocal.cn rate >= 100")
    (res,) = data["results"]
    # the bundled log has 84 % on 2025-04-09 and 125 % from 2025-04-10 (EO 14266)
    assert (res["measure"], res["date"], res["until"], res["state"]["rate"]) == (
        "us.tariff.ieepa-reciprocal.cn", "2025-04-10", "2025-05-14", 125)
    assert res["projected"] is False and data["warnings"] == []
    none = query_json(db, "first date where us.tariff.ieepa-reciprocal.cn rate >= 1000")
    assert none["results"] == []


def test_first_date_from_and_known_on_projected(seeded_db):
    data = query_json(str(seeded_db), "first date where cn.tariff.retaliatory.us rate >= 30 "
                                      "from 2025-06-01 known on 2025-06-10")
    (res,) = data["results"]
    assert (res["date"], res["projected"]) == ("2025-08-12", True)
    assert data["horizon"] == {"known_through": "2025-06-10"}
    data = query_json(str(seeded_db), "first date where cn.tariff.* rate > 20 and "
                                      "status = in_force from 2025-04-05")
    assert [(x["measure"], x["date"]) for x in data["results"]] == [
        ("cn.tariff.retaliatory.us", "2025-04-10")]


def test_first_date_errors(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "first date where us.tariff.nope.cn rate > 1")
    assert r.returncode == 1 and "unknown measure" in r.stderr
    r = run_cli("query", "--db", str(seeded_db), "first date where us.tariff.* rat > 1")
    assert r.returncode == 1 and "did you mean 'rate'?" in r.stderr


def test_repl_first_date_uses_known(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), input=(
        "\\known 2025-06-10\nfirst date where cn.tariff.retaliatory.us rate >= 30 "
        "from 2025-06-01;\n"))
    assert r.returncode == 0, r.stderr
    assert "2025-08-12" in r.stdout and "known through 2025-06-10" in r.stdout


@pytest.mark.parametrize("text,canonical", [
    ("learned between 2025-10-29 and 2025-11-05", None),
    ("LEARNED FOR us.tariff.* BETWEEN 2025-10-29 AND today AS OF 2025-11-15",
     "learned for us.tariff.* between 2025-10-29 and today as of 2025-11-15"),
    ("learned between today - 7 days and today", None),
])
def test_learned_parses_and_renders(text, canonical):
    assert parse(text).render() == (canonical or text)


def test_learned_names_each_new_event_and_its_change(make_db):
    db = make_db()
    data = query_json(db, "learned between 2025-10-29 and 2025-11-05")
    knowns = [r["known"] for r in data["results"]]
    assert knowns == sorted(knowns) and all("2025-10-29" < k <= "2025-11-05" for k in knowns)
    # every event known in the span is there, and no other
    with timeline.open(db, readonly=True) as tl:
        evs = tl.query("events").data["results"]
    assert {r["id"] for r in data["results"]} == {
        e["id"] for e in evs if "2025-10-29" < e["known"] <= "2025-11-05"}
    by_measure = {(r["measure"], r["type"]): r for r in data["results"]}
    fentanyl = by_measure[("us.tariff.ieepa-fentanyl.cn", "correction")]
    assert fentanyl["change"]["span"] == {"from": "2025-11-10", "to": None}
    assert fentanyl["change"]["text"] == "2025-11-10 → open: rate 20 → 10"
    # the notices of 4 November told nothing the fact sheet had not: shared day, no change
    assert by_measure[("us.tariff.ieepa-fentanyl.cn", "amended")]["change"]["text"] == \
        "no change"


def test_learned_on_a_date_marks_what_rests_on_changes_past_its_horizon(make_db):
    db = make_db()
    data = query_json(db, "learned for us.tariff.ieepa-reciprocal.cn between 2025-10-29 "
                          "and 2025-11-05 as of 2025-11-15")
    assert data["horizon"] == {"known_through": "2025-11-05"}
    assert data["projected"] is True
    assert any("rests on a change due after the knowledge horizon 2025-11-05" in w
               for w in data["warnings"])
    assert any("as of 2025-11-15 is after the knowledge horizon" in w for w in data["warnings"])
    # before the changes are due, nothing is projected
    early = query_json(db, "learned for us.tariff.ieepa-reciprocal.cn between 2025-10-29 "
                           "and 2025-11-05 as of 2025-11-02")
    assert early["projected"] is False and early["warnings"] == []


def test_learned_in_the_repl_uses_asof(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), "--format", "json",
                input="\\asof 2025-11-15\nlearned for us.tariff.ieepa-fentanyl.cn between "
                      "2025-10-29 and 2025-11-05;\n")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer["as_of"] == "2025-11-15"
    assert answer["results"][0]["change"]["fields"][0] == {"field": "rate", "before": 20,
                                                           "after": 10}


def test_learned_explain_and_errors(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "explain learned for "
                "us.tariff.ieepa-fentanyl.cn between 2025-10-01 and 2025-11-05")
    assert r.returncode == 0 and "events known after 2025-10-01" in r.stdout
    r = run_cli("query", "--db", str(seeded_db), "learned between 2025-11-05 and 2025-10-01")
    assert r.returncode == 1 and "the first date must not be after the second" in r.stderr
    with timeline.open(seeded_db, readonly=True) as tl, pytest.raises(QueryError) as exc:
        tl.query("learned for zz.* between 2025-01-01 and 2025-02-01")
    assert "no measure matches 'zz.*'" in str(exc.value)


def test_limit_cuts_the_json_and_the_warnings_with_the_table(seeded_db):
    text = "history of us.tariff.ieepa-reciprocal.cn known on 2025-06-10"
    whole = query_json(str(seeded_db), text)
    assert whole["warnings"] and whole["projected"] is True
    first_two = query_json(str(seeded_db), text + " limit 2")
    kept = [i["valid_from"] for r in first_two["results"] for i in r["intervals"]]
    assert kept == [i["valid_from"] for i in whole["results"][0]["intervals"][:2]]
    # the rows cut away were the projected ones: no warning, no flag about them
    assert first_two["warnings"] == [] and first_two["projected"] is False
    last = query_json(str(seeded_db), text + " order by since desc limit 1")
    assert [i["valid_from"] for r in last["results"] for i in r["intervals"]] == \
        [whole["results"][0]["intervals"][-1]["valid_from"]]
    assert last["projected"] is True and len(last["warnings"]) == 1
