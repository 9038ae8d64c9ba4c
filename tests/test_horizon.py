"""The knowledge horizon (issue 13, item 2): every answer says how far the log's knowledge
reaches, warns past it, and marks projected the states that rest on what was not yet known;
`timeline review` moves the horizon with a `reviewed` event."""
from __future__ import annotations

import datetime as dt
import json

import pytest

import timeline
from timeline.errors import TimelineError

from .backends import make_db, backend  # noqa: F401  (fixtures: every backend)
from .conftest import query_json, run_cli

HORIZON = "2026-06-22"  # the bundled sources' horizon (seeds end in June 2026)


@pytest.mark.parametrize("text", [
    "state of us.tariff.ieepa-fentanyl.cn as of 2025-05-28",
    "history of cn.tariff.retaliatory.us from 2025-04-01 to 2025-04-30",
    "events for case.ieepa-tariffs",
    "diff us.tariff.ieepa-fentanyl.cn between 2025-05-27 and 2025-05-29",
    "total tariff by us on cn as of 2025-04-10",
])
def test_every_answer_carries_the_horizon_and_no_warning_inside_it(seeded_db, text):
    data = query_json(str(seeded_db), text)
    assert data["horizon"] == {"known_through": HORIZON}
    assert data["warnings"] == [] and data["projected"] is False


def test_measures_today_is_past_the_horizon(seeded_db):
    data = query_json(str(seeded_db), "measures where kind = tariff")
    assert data["horizon"] == {"known_through": HORIZON}
    if dt.date.today().isoformat() > HORIZON:
        assert data["projected"] and all(d["projected"] for d in data["results"])
        assert data["warnings"][0].startswith(f"as of {dt.date.today()} is after the knowledge "
                                              f"horizon {HORIZON}")


def test_a_scheduled_change_after_the_horizon_is_projected(make_db):
    # China's 34 % on 2026-11-10 comes only from a scheduled end of its suspension
    data = query_json(make_db(), "state of cn.tariff.retaliatory.us as of 2026-11-10")
    res = data["results"][0]
    assert (res["state"]["rate"], res["since"], res["projected"]) == (34, "2026-11-10", True)
    assert data["projected"] is True
    assert data["warnings"] == [
        f"as of 2026-11-10 is after the knowledge horizon {HORIZON}: nothing later is known, "
        "so the answer is projected",
        f"cn.tariff.retaliatory.us: the state since 2026-11-10 rests on a change scheduled by "
        f"{res['events'][0]} ('China keeps its 24-point suspension for one more year (10% "
        f"retained)') due after the knowledge horizon "
        f"{HORIZON} that no later event confirms (projected)"]


def test_the_day_before_the_schedule_is_not_projected(seeded_db):
    data = query_json(str(seeded_db), "state of cn.tariff.retaliatory.us as of 2026-06-01")
    assert data["projected"] is False and data["warnings"] == []
    assert data["results"][0]["state"]["rate"] == 10


def test_known_on_is_the_horizon(seeded_db):
    data = query_json(str(seeded_db),
                      "total tariff by us on cn as of 2025-08-13 known on 2025-06-10")
    assert data["horizon"] == {"known_through": "2025-06-10"} and data["total"] == 54
    assert data["projected"] is True
    by = {c["measure"]: c["projected"] for c in data["components"]}
    assert by == {"us.tariff.ieepa-fentanyl.cn": True, "us.tariff.ieepa-reciprocal.cn": True}
    assert any("since 2025-08-12 rests on a change" in w for w in data["warnings"])


def test_table_shows_the_horizon_line_and_marks_projected_rows(seeded_db):
    r = run_cli("query", "--db", str(seeded_db),
                "state of us.tariff.ieepa-reciprocal.cn as of 2025-08-13 known on 2025-06-10")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[-1] == "projected" and lines[2].split()[-1] == "yes"
    assert lines[4] == "known through 2025-06-10 (knowledge horizon)"
    assert lines[5].startswith("warning: as of 2025-08-13 is after the knowledge horizon")
    inside = run_cli("query", "--db", str(seeded_db),
                     "state of us.tariff.ieepa-reciprocal.cn as of 2025-05-14")
    assert "projected" not in inside.stdout and "warning" not in inside.stdout
    assert inside.stdout.splitlines()[-1] == f"known through {HORIZON} (knowledge horizon)"


