"""Status semantics (issue 13, item 3): a lifted, expired, withdrawn or invalidated measure
has no rate in force — `rate` is null and `last_rate` keeps the old one, in every surface —
and `total` lists every tariff that applies to some goods, disputed values and legal notes."""
from __future__ import annotations

import json

import pytest

from timeline.projections.fold import settle_rate

from .backends import make_db, backend  # noqa: F401  (fixtures: every backend)
from .conftest import query_json, run_cli


def test_lifted_measure_has_no_rate_and_keeps_last_rate(make_db):
    db = make_db()
    st = query_json(db, "state of us.tariff.ieepa-fentanyl.cn as of 2026-03-01")["results"][0]
    assert (st["state"]["status"], st["state"].get("rate"), st["state"]["last_rate"]) == \
        ("lifted", None, 10)
    table = run_cli("query", "--db", db, "state of us.tariff.ieepa-fentanyl.cn as of 2026-03-01")
    row = table.stdout.splitlines()[2].split()
    assert row[:3] == ["us.tariff.ieepa-fentanyl.cn", "lifted", "invalidated"]  # no rate cell
    # while in force it still has its rate
    st = query_json(db, "state of us.tariff.ieepa-fentanyl.cn as of 2025-05-28")["results"][0]
    assert st["state"]["rate"] == 20 and "last_rate" not in st["state"]


def test_an_invalidated_tariff_is_collected_until_collection_stops(seeded_db):
    # ruled invalid on 2026-02-20, collected until 2026-02-24 (issue 23, finding 1)
    st = query_json(str(seeded_db),
                    "state of us.tariff.ieepa-fentanyl.cn as of 2026-02-21")["results"][0]
    assert (st["state"]["legal_status"], st["state"]["rate"], st["refundable"]) == (
        "invalidated", 10, True)
    assert "last_rate" not in st["state"]
    total = query_json(str(seeded_db), "total tariff by us on cn as of 2026-02-21")
    assert "us.tariff.ieepa-fentanyl.cn" in [c["measure"] for c in total["components"]]
    after = query_json(str(seeded_db),
                       "state of us.tariff.ieepa-fentanyl.cn as of 2026-02-24")["results"][0]
    assert (after["state"]["status"], after["state"].get("rate"),
            after["state"]["last_rate"]) == ("lifted", None, 10)
    assert "refundable" not in after


def test_measures_where_rate_never_matches_an_ended_measure(make_db):
    db = make_db()
    data = query_json(db, "measures where rate > 0")
    assert data["results"]
    assert all(d["status"] not in ("lifted", "expired") for d in data["results"])
    ended = query_json(db, "measures where status = expired")["results"]
    assert ended and all(d["rate"] is None for d in ended)


def test_sql_views_show_no_rate_for_ended_measures(make_db):
    db = make_db()
    r = run_cli("sql", "--db", db, "--format", "json",
                "SELECT measure, rate, status FROM v_state_today WHERE status IN "
                "('lifted', 'expired') ORDER BY measure")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(row["rate"] is None for row in rows)
    r = run_cli("sql", "--db", db, "--format", "json",
                "SELECT measure FROM v_state_today WHERE rate > 20 AND status = 'lifted'")
    assert json.loads(r.stdout) == []


def test_export_intervals_carry_last_rate(seeded_db, tmp_path):
    r = run_cli("export", "--db", str(seeded_db), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    text = "\n".join(p.read_text("utf-8") for p in (tmp_path / "out").rglob("*")
                     if p.is_file() and p.suffix in (".csv", ".json", ".jsonl"))
    assert '"last_rate"' in text or "last_rate" in text


def test_total_lists_every_tariff_of_both_directions(make_db):
    db = make_db()
    cn = query_json(db, "total tariff by cn on us as of 2025-04-10")
    assert cn["total"] == 84
    also = {a["measure"]: a for a in cn["also_applies"]}
    assert set(also) == {"cn.tariff.agriculture.us", "cn.tariff.energy-autos.us"}
    assert all(a["rate"] is None and a["rates"] for a in also.values())
    us = query_json(db, "total tariff by us on cn as of 2025-04-10")
    assert {a["measure"] for a in us["also_applies"]} >= {"us.tariff.section-301.cn",
                                                          "us.tariff.section-232.steel-aluminum"}


def test_total_shows_legal_status_and_disputed_values(seeded_db):
    r = run_cli("query", "--db", str(seeded_db), "total tariff by us on cn as of 2025-06-01")
    assert "us.tariff.ieepa-fentanyl.cn    20    all goods; ruled unlawful; stayed" in r.stdout
    # known before F22 settled it (2026-05-08), the 15 % report is disputed
    data = query_json(str(seeded_db),
                      "total tariff by us on cn as of 2026-03-01 known on 2026-05-01")
    c = data["components"][0]
    assert (c["measure"], c["rate"], c["disputed"]) == (
        "us.tariff.section-122.global", 10, [{"rate": 15, "source": "BDO; UHY"}])
    csv = run_cli("query", "--db", str(seeded_db), "--format", "csv",
                  "total tariff by us on cn as of 2026-03-01 known on 2026-05-01").stdout
    assert "all goods; disputed: rate=15 (BDO; UHY)" in csv


@pytest.mark.parametrize("state,after", [
    ({"status": "lifted", "rate": 10}, {"status": "lifted", "last_rate": 10}),
    ({"status": "expired", "rate": 100}, {"status": "expired", "last_rate": 100}),
    ({"status": "withdrawn", "rate": 5}, {"status": "withdrawn", "last_rate": 5}),
    ({"status": "in_force", "legal_status": "invalidated", "rate": 20},
     {"status": "in_force", "legal_status": "invalidated", "rate": 20}),
    ({"status": "announced", "rate": 100}, {"status": "announced", "announced_rate": 100}),
    ({"status": "threatened", "rate": 100}, {"status": "threatened", "threatened_rate": 100}),
    ({"status": "in_force", "announced_rate": 25}, {"status": "in_force", "rate": 25}),
    ({"status": "withdrawn", "threatened_rate": 100},
     {"status": "withdrawn", "threatened_rate": 100}),
    ({"status": "in_force", "last_rate": 10}, {"status": "in_force", "rate": 10}),
    ({"status": "in_force", "rate": 15, "last_rate": 10}, {"status": "in_force", "rate": 15}),
    ({"status": "suspended", "rate": 34}, {"status": "suspended", "last_rate": 34}),
])
def test_settle_rate(state, after):
    settle_rate(state)
    assert state == after
