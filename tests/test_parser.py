"""The query parser: every form, canonical rendering, error reporting, and fuzzing."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.errors import QueryError
from timeline.query.lark_parser import lark_parser
from timeline.query.parser import parse
from timeline.query.suggest import suggest
from timeline.query.syntax import (Condition, DateExpr, DiffQuery, EventsQuery, ExplainQuery,
                                HistoryQuery, MeasuresQuery, Pos, StateQuery, Target,
                                TotalQuery)

# CI raises the example count with TIMELINE_FUZZ_EXAMPLES; without it 500 (2,000 under
# TIMELINE_LONG_TESTS=1); no deadline because timing on shared runners is noise, not a
# property of the parser.
settings.register_profile(
    "timeline-fuzz",
    max_examples=int(os.environ.get("TIMELINE_FUZZ_EXAMPLES")
                     or (2000 if os.environ.get("TIMELINE_LONG_TESTS") == "1" else 500)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("timeline-fuzz")

P = Pos(1, 1)  # positions are not compared; any value does


def iso(text, *offsets):
    return DateExpr("iso", text, tuple(offsets), P)


def T(pattern):
    return Target(pattern, P)


def C(field, op, value):
    return Condition(field, op, value, P)


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(query)
    return info.value


def caret_column(err: QueryError) -> int:
    caret = next(line for line in err.render().splitlines() if line.strip() == "^")
    return caret.index("^") - 1  # render indents the query line and caret by two spaces


# --- every form ------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("state of us.tariff.ieepa-fentanyl.cn",
     StateQuery(T("us.tariff.ieepa-fentanyl.cn"), None, None, P)),
    ("state of us.tariff.* as of 2025-04-15",
     StateQuery(T("us.tariff.*"), iso("2025-04-15"), None, P)),
    ("state of *.cn known on 2025-04-15",
     StateQuery(T("*.cn"), None, iso("2025-04-15"), P)),
    ("State Of * AS OF today KNOWN ON \"June 10, 2025\";",
     StateQuery(T("*"), DateExpr("today", "today", (), P),
                DateExpr("text", "June 10, 2025", (), P), P)),
    ("history of indicator.cn.exports-to-us.yoy",
     HistoryQuery(T("indicator.cn.exports-to-us.yoy"), None, None, None, P)),
    ("history of case.ieepa-tariffs from 2025-01-01 to 2025-06-01 + 2 weeks known on today",
     HistoryQuery(T("case.ieepa-tariffs"), iso("2025-01-01"), iso("2025-06-01", (2, "weeks")),
                  DateExpr("today", "today", (), P), P)),
    ("history of a.b to 2025-06-01", HistoryQuery(T("a.b"), None, iso("2025-06-01"), None, P)),
    ("events", EventsQuery(None, None, None, (), None, P)),
    ("events limit 0", EventsQuery(None, None, None, (), 0, P)),
    ("events for us.* from 2025-01-01 where type = imposed and rate >= 10.5 limit 20",
     EventsQuery(T("us.*"), iso("2025-01-01"), None,
                 (C("type", "=", "imposed"), C("rate", ">=", 10.5)), 20, P)),
    ("events where payload.x != 'a b' and kind CONTAINS \"rul\" and effective < 2025-04-15"
     " and rate > -3 and n <= 7",
     EventsQuery(None, None, None, (C("payload.x", "!=", "a b"), C("kind", "contains", "rul"),
                                    C("effective", "<", dt.date(2025, 4, 15)),
                                    C("rate", ">", -3), C("n", "<=", 7)), None, P)),
    ("diff us.tariff.x between 2025-01-01 and today - 1 month",
     DiffQuery(T("us.tariff.x"), iso("2025-01-01"),
               DateExpr("today", "today", ((-1, "months"),), P), None, P)),
    ("diff a.b between '10 June 2025' and 2025-07-01 known on 2025-07-02",
     DiffQuery(T("a.b"), DateExpr("text", "10 June 2025", (), P), iso("2025-07-01"),
               iso("2025-07-02"), P)),
    ("total tariff by us on cn", TotalQuery("us", "cn", None, None, P)),
    ("total tariff by cn on all as of 2025-04-10 known on 2025-04-09",
     TotalQuery("cn", "all", iso("2025-04-10"), iso("2025-04-09"), P)),
    ("measures", MeasuresQuery((), P)),
    ("measures where status = in_force and imposer = us",
     MeasuresQuery((C("status", "=", "in_force"), C("imposer", "=", "us")), P)),
    ("explain state of a.b", ExplainQuery(StateQuery(T("a.b"), None, None, P), P)),
    ("EXPLAIN measures;", ExplainQuery(MeasuresQuery((), P), P)),
])
def test_forms(query, expected):
    assert parse(query) == expected


def test_multiline_mixed_case_and_positions():
    query = "  Events\n\tFOR us.tariff.*\n  where Type = imposed\n    and rate > 5\n  LIMIT 3 ;\n"
    result = parse(query)
    assert result == EventsQuery(T("us.tariff.*"), None, None,
                                 (C("Type", "=", "imposed"), C("rate", ">", 5)), 3, P)
    assert result.pos == Pos(1, 3)
    assert result.target.pos == Pos(2, 6)
    assert [c.pos for c in result.conditions] == [Pos(3, 9), Pos(4, 9)]


def test_date_positions():
    result = parse("diff a.b\r\nbetween 2025-01-01 and\n  today + 1 day")
    assert result.first.pos == Pos(2, 9)
    assert result.second.pos == Pos(3, 3)


def test_keywords_are_plain_words_where_the_grammar_expects_ids_and_values():
    assert parse("state of state.of").target.pattern == "state.of"
    q = parse("events for events.limit where limit = limit and where = today limit 5")
    assert q.target.pattern == "events.limit"
    assert q.conditions == (C("limit", "=", "limit"), C("where", "=", "today"))
    assert q.limit == 5
    assert parse("total tariff by on on by").imposer == "on"


def test_target_globs():
    assert parse("state of us.*.cn").target.is_glob
    assert parse("state of *").target.is_glob
    assert not parse("state of us.tariff.x").target.is_glob


def test_value_types():
    conds = parse('events where a = 1 and b = 2.50 and c = "x\\"y" and d = \'it\\\'s\''
                  " and e = 2025-01-02 and f = ruling").conditions
    assert [c.value for c in conds] == [1, 2.5, 'x"y', "it's", dt.date(2025, 1, 2), "ruling"]
    assert [type(c.value) for c in conds] == [int, float, str, str, dt.date, str]


def test_parser_is_built_once():
    assert lark_parser() is lark_parser()


def test_suggest():
    assert suggest("histroy", ["state", "history"]) == "history"
    assert suggest("US.TARIFF.X", ["us.tariff.x", "cn.tariff.x"]) == "us.tariff.x"
    assert suggest("zzz", ["state", "history"]) is None
    assert suggest("x", []) is None


# --- canonical rendering ---------------------------------------------------------------

@pytest.mark.parametrize("query, canonical", [
    ("STATE  OF us.tariff.x", "state of us.tariff.x"),
    ("state of a.b as of today + 1 day known on '10 June 2025';",
     'state of a.b as of today + 1 day known on "10 June 2025"'),
    ("history of a.b from 2025-01-01 - 1 WEEKS to today known on today",
     "history of a.b from 2025-01-01 - 1 week to today known on today"),
    ("events for *.cn from 2025-01-01 to 2025-02-01 where a contains 'b c' and n >= 1.0"
     " and d = 2025-01-01 and s = 'in_force' limit 0",
     'events for *.cn from 2025-01-01 to 2025-02-01 where a contains "b c" and n >= 1.0'
     " and d = 2025-01-01 and s = in_force limit 0"),
    ("events where s = '2025' and t = 'a\\\\b'", 'events where s = "2025" and t = "a\\\\b"'),
    ("diff a.b between 2025-01-31 + 1 month + 2 days and today known on today",
     "diff a.b between 2025-01-31 + 1 month + 2 days and today known on today"),
    ("total tariff by us on cn as of 2025-04-10 known on 2025-04-11",
     "total tariff by us on cn as of 2025-04-10 known on 2025-04-11"),
    ("measures where x.y = \"\" and n < -0.5", 'measures where x.y = "" and n < -0.5'),
    ("explain events limit 3", "explain events limit 3"),
    ("events where n = 12345678901234567890.5", "events where n = 12345678901234567000.0"),
    ("events where n = 0.00001", "events where n = 0.00001"),
])
def test_render_is_canonical_and_round_trips(query, canonical):
    first = parse(query)
    assert first.render() == canonical
    again = parse(canonical)
    assert again == first and again.render() == canonical


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("query, message, line, column, expected, hint", [
    ("state of us.tariff.x as off 2025-01-01", "unexpected 'off'", 1, 25, ["of"],
     "did you mean 'of'?"),
    ("histroy of a.b", "unexpected 'histroy'", 1, 1, ["history", "state", "explain"],
     "did you mean 'history'?"),
    ("stateof a.b", "unexpected 'stateof'", 1, 1, ["state"], "did you mean 'state'?"),
    ("state of a.b knwon on today", "unexpected 'knwon'", 1, 14, ["known", "as"],
     "did you mean 'known'?"),
    ("state of us.tariff.x as of", "unexpected end of query", 1, 27,
     ["a date", "a quoted date", "today"], None),
    ("state of a.b as of known on 2025-01-01", "unexpected 'known'", 1, 20, ["a date"], None),
    ("state of", "unexpected end of query", 1, 9, ["a measure id"], None),
    ("events where rate ~ 5", "unexpected character '~'", 1, 19,
     ["=", "!=", "<", "<=", ">", ">=", "contains"], None),
    ("events where rate like 5", "unexpected 'like'", 1, 19, ["contains"], None),
    ("events where rate == 5", "unexpected '='", 1, 20, ["a number", "a quoted string"], None),
    ("events limit -1", "limit must be a non-negative integer, not -1", 1, 14, [], None),
    ("events limit 2.5", "limit must be a non-negative integer, not 2.5", 1, 14, [], None),
    ("events limit ten", "unexpected 'ten'", 1, 14, ["a non-negative integer"], None),
    ("events limmit 5", "unexpected 'limmit'", 1, 8, ["limit", "where"], "did you mean 'limit'?"),
    ('state of a.b as of "June 10, 2025', "unterminated string", 1, 20, ["a quoted date"], None),
    ("events where title = 'oops", "unterminated string", 1, 22, ["a quoted string"], None),
    ('state of a.b as of "04/05/2025"', "ambiguous date '04/05/2025'", 1, 20, [],
     "write the date as ISO YYYY-MM-DD, e.g. 2025-04-15"),
    ("state of a.b as of 'June 2025'", "date 'June 2025' has no day", 1, 20, [],
     "write the date as ISO YYYY-MM-DD, e.g. 2025-04-15"),
    ("state of a.b as of 2025-02-30", "invalid date '2025-02-30'", 1, 20, [], None),
    ("events where effective > 2025-02-30", "invalid date '2025-02-30'", 1, 26, [], None),
    ("state of a.b as of 9999-12-31 + 1 day",
     "date 9999-12-31 + 1 day falls outside years 1 to 9999", 1, 20, [], None),
    ("state of a.b as of 2025-4-5", "malformed date '2025-4-5'", 1, 20, [],
     "write the date as ISO YYYY-MM-DD, e.g. 2025-04-15"),
    ("state of a.b as of today + 1 fortnight", "unexpected 'fortnight'", 1, 30,
     ["day", "weeks"], None),
    ("state of US.Tariff.X", "invalid measure id 'US.Tariff.X'", 1, 10, [],
     "did you mean 'us.tariff.x'?"),
    ("total tariff by US on cn", "invalid jurisdiction 'US'", 1, 17, [], "did you mean 'us'?"),
    ("explain explain measures", "unexpected 'explain'", 1, 9, ["state"], None),
    ("events limit 1 limit 2", "unexpected 'limit'", 1, 16, [";", "end of query"], None),
    ("measures;;", "unexpected ';'", 1, 10, ["end of query"], None),
    ("events\nwhere type = imposed\n  and rate >> 5", "unexpected '>'", 3, 13,
     ["a number"], None),
    ("state of a.b\r\nas of 2025-13-01", "invalid date '2025-13-01'", 2, 7, [], None),
    ("events where n = " + "9" * 101, "number '999999999999999999999999999...' is too long",
     1, 18, [], None),
])
def test_errors(query, message, line, column, expected, hint):
    err = error_of(query)
    assert err.message.startswith(message), err.render()
    assert (err.line, err.column) == (line, column), err.render()
    assert caret_column(err) == column
    assert set(expected) <= set(err.expected), err.expected
    assert err.hint == hint
    assert err.query == query
    assert "__ANON" not in err.render() and "JUNK" not in err.render()


@pytest.mark.parametrize("query", ["", "   ", "\n\t\n"])
def test_empty_query(query):
    err = error_of(query)
    assert err.message == "empty query" and (err.line, err.column) == (1, 1)


def test_overlong_query_is_refused_without_parsing():
    err = error_of("state of a.b " + "x" * 10_000)
    assert err.message == "query is longer than 10,000 characters"
    assert (err.line, err.column) == (1, 10_001) and caret_column(err) == 10_001
    assert parse("state of a.b" + " " * (10_000 - 12)).target.pattern == "a.b"


# --- fuzzing ---------------------------------------------------------------------------

def _cased(word: str):
    return st.sampled_from([word, word.upper(), word.title()])


KEYWORDS = ["state", "of", "as", "known", "on", "history", "from", "to", "events", "for",
            "where", "and", "limit", "diff", "between", "total", "tariff", "by", "measures",
            "explain", "today", "contains", "day", "days", "weeks", "month", "years"]
IDS = ["us.tariff.ieepa-fentanyl.cn", "indicator.cn.exports-to-us.yoy", "case.ieepa-tariffs",
       "us.tariff.*", "*.cn", "*", "US.Tariff.X", "us..x", "a_b.c", "x.", "us", "cn", "all"]
DATES = ["2025-04-15", "9999-12-31", "0001-01-01", "0000-01-01", "2025-02-30", "2025-1-1",
         '"June 10, 2025"', "'10 June 2025'", '"04/05/2025"', '"June 2025"', '"June 10 25"',
         '"garbage"', "today", "2025-01-31 + 1 month", "today - 99999999 days"]
OPS = ["=", "!=", "<", "<=", ">", ">=", "contains", "==", "~", "=>"]
VALUES = ["in_force", "ruling", "5", "-3", "10.5", "1.5e3", "'x'", '"a \\" b"', "9" * 120,
          "20", "0", "-0.0", "type", "payload.x"]
JUNK = ["+", "-", ";", ";;", "@", "'", '"', "\\", "\n", "\t", "\r\n", "\u2028", "é", "\x00",
        "90", "2", "1" * 50, "#", "(", ")", "ß", "İ"]

TOKEN = st.one_of(
    st.sampled_from(KEYWORDS).flatmap(_cased), st.sampled_from(IDS), st.sampled_from(DATES),
    st.sampled_from(OPS), st.sampled_from(VALUES), st.sampled_from(JUNK), st.text(max_size=4),
)
SHAPED = st.lists(st.tuples(TOKEN, st.sampled_from([" ", " ", "", "\n", "  "])), max_size=25) \
    .map(lambda parts: "".join(token + sep for token, sep in parts))

VALID = [
    "state of us.tariff.x as of 2025-04-15 known on today",
    "history of a.b from '10 June 2025' to today - 2 weeks",
    "events for *.cn from 2025-01-01 where rate >= 5 and kind contains 'x' limit 3;",
    "diff a.b between 2025-01-31 + 1 month and today known on 2025-03-01",
    "total tariff by us on cn as of today",
    "explain measures where status = in_force",
]


@st.composite
def mutated(draw):
    """A valid query with a few characters deleted, inserted or replaced."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.text(max_size=3) | st.sampled_from(KEYWORDS)) + text[at + cut:]
    return text


