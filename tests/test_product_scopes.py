"""The product-scope rules (timeline.projections.scopes) on hand-made states: coverage by
the longest HTS prefix, exemptions, non-stacking, content shares, postal duties, unknown
coverage and refundable layers. The seeded answers are in test_products.py."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from timeline.projections.scopes import Measure, coverage, evaluate, hts_digits, hts_render


def m(stream, since="2025-01-01", **state):
    state.setdefault("status", "in_force")
    return Measure(stream, state, since, [f"ev-{stream}"], title=stream)


ALL = dict(scope="all goods")


@pytest.mark.parametrize("text,digits", [
    ("72", "72"), ("8471", "8471"), ("8517.13", "851713"), ("8517.13.00", "85171300"),
    ("8507.60.0010", "8507600010"), ("8507600010", "8507600010"),
])
def test_hts_codes_are_read_at_every_precision(text, digits):
    assert hts_digits(text) == digits


@pytest.mark.parametrize("text", ["7", "847", "85x", "8517.1", "8517.13.000", "", "..",
                                  "12345678901", "8517-13"])
def test_what_is_not_hts_shaped_is_refused(text):
    assert hts_digits(text) is None


@given(st.from_regex(r"\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?", fullmatch=True))
def test_rendering_round_trips(digits):
    assert hts_digits(hts_render(digits)) == digits


def test_the_longest_prefix_decides_the_rate():
    state = dict(rate=25, hts=["85"], hts_rates={"8517.13": 0, "8517.13.00": 7.5})
    assert coverage(state, "8517130000").rate == 7.5
    assert coverage(state, "8517140000").rate == 25
    assert coverage(state, "8471").covered is False


def test_a_longer_exclusion_carves_a_code_out_but_a_longer_line_puts_it_back():
    state = dict(rate=25, hts=["72"], hts_excluded=["7208"], hts_rates={"7208.10": 50})
    assert coverage(state, "72081000").rate == 50
    assert coverage(state, "72089000").covered is False
    assert coverage(state, "72100000").rate == 25


def test_partial_coverage_is_not_known_never_not_covered():
    state = dict(rate=25, hts=["9401.61"], hts_coverage="partial")
    assert coverage(state, "94016140").covered is True
    assert coverage(state, "84713000").covered is None
    assert coverage(dict(rate=25, scope="steel products"), "7208").covered is None


def test_all_goods_layers_add_and_an_exemption_removes_only_what_it_names():
    fentanyl = m("us.tariff.fentanyl", rate=20, **ALL)
    reciprocal = m("us.tariff.reciprocal", rate=125, **ALL)
    memo = m("us.exemption.electronics", kind="exemption", hts=["8517.13.00", "8471"],
             exempts="us.tariff.reciprocal", stacking_rule="R13")
    phone = evaluate("8517130000", [fentanyl, reciprocal], [memo])
    assert phone.total == 20 and phone.complete
    gone = next(l for l in phone.layers if l.measure == "us.tariff.reciprocal")
    assert gone.applies is False and "exempt" in gone.why and "R13" in gone.why
    assert "ev-us.exemption.electronics" in gone.events
    toy = evaluate("9503000000", [fentanyl, reciprocal], [memo])
    assert toy.total == 145


def test_an_exemption_no_longer_in_force_exempts_nothing():
    reciprocal = m("us.tariff.reciprocal", rate=10, **ALL)
    ended = m("us.exemption.x", status="lifted", hts=["8471"], exempts="us.tariff.*")
    assert evaluate("84713000", [reciprocal], [ended]).total == 10


def test_a_threat_or_a_suspension_is_listed_never_added():
    threat = m("us.tariff.threat", status="announced", rate=100, **ALL)
    suspended = m("us.tariff.list-4b", status="suspended", rate=15, hts=["8517.13"])
    base = m("us.tariff.fentanyl", rate=10, **ALL)
    ev = evaluate("8517130000", [threat, suspended, base], [])
    assert ev.total == 10
    why = {l.measure: l.why for l in ev.layers}
    assert "not a rate" in why["us.tariff.threat"] and why["us.tariff.list-4b"] == "suspended"


def test_not_stacked_with_removes_the_layer_on_goods_under_the_other():
    reciprocal = m("us.tariff.reciprocal", rate=10, not_stacked_with="us.tariff.s232.*",
                   stacking_rule="R01", **ALL)
    autos = m("us.tariff.s232.autos", rate=25, hts=["8703"])
    car = evaluate("87038000", [reciprocal, autos], [])
    assert car.total == 25
    assert "R01" in next(l.why for l in car.layers if l.measure == "us.tariff.reciprocal")
    assert evaluate("94016140", [reciprocal, autos], []).total == 10


def test_content_basis_without_a_share_answers_by_portion_and_with_one_gives_one_number():
    reciprocal = m("us.tariff.reciprocal", rate=10, not_stacked_with="us.tariff.s232.*",
                   **ALL)
    fentanyl = m("us.tariff.fentanyl", rate=20, **ALL)
    metals = m("us.tariff.s232.metals", rate=50, hts=["72", "73"], content_basis="steel",
               hts_full_value=["72"])
    article = evaluate("73269000", [reciprocal, fentanyl, metals], [])
    assert article.total is None
    assert article.portions == [
        {"portion": "steel value", "rate": 70, "layers": ["us.tariff.fentanyl",
                                                           "us.tariff.s232.metals"]},
        {"portion": "rest of the value", "rate": 30, "layers": ["us.tariff.fentanyl",
                                                                 "us.tariff.reciprocal"]}]
    shared = evaluate("73269000", [reciprocal, fentanyl, metals], [], shares={"steel": 40})
    assert shared.total == 20 + 50 * 0.4 + 10 * 0.6
    # the whole value of a ch. 72 article is steel: one number, reciprocal not added
    coil = evaluate("72081000", [reciprocal, fentanyl, metals], [])
    assert coil.total == 70


def test_a_postal_duty_applies_only_by_post_and_then_replaces_every_other():
    postal = m("us.tariff.de-minimis", rate=120, shipments="postal", replaces_others=True,
               specific_duty="$100 per item", **ALL)
    fentanyl = m("us.tariff.fentanyl", rate=20, **ALL)
    entry = evaluate("6109", [postal, fentanyl], [])
    assert entry.total == 20 and "by post" in entry.notes[0]
    parcel = evaluate("6109", [postal, fentanyl], [], postal=True)
    assert parcel.total == 120 and "$100 per item" in parcel.notes[0]
    assert "replaced" in next(l.why for l in parcel.layers if l.measure == "us.tariff.fentanyl")


def test_unknown_coverage_is_said_and_the_total_is_a_floor():
    s301 = m("us.tariff.s301", rate=25, hts=["9401.61"], hts_coverage="partial")
    assert evaluate("74110000", [m("us.tariff.x", rate=25, scope="listed goods")],
                    []).unplaced == ["us.tariff.x"]
    fentanyl = m("us.tariff.fentanyl", rate=20, **ALL)
    ev = evaluate("74110000", [s301, fentanyl], [])
    assert ev.total == 20 and ev.complete is False
    layer = next(l for l in ev.layers if l.measure == "us.tariff.s301")
    assert layer.applies is None and "not known" in layer.why and layer.rate == 25


def test_a_rate_invalidated_later_is_collected_and_refundable():
    ieepa = Measure("us.tariff.fentanyl", dict(status="in_force", rate=10,
                                               legal_status="invalidated", **ALL),
                    "2026-02-20", ["e"], refundable=True)
    ev = evaluate("9503", [ieepa], [])
    assert ev.total == 10 and ev.refundable == 10
    assert ev.layers[0].refundable


def test_a_disputed_rate_gives_an_alternative_total():
    s122 = m("us.tariff.s122", rate=10, disputed=[{"claims": {"rate": 15}, "source": "UHY"}],
             **ALL)
    ev = evaluate("9503", [s122], [])
    assert ev.total == 10
    assert ev.alternatives == [{"measure": "us.tariff.s122", "rate": 15, "total": 15,
                                "source": "UHY"}]


@given(st.lists(st.sampled_from([0, 7.5, 10, 25, 0.1, 0.2, 100]), min_size=1, max_size=6))
def test_totals_add_as_decimals(rates):
    measures = [m(f"us.tariff.m{i}", rate=r, **ALL) for i, r in enumerate(rates)]
    import decimal

    want = sum((decimal.Decimal(repr(r)) for r in rates), decimal.Decimal(0))
    assert decimal.Decimal(repr(evaluate("72", measures, []).total)) == want


def test_a_code_broader_than_the_lines_named_depends_on_the_line():
    tariff = m("us.tariff.evs", rate=100, hts=["8703.80.00"])
    assert coverage(tariff.state, "8703").covered is None
    reciprocal = m("us.tariff.reciprocal", rate=125, **ALL)
    memo = m("us.exemption.e", hts=["8517.13.00"], exempts="us.tariff.reciprocal")
    ev = evaluate("851713", [reciprocal], [memo])
    assert ev.layers[0].applies is None and "8517.13.00" in ev.layers[0].why
    assert ev.complete is False


def test_within_bounds_where_unknown_lines_lie():
    cranes = dict(rate=25, hts_within=["8426"])
    assert coverage(cranes, "84261200").covered is None
    assert coverage(cranes, "85171300").covered is False
    semis = dict(rate=50, hts=["8542.31"], hts_coverage="partial", hts_within=["8541", "8542"])
    assert coverage(semis, "85423100").covered is True
    assert coverage(semis, "85414200").covered is None
    assert coverage(semis, "85171300").covered is False


def test_a_measure_naming_no_line_is_a_note_not_a_layer():
    syringes = m("us.tariff.syringes", rate=100, scope="syringes and needles")
    fentanyl = m("us.tariff.fentanyl", rate=10, **ALL)
    ev = evaluate("85171300", [syringes, fentanyl], [])
    assert [l.measure for l in ev.layers] == ["us.tariff.fentanyl"]
    assert ev.unplaced == ["us.tariff.syringes"] and ev.total == 10


def test_a_layer_not_in_force_whose_coverage_is_not_known_is_not_listed():
    s301 = m("us.tariff.s301-4b", status="suspended", rate=15, hts=["8517.13"],
             hts_coverage="partial")
    ev = evaluate("87038000", [s301], [])
    assert ev.layers == [] and ev.not_covering == 1 and ev.total == 0


def test_a_disputed_exemption_gives_an_alternative_total_without_applying():
    s122 = m("us.tariff.s122", rate=10, **ALL)
    ex = m("us.exemption.s122", hts=["30"], exempts="us.tariff.s122",
           disputed=[{"claims": {"hts": ["30", "8517.13.00"]}, "source": "Nation Thailand"}])
    phone = evaluate("85171300", [s122], [ex])
    assert phone.total == 10
    assert phone.alternatives == [{"measure": "us.tariff.s122", "exempt_by": "us.exemption.s122",
                                   "total": 0, "source": "Nation Thailand"}]
    assert evaluate("30049000", [s122], [ex]).alternatives == []
