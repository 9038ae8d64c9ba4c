"""Answers that never contradict the sources' own words (issue 23, findings 1, 3, 4, 5), on
both backends and, where knowledge matters, on both sides of the knowledge date:
- a ruling changes legality, not what is collected: the IEEPA tariffs were ruled invalid on
  2026-02-20 and collected until 2026-02-24; what they collected is refundable;
- a dispute a later source settled shows as resolved from that source's known date on;
- a court's compliance deadline is a scheduled change that its stay replaces;
- a threat or an announcement is not a rate."""
from __future__ import annotations

import pytest

import timeline
from timeline.errors import FoldError
from timeline.projections.fold import FoldEvent, fold

from .backends import backend, make_db  # noqa: F401  (fixtures: every backend)
from .conftest import query_json, run_cli


def _one(db: str, q: str) -> dict:
    return query_json(db, q)["results"][0]


def _refused(db: str, tmp_path, head: str, body: str = "") -> str:
    """Load one hostile event (`head`: its envelope lines, `body`: tables after them);
    it must be refused with a message, no traceback, and the log unchanged."""
    path = tmp_path / "hostile.toml"
    path.write_text(f"[[events]]\n{head}\n{body}[events.source]\nname = \"test\"\n",
                    encoding="utf-8")
    before = run_cli("info", "--db", db).stdout
    r = run_cli("load", str(path), "--db", db)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert run_cli("info", "--db", db).stdout == before
    return r.stderr


# -- 1. collection vs legality ------------------------------------------------------------

def test_between_the_ruling_and_the_end_of_collection_duties_are_collected(make_db):  # noqa: F811
    db = make_db()
    total = query_json(db, "total tariff by us on cn as of 2026-02-22")
    assert total["total"] == 20 and total["refundable"] == 20
    assert {c["measure"]: (c["rate"], c["legal_status"], c["refundable"])
            for c in total["components"]} == {
        "us.tariff.ieepa-fentanyl.cn": (10, "invalidated", True),
        "us.tariff.ieepa-reciprocal.cn": (10, "invalidated", True)}
    res = _one(db, "state of us.tariff.ieepa-reciprocal.cn as of 2026-02-23")
    assert (res["state"]["status"], res["state"]["rate"], res["refundable"]) == (
        "in_force", 10, True)
    # collection stopped on 2026-02-24: no rate, the last one kept
    res = _one(db, "state of us.tariff.ieepa-reciprocal.cn as of 2026-02-24")
    assert (res["state"]["status"], res["state"].get("rate"), res["state"]["last_rate"]) == (
        "lifted", None, 10)


def test_refundable_is_what_was_known_on_the_knowledge_date(make_db):  # noqa: F811
    db = make_db()
    now = query_json(db, "total tariff by us on cn as of 2025-04-10")
    assert (now["total"], now["refundable"]) == (145, 145)
    before = query_json(db, "total tariff by us on cn as of 2025-04-10 known on 2026-02-19")
    assert (before["total"], before["refundable"]) == (145, 0)
    assert not any(c.get("refundable") for c in before["components"])
    table = run_cli("query", "--db", db, "total tariff by us on cn as of 2025-04-10").stdout
    assert "of the TOTAL 145%, 145% was collected under an authority later invalidated: " \
           "refundable (net 0%)" in table


def test_diff_and_learned_keep_the_collected_rate(make_db):  # noqa: F811
    db = make_db()
    diff = query_json(db, "diff us.tariff.ieepa-fentanyl.cn between 2026-02-19 and 2026-02-23")
    changes = {c["field"]: (c["before"], c["after"]) for c in diff["results"][0]["changes"]}
    assert changes == {"legal_status": ("stayed", "invalidated")}
    assert diff["results"][0]["ended"] is False


