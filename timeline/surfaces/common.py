"""What every command shares: opening the database named on the command line."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from timeline import api
from timeline.errors import QueryError, TimelineError


def announce(msg: str) -> None:
    """Print a notice (e.g. "created the database") on standard error."""
    print(msg, file=sys.stderr)


# The read surfaces --timeout applies to; verify, load, rebuild and copy run to the end.
TIMED = frozenset({"query", "sql", "repl", "export", "report", "chart", "info", "serve"})


def open_timeline(args, *, readonly: bool = False, create: bool = False) -> api.Timeline:
    """The database named by --db / $TIMELINE_DB / the default, announcing its creation."""
    timeout = getattr(args, "timeout", None) if getattr(args, "_name", None) in TIMED else None
    return api.open(args.db, readonly=readonly, create=create, announce=announce,
                    timeout=timeout)


def resolve_date(text: str, today: dt.date | None = None) -> str:
    """A date in any form queries take (`2025-05-14`, `today - 1 day`) as ISO text."""
    try:
        return api.parse_date(text).resolve(today or dt.date.today()).isoformat()
    except QueryError as exc:
        raise TimelineError(f"invalid date {text[:80]!r}: {exc.message}; write YYYY-MM-DD or a "
                            f"date as in queries (today - 1 day)") from None


def date_arg(text: str) -> str:
    """argparse type of a date option: resolved to ISO, or a usage error naming it."""
    try:
        return resolve_date(text)
    except TimelineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