def test_csv_marks_projected_rows(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "--format", "csv",
                "total tariff by cn on us as of 2026-11-10")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[:2] == ["measure,rate,scope,projected",
                         "cn.tariff.retaliatory.us,34,all goods,yes"]
    assert lines[-1] == "TOTAL,34,cn on us as of 2026-11-10,yes"
    assert all(line.endswith(",yes") for line in lines[1:])
    inside = run_cli("query", "--db", str(seeded_db), "--format", "csv",
                     "total tariff by cn on us as of 2026-06-01")
    assert inside.stdout.splitlines()[0] == "measure,rate,scope"


def test_history_marks_intervals_after_the_horizon(seeded_db):
    data = query_json(str(seeded_db), "history of cn.tariff.retaliatory.us from 2026-01-01")
    ivs = data["results"][0]["intervals"]
    assert [iv["projected"] for iv in ivs] == [iv["valid_from"] > HORIZON for iv in ivs]
    assert ivs[-1]["projected"] and data["projected"]


def test_review_moves_the_horizon(make_db):
    db = make_db()
    r = run_cli("review", "--db", db, "--through", "2026-07-31", "--note",
                "checked MOFCOM and the Federal Register through July")
    assert r.returncode == 0, r.stderr
    assert "known through 2026-07-31" in r.stdout
    data = query_json(db, "state of cn.tariff.retaliatory.us as of 2026-07-01")
    assert data["horizon"] == {"known_through": "2026-07-31"} and data["warnings"] == []
    ev = query_json(db, "events where type = reviewed")["results"]
    assert [(e["stream"], e["effective"], e["payload"]["note"]) for e in ev] == [
        ("log.review", "2026-07-31", "checked MOFCOM and the Federal Register through July")]
    # an earlier review never moves the horizon back
    assert run_cli("review", "--db", db, "--through", "2026-01-31", "--note", "x").returncode == 0
    assert query_json(db, "events limit 1")["horizon"] == {"known_through": "2026-07-31"}
    # with `known on K` the horizon is K, whatever the reviews say
    assert query_json(db, "state of cn.tariff.retaliatory.us as of 2026-07-01 known on "
                          "2026-05-01")["horizon"] == {"known_through": "2026-05-01"}


@pytest.mark.parametrize("through,message", [
    ("07/31/2026", "--through must be a date written YYYY-MM-DD"),
    ((dt.date.today() + dt.timedelta(days=1)).isoformat(), "it is after today"),
])
def test_review_refuses_bad_dates(seeded_db, through, message):
    r = run_cli("review", "--db", str(seeded_db), "--through", through, "--note", "n")
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert query_json(str(seeded_db), "events where type = statement limit 1")["horizon"] == {
        "known_through": HORIZON}


def test_review_needs_a_note(seeded_db):
    assert run_cli("review", "--db", str(seeded_db), "--through", "2026-06-30").returncode == 2
    r = run_cli("review", "--db", str(seeded_db), "--through", "2026-06-30", "--note", " ")
    assert r.returncode == 1 and "needs a note" in r.stderr


def test_api_review_and_horizon(seeded_db):
    with timeline.open(seeded_db) as tl:
        res = tl.review("2026-06-30", "checked the sources", source="analyst desk")
        assert [e.type for e in res.appended] == ["reviewed"]
        assert res.appended[0].source == {"name": "analyst desk"}
        a = tl.query("state of us.tariff.ieepa-fentanyl.cn as of 2026-06-25")
        assert a.data["horizon"] == {"known_through": "2026-06-30"} and not a.data["warnings"]
        with pytest.raises(TimelineError):
            tl.review(dt.date.today() + dt.timedelta(days=2), "too early")


def test_empty_log_has_no_horizon(tmp_path):
    db = str(tmp_path / "empty.db")
    assert run_cli("init", "--db", db, "--no-seeds").returncode == 0
    r = run_cli("query", "--db", db, "--format", "json", "events")
    assert json.loads(r.stdout)["horizon"] == {"known_through": None}
    table = run_cli("query", "--db", db, "events").stdout
    assert table.splitlines()[-1] == "known through: nothing (the log is empty)"


def test_repl_known_sets_the_horizon(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), input=(
        "\\known 2025-06-10\nstate of us.tariff.ieepa-reciprocal.cn as of 2025-08-13;\n"))
    assert r.returncode == 0, r.stderr
    assert "known through 2025-06-10 (knowledge horizon)" in r.stdout
    assert "warning: us.tariff.ieepa-reciprocal.cn: the state since 2025-08-12" in r.stdout
