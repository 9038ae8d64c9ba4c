"""Date helpers for the query language: ISO dates, free-text dates, offsets, `today`.

Pure functions (no database, no clock): `today` is always passed in. Every failure is a
QueryError carrying the line and column it was given, so the parser and the planner can
point at the offending date in the query text.
"""
from __future__ import annotations

import datetime as dt
import re

from timeline.errors import QueryError

ISO_HINT = "write the date as ISO YYYY-MM-DD, e.g. 2025-04-15"

# Singular and plural spellings both normalise to the relativedelta keyword.
UNITS = {
    "day": "days", "days": "days",
    "week": "weeks", "weeks": "weeks",
    "month": "months", "months": "months",
    "year": "years", "years": "years",
}

# An offset longer than this cannot land inside years 1..9999 from any base date; refusing
# it early also keeps int() away from Python's 4,300-digit conversion limit.
MAX_OFFSET = 10_000 * 366

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# Two defaults that differ in year, month and day: a field the text does not give comes
# out different under each, which is how a silently defaulted field is detected. Both
# are leap years so that "February 29" without a year is reported as missing a year.
_DEFAULTS = (dt.datetime(2000, 1, 1), dt.datetime(2004, 2, 2))


def _error(message: str, line: int, column: int, hint: str | None = None) -> QueryError:
    return QueryError(message, line=line, column=column, hint=hint)


def parse_iso(text: str, *, line: int = 1, column: int = 1) -> dt.date:
    """Parse a strict ISO `YYYY-MM-DD` date, raising QueryError for malformed or invalid days."""
    m = _ISO.fullmatch(text)
    if not m:
        raise _error(f"malformed date {text!r}", line, column, hint=ISO_HINT)
    year, month, day = (int(g) for g in m.groups())
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise _error(f"invalid date {text!r}: {exc}", line, column) from None


def _read(text: str, default: dt.datetime, dayfirst: bool) -> dt.datetime | None:
    # imported here: only free-text dates need dateutil, and a query's start-up should not
    # pay for it (issue 15)
    from dateutil.parser import parse as _dateutil_parse

    try:
        return _dateutil_parse(text, default=default, dayfirst=dayfirst, ignoretz=True)
    # dateutil signals "not a date" with several exception types depending on the input
    # (ParserError is a ValueError; huge numbers give OverflowError; some odd inputs still
    # trip TypeError/IndexError inside it). All of them mean the same thing here.
    except (ValueError, OverflowError, TypeError, IndexError, LookupError, ArithmeticError):
        return None


def _reading(text: str, dayfirst: bool, line: int, column: int) -> dt.date:
    first, second = (_read(text, d, dayfirst) for d in _DEFAULTS)
    if first is None or second is None:
        raise _error(f"cannot read {text!r} as a date", line, column, hint=ISO_HINT)
    missing = [name for name in ("year", "month", "day")
               if getattr(first, name) != getattr(second, name)]
    if missing:
        raise _error(f"date {text!r} has no {' or '.join(missing)}; "
                     "dates must name a day, a month and a year", line, column, hint=ISO_HINT)
    return first.date()


def parse_text(text: str, *, line: int = 1, column: int = 1) -> dt.date:
    """Parse a free-text date; refuse it when incomplete or ambiguous rather than guess."""
    if _ISO.fullmatch(text.strip()):
        return parse_iso(text.strip(), line=line, column=column)
    month_first = _reading(text, False, line, column)
    if not any(len(run) >= 3 for run in re.findall(r"\d+", text)):
        raise _error(f"date {text!r} has a two-digit (or no numeric) year, which is ambiguous",
                     line, column, hint=ISO_HINT)
    # A leading year (2025/04/05) is read year-month-day by every convention; only texts
    # that start with a day or month can flip between day-first and month-first.
    if not re.match(r"\s*\d{3,}", text):
        day_first = _reading(text, True, line, column)
        if day_first != month_first:
            raise _error(
                f"ambiguous date {text!r}: it reads as {month_first.isoformat()} (month first) "
                f"or {day_first.isoformat()} (day first)", line, column, hint=ISO_HINT)
    return month_first


def normalize_unit(word: str) -> str:
    """Map a unit word (day, days, Week, …) to its plural relativedelta keyword."""
    try:
        return UNITS[word.lower()]
    except KeyError:
        raise QueryError(f"unknown date unit {word!r}", hint="units are days, weeks, "
                         "months and years") from None


def apply_offsets(base: dt.date, offsets, *, line: int = 1, column: int = 1) -> dt.date:
    """Apply (amount, unit) offsets left to right; QueryError if a step leaves years 1..9999."""
    result = base
    for amount, unit in offsets:
        if abs(amount) > MAX_OFFSET:
            raise _error(f"date offset {amount:+d} {unit} is out of range", line, column)
        try:
            # Each step is applied on its own so that "+ 1 month + 1 month" from Jan 31
            # clamps twice (Feb 28, then Mar 28), exactly as it reads.
            from dateutil.relativedelta import relativedelta  # offsets only: see _read

            result = result + relativedelta(**{normalize_unit(unit): amount})
        except (ValueError, OverflowError):
            word = unit[:-1] if abs(amount) == 1 else unit
            raise _error(f"date {result.isoformat()} {'-' if amount < 0 else '+'} "
                         f"{abs(amount)} {word} falls outside years 1 to 9999",
                         line, column) from None
    return result


# The date kinds that depend on the day the query runs: `today`, `yesterday`, `last week`.
RELATIVE = ("today", "yesterday", "last")
# `last week` is the same weekday a week ago (today - 7 days), as `last month` is today -
# 1 month: a day, never a range, as every date in the language.
LAST = {"week": "weeks", "month": "months", "year": "years"}


def resolve(kind: str, text: str, offsets, today: dt.date, *,
            line: int = 1, column: int = 1) -> dt.date:
    """Resolve a date expression (iso/text/today/yesterday/last plus offsets) against `today`."""
    if kind == "iso":
        base = parse_iso(text, line=line, column=column)
    elif kind == "text":
        base = parse_text(text, line=line, column=column)
    elif kind == "today":
        base = today
    elif kind == "yesterday":
        base = apply_offsets(today, ((-1, "days"),), line=line, column=column)
    elif kind == "last" and text in LAST:
        base = apply_offsets(today, ((-1, LAST[text]),), line=line, column=column)
    else:
        raise _error(f"unknown date kind {kind!r}", line, column)
    return apply_offsets(base, offsets, line=line, column=column)
