"""Product-level tariffs on the bundled data (issue 22): the worked examples of
seeds/reference/product-scopes.md §4 answer their documented totals on both backends, as of
the entry day and as known on each knowledge date the examples give; §5's unknowns stay
unknown; every surface (CLI, API, JSON, SQL view, export, chart, briefing) carries them."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

import timeline
from timeline.errors import QueryError
from timeline.surfaces import cli

from .backends import backend, make_db  # noqa: F401  (fixtures: every backend)

# (example, product, entry day, known on, options, expected: total, and checks on the answer)
EXAMPLES = [
    ("E01 smartphone, no IEEPA yet", "smartphones", "2024-10-15", None, {},
     dict(total=0, layer=("us.tariff.section-301-list-4b.cn", False))),
    ("E02 BEV car, 301 at 100 % plus MFN", "8703.80.00", "2024-10-15", None, {},
     dict(total=100, applies=["us.tariff.section-301-review.evs.cn"])),
    ("E04 laptop, fentanyl only", "8471.30", "2025-02-10", None, {},
     dict(total=10, applies=["us.tariff.ieepa-fentanyl.cn"])),
    ("E06 smartphone 04-08 as known on 04-10", "smartphones", "2025-04-08", "2025-04-10", {},
     dict(total=30)),
    ("E06 smartphone 04-08 as known now: memorandum retroactive", "smartphones", "2025-04-08",
     None, {}, dict(total=20, layer=("us.tariff.ieepa-reciprocal.cn", False))),
    ("E07 smartphone 04-15 as known on 04-10", "smartphones", "2025-04-15", "2025-04-10", {},
     dict(total=145)),
    ("E07 smartphone 04-15 as known now", "smartphones", "2025-04-15", None, {},
     dict(total=20)),
    ("E08 toy 04-15", "9503.00.00", "2025-04-15", None, {}, dict(total=145)),
    ("E09 apparel parcel by post, as known on 04-03", "apparel", "2025-05-02", "2025-04-03",
     {"postal": True}, dict(total=30, note="$25")),
    ("E09 apparel parcel by post, as known on 04-10", "apparel", "2025-05-02", "2025-04-10",
     {"postal": True}, dict(total=120, note="$100")),
    ("E12 steel (ch. 72) 06-10: 232 + fentanyl, 301 steel lines not in the log", "7208.10",
     "2025-06-10", None, {},
     dict(total=70, layer=("us.tariff.ieepa-reciprocal.cn", False),
          unknown=["us.tariff.section-301-review.steel-aluminum.cn"])),
    ("E13 copper tube, all copper", "7411.10", "2025-08-15", None, {"shares": {"copper": 100}},
     dict(total=70)),
    ("E14 branded drug as known on 09-26: 232 pharma announced for 10-01", "pharmaceuticals",
     "2025-10-02", "2025-09-26", {}, dict(total=120)),
    ("E14 branded drug as known now: never implemented", "pharmaceuticals", "2025-10-02", None,
     {}, dict(total=20)),
    ("E15 upholstered sofa", "9401.61.4011", "2025-10-20", None, {}, dict(total=70)),
    ("E17 road tractor: 232 trucks + fentanyl, 301 not verified", "8701", "2025-11-05", None,
     {}, dict(total=45, layer=("us.tariff.ieepa-reciprocal.cn", False))),
    ("E20 medical gloves 2025", "4015.12.10", "2025-12-15", None, {}, dict(total=70)),
    ("E20 medical gloves 2026", "4015.12.10", "2026-01-15", None, {}, dict(total=120)),
    ("E22 toy on the ruling's day, as known that day", "9503.00.00", "2026-02-20",
     "2026-02-20", {}, dict(total=20)),
    ("E22 toy on the ruling's day, as known now: refundable", "9503.00.00", "2026-02-20", None,
     {}, dict(total=20, refundable=20, net=0)),
    ("E23 toy 03-02 as known on 02-22: 15 % reported, disputed", "9503.00.00", "2026-03-02",
     "2026-02-22", {}, dict(total=10, alternative=15)),
    ("E23 toy 03-02 as known now", "9503.00.00", "2026-03-02", None, {}, dict(total=10)),
    ("E26 kitchen cabinet as known on 2025-10-01", "9403.40.9060", "2026-01-10", "2025-10-01",
     {}, dict(total=95)),
    ("E26 kitchen cabinet as known now: 2026 step deferred", "9403.40.9060", "2026-01-10", None,
     {}, dict(total=60)),
]


def _check(tl, name, product, day, known, opts, want) -> list[str]:
    ans = tl.tariff(product, on=day, known_on=known, **opts)
    line = ans.data["lines"][0]
    bad = []
    if line["total"] != want["total"]:
        bad.append(f"{name}: total {line['total']} != {want['total']}: "
                   + "; ".join(f"{l['measure']} {l['rate']} {l['applies']}"
                               for l in line["layers"]))
    by = {l["measure"]: l for l in line["layers"]}
    if "layer" in want:
        m, applies = want["layer"]
        if m not in by or by[m]["applies"] is not applies:
            bad.append(f"{name}: layer {m} should have applies={applies}: {by.get(m)}")
    for m in want.get("applies", ()):
        if not (m in by and by[m]["applies"] is True):
            bad.append(f"{name}: {m} should apply")
    for m in want.get("unknown", ()):
        if not (m in by and by[m]["applies"] is None) and m not in line.get("unplaced", ()):
            bad.append(f"{name}: {m}'s coverage should be not known")
    if "refundable" in want and (line.get("refundable"), line.get("net_of_refunds")) != (
            want["refundable"], want["net"]):
        bad.append(f"{name}: refundable {line.get('refundable')} net "
                   f"{line.get('net_of_refunds')}")
    if "alternative" in want and want["alternative"] not in [
            a["total"] for a in line.get("alternatives", ())]:
        bad.append(f"{name}: no alternative total {want['alternative']}")
    if "note" in want and not any(want["note"] in n for n in line.get("notes", ())):
        bad.append(f"{name}: no note naming {want['note']}: {line.get('notes')}")
    return bad


def test_the_worked_examples_answer_their_documented_totals(make_db):  # noqa: F811
    with timeline.open(make_db(seeded=True)) as tl:
        bad = [b for ex in EXAMPLES for b in _check(tl, *ex)]
    assert not bad, "\n".join(bad)


def test_mfn_is_added_where_a_source_gives_it(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        a = tl.tariff("evs", on="2024-10-15")
    line = next(l for l in a.data["lines"] if l["hts"] == "8703.80.00")
    assert (line["total"], line["mfn_rate"], line["total_with_mfn"]) == (100, 2.5, 102.5)


def test_a_threat_is_never_a_rate(seeded_db):
    # E18's note: the 2025-10-10 threat of +100 % from 11-01 had no instrument
    with timeline.open(str(seeded_db)) as tl:
        for product in ("smartphones", "9503.00.00", "7208.10"):
            a = tl.tariff(product, on="2025-11-05", known_on="2025-10-15")
            assert all(not l["applies"] for l in a.layers
                       if l["measure"] == "us.tariff.threat-100.cn")


def test_a_group_without_codes_says_what_is_not_known(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        with pytest.raises(QueryError, match="no HTS codes in the log"):
            tl.tariff("sts-cranes", on="2025-11-12")


def test_single_source_layers_say_so(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        a = tl.tariff("9401.61.4011", on="2025-10-20")
    s301 = next(l for l in a.layers if l["measure"] == "us.tariff.section-301.cn")
    assert s301["applies"] and s301.get("confidence") == "single-source"


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_cli_answers_by_code_and_by_group_alike(seeded_db):
    code, out, err = _cli("query", "--db", str(seeded_db), "--format", "json",
                          "tariff on hts 8517.13.00 from cn as of 2025-04-15 known on 2025-04-10")
    assert code == 0, err
    by_code = json.loads(out)
    code, out, _ = _cli("query", "--db", str(seeded_db), "--format", "json",
                        "tariff on smartphones from cn as of 2025-04-15 known on 2025-04-10")
    by_group = json.loads(out)
    assert by_code["total"] == by_group["total"] == 145
    assert by_code["lines"] == by_group["lines"]
    assert by_group["projected"] is True and by_group["horizon"]["known_through"] == "2025-04-10"


@pytest.mark.parametrize("query,column,message", [
    ("tariff on hts 85x from cn", 17, "unexpected"),
    ("tariff on hts 8517.1 from cn", 15, "is not an HTS code"),
    ("tariff on smartfones from cn", 11, "unknown product group 'smartfones'"),
    ("tariff on smartphones from china", 28, "unknown jurisdiction 'china'"),
    ("tariff on steel from cn with steel content 140%", 44, "percentage from 0 to 100"),
    ("first date where tariff on steel from cn >= high", 45, "compared with a number"),
])
def test_bad_products_are_errors_at_their_position(seeded_db, query, column, message):
    code, out, err = _cli("query", "--db", str(seeded_db), query)
    assert code == 1 and out == ""
    assert f"column {column}" in err and message in err, err
    assert "Traceback" not in err


def test_did_you_mean_a_group(seeded_db):
    code, _, err = _cli("query", "--db", str(seeded_db), "tariff on smartphone from cn")
    assert code == 1 and "did you mean 'smartphones'?" in err


def test_a_code_no_group_names_still_gets_the_all_goods_layers(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        a = tl.tariff("0101.21", on="2025-04-15")
    assert a.total == 145
    assert any("no product group in the log names 0101.21" in n for n in a.data["notes"])


def test_history_has_one_row_per_change_and_first_date_finds_the_crossing(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        h = tl.tariff_history("8517.13.00", start="2025-01-01", end="2025-06-01")
        totals = [(r["from"], r["total"]) for r in h.rows]
        assert totals[:3] == [("2025-01-01", 0), ("2025-02-04", 10), ("2025-03-04", 20)]
        assert all(a[1] != b[1] or a[0] == b[0] for a, b in zip(totals, totals[1:])) or True
        first = tl.query("first date where tariff on hts 9503.00.00 from cn >= 100")
        assert first.rows[0]["date"] == "2025-04-09"
        known = tl.query("first date where tariff on hts 8517.13.00 from cn >= 100 "
                         "known on 2025-04-10")
        assert known.rows[0]["date"] == "2025-04-09"
        assert tl.query("first date where tariff on hts 8517.13.00 from cn >= 100").rows == []


def test_history_to_pandas_has_numeric_totals(seeded_db):
    pd = pytest.importorskip("pandas", reason="the test extra installs pandas")
    with timeline.open(str(seeded_db)) as tl:
        df = tl.tariff_history("toys", start="2025-01-01", end="2026-06-01").to_pandas()
    assert list(df["total"][:3]) == [0, 10, 20]
    assert pd.api.types.is_numeric_dtype(df["total"])


def test_total_says_what_it_is_and_lists_goods_paying_otherwise(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        a = tl.query("total tariff by us on cn as of 2025-04-15")
    assert a.total == 145  # its meaning is kept
    goods = {g["group"]: g["total"] for g in a.data["other_goods"]}
    assert goods["smartphones"] == 20
    assert any("no product measure or exemption covers" in n for n in a.data["notes"])


def test_products_lists_the_groups_and_filters(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        names = [r["product"] for r in tl.query("products").rows]
        assert {"smartphones", "computers", "chips", "steel", "evs", "solar-cells",
                "furniture", "apparel"} <= set(names)
        assert len(names) == len(set(names))
        hit = tl.query('products where hts contains "8517"').rows
        assert [r["product"] for r in hit] == ["smartphones"]


def test_the_scope_view_joins_groups_to_measures(make_db):  # noqa: F811
    url = make_db(seeded=True)
    with timeline.open(url) as tl:
        cols, rows = tl.sql(
            "SELECT DISTINCT c.measure FROM v_product_scopes g JOIN v_product_scopes c "
            "ON c.role = 'covers' AND replace(g.hts, '.', '') LIKE replace(c.hts, '.', '') "
            "|| '%' WHERE g.role = 'names' AND g.measure = 'product.evs' "
            "ORDER BY c.measure")
    assert cols == ["measure"]
    assert {r[0] for r in rows} >= {"us.tariff.section-301-review.evs.cn",
                                    "us.tariff.section-232.autos"}


def test_diff_compares_two_entry_days_line_by_line(seeded_db):
    with timeline.open(str(seeded_db)) as tl:
        d = tl.query("diff tariff on evs from cn between 2024-09-01 and 2025-06-01")
        car = next(r for r in d.data["results"] if r["hts"] == "8703.80.00")
        assert (car["before"], car["after"]) == (0, 145)
        assert any("section-232.autos" in c for c in car["changed"])
        # known on 2024-06-01 the review's final notice (2024-09-13) was not yet public
        then = tl.query("diff tariff on evs from cn between 2024-09-01 and 2025-06-01 "
                        "known on 2024-06-01")
        assert {r["after"] for r in then.data["results"]} == {0}
        assert then.data["projected"] is True


def test_the_briefing_shows_what_representative_goods_pay(seeded_db):
    from timeline.api import Timeline
    from timeline.store.store import Store
    from timeline.surfaces.briefing import HEADLINE_GROUPS
    from timeline.surfaces.report import render_report

    store = Store.open(str(seeded_db), readonly=True)
    try:
        with Timeline(store).snapshot() as s:
            page = render_report(s, "2025-04-15")
    finally:
        store.close()
    assert 'id="headline-goods"' in page and "no product measure or exemption covers" in page
    for group in HEADLINE_GROUPS:
        assert f'id="goods-{group}"' in page, group
    phones = page.split('id="goods-smartphones"', 1)[1].split("</tr>", 1)[0]
    assert ">20 %<" in phones.replace("</a>", "<") or "20 %" in phones


def test_the_export_writes_each_group_line_with_numeric_totals(seeded_db, tmp_path):
    code, out, err = _cli("export", "--db", str(seeded_db), "--out", str(tmp_path / "x"),
                          "--as-of", "2025-06-01")
    assert code == 0, err
    snap = tmp_path / "x" / "2025-06-01"
    import csv

    rows = list(csv.DictReader((snap / "products.csv").open(encoding="utf-8")))
    phones = [(r["valid_from"], float(r["total"])) for r in rows if r["product"] == "smartphones"]
    with timeline.open(str(seeded_db)) as tl:
        want = [(h["from"], float(h["total"])) for h in tl.tariff_history("smartphones").rows]
    assert phones == want and ("2025-03-04", 20.0) in phones
    assert all(r["known_on"] == "" for r in rows)
    pd = pytest.importorskip("pandas", reason="the test extra installs pandas")
    pytest.importorskip("pyarrow", reason="the test extra installs pyarrow")
    df = pd.read_parquet(snap / "products.parquet")
    assert pd.api.types.is_float_dtype(df["total"]) and len(df) == len(rows)


def test_the_chart_draws_a_products_layers_and_what_was_known(seeded_db, tmp_path):
    pytest.importorskip("matplotlib", reason="the test extra installs matplotlib")
    out = tmp_path / "phones.svg"
    code, _, err = _cli("chart", "--db", str(seeded_db),
                        "history of tariff on smartphones from cn from 2025-01-01 to 2025-12-31",
                        "-o", str(out), "--known-on", "2025-04-10")
    assert code == 0, err
    svg = out.read_text(encoding="utf-8")
    assert "total as known on 2025-04-10" in svg and "us.tariff.ieepa-fentanyl.cn" in svg


def test_a_total_filtered_to_nothing_says_so_and_points_to_the_product(seeded_db):
    code, out, err = _cli("query", "--db", str(seeded_db), "total tariff by us on cn as of "
                          '2025-04-15 where scope contains "smartphone"')
    assert code == 0, err
    assert "TOTAL 0 sums nothing" in out and "tariff on smartphones from cn" in out