def test_the_fold_refuses_an_invalidated_tariff_in_force_without_a_rate():
    opened = FoldEvent(1, "a", "us.tariff.x", "imposed", "2025-01-01", "2025-01-01",
                       {"set": {"kind": "tariff", "rate": 10, "scope": "all goods"}})
    unset = FoldEvent(2, "b", "us.tariff.x", "amended", "2025-02-01", "2025-02-01",
                      {"set": {"legal_status": "invalidated"}, "unset": ["rate"]})
    with pytest.raises(FoldError, match="us.tariff.x on 2025-02-01: a tariff in force whose "
                                        "authority was invalidated has no rate"):
        fold("us.tariff.x", [opened, unset])


def test_loading_an_event_that_leaves_an_invalidated_tariff_without_a_rate_is_refused(
        make_db, tmp_path):  # noqa: F811
    err = _refused(make_db(), tmp_path, '''stream = "us.tariff.ieepa-fentanyl.cn"
type = "amended"
effective = 2026-02-22
known = 2026-02-22
title = "hostile: the rate vanishes while the tariff is in force"
unset = ["rate"]''')
    assert "has no rate" in err


# -- 3. a dispute a later source settled --------------------------------------------------

@pytest.mark.parametrize("known,disputed", [("2026-05-07", True), ("2026-05-08", False),
                                            (None, False)])
def test_a_resolved_dispute_is_resolved_from_its_knowledge_date(make_db, known,  # noqa: F811
                                                                 disputed):
    db = make_db()
    k = f" known on {known}" if known else ""
    st = _one(db, f"state of us.tariff.section-122.global as of 2026-03-01{k}")["state"]
    assert st["rate"] == 10
    assert bool(st.get("disputed")) is disputed
    assert bool(st.get("resolved")) is not disputed
    if not disputed:
        (r,) = st["resolved"]
        assert r["claims"] == {"rate": 15} and r["resolution"].startswith("10%")
    total = query_json(db, f"total tariff by us on cn as of 2026-03-01{k}")
    (c,) = total["components"]
    assert ("disputed" in c) is disputed and ("resolved" in c) is not disputed
    product = query_json(db, f"tariff on hts 9503.00.00 from cn as of 2026-03-01{k}")
    assert bool(product.get("alternatives")) is disputed


def test_a_resolution_must_name_a_report_of_its_own_measure(make_db, tmp_path):  # noqa: F811
    db = make_db()
    with timeline.open(db) as tl:
        other = tl.query("events where stream = 'us.tariff.ieepa-fentanyl.cn' limit 1"
                         ).data["results"][0]["id"]
    head = f'''stream = "us.tariff.section-122.global"
type = "statement"
effective = 2026-03-01
known = 2026-05-09
title = "hostile: settles another measure's report"
resolves = ["{other}"]'''
    err = _refused(db, tmp_path, head + '\nresolution = "nothing"')
    assert "a resolution settles disputes of its own measure" in err
    assert "`resolves` and `resolution` go together" in _refused(db, tmp_path, head)


# -- 4. a court's conditional deadline ----------------------------------------------------

def test_the_cit_compliance_deadline_is_projected_known_on_the_judgment_day(make_db):  # noqa: F811
    db = make_db()
    data = query_json(db, "state of us.tariff.ieepa-fentanyl.cn as of 2025-06-15 "
                          "known on 2025-05-28")
    res = data["results"][0]
    assert (res["state"]["status"], res["state"].get("rate"), res["since"],
            res["projected"]) == ("suspended", None, "2025-06-07", True)
    assert any("scheduled by" in w and "CIT, V.O.S. Selections" in w for w in data["warnings"])
    # the day before the deadline it is still collected
    assert _one(db, "state of us.tariff.ieepa-fentanyl.cn as of 2025-06-06 "
                    "known on 2025-05-28")["state"]["rate"] == 20
    # the stay of 2025-05-29 replaced the deadline: the full record never suspends it
    res = _one(db, "state of us.tariff.ieepa-fentanyl.cn as of 2025-06-15")
    assert (res["state"]["status"], res["state"]["rate"]) == ("in_force", 20)
    assert _one(db, "state of us.tariff.ieepa-fentanyl.cn as of 2025-06-15 "
                    "known on 2025-05-29")["state"]["status"] == "in_force"