def check_parse_total(text: str) -> None:
    try:
        query = parse(text)
    except QueryError as err:
        assert err.line >= 1 and err.column >= 1
        assert isinstance(err.render(), str)
    else:
        canonical = query.render()
        again = parse(canonical)
        assert again == query and again.render() == canonical


@pytest.mark.slow
@FUZZ
@given(st.one_of(st.text(max_size=200), SHAPED, mutated()))
def test_fuzz_parse_returns_query_or_query_error(text):
    check_parse_total(text)


@pytest.mark.slow
@FUZZ
@given(st.lists(st.sampled_from(KEYWORDS + IDS + DATES + OPS + VALUES), max_size=12)
       .map(" ".join))
def test_fuzz_token_soup(text):
    check_parse_total(text)


_IDENT = st.sampled_from(IDS[:6] + ["state.of", "limit.x"])
_OFFSET = st.builds(lambda s, a, u: f" {s} {a} {u}", st.sampled_from("+-"), st.integers(0, 500),
                    st.sampled_from(["day", "days", "week", "weeks", "month", "months",
                                     "year", "years"]))
_DATE = st.builds(lambda b, o: b + "".join(o),
                  st.sampled_from(["2025-04-15", "2024-02-29", "today", "'June 10, 2025'",
                                   '"10 June 2025"', "2025-01-31"]),
                  st.lists(_OFFSET, max_size=3))
