"""Issue 14: uncertain dates (a range, never a guessed day), confidence carried from
single-source events into answers, and a tariff that does not stack on others."""
from __future__ import annotations

import json

import pytest

from timeline.projections.fold import FoldEvent, fold, state_at
from timeline.store.store import Store

from .backends import backend, make_db, projections_match_rebuild  # noqa: F401
from .conftest import run_cli
from .test_admission import refused, write


@pytest.fixture(autouse=True)
def _known_dates_in_2030(monkeypatch):
    """This file's events are known in 2030, later than admission allows today (issue 24):
    the margin is widened for them; tests/test_reliability2.py keeps the bound itself."""
    monkeypatch.setenv("TIMELINE_KNOWN_MARGIN_DAYS", "10000")


def ev(pos: int, type_: str, effective: str, known: str | None = None, **payload) -> FoldEvent:
    return FoldEvent(pos, f"e{pos}", "m.x", type_, effective, known or effective,
                     {"title": "t", **payload})


def state_on(events, day: str, **kw) -> dict:
    iv = state_at(fold("m.x", events, **kw).intervals, day)
    return iv.state if iv else {}


# -- the fold ------------------------------------------------------------------------------------
def test_a_day_range_is_uncertain_until_its_last_day_then_in_force():
    evs = [ev(1, "imposed", "2025-05-01", effective_between=["2025-05-01", "2025-05-31"],
              date_qualifier="late May", set={"rate": 5})]
    assert state_on(evs, "2025-04-30") == {}
    mid = state_on(evs, "2025-05-10")
    assert mid["status"] == "uncertain" and "rate" not in mid
    assert mid["uncertain"] == {"event": "e1", "becomes": "in_force", "fields": ["rate"],
                                "between": ["2025-05-01", "2025-05-31"],
                                "qualifier": "late May"}
    assert state_on(evs, "2025-05-30")["status"] == "uncertain"
    end = state_on(evs, "2025-05-31")
    assert end["status"] == "in_force" and end["rate"] == 5
    assert "uncertain" not in end and "scheduled" not in end


def test_a_change_of_other_fields_keeps_the_status():
    evs = [ev(1, "imposed", "2025-01-01", set={"rate": 5}),
           ev(2, "licensed", "2025-02-01", effective_between=["2025-02-01", "2025-02-10"],
              set={"licensing": "some"})]
    mid = state_on(evs, "2025-02-05")
    assert mid["status"] == "in_force" and "licensing" not in mid
    assert mid["uncertain"]["fields"] == ["licensing"]
    assert state_on(evs, "2025-02-10")["licensing"] == "some"


def test_an_uncertain_lifting_keeps_the_rate_until_it_settles():
    evs = [ev(1, "imposed", "2025-01-01", set={"rate": 25}),
           ev(2, "lifted", "2025-07-02", effective_between=["2025-07-02", "2025-07-03"])]
    mid = state_on(evs, "2025-07-02")
    assert (mid["status"], mid["rate"], mid.get("last_rate")) == ("uncertain", 25, None)
    assert mid["uncertain"]["was"] == "in_force" and mid["uncertain"]["becomes"] == "lifted"
    end = state_on(evs, "2025-07-03")
    assert (end["status"], end.get("rate"), end["last_rate"]) == ("lifted", None, 25)


def test_known_on_inside_a_publication_range_reports_uncertain():
    evs = [ev(1, "imposed", "2025-05-23", "2025-05-23",
              known_between=["2025-05-23", "2025-06-09"], set={"rate": 1})]
    early = state_on(evs, "2025-05-28", known_on="2025-05-28")
    assert early["status"] == "uncertain"
    assert early["uncertain"]["known_between"] == ["2025-05-23", "2025-06-09"]
    # the change never settles as known then, even on later days
    assert state_on(evs, "2026-01-01", known_on="2025-06-08")["status"] == "uncertain"
    assert state_on(evs, "2025-05-28", known_on="2025-06-09")["status"] == "in_force"
    assert state_on(evs, "2025-05-28")["status"] == "in_force"  # everything known