def _ev(pos, stream, typ, day, payload):
    return FoldEvent(pos, f"e{pos}", stream, typ, day, day, payload)


def test_a_stay_replaces_the_court_deadline_but_not_the_measures_own_schedule():
    own = _ev(1, "t", "imposed", "2025-01-01",
              {"set": {"kind": "tariff", "rate": 10},
               "schedule": [{"on": "2025-12-01", "set": {"rate": 20}}]})
    ruling = _ev(2, "case", "ruling", "2025-02-01",
                 {"affects": ["t"], "affects_set": {"legal_status": "ruled_unlawful"},
                  "affects_schedule": [{"on": "2025-02-11", "set": {"status": "suspended"}}]})
    stay = _ev(3, "case", "ruling", "2025-02-02",
               {"affects": ["t"], "affects_set": {"legal_status": "stayed"},
                "affects_schedule": []})
    amended = _ev(4, "t", "amended", "2025-01-15",
                  {"set": {"rate": 12}, "schedule": [{"on": "2025-11-01", "set": {"rate": 15}}]})
    with_deadline = fold("t", [own, ruling, amended]).intervals
    # the deadline suspends it; the measure's own later changes still apply underneath
    assert [(iv.valid_from, iv.state.get("status"), iv.state.get("rate"))
            for iv in with_deadline] == [
        ("2025-01-01", "in_force", 10), ("2025-01-15", "in_force", 12),
        ("2025-02-01", "in_force", 12), ("2025-02-11", "suspended", None),
        ("2025-11-01", "suspended", None)]
    assert with_deadline[3].state["last_rate"] == 12
    stayed = fold("t", [own, ruling, stay, amended]).intervals
    assert [(iv.valid_from, iv.state.get("rate")) for iv in stayed] == [
        ("2025-01-01", 10), ("2025-01-15", 12), ("2025-02-01", 12), ("2025-02-02", 12),
        ("2025-11-01", 15)]


def test_a_court_deadline_must_fall_after_the_ruling(make_db, tmp_path):  # noqa: F811
    err = _refused(make_db(), tmp_path, '''stream = "case.ieepa-tariffs"
type = "ruling"
effective = 2025-06-01
known = 2025-06-01
title = "hostile: a deadline before the ruling"
affects = ["us.tariff.ieepa-fentanyl.cn"]
affects_schedule = [{ on = 2025-05-01, set = { status = "suspended" } }]''',
                   "[events.affects_set]\nlegal_status = \"ruled_unlawful\"\n")
    assert "affects_schedule[0].on" in err


# -- 5. a threat is not a rate ------------------------------------------------------------

def test_first_date_where_rate_never_finds_a_threat_or_an_announcement(make_db):  # noqa: F811
    db = make_db()
    found = {r["measure"]: r for r in
             query_json(db, "first date where us.tariff.* rate >= 50")["results"]}
    assert "us.tariff.threat-100.cn" not in found
    assert not any(m.startswith("us.tariff.section-232.pharmaceuticals") for m in found)
    assert all(r["status"] == "in_force" for r in found.values() if r.get("status"))


@pytest.mark.parametrize("known", [None, "2025-10-20"])
def test_a_threat_carries_a_threatened_rate_that_where_can_ask_for(make_db, known):  # noqa: F811
    db = make_db()
    k = f" known on {known}" if known else ""
    st = _one(db, f"state of us.tariff.threat-100.cn as of 2025-10-20{k}")["state"]
    assert (st["status"], st.get("rate"), st["threatened_rate"]) == ("threatened", None, 100)
    asked = query_json(db, f"state of us.tariff.* as of 2025-10-20{k} "
                           f"where threatened_rate >= 50")["results"]
    assert [r["measure"] for r in asked] == ["us.tariff.threat-100.cn"]
    announced = query_json(db, "state of us.tariff.* as of 2026-04-10 "
                               "where announced_rate >= 50")["results"]
    assert "us.tariff.section-232.pharmaceuticals" in [r["measure"] for r in announced]
    assert query_json(db, f"state of us.tariff.* as of 2025-10-20{k} where rate >= 100 "
                          f"and status != in_force")["results"] == []


