"""Date helpers: ISO, free text (with the ambiguity and completeness checks), offsets."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.query import dates
from timeline.errors import QueryError
from timeline.query.parser import parse_date
from timeline.query.syntax import DateExpr, Pos

D = dt.date
TODAY = D(2025, 6, 15)

# TIMELINE_FUZZ_EXAMPLES (CI: 10,000), else 500 (2,000 under TIMELINE_LONG_TESTS=1)
settings.register_profile(
    "timeline-dates-fuzz",
    max_examples=int(os.environ.get("TIMELINE_FUZZ_EXAMPLES")
                     or (2000 if os.environ.get("TIMELINE_LONG_TESTS") == "1" else 500)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def raises(func, *args, **kwargs) -> QueryError:
    with pytest.raises(QueryError) as info:
        func(*args, **kwargs)
    return info.value


# --- ISO -------------------------------------------------------------------------------

def test_iso_valid():
    assert dates.parse_iso("2025-04-15") == D(2025, 4, 15)
    assert dates.parse_iso("2024-02-29") == D(2024, 2, 29)
    assert dates.parse_iso("0001-01-01") == D(1, 1, 1)


@pytest.mark.parametrize("text, fragment", [
    ("2025-02-30", "invalid date '2025-02-30'"),
    ("2025-13-01", "invalid date '2025-13-01'"),
    ("0000-01-01", "invalid date '0000-01-01'"),
    ("2025-4-15", "malformed date '2025-4-15'"),
    ("20250-01-01", "malformed date"),
])
def test_iso_invalid_carries_position(text, fragment):
    err = raises(dates.parse_iso, text, line=3, column=7)
    assert fragment in err.message
    assert (err.line, err.column) == (3, 7)


# --- free text -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("June 10, 2025", D(2025, 6, 10)),
    ("10 June 2025", D(2025, 6, 10)),
    ("Jun 10 2025", D(2025, 6, 10)),
    ("10th of June, 2025", D(2025, 6, 10)),
    ("13/05/2025", D(2025, 5, 13)),       # only one reading is a valid date
    ("05/13/2025", D(2025, 5, 13)),
    ("04/04/2025", D(2025, 4, 4)),        # both readings agree
    ("2025-06-10", D(2025, 6, 10)),       # quoted ISO is ISO, never day-first
    ("2025/06/10", D(2025, 6, 10)),       # a leading year reads year-month-day
    ("20250610", D(2025, 6, 10)),
    ("February 29, 2024", D(2024, 2, 29)),
])
def test_text_dates(text, expected):
    assert dates.parse_text(text) == expected


@pytest.mark.parametrize("text", ["04/05/2025", "1/2/2025", "10.06.2025"])
def test_ambiguous_text_date_asks_for_iso(text):
    err = raises(dates.parse_text, text, line=2, column=5)
    assert err.message.startswith(f"ambiguous date {text!r}")
    assert "ISO" in err.hint and (err.line, err.column) == (2, 5)


@pytest.mark.parametrize("text, missing", [
    ("June 2025", "no day"),
    ("June 10", "no year"),
    ("February 29", "no year"),
    ("2025", "no month or day"),
    ("Monday", "no year or month or day"),
])
def test_incomplete_text_date(text, missing):
    err = raises(dates.parse_text, text)
    assert missing in err.message and "ISO" in err.hint


@pytest.mark.parametrize("text", ["June 10, 25", "10/06/25"])
def test_two_digit_year_is_refused(text):
    assert "two-digit" in raises(dates.parse_text, text).message


@pytest.mark.parametrize("text", ["", "yesterday", "June 31, 2025", "not a date",
                                  "99999999999999999999"])
def test_unreadable_text_date(text):
    err = raises(dates.parse_text, text, line=1, column=4)
    assert err.column == 4


@pytest.mark.slow
@settings(settings.get_profile("timeline-dates-fuzz"))
@given(st.text(max_size=40) | st.from_regex(r"[0-9]{1,5}[/. -][0-9]{1,5}[/. -][0-9]{1,5}",
                                            fullmatch=True))
def test_text_dates_fail_only_with_query_error(text):
    try:
        result = dates.parse_text(text)
    except QueryError as err:
        assert err.line >= 1 and err.column >= 1
    else:
        assert isinstance(result, dt.date)


# --- offsets ---------------------------------------------------------------------------

@pytest.mark.parametrize("base, offsets, expected", [
    (D(2025, 1, 31), [(1, "months")], D(2025, 2, 28)),
    (D(2024, 1, 31), [(1, "months")], D(2024, 2, 29)),
    (D(2025, 3, 31), [(-1, "months")], D(2025, 2, 28)),
    (D(2025, 1, 31), [(1, "months"), (1, "months")], D(2025, 3, 28)),  # clamps step by step
    (D(2025, 1, 31), [(2, "months")], D(2025, 3, 31)),
    (D(2024, 2, 29), [(1, "years")], D(2025, 2, 28)),
    (D(2025, 4, 15), [(2, "weeks")], D(2025, 4, 29)),
    (D(2025, 4, 15), [(-2, "week")], D(2025, 4, 1)),
    (D(2025, 4, 15), [(90, "days")], D(2025, 7, 14)),
    (D(2025, 4, 15), [(1, "years"), (-1, "days"), (2, "weeks")], D(2026, 4, 28)),
    (D(2025, 4, 15), [], D(2025, 4, 15)),
])
def test_apply_offsets(base, offsets, expected):
    assert dates.apply_offsets(base, offsets) == expected


@pytest.mark.parametrize("base, offsets, fragment", [
    (D(9999, 12, 31), [(1, "days")], "9999-12-31 + 1 day falls outside"),
    (D(1, 1, 1), [(-1, "days")], "0001-01-01 - 1 day falls outside"),
    (D(2025, 1, 1), [(8000, "years")], "falls outside years 1 to 9999"),
    (D(2025, 1, 1), [(-30000, "months")], "falls outside"),
    (D(2025, 1, 1), [(10**9, "days")], "out of range"),
])
def test_offsets_out_of_range(base, offsets, fragment):
    err = raises(dates.apply_offsets, base, offsets, line=4, column=9)
    assert fragment in err.message and (err.line, err.column) == (4, 9)


def test_normalize_unit():
    assert [dates.normalize_unit(u) for u in ("day", "Days", "WEEK", "months", "year")] == \
        ["days", "days", "weeks", "months", "years"]
    assert "unknown date unit" in raises(dates.normalize_unit, "fortnight").message


def test_resolve_kinds():
    assert dates.resolve("iso", "2025-04-15", ((1, "days"),), TODAY) == D(2025, 4, 16)
    assert dates.resolve("text", "June 10, 2025", (), TODAY) == D(2025, 6, 10)
    assert dates.resolve("today", "today", ((-2, "weeks"),), TODAY) == D(2025, 6, 1)


# --- DateExpr through the parser ------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2025-04-15 + 90 days", D(2025, 7, 14)),
    ("today", TODAY),
    ("TODAY - 2 weeks + 1 day", D(2025, 6, 2)),
    ("'10 June 2025' + 1 month", D(2025, 7, 10)),
    ('"June 10, 2025"', D(2025, 6, 10)),
    ("2025-01-31 + 1 month + 1 month", D(2025, 3, 28)),
    ("2025-04-15;", D(2025, 4, 15)),
])
def test_parse_date_resolves(text, expected):
    assert parse_date(text).resolve(TODAY) == expected


def test_parse_date_structure():
    expr = parse_date("today - 2 weeks + 1 day")
    assert expr == DateExpr("today", "today", ((-2, "weeks"), (1, "days")), Pos(1, 1))
    assert expr.render() == "today - 2 weeks + 1 day"


def test_today_out_of_range_is_reported_at_resolve_time_with_position():
    expr = parse_date("  today + 9000 years")
    err = raises(expr.resolve, TODAY)
    assert "falls outside years 1 to 9999" in err.message
    assert (err.line, err.column) == (1, 3)
    assert expr.resolve(D(500, 1, 1)) == D(9500, 1, 1)


@pytest.mark.parametrize("text, fragment, column", [
    ("9999-12-31 + 1 day", "9999-12-31 + 1 day falls outside years 1 to 9999", 1),
    ("  '04/05/2025'", "ambiguous date", 3),
    ("2025-02-30", "invalid date '2025-02-30'", 1),
    ("today + 123456789012 days", "date offset '123456789012' is out of range", 9),
    ("today +", "unexpected end of query", 8),
    ("tomorrow", "unexpected 'tomorrow'", 1),
])
def test_parse_date_errors(text, fragment, column):
    err = raises(parse_date, text)
    assert fragment in err.message and err.column == column and err.query == text