def test_a_later_schedule_does_not_drop_the_pending_settlement():
    evs = [ev(1, "imposed", "2025-05-01", effective_between=["2025-05-01", "2025-05-31"],
              set={"rate": 5}),
           ev(2, "amended", "2025-05-10", set={"scope": "x"},
              schedule=[{"on": "2025-12-01", "set": {"rate": 7}}]),
           ev(3, "amended", "2025-05-12", schedule=[])]
    assert state_on(evs, "2025-05-20")["status"] == "uncertain"
    end = state_on(evs, "2025-05-31")
    assert (end["status"], end["rate"], end["scope"]) == ("in_force", 5, "x")
    assert state_on(evs, "2025-12-01")["rate"] == 5  # the emptied schedule stays empty


def test_confidence_lasts_while_the_state_holds_the_single_source_fields():
    evs = [ev(1, "imposed", "2025-01-01", set={"rate": 5, "scope": "all goods"}),
           ev(2, "amended", "2025-02-01", confidence="single-source",
              set={"rate": 9, "easing": "said"}),
           ev(3, "amended", "2025-03-01", set={"rate": 9}),
           ev(4, "amended", "2025-04-01", set={"easing": "confirmed"})]
    assert "confidence" not in state_on(evs, "2025-01-15")
    feb = state_on(evs, "2025-02-15")
    assert feb["confidence"] == "single-source"
    assert feb["unconfirmed"] == [{"event": "e2", "confidence": "single-source",
                                   "fields": ["easing", "rate"]}]
    assert state_on(evs, "2025-03-15")["unconfirmed"][0]["fields"] == ["easing"]
    apr = state_on(evs, "2025-04-15")
    assert "confidence" not in apr and "unconfirmed" not in apr


# -- admission: what a range may not be ----------------------------------------------------------
BASE = """[[events]]
stream = "us.tariff.demo.cn"
type = "imposed"
effective = 2030-01-01
known = 2030-01-01
title = "A demo tariff"
{extra}
[events.set]
rate = 5
imposer = "us"
target = "cn"
{set}
[events.source]
name = "demo"
"""


@pytest.mark.parametrize("extra,set_,needle", [
    ("effective_between = [2030-01-05, 2030-01-01]", "", "earliest before latest"),
    ("effective_between = [2030-01-01, 2030-01-01]", "", "earliest before latest"),
    ("effective_between = [2030-01-02, 2030-01-09]", "", "must start on the event's `effective`"),
    ("known_between = [2029-12-01, 2030-01-09]", "", "must start on the event's `known`"),
    ("effective_between = [2030-01-01]", "", "effective_between"),
    ("effective_between = [2030-01-01, 2030-01-02, 2030-01-03]", "", "effective_between"),
    ('effective_between = ["2030-01-01", "2030-01-09"]', "", "a date"),
    ('date_qualifier = "late May"', "", "qualifies a date range"),
    ("effective_between = [2030-01-01, 2030-01-09]\n"
     "schedule = [{ on = 2030-02-01, set = { rate = 1 } }]", "", "cannot carry `schedule`"),
    ('confidence = "rumour"', "", "must be one of single-source"),
    ("", 'not_stacked_with = "US.tariff; DROP"', "set.not_stacked_with"),
    ("", 'uncertain = "yes"', "unknown state field 'uncertain'"),
    ("", 'confidence = "single-source"', "unknown state field 'confidence'"),
])
def test_bad_ranges_and_qualifiers_are_refused(seeded_db, tmp_path, extra, set_, needle):
    path = write(tmp_path, "bad.toml", BASE.format(extra=extra, set=set_))
    refused(seeded_db, path, needle)