def test_a_threat_never_counts_in_a_total(make_db):  # noqa: F811
    db = make_db()
    total = query_json(db, "total tariff by us on cn as of 2025-10-20")
    named = [c["measure"] for c in total["components"] + total["also_applies"]]
    assert "us.tariff.threat-100.cn" not in named


def test_a_threat_is_refused_a_status_outside_the_vocabulary(tmp_path, make_db):  # noqa: F811
    err = _refused(make_db(), tmp_path, '''stream = "us.tariff.threat-200.cn"
type = "threatened"
effective = 2025-10-10
known = 2025-10-10
title = "a threat with a bad status"''', "[events.set]\nkind = \"tariff\"\nstatus = \"menaced\"\n")
    assert "status" in err


# -- 6. what the CLI says of a state, every surface says --------------------------------

def _sql(db: str, statement: str) -> list[dict]:
    import json

    r = run_cli("sql", "--db", db, "--format", "json", statement)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_views_carry_projected_refundable_and_the_pending_rates(make_db):  # noqa: F811
    db = make_db()
    rows = _sql(db, "SELECT measure, valid_from, rate, refundable, projected, "
                    "threatened_rate, announced_rate FROM v_intervals WHERE measure IN "
                    "('us.tariff.ieepa-fentanyl.cn', 'us.tariff.threat-100.cn', "
                    "'cn.tariff.retaliatory.us', 'us.tariff.section-301.cn') "
                    "ORDER BY measure, valid_from")
    by = {(r["measure"], r["valid_from"]): r for r in rows}
    fent = by[("us.tariff.ieepa-fentanyl.cn", "2025-03-04")]
    assert (fent["rate"], bool(fent["refundable"]), bool(fent["projected"])) == (20, True, False)
    threat = by[("us.tariff.threat-100.cn", "2025-10-10")]
    assert (threat["rate"], threat["threatened_rate"], bool(threat["refundable"])) == (
        None, 100, False)
    assert all(not r["refundable"] for r in rows if r["measure"] == "us.tariff.section-301.cn")
    # China's 34 % of 2026-11-10 comes from a scheduled end after the horizon: projected,
    # as `state of … as of 2026-11-10` says
    china = by[("cn.tariff.retaliatory.us", "2026-11-10")]
    assert bool(china["projected"]) is True
    answer = query_json(db, "state of cn.tariff.retaliatory.us as of 2026-11-10")
    assert answer["results"][0]["projected"] is True
    # today (2026-12 or later) is past the data's horizon: every state today is projected
    today = _sql(db, "SELECT measure, projected, refundable FROM v_state_today")
    assert today and all(bool(r["projected"]) for r in today)


def test_the_export_carries_the_qualifiers_and_numeric_rates(seeded_db, tmp_path):
    import csv

    pd = pytest.importorskip("pandas")
    out = tmp_path / "out"
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2026-11-10")
    assert r.returncode == 0, r.stderr
    snap = out / "2026-11-10"
    with open(snap / "state.csv", newline="", encoding="utf-8") as f:
        state = {row["measure"]: row for row in csv.DictReader(f)}
    assert {"last_rate", "announced_rate", "threatened_rate", "confidence", "refundable",
            "projected"} <= set(next(iter(state.values())))
    assert state["cn.tariff.retaliatory.us"]["projected"] == "true"
    assert state["us.tariff.threat-100.cn"]["threatened_rate"] == "100"
    with open(snap / "intervals.csv", newline="", encoding="utf-8") as f:
        fent = [row for row in csv.DictReader(f) if row["measure"] == "us.tariff.ieepa-fentanyl.cn"
                and row["valid_from"] == "2025-03-04"]
    assert [(row["rate"], row["refundable"]) for row in fent] == [("20", "true")]
    frame = pd.read_parquet(snap / "intervals.parquet")
    assert str(frame["rate"].dtype) == "float64"
    assert str(frame["projected"].dtype) == "bool" and frame["projected"].any()
    assert frame.loc[frame["refundable"], "rate"].max() == 125


