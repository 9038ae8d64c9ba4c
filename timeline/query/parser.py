"""Parse query text into the syntax tree of `timeline.query.syntax`.

The plain `state of ID [as of DATE] [known on DATE]` is read here by one regular expression;
every other query (and every error) goes to the Lark parser of `timeline.query.lark_parser`,
imported only then: Lark's import was the largest piece of a quick query's start-up that
the query did not use.
"""
from __future__ import annotations

import datetime as dt
import re

from timeline.errors import QueryError
from timeline.query.syntax import DateExpr, Positions, Query, StateQuery, Target

MAX_QUERY_LENGTH = 10_000


def _run(text: str, start: str):
    if len(text) > MAX_QUERY_LENGTH:
        pos = Positions(text).at(MAX_QUERY_LENGTH)
        raise QueryError(f"query is longer than {MAX_QUERY_LENGTH:,} characters", query=text,
                         line=pos.line, column=pos.column)
    if not text.strip():
        raise QueryError("empty query", query=text)
    if start == "start":
        quick = _quick_state(text) or _quick_tariff(text)
        if quick is not None:
            return quick
    from timeline.query.lark_parser import parse_with_lark  # the rest: Lark, loaded on demand

    return parse_with_lark(text, start)


# The commonest query, `state of ID [as of DATE] [known on DATE]` with ISO dates, is read
# by one expression into the very tree Lark builds (tests/test_quick_parse.py compares them):
# Lark's parse was most of such a query's time end to end, and a process that only asks
# it never imports Lark at all. Anything else, or odd, goes to Lark.
_QUICK_STATE = re.compile(
    r"\s*((?i:state))\s+(?i:of)\s+"
    # the words the grammar's MEASURE_ID refuses (a keyword where the measure should be)
    r"(?!(?i:tariff|total|between|as|known|from|to|where)(?![a-zA-Z0-9_*.-]))"
    r"([a-z0-9*][a-z0-9*-]*(?:\.[a-z0-9*][a-z0-9*-]*)*)"
    r"(?:\s+(?i:as)\s+(?i:of)\s+(\d{4}-\d{2}-\d{2}))?"
    r"(?:\s+(?i:known)\s+(?i:on)\s+(\d{4}-\d{2}-\d{2}))?\s*(?:;\s*)?")


def _quick_dates(m: re.Match, groups: tuple[int, int], at) -> list[DateExpr | None] | None:
    """The `as of` and `known on` dates of a quick reading, or None when one is not a real
    day (Lark's path then words the error, with its caret)."""
    when: list[DateExpr | None] = []
    for group in groups:
        if m.group(group) is None:
            when.append(None)
            continue
        expr = DateExpr("iso", m.group(group), (), at(m.start(group)))
        try:
            expr.resolve(dt.date(2000, 1, 1))
        except QueryError:
            return None
        when.append(expr)
    return when


def _quick_state(text: str) -> StateQuery | None:
    """The StateQuery of a plain `state of` query, or None when Lark must read it."""
    m = _QUICK_STATE.fullmatch(text)
    if m is None:
        return None
    at = Positions(text).at
    when = _quick_dates(m, (3, 4), at)
    if when is None:
        return None
    return StateQuery(Target(m.group(2), at(m.start(2))), when[0], when[1],
                      pos=at(m.start(1)), conditions=())


# `tariff on hts CODE from J [as of DATE] [known on DATE]`, the product form a lookup asks
# most, read the same way (tests/test_quick_parse.py compares it with Lark's tree too)
_QUICK_TARIFF = re.compile(
    r"\s*((?i:tariff))\s+(?i:on)\s+(?i:hts)\s+(\d{2,4}(?:\.\d{2}){0,2}(?:\d{2})?)"
    r"\s+(?i:from)\s+([a-z][a-z0-9_-]*)"
    r"(?:\s+(?i:as)\s+(?i:of)\s+(\d{4}-\d{2}-\d{2}))?"
    r"(?:\s+(?i:known)\s+(?i:on)\s+(\d{4}-\d{2}-\d{2}))?\s*(?:;\s*)?")


def _quick_tariff(text: str):
    """The TariffQuery of a plain `tariff on hts …` query, or None when Lark must read it."""
    m = _QUICK_TARIFF.fullmatch(text)
    if m is None:
        return None
    from timeline.projections.scopes import hts_digits
    from timeline.query.syntax import Product, TariffQuery

    if hts_digits(m.group(2)) is None or m.group(3) in ("as", "known", "with", "by"):
        return None
    at = Positions(text).at
    when = _quick_dates(m, (4, 5), at)
    if when is None:
        return None
    return TariffQuery(Product("hts", m.group(2), at(m.start(2))), m.group(3), when[0], when[1],
                       pos=at(m.start(1)), origin_pos=at(m.start(3)))


def parse(text: str) -> Query:
    """Parse one query; raises QueryError (with line, column and caret) on any bad input."""
    return _run(text, "start")


def parse_date(text: str) -> DateExpr:
    """Parse a lone date expression, e.g. for the REPL's `\\asof` meta-command."""
    return _run(text, "date_only")