_VALUE = st.one_of(st.integers(-10**6, 10**6).map(str),
                   st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
                   st.text(st.characters(blacklist_characters="\n\r'\\"), max_size=8)
                   .map(lambda s: f"'{s}'"), st.sampled_from(["in_force", "2025-05-05"]))
_COND = st.builds(lambda f, o, v: f"{f} {o} {v}",
                  st.sampled_from(["type", "payload.x", "rate", "limit"]),
                  st.sampled_from(OPS[:7]), _VALUE)
_WHERE = st.lists(_COND, max_size=3).map(lambda cs: " where " + " and ".join(cs) if cs else "")
_LIMIT = st.one_of(st.just(""), st.integers(0, 1000).map(lambda n: f" limit {n}"))
_FOR = st.one_of(st.just(""), _IDENT.map(lambda i: f" for {i}"))


def _opt(keyword: str):
    return st.one_of(st.just(""), _DATE.map(lambda d: f" {keyword} {d}"))


_FORMS = st.one_of(
    st.builds("state of {}{}{}".format, _IDENT, _opt("as of"), _opt("known on")),
    st.builds("history of {}{}{}{}".format, _IDENT, _opt("from"), _opt("to"), _opt("known on")),
    st.builds("events{}{}{}{}{}".format, _FOR, _opt("from"), _opt("to"), _WHERE, _LIMIT),
    st.builds("diff {} between {} and {}{}".format, _IDENT, _DATE, _DATE, _opt("known on")),
    st.builds("total tariff by us on cn{}{}".format, _opt("as of"), _opt("known on")),
    st.builds("measures{}".format, _WHERE),
)
# A syntactically valid query built from parts, to check canonical round trips.
VALID_QUERY = st.builds("{}{}".format, st.sampled_from(["", "explain "]), _FORMS)


@pytest.mark.slow
@FUZZ
@given(VALID_QUERY)
def test_fuzz_valid_queries_parse_and_round_trip(text):
    query = parse(text)
    canonical = query.render()
    assert parse(canonical) == query and parse(canonical).render() == canonical
