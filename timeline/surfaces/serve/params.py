"""The URL parameters of the pages: checked and turned into values, or a clear refusal."""
from __future__ import annotations

import datetime as dt
import re

from timeline.errors import QueryError, TimelineError

MAX_PARAM = 10_000  # a query's own limit (the parser's); nothing else needs more
ECHO = 2_000  # how much of a refused value the page's form shows again
STREAM_GLOB = re.compile(r"[a-z0-9*][a-z0-9._*-]{0,199}")
MEASURE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}")
PRODUCT = re.compile(r"[0-9][0-9.]{1,15}|[a-z][a-z0-9_-]{0,79}")


class BadParam(TimelineError):
    """A URL parameter that cannot be used: a 400 naming it."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(f"parameter {name}: {message}")


def text(params, name: str, default: str = "") -> str:
    """A text parameter, stripped, at most MAX_PARAM characters."""
    value = params.get(name, default) or ""
    if len(value) > MAX_PARAM:
        raise BadParam(name, f"{len(value):,} characters, more than {MAX_PARAM:,}")
    return value.strip()


def date(params, name: str, today=None) -> str | None:
    """An ISO date from a date parameter (ISO, or a date as queries write it), or None."""
    value = text(params, name)
    if not value:
        return None
    from timeline.api import parse_date  # the language's own dates

    try:
        return parse_date(value).resolve(today or dt.date.today()).isoformat()
    except QueryError as exc:
        why = exc.message if exc.message.startswith("invalid date") else \
            f"invalid date {value[:40]!r}: {exc.message}"
        raise BadParam(name, f"{why}; write YYYY-MM-DD or a date as queries do "
                             f"(today - 1 day)") from None


def echo(params, names) -> dict[str, str]:
    """The raw values of `names`, cut to ECHO characters: what a refused form shows again."""
    return {n: (params.get(n) or "")[:ECHO] for n in names}


def pattern(params, name: str, regex: re.Pattern, what: str) -> str:
    """A parameter that must match `regex` in full (empty allowed)."""
    value = text(params, name)
    if value and not regex.fullmatch(value.lower() if regex is not MEASURE_ID else value):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise BadParam(name, f"{shown!r} is not {what}")
    return value.lower()


def flag(params, name: str) -> bool:
    """A checkbox parameter: present and not 0/off/false."""
    return (params.get(name) or "").lower() not in ("", "0", "off", "false", "no")