def test_json_files_take_ranges_as_date_strings(seeded_db, tmp_path):
    doc = {"events": [{"stream": "us.tariff.demo.cn", "type": "imposed",
                       "effective": "2030-01-01", "known": "2030-01-01", "title": "A demo",
                       "effective_between": ["2030-01-01", "2030-13-01"],
                       "set": {"rate": 5}, "source": {"name": "demo"}}]}
    refused(seeded_db, write(tmp_path, "bad.json", doc), "effective_between[1]",
            "not a real calendar date")
    doc["events"][0]["effective_between"] = ["2030-01-01", "2030-01-31"]
    r = run_cli("load", "--db", str(seeded_db), str(write(tmp_path, "ok.json", doc)))
    assert r.returncode == 0, r.stderr


# -- through the CLI, on every backend -----------------------------------------------------------
def query(db: str, text: str) -> dict:
    r = run_cli("query", "--db", db, "--format", "json", text)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_an_event_inside_an_uncertain_window_keeps_projections_exact(make_db, tmp_path):
    """A later load whose event falls inside the window re-folds from there: the change
    waiting for the window's end must survive it (and equal a rebuild)."""
    db = make_db(seeded=False)
    first = BASE.format(extra="effective_between = [2030-01-01, 2030-01-31]\n"
                              'date_qualifier = "January"', set="")
    assert run_cli("load", "--db", db, str(write(tmp_path, "a.toml", first))).returncode == 0
    second = first.replace('type = "imposed"', 'type = "amended"') \
        .replace("2030-01-01", "2030-01-15").replace(
            "effective_between = [2030-01-15, 2030-01-31]\n", "") \
        .replace('date_qualifier = "January"', "").replace("rate = 5", 'scope = "all goods"')
    r = run_cli("load", "--db", db, str(write(tmp_path, "b.toml", second)))
    assert r.returncode == 0, r.stderr
    mid = query(db, "state of us.tariff.demo.cn as of 2030-01-20")["results"][0]["state"]
    assert mid["status"] == "uncertain" and mid["scope"] == "all goods"
    end = query(db, "state of us.tariff.demo.cn as of 2030-01-31")["results"][0]["state"]
    assert (end["status"], end["rate"]) == ("in_force", 5)
    assert run_cli("verify", "--db", db).returncode == 0
    store = Store.open(db)
    try:
        assert projections_match_rebuild(store)
    finally:
        store.close()


def test_a_huge_range_is_uncertain_to_its_end_and_out_of_the_total(make_db, tmp_path):
    db = make_db(seeded=False)
    body = BASE.format(extra="effective_between = [2030-01-01, 9999-12-31]",
                       set='scope = "all goods"')
    assert run_cli("load", "--db", db, str(write(tmp_path, "h.toml", body))).returncode == 0
    st = query(db, "state of us.tariff.demo.cn as of 5000-01-01")
    assert st["results"][0]["state"]["status"] == "uncertain"
    assert st["notes"] == ["us.tariff.demo.cn: uncertain: no status → in_force on a day "
                           "between 2030-01-01 and 9999-12-31; in effect from 9999-12-31"]
    total = query(db, "total tariff by us on cn as of 2030-06-01")
    assert total["total"] == 0 and total["components"] == []
    assert total["notes"][0] == "us.tariff.demo.cn: uncertain on 2030-06-01, not in the total"
    found = query(db, "measures as of 2030-06-01 where status = uncertain")["results"]
    assert [m["measure"] for m in found] == ["us.tariff.demo.cn"]


NON_STACKING = """[[events]]
stream = "us.tariff.surcharge.all"
type = "imposed"
effective = 2030-01-01
known = 2030-01-01
title = "A surcharge"

[events.set]
rate = 10
imposer = "us"
target = "all"
kind = "tariff"
scope = "all goods"
not_stacked_with = "{pattern}"

[events.source]
name = "demo"

[[events]]
stream = "us.tariff.metals.all"
type = "imposed"
effective = 2030-01-01
known = 2030-01-01
title = "A metals tariff"

[events.set]
rate = 50
imposer = "us"
target = "all"
kind = "tariff"
scope = "metals"

[events.source]
name = "demo"
"""


