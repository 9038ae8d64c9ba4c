"""The quick reading of `state of ID [as of DATE] [known on DATE]` gives exactly Lark's tree,
positions included, and leaves everything else (and every error) to Lark (issue 15)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.errors import QueryError
from timeline.query.lark_parser import parse_with_lark
from timeline.query.parser import _quick_state, parse

keyword = st.sampled_from(["state", "STATE", "State", "sTaTe"])
space = st.sampled_from([" ", "  ", "\t", "\n", " \n ", "\u00a0", "\u2028", ""])
ident = st.sampled_from(["us.s232.steel", "x", "as", "known", "on", "state", "us.*", "*",
                         "a-b.c-d", "X", "us_x", "us.", ".us", "us..x", "a.b-", "9", "a.*.c",
                         "1-2-3", "2020-01-01"])
day = st.sampled_from(["2020-01-01", "1999-12-31", "2020-02-29", "2019-02-29", "2020-13-01",
                       "0000-01-01", "20200-01-01", "2020-1-01", "today", "2020-01-01x"])
tail = st.sampled_from(["", ";", " ;", "; ", ";;", " where rate > 1", " x", "\n"])


def _outcome(fn, text):
    try:
        return repr(fn(text))
    except QueryError as exc:
        return f"error: {exc.render() if hasattr(exc, 'render') else exc}"


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(space, keyword, space, st.sampled_from(["of", "OF", "of "]), space, ident,
                 st.one_of(st.just(""), st.tuples(space, st.sampled_from(["as of", "AS  Of"]),
                                                  space, day).map("".join)),
                 st.one_of(st.just(""), st.tuples(space, st.sampled_from(["known on", "Known ON"]),
                                                  space, day).map("".join)),
                 tail).map(lambda parts: "".join(parts[:5]) + " " + "".join(parts[5:])))
def test_quick_reading_equals_lark_on_generated_queries(text):
    quick = _quick_state(text)
    lark = _outcome(lambda t: parse_with_lark(t, "start"), text)
    if quick is not None:
        assert repr(quick) == lark
    assert _outcome(parse, text) == lark


def test_the_canonical_forms_are_read_quickly():
    for text in ("state of us.s232.steel as of 2020-01-01",
                 "state of us.s232.steel as of 2020-01-01 known on 2021-06-30",
                 "STATE OF cn.x known on 2021-06-30;", "state of us.*"):
        assert _quick_state(text) is not None
        assert repr(_quick_state(text)) == repr(parse_with_lark(text, "start"))


def test_errors_still_come_from_lark_with_their_caret():
    for text in ("state of us.X as of 2020-01-01", "state of x as of 2020-02-30",
                 "state of x as of 2020-01-01 known on 2021-13-01"):
        assert _quick_state(text) is None
        try:
            parse(text)
        except QueryError as exc:
            assert exc.line == 1 and exc.column > 1
        else:
            raise AssertionError(f"{text!r} parsed")



hts = st.sampled_from(["8517.13.00", "8471", "72", "8507.60.0010", "8517.13", "85x", "8517.1",
                       "851713", "8517.13.000", "2020-01-01", "as"])
origin = st.sampled_from(["cn", "CN", "all", "us", "c-n", "9x", "as", "known"])


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(space, st.sampled_from(["tariff", "TARIFF", "Tariff"]), space,
                 st.sampled_from(["on hts", "ON  Hts", "on hts\t"]), space, hts, space,
                 st.sampled_from(["from", "FROM"]), space, origin,
                 st.one_of(st.just(""), st.tuples(space, st.sampled_from(["as of", "AS  Of"]),
                                                  space, day).map("".join)),
                 st.one_of(st.just(""), st.tuples(space, st.sampled_from(["known on"]),
                                                  space, day).map("".join)),
                 tail).map(lambda p: " ".join(["".join(p[:5]), "".join(p[5:7]),
                                               "".join(p[7:])])))
def test_quick_tariff_reading_equals_lark_on_generated_queries(text):
    from timeline.query.parser import _quick_tariff

    quick = _quick_tariff(text)
    lark = _outcome(lambda t: parse_with_lark(t, "start"), text)
    if quick is not None:
        assert repr(quick) == lark
    assert _outcome(parse, text) == lark


def test_the_plain_tariff_form_is_read_quickly():
    from timeline.query.parser import _quick_tariff

    for text in ("tariff on hts 8517.13.00 from cn as of 2025-04-15 known on 2025-04-10",
                 "tariff on hts 8471 from cn", "tariff on hts 8507.60.0010 from cn;"):
        assert _quick_tariff(text) is not None
        assert repr(_quick_tariff(text)) == repr(parse_with_lark(text, "start"))