def test_a_projected_headline_says_what_it_rests_on(seeded_db, tmp_path):
    """The briefing's headline after the horizon names the scheduled changes its totals rest
    on: the US 0 % is Section 122's statutory end, not a known state (issue 23)."""
    import html
    import re

    out = tmp_path / "brief.html"
    r = run_cli("report", "--db", str(seeded_db), "-o", str(out), "--as-of", "2026-12-01")
    assert r.returncode == 0, r.stderr
    page = out.read_text(encoding="utf-8")
    block = page.split('id="headline-rests-on"', 1)[1].split("</div>", 1)[0]
    text = html.unescape(re.sub(r"<[^>]+>", " ", block))
    assert re.search(r"us\.tariff\.section-122\.global\s+expired\s+\d+\s+since 2026-07-24", text)
    assert re.search(r"cn\.tariff\.retaliatory\.us\s+in_force at 34 %", text)
    # before the horizon nothing is projected and nothing is listed
    out2 = tmp_path / "early.html"
    assert run_cli("report", "--db", str(seeded_db), "-o", str(out2), "--as-of",
                   "2026-03-01").returncode == 0
    assert 'id="headline-rests-on"' not in out2.read_text(encoding="utf-8")


def test_the_briefing_says_what_is_refundable(seeded_db, tmp_path):
    import re

    out = tmp_path / "june.html"
    assert run_cli("report", "--db", str(seeded_db), "-o", str(out), "--as-of",
                   "2025-06-01").returncode == 0
    page = out.read_text(encoding="utf-8")
    us = page.split('id="headline-us-cn"', 1)[1].split("</tr>", 1)[0]
    assert "of which 30 % refundable" in us and 'class="tag refundable"' in us
    row = page.split('id="m-us.tariff.ieepa-fentanyl.cn"', 1)[1].split("</tr>", 1)[0]
    assert 'class="tag refundable"' in row
    row = page.split('id="m-us.tariff.section-301.cn"', 1)[1].split("</tr>", 1)[0]
    assert 'class="tag refundable"' not in row
    # as known before the Supreme Court ruled, nothing was refundable
    early = tmp_path / "known.html"
    assert run_cli("report", "--db", str(seeded_db), "-o", str(early), "--as-of", "2025-06-01",
                   "--known-on", "2026-02-19").returncode == 0
    assert not re.search(r'class="tag refundable"', early.read_text(encoding="utf-8"))


def test_refundable_is_looked_up_once_per_measure_and_knowledge_date(seeded_store):
    """An export asks it of every interval: the Reader remembers the answer per snapshot."""
    from timeline.api import Snapshot
    from timeline.surfaces.export import interval_rows

    with seeded_store.reading() as r:
        calls = []
        state = r.state
        r.state = lambda *a, **k: calls.append(a) or state(*a, **k)  # type: ignore[method-assign]
        rows = interval_rows(Snapshot(r), "2026-01-01", None)
        last_day = [a for a in calls if a[1] == "9999-12-31"]
        assert len(last_day) == len(set(last_day)) > 0
        fent = [row for row in rows if row[0] == "us.tariff.ieepa-fentanyl.cn" and row[3]]
        assert len(fent) > 2 and all(row[-2] is True for row in fent)