def test_total_says_what_does_not_stack(make_db, tmp_path):
    db = make_db(seeded=False)
    body = NON_STACKING.format(pattern="us.tariff.metal*")
    assert run_cli("load", "--db", db, str(write(tmp_path, "n.toml", body))).returncode == 0
    data = query(db, "total tariff by us on all as of 2030-02-01")
    assert data["total"] == 10
    assert data["components"][0]["not_stacked_with"] == ["us.tariff.metals.all"]
    assert data["also_applies"][0]["notes"] == ["us.tariff.surcharge.all not added"]
    assert data["notes"] == ["us.tariff.surcharge.all does not stack on us.tariff.metal*: "
                             "goods under us.tariff.metals.all 50% pay that rate instead of "
                             "10%; the TOTAL is for goods under none of them"]
    table = run_cli("query", "--db", db, "total tariff by us on all as of 2030-02-01").stdout
    assert "note: us.tariff.surcharge.all does not stack" in table


def test_a_pattern_that_matches_nothing_changes_nothing(make_db, tmp_path):
    db = make_db(seeded=False)
    body = NON_STACKING.format(pattern="us.tariff.nothing.*")
    assert run_cli("load", "--db", db, str(write(tmp_path, "n.toml", body))).returncode == 0
    data = query(db, "total tariff by us on all as of 2030-02-01")
    assert data["total"] == 10 and "notes" not in data
    assert "not_stacked_with" not in data["components"][0]


def test_seeded_answers_name_the_uncertainty_and_the_single_source(make_db):
    db = make_db()
    ethane = query(db, "state of us.export-control.ethane.cn as of 2025-05-15 known on "
                       "2025-05-15")
    assert ethane["results"][0]["state"]["status"] == "uncertain"
    assert any("became public between 2025-05-01 and 2025-05-31" in n for n in ethane["notes"])
    # known before the range began, there is nothing; from its end, it is in force
    none = query(db, "state of us.export-control.ethane.cn as of 2025-05-15 known on 2025-04-30")
    assert none["results"][0]["state"] is None
    table = run_cli("query", "--db", db, "measures as of 2026-05-20 where confidence = "
                                         "\"single-source\"").stdout
    assert table.splitlines()[0].split()[-1] == "confidence"
    assert "us.refund.ieepa-duties" in table
    plain = run_cli("query", "--db", db, "measures as of 2025-05-14 limit 2").stdout
    assert "confidence" not in plain.splitlines()[0]
    sql = run_cli("sql", "--db", db, "--format", "json",
                  "SELECT measure, confidence FROM v_state_today WHERE confidence IS NOT NULL "
                  "ORDER BY measure")
    assert sql.returncode == 0, sql.stderr
    assert {r["confidence"] for r in json.loads(sql.stdout)} == {"single-source"}


def test_the_python_api_and_the_repl_carry_the_notes(seeded_db):
    import io

    import timeline
    from timeline.surfaces.repl import Session

    with timeline.open(str(seeded_db), readonly=True) as tl:
        a = tl.query("state of us.export-control.jet-engines.cn as of 2025-07-02")
        assert a.rows[0]["status"] == "uncertain"
        assert a.data["notes"] == [
            "us.export-control.jet-engines.cn: uncertain: in_force → lifted on a day between "
            "2025-07-02 and 2025-07-03 (2025-07-02 to ~07-03); in effect from 2025-07-03"]
        t = tl.query("total tariff by us on cn as of 2026-03-01")
        assert t.total == 10
        assert "us.tariff.section-232.steel-aluminum" in \
            t.data["components"][0]["not_stacked_with"]
        out, err = io.StringIO(), io.StringIO()
        session = Session(tl, out=out, err=err)
        assert session.run_piped("state of cn.tariff-exclusions.us as of 2025-12-01;") == 0
        assert "note: cn.tariff-exclusions.us: single-source: authority, exclusions_until, " \
               "imposer, kind, scope, target rest on event" in out.getvalue(), err.getvalue()
